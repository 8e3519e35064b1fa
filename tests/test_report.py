"""python -m imbalance.report: reports again, external validation on labelled rows, and drift (imbalance/drift.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import predict
from imbalance import report as report_cli
from imbalance.demo import DEMO_LABELS, make_demo_cohort
from imbalance.drift import drift_report, feature_profile
from imbalance.metrics import label_metrics
from conftest import train_demo_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_demo_run(tmp_path_factory.mktemp("report"), "--baselines", "logistic", "--slice_cols", "sex", "--bootstrap", "200",
                          rows=1200, seed=21, epochs=3)


def test_the_reports_are_written_again_from_the_runs_files(run_dir, capsys):
    before = {name: (run_dir / name).read_text() for name in ("report.md", "model_card.md")}
    for name in before:
        (run_dir / name).unlink()
    assert report_cli.main([str(run_dir)]) == 0
    assert {name: (run_dir / name).read_text() for name in before} == before


def test_an_unfinished_or_foreign_folder_is_refused_in_one_line(tmp_path, run_dir, capsys):
    assert report_cli.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run folder" in err
    marker = json.loads((run_dir / "run.json").read_text())
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({**marker, "status": "interrupted"}))
    assert report_cli.main([str(unfinished)]) == 2
    assert "interrupted, not complete" in capsys.readouterr().err


def test_external_rows_get_the_same_report_with_drift(tmp_path, run_dir, capsys):
    new = make_demo_cohort(n_rows=1500, seed=99)
    new["age"] = new["age"] + 15  # an older population
    csv = tmp_path / "site_b.csv"
    new.to_csv(csv, index=False)
    assert report_cli.main([str(run_dir), "--csv_path", str(csv), "--bootstrap", "200", "--no_plots"]) == 0
    out = run_dir / "external_site_b"
    result = json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    # the metrics are those of predict.py's probabilities at the stored thresholds
    assert predict.main(["--checkpoint", str(run_dir), "--csv_path", str(csv), "--output", str(tmp_path / "p.csv")]) == 0
    probs = pd.read_csv(tmp_path / "p.csv")
    labels = list(DEMO_LABELS)
    expected = label_metrics(new[labels].to_numpy(), probs[[f"{n}_prob" for n in labels]].to_numpy(),
                             [result["models"]["network"]["labels"][n]["threshold"] for n in labels], labels)
    assert result["models"]["network"]["macro"]["auprc"] == pytest.approx(expected["macro"]["auprc"], abs=1e-6)
    assert result["intervals"]["models"]["network"]["macro"]["auprc"][0] <= expected["macro"]["auprc"]
    drift = result["drift"]
    assert "age" in drift["moved"] and drift["features"]["age"]["reading"] == "major shift"
    assert all(drift["features"][c]["reading"] == "stable" for c in ("bmi", "sex", "systolic_bp"))
    assert set(drift["labels"]) == set(labels)
    assert result["slices"]["columns"]["sex"]  # the run's --slice_cols, on the new rows
    text = (out / "report.md").read_text()
    assert "## Drift" in text and "Moved: `age`" in text
    # a second report into the same folder needs --overwrite; the labels must be there
    assert report_cli.main([str(run_dir), "--csv_path", str(csv), "--no_plots"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    new.drop(columns=["label_ckd"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    assert report_cli.main([str(run_dir), "--csv_path", str(tmp_path / "unlabelled.csv"), "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label_ckd" in err and "predict.py" in err and not (tmp_path / "x").exists()


def test_psi_and_flags_by_hand():
    train = pd.DataFrame({"x": np.arange(1000, dtype=float), "c": ["a"] * 500 + ["b"] * 500})
    profile = feature_profile(train, {"x": "numeric", "c": "categorical"})
    same = drift_report(profile, train, flagged_share={}, prevalence={}, held_out_share={})
    assert same["moved"] == [] and same["features"]["x"]["psi"] == pytest.approx(0.0, abs=1e-9)
    # half the rows move to level "z", never seen in training: shares a 0.5 -> 0.25, b 0.5 -> 0.25, unseen 0 -> 0.5
    shifted = pd.DataFrame({"x": np.arange(1000, dtype=float), "c": ["a"] * 250 + ["b"] * 250 + ["z"] * 500})
    got = drift_report(profile, shifted, flagged_share={"y": 0.3}, prevalence={"y": 0.05}, held_out_share={"y": 0.1})
    floor = 1e-4
    by_hand = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - floor) * math.log(0.5 / floor)
    assert got["features"]["c"]["psi"] == pytest.approx(by_hand)
    assert got["features"]["c"]["unseen_share"] == 0.5 and got["moved"] == ["c"]
    assert got["labels"]["y"]["ratio_to_held_out"] == pytest.approx(3.0) and got["labels"]["y"]["flagged"]
