"""Per-label evaluation report for binary / multi-label scores at given decision thresholds.

Rule used everywhere (as in :mod:`imbalance.thresholds`): a row is predicted positive when
``score >= threshold``.

Threshold-dependent metrics (precision, recall, F1, specificity, balanced accuracy) come
from exact confusion counts; precision, recall and F1 use ``zero_division=0`` like
scikit-learn (so no positive predictions -> precision 0 and F1 0), and so does
specificity.  Threshold-free metrics come from torchmetrics' functional API
(``binary_auroc`` and ``binary_average_precision`` with ``thresholds=None``: exact, and
average precision is the step-wise sum identical to sklearn's ``average_precision_score``).
Both are invariant to the order of the rows, so each label's rows are handed to
torchmetrics already sorted by score (one fast sort, see
:func:`imbalance.thresholds._sort_by_score`), which makes torchmetrics' own internal sort
several times cheaper.  Note that torchmetrics treats scores outside [0, 1] as logits and
applies a sigmoid (order preserving, but extreme logits may saturate into ties), and
accumulates the curve in float32 (agreement with sklearn ~1e-7 at 1M rows).
While torchmetrics runs, torch's intra-op thread count is capped at 1 and restored
afterwards (process-wide; see ``torch_threads``): its many small ops are far slower with
OpenMP barriers on a busy machine.

A label whose ``y_true`` holds a single class has ``nan`` AUROC, AUPRC and balanced
accuracy; the macro averages ignore ``nan`` labels (``nan`` only when every label is).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from .thresholds import _as_label_rows, _sort_by_score, _to_numpy

__all__ = ["binary_counts", "label_metrics", "label_reports", "torch_threads"]

_MACRO_KEYS = ("precision", "recall", "f1", "auroc", "auprc", "balanced_accuracy")

# torch intra-op threads while torchmetrics runs (see torch_threads).
_TORCHMETRICS_THREADS = 1


def _thresholds_vector(thresholds: Any, n_labels: int) -> np.ndarray:
    """Scalar or ``(L,)`` thresholds -> float64 ``(L,)``."""
    thr = _to_numpy(thresholds, "thresholds")
    if thr.dtype.kind not in "biuf":
        raise ValueError(f"thresholds must be numeric, got dtype {thr.dtype}")
    thr = np.atleast_1d(thr).astype(np.float64)
    if thr.ndim != 1 or thr.shape[0] not in (1, n_labels):
        raise ValueError(
            f"thresholds must be a scalar or have one value per label ({n_labels}), "
            f"got shape {np.shape(thresholds)}"
        )
    if np.isnan(thr).any():
        raise ValueError("thresholds must not be nan")
    return np.broadcast_to(thr, (n_labels,)).astype(np.float64)


def _counts_rows(y: np.ndarray, s: np.ndarray, thr: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts from label-major ``y (L, n) bool``, ``s (L, n)``, ``thr (L,)``."""
    n = s.shape[1]
    pred = s >= thr[:, None]
    n_pred = np.count_nonzero(pred, axis=1).astype(np.int64)
    n_true = np.count_nonzero(y, axis=1).astype(np.int64)
    pred &= y
    tp = np.count_nonzero(pred, axis=1).astype(np.int64)
    fp = n_pred - tp
    fn = n_true - tp
    tn = n - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def binary_counts(y_true: Any, scores: Any, thresholds: Any) -> dict[str, np.ndarray]:
    """Per-label confusion counts at ``thresholds`` (positive when ``score >= threshold``).

    Args:
        y_true: ``(n,)`` or ``(n, L)`` 0/1 labels (numpy, array-like or torch).
        scores: same shape, finite scores.
        thresholds: scalar or ``(L,)``.

    Returns:
        ``{"tp", "fp", "fn", "tn"}``, each an int64 array of shape ``(L,)`` (L=1 for 1-D input).
    """
    y, s = _as_label_rows(y_true, scores)
    return _counts_rows(y, s, _thresholds_vector(thresholds, s.shape[0]))


def _div0(num: float, den: float) -> float:
    """``num / den`` with 0.0 when ``den == 0`` (sklearn's zero_division=0)."""
    return float(num) / float(den) if den else 0.0


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(sum(kept) / len(kept)) if kept else float("nan")


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Temporarily cap torch's intra-op CPU threads (process-wide), restoring them afterwards.

    torchmetrics runs ~30 small element-wise ops per curve; on a busy machine every one of
    them waits at an OpenMP barrier for a descheduled worker.  Measured on a 2-core VM shared
    with another CPU-bound process, 1M x 20 took ~14 s with 2 threads and ~3.5 s with 1.
    """
    before = torch.get_num_threads()
    if before <= n_threads:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _ranking_metrics(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(AUROC, average precision) of one label via torchmetrics; both classes must be present."""
    srt, ys = _sort_by_score(y, s)  # row order does not change either metric
    preds = torch.from_numpy(srt)
    target = torch.from_numpy(ys)
    auroc = binary_auroc(preds, target, thresholds=None, validate_args=False)
    auprc = binary_average_precision(preds, target, thresholds=None, validate_args=False)
    return float(auroc), float(auprc)


def label_metrics(y_true: Any, scores: Any, thresholds: Any, label_names: list[str]) -> dict:
    """Per-label report at the given thresholds plus an unweighted macro average.

    Args:
        y_true: ``(n,)`` or ``(n, L)`` 0/1 labels (numpy, array-like or torch).
        scores: same shape, finite scores (probabilities).
        thresholds: scalar or ``(L,)``; positive when ``score >= threshold``.
        label_names: ``L`` distinct names, in column order.

    Returns:
        ``{"labels": {name: {...}}, "macro": {...}}`` of plain Python ints / floats
        (JSON-serialisable; undefined values are ``float('nan')``).  Each label holds
        threshold, n, n_pos_true, n_pos_pred, prevalence, tp, fp, fn, tn, precision,
        recall, f1, specificity, balanced_accuracy, auroc, auprc.  "macro" holds the
        nan-ignoring mean over labels of precision, recall, f1, auroc, auprc and
        balanced_accuracy, and n_pos_pred summed over labels.
    """
    return label_reports(y_true, scores, {"report": thresholds}, label_names)["report"]


def label_reports(y_true: Any, scores: Any, thresholds: dict[str, Any], label_names: list[str]) -> dict[str, dict]:
    """:func:`label_metrics` at several threshold sets (name -> thresholds), one report each.

    AUROC and AUPRC do not depend on the thresholds, so they are computed once per label and
    shared; the validation of every epoch reports at 0.5 and at tuned thresholds this way.
    """
    y, s = _as_label_rows(y_true, scores)
    n_labels = s.shape[0]
    names = list(label_names)
    if len(names) != n_labels:
        raise ValueError(f"got {len(names)} label names for {n_labels} labels")
    if len(set(names)) != len(names):
        raise ValueError(f"label names must be distinct, got {names}")
    ranking: dict[int, tuple[float, float]] = {}

    def ranked(j: int) -> tuple[float, float]:  # AUROC, AUPRC of label j, computed on first use
        if j not in ranking:
            ranking[j] = _ranking_metrics(y[j], s[j])
        return ranking[j]

    reports = {}
    with torch_threads(_TORCHMETRICS_THREADS):
        for key, value in thresholds.items():
            thr = _thresholds_vector(value, n_labels)
            counts = _counts_rows(y, s, thr)
            labels: dict[str, dict[str, Any]] = {}
            for j, name in enumerate(names):
                labels[name] = _one_label(y[j], s[j], float(thr[j]), {k: int(v[j]) for k, v in counts.items()},
                                          ranking=lambda j=j: ranked(j))
            macro: dict[str, Any] = {k: _nanmean([m[k] for m in labels.values()]) for k in _MACRO_KEYS}
            macro["n_pos_pred"] = int(sum(m["n_pos_pred"] for m in labels.values()))
            reports[key] = {"labels": labels, "macro": macro}
    return reports


def _one_label(
    y: np.ndarray, s: np.ndarray, threshold: float, counts: dict[str, int], ranking: Callable[[], tuple[float, float]],
) -> dict[str, Any]:
    """The report of one label from its rows (``y`` bool, ``s`` float64) and confusion counts."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    n = tp + fp + fn + tn
    n_pos = tp + fn
    n_neg = tn + fp
    precision = _div0(tp, tp + fp)
    recall = _div0(tp, n_pos)
    specificity = _div0(tn, n_neg)
    if n_pos > 0 and n_neg > 0:
        auroc, auprc = ranking()
        balanced_accuracy = (recall + specificity) / 2.0
    else:  # single class in y_true: ranking metrics and balanced accuracy are undefined
        auroc = auprc = balanced_accuracy = float("nan")
    return {
        "threshold": threshold,
        "n": n,
        "n_pos_true": n_pos,
        "n_pos_pred": tp + fp,
        "prevalence": n_pos / n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": _div0(2 * tp, 2 * tp + fp + fn),
        "specificity": specificity,
        "balanced_accuracy": float(balanced_accuracy),
        "auroc": auroc,
        "auprc": auprc,
    }
