"""Resampling of the training split with imbalanced-learn's samplers (and MLSMOTE for multi-label).

Resampling runs on the training split only, after the split and after preprocessing was fitted
on the real training rows, in the preprocessor's compact space: numerics standardised (so
neighbour distances are not dominated by units), each categorical column one integer code (so
SMOTENC keeps it a valid level), yes/no columns and missing indicators as 0/1 codes.
``--resample_ratio`` is imbalanced-learn's ``sampling_strategy``: the minority/majority ratio
after resampling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import UserError
from .registry import Registry

__all__ = ["RESAMPLERS", "ResamplerSpec", "ResampleResult", "resample", "row_provenance"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResamplerSpec:
    build: Callable[..., Any]  # (ratio, k, seed, categorical mask) -> imblearn sampler
    columns: str  # "numeric" (interpolates every column), "categorical" (all codes), "mixed" (SMOTENC), "any"
    uses_neighbors: bool = True


RESAMPLERS: Registry[ResamplerSpec] = Registry("resampler")


def _register(name: str, columns: str, uses_neighbors: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def add(build: Callable[..., Any]) -> Callable[..., Any]:
        RESAMPLERS.register(name)(ResamplerSpec(build, columns, uses_neighbors))
        return build

    return add


# imbalanced-learn is imported inside each builder: it is only needed when resampling is asked for.
@_register("random_over", "any", uses_neighbors=False)
def _random_over(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import RandomOverSampler

    return RandomOverSampler(sampling_strategy=ratio, random_state=seed)


@_register("random_under", "any", uses_neighbors=False)
def _random_under(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.under_sampling import RandomUnderSampler

    return RandomUnderSampler(sampling_strategy=ratio, random_state=seed)


@_register("smote", "numeric")
def _smote(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import SMOTE

    return SMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


@_register("smotenc", "mixed")
def _smotenc(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import SMOTENC

    return SMOTENC(categorical_features=np.flatnonzero(categorical).tolist(), sampling_strategy=ratio, k_neighbors=k, random_state=seed)


@_register("smoten", "categorical")
def _smoten(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import SMOTEN

    return SMOTEN(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


@_register("borderline_smote", "numeric")
def _borderline(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import BorderlineSMOTE

    return BorderlineSMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


@_register("svm_smote", "numeric")
def _svm_smote(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import SVMSMOTE

    return SVMSMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


@_register("kmeans_smote", "numeric")
def _kmeans_smote(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import KMeansSMOTE

    # A low balance threshold keeps clusters with few minority rows eligible at 1-5% prevalence.
    return KMeansSMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed, cluster_balance_threshold=0.01)


@_register("adasyn", "numeric")
def _adasyn(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.over_sampling import ADASYN

    return ADASYN(sampling_strategy=ratio, n_neighbors=k, random_state=seed)


def _smote_for(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    """The oversampling half of SMOTE+ENN/Tomek: SMOTENC when there are categorical columns."""
    if categorical.any() and not categorical.all():
        logger.info("categorical columns present: the SMOTE step uses SMOTENC so categories stay valid")
        return _smotenc(ratio, k, seed, categorical)
    return _smote(ratio, k, seed, categorical)


@_register("smote_enn", "any")
def _smote_enn(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.combine import SMOTEENN

    return SMOTEENN(sampling_strategy=ratio, smote=_smote_for(ratio, k, seed, categorical), random_state=seed)


@_register("smote_tomek", "any")
def _smote_tomek(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    from imblearn.combine import SMOTETomek

    return SMOTETomek(sampling_strategy=ratio, smote=_smote_for(ratio, k, seed, categorical), random_state=seed)


@_register("mlsmote", "any")
def _mlsmote(ratio: float, k: int, seed: int, categorical: np.ndarray) -> Any:
    return None  # not an imblearn sampler: handled by resample() itself


@dataclass
class ResampleResult:
    x: np.ndarray  # compact rows after resampling: real rows kept, then copies and new rows
    y: np.ndarray  # (n', L) uint8
    synthetic: np.ndarray  # (n',) bool: rows that are not one of the real training rows
    duplicated: np.ndarray  # (n',) bool: extra copies of real rows (random_over)
    provenance: dict[str, Any] = field(default_factory=dict)


def _row_keys(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(np.round(x, 9))
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def row_provenance(
    real: np.ndarray, out: np.ndarray, y_out: np.ndarray, label_names: Sequence[str], *, method: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Which output rows are real, extra copies of real rows, or new; counts per label."""
    keys = _row_keys(out)
    real_keys, real_counts = np.unique(_row_keys(real), return_counts=True)
    pos = np.searchsorted(real_keys, keys)
    pos = np.minimum(pos, len(real_keys) - 1)
    is_real = real_keys[pos] == keys
    multiplicity = np.where(is_real, real_counts[pos], 0)  # how often the row occurs in the input
    # Occurrence number of each output row among equal rows: the first `multiplicity` of them
    # are the real rows themselves, later ones are copies (the input may hold duplicates too).
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    occurrence = np.empty(len(keys), dtype=np.int64)
    occurrence[order] = np.arange(len(keys)) - group_start
    kept = is_real & (occurrence < multiplicity)
    duplicated = is_real & ~kept
    synthetic = ~is_real
    per_label = {}
    for j, name in enumerate(label_names):
        pos = y_out[:, j] == 1
        per_label[name] = {
            "real_positive": int((kept & pos).sum()), "real_negative": int((kept & ~pos).sum()),
            "duplicated_positive": int((duplicated & pos).sum()), "duplicated_negative": int((duplicated & ~pos).sum()),
            "synthetic_positive": int((synthetic & pos).sum()), "synthetic_negative": int((synthetic & ~pos).sum()),
        }
    provenance = {
        "method": method,
        "rows": {"real": int(kept.sum()), "real_removed": int(len(real) - kept.sum()),
                 "duplicated": int(duplicated.sum()), "synthetic": int(synthetic.sum())},
        "per_label": per_label,
    }
    return synthetic, duplicated, provenance


def _check_columns(method: str, spec: ResamplerSpec, categorical: np.ndarray, names: Sequence[str]) -> None:
    cat_names = [n for n, c in zip(names, categorical) if c]
    if spec.columns == "numeric" and categorical.any():
        shown = ", ".join(cat_names[:6]) + (", ..." if len(cat_names) > 6 else "")
        raise UserError(
            f"--resample {method} interpolates every column, which makes impossible rows from the categorical / "
            f"yes-no / missing-indicator columns ({shown}); use --resample smotenc (or random_over)"
        )
    if spec.columns == "mixed" and not categorical.any():
        raise UserError(f"--resample {method} needs categorical columns and there are none; use --resample smote")
    if spec.columns == "mixed" and categorical.all():
        raise UserError(f"--resample {method} needs numeric columns and every column is categorical; use --resample smoten")
    if spec.columns == "categorical" and not categorical.all():
        raise UserError(f"--resample {method} works on all-categorical data and there are numeric columns; use --resample smotenc")


def resample(
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str,
    ratio: float,
    k_neighbors: int,
    categorical: Sequence[bool],
    column_names: Sequence[str],
    label_names: Sequence[str],
    seed: int = 0,
) -> ResampleResult:
    """Resample the compact training matrix ``x`` (n, c) with labels ``y`` (n, L)."""
    spec = RESAMPLERS.get(method)
    categorical = np.asarray(categorical, dtype=bool)
    y = np.asarray(y, dtype=np.uint8).reshape(len(y), -1)
    started = time.perf_counter()
    if method == "mlsmote":
        from .mlsmote import mlsmote

        made = mlsmote(x, y, categorical=categorical, k_neighbors=k_neighbors, ratio=ratio, seed=seed, label_names=label_names)
        out_x, out_y = np.vstack([x, made.x]), np.vstack([y, made.y]).astype(np.uint8)
    else:
        if y.shape[1] > 1:
            raise UserError(
                f"--resample {method} works on one outcome and this task has {y.shape[1]} labels; "
                "use --resample mlsmote for multi-label data"
            )
        _check_columns(method, spec, categorical, column_names)
        n_pos = int(y[:, 0].sum())
        n_neg = len(y) - n_pos
        minority = min(n_pos, n_neg)
        current = minority / max(n_pos, n_neg)
        if ratio <= current:
            raise UserError(
                f"--resample_ratio {ratio:g} is not above the training split's current minority/majority ratio "
                f"{current:.3f} for '{label_names[0]}'; pick a larger ratio (e.g. 0.25 or 1.0)"
            )
        if spec.uses_neighbors and minority <= k_neighbors:
            raise UserError(
                f"label '{label_names[0]}' has {minority} minority rows in the training split; --resample {method} "
                f"needs more than --resample_k_neighbors ({k_neighbors}): lower it to at most {minority - 1}, "
                "or use --resample random_over"
            )
        sampler = spec.build(ratio, k_neighbors, seed, categorical)
        try:
            out_x, out_y = sampler.fit_resample(x, y[:, 0])
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"--resample {method} failed on this training split ({first}); try --resample smote or random_over") from None
        out_y = np.asarray(out_y, dtype=np.uint8)[:, None]
    synthetic, duplicated, provenance = row_provenance(x, out_x, out_y, label_names, method=method)
    provenance.update(ratio=ratio, k_neighbors=k_neighbors, seconds=round(time.perf_counter() - started, 3))
    return ResampleResult(x=np.asarray(out_x, dtype=np.float64), y=out_y, synthetic=synthetic,
                          duplicated=duplicated, provenance=provenance)
