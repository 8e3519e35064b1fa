"""More minority rows end to end: resampling, generated rows, the quality gate and --compare."""

import json

import numpy as np
import pandas as pd
import pytest

import train_classifier
from imbalance.augmentation import AUGMENT_STRATEGIES, augment_training_split, generated_counts, read_generated_rows
from imbalance.demo import DEMO_LABELS, make_demo_cohort
from imbalance.errors import UserError
from imbalance.preprocessing import TabularPreprocessor

FAST = ["--epochs", "2", "--batch_size", "128", "--quiet", "--no_tensorboard", "--baselines", "none", "--use_stratified_split"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_demo_cohort(n_rows=2500, seed=11)


@pytest.fixture
def binary_csv(tmp_path, cohort):
    frame = cohort.drop(columns=[c for c in DEMO_LABELS if c != "label_diabetes"]).rename(columns={"label_diabetes": "diabetes"})
    path = tmp_path / "binary.csv"
    frame.to_csv(path, index=False)
    return path


def _train(*args):
    return train_classifier.main([str(a) for a in args])


def _binary(binary_csv, out, *extra):
    return _train("--csv_path", binary_csv, "--target_cols", "diabetes", "--id_col", "patient_id", "--output_dir", out, *FAST, *extra)


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_generated_counts_follow_the_strategies():
    y = np.zeros((1000, 2), dtype=np.uint8)
    y[:50, 0] = 1
    y[:10, 1] = 1
    assert generated_counts(y, strategy="conservative", ratio=None).tolist() == [50, 10]  # doubles the positives
    assert generated_counts(y, strategy="moderate", ratio=None).tolist() == [150, 30]  # quadruples them
    assert generated_counts(y, strategy="full", ratio=None).tolist() == [950 - 50, 990 - 10]
    assert generated_counts(y, strategy="full", ratio=1.5).tolist() == [75, 15]
    assert AUGMENT_STRATEGIES.names() == ["conservative", "moderate", "full"]


@pytest.mark.parametrize("how", [{"resample_method": "smotenc", "resample_ratio": 0.3}, {"generator": "marginal"}])
def test_augmented_rows_keep_the_real_rows_first_and_add_valid_minority_rows(cohort, how):
    features = cohort.drop(columns=[*DEMO_LABELS, "patient_id"])
    y = cohort[["label_diabetes"]].to_numpy(dtype=np.uint8)
    pre = TabularPreprocessor().fit(features)
    real = pre.transform(features)
    assert pre.categorical_names and pre.flag_names  # the demo has both, so both blocks are exercised
    out = augment_training_split(pre, real, features, y, label_names=["diabetes"], seed=0, **how)
    n = len(real)
    assert len(out.rows) == len(out.y) == len(out.synthetic) > n
    assert not out.synthetic[:n].any() and out.synthetic[n:].all()
    # the real rows come back exactly as encoded, with their labels
    np.testing.assert_array_equal(out.rows.num[:n], real.num)
    np.testing.assert_array_equal(out.rows.cat[:n], real.cat)
    np.testing.assert_array_equal(out.y[:n], y)
    assert out.rows.num.dtype == np.float32 and out.rows.cat.dtype == np.int64 and out.rows.n_numeric == real.n_numeric
    # added rows are minority rows whose flags are 0/1 and whose category codes are valid
    added = out.rows.take(np.flatnonzero(out.synthetic))
    assert out.y[out.synthetic, 0].all()
    assert set(np.unique(added.num[:, added.n_numeric:])) <= {0.0, 1.0}
    assert ((added.cat >= 0) & (added.cat < np.array(pre.cardinalities))).all()
    assert np.isfinite(added.num).all()
    assert out.provenance["final"]["rows"] == {"real": n, "synthetic": int(out.synthetic.sum())}
    assert out.quality is not None and out.quality["n_synthetic"] > 0


def test_smotenc_touches_only_the_training_split(tmp_path, binary_csv):
    out = tmp_path / "smotenc"
    assert _binary(binary_csv, out, "--resample", "smotenc", "--resample_ratio", "0.5") == 0
    report = json.loads((out / "metrics.json").read_text())
    steps = json.loads((out / "augmentation.json").read_text())["steps"]
    assert steps[0]["method"] == "smotenc" and steps[0]["rows"]["synthetic"] > 0
    # validation and test are the real split sizes, and the metrics count exactly those rows
    rows = report["run"]["rows"]
    assert rows["train"] + rows["val"] + rows["test"] == 2500
    assert report["models"]["network"]["labels"]["diabetes"]["n"] == rows["test"]
    preds = pd.read_csv(out / "test_predictions.csv")
    source = pd.read_csv(binary_csv)
    assert len(preds) == rows["test"] and preds["row"].between(0, len(source) - 1).all()
    assert (source.loc[preds["row"], "patient_id"].to_numpy() == preds["patient_id"].to_numpy()).all()
    # the same split as a run without resampling
    plain = tmp_path / "plain"
    assert _binary(binary_csv, plain) == 0
    assert (pd.read_csv(plain / "test_predictions.csv")["row"].to_numpy() == preds["row"].to_numpy()).all()
    assert (out / "synthetic_quality.json").is_file() and (out / "synthetic_quality.md").is_file()


def test_smote_on_mixed_columns_refuses_with_advice(tmp_path, binary_csv, capsys):
    assert _binary(binary_csv, tmp_path / "o", "--resample", "smote") == 2
    line = _error_line(capsys)
    assert "use --resample smotenc" in line and ("smoking_status" in line or "sex" in line)
    assert not (tmp_path / "o").exists()


def test_builtin_generator_mixes_in_the_conservative_count(tmp_path, binary_csv):
    out = tmp_path / "copula"
    assert _binary(binary_csv, out, "--generator", "gaussian_copula", "--augment_strategy", "conservative") == 0
    prov = json.loads((out / "augmentation.json").read_text())
    report = json.loads((out / "metrics.json").read_text())
    n_pos_train = prov["final"]["per_label"]["diabetes"]["real_positive"]
    asked = prov["steps"][0]["asked_per_label"]["diabetes"]
    assert asked == n_pos_train  # conservative doubles the positives: adds n_pos
    assert prov["final"]["rows"]["synthetic"] == asked - prov["duplicates_removed"]
    quality = report["augmentation"]["quality"]
    assert quality["n_synthetic"] == asked and 0.0 <= quality["discriminative_auroc"] <= 1.0


def test_generated_rows_are_on_disk_scored_previewed_and_plotted(tmp_path, binary_csv, capsys):
    out = tmp_path / "uniform"
    assert _binary(binary_csv, out, "--generator", "uniform", "--augment_strategy", "moderate", "--no_quiet") == 0
    log = capsys.readouterr().err
    prov = json.loads((out / "augmentation.json").read_text())
    made = pd.read_csv(out / "generated_rows.csv")
    features = [c for c in pd.read_csv(binary_csv, nrows=1).columns if c not in ("diabetes", "patient_id")]
    assert list(made.columns) == [*features, "diabetes", "method"]
    assert len(made) == prov["final"]["rows"]["synthetic"] > 0
    assert (made["diabetes"] == 1).all() and set(made["method"]) == {"uniform"}
    real = pd.read_csv(binary_csv)
    positives = real[real["diabetes"] == 1]
    # the minority range (the rows are decoded from the float32 encoding the model saw: within 1e-3)
    assert made["age"].between(positives["age"].min() - 1e-3, positives["age"].max() + 1e-3).all()
    assert prov["steps"][0]["asked_per_label"]["diabetes"] == 3 * prov["final"]["per_label"]["diabetes"]["real_positive"]
    quality = json.loads((out / "synthetic_quality.json").read_text())
    score = quality["score"]
    assert 0 <= score["score"] <= 100 and score["grade"] in "ABCDF" and score["recommendations"]
    assert set(score["parts"]) == {"column_shapes", "column_pair_trends", "indistinguishable", "novelty", "coverage"}
    assert f"Quality score: {score['score']:.0f}/100 ({score['grade']})" in (out / "synthetic_quality.md").read_text()
    assert f"quality {score['score']:.0f}/100 ({score['grade']})" in log
    assert "synthetic rows mixed in; the first 10:" in log
    assert (out / "plots" / "synthetic_diabetes.png").stat().st_size > 1000
    card = (out / "model_card.md").read_text()
    assert f"score {score['score']:.0f}/100 ({score['grade']})" in card


def test_quality_gate_refuses_and_keeps_the_report(tmp_path, binary_csv, capsys):
    out = tmp_path / "gated"
    code = _binary(binary_csv, out, "--generator", "marginal", "--quality_gate", "--gate_max_auroc", "0.5")
    assert code == 2
    line = _error_line(capsys)
    assert "--quality_gate refused to train" in line and "AUROC" in line.upper()
    assert (out / "synthetic_quality.md").is_file() and not (out / "best.pt").exists()


def _generated(cohort, n=60):
    rows = cohort[cohort["label_diabetes"] == 1].head(n).rename(columns={"label_diabetes": "diabetes"})
    return rows.drop(columns=[c for c in DEMO_LABELS if c != "label_diabetes"], errors="ignore")


def test_generated_csv_is_mixed_into_training(tmp_path, binary_csv, cohort):
    generated = _generated(cohort).assign(bmi=lambda f: f["bmi"] + 0.5, note="made by a data designer")
    path = tmp_path / "gen.csv"
    generated.to_csv(path, index=False)
    out = tmp_path / "mixed"
    assert _binary(binary_csv, out, "--generated_csv", path, "--generated_ratio", "0.2") == 0
    prov = json.loads((out / "augmentation.json").read_text())
    assert prov["steps"][0]["method"].startswith("--generated_csv")
    assert 0 < prov["final"]["rows"]["synthetic"] <= 60


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda f: f.drop(columns=["bmi", "age"]), "missing feature column(s) age, bmi"),
        (lambda f: f.drop(columns=["diabetes"]), "outcome column(s) diabetes missing"),
        (lambda f: f.assign(diabetes=3), "must hold 0/1"),
        (lambda f: f.assign(diabetes=0), "no minority (positive) rows"),
    ],
)
def test_bad_generated_csv_fails_clearly(tmp_path, cohort, mutate, fragment):
    path = tmp_path / "gen.csv"
    mutate(_generated(cohort)).to_csv(path, index=False)
    features = [c for c in cohort.columns if c not in DEMO_LABELS and c != "patient_id"]
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_generated_rows(str(path), feature_cols=features, label_names=["diabetes"])


def test_compare_trains_both_on_the_same_split(tmp_path, binary_csv):
    out = tmp_path / "cmp"
    assert _binary(binary_csv, out, "--resample", "random_over", "--resample_ratio", "0.3", "--compare") == 0
    comparison = json.loads((out / "comparison.json").read_text())
    base = json.loads((out / "baseline" / "metrics.json").read_text())
    aug = json.loads((out / "augmented" / "metrics.json").read_text())
    assert base["augmentation"] is None and aug["augmentation"]["provenance"]["steps"][0]["method"] == "random_over"
    assert comparison["runs"] == ["baseline", "augmented"]
    for key in ("f1", "auroc", "tp"):
        c = comparison["labels"]["diabetes"][key]
        assert c["baseline"] == base["models"]["network"]["labels"]["diabetes"][key]
        assert c["augmented"] == aug["models"]["network"]["labels"]["diabetes"][key]
        assert c["difference"]["augmented"] == pytest.approx(c["augmented"] - c["baseline"])
    table = (out / "comparison.md").read_text()
    assert "| diabetes | baseline |" in table and "| diabetes | augmented |" in table


def test_compare_several_methods_writes_one_table(tmp_path, binary_csv):
    out = tmp_path / "cmp"
    assert _binary(binary_csv, out, "--compare", "smotenc,uniform", "--resample_ratio", "0.3") == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["runs"] == ["baseline", "smotenc", "uniform"]
    reports = {name: json.loads((out / name / "metrics.json").read_text()) for name in comparison["runs"]}
    assert reports["baseline"]["augmentation"] is None
    assert reports["smotenc"]["augmentation"]["provenance"]["steps"][0]["method"] == "smotenc"
    assert reports["uniform"]["augmentation"]["provenance"]["steps"][0]["method"] == "generator uniform"
    assert {r["split"] for r in reports.values()} == {"test"}
    for name in ("smotenc", "uniform"):
        auprc = comparison["labels"]["diabetes"]["auprc"]
        assert auprc[name] == reports[name]["models"]["network"]["labels"]["diabetes"]["auprc"]
        assert auprc["difference"][name] == pytest.approx(auprc[name] - auprc["baseline"])
        score = reports[name]["augmentation"]["quality"]["score"]
        assert comparison["quality"][name]["diabetes"] == {"score": score["score"], "grade": score["grade"]}
        assert comparison["seconds"][name] == reports[name]["run"]["seconds"]
    table = (out / "comparison.md").read_text()
    uniform_row = next(line for line in table.splitlines() if line.startswith("| diabetes | uniform |"))
    assert f"({comparison['quality']['uniform']['diabetes']['grade']})" in uniform_row
    # the same split: the test rows' outcomes are the same in every run
    predictions = [pd.read_csv(out / name / "test_predictions.csv") for name in comparison["runs"]]
    assert all(p["row"].tolist() == predictions[0]["row"].tolist() for p in predictions)


def test_compare_without_augmentation_is_refused(capsys):
    assert _train("--compare") == 2
    assert "--compare compares training without and with augmentation" in _error_line(capsys)


def test_mlsmote_on_multilabel_demo(tmp_path):
    out = tmp_path / "ml"
    assert _train("--output_dir", out, "--demo_rows", 2500, "--resample", "mlsmote", *FAST) == 0
    prov = json.loads((out / "augmentation.json").read_text())
    assert prov["steps"][0]["method"] == "mlsmote" and prov["final"]["rows"]["synthetic"] > 0
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["models"]["network"]["labels"]) == list(DEMO_LABELS)
