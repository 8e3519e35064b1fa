"""Stratified bootstrap intervals for the held-out metrics, vectorised over resamples.

A resample draws rows with replacement within strata, as many as each stratum has:

- a label's own metrics: its positives and its negatives, so every resample keeps the label's
  positive count (with 37 positives, the intervals describe 37-positive test sets, not sets
  where chance left 30 or 45);
- macro metrics (several labels): the rows grouped by the rarest label they are positive for
  (or none), which keeps the rare labels' counts and nearly keeps the others'. (Grouping by the
  full label pattern would freeze the many patterns held by a single row.)

The same resamples serve every model, so a difference between two models is a paired
bootstrap. Per label and resample: AUROC (Mann-Whitney with mid-ranks for ties: resamples repeat
rows, so ties are the rule), AUPRC (average precision over distinct thresholds, as
scikit-learn's ``average_precision_score``), and precision, recall and F1 at the model's fixed
thresholds. Macro values average the labels within each resample. Intervals are percentile
intervals. Resamples are drawn and scored in chunks of about :data:`CHUNK_CELLS` (resample, row)
cells, so memory stays bounded on large test splits.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["label_strata", "macro_strata", "resamples", "bootstrap_metrics", "bootstrap_report", "CHUNK_CELLS", "METRICS"]

CHUNK_CELLS = 4_000_000
METRICS = ("auroc", "auprc", "f1", "precision", "recall")


def label_strata(y: np.ndarray, j: int) -> np.ndarray:
    """Label j's positives (1) and negatives (0)."""
    return np.asarray(y)[:, j].astype(np.int64)


def macro_strata(y: np.ndarray) -> np.ndarray:
    """Each row's rarest positive label (rarest by this split's counts), or L for a row with none."""
    y = np.asarray(y).astype(bool)
    by_rarity = np.argsort(y.sum(axis=0), kind="stable")  # rarest first
    ordered = y[:, by_rarity]
    first = np.argmax(ordered, axis=1)
    return np.where(ordered.any(axis=1), by_rarity[first], y.shape[1]).astype(np.int64)


def resamples(strata: np.ndarray, n_boot: int, seed: int, *, chunk: int) -> Iterator[np.ndarray]:
    """(chunk, n) index arrays, ``n_boot`` rows in all: each stratum's rows drawn with replacement,
    as many as it has. Resample b depends only on (strata, seed, b), not on the chunking."""
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    n = len(strata)
    for lo in range(0, n_boot, chunk):
        out = np.empty((min(chunk, n_boot - lo), n), dtype=np.int64)
        for row, b in enumerate(range(lo, lo + len(out))):
            rng = np.random.default_rng([seed, b])
            start = 0
            for rows in groups:
                out[row, start:start + len(rows)] = rows[rng.integers(0, len(rows), size=len(rows))]
                start += len(rows)
        yield out


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(n, B) how many times each row is in each resample (row-major by row: the cumulative sums
    below then run down contiguous rows, vectorised across resamples)."""
    b = len(indices)
    flat = (indices * b + np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=n * b).reshape(n, b).astype(np.float32)


def _ranking_metrics(y: np.ndarray, s: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of one label in each resample, given as row counts (n, B).

    The rows are sorted by score once; a resample's curve is then cumulative sums of its counts
    at each distinct score (a repeated row is a tie with itself), with no sort per resample.
    Counts are float32, exact for integers below 2^24 rows.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted, positive = s[order], y[order]
    ends = np.flatnonzero(np.append(s_sorted[:-1] != s_sorted[1:], True))  # last row of each distinct score
    c = counts[order]
    tp = np.cumsum(np.where(positive[:, None], c, 0.0), axis=0, dtype=np.float64)[ends]
    fp = np.cumsum(np.where(positive[:, None], 0.0, c), axis=0, dtype=np.float64)[ends]
    n_pos, n_neg = tp[-1], fp[-1]
    d_tp = np.diff(tp, axis=0, prepend=0.0)
    d_fp = np.diff(fp, axis=0, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        auprc = (d_tp * precision).sum(axis=0) / n_pos
        # each negative counts the positives above it, half of those tied with it
        auroc = (d_fp * (tp - d_tp / 2)).sum(axis=0) / (n_pos * n_neg)
    return np.where((n_pos == 0) | (n_neg == 0), np.nan, auroc), np.where(n_pos == 0, np.nan, auprc)


def bootstrap_metrics(y: np.ndarray, prob: np.ndarray, thresholds: Sequence[float], indices: np.ndarray,
                      labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Per metric, the (B, len(labels)) values of the given labels over the resamples ``indices`` (B, n)."""
    y = np.asarray(y).reshape(len(y), -1).astype(bool)
    prob = np.asarray(prob, dtype=np.float64).reshape(len(y), -1)
    counts = _counts(indices, len(y))
    out = {key: np.empty((len(indices), len(labels))) for key in METRICS}
    for column, j in enumerate(labels):
        out["auroc"][:, column], out["auprc"][:, column] = _ranking_metrics(y[:, j], prob[:, j], counts)
        predicted = prob[:, j] >= thresholds[j]
        # integer counts, exact in float32; divided in float64
        tp, n_pred, n_true = (np.asarray(mask.astype(np.float32) @ counts, dtype=np.float64)
                              for mask in (y[:, j] & predicted, predicted, y[:, j]))
        out["precision"][:, column] = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)
        out["recall"][:, column] = np.divide(tp, n_true, out=np.zeros_like(tp), where=n_true > 0)
        out["f1"][:, column] = np.divide(2 * tp, n_pred + n_true, out=np.zeros_like(tp), where=(n_pred + n_true) > 0)
    return out


def _interval(values: np.ndarray, level: float) -> list[float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return [math.nan, math.nan]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def _draws(y: np.ndarray, scored: Mapping[str, tuple[np.ndarray, Sequence[float]]], strata: np.ndarray, labels: Sequence[int],
           n_boot: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per model and metric the (n_boot, len(labels)) values, the models scored on the same resamples."""
    chunk = max(1, CHUNK_CELLS // max(len(y), 1))
    parts: dict[str, list[dict[str, np.ndarray]]] = {model: [] for model in scored}
    for indices in resamples(strata, n_boot, seed, chunk=chunk):
        for model, (prob, thresholds) in scored.items():
            parts[model].append(bootstrap_metrics(y, prob, thresholds, indices, labels))
    return {model: {key: np.concatenate([p[key] for p in chunks]) for key in METRICS} for model, chunks in parts.items()}


def bootstrap_report(y: np.ndarray, scored: Mapping[str, tuple[np.ndarray, Sequence[float]]], label_names: Sequence[str], *,
                     n_boot: int, seed: int, level: float = 0.95, point: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Intervals per model, label and metric (and macro), and the paired difference in macro
    AUPRC between the network and the better baseline (by point estimate).

    ``scored``: model -> (probabilities (n, L), thresholds (L,)); ``point``: model -> its
    :func:`imbalance.metrics.label_metrics` report, whose macro AUPRC picks the better baseline.
    """
    y = np.asarray(y).reshape(len(y), -1)
    n_labels = y.shape[1]
    per_label = [_draws(y, scored, label_strata(y, j), [j], n_boot, seed + j) for j in range(n_labels)]
    joint = per_label[0] if n_labels == 1 else _draws(y, scored, macro_strata(y), range(n_labels), n_boot, seed + n_labels)
    models = {}
    for model in scored:
        labels = {name: {key: _interval(per_label[j][model][key][:, 0], level) for key in METRICS} for j, name in enumerate(label_names)}
        macro = {key: _interval(np.nanmean(joint[model][key], axis=1), level) for key in METRICS}
        models[model] = {"labels": labels, "macro": macro}
    report: dict[str, Any] = {"n_boot": n_boot, "level": level, "models": models,
                              "stratified_by": "each label's positives and negatives" + (
                                  "; macro: each row's rarest positive label" if n_labels > 1 else "")}
    baselines = [m for m in scored if m != "network"]
    if "network" in scored and baselines:
        better = max(baselines, key=lambda m: point[m]["macro"]["auprc"])
        difference = np.nanmean(joint["network"]["auprc"], axis=1) - np.nanmean(joint[better]["auprc"], axis=1)
        report["paired"] = {
            "metric": "macro auprc", "baseline": better,
            "difference": float(point["network"]["macro"]["auprc"] - point[better]["macro"]["auprc"]),
            "interval": _interval(difference, level),
            "share_network_better": float(np.mean(difference[np.isfinite(difference)] > 0)),
        }
    return report
