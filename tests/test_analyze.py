"""The imbalance analysis (imbalance/analyze.py): grades, counts, co-occurrence, advice, CLI, analysis.json."""

import json

import numpy as np
import pandas as pd
import pytest

import train_classifier
from imbalance import analyze as analyze_module
from imbalance.analyze import analyze, severity
from imbalance.preprocessing import TabularPreprocessor


@pytest.mark.parametrize("ratio, positives, grade", [
    (2.0, 1000, "mild"),
    (5.0, 1000, "moderate"), (2.0, 200, "moderate"),
    (19.0, 1000, "severe"), (2.0, 99, "severe"), (10.0, 30, "severe"),
    (99.0, 1000, "extreme"), (3.0, 29, "extreme"),
])
def test_severity_is_the_worse_of_ratio_and_positive_count(ratio, positives, grade):
    assert severity(ratio, positives) == grade


def _table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({"age": rng.normal(60, 10, n), "bmi": np.where(rng.random(n) < 0.2, np.nan, rng.normal(27, 4, n)),
                             "htn": rng.integers(0, 2, n), "sex": rng.choice(["F", "M"], n), "site": rng.choice(list("ABC"), n)})
    a = (rng.random(n) < 0.10).astype(np.uint8)
    b = ((rng.random(n) < 0.004) | (a & (rng.random(n) < 0.05))).astype(np.uint8)
    labels = np.column_stack([a, b])
    splits = {"train": np.arange(0, 1400), "val": np.arange(1400, 1700), "test": np.arange(1700, n)}
    pre = TabularPreprocessor().fit(features.iloc[splits["train"]])
    return features, labels, splits, pre


def test_counts_per_label_and_split_and_co_occurrence():
    features, labels, splits, pre = _table()
    result = analyze(source="t.csv", labels=labels, label_names=["a", "b"], splits=splits, preprocessor=pre,
                     features=features, batch_size=64)
    a, b = result.labels
    assert a.positives == labels[:, 0].sum() and a.negatives == len(labels) - a.positives
    assert a.ratio == pytest.approx(a.negatives / a.positives)
    assert b.positives_per_split == {part: int(labels[rows, 1].sum()) for part, rows in splits.items()}
    assert sum(b.positives_per_split.values()) == b.positives
    assert a.severity == severity(a.ratio, a.positives_per_split["train"])
    pair = result.co_occurrence["pairs"]["a & b"]
    both = int((labels[:, 0] & labels[:, 1]).sum())
    assert pair["both"] == both and pair["P(b | a)"] == pytest.approx(both / labels[:, 0].sum())
    assert sum(result.co_occurrence["rows_by_number_of_positive_labels"].values()) == len(labels)
    f = result.features
    assert (f["numeric"], f["binary"], f["categorical"]) == (2, 1, 2)  # htn (0/1) is binary; sex F/M a category
    assert f["missing_share"] == {"bmi": pytest.approx(features["bmi"].isna().mean(), abs=1e-4)}
    assert result.task == "multi-label" and result.rows_per_split == {"train": 1400, "val": 300, "test": 300}


def test_the_recommendation_follows_the_numbers():
    features, labels, splits, pre = _table()
    rare = analyze(source="t.csv", labels=labels, label_names=["a", "b"], splits=splits, preprocessor=pre,
                   features=features, batch_size=64).recommendation
    # b: well under one positive per batch of 64 -> sample instead of weighting; few positives -> try MLSMOTE
    assert rare["sampler"]["choice"].startswith("--use_weighted_sampling") and "positive rows per batch of 64" in rare["sampler"]["because"]
    assert "mlsmote" in rare["resampling"]["choice"]
    common = analyze(source="t.csv", labels=labels[:, :1], label_names=["a"], splits=splits, preprocessor=pre,
                     features=features, batch_size=64).recommendation
    assert common["sampler"]["choice"].startswith("none") and common["loss"]["choice"].startswith("weighted_bce")
    assert common["resampling"]["choice"] == "none" and common["preset"]["choice"] == "balanced"
    for rec in common.values():
        assert rec["because"]  # every choice says why


def test_the_command_prints_the_analysis(capsys, tmp_path):
    features, labels, _, _ = _table()
    frame = features.assign(label_a=labels[:, 0], label_b=labels[:, 1])
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert analyze_module.main(["--csv_path", str(tmp_path / "t.csv"), "--preset", "balanced"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imbalance analysis of {tmp_path / 't.csv'}: 2000 rows (multi-label)")
    assert "label_b" in out and "recommended sampler" in out and "most co-occurring labels" in out
    assert list(tmp_path.iterdir()) == [tmp_path / "t.csv"]  # it writes nothing
    assert analyze_module.main(["--csv_path", str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err.strip().startswith("python -m imbalance.analyze: error: --csv_path")


def test_a_run_prints_it_and_writes_analysis_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_classifier.main(["--demo_rows", "600", "--epochs", "1", "--output_dir", str(out), "--no_tensorboard",
                                  "--baselines", "none"]) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    assert [a["name"] for a in analysis["labels"]][:1] == ["label_diabetes"]
    assert set(analysis["recommendation"]) == {"preset", "sampler", "loss", "resampling", "model"}
    assert "analysis.json" in json.loads((out / "run.json").read_text())["files"]
    assert "imbalance analysis of demo cohort (600 rows): 600 rows (multi-label)" in capsys.readouterr().err
