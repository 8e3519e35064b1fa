#!/usr/bin/env python
"""Time every registered resampler on a real training split, in the space training uses.

Usage:
    python benchmarks/resamplers.py [--ratio 1.0] [--data_dir ../shared/data]

Each resampler runs on the 70% training split of a shared dataset it applies to: numeric-only
samplers on mammography (all numeric), samplers that handle categories on stroke (mixed types),
MLSMOTE on thyroid (multi-label). Prints rows in / out, synthetic rows and seconds.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imbalance.data import load_table  # noqa: E402
from imbalance.preprocessing import TabularPreprocessor  # noqa: E402
from imbalance.resampling import RESAMPLERS, resample  # noqa: E402
from imbalance.splitting import split_indices  # noqa: E402

DATASETS = {
    "stroke": ("stroke.csv", ["stroke"], "id"),
    "mammography": ("mammography.csv", ["Class"], None),
    "thyroid": ("thyroid_multilabel.csv", [], None),
}


def training_split(data_dir: Path, name: str):
    filename, targets, id_col = DATASETS[name]
    table = load_table(str(data_dir / filename), target_cols=targets, id_col=id_col)
    splits = split_indices(table.labels, val_fraction=0.15, test_fraction=0.15, stratify=True, seed=42, label_names=table.label_names)
    pre = TabularPreprocessor().fit(table.features.iloc[splits["train"]])
    x = pre.transform(table.features.iloc[splits["train"]]).compact()
    categorical = [kind == "categorical" for _, kind in pre.compact_columns]
    return x, table.labels[splits["train"]], categorical, [n for n, _ in pre.compact_columns], table.label_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    cache = {}
    print(f"resample_ratio {args.ratio}, k_neighbors 5, seed 42\n")
    print("| resampler | dataset | rows in | rows out | synthetic | duplicated | removed | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for method in RESAMPLERS.names():
        columns = RESAMPLERS.get(method).columns
        dataset = "thyroid" if method == "mlsmote" else "mammography" if columns == "numeric" else "stroke"
        if not (data_dir / DATASETS[dataset][0]).is_file():
            print(f"| {method} | {dataset}: not found | | | | | | |")
            continue
        if dataset not in cache:
            cache[dataset] = training_split(data_dir, dataset)
        x, y, categorical, columns_names, labels = cache[dataset]
        if columns == "categorical":  # SMOTEN: the categorical columns alone
            keep = np.flatnonzero(categorical)
            x, categorical, columns_names = x[:, keep], [True] * len(keep), [columns_names[j] for j in keep]
        started = time.perf_counter()
        result = resample(x, y, method=method, ratio=args.ratio, k_neighbors=5, categorical=categorical,
                          column_names=columns_names, label_names=labels, seed=42)
        seconds = time.perf_counter() - started
        rows = result.provenance["rows"]
        print(f"| {method} | {dataset} | {len(x)} | {len(result.x)} | {rows['synthetic']} | {rows['duplicated']} | "
              f"{rows['real_removed']} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
