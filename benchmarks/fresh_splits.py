#!/usr/bin/env python
"""Where ``--preset auto`` draws its fresh validation rows from, and what it does to the choice.

Usage:
    python benchmarks/fresh_splits.py --dataset stroke --seed 1
    python benchmarks/fresh_splits.py --dataset stroke --seed 1 --search_csv RUN/search.csv --trials 165,153

For each configuration (by default the search's starting points: the balanced preset's recipe
with each model it starts from; ``--search_csv`` and ``--trials`` add trials of an earlier
``--preset auto`` run on the same data and seed, with their settings and best epoch count), it
trains the configuration on ``--rounds`` fresh train/validation splits of the non-test rows, for
its best epoch count on the original split and without early stopping, as the search's
re-scoring does, and prints the mean validation macro AUPRC over the fresh splits drawn two ways:

- ``from all non-test rows``: the reference, each fresh validation split drawn from the training
  and validation rows together (so it holds about a validation split's share of the rows the
  search chose its trials on);
- ``from training rows``: what the search does (``imbalance.auto.resplit``), the fresh validation
  rows drawn from the training split alone.

and next to them the test macro AUPRC of the configuration trained on the original split (the
test rows reach nothing else). A trial the search chose for its luck on the original validation
rows keeps part of it in the first column and none in the second.
"""

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imbalance import auto  # noqa: E402
from imbalance.config import parse_config  # noqa: E402
from imbalance.distributed import DistContext  # noqa: E402
from imbalance.metrics import label_metrics  # noqa: E402
from imbalance.pipeline import PreparedData, prepare_data  # noqa: E402
from imbalance.preprocessing import EncodedRows  # noqa: E402
from imbalance.splitting import split_indices  # noqa: E402
from imbalance.training import TensorRows, predict_proba  # noqa: E402

DATASETS = {
    "stroke": ("stroke.csv", ["--target_cols", "stroke", "--id_col", "id"]),
    "mammography": ("mammography.csv", ["--target_cols", "Class"]),
    "thyroid": ("thyroid_multilabel.csv", []),
}
# search.csv columns that are the trial's parameters (the rest are its scores and seconds)
PARAMS = ("model", "sampling", "loss", "class_weights", "class_weight_multiplier", "more_rows", "more_rows_ratio",
          "generated_ratio", "focal_gamma", "lr", "weight_decay", "dropout")


def resplit_all_rows(data: PreparedData, seed: int) -> PreparedData:
    """The reference draw: a fresh stratified split of the training and validation rows together."""
    rows = EncodedRows.concat([data.real_train, data.rows["val"]])
    labels = np.concatenate([data.real_train_labels, data.labels["val"]])
    positions = np.concatenate([data.splits["train"], data.splits["val"]])
    features = pd.concat([data.train_features, data.val_features])
    parts = split_indices(labels, val_fraction=len(data.splits["val"]) / len(positions), test_fraction=0.0, stratify=True,
                          seed=seed, label_names=data.label_names)
    train, val = parts["train"], parts["val"]
    return replace(data, splits={**data.splits, "train": positions[train], "val": positions[val]},
                   rows={**data.rows, "train": rows.take(train), "val": rows.take(val)},
                   labels={**data.labels, "train": labels[train], "val": labels[val]},
                   real_train=rows.take(train), real_train_labels=labels[train],
                   train_features=features.iloc[train], val_features=features.iloc[val], augmented=None)


def search_trials(path: str, numbers: list[int]) -> dict[str, dict]:
    table = pd.read_csv(path).set_index("trial")
    missing = [n for n in numbers if n not in table.index]
    if missing:
        sys.exit(f"error: --trials {','.join(map(str, missing))}: not in {path}; pick trial numbers from its 'trial' column")
    out = {}
    for n in numbers:
        row = table.loc[n]
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                  if k in PARAMS and not (isinstance(v, float) and math.isnan(v))}
        out[f"trial {n} ({params['model']})"] = params
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="stroke")
    parser.add_argument("--data_dir", default="../shared/data")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=auto.RESPLIT_ROUNDS)
    parser.add_argument("--search_csv", help="search.csv of a --preset auto run on the same dataset and seed")
    parser.add_argument("--trials", default="", help="trial numbers from --search_csv, comma-separated")
    args = parser.parse_args()
    file, flags = DATASETS[args.dataset]
    csv = Path(args.data_dir) / file
    if not csv.is_file():
        sys.exit(f"error: {csv} not found; pass --data_dir with the shared data folder")
    numbers = [int(n) for n in args.trials.split(",") if n.strip()]
    if numbers and not args.search_csv:
        sys.exit("error: --trials needs --search_csv (the search.csv they come from)")

    import optuna
    import torch
    torch.set_num_threads(1)
    cfg, _ = parse_config(["--csv_path", str(csv), *flags, "--seed", str(args.seed), "--preset", "auto",
                           "--output_dir", "unused", "--quiet"])
    data = prepare_data(cfg, dist=DistContext(), keep_search_rows=True)
    device = torch.device("cpu")
    configs = {f"balanced recipe, {p['model']}": p for p in auto.STARTING_POINTS}
    if numbers:
        configs.update(search_trials(args.search_csv, numbers))

    def test_auprc(members) -> float:
        prob = predict_proba(members, TensorRows.from_numpy(data.rows["test"], device)).numpy()
        return float(label_metrics(data.labels["test"], prob, 0.5, data.label_names)["macro"]["auprc"])

    print(f"{args.dataset}, seed {args.seed}: {len(data.splits['val'])} validation rows, "
          f"{int(data.labels['val'].sum(axis=0).min())} positives in the rarest label; {args.rounds} fresh splits\n")
    print("| configuration | best epoch | original validation | fresh, from all non-test rows | fresh, from training rows | test | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, params in configs.items():
        started = time.perf_counter()
        trial_cfg, _ = auto.suggest(optuna.trial.FixedTrial(params), cfg, data)
        original = auto._fit_and_score(trial_cfg, data, device=device, stop_check=lambda record: None)
        fixed = replace(trial_cfg, epochs=max(1, original.best_epoch), early_stop_patience=0)
        means = []
        for draw in (resplit_all_rows, auto.resplit):
            scores = [auto._fit_and_score(fixed, draw(data, cfg.seed + 1000 * (k + 1)), device=device,
                                          stop_check=lambda record: None, last_epoch=True).auprc for k in range(args.rounds)]
            means.append(float(np.mean(scores)))
        print(f"| {name} | {original.best_epoch} | {original.auprc:.4f} | {means[0]:.4f} | {means[1]:.4f} | "
              f"{test_auprc(original.trained.members):.4f} | {time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
