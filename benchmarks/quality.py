#!/usr/bin/env python
"""Test-split quality of the registered models on the shared real datasets, next to the baselines.

Usage:
    python benchmarks/quality.py --model all                          # every model, balanced preset
    python benchmarks/quality.py --model mlp,mlp:piecewise_linear     # MODEL:EMBEDDING sets --num_embeddings
    python benchmarks/quality.py --model tabm --datasets stroke,thyroid --seeds 42,1,2
    python benchmarks/quality.py --preset aggressive --model mlp
    python benchmarks/quality.py --model resnet --extra "--num_embeddings periodic --lr 5e-4"
    python benchmarks/quality.py --model "resnet --ensemble 3,tabm --model_args k=16"
    python benchmarks/quality.py --preset auto --extra "--time_budget 300" --datasets stroke,mammography,thyroid

A model is ``NAME`` or ``NAME:EMBEDDING``, optionally followed by train_classifier.py flags of
its own (``--extra`` adds flags to every model). ``--model all`` is every registered model with
its default numeric embedding, then the MLP with piecewise-linear embeddings (its default is
none: they cost about 9x per row at the large batches of big tables, but on small ones they are
the MLP's best form), then a seed ensemble of three ResNets (``--ensemble 3``: the strongest
network on thyroid and mammography once the variance of a single run is averaged away, at three
times the seconds).

Put mlp first in --model to get every other model's seconds per run as a multiple of the MLP's,
measured in the same run (``--model all`` does).

For each dataset, model and seed it runs train_classifier.py (stratified 70/15/15 split,
thresholds tuned on validation for F1) and prints the mean over seeds of the macro test AUROC /
AUPRC / F1 and the seconds per run (in-process: imports excluded), for every model and for the
logistic-regression and gradient-boosting baselines fitted on the same splits by runs of their
own. It ends with, per dataset, the best model's AUPRC over the better baseline's, and their geometric mean over the datasets
that have both (the issue's target: every ratio >= 1 and the geometric mean >= 1.05 on stroke,
mammography and thyroid).
"""

import argparse
import contextlib
import io
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_classifier  # noqa: E402
from models import MODELS  # noqa: E402

DATASETS = {
    "stroke": ("stroke.csv", ["--target_cols", "stroke", "--id_col", "id"]),
    "mammography": ("mammography.csv", ["--target_cols", "Class"]),
    "thyroid": ("thyroid_multilabel.csv", []),
    "demo": (None, []),
}
METRICS = ("auroc", "auprc", "f1")
ALL_MODELS = [*MODELS.names(), "mlp:piecewise_linear", "resnet --ensemble 3"]


SEARCHED = "auto (searched)"  # the one "model" of --preset auto: the search picks it per run


def model_flags(model: str) -> list[str]:
    """``NAME``, ``NAME:EMBEDDING`` and either followed by flags of its own, as train_classifier.py flags."""
    if model == SEARCHED:
        return []
    words = shlex.split(model)
    if not words:
        sys.exit("quality.py: error: --model has an empty entry; give NAME[:EMBEDDING] [flags], comma-separated")
    name, _, embedding = words[0].partition(":")
    if name not in MODELS.names():
        sys.exit(f"quality.py: error: --model {words[0]!r}: unknown model; choose from {', '.join(MODELS.names())}")
    return ["--model", name, *(["--num_embeddings", embedding] if embedding else []), *words[1:]]


def dataset_flags(name: str, data_dir: str, *, columns: int) -> "list[str] | None":
    """train_classifier.py flags for a table; None (with a table row saying so) when its file is absent."""
    filename, flags = DATASETS[name]
    if filename is None:
        return list(flags)
    path = Path(data_dir) / filename
    if not path.is_file():
        print(f"| {name} | skipped: {path} not found |" + " |" * (columns - 2))
        return None
    return ["--csv_path", str(path), *flags]


def run_one(flags: list[str]) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own report table
            # the training and its scores only: no intervals or plots (benchmarks/calibration.py reads the calibration)
            report = train_classifier.run([*flags, "--output_dir", out, "--quiet", "--no_tensorboard", "--bootstrap", "0", "--no_plots"])
        return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--model", default="all", help="MODEL or MODEL:EMBEDDING, optionally followed by flags for that model, a comma-separated list of them, "
                        f"or all ({', '.join(ALL_MODELS)})")
    parser.add_argument("--datasets", default="stroke,mammography,thyroid,demo")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--baselines", default="logistic,hgb")
    parser.add_argument("--extra", default="", help="more train_classifier.py flags for every run, quoted")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    models = ALL_MODELS if args.model == "all" else [m.strip() for m in args.model.split(",")]
    if args.preset == "auto":  # the search chooses the model: one row per table (pass --extra "--time_budget S")
        models = [SEARCHED]
    for model in models:
        model_flags(model)  # an unknown model stops here, before any run
    extra = shlex.split(args.extra)
    print(f"preset {args.preset}, models {', '.join(models)}, seeds {seeds}, extra flags {extra or 'none'}: "
          "mean macro test AUROC / AUPRC / F1\n")
    print("| dataset | model | AUROC | AUPRC | F1 | best epoch / epochs run | seconds per run |")
    print("|---|---|---|---|---|---|---|")
    best_ratio: dict[str, float] = {}
    for name in args.datasets.split(","):
        flags = dataset_flags(name, args.data_dir, columns=7)
        if flags is None:
            continue
        network: dict[str, dict] = {}
        seconds: dict[str, float] = {}
        baselines: dict[str, list] = {}
        for seed in seeds if args.baselines != "none" else []:
            # The baselines on each seed's split (the split depends only on the seed), fitted by a
            # one-epoch run of their own so that the models' seconds are their own.
            # (auto's base preset for them: the same split, without a search of their own)
            report, _ = run_one(["--preset", "balanced" if args.preset == "auto" else args.preset, *flags, "--seed", str(seed),
                                 *([] if args.preset == "auto" else extra), "--model", "mlp", "--epochs", "1",
                                 "--baselines", args.baselines])
            for baseline, metrics in report["models"].items():
                if baseline != "network":
                    baselines.setdefault(baseline, []).append([metrics["macro"][k] for k in METRICS])
        for model in models:
            scores, epochs, took = [], [], []
            for seed in seeds:
                report, run_seconds = run_one(["--preset", args.preset, *flags, "--seed", str(seed), *model_flags(model),
                                               "--baselines", "none", *extra])
                took.append(run_seconds)
                epochs.append(f"{report['run']['best_epoch']}/{report['run']['epochs_run']}")
                scores.append([report["models"]["network"]["macro"][k] for k in METRICS])
            mean = dict(zip(METRICS, np.mean(scores, axis=0)))
            network[model], seconds[model] = mean, float(np.mean(took))
            versus = f" ({seconds[model] / seconds['mlp']:.1f}x mlp)" if "mlp" in seconds and model != "mlp" else ""
            print(f"| {name} | {model} | {mean['auroc']:.3f} | {mean['auprc']:.3f} | {mean['f1']:.3f} | "
                  f"{', '.join(epochs)} | {seconds[model]:.1f}{versus} |", flush=True)
        for baseline, values in baselines.items():
            mean = dict(zip(METRICS, np.mean(values, axis=0)))
            print(f"| {name} | {baseline} | {mean['auroc']:.3f} | {mean['auprc']:.3f} | {mean['f1']:.3f} | | |", flush=True)
        if network and baselines:
            better = max(np.mean(v, axis=0)[1] for v in baselines.values())
            best_model = max(network, key=lambda m: network[m]["auprc"])
            best_ratio[name] = network[best_model]["auprc"] / better
            print(f"| {name} | best model {best_model} / better baseline AUPRC | | {best_ratio[name]:.3f} | | | |", flush=True)
    if best_ratio:
        print("\nbest model AUPRC / better baseline AUPRC: "
              + ", ".join(f"{n} {r:.3f}" for n, r in best_ratio.items())
              + f"; geometric mean {math.exp(np.mean(np.log(list(best_ratio.values())))):.3f}")


if __name__ == "__main__":
    main()
