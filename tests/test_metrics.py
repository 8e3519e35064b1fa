"""Tests for imbalance.metrics: every number checked against scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from imbalance.metrics import binary_counts, label_metrics

NAMES = ["a", "b", "c", "d"]


def _random_problem(seed, n=400, n_labels=4, decimals=None):
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.05, 0.2, 0.5, 0.8])[:n_labels]
    y = (rng.random((n, n_labels)) < prevalence).astype(np.int64)
    s = np.clip(0.35 + 0.25 * y + 0.2 * rng.standard_normal((n, n_labels)), 0, 1)
    if decimals is not None:
        s = np.round(s, decimals)
    thr = rng.uniform(0.3, 0.7, n_labels)
    return y, s, thr


def _check_label(m, y, s, thr):
    pred = (s >= thr).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (tp, fp, fn, tn)
    assert m["threshold"] == thr
    assert m["n"] == len(y) and m["n_pos_true"] == y.sum() and m["n_pos_pred"] == pred.sum()
    assert m["prevalence"] == pytest.approx(y.mean(), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0), abs=1e-6)
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=0), abs=1e-6)
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0), abs=1e-6)
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred, zero_division=0), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-6)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert m["auprc"] == pytest.approx(average_precision_score(y, s), abs=1e-6)


@pytest.mark.parametrize("seed, decimals", [(0, None), (1, 2), (2, 1)])
def test_label_metrics_match_sklearn(seed, decimals):
    y, s, thr = _random_problem(seed, decimals=decimals)
    report = label_metrics(y, s, thr, NAMES)
    assert list(report["labels"]) == NAMES
    for j, name in enumerate(NAMES):
        _check_label(report["labels"][name], y[:, j], s[:, j], thr[j])
    macro = report["macro"]
    for key in ("precision", "recall", "f1", "auroc", "auprc", "balanced_accuracy"):
        expected = np.mean([report["labels"][n][key] for n in NAMES])
        assert macro[key] == pytest.approx(expected, abs=1e-12)
    assert macro["auroc"] == pytest.approx(
        np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(4)]), abs=1e-6
    )
    assert macro["n_pos_pred"] == int((s >= thr).sum())


def test_report_is_plain_json():
    y, s, thr = _random_problem(3)
    y[:, 0] = 0  # a nan label too
    report = label_metrics(y, s, thr, NAMES)
    json.dumps(report)
    for m in report["labels"].values():
        for key in ("n", "n_pos_true", "n_pos_pred", "tp", "fp", "fn", "tn"):
            assert type(m[key]) is int
        for key in ("threshold", "prevalence", "precision", "recall", "f1", "specificity",
                    "balanced_accuracy", "auroc", "auprc"):
            assert type(m[key]) is float
    assert type(report["macro"]["n_pos_pred"]) is int


def test_torch_and_one_dimensional_inputs():
    y, s, thr = _random_problem(4)
    ref = label_metrics(y, s, thr, NAMES)
    from_torch = label_metrics(torch.from_numpy(y), torch.from_numpy(s), torch.from_numpy(thr), NAMES)
    assert from_torch == ref
    one = label_metrics(y[:, 2], s[:, 2], float(thr[2]), ["only"])
    assert one["labels"]["only"] == ref["labels"]["c"]
    # float32 scores
    s32 = torch.from_numpy(s).float()
    rep32 = label_metrics(torch.from_numpy(y), s32, thr, NAMES)
    s32np = s32.double().numpy()
    for j, name in enumerate(NAMES):
        assert rep32["labels"][name]["auroc"] == pytest.approx(roc_auc_score(y[:, j], s32np[:, j]), abs=1e-6)
        assert rep32["labels"][name]["auprc"] == pytest.approx(
            average_precision_score(y[:, j], s32np[:, j]), abs=1e-6
        )


def test_no_positive_predictions_gives_zero_precision_and_f1():
    y, s, _ = _random_problem(5)
    report = label_metrics(y, s, np.full(4, 1.5), NAMES)  # above every score
    for m in report["labels"].values():
        assert m["n_pos_pred"] == 0 and m["tp"] == 0 and m["fp"] == 0
        assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
        assert m["specificity"] == 1.0
    assert report["macro"]["n_pos_pred"] == 0 and report["macro"]["f1"] == 0.0


def test_single_class_label_is_nan_and_ignored_by_macro():
    y, s, thr = _random_problem(6)
    y[:, 1] = 0
    y[:, 3] = 1
    report = label_metrics(y, s, thr, NAMES)
    for name in ("b", "d"):
        m = report["labels"][name]
        assert math.isnan(m["auroc"]) and math.isnan(m["auprc"]) and math.isnan(m["balanced_accuracy"])
    assert report["labels"]["b"]["recall"] == 0.0  # zero_division=0
    for j, name in ((0, "a"), (2, "c")):
        _check_label(report["labels"][name], y[:, j], s[:, j], thr[j])
    macro = report["macro"]
    assert macro["auroc"] == pytest.approx(
        np.mean([roc_auc_score(y[:, j], s[:, j]) for j in (0, 2)]), abs=1e-6
    )
    assert macro["auprc"] == pytest.approx(
        np.mean([average_precision_score(y[:, j], s[:, j]) for j in (0, 2)]), abs=1e-6
    )
    # precision / recall / f1 are defined for every label, so all four count
    assert macro["f1"] == pytest.approx(np.mean([report["labels"][n]["f1"] for n in NAMES]))


def test_macro_is_nan_when_every_label_is_nan():
    y = np.zeros((5, 2), dtype=int)
    s = np.linspace(0, 1, 10).reshape(5, 2)
    report = label_metrics(y, s, 0.5, ["x", "y"])
    assert math.isnan(report["macro"]["auroc"]) and math.isnan(report["macro"]["auprc"])
    assert report["macro"]["precision"] == 0.0


def test_binary_counts_match_confusion_matrix():
    y, s, thr = _random_problem(7, decimals=2)
    counts = binary_counts(y, s, thr)
    assert set(counts) == {"tp", "fp", "fn", "tn"}
    for key in counts:
        assert counts[key].shape == (4,) and counts[key].dtype == np.int64
    for j in range(4):
        tn, fp, fn, tp = confusion_matrix(y[:, j], (s[:, j] >= thr[j]).astype(int), labels=[0, 1]).ravel()
        assert (counts["tp"][j], counts["fp"][j], counts["fn"][j], counts["tn"][j]) == (tp, fp, fn, tn)
    # a score exactly equal to the threshold counts as positive
    c = binary_counts(np.array([1, 0]), np.array([0.5, 0.5]), 0.5)
    assert c["tp"].tolist() == [1] and c["fp"].tolist() == [1]


def test_logit_scores_keep_ranking_metrics():
    # torchmetrics applies a sigmoid to scores outside [0, 1]: order preserving
    y, s, thr = _random_problem(8)
    logits = (s - 0.5) * 6
    report = label_metrics(y, logits, 0.0, NAMES)
    for j, name in enumerate(NAMES):
        assert report["labels"][name]["auroc"] == pytest.approx(roc_auc_score(y[:, j], logits[:, j]), abs=1e-6)
        assert report["labels"][name]["auprc"] == pytest.approx(
            average_precision_score(y[:, j], logits[:, j]), abs=1e-6
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"label_names": ["a", "b"]}, "label names"),
        ({"label_names": ["a", "a", "b", "c"]}, "distinct"),
        ({"thresholds": np.zeros(3)}, "one value per label"),
        ({"thresholds": np.array([0.5, np.nan, 0.5, 0.5])}, "nan"),
    ],
)
def test_bad_arguments(kwargs, match):
    y, s, thr = _random_problem(9)
    args = {"y_true": y, "scores": s, "thresholds": thr, "label_names": NAMES, **kwargs}
    with pytest.raises(ValueError, match=match):
        label_metrics(**args)


def test_torch_thread_count_is_restored():
    y, s, thr = _random_problem(10, n=50)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        label_metrics(y, s, thr, NAMES)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_label_reports_equal_separate_label_metrics_and_rank_each_label_once(monkeypatch):
    import imbalance.metrics as metrics

    rng = np.random.default_rng(5)
    y = (rng.random((400, 3)) < [0.05, 0.2, 0.0]).astype(int)  # the last label has no positives
    p = np.clip(rng.random((400, 3)) * 0.6 + 0.35 * y, 0, 1)
    names = ["a", "b", "c"]
    sets = {"at_default": 0.5, "tuned": np.array([0.3, 0.6, 0.4])}
    calls = []
    real = metrics._ranking_metrics
    monkeypatch.setattr(metrics, "_ranking_metrics", lambda yy, ss: calls.append(1) or real(yy, ss))
    together = metrics.label_reports(y, p, sets, names)
    assert len(calls) == 2  # labels a and b, once each; c is single-class
    for key, thr in sets.items():
        alone = metrics.label_metrics(y, p, thr, names)
        assert json.dumps(together[key], sort_keys=True) == json.dumps(alone, sort_keys=True)
