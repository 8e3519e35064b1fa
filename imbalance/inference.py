"""Scoring new rows with a saved checkpoint: its preprocessing, model and thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from models import create_model

from .calibration import Calibration
from .checkpoint import load_checkpoint, member_models
from .data import as_model_precision
from .errors import UserError
from .metrics import torch_threads
from .preprocessing import TabularPreprocessor
from .training import TensorRows, predict_proba

__all__ = ["Predictor", "prediction_frame"]


def prediction_frame(
    prob: np.ndarray,
    thresholds: Sequence[float],
    label_names: Sequence[str],
    *,
    index: Optional[pd.Index] = None,
    ids: Optional[pd.Series] = None,
    id_col: Optional[str] = None,
) -> pd.DataFrame:
    """``<id>``, then ``<label>_prob`` and ``<label>_pred`` for every label."""
    out = pd.DataFrame(index=index)
    if ids is not None:
        out[id_col or "id"] = ids.to_numpy()
    for j, name in enumerate(label_names):
        out[f"{name}_prob"] = prob[:, j]
        out[f"{name}_pred"] = (prob[:, j] >= thresholds[j]).astype(np.int64)
    return out


class Predictor:
    """A trained model ready for new rows: ``Predictor.load(path).predict_proba(df)``."""

    def __init__(self, checkpoint: Mapping[str, Any], *, device: str | torch.device = "cpu", source: str = "checkpoint") -> None:
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.label_names: list[str] = list(checkpoint["label_names"])
        self.thresholds = np.asarray(checkpoint["thresholds"], dtype=np.float64)
        self.id_col: Optional[str] = checkpoint.get("id_col")
        # A checkpoint whose parts do not fit together (edited, or mixed from two runs) stops here,
        # in one line, rather than in the middle of scoring.
        try:
            self.preprocessor = TabularPreprocessor.from_state_dict(checkpoint["preprocessing"])
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{source}: damaged checkpoint: its preprocessing state does not load ({_first_line(exc)}); "
                            "use the run's own best.pt or train again") from None
        self.models = []  # one per member (a seed ensemble, or --ensemble_top's models); probabilities are averaged
        described = member_models(checkpoint)
        for state, spec in zip(checkpoint["members"], described):
            try:
                model = create_model(spec["model_name"], inputs=spec["inputs"], settings=spec["model_settings"])
                model.load_state_dict(state)
            except UserError as exc:
                raise UserError(f"{source}: damaged checkpoint: {exc}") from None
            except Exception as exc:
                raise UserError(f"{source}: damaged checkpoint: its model does not match its weights ({_first_line(exc)}); "
                                "use the run's own best.pt or train again") from None
            self.models.append(model.to(self.device).eval())
        self.calibration = Calibration.from_dict(checkpoint.get("calibration"), n_labels=len(self.label_names),
                                                 n_members=len(self.models), source=source)
        n_labels = {spec["inputs"].get("n_labels") for spec in described}
        width = len(self.preprocessor.input_columns)
        if n_labels != {len(self.label_names)} or not width:
            raise UserError(f"{source}: damaged checkpoint: the model predicts {'/'.join(map(str, sorted(n_labels, key=str)))} labels for {len(self.label_names)} label "
                            "names; use the run's own best.pt or train again")

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu", allow_incomplete: bool = False) -> "Predictor":
        return cls(load_checkpoint(path, allow_incomplete=allow_incomplete), device=device, source=str(path))

    @property
    def feature_columns(self) -> list[str]:
        return self.preprocessor.input_columns

    def _prob(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        present = [c for c in self.feature_columns if c in frame.columns]  # a missing one is reported by transform
        # As a file read gives them (float32), on a shallow copy: the caller's frame keeps its columns.
        frame = as_model_precision(frame[present].copy(deep=False), present)
        rows = TensorRows.from_numpy(self.preprocessor.transform(frame, source=source), self.device)
        # One CPU thread, as training's own final predictions: float32 sums split over threads can
        # round differently, and the same rows must get the same probabilities from predict.py,
        # the server and this class in any process.
        with torch_threads(1):
            raw = predict_proba(self.models, rows, offsets=self.calibration.member_offsets()).cpu().numpy()
        return self.calibration.apply(raw)

    def predict_proba(self, frame: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
        """Probability per label (columns named by label), aligned with ``frame``'s index."""
        return pd.DataFrame(self._prob(frame, source), index=frame.index, columns=self.label_names)

    def predict(self, frame: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
        """0/1 per label at the stored thresholds (tuned on validation, or 0.5)."""
        prob = self._prob(frame, source)
        return pd.DataFrame((prob >= self.thresholds).astype(np.int64), index=frame.index, columns=self.label_names)

    def predict_frame(self, frame: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
        """The predictions file: id column (when the model has one), ``<label>_prob``, ``<label>_pred``."""
        ids = frame[self.id_col] if self.id_col and self.id_col in frame.columns else None
        return prediction_frame(
            self._prob(frame, source), self.thresholds, self.label_names, index=frame.index, ids=ids, id_col=self.id_col
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
