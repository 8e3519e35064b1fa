#!/usr/bin/env python
"""Seconds per training run of each model's defaults, as a multiple of the MLP's, on one table.

Usage:
    python benchmarks/model_time.py                                  # stroke, balanced preset, seeds 42,1,2
    python benchmarks/model_time.py --models mlp,tabm --seeds 42 --extra "--num_threads 2"

Each run is ``python train_classifier.py --preset P --csv_path ... --seed S --model M`` in a fresh
process, as a user runs it: the wall-clock time includes starting Python and importing torch.
The models take turns within each seed, so that a change in the machine's load falls on all of
them. It prints, per model, the mean wall-clock seconds, the mean seconds inside the run (from
metrics.json: data preparation, training, scoring and saving, imports excluded), the epochs run,
and both as a multiple of the MLP's (the issue's budget: at most 3x the MLP's run).
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from models import MODELS  # noqa: E402

TABLES = {
    "stroke": ("stroke.csv", ["--target_cols", "stroke", "--id_col", "id"]),
    "mammography": ("mammography.csv", ["--target_cols", "Class"]),
    "thyroid": ("thyroid_multilabel.csv", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="stroke", choices=sorted(TABLES))
    parser.add_argument("--models", default="all", help=f"comma-separated, mlp first, or all ({', '.join(MODELS.names())})")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--extra", default="", help="more train_classifier.py flags for every run, quoted")
    args = parser.parse_args()
    models = MODELS.names() if args.models == "all" else args.models.split(",")
    if models[0] != "mlp":
        models = ["mlp", *[m for m in models if m != "mlp"]]
    filename, flags = TABLES[args.dataset]
    path = Path(args.data_dir) / filename
    if not path.is_file():
        sys.exit(f"model_time.py: error: {path} not found; pass --data_dir")
    wall: dict[str, list[float]] = {m: [] for m in models}
    inside: dict[str, list[float]] = {m: [] for m in models}
    epochs: dict[str, list[int]] = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds.split(","):
            for model in models:
                out = Path(tmp) / f"{model}_{seed}"
                command = [sys.executable, str(ROOT / "train_classifier.py"), "--preset", args.preset, "--csv_path", str(path),
                           *flags, "--seed", seed, "--model", model, "--baselines", "none", "--quiet", "--no_tensorboard",
                           "--bootstrap", "0", "--no_plots", "--output_dir", str(out), *shlex.split(args.extra)]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                took = time.perf_counter() - started
                if done.returncode:
                    sys.exit(f"model_time.py: error: {model} seed {seed} failed: {done.stderr.strip()[-500:]}")
                run = json.loads((out / "metrics.json").read_text())["run"]
                wall[model].append(took)
                inside[model].append(run["seconds"])
                epochs[model].append(run["epochs_run"])
    print(f"{args.dataset}, preset {args.preset}, seeds {args.seeds}, extra flags {args.extra or 'none'}: mean per run\n")
    print("| model | wall-clock s | x mlp | in-run s | x mlp | epochs run |")
    print("|---|---|---|---|---|---|")
    for model in models:
        w, i = np.mean(wall[model]), np.mean(inside[model])
        print(f"| {model} | {w:.1f} | {w / np.mean(wall['mlp']):.2f} | {i:.1f} | {i / np.mean(inside['mlp']):.2f} | "
              f"{', '.join(map(str, epochs[model]))} |")


if __name__ == "__main__":
    main()
