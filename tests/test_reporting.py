"""The all-negatives guard, the label table and the Markdown report (imbalance/reporting.py)."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from imbalance.reporting import CollapseGuard, Levers, format_label_table, format_report_markdown

RND_SEED = 20240616
N_VAL = 200
def _epoch(tuned=None, **n_pos_pred):
    """One epoch's record: label -> positive validation predictions out of N_VAL, at 0.5 (and at
    tuned thresholds: ``tuned``, the same by default)."""
    def block(counts):
        return {"labels": {name: {"n_pos_pred": k, "n": N_VAL} for name, k in counts.items()}}

    return SimpleNamespace(val=block(n_pos_pred), val_tuned=block(tuned if tuned is not None else n_pos_pred))


def _run(guard, epochs, caplog):
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        return [guard.update(record) for record in epochs]


# --------------------------------------------------------------------------- CollapseGuard


def test_all_negative_streak_warns_once_at_patience_in_one_line(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=3)
    per_epoch = _run(guard, [_epoch(label_a=5, label_b=0)] * 6, caplog)
    assert [m is not None for m in per_epoch] == [False, False, True, False, False, False]
    message = per_epoch[2]
    assert message.startswith("label_b: no positive validation predictions at the threshold 0.5 for 3 epochs; try ")
    assert "\n" not in message and len(message) < 250
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [message]
    assert guard.collapsed == {"label_b": "all-negative"}


def test_one_line_per_run_names_every_label_collapsing_together(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=2)
    per_epoch = _run(guard, [_epoch(label_a=0, label_b=0)] * 2 + [_epoch(label_a=N_VAL, label_b=0)] * 3, caplog)
    assert per_epoch[1].startswith("label_a, label_b: no positive")
    assert [m for m in per_epoch if m] == [per_epoch[1]]  # label_a's later all-positive streak: no second line
    assert guard.collapsed == {"label_a": "all-positive", "label_b": "all-negative"}


@pytest.mark.parametrize("levers, wanted, unwanted", [
    (Levers(), ["--optimize_thresholds", "--loss_type weighted_bce --class_weight_method balanced"], ["per_class"]),
    (Levers(optimize_thresholds=True, loss_type="weighted_bce", class_weight_method="balanced"),
     ["--use_weighted_sampling --weight_method balanced"], ["--optimize_thresholds", "--loss_type"]),
    (Levers(optimize_thresholds=True, loss_type="focal", class_weight_method="aggressive", use_weighted_sampling=True,
            weight_method="per_class", class_weight_multiplier=2.0),
     ["a larger --class_weight_multiplier (now 2)"], ["--optimize_thresholds", "--use_weighted_sampling", "--loss_type"]),
])
def test_negative_advice_names_only_levers_the_run_does_not_use(caplog, levers, wanted, unwanted):
    guard = CollapseGuard(["label_a"], patience=1, levers=levers)
    (message,) = _run(guard, [_epoch(label_a=0)], caplog)
    for flag in wanted:
        assert flag in message, (flag, message)
    for flag in unwanted:
        assert flag not in message, (flag, message)


def test_all_positive_advice_is_the_reverse(caplog):
    levers = Levers(optimize_thresholds=True, use_weighted_sampling=True, weight_method="per_class", loss_type="focal",
                    class_weight_method="aggressive", class_weight_multiplier=2.0)
    guard = CollapseGuard(["label_a"], patience=1, levers=levers)
    (message,) = _run(guard, [_epoch(label_a=N_VAL)], caplog)
    assert "only positive validation predictions at the tuned thresholds" in message
    assert "one correction instead of two" in message and "a smaller --class_weight_multiplier (now 2)" in message
    assert "larger" not in message


def test_with_tuned_thresholds_collapse_is_judged_at_the_tuned_thresholds(caplog):
    # the aggressive presets' usual picture: every row positive at 0.5, sensible at the tuned cut-off
    tuned = CollapseGuard(["label_a"], patience=1, levers=Levers(optimize_thresholds=True))
    assert _run(tuned, [_epoch(tuned={"label_a": 7}, label_a=N_VAL)] * 3, caplog) == [None, None, None]
    assert tuned.collapsed == {}
    untuned = CollapseGuard(["label_a"], patience=1)
    assert _run(untuned, [_epoch(tuned={"label_a": 7}, label_a=N_VAL)], caplog)[0] is not None


def test_broken_streak_resets(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=3)
    sequence = [_epoch(label_a=0, label_b=4)] * 2 + [_epoch(label_a=7, label_b=4)] + [_epoch(label_a=0, label_b=4)] * 2
    assert _run(guard, sequence, caplog) == [None] * 5 and guard.collapsed == {}
    assert _run(guard, [_epoch(label_a=0, label_b=4)], caplog)[0].startswith("label_a:")
    assert guard.collapsed == {"label_a": "all-negative"}


def test_switching_between_all_negative_and_all_positive_is_a_new_streak(caplog):
    guard = CollapseGuard(["label_a"], patience=2)
    sequence = [_epoch(label_a=0), _epoch(label_a=N_VAL), _epoch(label_a=0), _epoch(label_a=N_VAL)]
    assert _run(guard, sequence, caplog) == [None] * 4 and guard.collapsed == {}


def test_guard_state_round_trips_so_a_resumed_run_does_not_warn_again(caplog):
    guard = CollapseGuard(["label_a"], patience=1)
    _run(guard, [_epoch(label_a=0)], caplog)
    again = CollapseGuard(["label_a"], patience=1)
    again.load_state_dict(guard.state_dict())
    assert _run(again, [_epoch(label_a=0)], caplog) == [None] and again.collapsed == {"label_a": "all-negative"}


def _label_metrics(prevalence, threshold, n_pos_pred, n_pos_true, precision, recall, f1, auroc, auprc, n=100):
    return dict(prevalence=prevalence, threshold=threshold, n_pos_pred=n_pos_pred, n_pos_true=n_pos_true, n=n,
                precision=precision, recall=recall, f1=f1, auroc=auroc, auprc=auprc)


MULTI = {
    "labels": {
        "label_diabetes": _label_metrics(0.08, 0.5, 12, 8, 0.5, 0.75, 0.6, 0.91, 0.44),
        "label_stroke": _label_metrics(0.02, 0.35, 0, 2, float("nan"), 0.0, 0.0, 0.62, 0.05),
    },
    "macro": dict(n_pos_pred=12, precision=0.5, recall=0.375, f1=0.3, auroc=0.765, auprc=0.245),
}


def test_label_table_multilabel_has_every_label_and_macro():
    text = format_label_table(MULTI, title="validation")
    lines = text.splitlines()
    assert lines[0] == "validation"
    row = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith("-")}
    assert set(row) == {"label", "label_diabetes", "label_stroke", "macro"}
    assert "8.00%" in row["label_diabetes"] and "0.910" in row["label_diabetes"]
    assert "nan" in row["label_stroke"]  # undefined precision
    assert "0.765" in row["macro"]


def test_label_table_binary_has_no_macro_row():
    binary = {"labels": {"label_diabetes": MULTI["labels"]["label_diabetes"]}, "macro": MULTI["macro"]}
    text = format_label_table(binary)
    assert "label_diabetes" in text
    assert not any(line.split()[0] == "macro" for line in text.splitlines() if line.strip())


# --------------------------------------------------------------------------- format_report_markdown


def _report() -> dict:
    return {
        "split": "test",
        "run": {
            "output_dir": "runs/demo", "source": "demo.csv", "rows": {"train": 700, "val": 150, "test": 150},
            "best_epoch": 4, "epochs_run": 9, "early_stop_metric": "auprc", "stopped_early": True,
            "optimize_thresholds": True, "threshold_metric": "f1",
        },
        "models": {
            "network": MULTI,
            "prior": {
                "labels": {
                    "label_diabetes": _label_metrics(0.08, 0.5, 0, 8, float("nan"), 0.0, 0.0, 0.5, 0.08),
                    "label_stroke": _label_metrics(0.02, 0.5, 0, 2, float("nan"), 0.0, 0.0, 0.5, 0.02),
                },
                "macro": dict(n_pos_pred=0, precision=float("nan"), recall=0.0, f1=0.0, auroc=0.5, auprc=0.05),
            },
        },
        "collapsed": {"final": {"label_stroke": "all-negative"}, "during_training": {}},
    }


def test_report_markdown_has_a_row_per_model_and_label():
    text = format_report_markdown(_report())
    assert text.startswith("# Run report: runs/demo")
    assert "700 train / 150 validation / 150 test" in text
    assert "best epoch 4 of 9" in text and "stopped early" in text
    assert "tuned on validation for f1" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]  # skip header
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert [(c[0], c[1]) for c in cells] == [
        ("network", "label_diabetes"), ("network", "label_stroke"), ("network", "**macro**"),
        ("prior", "label_diabetes"), ("prior", "label_stroke"), ("prior", "**macro**"),
    ]
    diabetes = cells[0]
    assert diabetes[2:] == ["0.500", "12", "8", "0.500", "0.750", "0.600", "0.910", "0.440"]
    assert "## Collapsed labels" in text and "`label_stroke`: all-negative" in text


def test_report_markdown_single_label_no_macro_and_no_collapse_section():
    report = _report()
    report["models"] = {"network": {"labels": {"label_diabetes": MULTI["labels"]["label_diabetes"]}, "macro": MULTI["macro"]}}
    report["collapsed"] = {"final": {}, "during_training": {}}
    report["run"]["optimize_thresholds"] = False
    text = format_report_markdown(report)
    assert "**macro**" not in text
    assert "Collapsed" not in text
    assert "fixed at 0.5" in text
    assert sum(1 for line in text.splitlines() if line.startswith("| network |")) == 1


def _epoch_record(*, epoch=1, member=0, recall=0.25, improved=True):
    from imbalance.training import EpochRecord

    label = {"precision": 0.5, "recall": recall, "f1": 1 / 3, "auroc": 0.8, "auprc": 0.4, "n_pos_pred": 4, "threshold": 0.5}
    metrics = {"labels": {"y": label}, "macro": label}
    return EpochRecord(epoch=epoch, lr=1e-3, train_loss=0.7, val_loss=0.6, train_loss_per_label={"y": 0.7},
                       val_loss_per_label={"y": 0.6}, val=metrics, val_tuned=metrics, improved=improved, member=member,
                       metric="macro_f1 (tuned thresholds)", score=1 / 3)


def test_tensorboard_gets_per_label_scalars_and_the_synthetic_quality(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from imbalance.reporting import EpochLogger
    from imbalance.synthetic_quality import quality_report, report_markdown

    rng = np.random.default_rng(RND_SEED)
    real, synth = rng.normal(size=(60, 3)), rng.normal(size=(40, 3)) + 0.5
    quality = quality_report(real, synth, kinds=["numeric"] * 3, names=["a", "b", "c"], seed=0)
    writer = EpochLogger(tmp_path, ["y"], quiet=True)
    writer.log_epoch(_epoch_record())
    writer.log_synthetic_quality(quality, report_markdown(quality))
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"y/f1", "y/auroc", "y/n_pos_pred", "y/loss_val", "lr", "loss/train"} <= tags
    assert {"synthetic/discriminative_auroc", "synthetic/near_copy_share", "synthetic/mmd2"} <= tags
    assert events.Scalars("synthetic/discriminative_auroc")[0].value == pytest.approx(quality["discriminative_auroc"], abs=1e-6)
    assert events.Scalars("y/recall")[0].value == pytest.approx(0.25)
    assert events.Scalars("loss/val")[0].value == pytest.approx(0.6)


def test_ensemble_members_log_apart(tmp_path, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from imbalance.reporting import EpochLogger

    writer = EpochLogger(tmp_path, ["y"], quiet=False)
    with caplog.at_level(logging.INFO, logger="imbalance"):
        writer.log_epoch(_epoch_record(epoch=1, recall=0.1))
        writer.log_epoch(_epoch_record(epoch=2, recall=0.2, improved=False))
        writer.log_epoch(_epoch_record(epoch=1, member=1, recall=0.3))
    writer.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("epoch   1") and "macro_f1 (tuned thresholds) 0.3333 *" in lines[0]
    assert "*" not in lines[1]
    assert lines[2].startswith("member 2 epoch   1")  # members are counted from 1 for people
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    recall = events.Scalars("y/recall")
    # the second member's epochs do not overwrite the first one's steps
    assert [(e.step, round(e.value, 6)) for e in recall] == [(1, 0.1), (2, 0.2), (1001, 0.3)]


def test_the_epoch_line_says_how_a_tie_was_broken(caplog):
    from imbalance.reporting import EpochLogger

    record = _epoch_record(epoch=5, improved=True)
    record.tie = "tie with epoch 3, broken by val AUPRC 0.4000 vs 0.3500: this epoch kept"
    with caplog.at_level(logging.INFO, logger="imbalance"):
        EpochLogger(None, ["y"]).log_epoch(record)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith("(tie with epoch 3, broken by val AUPRC 0.4000 vs 0.3500: this epoch kept)")
