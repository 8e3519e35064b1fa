#!/usr/bin/env python
"""Weighted epoch sampling at 0.1% positives: the toolkit's sampler vs torch's WeightedRandomSampler.

Usage:
    python benchmarks/sampler.py            # 1M, 10M, 20M and 50M rows, 3 repeats (~5-8 min on 2 cores)
    python benchmarks/sampler.py --quick    # 1M and 2M rows, 1 repeat x 3 epochs (CI smoke run, ~30 s)
    python benchmarks/sampler.py --rows 1000000,5000000 --repeats 5 --draws 3

For every size a 0/1 label with exactly 0.1% positives is built, and the weights are
``row_weights(y, "per_class")`` (positives weighted n_neg / n_pos, so half of every epoch is
expected to be positive). Then, each in its own subprocess (this script with the hidden
``--worker`` flag, so that peak memory is per method and honest):

* toolkit:   ``WeightedIndexSampler(weights)`` (construction, timed once), then
  ``epoch_indices(epoch)`` for ``--draws`` epochs (per-epoch draw time, median);
* reference: ``WeightedRandomSampler(weights, num_samples=n, replacement=True)``
  (construction), then its core cost per epoch, ``torch.multinomial(weights, n, True)``,
  exactly the call its ``__iter__`` makes before converting the tensor to a Python list.
  ``list(sampler)`` (multinomial + ``tolist`` + list) is additionally timed at <= 1M rows
  only, because it is slow and memory hungry. Above 2^24 rows torch.multinomial refuses the
  input; the RuntimeError is caught and printed as "fails: <message>".

Peak memory: the worker builds its inputs (y, weights), records its RSS, resets the kernel's
RSS high-water mark (``/proc/self/clear_refs``) and reports the high-water mark reached during
construction ("build") and during one epoch's draw ("draw"), each minus that RSS ("extra MB":
what the method itself needs), plus the process's overall peak RSS (inputs and the torch
import included). Where clear_refs is unavailable only ``ru_maxrss`` (the overall peak) is
reported.

Class shares: the share of positive rows drawn is checked against
``expected_positive_share(y, weights)`` with a chi-square test on the [positive, negative]
counts (scipy.stats.chisquare), once for the epoch-0 draw of the first repeat and once for the
counts pooled over all draws of all repeats; a p-value that is not tiny means the draws match
the weights (one p-value below 0.05 in a table of several is expected by chance).

Each (size, method) worker runs ``--repeats`` times, interleaved (toolkit, reference, then
reference, toolkit, ...), each repeat with its own labels and seed (shared by the two methods),
and the tables give medians over repeats (and over the draws inside a worker).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POSITIVE_RATE = 0.001
FULL_ROWS = [1_000_000, 10_000_000, 20_000_000, 50_000_000]
QUICK_ROWS = [1_000_000, 2_000_000]
LIST_SAMPLER_MAX_ROWS = 1_000_000
TORCH_MULTINOMIAL_LIMIT = 2**24


# ----------------------------------------------------------------------------- worker side


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _PeakTracker:
    """Peak RSS above a baseline (the RSS at creation), per named phase.

    A phase runs from :meth:`resume` (or creation) to :meth:`pause`; bookkeeping between
    phases (counting positives) is not counted.
    """

    def __init__(self) -> None:
        gc.collect()
        self.process_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.baseline_kb = _status_kb("VmRSS")
        self.can_reset = self.baseline_kb is not None and _reset_peak()
        self.extra_kb: dict[str, int] = {}

    def pause(self, phase: str) -> None:
        """Record the high-water mark of the phase that just ended."""
        if self.can_reset:
            hwm = _status_kb("VmHWM")
            self.process_peak_kb = max(self.process_peak_kb, hwm)
            self.extra_kb[phase] = max(self.extra_kb.get(phase, 0), hwm - self.baseline_kb)
        else:
            self.process_peak_kb = max(self.process_peak_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def resume(self) -> None:
        """Start a new phase."""
        if self.can_reset:
            _reset_peak()

    def result(self) -> dict:
        return {
            "process_peak_mb": self.process_peak_kb / 1024,
            "extra_peak_mb": {k: v / 1024 for k, v in self.extra_kb.items()} if self.can_reset else None,
        }


def _make_labels(n: int, seed: int) -> np.ndarray:
    """Bool (n,) with exactly round(n * POSITIVE_RATE) positives at random rows."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, size=max(1, round(n * POSITIVE_RATE)), replace=False)] = True
    return y


def _chi_square(n_pos: int, n: int, expected_share: float) -> float:
    from scipy.stats import chisquare  # driver side only: scipy's import costs ~2 s per worker

    expected = np.array([expected_share * n, (1.0 - expected_share) * n])
    return float(chisquare([n_pos, n - n_pos], expected).pvalue)


def worker(method: str, n: int, draws: int, seed: int) -> dict:
    import torch

    from imbalance.sampling import WeightedIndexSampler, expected_positive_share, row_weights

    y = _make_labels(n, seed)
    started = time.perf_counter()
    weights = row_weights(y, "per_class")
    weights_s = time.perf_counter() - started
    share = float(expected_positive_share(y, weights)[0])
    out: dict = {"method": method, "rows": n, "positives": int(y.sum()), "expected_share": share,
                 "weights_s": weights_s, "draw_s": [], "drawn_positives": [], "fails": None}

    peak = _PeakTracker()
    if method == "toolkit":
        started = time.perf_counter()
        sampler = WeightedIndexSampler(weights, seed=seed)
        out["build_s"] = time.perf_counter() - started
        peak.pause("build")
        for epoch in range(draws):
            peak.resume()
            started = time.perf_counter()
            idx = sampler.epoch_indices(epoch)
            out["draw_s"].append(time.perf_counter() - started)
            peak.pause("draw")
            out["drawn_positives"].append(int(np.count_nonzero(y[idx.numpy()])))
            del idx
    else:
        from torch.utils.data import WeightedRandomSampler

        started = time.perf_counter()
        sampler = WeightedRandomSampler(weights, num_samples=n, replacement=True)
        out["build_s"] = time.perf_counter() - started
        peak.pause("build")
        for epoch in range(draws):
            peak.resume()
            torch.manual_seed(seed * 1000 + epoch)
            started = time.perf_counter()
            try:
                # What WeightedRandomSampler.__iter__ does before rand_tensor.tolist().
                idx = torch.multinomial(sampler.weights, sampler.num_samples, sampler.replacement)
            except RuntimeError as exc:
                out["fails"] = str(exc).strip().splitlines()[0]
                break
            out["draw_s"].append(time.perf_counter() - started)
            peak.pause("draw")
            out["drawn_positives"].append(int(np.count_nonzero(y[idx.numpy()])))
            del idx
        if out["fails"] is None and n <= LIST_SAMPLER_MAX_ROWS:
            peak.resume()
            torch.manual_seed(seed)
            started = time.perf_counter()
            listed = list(sampler)
            out["list_s"] = time.perf_counter() - started
            peak.pause("list")
            del listed
    out.update(peak.result())
    return out


# ----------------------------------------------------------------------------- driver side


def run_worker(method: str, n: int, draws: int, seed: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--rows", str(n),
           "--draws", str(draws), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {method} {n} failed (rc {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M and 2M rows, 1 repeat x 3 epochs (smoke run)")
    parser.add_argument("--rows", default=None, help="comma-separated row counts (overrides the defaults)")
    parser.add_argument("--repeats", type=int, default=None, help="worker processes per (size, method); default 3, quick 1")
    parser.add_argument("--draws", type=int, default=None, help="epochs drawn inside each worker; default 2, quick 3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["toolkit", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, int(args.rows), args.draws, args.seed)))
        return

    rows = [int(r) for r in args.rows.split(",")] if args.rows else (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (1 if args.quick else 3)
    args.draws = args.draws or (3 if args.quick else 2)
    import numpy
    import scipy
    import torch

    wall = time.perf_counter()
    results: dict = {(n, m): [] for n in rows for m in ("toolkit", "reference")}
    for rep in range(repeats):
        for n in rows:
            for method in ("toolkit", "reference") if rep % 2 == 0 else ("reference", "toolkit"):
                # Fresh labels and draws per (repeat, size); both methods of a pair share them.
                seed = args.seed + 100 * rep + rows.index(n)
                results[(n, method)].append(run_worker(method, n, args.draws, seed))
                print(f"  repeat {rep + 1}/{repeats}, {n:,} rows, {method}: done "
                      f"({time.perf_counter() - wall:.0f} s)", file=sys.stderr, flush=True)

    print(f"torch {torch.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}; "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; "
          f"{POSITIVE_RATE:.1%} positives, weights row_weights(y, 'per_class'); "
          f"median of {repeats} worker processes x {args.draws} epochs each\n")

    print("Time. Toolkit: WeightedIndexSampler construction (once per run) and epoch_indices (per epoch). "
          "Reference: WeightedRandomSampler construction and torch.multinomial(weights, n, replacement=True) "
          "per epoch (its __iter__'s core cost, without tolist()).\n")
    print("| rows | toolkit build s | toolkit draw s/epoch | toolkit draw ns/row | reference build s "
          "| reference draw s/epoch (torch.multinomial) | reference draw ns/row | draw speed-up (ref / toolkit) "
          "| build+1 epoch speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in rows:
        tk, ref = results[(n, "toolkit")], results[(n, "reference")]
        tk_build = _median([r["build_s"] for r in tk])
        tk_draw = _median([_median(r["draw_s"]) for r in tk])
        ref_build = _median([r["build_s"] for r in ref])
        fails = next((r["fails"] for r in ref if r["fails"]), None)
        if fails:
            ref_draw_cell = f"fails: {fails}"
            ref_ns = speed = speed_total = "-"
        else:
            ref_draw = _median([_median(r["draw_s"]) for r in ref])
            ref_draw_cell = f"{ref_draw:.3f}"
            ref_ns = f"{ref_draw / n * 1e9:.0f}"
            speed = f"{ref_draw / tk_draw:.1f}x"
            speed_total = f"{(ref_build + ref_draw) / (tk_build + tk_draw):.1f}x"
        print(f"| {n:,} | {tk_build:.3f} | {tk_draw:.3f} | {tk_draw / n * 1e9:.0f} | {ref_build:.4f} "
              f"| {ref_draw_cell} | {ref_ns} | {speed} | {speed_total} |")

    listed = [(n, _median([r.get("list_s") for r in results[(n, "reference")]])) for n in rows]
    listed = [(n, s) for n, s in listed if s is not None]
    for n, s in listed:
        tk_draw = _median([_median(r["draw_s"]) for r in results[(n, "toolkit")]])
        print(f"\nFull reference epoch at {n:,} rows, `list(WeightedRandomSampler(...))`: {s:.3f} s "
              f"({s / tk_draw:.1f}x the toolkit's epoch_indices).")

    print("\nPeak memory (MB). extra = the worker's RSS high-water mark during construction (build) or "
          "during one epoch's draw (draw; the sampler itself is held) minus its RSS with the inputs "
          "(y, weights) already built; process = the worker's overall peak RSS, inputs and the "
          "torch import (~250 MB) included. y + weights take 9 bytes/row.\n")
    print("| rows | toolkit extra MB: build / draw | toolkit bytes/row (max) | reference extra MB: build / draw "
          "| reference bytes/row (max) | ratio (toolkit / ref, max) | toolkit process MB | reference process MB |")
    print("|---|---|---|---|---|---|---|---|")

    def extra(runs: list, phase: str):
        if runs[0]["extra_peak_mb"] is None:
            return None
        return _median([r["extra_peak_mb"].get(phase) for r in runs])

    for n in rows:
        tk, ref = results[(n, "toolkit")], results[(n, "reference")]
        fails = any(r["fails"] for r in ref)
        tk_b, tk_d = extra(tk, "build"), extra(tk, "draw")
        ref_b, ref_d = extra(ref, "build"), (None if fails else extra(ref, "draw"))
        tk_max = max(v for v in (tk_b, tk_d) if v is not None) if tk_b is not None else None
        ref_max = None if fails or ref_b is None else max(ref_b, ref_d)
        ratio = f"{tk_max / ref_max:.1f}x" if tk_max and ref_max else "-"
        ref_cell = "fails" if fails else f"{_fmt(ref_b, '.0f')} / {_fmt(ref_d, '.0f')}"
        ref_bpr = "-" if ref_max is None else f"{ref_max * 2**20 / n:.0f}"
        tk_bpr = "-" if tk_max is None else f"{tk_max * 2**20 / n:.0f}"
        print(f"| {n:,} | {_fmt(tk_b, '.0f')} / {_fmt(tk_d, '.0f')} | {tk_bpr} | {ref_cell} | {ref_bpr} | {ratio} "
              f"| {_median([r['process_peak_mb'] for r in tk]):.0f} | {_median([r['process_peak_mb'] for r in ref]):.0f} |")

    print("\nClass shares: drawn share of positive rows vs expected_positive_share(y, weights), chi-square "
          "test on the [positive, negative] counts of the epoch-0 draw of the first repeat, and on the "
          "counts pooled over every draw of every repeat (each repeat has its own labels and seed).\n")
    print("| rows | positives in y | expected positive share | toolkit drawn share (pooled) | toolkit p (epoch 0) "
          "| toolkit p (pooled) | reference drawn share (pooled) | reference p (epoch 0) | reference p (pooled) |")
    print("|---|---|---|---|---|---|---|---|---|")

    def shares(runs: list) -> tuple[str, str, str]:
        if not runs[0]["drawn_positives"]:
            return "fails", "fails", "fails"
        first = _chi_square(runs[0]["drawn_positives"][0], n, runs[0]["expected_share"])
        pos = sum(sum(r["drawn_positives"]) for r in runs)
        total = sum(n * len(r["drawn_positives"]) for r in runs)
        expected = sum(r["expected_share"] * n * len(r["drawn_positives"]) for r in runs) / total
        return f"{pos / total:.5f}", f"{first:.3f}", f"{_chi_square(pos, total, expected):.3f}"

    for n in rows:
        tk, ref = results[(n, "toolkit")], results[(n, "reference")]
        print(f"| {n:,} | {tk[0]['positives']:,} | {tk[0]['expected_share']:.5f} | "
              + " | ".join(shares(tk)) + " | " + " | ".join(shares(ref)) + " |")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
