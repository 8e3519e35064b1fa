#!/usr/bin/env python
"""Per-epoch validation metrics: imbalance.metrics.label_metrics vs sklearn, per label.

Usage:
    python benchmarks/epoch_metrics.py            # 1M rows x 20 labels, 3 repeats (~2-3 min on 2 cores)
    python benchmarks/epoch_metrics.py --quick    # 100k rows x 5 labels (CI smoke run, ~10 s)
    python benchmarks/epoch_metrics.py --rows 500000 --labels 10 --repeats 5

Data: the same model-like generator as benchmarks/thresholds.py (prevalence 1-8% per label,
float32 ``sigmoid(1.5 * linear part + logit(prevalence))`` probabilities of a noisy linear
latent, int8 0/1 labels, both (n, L)). The per-label decision thresholds are the F1-optimal
ones from ``optimize_thresholds`` (computed once, not timed), as in a training loop that tunes
them on the validation split.

Timed end to end (median over ``--repeats`` interleaved repeats, one process):

* toolkit:   ``label_metrics(y, p, thresholds, names)`` (the full per-label report and macro
  average; precision / recall / F1 from exact counts, AUROC / AUPRC via torchmetrics);
* reference: per label, sklearn ``f1_score``, ``recall_score``, ``precision_score`` (on
  ``p >= threshold``, ``zero_division=0``), ``roc_auc_score`` and ``average_precision_score``
  (on the probabilities).

Check: the max absolute difference over all five values of all labels (must be <= 1e-6: the
toolkit's AUROC / AUPRC accumulate in float32 inside torchmetrics); PASS/FAIL printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imbalance.metrics import label_metrics  # noqa: E402
from imbalance.thresholds import optimize_thresholds  # noqa: E402

TOLERANCE = 1e-6
KEYS = ("f1", "recall", "precision", "auroc", "auprc")


def make_data(n: int, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y int8 (n, L), probabilities float32 (n, L)) from a noisy linear model, prevalence 1-8%.

    Same generator as benchmarks/thresholds.py (each script stays self-contained).
    """
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, 16), dtype=np.float32)
    prevalences = np.linspace(0.01, 0.08, n_labels)
    y = np.empty((n, n_labels), dtype=np.int8)
    probs = np.empty((n, n_labels), dtype=np.float32)
    for j, prevalence in enumerate(prevalences):
        w = rng.standard_normal(16).astype(np.float32)
        linear = features @ (w / np.linalg.norm(w))  # unit variance
        latent = linear + rng.standard_normal(n, dtype=np.float32) * np.float32(rng.uniform(0.6, 1.2))
        y[:, j] = latent > np.quantile(latent, 1.0 - prevalence)
        logit = 1.5 * linear + np.log(prevalence / (1.0 - prevalence))
        probs[:, j] = 1.0 / (1.0 + np.exp(-logit))
    return y, probs


def toolkit(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, names: list[str]) -> np.ndarray:
    report = label_metrics(y, probs, thresholds, names)
    return np.array([[report["labels"][name][key] for key in KEYS] for name in names], dtype=np.float64)


def reference(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    from sklearn.metrics import (average_precision_score, f1_score, precision_score, recall_score,
                                 roc_auc_score)

    out = np.empty((y.shape[1], len(KEYS)))
    for j in range(y.shape[1]):
        yj, pj = y[:, j], probs[:, j]
        pred = (pj >= thresholds[j]).astype(np.int8)
        out[j] = (
            f1_score(yj, pred, zero_division=0),
            recall_score(yj, pred, zero_division=0),
            precision_score(yj, pred, zero_division=0),
            roc_auc_score(yj, pj),
            average_precision_score(yj, pj),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows x 5 labels (smoke run)")
    parser.add_argument("--rows", type=int, default=None, help="default 1,000,000 (quick 100,000)")
    parser.add_argument("--labels", type=int, default=None, help="default 20 (quick 5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.rows or (100_000 if args.quick else 1_000_000)
    n_labels = args.labels or (5 if args.quick else 20)

    import sklearn
    import torch
    import torchmetrics

    wall = time.perf_counter()
    y, probs = make_data(n, n_labels, args.seed)
    thresholds, _ = optimize_thresholds(y, probs, "f1")
    names = [f"label_{j}" for j in range(n_labels)]
    methods = {
        "toolkit": lambda: toolkit(y, probs, thresholds, names),
        "reference": lambda: reference(y, probs, thresholds),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    values = {}
    order = list(methods)
    for rep in range(args.repeats):
        for name in order if rep % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            values[name] = methods[name]()
            times[name].append(time.perf_counter() - started)
    med = {name: statistics.median(t) for name, t in times.items()}
    diff = np.abs(values["toolkit"] - values["reference"])
    max_diff = float(diff.max())
    per_key = {key: float(diff[:, i].max()) for i, key in enumerate(KEYS)}

    print(f"{n:,} rows x {n_labels} labels, prevalence {y.mean(axis=0).min():.1%}-{y.mean(axis=0).max():.1%}, "
          f"F1-optimal thresholds; numpy {np.__version__}, sklearn {sklearn.__version__}, torch {torch.__version__}, "
          f"torchmetrics {torchmetrics.__version__}; {os.cpu_count()} CPUs; median of {args.repeats} interleaved repeats\n")
    print("| method | seconds per epoch evaluation | ratio (method / toolkit) | max abs diff vs sklearn (all values) |")
    print("|---|---|---|---|")
    print(f"| toolkit label_metrics | {med['toolkit']:.3f} | 1.0x | {max_diff:.2e} |")
    print(f"| sklearn per label (f1, recall, precision, roc_auc, average_precision) | {med['reference']:.3f} "
          f"| {med['reference'] / med['toolkit']:.1f}x | - |")
    print("\nmax abs diff per metric: " + ", ".join(f"{k} {v:.2e}" for k, v in per_key.items()))
    print(f"agreement with sklearn: max abs diff {max_diff:.3g} <= {TOLERANCE:g}: "
          f"{'PASS' if max_diff <= TOLERANCE else 'FAIL'}")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
