#!/usr/bin/env python
"""Baseline vs augmented training on the shared real datasets, on the same split and seed.

Usage:
    python benchmarks/augmentation.py                      # stroke and thyroid, balanced preset
    python benchmarks/augmentation.py --preset aggressive --seeds 42,1,2

Each variant runs ``train_classifier.py --compare`` (one run without augmentation, one with it)
and the table gives the test-split macro AUROC / AUPRC / F1 of both and the augmentation's wall
time (resampling or generation plus the quality report), with the synthetic rows' quality score
(0-100), mean over seeds.
"""

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_classifier  # noqa: E402

VARIANTS = {
    "stroke": ("stroke.csv", ["--target_cols", "stroke", "--id_col", "id"], {
        "smotenc (ratio 1.0)": ["--resample", "smotenc"],
        "smotenc (ratio 0.25)": ["--resample", "smotenc", "--resample_ratio", "0.25"],
        "random_over (ratio 1.0)": ["--resample", "random_over"],
        "gaussian_copula conservative": ["--generator", "gaussian_copula", "--augment_strategy", "conservative"],
        "gaussian_copula full": ["--generator", "gaussian_copula", "--augment_strategy", "full"],
        "marginal conservative": ["--generator", "marginal", "--augment_strategy", "conservative"],
        "uniform conservative": ["--generator", "uniform", "--augment_strategy", "conservative"],
        "ctgan conservative": ["--generator", "ctgan", "--augment_strategy", "conservative"],
        "tvae conservative": ["--generator", "tvae", "--augment_strategy", "conservative"],
    }),
    "mammography": ("mammography.csv", ["--target_cols", "Class"], {
        "smote (ratio 1.0)": ["--resample", "smote"],
        "gaussian_copula conservative": ["--generator", "gaussian_copula", "--augment_strategy", "conservative"],
    }),
    "thyroid": ("thyroid_multilabel.csv", [], {
        "mlsmote (ratio 1.0)": ["--resample", "mlsmote"],
        "mlsmote (ratio 0.5)": ["--resample", "mlsmote", "--resample_ratio", "0.5"],
    }),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--datasets", default="stroke,thyroid")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"preset {args.preset}, seeds {seeds}: test-split macro metrics, real rows only\n")
    print("| dataset | augmentation | synthetic rows | quality score | disc. AUROC | near-copies | AUROC | AUPRC | F1 | aug. seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        filename, flags, variants = VARIANTS[name]
        path = Path(args.data_dir) / filename
        if not path.is_file():
            print(f"| {name} | skipped: {path} not found | | | | | | | | |")
            continue
        baseline_rows: list = []
        for label, extra in variants.items():
            rows, synth, disc, near, secs, score = [], [], [], [], [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
                    cmp = train_classifier.run(["--preset", args.preset, "--csv_path", str(path), *flags, *extra,
                                                "--compare", "--output_dir", out, "--seed", str(seed),
                                                "--quiet", "--no_tensorboard", "--baselines", "none", "--bootstrap", "0", "--no_plots"])
                macro = cmp["macro"]
                if len(baseline_rows) < len(seeds):
                    baseline_rows.append([macro[k]["baseline"] for k in ("auroc", "auprc", "f1")])
                rows.append([macro[k]["augmented"] for k in ("auroc", "auprc", "f1")])
                prov = cmp["augmentation"]["augmented"]["provenance"]
                synth.append(prov["final"]["rows"]["synthetic"])
                secs.append(sum(step.get("seconds", 0.0) for step in prov["steps"]))
                quality = cmp["augmentation"]["augmented"].get("quality") or {}
                score.append((quality.get("score") or {}).get("score", np.nan))
                disc.append(quality.get("discriminative_auroc", np.nan))
                near.append((quality.get("privacy") or {}).get("near_copy_share", np.nan))
            if label == next(iter(variants)):
                b = np.mean(baseline_rows, axis=0)
                print(f"| {name} | none | 0 | | | | {b[0]:.3f} | {b[1]:.3f} | {b[2]:.3f} | |")
            a = np.mean(rows, axis=0)
            print(f"| {name} | {label} | {np.mean(synth):.0f} | {np.nanmean(score):.0f} | {np.nanmean(disc):.3f} | {np.nanmean(near):.3f} | "
                  f"{a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {np.mean(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
