"""``ImbalanceClassifier``: the toolkit as a scikit-learn estimator.

    from imbalance import ImbalanceClassifier
    clf = ImbalanceClassifier(preset="aggressive", model="resnet", epochs=50).fit(X_train, y_train)
    clf.predict_proba(X_test); clf.predict(X_test)          # tuned thresholds, calibrated probabilities
    cross_validate(clf, X, y, scoring="average_precision")  # Pipeline, GridSearchCV, clone: as any estimator

Its parameters are the training config's fields (every lever, the model and its settings) minus
what belongs to a command line run (files, folders, reports). A parameter left at ``None`` takes
the value of ``preset`` (default ``balanced``), or the toolkit's default where the preset says
nothing, so ``ImbalanceClassifier(preset="aggressive", lr=5e-4)`` is the aggressive preset with
another learning rate, as on the command line.

``fit(X, y)`` takes a DataFrame (numeric, yes/no and text columns, missing values allowed) or an
array, and ``y`` with one column (binary, ``classes_ = [0, 1]``) or several 0/1 columns
(multi-label). It trains exactly as ``train_classifier.py`` does, in a temporary folder it then
removes, on a split of the rows given (validation for early stopping, thresholds and
calibration; no test split: scoring is the caller's), and keeps the checkpoint in memory.
``predict_proba`` gives ``(n, 2)`` for a binary target (as scikit-learn's classifiers do) and
``(n, L)`` for several labels; ``predict`` applies the tuned thresholds. ``save(path)`` writes
the same checkpoint format as a run's ``best.pt`` (``predict.py`` and ``serve.py`` read it),
``ImbalanceClassifier.load(path)`` reads it back: no pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from .checkpoint import load_checkpoint, save_checkpoint
from .config import AUTO_BASE, AUTO_PRESET, TrainConfig, load_config_file, resolve_preset
from .errors import UserError
from .inference import Predictor

__all__ = ["ImbalanceClassifier", "ESTIMATOR_PARAMS"]

# Fields of a command line run that an estimator does not take: where data and outputs live, and reports.
_RUN_ONLY = {"preset", "config", "csv_path", "output_dir", "overwrite", "resume", "target_cols", "id_col", "drop_cols", "demo_rows",
             "compare", "quiet", "tensorboard", "plots", "baselines", "bootstrap", "slice_cols", "slice_bins",
             "slice_min_positives", "generated_csv"}
MIN_ROWS = 20  # the fewest rows fit() takes: a validation split with both classes needs a few of each
ESTIMATOR_PARAMS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _RUN_ONLY]
# What an estimator's fit sets besides the preset: no held-out test split (scoring is the caller's).
_FIT_SETTINGS = dict(test_fraction=0.0, quiet=True, tensorboard=False, plots=False, baselines="none", bootstrap=0)


class ImbalanceClassifier(ClassifierMixin, BaseEstimator):
    """See the module docstring. Parameters: ``preset`` (default ``balanced``) and every field
    of :class:`~imbalance.config.TrainConfig` in :data:`ESTIMATOR_PARAMS` (``None``: the
    preset's value)."""

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - {"preset", *ESTIMATOR_PARAMS}
        if unknown:
            raise TypeError(f"ImbalanceClassifier got unknown parameter(s) {', '.join(sorted(unknown))}")
        for name in ESTIMATOR_PARAMS:
            setattr(self, name, params.get(name))
        self.preset = params.get("preset", "balanced")

    # -- configuration ----------------------------------------------------------------------

    def training_config(self, **run: Any) -> TrainConfig:
        """The resolved config: defaults < preset < the parameters that are not None < ``run``."""
        values: dict[str, Any] = {}
        if self.preset:
            values.update(load_config_file(resolve_preset(AUTO_BASE if self.preset == AUTO_PRESET else self.preset)))
        for name in ESTIMATOR_PARAMS:
            value = getattr(self, name)
            if value is not None:
                values[name] = dict(value) if isinstance(value, dict) else value
        if "model" in values and "model_args" in values and self.model_args is None:
            values.pop("model_args")  # a preset's model settings belong to its own model
        return TrainConfig(**{**values, **_FIT_SETTINGS, **run, "preset": self.preset})

    # -- fitting and predicting ------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> "ImbalanceClassifier":
        from .runner import search_and_train, train

        frame = self._frame(X, fitting=True)
        targets = self._targets(y, len(frame))
        if len(frame) < MIN_ROWS:
            raise ValueError(f"{len(frame)} sample(s) are too few: ImbalanceClassifier holds out a validation split for "
                             f"early stopping, thresholds and calibration and needs at least {MIN_ROWS} rows")
        names = [f"label_{j}" for j in range(targets.shape[1])] if targets.shape[1] > 1 else ["label"]
        self.multilabel_ = targets.shape[1] > 1
        # scikit-learn's conventions: the two classes of a binary target; the label indices of a multi-label one
        self.classes_ = np.array([0, 1]) if not self.multilabel_ else np.arange(targets.shape[1])
        with tempfile.TemporaryDirectory(prefix="imbalance_fit_") as folder:
            data = frame.copy()
            for j, name in enumerate(names):
                data[name] = targets[:, j]
            table = Path(folder) / "fit.parquet"
            data.to_parquet(table, index=False)
            cfg = self.training_config(csv_path=str(table), output_dir=str(Path(folder) / "run"), target_cols=",".join(names))
            level = logging.getLogger().level
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the CLI's printed report: fit() is silent
                    (search_and_train if cfg.preset == AUTO_PRESET else train)(cfg)
            except UserError as exc:  # bad data: scikit-learn's callers expect a ValueError
                raise ValueError(str(exc)) from None
            finally:
                logging.getLogger().setLevel(level)
            self.checkpoint_ = load_checkpoint(Path(folder) / "run" / "best.pt")
        self.predictor_ = Predictor(self.checkpoint_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        prob = self._predictor().predict_proba(self._frame(X), source="X").to_numpy()
        return np.column_stack([1.0 - prob[:, 0], prob[:, 0]]) if not self.multilabel_ else prob

    def predict(self, X: Any) -> np.ndarray:
        predictor = self._predictor()
        prob = predictor.predict_proba(self._frame(X), source="X").to_numpy()
        decisions = (prob >= predictor.thresholds).astype(np.int64)
        return decisions if self.multilabel_ else decisions[:, 0]

    def decision_function(self, X: Any) -> np.ndarray:
        """Probability minus threshold per label: positive where ``predict`` says 1 (up to exact
        ties), and in the same order as the probabilities, for scikit-learn's ranking scorers."""
        predictor = self._predictor()
        margin = predictor.predict_proba(self._frame(X), source="X").to_numpy() - predictor.thresholds
        return margin if self.multilabel_ else margin[:, 0]

    # -- the checkpoint ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """The fitted model as a checkpoint (the format of a run's best.pt)."""
        self._predictor()
        return save_checkpoint({**self.checkpoint_, "estimator": {"columns": list(self.feature_columns_),
                                                                   "multilabel": bool(self.multilabel_)}}, path)

    @classmethod
    def load(cls, path: str | Path) -> "ImbalanceClassifier":
        """A fitted estimator from a checkpoint written by :meth:`save` (or any run's best.pt)."""
        checkpoint = load_checkpoint(path)
        saved = checkpoint.get("train_config", {})
        estimator = cls(**{k: v for k, v in saved.items() if k in ESTIMATOR_PARAMS or k == "preset"})
        about = checkpoint.get("estimator") or {}
        estimator.checkpoint_ = checkpoint
        estimator.predictor_ = Predictor(checkpoint)
        estimator.feature_columns_ = about.get("columns", estimator.predictor_.feature_columns)
        estimator.n_features_in_ = len(estimator.feature_columns_)
        estimator.multilabel_ = bool(about.get("multilabel", len(estimator.predictor_.label_names) > 1))
        estimator.classes_ = np.array([0, 1]) if not estimator.multilabel_ else np.arange(len(estimator.predictor_.label_names))
        return estimator

    # -- helpers -----------------------------------------------------------------------------

    def _predictor(self) -> Predictor:
        from sklearn.exceptions import NotFittedError

        if not hasattr(self, "predictor_"):
            raise NotFittedError("this ImbalanceClassifier is not fitted yet; call fit(X, y) first")
        return self.predictor_

    def _frame(self, X: Any, *, fitting: bool = False) -> pd.DataFrame:
        from scipy import sparse

        if sparse.issparse(X):
            raise TypeError("sparse input is not supported: ImbalanceClassifier takes a dense array or a DataFrame "
                            "(X.toarray() for a small matrix)")
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
        else:
            array = np.asarray(X)
            if array.ndim != 2:
                raise ValueError(f"Expected a 2-D X (rows x features), got shape {array.shape}. Reshape your data either "
                                 "using array.reshape(-1, 1) if it has a single feature or array.reshape(1, -1) if it is one sample.")
            if array.dtype.kind not in "biufcOUS":
                raise ValueError(f"X has dtype {array.dtype}, which is not numbers or text")
            if array.dtype.kind == "c":
                raise ValueError("Complex data not supported")
            frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        if not len(frame):
            raise ValueError(f"Found array with 0 sample(s) (shape={frame.shape}) while a minimum of 1 is required.")
        if fitting:
            if frame.shape[1] == 0:
                raise ValueError(f"Found array with 0 feature(s) (shape={frame.shape}) while a minimum of 1 is required.")

            self.feature_columns_ = list(frame.columns)
            self.n_features_in_ = frame.shape[1]
            if isinstance(X, pd.DataFrame):
                self.feature_names_in_ = np.asarray(self.feature_columns_, dtype=object)
        elif frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but ImbalanceClassifier is expecting {self.n_features_in_} features as input")
        elif not isinstance(X, pd.DataFrame):
            frame.columns = self.feature_columns_
        return frame

    @staticmethod
    def _targets(y: Any, n: int) -> np.ndarray:
        if y is None:
            raise ValueError("ImbalanceClassifier requires y to be passed, but the target y is None")
        values = np.asarray(y)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or len(values) != n:
            raise ValueError(f"y must have one value (or one 0/1 per label) per row of X: {n} rows, got shape {np.shape(y)}")
        refused = ("Only binary classification is supported: y must hold 0/1, one outcome or one column per label "
                   "(multi-label); multiclass and continuous targets are refused")
        try:
            numeric = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(refused) from None
        if np.isnan(numeric).any() or not np.isin(numeric, (0.0, 1.0)).all():
            raise ValueError(refused)
        for j in range(numeric.shape[1]):
            if numeric[:, j].min() == numeric[:, j].max():
                raise ValueError(f"y{'' if numeric.shape[1] == 1 else f' column {j}'} has only one class "
                                 f"({int(numeric[0, j])}); a classifier needs positives and negatives to learn from")
        return numeric.astype(np.uint8)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are filled as in training
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_class = False  # one binary outcome, or several (multi-label)
        tags.classifier_tags.multi_label = True
        return tags


# scikit-learn reads an estimator's parameters from its __init__ signature: give it every one.
ImbalanceClassifier.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, default="balanced"),
     *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in ESTIMATOR_PARAMS)])

