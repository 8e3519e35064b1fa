"""End-to-end runs of train_classifier.py and predict.py: train, save, reload, predict, fail clearly."""

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import predict
import train_classifier
from imbalance.checkpoint import FORMAT_VERSION
from imbalance.config import parse_model_args
from imbalance.demo import DEMO_LABELS, make_demo_cohort
from models import MODELS, model_settings

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--epochs", "3", "--batch_size", "64", "--quiet", "--baselines", "none"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_demo_cohort(n_rows=3000, seed=7)


@pytest.fixture
def binary_csv(tmp_path, cohort) -> Path:
    frame = cohort.drop(columns=[c for c in DEMO_LABELS if c != "label_diabetes"]).rename(columns={"label_diabetes": "diabetes"})
    path = tmp_path / "binary.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def multilabel_csv(tmp_path, cohort) -> Path:
    path = tmp_path / "multi.csv"
    cohort.to_csv(path, index=False)
    return path


def _train(*args) -> int:
    return train_classifier.main([str(a) for a in args])


def _one_line_error(capsys, *fragments) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "expected an error message"
    last = lines[-1]
    assert "error:" in last and "Traceback" not in err
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


def test_binary_run_saves_reloads_and_predicts_the_same(tmp_path, binary_csv):
    out = tmp_path / "run"
    code = _train("--csv_path", binary_csv, "--target_cols", "diabetes", "--id_col", "patient_id", "--output_dir", out,
                  "--use_stratified_split", "--use_weighted_sampling", "--optimize_thresholds", *FAST)
    assert code == 0
    for name in ("run.json", "config.json", "best.pt", "last.pt", "metrics.json", "report.md", "test_predictions.csv"):
        assert (out / name).is_file(), name
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["label_names"] == ["diabetes"] and ckpt["format_version"] == FORMAT_VERSION
    assert ckpt["threshold_source"].startswith("tuned") and ckpt["thresholds"][0] != 0.5
    assert ckpt["preprocessing"]["columns"] and ckpt["model_name"] == "mlp"
    last = torch.load(out / "last.pt", weights_only=True)
    assert "optimizer" in last and last["epoch"] == 3 and "resume" in last and not last["complete"] and ckpt["complete"]

    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test"
    assert set(report["models"]["network"]["labels"]["diabetes"]) >= {"precision", "recall", "f1", "auroc", "auprc", "n_pos_pred"}

    # predict.py on the held-out rows reproduces the predictions made at the end of training
    expected = pd.read_csv(out / "test_predictions.csv")
    rows = pd.read_csv(binary_csv).iloc[expected["row"]]
    new = tmp_path / "new.csv"
    rows.drop(columns=["diabetes"]).to_csv(new, index=False)
    pred_path = tmp_path / "pred.csv"
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(new), "--output", str(pred_path)]) == 0
    got = pd.read_csv(pred_path)
    assert list(got.columns) == ["patient_id", "diabetes_prob", "diabetes_pred"]
    assert (got["patient_id"].to_numpy() == expected["patient_id"].to_numpy()).all()
    np.testing.assert_allclose(got["diabetes_prob"], expected["diabetes_prob"], atol=1e-6)
    assert (got["diabetes_pred"].to_numpy() == expected["diabetes_pred"].to_numpy()).all()
    assert got["diabetes_pred"].sum() > 0

    # inf and overflow in new rows are scored like missing values, never as an empty probability
    odd = rows.drop(columns=["diabetes"]).iloc[:3].copy()
    odd["bmi"] = odd["bmi"].astype(object)
    odd.iloc[0, odd.columns.get_loc("bmi")] = "inf"
    odd.iloc[1, odd.columns.get_loc("bmi")] = "1e400"
    odd.iloc[2, odd.columns.get_loc("bmi")] = np.nan
    odd["age"] = odd["age"].iloc[2]  # otherwise identical rows
    odd[[c for c in odd.columns if c not in ("bmi", "age", "patient_id")]] = odd.iloc[[2] * 3][
        [c for c in odd.columns if c not in ("bmi", "age", "patient_id")]].to_numpy()
    odd.to_csv(tmp_path / "odd.csv", index=False)
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(tmp_path / "odd.csv"), "--output", str(tmp_path / "odd_pred.csv")]) == 0
    scored = pd.read_csv(tmp_path / "odd_pred.csv")
    assert scored["diabetes_prob"].notna().all()
    assert scored["diabetes_prob"].max() - scored["diabetes_prob"].min() < 1e-6  # as the missing value (float32 noise aside)


def test_multilabel_demo_run_without_csv(tmp_path):
    out = tmp_path / "demo"
    assert _train("--output_dir", out, "--demo_rows", 3000, "--use_stratified_split", "--no_tensorboard", *FAST) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["run"]["labels"] == list(DEMO_LABELS)
    assert list(report["models"]["network"]["labels"]) == list(DEMO_LABELS)
    assert not (out / "tensorboard").exists()
    preds = pd.read_csv(out / "test_predictions.csv")
    assert "patient_id" in preds.columns and all(f"{n}_prob" in preds.columns for n in DEMO_LABELS)


def test_aggressive_preset_predicts_positives_in_the_first_epochs(tmp_path, multilabel_csv):
    out = tmp_path / "agg"
    assert _train("--preset", "aggressive", "--csv_path", multilabel_csv, "--id_col", "patient_id", "--output_dir", out,
                  "--epochs", 2, "--quiet", "--no_tensorboard", "--baselines", "none") == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    first = history[0]["val_pos_pred"]
    assert all(first[name] > 0 for name in DEMO_LABELS), first


def test_naive_preset_collapses_and_the_guard_says_what_to_do(tmp_path, multilabel_csv, capsys):
    out = tmp_path / "naive"
    assert _train("--preset", "none", "--csv_path", multilabel_csv, "--id_col", "patient_id", "--output_dir", out,
                  "--epochs", 4, "--early_stop_patience", 0, "--collapse_patience", 2, "--no_tensorboard",
                  "--baselines", "prior") == 0
    captured = capsys.readouterr()
    report = json.loads((out / "metrics.json").read_text())
    collapsed = report["collapsed"]["during_training"]
    assert "label_stroke" in collapsed and collapsed["label_stroke"] == "all-negative"
    warnings = [line for line in captured.err.splitlines() if "validation predictions at the" in line]
    assert len(warnings) == 1  # one line per run, not one per label
    assert "label_stroke" in warnings[0] and "no positive validation predictions at the threshold 0.5" in warnings[0]
    # the naive preset uses none of the levers: the first ones to try
    assert "--optimize_thresholds" in warnings[0] and "--loss_type weighted_bce" in warnings[0]
    assert "label_stroke" in report["collapsed"]["final"]
    assert report["models"]["prior"]["labels"]["label_stroke"]["n_pos_pred"] == 0


def test_config_is_written_before_training_starts(tmp_path, binary_csv, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("stop before training")

    from imbalance import runner

    monkeypatch.setattr(runner, "fit_members", boom)  # the run itself lives in imbalance/runner.py
    out = tmp_path / "early"
    with pytest.raises(RuntimeError):
        _train("--csv_path", binary_csv, "--target_cols", "diabetes", "--output_dir", out, "--lr", "0.02", *FAST)
    written = json.loads((out / "config.json").read_text())
    assert written["lr"] == 0.02 and written["target_cols"] == "diabetes" and written["epochs"] == 3
    marker = json.loads((out / "run.json").read_text())
    assert marker["status"] == "failed" and "stop before training" in marker["error"]


def test_overwrite_replaces_the_whole_earlier_run_and_nothing_else(tmp_path, binary_csv):
    out = tmp_path / "run"
    base = ["--csv_path", binary_csv, "--target_cols", "diabetes", "--id_col", "patient_id", "--output_dir", out, *FAST]
    assert _train(*base) == 0 and (out / "test_predictions.csv").exists()
    (out / "my_notes.md").write_text("kept")
    assert _train(*base) == 2  # a finished run is not replaced without asking
    assert _train(*base, "--overwrite", "--test_fraction", "0") == 0
    assert not (out / "test_predictions.csv").exists()  # nothing of the earlier run is left to mix up
    assert (out / "my_notes.md").read_text() == "kept"
    marker = json.loads((out / "run.json").read_text())
    assert marker["status"] == "complete" and "test_predictions.csv" not in marker["files"]
    assert json.loads((out / "metrics.json").read_text())["split"] == "val"


# -- bad input: one clear line, exit code 2, nothing written -----------------------------------------

def test_missing_file(tmp_path, capsys):
    out = tmp_path / "o"
    assert _train("--csv_path", tmp_path / "nope.csv", "--output_dir", out, *FAST) == 2
    _one_line_error(capsys, "nope.csv", "no such file")
    assert not out.exists()


def test_missing_target_column(tmp_path, binary_csv, capsys):
    out = tmp_path / "o"
    assert _train("--csv_path", binary_csv, "--target_cols", "stroke", "--output_dir", out, *FAST) == 2
    _one_line_error(capsys, "stroke", "not found", "--target_cols")
    assert not out.exists()


def test_no_label_columns_asks_for_target_cols(tmp_path, binary_csv, capsys):
    assert _train("--csv_path", binary_csv, "--output_dir", tmp_path / "o", *FAST) == 2
    _one_line_error(capsys, "label_", "--target_cols")


def test_non_binary_outcome(tmp_path, cohort, capsys):
    frame = cohort.drop(columns=list(DEMO_LABELS)).assign(outcome=np.arange(len(cohort)) % 3)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    assert _train("--csv_path", path, "--target_cols", "outcome", "--output_dir", tmp_path / "o", *FAST) == 2
    _one_line_error(capsys, "outcome", "found 2")
    assert not (tmp_path / "o").exists()


def test_label_without_positives(tmp_path, cohort, capsys):
    path = tmp_path / "zero.csv"
    cohort.assign(label_never=0).to_csv(path, index=False)
    assert _train("--csv_path", path, "--output_dir", tmp_path / "o", *FAST) == 2
    _one_line_error(capsys, "label_never", "no positive")


def test_unknown_preset_on_the_command_line(tmp_path, capsys):
    assert _train("--preset", "turbo", "--output_dir", tmp_path / "o") == 2
    _one_line_error(capsys, "turbo", "aggressive, auto, balanced, none, very_aggressive")


def test_missing_feature_column_at_inference(tmp_path, binary_csv, capsys):
    out = tmp_path / "run"
    assert _train("--csv_path", binary_csv, "--target_cols", "diabetes", "--output_dir", out, "--no_tensorboard", *FAST) == 0
    capsys.readouterr()
    rows = pd.read_csv(binary_csv).drop(columns=["bmi", "hba1c", "diabetes"]).head(20)
    new = tmp_path / "new.csv"
    rows.to_csv(new, index=False)
    target = tmp_path / "pred.csv"
    assert predict.main(["--checkpoint", str(out / "best.pt"), "--csv_path", str(new), "--output", str(target)]) == 2
    _one_line_error(capsys, "bmi", "hba1c", "missing feature column")
    assert not target.exists() and not list(tmp_path.glob(".pred.csv*"))


def test_missing_checkpoint(tmp_path, binary_csv, capsys):
    assert predict.main(["--checkpoint", str(tmp_path), "--csv_path", str(binary_csv)]) == 2
    _one_line_error(capsys, "best.pt")


def test_users_aggressive_command_runs_verbatim_from_the_shell(tmp_path, cohort):
    """The issue's first command, as typed (only the script path differs), on a CSV named like theirs."""
    cohort.head(2500).to_csv(tmp_path / "mesa_final.csv", index=False)
    command = f"""{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'train_classifier.py'))} \
        --csv_path mesa_final.csv --output_dir checkpoints/comorbidity_aggressive \
        --use_stratified_split --use_weighted_sampling --weight_method per_class \
        --loss_type focal --focal_gamma 3.0 \
        --class_weight_method aggressive --class_weight_multiplier 2.0 \
        --optimize_thresholds --early_stop_metric macro_f1 --early_stop_patience 15 \
        --epochs 100 --batch_size 32 --lr 1e-3"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "checkpoints" / "comorbidity_aggressive"
    config = json.loads((out / "config.json").read_text())
    assert config["loss_type"] == "focal" and config["class_weight_multiplier"] == 2.0 and config["batch_size"] == 32
    assert "label summary" in done.stderr and "positive share in training" in done.stderr
    assert torch.load(out / "best.pt", weights_only=True)["label_names"] == list(DEMO_LABELS)


def test_large_input_paths_train_exactly_like_a_small_csv(tmp_path, multilabel_csv, monkeypatch):
    """The chunked CSV reader and the row-group Parquet reader give the same run as a whole-file read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import imbalance.data as data

    args = ["--id_col", "patient_id", "--use_stratified_split", "--use_weighted_sampling", "--optimize_thresholds", *FAST]
    assert _train("--csv_path", multilabel_csv, "--output_dir", tmp_path / "small", *args) == 0

    frame = pd.read_csv(multilabel_csv)
    parquet = tmp_path / "multi.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet, row_group_size=700)
    assert _train("--csv_path", parquet, "--output_dir", tmp_path / "parquet", *args) == 0

    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", 400 * frame.shape[1])  # 400-row chunks
    assert _train("--csv_path", multilabel_csv, "--output_dir", tmp_path / "chunked", *args) == 0

    expected = pd.read_csv(tmp_path / "small" / "test_predictions.csv")
    assert len(expected) > 0
    for run in ("parquet", "chunked"):
        got = pd.read_csv(tmp_path / run / "test_predictions.csv")
        pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-7, obj=run)


# -- every model with every task and loss: train, save, reload, predict the same -------------------

# Settings small enough for a few steps on a few hundred rows; the defaults are timed in benchmarks/.
TINY_MODELS = {
    "mlp": "hidden_sizes=[16]",
    "resnet": "n_blocks=1,d_block=16",
    "ft_transformer": "n_blocks=1,d_block=16,attention_n_heads=2",
    "tabm": "k=4,d_block=16",
}
TINY_RUN = ["--epochs", "2", "--batch_size", "64", "--quiet", "--baselines", "none", "--no_tensorboard",
            "--use_stratified_split", "--use_weighted_sampling", "--optimize_thresholds", "--n_bins", "8"]


@pytest.fixture(scope="module")
def small_tables(tmp_path_factory) -> dict:
    """A binary and a multi-label table of 600 rows with numeric, yes/no and categorical columns."""
    folder = tmp_path_factory.mktemp("small")
    frame = make_demo_cohort(n_rows=600, seed=11)
    paths = {"multilabel": folder / "multi.csv", "binary": folder / "binary.csv"}
    frame.to_csv(paths["multilabel"], index=False)
    binary = frame.drop(columns=[c for c in DEMO_LABELS if c != "label_diabetes"])
    binary.to_csv(paths["binary"], index=False)
    return paths


def _predict_matches_training(tmp_path, out: Path, csv: Path, labels: list[str]) -> pd.DataFrame:
    """predict.py on the test rows writes exactly the probabilities and decisions of test_predictions.csv."""
    expected = pd.read_csv(out / "test_predictions.csv")
    new = tmp_path / "new.csv"
    pd.read_csv(csv).iloc[expected["row"]].drop(columns=labels).to_csv(new, index=False)
    target = tmp_path / "pred.csv"
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(new), "--output", str(target)]) == 0
    got = pd.read_csv(target)
    columns = ["patient_id"] + [f"{n}_{kind}" for n in labels for kind in ("prob", "pred")]
    assert list(got.columns) == columns
    pd.testing.assert_frame_equal(got, expected[columns], check_exact=True)
    return got


@pytest.mark.parametrize("loss", ["bce", "focal"])
@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("model", list(TINY_MODELS))
def test_every_model_trains_saves_reloads_and_predicts_the_same(tmp_path, small_tables, model, task, loss):
    csv = small_tables[task]
    labels = ["label_diabetes"] if task == "binary" else list(DEMO_LABELS)
    out = tmp_path / "run"
    assert _train("--csv_path", csv, "--target_cols", ",".join(labels), "--id_col", "patient_id", "--output_dir", out,
                  "--model", model, "--model_args", TINY_MODELS[model], "--loss_type", loss, *TINY_RUN) == 0
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["model_name"] == model and ckpt["label_names"] == labels and len(ckpt["members"]) == 1
    assert ckpt["model_settings"] == dataclasses.asdict(model_settings(model, parse_model_args(TINY_MODELS[model])))
    assert ckpt["inputs"]["num_embeddings"] == MODELS.get(model).num_embeddings
    assert ckpt["inputs"]["n_labels"] == len(labels) and ckpt["inputs"]["cardinalities"]  # the demo has categoricals
    _predict_matches_training(tmp_path, out, csv, labels)


@pytest.mark.parametrize("method", ["none", "prior", "temperature", "platt", "isotonic"])
def test_calibration_is_fitted_stored_applied_by_predict_and_reported(tmp_path, small_tables, method):
    csv = small_tables["multilabel"]
    out = tmp_path / "run"
    # per_class sampling with focal loss and aggressive class weights: scores far above the real risk
    assert _train("--csv_path", csv, "--id_col", "patient_id", "--output_dir", out, "--weight_method", "per_class",
                  "--loss_type", "focal", "--class_weight_method", "aggressive", "--calibration", method, *TINY_RUN) == 0
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["calibration"]["method"] == method
    report = json.loads((out / "metrics.json").read_text())
    calibration = report["calibration"]
    assert calibration["method"] == method and calibration["split"] == "test"
    labels = list(DEMO_LABELS)
    before = np.mean([calibration["before"][n]["mean_predicted"] for n in labels])
    after = np.mean([calibration["after"][n]["mean_predicted"] for n in labels])
    observed = np.mean([calibration["after"][n]["observed_rate"] for n in labels])
    assert before > 3 * observed  # the recipe's scores overstate the risk
    if method == "none":
        assert after == before
    else:  # every method brings the mean predicted risk much nearer the observed rate
        assert abs(after - observed) < 0.5 * abs(before - observed)
    assert f"Calibration: `{method}`" in (out / "report.md").read_text()
    # predict.py applies the stored calibration: the same probabilities as the run's own test predictions
    got = _predict_matches_training(tmp_path, out, csv, labels)
    assert np.mean(got[[f"{n}_prob" for n in labels]].to_numpy()) == pytest.approx(after, rel=1e-4)


def test_plots_are_valid_pngs_embedded_in_the_report(tmp_path, small_tables):
    from PIL import Image

    csv = small_tables["multilabel"]
    out = tmp_path / "run"
    assert _train("--csv_path", csv, "--id_col", "patient_id", "--output_dir", out, *TINY_RUN,
                  "--baselines", "logistic", "--slice_cols", "sex,age", "--slice_min_positives", "2") == 0
    report = json.loads((out / "metrics.json").read_text())
    files = sorted(p.relative_to(out).as_posix() for p in (out / "plots").iterdir())
    assert files == sorted(report["plots"])
    labels_with_both_classes = [n for n in DEMO_LABELS if 0 < report["models"]["network"]["labels"][n]["n_pos_true"]]
    assert {f"plots/label_{n}.png" for n in labels_with_both_classes} <= set(files)
    assert "plots/training.png" in files and {"plots/slices_sex.png", "plots/slices_age.png"} & set(files)
    for name in files:
        with Image.open(out / name) as image:
            image.verify()  # a complete, valid PNG
            assert image.format == "PNG" and image.size[0] > 300
    markdown = (out / "report.md").read_text()
    assert all(f"]({name})" in markdown for name in files)
    assert "plots" in json.loads((out / "run.json").read_text())["files"]  # removed with the run on --overwrite
    quiet = tmp_path / "quiet"
    assert _train("--csv_path", csv, "--id_col", "patient_id", "--output_dir", quiet, *TINY_RUN, "--no_plots") == 0
    assert not (quiet / "plots").exists() and "plots" not in json.loads((quiet / "metrics.json").read_text())


def test_embeddings_and_a_seed_ensemble_in_one_checkpoint(tmp_path, small_tables):
    csv = small_tables["multilabel"]
    out = tmp_path / "ens"
    assert _train("--csv_path", csv, "--id_col", "patient_id", "--output_dir", out, "--model", "resnet",
                  "--model_args", TINY_MODELS["resnet"], "--num_embeddings", "periodic", "--ensemble", 2, *TINY_RUN) == 0
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert len(ckpt["members"]) == 2 and ckpt["inputs"]["num_embeddings"] == "periodic"
    first, second = (member["resnet.blocks.0.linear1.weight"] for member in ckpt["members"])
    assert not torch.equal(first, second)  # different seeds, different networks
    report = json.loads((out / "metrics.json").read_text())
    assert [m["member"] for m in report["run"]["members"]] == [0, 1]
    got = _predict_matches_training(tmp_path, out, csv, list(DEMO_LABELS))
    # the checkpoint's probabilities are the calibrated mean of its members' probabilities
    from imbalance.calibration import Calibration
    from imbalance.inference import Predictor

    predictor = Predictor.load(out)
    assert predictor.calibration.method == "platt"  # the default
    rows = pd.read_csv(csv).iloc[pd.read_csv(out / "test_predictions.csv")["row"]]
    calibrated = predictor.predict_proba(rows)
    calibration, predictor.calibration = predictor.calibration, Calibration()
    mean = predictor.predict_proba(rows)
    singles = []
    for member in range(2):
        one = Predictor.load(out)
        one.models, one.calibration = [one.models[member]], Calibration()
        singles.append(one.predict_proba(rows))
    np.testing.assert_allclose(mean, np.mean(singles, axis=0), atol=1e-6)
    # (the calibration's slope magnifies float32 rounding of the mean: a looser but still tight tolerance)
    np.testing.assert_allclose(calibrated, calibration.apply(mean.to_numpy()), atol=1e-5)
    np.testing.assert_allclose(got[[f"{n}_prob" for n in DEMO_LABELS]].to_numpy(), calibrated, atol=1e-5)


@pytest.mark.parametrize("args, fragments", [
    (["--model", "tabm", "--model_args", "kk=4"], ["tabm", "unknown setting 'kk'", "did you mean 'k'", "valid settings"]),
    (["--model", "resnet", "--model_args", "d_block=0"], ["resnet", "d_block must be >= 1"]),
    (["--model", "ft_transformer", "--model_args", "d_block=30"], ["ft_transformer", "d_block", "attention_n_heads"]),
    (["--model", "mlp", "--model_args", "dropout=high"], ["--model_args", "dropout"]),
    (["--model", "mlp", "--model_args", "hidden_sizes"], ["--model_args", "key=value"]),
])
def test_bad_model_settings_fail_in_one_line_before_anything_is_written(tmp_path, small_tables, capsys, args, fragments):
    out = tmp_path / "o"
    try:  # settings fail in the run, a value that is not key=value already in argparse
        code = _train("--csv_path", small_tables["binary"], "--target_cols", "label_diabetes", "--output_dir", out, *args, *FAST)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    _one_line_error(capsys, *fragments)
    assert not out.exists()


def test_model_settings_from_a_config_file_table(tmp_path, small_tables):
    config = tmp_path / "run.toml"
    config.write_text('num_embeddings = "none"\n\n[model]\nname = "tabm"\nk = 3\nd_block = 8\n')
    out = tmp_path / "run"
    assert _train("--config", config, "--csv_path", small_tables["binary"], "--target_cols", "label_diabetes",
                  "--output_dir", out, *TINY_RUN) == 0
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["model_name"] == "tabm" and ckpt["model_settings"]["k"] == 3 and ckpt["model_settings"]["d_block"] == 8
    assert ckpt["inputs"]["num_embeddings"] == "none"
    assert json.loads((out / "config.json").read_text())["model_args"] == {"k": 3, "d_block": 8}


def test_help_lists_every_model_and_its_settings(capsys):
    with pytest.raises(SystemExit):
        train_classifier.main(["--help"])
    text = capsys.readouterr().out
    for name in MODELS:
        assert f"{name}:" in text
        for f in dataclasses.fields(MODELS.get(name).settings_cls):
            assert f"{f.name}=" in text, (name, f.name)
