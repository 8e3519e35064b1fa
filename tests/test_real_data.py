"""The aggressive preset on real imbalanced tables from ../shared/data (skipped when absent).

Set IMBALANCE_DATA_DIR to point elsewhere. The files are never copied into the project.
"""

import os
from pathlib import Path

import pytest

import train_classifier

DATA_DIR = Path(os.environ.get("IMBALANCE_DATA_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))


def _data(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared datasets are not on this machine (set IMBALANCE_DATA_DIR)")
    return path


def test_aggressive_preset_on_stroke_predicts_positives_and_ranks_well(tmp_path):
    report = train_classifier.run([
        "--preset", "aggressive", "--csv_path", str(_data("stroke.csv")), "--target_cols", "stroke",
        "--id_col", "id", "--output_dir", str(tmp_path / "stroke"), "--quiet", "--no_tensorboard", "--baselines", "none",
    ])
    stroke = report["models"]["network"]["labels"]["stroke"]
    assert report["split"] == "test"
    assert stroke["n_pos_pred"] > 0 and stroke["tp"] > 0
    assert stroke["auroc"] >= 0.78, stroke


def test_aggressive_preset_on_thyroid_leaves_no_label_all_negative(tmp_path):
    report = train_classifier.run([
        "--preset", "aggressive", "--csv_path", str(_data("thyroid_multilabel.csv")),
        "--output_dir", str(tmp_path / "thyroid"), "--quiet", "--no_tensorboard", "--baselines", "none",
    ])
    labels = report["models"]["network"]["labels"]
    assert len(labels) == 7 and all(name.startswith("label_") for name in labels)
    all_negative = [name for name, m in labels.items() if m["n_pos_pred"] == 0]
    assert not all_negative, all_negative
    assert not report["collapsed"]["final"]
