#!/usr/bin/env python
"""Test-split quality of a preset on the shared real datasets, next to the baselines.

Usage:
    python benchmarks/quality.py --preset aggressive
    python benchmarks/quality.py --preset balanced --datasets stroke,thyroid --seeds 42,1,2

For each dataset and seed it runs train_classifier.py (stratified 70/15/15 split, thresholds
tuned on validation) and prints the mean over seeds of the macro test AUROC / AUPRC / F1 for the
network and for the logistic-regression and gradient-boosting baselines fitted on the same split.
"""

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_classifier  # noqa: E402

DATASETS = {
    "stroke": ("stroke.csv", ["--target_cols", "stroke", "--id_col", "id"]),
    "mammography": ("mammography.csv", ["--target_cols", "Class"]),
    "thyroid": ("thyroid_multilabel.csv", []),
    "demo": (None, []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="aggressive")
    parser.add_argument("--datasets", default="stroke,mammography,thyroid")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--baselines", default="logistic,hgb")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"preset {args.preset}, seeds {seeds}: mean macro test AUROC / AUPRC / F1\n")
    print("| dataset | model | AUROC | AUPRC | F1 | best epoch / epochs run | seconds per run |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        filename, flags = DATASETS[name]
        if filename is not None:
            path = Path(args.data_dir) / filename
            if not path.is_file():
                print(f"| {name} | skipped: {path} not found | | | | | |")
                continue
            flags = ["--csv_path", str(path), *flags]
        scores: dict[str, list] = {}
        epochs, seconds = [], []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # the run's own report table
                    report = train_classifier.run([
                        "--preset", args.preset, *flags, "--output_dir", out, "--seed", str(seed),
                        "--quiet", "--no_tensorboard", "--baselines", args.baselines,
                    ])
                seconds.append(time.perf_counter() - started)
            epochs.append(f"{report['run']['best_epoch']}/{report['run']['epochs_run']}")
            for model, metrics in report["models"].items():
                scores.setdefault(model, []).append([metrics["macro"][k] for k in ("auroc", "auprc", "f1")])
        for model, values in scores.items():
            auroc, auprc, f1 = np.mean(values, axis=0)
            extra = f"{', '.join(epochs)} | {np.mean(seconds):.0f}" if model == "network" else " | "
            print(f"| {name} | {model} | {auroc:.3f} | {auprc:.3f} | {f1:.3f} | {extra} |", flush=True)


if __name__ == "__main__":
    main()
