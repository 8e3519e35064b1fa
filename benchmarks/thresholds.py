#!/usr/bin/env python
"""Per-label F1-optimal decision thresholds: optimize_thresholds vs sklearn and a 100-point grid.

Usage:
    python benchmarks/thresholds.py            # 1M rows x 20 labels, 3 repeats (~1-2 min on 2 cores)
    python benchmarks/thresholds.py --quick    # 100k rows x 5 labels (CI smoke run, a few seconds)
    python benchmarks/thresholds.py --rows 500000 --labels 10 --repeats 5

Data: model-like probabilities. Every label j has a prevalence between 1% and 8% (evenly
spread over the labels); its latent score is a random linear function of 16 shared standard
normal features plus Gaussian noise, the top prevalence-share of latents are the positives, and
the "model" outputs ``sigmoid(1.5 * linear part + logit(prevalence))`` in float32 (so, as with
a real network, the noise is not seen by the model and float32 rounding creates tied scores).
Labels are an (n, L) int8 0/1 matrix, probabilities an (n, L) float32 matrix.

Methods, each given the same (n, L) arrays and timed end to end (median over ``--repeats``
interleaved repeats, all in this one process):

* toolkit:  ``optimize_thresholds(y, p, "f1")`` (exact: every distinct score is a candidate);
* (a) sklearn: per label ``precision_recall_curve(y[:, j], p[:, j])``, F1 = 2PR / (P + R)
  (0 where P + R = 0) at every returned threshold, best F1 taken with the same tie-break as
  the toolkit: the highest threshold among equal best F1 (exact equality);
* (b) grid: per label, F1 of ``p >= t`` for the 100 thresholds ``np.linspace(0, 1, 100)``
  (vectorised numpy counts per threshold), highest best threshold kept.

Checks: the max absolute difference of the best F1 between the toolkit and (a) (must be 0 up to
float rounding, i.e. <= 8 * float64 eps = 1.8e-15; PASS/FAIL printed) and how many labels got the same threshold,
and how much F1 the grid loses against the exact optimum (max and mean over labels).
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
from imbalance.thresholds import optimize_thresholds  # noqa: E402

F1_TOLERANCE = 8 * np.finfo(np.float64).eps  # a few ulps: 2PR/(P+R) and 2tp/(2tp+fp+fn) round differently
GRID = np.linspace(0.0, 1.0, 100)


def make_data(n: int, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y int8 (n, L), probabilities float32 (n, L)) from a noisy linear model, prevalence 1-8%."""
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


def sklearn_pr_curve(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a): best-F1 threshold per label from sklearn's precision_recall_curve."""
    from sklearn.metrics import precision_recall_curve

    n_labels = y.shape[1]
    thresholds = np.empty(n_labels)
    best = np.empty(n_labels)
    for j in range(n_labels):
        precision, recall, thr = precision_recall_curve(y[:, j], probs[:, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        denom = precision + recall
        f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        top = f1.max()
        k = int(np.flatnonzero(f1 == top)[-1])  # thr ascending: the last tie is the highest threshold
        thresholds[j], best[j] = thr[k], top
    return thresholds, best


def grid_search(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(b): best-F1 threshold per label among np.linspace(0, 1, 100)."""
    n_labels = y.shape[1]
    thresholds = np.empty(n_labels)
    best = np.empty(n_labels)
    for j in range(n_labels):
        yj = y[:, j] != 0
        pj = np.ascontiguousarray(probs[:, j])
        n_pos = int(np.count_nonzero(yj))
        f1 = np.empty(GRID.size)
        for k, t in enumerate(GRID):
            pred = pj >= t
            n_pred = int(np.count_nonzero(pred))
            tp = int(np.count_nonzero(pred & yj))
            f1[k] = 2.0 * tp / (n_pred + n_pos) if n_pred + n_pos else 0.0
        top = f1.max()
        k = int(np.flatnonzero(f1 == top)[-1])
        thresholds[j], best[j] = GRID[k], top
    return thresholds, best


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

    wall = time.perf_counter()
    y, probs = make_data(n, n_labels, args.seed)
    methods = {
        "toolkit": lambda: optimize_thresholds(y, probs, "f1"),
        "sklearn": lambda: sklearn_pr_curve(y, probs),
        "grid": lambda: grid_search(y, probs),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    results = {}
    order = list(methods)
    for rep in range(args.repeats):
        for name in order if rep % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            results[name] = methods[name]()
            times[name].append(time.perf_counter() - started)
    med = {name: statistics.median(t) for name, t in times.items()}

    tk_thr, tk_f1 = results["toolkit"]
    sk_thr, sk_f1 = results["sklearn"]
    grid_thr, grid_f1 = results["grid"]
    f1_diff = float(np.max(np.abs(tk_f1 - sk_f1)))
    same_thr = int(np.sum(tk_thr == sk_thr))
    grid_loss = tk_f1 - grid_f1

    print(f"{n:,} rows x {n_labels} labels, prevalence {y.mean(axis=0).min():.1%}-{y.mean(axis=0).max():.1%}, "
          f"float32 probabilities ({np.mean([np.unique(probs[:, j]).size for j in range(n_labels)]) / n:.1%} "
          f"distinct per label); numpy {np.__version__}, sklearn {sklearn.__version__}, torch {torch.__version__}; "
          f"{os.cpu_count()} CPUs; median of {args.repeats} interleaved repeats\n")
    print("| method | seconds | ratio (method / toolkit) | best-F1 vs toolkit: max abs diff | mean best F1 |")
    print("|---|---|---|---|---|")
    print(f"| toolkit optimize_thresholds (exact) | {med['toolkit']:.3f} | 1.0x | - | {tk_f1.mean():.4f} |")
    print(f"| (a) sklearn precision_recall_curve per label (exact) | {med['sklearn']:.3f} "
          f"| {med['sklearn'] / med['toolkit']:.1f}x | {f1_diff:.2e} | {sk_f1.mean():.4f} |")
    print(f"| (b) 100-point grid per label | {med['grid']:.3f} | {med['grid'] / med['toolkit']:.1f}x "
          f"| {np.max(np.abs(grid_loss)):.2e} (grid loses) | {grid_f1.mean():.4f} |")
    verdict = "PASS" if f1_diff <= F1_TOLERANCE else "FAIL"
    print(f"\ntoolkit vs (a): max |best F1 difference| = {f1_diff:.3g} (tolerance 8 eps = {F1_TOLERANCE:.2g}): {verdict}; "
          f"identical thresholds on {same_thr}/{n_labels} labels")
    if same_thr < n_labels:
        bad = np.flatnonzero(tk_thr != sk_thr)
        print("  differing labels (toolkit thr, sklearn thr, F1 diff): " + ", ".join(
            f"{j}: ({tk_thr[j]:.9g}, {sk_thr[j]:.9g}, {tk_f1[j] - sk_f1[j]:.2g})" for j in bad))
    print(f"grid vs exact: F1 lost max {grid_loss.max():.4f}, mean {grid_loss.mean():.4f} "
          f"(relative: max {np.max(grid_loss / tk_f1):.1%}, mean {np.mean(grid_loss / tk_f1):.1%})")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
