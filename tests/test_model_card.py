"""model_card.md (imbalance/model_card.py): every section, from a real run, and the limitations it derives."""

import json

import pytest

from imbalance.model_card import FEW_POSITIVES, format_model_card, limitations
from conftest import train_demo_run

SECTIONS = ["## Intended use", "**Out of scope**", "## Data", "## Training recipe", "## Augmentation", "## Metrics",
            "## Calibration", "## Thresholds", "## Subgroups", "## Limitations"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_demo_run(tmp_path_factory.mktemp("card"), "--baselines", "logistic", "--resample", "mlsmote",
                          "--resample_ratio", "0.8", "--slice_cols", "sex", "--slice_min_positives", "3",
                          "--bootstrap", "200", rows=900, seed=4, epochs=2)


def test_every_section_is_in_the_card(run_dir):
    card = (run_dir / "model_card.md").read_text()
    positions = [card.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions)  # in order
    report = json.loads((run_dir / "metrics.json").read_text())
    command = json.loads((run_dir / "run.json").read_text())["command"]
    assert "python train_classifier.py --csv_path" in card and "--slice_cols sex" in card and command[0] == "train_classifier.py"
    assert "mlsmote" in card and "synthetic rows" in card and "quality gate" in card
    low, high = report["intervals"]["models"]["network"]["macro"]["auprc"]
    assert f"{report['models']['network']['macro']['auprc']:.3f} [{low:.3f}, {high:.3f}]" in card  # metrics with intervals
    assert "logistic (macro)" in card and "`platt`" in card and "Tuned on the validation split for `f1`" in card
    assert "model_card.md" in json.loads((run_dir / "run.json").read_text())["files"]


def test_limitations_name_the_runs_own_caveats(run_dir):
    report = json.loads((run_dir / "metrics.json").read_text())
    analysis = json.loads((run_dir / "analysis.json").read_text())
    notes = limitations(report, analysis)
    few = [n for n, m in report["models"]["network"]["labels"].items() if m["n_pos_true"] < FEW_POSITIVES]
    assert few and all(any(f"`{name}` has" in note for note in notes) for name in few)
    assert any("synthetic rows" in note for note in notes)
    assert any("another site" in note for note in notes)
    # a collapsed label and a baseline that is clearly better are named too
    report["collapsed"]["final"] = {"label_stroke": "all-negative"}
    report["intervals"]["paired"] = {"baseline": "logistic", "difference": -0.2, "interval": [-0.3, -0.1], "metric": "macro auprc",
                                     "share_network_better": 0.0}
    notes = limitations(report, analysis)
    assert any("`label_stroke` is all-negative" in note for note in notes)
    assert any("logistic ranks the test rows better" in note for note in notes)
    card = format_model_card(report, analysis, json.loads((run_dir / "config.json").read_text()), None)
    assert "`label_stroke` is all-negative" in card
