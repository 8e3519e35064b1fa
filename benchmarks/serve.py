#!/usr/bin/env python
"""A bounded load test of serve.py on loopback, next to predict.py's rows per second.

Usage:
    python benchmarks/serve.py                                   # trains a demo model first
    python benchmarks/serve.py --checkpoint checkpoints/stroke --clients 8 --requests 200

Starts serve.py in a subprocess on a free loopback port and measures, with N concurrent clients:
single-record ``/predict`` latency (p50 / p95 / p99 over clients x requests), ``/predict/batch``
throughput with batches of ``--batch_rows`` rows (rows per second over all clients), the number of
failed requests (must be 0), and the server's peak resident memory (VmHWM). Then predict.py on a
CSV of the same rows: rows per second of the whole command (reading, scoring, writing) and of the
scoring alone. Every figure comes from this run, on this machine.
"""

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imbalance.demo import DEMO_LABELS, make_demo_cohort  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a run folder; default: train a small demo model first")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="single-record requests per client")
    parser.add_argument("--batches", type=int, default=5, help="batch requests per client")
    parser.add_argument("--batch_rows", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = Path(args.checkpoint) if args.checkpoint else tmp / "run"
        if not args.checkpoint:
            subprocess.run([sys.executable, str(ROOT / "train_classifier.py"), "--preset", "balanced", "--demo_rows", "5000",
                            "--epochs", "10", "--output_dir", str(run), "--quiet", "--no_tensorboard", "--no_plots",
                            "--bootstrap", "0", "--baselines", "none"], check=True, stdout=subprocess.DEVNULL)
        rows = make_demo_cohort(n_rows=max(args.batch_rows, 1000) * 2, seed=5).drop(columns=list(DEMO_LABELS))
        records = json.loads(rows.to_json(orient="records"))
        port = _free_port()
        server = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--checkpoint", str(run), "--port", str(port),
                                   "--max_batch_rows", str(args.batch_rows)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            singles = [json.dumps(records[i % len(records)]).encode() for i in range(args.clients * args.requests)]
            _post(f"{url}/predict", singles[0])  # warm up
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                single = list(pool.map(lambda body: _post(f"{url}/predict", body), singles))
            single_wall = time.perf_counter() - started
            batch_bodies = [json.dumps({"records": records[(i * 97) % len(records):][:args.batch_rows] or records[:args.batch_rows]}).encode()
                            for i in range(args.clients * args.batches)]
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                batch = list(pool.map(lambda body: _post(f"{url}/predict/batch", body), batch_bodies))
            batch_wall = time.perf_counter() - started
            peak = _peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        latencies = np.array([seconds for _, seconds in single]) * 1000
        errors = sum(status != 200 for status, _ in single + batch)
        batch_rows = sum(len(json.loads(b)["records"]) for b in batch_bodies)

        csv = tmp / "rows.csv"
        rows.head(args.batch_rows * 2).to_csv(csv, index=False)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(run), "--csv_path", str(csv),
                        "--output", str(tmp / "p.csv")], check=True, stdout=subprocess.DEVNULL)
        command_wall = time.perf_counter() - started
        from imbalance.inference import Predictor

        predictor = Predictor.load(run)
        frame = rows.head(args.batch_rows * 2)
        predictor.predict_frame(frame)
        started = time.perf_counter()
        predictor.predict_frame(frame)
        scoring_wall = time.perf_counter() - started

    print(f"serve.py on loopback, {args.clients} concurrent clients, one worker process:\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| /predict, one record: p50 / p95 / p99 latency | {np.percentile(latencies, 50):.1f} / {np.percentile(latencies, 95):.1f} / "
          f"{np.percentile(latencies, 99):.1f} ms ({len(single)} requests, {len(single) / single_wall:.0f} requests/s) |")
    print(f"| /predict/batch, {args.batch_rows} records per request | {batch_rows / batch_wall:,.0f} rows/s ({len(batch)} requests) |")
    print(f"| failed requests | {errors} |")
    print(f"| server peak memory (VmHWM) | {peak:.0f} MB |")
    n = len(frame)
    print(f"| predict.py on a {n}-row CSV, whole command | {n / command_wall:,.0f} rows/s ({command_wall:.1f} s with start-up) |")
    print(f"| Predictor.predict_frame, scoring alone | {n / scoring_wall:,.0f} rows/s |")


if __name__ == "__main__":
    main()
