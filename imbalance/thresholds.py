"""Exact per-label decision-threshold search.

Rule used everywhere: a row is predicted positive when ``score >= threshold``.

For every label the candidate thresholds are exactly the distinct score values of that
label, so :func:`optimize_thresholds` returns the same answer as a brute-force search that
evaluates the objective at every distinct score, but in O(n log n) per label:

1. the (n, L) inputs are copied once into label-major (L, n) arrays (cache-blocked);
2. per label, ONE sort yields the distinct candidates ``u_0 < ... < u_{U-1}`` together
   with tp(u_k) = #positives with score >= u_k and fp(u_k) likewise: for scores with
   ``|s| < 2`` (probabilities) the 0/1 label is packed into the lowest bit of an
   order-preserving int64 key of the score, so sorting the keys carries the labels along
   (no argsort/gather) and a cumulative sum over the sorted label bits, read at the first
   position of each run of tied scores, gives the counts; other scores use a sort of all
   scores plus a sort + ``searchsorted`` of the minority class;
3. the objective is evaluated on the (tp, fp, fn, tn) vectors of all candidates at once
   and the best one is taken.

Tie-break: when several thresholds reach the best objective value, the **highest**
threshold (the one predicting the fewest positives) is returned.  Values are treated as
tied when they are within a few ulps of the maximum (``16 * eps * |best|``); this only
absorbs floating-point rounding (f1, f2, balanced accuracy and Youden's J are computed
with a single division of exact integers, so equal values are bit-identical anyway; MCC
involves a square root), and is far below the gap between distinct objective values for
any realistic row count.

Objectives (``--threshold_metric``): ``f1``, ``f2``, ``balanced_accuracy``, ``youden_j``,
``mcc``, and with a parameter:

- ``fbeta:B``: F-beta (B > 1 favours recall);
- ``cost:C``: the least cost when a missed positive costs C false alarms (C x fn + fp);
- ``recall_at_precision:P``: the highest recall with precision >= P;
- ``precision_at_recall:R``: the highest precision with recall >= R;
- ``specificity_at_recall:R``: the highest specificity with recall >= R.

A constraint no threshold meets (on these rows) is infeasible: the label gets the threshold that
comes closest (the highest precision for ``recall_at_precision``, the highest recall for the
others), a ``nan`` objective, and one warning per call names the labels and the fallback.

Labels whose ``y_true`` has no positives or no negatives cannot be tuned: they get the
``fallback`` threshold and a ``nan`` objective, and a warning names the label.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .errors import UserError
from .registry import Registry

__all__ = ["THRESHOLD_OBJECTIVES", "PARAMETRIC_OBJECTIVES", "ThresholdObjective", "threshold_objective",
           "threshold_metric_forms", "optimize_thresholds", "best_with_floor", "MATCHED_PAIRS"]

logger = logging.getLogger(__name__)

Objective = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: name -> ``fn(tp, fp, fn, tn) -> objective`` (float64 arrays of one shape, vectorised;
#: the objective is 0 wherever it is undefined).
THRESHOLD_OBJECTIVES: Registry[Objective] = Registry("threshold metric")

# Relative tolerance (in units of machine epsilon) used to decide ties between objective values.
_TIE_ULPS = 16.0


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _f_beta(beta2: float) -> Objective:
    def objective(tp, fp, fn, tn):  # noqa: ARG001 - tn unused by definition
        tp = np.asarray(tp, dtype=np.float64)
        # (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp): one division of exact integers.
        return _safe_div((1.0 + beta2) * tp, (1.0 + beta2) * tp + beta2 * np.asarray(fn, np.float64) + fp)

    return objective


THRESHOLD_OBJECTIVES.register("f1")(_f_beta(1.0))
THRESHOLD_OBJECTIVES.register("f2")(_f_beta(4.0))


@THRESHOLD_OBJECTIVES.register("balanced_accuracy")
def _balanced_accuracy(tp, fp, fn, tn):
    """(recall + specificity) / 2 = (tp*N + tn*P) / (2*P*N); 0 unless both classes are present."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    pos, neg = tp + fn, tn + fp
    return _safe_div(tp * neg + tn * pos, 2.0 * pos * neg)


@THRESHOLD_OBJECTIVES.register("youden_j")
def _youden_j(tp, fp, fn, tn):
    """recall + specificity - 1 = (tp*N - fp*P) / (P*N); 0 unless both classes are present."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    pos, neg = tp + fn, tn + fp
    return _safe_div(tp * neg - fp * pos, pos * neg)


@THRESHOLD_OBJECTIVES.register("mcc")
def _mcc(tp, fp, fn, tn):
    """Matthews correlation coefficient; 0 where the denominator is 0 (as sklearn)."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tn + fn)) * np.sqrt((tp + fn) * (tn + fp))
    return _safe_div(tp * tn - fp * fn, den)


def _recall(tp, fp, fn, tn):  # noqa: ARG001
    return _safe_div(tp, np.asarray(tp, np.float64) + fn)


def _precision(tp, fp, fn, tn):  # noqa: ARG001
    return _safe_div(tp, np.asarray(tp, np.float64) + fp)


def _specificity(tp, fp, fn, tn):  # noqa: ARG001
    return _safe_div(tn, np.asarray(tn, np.float64) + fp)


def _at_least(part: np.ndarray, whole: np.ndarray, share: float) -> np.ndarray:
    """part / whole >= share, compared on counts (whole > 0), so 4 of 5 meets 0.8 exactly."""
    part, whole = np.asarray(part, np.float64), np.asarray(whole, np.float64)
    return (whole > 0) & (part >= share * whole - 1e-9 * whole)


@dataclass(frozen=True)
class ThresholdObjective:
    """What a threshold maximises, ``value(tp, fp, fn, tn)``; with a constraint, only thresholds
    where ``feasible`` holds count, and ``closest`` is maximised when none does."""

    name: str
    value: Objective
    feasible: Optional[Callable[..., np.ndarray]] = None
    closest: Optional[Objective] = None
    closest_text: str = ""


@dataclass(frozen=True)
class ParametricObjective:
    form: str  # how it is written, e.g. recall_at_precision:P
    build: Callable[[float], ThresholdObjective]
    valid: Callable[[float], bool]
    rule: str  # what the parameter must be


def _share(x: float) -> bool:
    return 0.0 < x <= 1.0


def _positive(x: float) -> bool:
    return x > 0.0 and math.isfinite(x)


#: name -> objective taking a parameter, written ``name:value``.
PARAMETRIC_OBJECTIVES: Registry[ParametricObjective] = Registry("threshold metric")
PARAMETRIC_OBJECTIVES.register("fbeta")(ParametricObjective(
    "fbeta:B", lambda b: ThresholdObjective(f"fbeta:{b:g}", _f_beta(b * b)), _positive, "B > 0"))
PARAMETRIC_OBJECTIVES.register("cost")(ParametricObjective(
    "cost:C", lambda c: ThresholdObjective(f"cost:{c:g}", lambda tp, fp, fn, tn: -(c * np.asarray(fn, np.float64) + fp)),
    _positive, "C > 0 (a missed positive costs C false alarms)"))


def _precision_at_least(p: float) -> Callable[..., np.ndarray]:
    return lambda tp, fp, fn, tn: _at_least(tp, np.asarray(tp, np.float64) + fp, p)


def _recall_at_least(r: float) -> Callable[..., np.ndarray]:
    return lambda tp, fp, fn, tn: _at_least(tp, np.asarray(tp, np.float64) + fn, r)


def _constrained(form: str, value: Objective, constraint: Callable[[float], Callable[..., np.ndarray]], closest: Objective,
                 closest_text: str) -> ParametricObjective:
    """``name:X``: the best ``value`` among thresholds meeting ``constraint(X)`` (X a share in (0, 1])."""
    name, letter = form.split(":")
    return ParametricObjective(form, lambda x: ThresholdObjective(f"{name}:{x:g}", value, constraint(x), closest, closest_text),
                               _share, f"{letter} in (0, 1]")


for _form, _value, _constraint, _closest, _text in (
    ("recall_at_precision:P", _recall, _precision_at_least, _precision, "the threshold with the highest precision"),
    ("precision_at_recall:R", _precision, _recall_at_least, _recall, "the threshold with the highest recall"),
    ("specificity_at_recall:R", _specificity, _recall_at_least, _recall, "the threshold with the highest recall"),
):
    PARAMETRIC_OBJECTIVES.register(_form.split(":")[0])(_constrained(_form, _value, _constraint, _closest, _text))


def threshold_metric_forms() -> list[str]:
    """Every way to write ``--threshold_metric``."""
    return [*THRESHOLD_OBJECTIVES.names(), *(PARAMETRIC_OBJECTIVES.get(n).form for n in PARAMETRIC_OBJECTIVES.names())]


def threshold_objective(metric: str) -> ThresholdObjective:
    """``f1`` or ``recall_at_precision:0.9`` as a :class:`ThresholdObjective`; a UserError names
    what is wrong and the valid forms."""
    name, sep, raw = str(metric).partition(":")
    forms = ", ".join(threshold_metric_forms())
    if not sep:
        if name in PARAMETRIC_OBJECTIVES:
            raise UserError(f"--threshold_metric {metric}: needs a value, written {PARAMETRIC_OBJECTIVES.get(name).form}")
        if name not in THRESHOLD_OBJECTIVES:
            raise UserError(f"--threshold_metric: unknown threshold metric '{metric}'; choose from {forms}")
        return ThresholdObjective(name, THRESHOLD_OBJECTIVES.get(name))
    if name not in PARAMETRIC_OBJECTIVES:
        raise UserError(f"--threshold_metric: unknown threshold metric '{metric}'; choose from {forms}")
    spec = PARAMETRIC_OBJECTIVES.get(name)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and spec.valid(value)):
        raise UserError(f"--threshold_metric {metric}: {spec.form} needs {spec.rule}, got '{raw}'")
    return spec.build(value)


def _to_numpy(x: Any, what: str) -> np.ndarray:
    """Array-like or torch tensor -> numpy array (no copy when possible)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{what} cannot be converted to an array: {exc}") from exc


_TRANSPOSE_BLOCK = 4096  # rows per block when transposing (n, L) -> (L, n)


def _label_major(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(n, L)`` array -> C-contiguous ``(L, n)`` array of ``dtype``.

    Copies in blocks of rows so the transpose stays in cache (~3x faster than
    ``np.ascontiguousarray(a.T)`` for a C-ordered 1M x 20 matrix).
    """
    if a.flags.f_contiguous:
        return np.ascontiguousarray(a.T, dtype=dtype)
    n = a.shape[0]
    out = np.empty((a.shape[1], n), dtype=dtype)
    for i in range(0, n, _TRANSPOSE_BLOCK):
        out[:, i : i + _TRANSPOSE_BLOCK] = a[i : i + _TRANSPOSE_BLOCK].T
    return out


def _as_label_rows(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs and return label-major copies ``(y (L, n) bool, scores (L, n) float64)``.

    ``y_true`` and ``scores`` are ``(n,)`` (one label) or ``(n, L)``; numpy, array-like or
    torch tensors.  Raises ValueError on mismatched shapes, empty input, non-finite scores
    or labels other than 0/1.
    """
    y = _to_numpy(y_true, "y_true")
    s = _to_numpy(scores, "scores")
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same shape, got {y.shape} and {s.shape}")
    if s.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (n,) or 2-D (n, L), got shape {s.shape}")
    if s.size == 0:
        raise ValueError(f"scores must have at least one row and one label, got shape {s.shape}")
    if s.dtype.kind not in "biuf":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y_true must be numeric 0/1, got dtype {y.dtype}")
    if s.ndim == 1:
        s_rows = np.ascontiguousarray(s[None, :], dtype=np.float64)
        y_rows = np.ascontiguousarray(y[None, :])
    else:
        s_rows = _label_major(s, np.float64)
        y_rows = _label_major(y, y.dtype)
    finite = np.isfinite(s_rows)
    if not finite.all():
        label, row = np.argwhere(~finite)[0]
        raise ValueError(
            f"scores must be finite; found {s_rows[label, row]} at row {row}, label {label}"
        )
    if y_rows.dtype != np.bool_:
        ok = (y_rows == 0) | (y_rows == 1)  # nan fails both
        if not ok.all():
            label, row = np.argwhere(~ok)[0]
            raise ValueError(
                f"y_true must contain only 0 and 1; found {y_rows[label, row]} at row {row}, label {label}"
            )
        y_rows = y_rows != 0
    return y_rows, s_rows


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Indices where a new run of equal values starts in a sorted 1-D array."""
    is_start = np.empty(sorted_values.shape[0], dtype=bool)
    is_start[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=is_start[1:])
    return np.flatnonzero(is_start)


# |score| < 2 means the float64 bit pattern (as int64) needs at most 62 bits, which leaves
# room to pack the 0/1 label into the lowest bit of an order-preserving int64 sort key.
_PACKABLE_LIMIT = 2.0
_MAGNITUDE_BITS = np.int64(0x7FFFFFFFFFFFFFFF)


def _packable(s: np.ndarray) -> bool:
    """Whether every score fits the packed int64 sort key (``|s| < 2``)."""
    return bool(s.min() > -_PACKABLE_LIMIT and s.max() < _PACKABLE_LIMIT)


def _sort_by_score(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores sorted ascending (float64, -0.0 turned into 0.0) and the 0/1 labels (int64) in that order.

    For ``|s| < 2`` (probabilities) this is ONE sort of ``key = order_preserving_int(s) * 2 + y``
    (the float64 bit pattern needs at most 62 bits there), so the labels ride along with the
    scores without an argsort + gather; otherwise it falls back to ``np.argsort``.
    """
    if not _packable(s):
        order = np.argsort(s)
        return s[order] + 0.0, y[order].astype(np.int64)
    key = (s + 0.0).view(np.int64)  # + 0.0 turns -0.0 into 0.0 (they compare equal) and copies
    has_negative = bool(s.min() < 0)
    if has_negative:  # negative floats: flip the magnitude bits to reverse their order
        key ^= (key >> 63) & _MAGNITUDE_BITS
    key <<= 1
    key |= y
    key.sort()
    labels = key & 1
    key >>= 1
    if has_negative:
        key ^= (key >> 63) & _MAGNITUDE_BITS
    return key.view(np.float64), labels


def _label_curve_packed(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_label_curve` via :func:`_sort_by_score` (fast for ``|s| < 2``)."""
    n = s.shape[0]
    srt, ys = _sort_by_score(y, s)
    starts = _run_starts(srt)
    uniq = srt[starts]
    cum_pos = np.cumsum(ys)
    # positives at positions >= start = all positives - positives strictly before start
    tp = cum_pos[-1] - cum_pos[starts] + ys[starts]
    fp = (n - starts) - tp
    return uniq, tp, fp


def _label_curve_general(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_label_curve` for any finite scores (no packing)."""
    n = s.shape[0]
    srt = np.sort(s)
    starts = _run_starts(srt)
    uniq = srt[starts] + 0.0  # no -0.0 thresholds
    n_ge = n - starts  # rows with score >= uniq[k]
    n_pos = int(np.count_nonzero(y))
    minority_is_pos = n_pos <= n - n_pos
    # Scores of the minority class, sorted so the searchsorted queries are cache friendly.
    sub = np.sort(s[y] if minority_is_pos else s[~y])
    group = np.searchsorted(uniq, sub)  # exact: every value of sub is in uniq
    per_group = np.bincount(group, minlength=uniq.shape[0])
    ge = np.cumsum(per_group[::-1])[::-1]  # minority rows with score >= uniq[k]
    if minority_is_pos:
        tp = ge
        fp = n_ge - tp
    else:
        fp = ge
        tp = n_ge - fp
    return uniq, tp, fp


def _label_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one label: distinct scores (ascending) and tp, fp (int64) when thresholding at each.

    ``y`` bool (n,), ``s`` float64 (n,), both 1-D; both classes must be present.
    """
    if _packable(s):
        return _label_curve_packed(y, s)
    return _label_curve_general(y, s)


def optimize_thresholds(
    y_true: Any, scores: Any, metric: str = "f1", fallback: float = 0.5, *, warn: bool = True,
    label_names: Optional[Sequence[str]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best per-label decision threshold for ``metric`` (rule: positive when score >= threshold).

    Args:
        y_true: ``(n,)`` or ``(n, L)`` 0/1 labels (numpy array, array-like or torch tensor).
        scores: same shape, finite scores (probabilities).
        metric: an objective (module docstring): ``f1``, ``recall_at_precision:0.9``, ...
        fallback: threshold used for labels without both classes in ``y_true``.
        warn: log a warning for such labels and for infeasible constraints (off for the
            per-epoch tuning, which would repeat it).
        label_names: how warnings name the labels (default: their index).

    Returns:
        ``(thresholds, objectives)``, both float64 of shape ``(L,)`` (L=1 for 1-D input).
        Each threshold is one of the label's distinct score values and maximises the
        objective over all of them (under its constraint, if any); among equal best values the
        highest threshold wins. Labels without positives or without negatives get
        ``fallback`` and ``nan``; labels whose constraint no threshold meets get the closest
        threshold and ``nan``.

    Raises:
        UserError: unknown or malformed ``metric``.
        ValueError: mismatched shapes, non-finite scores, labels other than 0/1.
    """
    objective = threshold_objective(metric)
    y, s = _as_label_rows(y_true, scores)  # (L, n) each
    n_labels, n = s.shape
    names = list(label_names) if label_names is not None else [f"label {j}" for j in range(n_labels)]
    thresholds = np.full(n_labels, float(fallback), dtype=np.float64)
    best = np.full(n_labels, np.nan, dtype=np.float64)
    n_pos = y.sum(axis=1, dtype=np.int64)
    infeasible = []
    for j in range(n_labels):
        p = int(n_pos[j])
        if p == 0 or p == n:
            if not warn:
                continue
            logger.warning("%s has %s in y_true; using fallback threshold %g (objective nan)",
                           names[j], "no positives" if p == 0 else "no negatives", fallback)
            continue
        uniq, tp, fp = _label_curve(y[j], s[j])
        counts = (tp.astype(np.float64), fp.astype(np.float64), (p - tp).astype(np.float64), ((n - p) - fp).astype(np.float64))
        values = np.asarray(objective.value(*counts), dtype=np.float64)
        met = True
        if objective.feasible is not None:
            ok = np.asarray(objective.feasible(*counts), dtype=bool)
            if ok.any():
                values = np.where(ok, values, -np.inf)
            else:
                met = False
                infeasible.append(names[j])
                values = np.asarray(objective.closest(*counts), dtype=np.float64)
        top = float(np.max(values))
        tied = values >= top - _TIE_ULPS * np.finfo(np.float64).eps * abs(top)
        k = uniq.shape[0] - 1 - int(np.argmax(tied[::-1]))  # highest threshold among the ties
        thresholds[j] = uniq[k]
        best[j] = values[k] if met else np.nan
    if infeasible and warn:
        logger.warning("threshold metric %s: no threshold meets the constraint for %s; using %s instead",
                       objective.name, ", ".join(infeasible), objective.closest_text)
    return thresholds, best


#: measured -> fn(tp, fp, n_pos) -> (the measured value, the held one) at every threshold
_MATCHED: dict[str, Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]] = {
    "recall": lambda tp, fp, p: (tp / p, _safe_div(tp.astype(np.float64), (tp + fp).astype(np.float64))),
    "precision": lambda tp, fp, p: (_safe_div(tp.astype(np.float64), (tp + fp).astype(np.float64)), tp / p),
}
MATCHED_PAIRS = {"recall": "precision", "precision": "recall"}


def best_with_floor(y_true: Any, scores: Any, measured: str, floors: Sequence[float]) -> np.ndarray:
    """Per label, the best ``measured`` value ("recall" or "precision") over the thresholds where
    the other one is at least ``floors[j]``: recall at a precision floor, or precision at a recall
    floor. 0 where no threshold reaches the floor (nor a floor of nan); nan for a label without
    both classes. With the floor at a threshold's own precision (recall) this compares two
    models at the same operating point."""
    y, s = _as_label_rows(y_true, scores)
    floors = np.asarray(floors, dtype=np.float64)
    if floors.shape != (y.shape[0],):
        raise ValueError(f"need one floor per label ({y.shape[0]}), got shape {floors.shape}")
    values = np.full(y.shape[0], np.nan)
    n = s.shape[1]
    for j in range(y.shape[0]):
        p = int(np.count_nonzero(y[j]))
        if p == 0 or p == n:
            continue
        _, tp, fp = _label_curve(y[j], s[j])
        measure, held = _MATCHED[measured](tp, fp, p)
        # the held value is a ratio of integers: compare with a margin for its rounding
        ok = held >= floors[j] - 1e-12
        values[j] = float(measure[ok].max()) if ok.any() else 0.0
    return values
