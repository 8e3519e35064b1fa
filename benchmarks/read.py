#!/usr/bin/env python
"""Reading a large table: the toolkit's ``read_table`` against plain pandas, time and peak memory.

Usage:
    python benchmarks/read.py                 # 2M rows x 64 float features + label, CSV and Parquet (~4 min)
    python benchmarks/read.py --quick         # 300k rows (~40 s)

The table (``--rows`` x 64 standard-normal features written with 6 decimals, a 1% 0/1 label) is
written once as CSV and once as Parquet (float64 columns, as most exports are) to a temporary
folder. Each reader then runs in its own child process, so that its peak RSS (``ru_maxrss``) is
its own:

* toolkit CSV:      ``imbalance.data.read_table(path)``; with ``LARGE_CSV_BYTES`` at its default
  (128 MB) a file this size is read in chunks of 500,000 rows, float columns stored as float32;
* pandas CSV:       ``pd.read_csv(path)`` (float64);
* toolkit Parquet:  ``read_table(path.parquet)`` (row groups, ``self_destruct``, float32);
* pandas Parquet:   ``pd.read_parquet(path)`` (float64).

Peak is reported minus the child's RSS after its imports, and as a multiple of the table's
float32 size (rows x 65 x 4 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import _rss_bytes  # noqa: E402
N_FEATURES = 64
GB = 1024**3


def worker(method: str, path: str) -> None:
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from imbalance.data import read_table

    base = _rss_bytes(os.getpid())
    start = time.perf_counter()
    if method.startswith("toolkit"):
        frame = read_table(path)
    elif path.endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "extra_peak": peak - base, "rows": len(frame),
                      "frame_bytes": int(frame.memory_usage(index=False).sum())}))


def write_table(folder: Path, rows: int, chunk: int = 250_000) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    csv_path, pq_path = folder / "table.csv", folder / "table.parquet"
    names = [f"f{j}" for j in range(N_FEATURES)] + ["label_y"]
    schema = pa.schema([(n, pa.float64()) for n in names[:-1]] + [("label_y", pa.int64())])
    with csv_path.open("w") as fh, pq.ParquetWriter(pq_path, schema, compression="none", use_dictionary=False) as pw:
        fh.write(",".join(names) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = np.round(rng.standard_normal((n, N_FEATURES)), 6)
            y = (rng.random(n) < 0.01).astype(np.int64)
            np.savetxt(fh, np.column_stack([x, y]), fmt=["%.6f"] * N_FEATURES + ["%d"], delimiter=",")
            pw.write_table(pa.Table.from_arrays([pa.array(x[:, j]) for j in range(N_FEATURES)] + [pa.array(y)], schema=schema))
    return csv_path, pq_path


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300k rows")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 2M, --quick 300k)")
    args = parser.parse_args()
    rows = args.rows or (300_000 if args.quick else 2_000_000)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="read_") as tmp:
        t0 = time.perf_counter()
        csv_path, pq_path = write_table(Path(tmp), rows)
        print(f"wrote {rows:,} rows: CSV {csv_path.stat().st_size / GB:.2f} GB, Parquet {pq_path.stat().st_size / GB:.2f} GB "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        f32 = rows * (N_FEATURES + 1) * 4
        print(f"# Reading {rows:,} rows x {N_FEATURES} float features + a label; {os.cpu_count()} CPUs\n")
        print(f"CSV {csv_path.stat().st_size / GB:.2f} GB, Parquet {pq_path.stat().st_size / GB:.2f} GB; "
              f"float32 size of the table {f32 / GB:.2f} GB. Peak = the reader's RSS high-water mark minus its RSS "
              "after imports.\n")
        print("| file | reader | seconds | peak extra GB | peak / float32 table | frame GB | time vs pandas | peak vs pandas |")
        print("|---|---|---|---|---|---|---|---|")
        for kind, path in (("CSV", csv_path), ("Parquet", pq_path)):
            results = {}
            for method in ("toolkit", "pandas"):
                out = subprocess.run([sys.executable, __file__, "--worker", method, str(path)], capture_output=True,
                                     text=True, check=True)
                results[method] = json.loads(out.stdout.strip().splitlines()[-1])
            for method, label in (("toolkit", "toolkit read_table"), ("pandas", "pandas default")):
                r, ref = results[method], results["pandas"]
                print(f"| {kind} | {label} | {r['seconds']:.1f} | {r['extra_peak'] / GB:.2f} | {r['extra_peak'] / f32:.2f}x "
                      f"| {r['frame_bytes'] / GB:.2f} | {r['seconds'] / ref['seconds']:.2f}x | "
                      f"{r['extra_peak'] / ref['extra_peak']:.2f}x |")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
