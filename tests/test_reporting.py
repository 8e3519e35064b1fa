"""The all-negatives guard, the label table and the Markdown report (imbalance/reporting.py)."""

import logging

import numpy as np
import pytest

from imbalance.reporting import CollapseGuard, format_label_table, format_report_markdown

RND_SEED = 20240616
N_VAL = 200
NEGATIVE_FLAGS = ["--class_weight_multiplier", "per_class", "weighted_bce", "very_aggressive", "--lr"]


def _epoch(**n_pos_pred) -> dict:
    """One epoch's validation metrics: label -> number of positive predictions out of N_VAL."""
    prevalence = {"label_a": 0.05, "label_b": 0.02}
    return {"labels": {name: {"n_pos_pred": k, "n": N_VAL, "prevalence": prevalence[name]} for name, k in n_pos_pred.items()}}


def _run(guard, epochs, caplog):
    per_epoch = []
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        for metrics in epochs:
            per_epoch.append(guard.update(metrics))
    return per_epoch


# --------------------------------------------------------------------------- CollapseGuard


def test_all_negative_streak_warns_once_at_patience(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=3)
    epochs = [_epoch(label_a=5, label_b=0)] * 6  # label_b has no positive prediction from epoch 1 on
    per_epoch = _run(guard, epochs, caplog)
    assert [len(w) for w in per_epoch] == [0, 0, 1, 0, 0, 0]
    message = per_epoch[2][0]
    assert "label_b" in message and "label_a" not in message
    for flag in NEGATIVE_FLAGS:
        assert flag in message, flag
    assert "2.00%" in message  # the label's prevalence
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [message]
    assert guard.collapsed == {"label_b": "all-negative"}


def test_all_positive_gives_the_reverse_advice(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=2)
    per_epoch = _run(guard, [_epoch(label_a=N_VAL, label_b=3)] * 3, caplog)
    assert [len(w) for w in per_epoch] == [0, 1, 0]
    message = per_epoch[1][0]
    assert "label_a" in message
    assert "lower --class_weight_multiplier" in message
    assert "raise --class_weight_multiplier" not in message
    assert "very_aggressive" not in message
    assert guard.collapsed == {"label_a": "all-positive"}


def test_broken_streak_resets(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=3)
    sequence = [
        _epoch(label_a=0, label_b=4),
        _epoch(label_a=0, label_b=4),
        _epoch(label_a=7, label_b=4),  # normal epoch: resets label_a
        _epoch(label_a=0, label_b=4),
        _epoch(label_a=0, label_b=4),
    ]
    per_epoch = _run(guard, sequence, caplog)
    assert all(len(w) == 0 for w in per_epoch)
    assert guard.collapsed == {}
    # a third all-negative epoch in a row now completes a fresh streak
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        warnings = guard.update(_epoch(label_a=0, label_b=4))
    assert len(warnings) == 1 and "label_a" in warnings[0]
    assert guard.collapsed == {"label_a": "all-negative"}


def test_switching_between_all_negative_and_all_positive_is_a_new_streak(caplog):
    guard = CollapseGuard(["label_a"], patience=2)
    sequence = [_epoch(label_a=0), _epoch(label_a=N_VAL), _epoch(label_a=0), _epoch(label_a=N_VAL)]
    per_epoch = _run(guard, sequence, caplog)
    assert all(len(w) == 0 for w in per_epoch)
    assert guard.collapsed == {}


def test_collapsed_records_both_labels(caplog):
    guard = CollapseGuard(["label_a", "label_b"], patience=1)
    per_epoch = _run(guard, [_epoch(label_a=0, label_b=N_VAL), _epoch(label_a=3, label_b=N_VAL)], caplog)
    assert [len(w) for w in per_epoch] == [2, 0]
    assert guard.collapsed == {"label_a": "all-negative", "label_b": "all-positive"}


# --------------------------------------------------------------------------- format_label_table


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


def test_all_positive_advice_knows_whether_thresholds_are_tuned(caplog):
    untuned = CollapseGuard(["label_a"], patience=1)
    tuned = CollapseGuard(["label_a"], patience=1, optimize_thresholds=True)
    (plain,) = _run(untuned, [_epoch(label_a=N_VAL)], caplog)[0]
    (with_tuning,) = _run(tuned, [_epoch(label_a=N_VAL)], caplog)[0]
    assert "pass --optimize_thresholds" in plain and "macro_f1_tuned" not in plain
    assert "pass --optimize_thresholds" not in with_tuning and "--early_stop_metric macro_f1_tuned" in with_tuning


def _epoch_record(*, epoch=1, member=0, recall=0.25, improved=True):
    from imbalance.training import EpochRecord

    label = {"precision": 0.5, "recall": recall, "f1": 1 / 3, "auroc": 0.8, "auprc": 0.4, "n_pos_pred": 4, "threshold": 0.5}
    metrics = {"labels": {"y": label}, "macro": label}
    return EpochRecord(epoch=epoch, lr=1e-3, train_loss=0.7, val_loss=0.6, train_loss_per_label={"y": 0.7},
                       val_loss_per_label={"y": 0.6}, val=metrics, val_tuned=metrics, improved=improved, member=member)


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
    assert lines[0].startswith("epoch   1") and lines[0].endswith("*")
    assert not lines[1].endswith("*")
    assert lines[2].startswith("member 2 epoch   1")  # members are counted from 1 for people
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    recall = events.Scalars("y/recall")
    # the second member's epochs do not overwrite the first one's steps
    assert [(e.step, round(e.value, 6)) for e in recall] == [(1, 0.1), (2, 0.2), (1001, 0.3)]
