#!/usr/bin/env python
"""How calibrated each ``--calibration`` method leaves the network's probabilities, per preset.

Usage:
    python benchmarks/calibration.py                                     # every method, three presets
    python benchmarks/calibration.py --datasets stroke,demo --presets balanced,aggressive --seeds 42,1,2

For each table, preset and seed it trains once per method (same split, same seed, so the same
network: calibration happens after training) and prints the mean over seeds of the macro test
ECE (10 bins of equal row count), Brier score, calibration slope and intercept, and the macro test
AUPRC (which a monotone calibration leaves unchanged; isotonic can tie scores). Each ratio is the
method's ECE over ``none``'s in the same run: below 1 is better calibrated.
"""

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from quality import dataset_flags, run_one  # noqa: E402

from imbalance.calibration import CALIBRATIONS  # noqa: E402

KEYS = ("ece", "brier", "slope", "intercept")


def macro(report: dict) -> dict[str, float]:
    after = report["calibration"]["after"]
    values = {key: float(np.nanmean([m[key] for m in after.values()])) for key in KEYS}
    values["auprc"] = report["models"]["network"]["macro"]["auprc"]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="stroke,mammography,thyroid,demo")
    parser.add_argument("--presets", default="balanced,aggressive,very_aggressive")
    parser.add_argument("--methods", default=",".join(CALIBRATIONS.names()))
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--extra", default="", help="more train_classifier.py flags for every run, quoted")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    if "none" not in methods:
        methods = ["none", *methods]
    print(f"seeds {seeds}: mean over seeds of the macro test values\n")
    print("| dataset | preset | calibration | ECE | ECE / none | Brier | slope | intercept | AUPRC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        flags = dataset_flags(name, args.data_dir, columns=9)
        if flags is None:
            continue
        for preset in args.presets.split(","):
            results = {}
            for method in methods:
                runs = [macro(run_one(["--preset", preset, *flags, "--seed", str(seed), "--baselines", "none",
                                       "--calibration", method, *shlex.split(args.extra)])[0]) for seed in seeds]
                results[method] = {key: float(np.mean([r[key] for r in runs])) for key in (*KEYS, "auprc")}
                r = results[method]
                print(f"| {name} | {preset} | {method} | {r['ece']:.4f} | {r['ece'] / results['none']['ece']:.2f} | "
                      f"{r['brier']:.4f} | {r['slope']:.2f} | {r['intercept']:.2f} | {r['auprc']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
