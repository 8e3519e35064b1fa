#!/usr/bin/env python
"""Training throughput (rows/s) of the default MLP: the toolkit's loop vs the usual recipe and a minimal loop.

Usage:
    python benchmarks/throughput.py                  # 1M rows x 64 features, 5 repeats (~4-8 min on 2 cores)
    python benchmarks/throughput.py --quick          # 100k rows, fewer steps, 5 repeats (~1 min)
    python benchmarks/throughput.py --device cuda    # the same on a GPU (fails with "no CUDA device" without one)
    python benchmarks/throughput.py --rows 1000000 --batches 32,4096 --threads 1,2 --repeats 5

Data: ``--rows`` rows x 64 float32 features (standard normal), one binary label with 5%
positives. Model: ``create_model("mlp", inputs=InputSpec(n_numeric=64, n_flags=0, cardinalities=[],
n_labels=1), settings={"hidden_sizes": [64, 32], "dropout": 0.3})`` (the toolkit's default MLP),
fresh for every measurement, called as ``model(x_num, x_cat)`` with ``x_cat`` an empty (B, 0)
int64 tensor (no categorical columns) by all three methods. Loss: BCE on logits.
Training step = sampling + forward + loss + backward + optimizer step, on ``--device``.

Three ways to train, timed on the same data, batch size and thread count:

* toolkit:  ``sampler = build_sampler(y, weighted=True, method="per_class", seed=0)``, then
  ``train_one_epoch(model, TensorRows(x, x_cat), y, sampler.epoch_indices(e), loss_fn=build_loss("bce"),
  optimizer=build_optimizer("adam", model, lr=1e-3), batch_size=B)``; the timed region
  includes the weighted epoch draw (``epoch_indices``), not the sampler's construction.
* usual:    the common PyTorch recipe: a per-row ``Dataset`` returning ``(x[i], y[i])``,
  ``DataLoader(ds, batch_size=B, sampler=WeightedRandomSampler(w, num_samples, replacement=True))``
  (num_workers=0; ``pin_memory=True`` on CUDA, tensors stay on the CPU), ``nn.BCEWithLogitsLoss``
  and plain ``torch.optim.Adam`` (default implementation, not fused). ``w`` are the same
  per-class row weights (positives n_neg/n_pos, negatives 1).
* minimal:  a hand-written loop over pre-made tensors: the index batches are drawn beforehand
  (``torch.multinomial`` over the same weights, outside the timed region), then
  ``model(x[idx], x_cat)``, ``F.binary_cross_entropy_with_logits``, ``zero_grad``, ``backward`` and the
  same fused Adam as the toolkit. It is the floor of per-step overhead; the toolkit should be
  >= 1.0x it.

Timing: to keep the run short, each measurement times a fixed number of steps (``--steps``:
2000 at batch 32, 200 at batch 4096; ``--quick`` 300 and 30) after 20 untimed warm-up steps,
not a full epoch, and fewer steps (at least 10) where the warm-up rate says they would take
longer than ``--budget`` seconds (a method that collapses, e.g. 2 threads on a busy machine,
would otherwise take many minutes). Every sampler draws exactly steps x batch rows (with
replacement), so the figure is rows/s of training, comparable to a full epoch. Each
measurement is run ``--repeats`` times with ``torch.set_num_threads(t)`` for every
``--threads`` value; methods run back to back (their order rotates every repeat). rows/s are
medians over repeats; ratios are medians over repeats of the ratio within a repeat, which
cancels most of the drift of a shared machine. The 1-minute load average is printed: with
other processes runnable on a 2-core machine, 2 OpenMP threads can be 10-100x slower than 1.

FLOP/s: forward multiply-adds per row = sum over the Linear layers of in x out
(64*64 + 64*32 + 32*1 = 6176 for the default MLP); FLOPs per trained row = MACs x 2
(multiply + add) x 3 (forward + backward for inputs and weights) = 37,056. Activations,
dropout, loss and optimizer are not counted. The share is of the "measured peak": the best
GFLOP/s of a large float32 matmul (2048 x 2048 on CPU, 8192 x 8192 on CUDA) in the same run
with the same thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imbalance.losses import build_loss  # noqa: E402
from imbalance.sampling import build_sampler, row_weights  # noqa: E402
from imbalance.training import TensorRows, build_optimizer, train_one_epoch  # noqa: E402
from models import InputSpec, create_model  # noqa: E402

N_FEATURES = 64
POSITIVE_RATE = 0.05
HIDDEN = [64, 32]
WARMUP_STEPS = 20
FULL_STEPS = {32: 2000, 4096: 200}
QUICK_STEPS = {32: 300, 4096: 30}
METHODS = ("toolkit", "usual", "minimal")
ROWS = ("toolkit", "toolkit, draw excluded", "usual", "minimal")
MIN_STEPS = 10


def make_data(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((rows, N_FEATURES), dtype=np.float32))
    y_np = np.zeros((rows, 1), dtype=np.uint8)
    y_np[rng.choice(rows, size=int(round(rows * POSITIVE_RATE)), replace=False), 0] = 1
    return x, torch.from_numpy(y_np).float(), y_np


def make_model(device: torch.device) -> nn.Module:
    inputs = InputSpec(n_numeric=N_FEATURES, n_flags=0, cardinalities=[], n_labels=1)
    return create_model("mlp", inputs=inputs, settings={"hidden_sizes": HIDDEN, "dropout": 0.3}).to(device)


def no_categories(rows: int, device: torch.device) -> torch.Tensor:
    """The (rows, 0) int64 ``x_cat`` of a table without categorical columns."""
    return torch.zeros((rows, 0), dtype=torch.int64, device=device)


def forward_macs(model: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the three methods


def plan_steps(warm_seconds: float, batch: int, max_steps: int, budget: float) -> int:
    """Steps to time: ``max_steps``, or fewer when the warm-up rate says they would exceed ``budget`` s."""
    rate = WARMUP_STEPS * batch / max(warm_seconds, 1e-9)
    return int(min(max_steps, max(MIN_STEPS, budget * rate / batch)))


def time_toolkit(data: dict, batch: int, max_steps: int, device: torch.device, epoch: int, budget: float) -> dict:
    x, y = TensorRows(num=data["x_dev"], cat=no_categories(len(data["x_dev"]), device)), data["y_dev"]
    model = make_model(device)
    loss_fn = build_loss("bce", class_weights=torch.ones(1)).to(device)
    optimizer = build_optimizer("adam", model, lr=1e-3)
    sampler = build_sampler(data["y_np"], weighted=True, method="per_class", seed=0)
    sampler.num_samples = WARMUP_STEPS * batch
    start = time.perf_counter()
    train_one_epoch(model, x, y, sampler.epoch_indices(0), loss_fn=loss_fn, optimizer=optimizer, batch_size=batch)
    sync(device)
    steps = plan_steps(time.perf_counter() - start, batch, max_steps, budget)
    sampler.num_samples = steps * batch  # draw exactly the rows that are timed
    start = time.perf_counter()
    indices = sampler.epoch_indices(epoch)
    drawn = time.perf_counter()
    stats = train_one_epoch(model, x, y, indices, loss_fn=loss_fn, optimizer=optimizer, batch_size=batch)
    sync(device)
    stop = time.perf_counter()
    assert stats["rows"] == steps * batch, stats["rows"]
    return {"toolkit": (stats["rows"] / (stop - start), steps), "toolkit, draw excluded": (stats["rows"] / (stop - drawn), steps)}


class RowDataset(Dataset):
    """The per-row dataset of the usual recipe."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _usual_steps(loader: DataLoader, model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                 device: torch.device, x_cat: torch.Tensor) -> int:
    rows = 0
    for xb, yb in loader:
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        loss = criterion(model(xb, x_cat[: xb.shape[0]]), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows += xb.shape[0]
    return rows


def time_usual(data: dict, batch: int, max_steps: int, device: torch.device, epoch: int, budget: float) -> dict:
    dataset = RowDataset(data["x"], data["y"])  # CPU tensors, as a DataLoader pipeline keeps them
    pin = device.type == "cuda"
    model = make_model(device)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(epoch)

    def loader(num_samples: int) -> DataLoader:
        sampler = WeightedRandomSampler(data["weights_t"], num_samples=num_samples, replacement=True, generator=gen)
        return DataLoader(dataset, batch_size=batch, sampler=sampler, pin_memory=pin)

    x_cat = no_categories(batch, device)  # made once: the model's second input, empty
    start = time.perf_counter()
    _usual_steps(loader(WARMUP_STEPS * batch), model, criterion, optimizer, device, x_cat)
    sync(device)
    steps = plan_steps(time.perf_counter() - start, batch, max_steps, budget)
    timed = loader(steps * batch)
    start = time.perf_counter()
    rows = _usual_steps(timed, model, criterion, optimizer, device, x_cat)
    sync(device)
    elapsed = time.perf_counter() - start
    assert rows == steps * batch, rows
    return {"usual": (rows / elapsed, steps)}


def _minimal_steps(batches: list, x: torch.Tensor, y: torch.Tensor, model: nn.Module,
                   optimizer: torch.optim.Optimizer, x_cat: torch.Tensor) -> None:
    model.train()
    for idx in batches:
        loss = F.binary_cross_entropy_with_logits(model(x[idx], x_cat), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def time_minimal(data: dict, batch: int, max_steps: int, device: torch.device, epoch: int, budget: float) -> dict:
    x, y = data["x_dev"], data["y_dev"]
    gen = torch.Generator().manual_seed(epoch)
    # Drawn beforehand, outside the timed region.
    draws = torch.multinomial(data["weights_t"], (WARMUP_STEPS + max_steps) * batch, replacement=True, generator=gen)
    batches = list(draws.to(device).view(WARMUP_STEPS + max_steps, batch).unbind(0))
    model = make_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # the toolkit's Adam
    x_cat = no_categories(batch, device)  # made once: the model's second input, empty
    start = time.perf_counter()
    _minimal_steps(batches[:WARMUP_STEPS], x, y, model, optimizer, x_cat)
    sync(device)
    steps = plan_steps(time.perf_counter() - start, batch, max_steps, budget)
    start = time.perf_counter()
    _minimal_steps(batches[WARMUP_STEPS : WARMUP_STEPS + steps], x, y, model, optimizer, x_cat)
    sync(device)
    return {"minimal": (steps * batch / (time.perf_counter() - start), steps)}


TIMERS = {"toolkit": time_toolkit, "usual": time_usual, "minimal": time_minimal}


# ----------------------------------------------------------------------------- peak and report


def matmul_gflops(device: torch.device, repeats: int = 3) -> float:
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)  # warm-up
    sync(device)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, 300/30 steps, 5 repeats, 1.5 s budget")
    parser.add_argument("--rows", type=int, default=None, help="rows in the table (default 1M, --quick 100k)")
    parser.add_argument("--batches", default="32,4096")
    parser.add_argument("--steps", default=None, help="timed steps per batch size, e.g. 2000,200 (matching --batches)")
    parser.add_argument("--threads", default=None, help="torch thread counts to try (default: 1 and all cores)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per measurement (default 6, --quick 1.5): fewer steps are timed where the "
                             "warm-up rate says the steps would take longer (at least %d)" % MIN_STEPS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/throughput.py: error: --device cuda: no CUDA device is visible "
              "(torch.cuda.is_available() is False); run with --device cpu", file=sys.stderr)
        sys.exit(2)
    device = torch.device(args.device)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or 5
    budget = args.budget or (1.5 if args.quick else 6.0)
    batches = parse_ints(args.batches)
    default_steps = QUICK_STEPS if args.quick else FULL_STEPS
    if args.steps:
        steps_list = parse_ints(args.steps)
        if len(steps_list) != len(batches):
            parser.error("--steps needs one value per --batches value")
        steps = dict(zip(batches, steps_list))
    else:
        steps = {b: default_steps.get(b, max(MIN_STEPS, 64_000 // b)) for b in batches}
    all_threads = torch.get_num_threads()
    threads = parse_ints(args.threads) if args.threads else sorted({1, all_threads})

    started = time.perf_counter()
    load_start = os.getloadavg()
    x, y, y_np = make_data(rows)
    weights = row_weights(y_np, "per_class")
    data = {
        "x": x, "y": y, "y_np": y_np,
        "x_dev": x.to(device), "y_dev": y.to(device),
        "weights_t": torch.as_tensor(weights, dtype=torch.double),
    }
    macs = forward_macs(make_model(device))
    flops_per_row = macs * 2 * 3
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"

    print(f"# Training throughput, default MLP {N_FEATURES}->{'->'.join(map(str, HIDDEN))}->1 (dropout 0.3), "
          f"BCE, Adam lr 1e-3, {device_name}, torch {torch.__version__}\n")
    print(f"{rows:,} rows x {N_FEATURES} float32 features, {POSITIVE_RATE:.0%} positives, per-class weighted sampling. "
          "A fixed number of steps is timed, not a full epoch: up to "
          + ", ".join(f"{steps[b]} steps at batch {b}" for b in batches)
          + f" (fewer where they would take over {budget:g} s), after {WARMUP_STEPS} warm-up steps; "
          f"median of {repeats} interleaved repeats.")
    print(f"FLOPs per trained row = forward MACs ({macs}) x 2 x 3 = {flops_per_row:,}; "
          "% of peak = achieved GFLOP/s / measured peak (float32 matmul, same thread count).\n", flush=True)

    peak: dict[int, list[float]] = {t: [] for t in threads}
    results: dict[tuple[str, int, int], list[tuple[float, int]]] = {}
    for rep in range(repeats):
        order = METHODS[rep % len(METHODS):] + METHODS[: rep % len(METHODS)]
        for t in threads:
            torch.set_num_threads(t)
            peak[t].append(matmul_gflops(device))
            for b in batches:
                for method in order:
                    for name, value in TIMERS[method](data, b, steps[b], device, rep + 1, budget).items():
                        results.setdefault((name, b, t), []).append(value)
        print(f"repeat {rep + 1}/{repeats} done ({time.perf_counter() - started:.0f} s, load average "
              f"{os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    torch.set_num_threads(all_threads)
    load_end = os.getloadavg()

    med = {key: statistics.median(r for r, _ in v) for key, v in results.items()}
    steps_used = {key: sorted({s for _, s in v}) for key, v in results.items()}
    peak_med = {t: statistics.median(v) for t, v in peak.items()}

    def paired(name: str, ref: str, b: int, t: int) -> float:
        """Median over repeats of the ratio within each repeat (the methods ran back to back)."""
        return statistics.median(r / q for (r, _), (q, _) in zip(results[(name, b, t)], results[(ref, b, t)]))

    print("measured peak (float32 matmul, median of repeats): "
          + ", ".join(f"{t} thread(s) {peak_med[t]:.1f} GFLOP/s" for t in threads))
    print(f"load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f} on {os.cpu_count()} cores: "
          "with other processes runnable, OpenMP threads > free cores can collapse throughput.\n")
    print("| method | batch | threads | rows/s | vs usual | vs minimal | GFLOP/s | % of measured peak | steps timed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in batches:
        for t in threads:
            for name in ROWS:
                rate = med[(name, b, t)]
                gflops = rate * flops_per_row / 1e9
                used = steps_used[(name, b, t)]
                used_text = str(used[0]) if len(used) == 1 else f"{used[0]}-{used[-1]}"
                print(f"| {name} | {b} | {t} | {rate:,.0f} | {paired(name, 'usual', b, t):.2f}x "
                      f"| {paired(name, 'minimal', b, t):.2f}x | {gflops:.2f} | {100 * gflops / peak_med[t]:.1f}% | {used_text} |")

    print("\nrows/s: median over repeats; ratios: median over repeats of the ratio within a repeat.")
    print("'toolkit, draw excluded' is the same run as 'toolkit' without the time of sampler.epoch_indices "
          "(the minimal loop's batches are drawn before its timer starts).")
    print("\nThreads: the toolkit's CLI uses 1 thread unless --num_threads says otherwise.\n")
    print("| batch | toolkit rows/s by threads | faster | CLI default | vs usual (target) | vs minimal (target 1.0x) |")
    print("|---|---|---|---|---|---|")
    for b in batches:
        by_t = {t: med[("toolkit", b, t)] for t in threads}
        best_t = max(by_t, key=by_t.get)
        cli_t = 1
        target = 2.0 if b <= 512 else 2.5
        best_usual = max(threads, key=lambda t: med[("usual", b, t)])
        best_min = max(threads, key=lambda t: med[("minimal", b, t)])
        vs_usual = by_t[best_t] / med[("usual", b, best_usual)]
        vs_min = by_t[best_t] / med[("minimal", b, best_min)]
        verdict = "" if cli_t not in by_t else " (faster)" if cli_t == best_t else " (slower)"
        print(f"| {b} | " + ", ".join(f"{t}: {r:,.0f}" for t, r in by_t.items())
              + f" | {best_t} thread(s) | {cli_t} thread(s){verdict} "
              f"| {vs_usual:.2f}x (>= {target}x: {'met' if vs_usual >= target else 'NOT met'}) "
              f"| {vs_min:.2f}x ({'met' if vs_min >= 1.0 else 'NOT met'}) |")
    print("\n(ratios of medians, each method at its own fastest thread count; the paired ratios at equal threads are "
          "in the table above)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
