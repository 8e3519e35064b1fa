#!/usr/bin/env python
"""Wall time and peak memory of whole train_classifier.py runs, each in its own process.

Usage:
    python benchmarks/end_to_end.py              # demo, stroke, 5M-row synthetic Parquet (~4-5 min on 2 cores)
    python benchmarks/end_to_end.py --quick      # the same with a 200k-row synthetic table (~1-2 min)
    # scale: 20M rows x 64 features (5.1 GB as float32) with the weighted sampler (~4 min, ~11 GB)
    python benchmarks/end_to_end.py --cases synthetic --rows 20000000 --synthetic_threads auto --timeout 900

Cases (all with ``--output_dir`` in a temporary folder):

* demo:      ``--preset aggressive --epochs 10`` on the built-in demo cohort (20,000 rows);
* stroke:    ``--preset aggressive --csv_path ../shared/data/stroke.csv --target_cols stroke
  --id_col id --epochs 10`` (skipped with a note when the file is absent);
* synthetic: a table written to a temporary Parquet file: ``--rows`` rows (5M; ``--quick``
  200k) x 64 float32 features + ``label_rare``, a 1%-prevalence label that depends on the
  features; trained for 2 epochs with ``--use_weighted_sampling --weight_method per_class
  --batch_size 4096 --baselines none --test_fraction 0.05 --val_fraction 0.05 --quiet
  --no_tensorboard``, once with the CLI's default thread count and once with ``--num_threads``
  set to every core (``--synthetic_threads``; on a busy machine the two differ most). When it
  fails (out of memory, over ``--timeout`` or over the memory guard), it is retried at half the
  rows, down to 200k, and the table says so.

Each case runs as ``python train_classifier.py ...`` in a child process. Peak memory is that
child's own ``ru_maxrss`` from ``os.wait4`` (exact per child, unlike the running maximum of
``getrusage(RUSAGE_CHILDREN)``). While it runs, its RSS is polled from /proc and it is killed
past ``--timeout`` seconds or past ``--mem_limit_gb`` (default 85% of MemAvailable at start), so
that an oversized case fails here instead of calling the kernel's OOM killer on a shared machine.

Phases are read from the run folder's file times: ``config.json`` is written once the table is
loaded, split, preprocessed and encoded and the model's input spec (with any embedding bins) is
fitted ("setup", which includes the interpreter and imports, reported separately as "imports"),
``last.pt`` after every epoch ("train": building the model, then all epochs with validation and
checkpoints), and the rest (final scoring, baselines, report files, test_predictions.csv, exit)
is "finish".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES = 64
PREVALENCE = 0.01
MIN_ROWS = 200_000
CHUNK_ROWS = 250_000
GB = 1024**3


# ----------------------------------------------------------------------------- the child process


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(cmd: list[str], *, timeout: float, mem_limit: float, log_path: Path) -> dict:
    """Run ``cmd`` with output to ``log_path``; wall seconds, peak RSS and how it ended."""
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        killed = None
        polled_peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            polled_peak = max(polled_peak, _rss_bytes(proc.pid))
            elapsed = time.perf_counter() - started
            if killed is None and elapsed > timeout:
                killed = f"stopped after {timeout:.0f} s (--timeout)"
                os.kill(proc.pid, signal.SIGKILL)
            elif killed is None and polled_peak > mem_limit:
                killed = f"stopped at {polled_peak / GB:.1f} GB RSS (--mem_limit_gb {mem_limit / GB:.1f})"
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    rc = proc.returncode
    if killed is None and rc == -signal.SIGKILL:
        killed = "killed by SIGKILL (probably the kernel's OOM killer)"
    elif killed is None and rc != 0:
        killed = f"exit status {rc}"
    tail = log_path.read_text(errors="replace").strip().splitlines()[-8:]
    return {
        "rc": rc, "wall": wall, "peak_rss": max(usage.ru_maxrss * 1024, polled_peak),
        "failure": killed, "tail": tail,
    }


def import_seconds(repeats: int = 3) -> float:
    """Interpreter start + ``import train_classifier`` (torch, pandas, sklearn ...): median of ``repeats``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import train_classifier"], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def phases(out_dir: Path, started_epoch: float) -> dict:
    def mtime(name: str) -> float | None:
        path = out_dir / name
        return path.stat().st_mtime - started_epoch if path.exists() else None

    return {"config": mtime("config.json"), "last": mtime("last.pt")}


# ----------------------------------------------------------------------------- the synthetic table


def write_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    """rows x 64 float32 features + a 1% label from a noisy linear score, written in row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    w = rng.standard_normal(N_FEATURES) / np.sqrt(N_FEATURES)
    noise_sd = 1.0
    # The score is N(0, |w|^2 + noise_sd^2): cut at its 99th percentile for a 1% prevalence.
    cut = 2.3263478740408408 * np.sqrt(w @ w + noise_sd**2)
    names = [f"f{j}" for j in range(N_FEATURES)]
    schema = pa.schema([(n, pa.float32()) for n in names] + [("label_rare", pa.int8())])
    # Uncompressed and without dictionary pages (random floats gain nothing from either; the
    # dictionary attempt alone made writing ~5x slower), generated column-major: each column is
    # one contiguous array handed to Arrow without a copy.
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            xt = rng.standard_normal((N_FEATURES, n), dtype=np.float32)
            label = (w @ xt + noise_sd * rng.standard_normal(n) > cut).astype(np.int8)
            arrays = [pa.array(xt[j]) for j in range(N_FEATURES)] + [pa.array(label)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k synthetic rows")
    parser.add_argument("--cases", default="demo,stroke,synthetic")
    parser.add_argument("--rows", type=int, default=None, help="synthetic rows (default 5M, --quick 200k)")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run before it is stopped")
    parser.add_argument("--synthetic_threads", default=f"auto,{os.cpu_count()}",
                        help="run the synthetic case once per value: auto = the CLI's default threads, N = --num_threads N "
                             "(default: auto and every core)")
    parser.add_argument("--mem_limit_gb", type=float, default=None, help="RSS at which a run is stopped")
    args = parser.parse_args()

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - {"demo", "stroke", "synthetic"})
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from demo, stroke, synthetic")
    rows = args.rows or (200_000 if args.quick else 5_000_000)
    available = _meminfo_bytes("MemAvailable")
    mem_limit = args.mem_limit_gb * GB if args.mem_limit_gb else 0.85 * available
    began = time.perf_counter()
    imports = import_seconds()

    print(f"# End-to-end train_classifier.py runs ({os.cpu_count()} cores, {available / GB:.1f} GB available at start, "
          f"memory guard {mem_limit / GB:.1f} GB, timeout {args.timeout:.0f} s per run)\n")
    print(f"interpreter start + `import train_classifier`: {imports:.1f} s (median of 3; part of every run's wall time and setup)\n")
    table: list[str] = []
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="e2e_") as tmp:
        tmp_dir = Path(tmp)
        todo: list[tuple[str, int | str, list[str]]] = []
        if "demo" in cases:
            todo.append(("demo (aggressive)", 20_000, ["--preset", "aggressive", "--epochs", "10"]))
        if "stroke" in cases:
            stroke = Path(args.data_dir) / "stroke.csv"
            if stroke.is_file():
                n = sum(1 for _ in stroke.open()) - 1
                todo.append(("stroke (aggressive)", n, ["--preset", "aggressive", "--csv_path", str(stroke),
                                                        "--target_cols", "stroke", "--id_col", "id", "--epochs", "10"]))
            else:
                notes.append(f"stroke skipped: {stroke} not found")
        for name, n, flags in todo:
            result = run_case(name, n, flags, tmp_dir, args.timeout, mem_limit)
            table.append(result["row"])
            notes += result["notes"]

        if "synthetic" in cases:
            n = rows
            variants = [v.strip() for v in args.synthetic_threads.split(",") if v.strip()]
            while True:
                parquet = tmp_dir / f"synthetic_{n}.parquet"
                t0 = time.perf_counter()
                write_synthetic(parquet, n)
                print(f"wrote {parquet.name}: {n:,} rows, {parquet.stat().st_size / GB:.2f} GB on disk, "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
                flags = ["--csv_path", str(parquet), "--target_cols", "label_rare", "--epochs", "2",
                         "--use_weighted_sampling", "--weight_method", "per_class", "--batch_size", "4096",
                         "--baselines", "none", "--test_fraction", "0.05", "--val_fraction", "0.05",
                         "--quiet", "--no_tensorboard", "--bootstrap", "0", "--no_plots"]
                results = []
                for threads in variants:
                    extra = [] if threads == "auto" else ["--num_threads", threads]
                    label = "CLI default threads" if threads == "auto" else f"--num_threads {threads}"
                    results.append(run_case(f"synthetic {n / 1e6:g}M x {N_FEATURES}, {label}", n, flags + extra,
                                            tmp_dir, args.timeout, mem_limit, matrix_bytes=n * N_FEATURES * 4))
                    if not results[-1]["ok"]:
                        break
                parquet.unlink()
                for result in results:
                    table.append(result["row"])
                    notes += result["notes"]
                if all(r["ok"] for r in results) or n // 2 < MIN_ROWS:
                    break
                notes.append(f"synthetic: {n:,} rows did not complete; capped at {n // 2:,} rows and retried")
                n //= 2

    print("| case | rows | epochs | wall s | peak RSS GB | peak / float32 features | setup s | train s (all epochs) "
          "| finish s | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    print("\nsetup = interpreter + imports + load + split + preprocess + input spec (until config.json is written); "
          "train = model build + epochs incl. validation and checkpoints (until the last last.pt); finish = the rest.")
    for note in notes:
        print(f"\n- {note}")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


def run_case(name: str, rows: int, flags: list[str], tmp_dir: Path, timeout: float, mem_limit: float,
             matrix_bytes: int | None = None) -> dict:
    """One run; ``matrix_bytes`` (the float32 feature matrix's size, known for the synthetic table) gives the
    peak's ratio to it: 1.0 would be the features held exactly once."""
    out_dir = tmp_dir / f"run{len(list(tmp_dir.glob('*.log')))}"
    cmd = [sys.executable, "train_classifier.py", *flags, "--output_dir", str(out_dir)]
    print(f"running {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    start_epoch = time.time()
    result = run_child(cmd, timeout=timeout, mem_limit=mem_limit, log_path=tmp_dir / f"{out_dir.name}.log")
    ph = phases(out_dir, start_epoch)
    epochs = "?"
    metrics = out_dir / "metrics.json"
    if result["failure"] is None and metrics.exists():
        run = json.loads(metrics.read_text())["run"]
        epochs = f"{run['epochs_run']}"
    requested = flags[flags.index("--epochs") + 1]
    setup = ph["config"]
    train = ph["last"] - setup if ph["last"] is not None and setup is not None else None
    finish = result["wall"] - ph["last"] if ph["last"] is not None and result["failure"] is None else None

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    status = "ok" if result["failure"] is None else f"FAILED: {result['failure']}"
    ratio = "-" if not matrix_bytes else f"{result['peak_rss'] / matrix_bytes:.2f}x"
    row = (f"| {name} | {rows:,} | {epochs}/{requested} | {result['wall']:.1f} | {result['peak_rss'] / GB:.2f} | {ratio} "
           f"| {fmt(setup)} | {fmt(train)} | {fmt(finish)} | {status} |")
    print(row, file=sys.stderr, flush=True)
    notes = []
    if result["failure"] is not None:
        notes.append(f"{name}: {result['failure']}; last output lines: " + " / ".join(result["tail"][-3:]))
    return {"row": row, "ok": result["failure"] is None, "notes": notes}


def _meminfo_bytes(field: str) -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
