"""Tests for imbalance.thresholds: checked against brute force with scikit-learn metrics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    matthews_corrcoef,
)

from imbalance.errors import UserError
from imbalance.thresholds import THRESHOLD_OBJECTIVES, best_with_floor, optimize_thresholds


def _youden(y, pred):
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return tp / (tp + fn) + tn / (tn + fp) - 1.0


SKLEARN_OBJECTIVES = {
    "f1": lambda y, p: f1_score(y, p, zero_division=0),
    "f2": lambda y, p: fbeta_score(y, p, beta=2, zero_division=0),
    "balanced_accuracy": balanced_accuracy_score,
    "youden_j": _youden,
    "mcc": matthews_corrcoef,
}

# Score transforms that route through both internal code paths (|s| < 2 packed sort, with and
# without negative scores; and the general path for wide-range scores such as logits).
TRANSFORMS = {
    0: lambda s: s,
    1: lambda s: s - 0.3,
    2: lambda s: (s - 0.3) * 10.0,
}


def test_every_registered_objective_has_a_sklearn_reference():
    assert sorted(THRESHOLD_OBJECTIVES.names()) == sorted(SKLEARN_OBJECTIVES)


def _brute_force(y, s, metric):
    """Best value and the highest threshold reaching it, over every distinct score."""
    fn = SKLEARN_OBJECTIVES[metric]
    cands = np.unique(s)
    values = np.array([fn(y, (s >= t).astype(int)) for t in cands])
    best = values.max()
    tied = cands[np.isclose(values, best, rtol=0, atol=1e-12)]
    return best, tied.max(), fn


def _random_problem(seed, n=200, n_labels=3):
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.1, 0.3, 0.55])[:n_labels]
    y = (rng.random((n, n_labels)) < prevalence).astype(np.int64)
    # weakly informative scores rounded to 2 decimals -> many ties, <= 21 distinct values
    s = np.round(0.12 * rng.random((n, n_labels)) + 0.08 * y * rng.random((n, n_labels)), 2)
    return y, TRANSFORMS[seed](s)


@pytest.mark.parametrize("metric", sorted(SKLEARN_OBJECTIVES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_brute_force(metric, seed):
    y, s = _random_problem(seed)
    thresholds, values = optimize_thresholds(y, s, metric=metric)
    assert thresholds.shape == values.shape == (3,)
    assert thresholds.dtype == values.dtype == np.float64
    for j in range(3):
        best, best_thr, fn = _brute_force(y[:, j], s[:, j], metric)
        assert values[j] == pytest.approx(best, abs=1e-12)
        assert thresholds[j] == best_thr  # a distinct score, and the highest among ties
        assert thresholds[j] in s[:, j]
        # the returned threshold reproduces the returned objective
        assert fn(y[:, j], (s[:, j] >= thresholds[j]).astype(int)) == pytest.approx(values[j], abs=1e-12)


def test_tiny_random_problems_with_tied_optima():
    # tiny problems make equal objective values at different thresholds common
    rng = np.random.default_rng(11)
    n_tied = 0
    for _ in range(4):
        y = (rng.random((10, 3)) < 0.4).astype(int)
        y[0], y[1] = 1, 0  # both classes in every label
        s = np.round(rng.random((10, 3)), 1)
        for metric in SKLEARN_OBJECTIVES:
            thresholds, values = optimize_thresholds(y, s, metric=metric)
            for j in range(3):
                fn = SKLEARN_OBJECTIVES[metric]
                cands = np.unique(s[:, j])
                ref = np.array([fn(y[:, j], (s[:, j] >= t).astype(int)) for t in cands])
                tied = cands[np.isclose(ref, ref.max(), rtol=0, atol=1e-12)]
                n_tied += len(tied) > 1
                assert values[j] == pytest.approx(ref.max(), abs=1e-12)
                assert thresholds[j] == tied.max()
    assert n_tied >= 5  # the tie-break was really exercised


def test_highest_threshold_wins_ties():
    # Youden's J: 0.5 at t=0.9, 0 at 0.8, 0.5 at 0.7, 0 at 0.6 -> tie, highest is 0.9
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    thr, val = optimize_thresholds(y, s, metric="youden_j")
    assert thr[0] == 0.9 and val[0] == pytest.approx(0.5)
    # F1 on the same data has a unique optimum: t=0.7 -> tp=2, fp=1, fn=0 -> 0.8
    thr, val = optimize_thresholds(y, s, metric="f1")
    assert thr[0] == 0.7 and val[0] == pytest.approx(0.8)


def test_tied_scores_are_never_split():
    # candidates: 0.5 (tp=2, fp=1 -> F1 0.8) and 0.2 (tp=2, fp=2 -> F1 2/3)
    y = np.array([1, 1, 0, 0])
    s = np.array([0.5, 0.5, 0.5, 0.2])
    thr, val = optimize_thresholds(y, s, metric="f1")
    assert thr[0] == 0.5 and val[0] == pytest.approx(0.8)


def test_hand_made_multilabel_case():
    y = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    thr, val = optimize_thresholds(y, s, metric="mcc")
    # label 0: t=0.9 -> tp1 fp0 fn1 tn2 -> mcc 1/sqrt(3); t=0.7 -> tp2 fp1 fn0 tn1 -> 1/sqrt(3)
    # (tie, highest wins); label 1: t=0.3 separates perfectly -> 1
    np.testing.assert_allclose(val, [1 / np.sqrt(3), 1.0])
    np.testing.assert_array_equal(thr, [0.9, 0.3])


def test_one_dimensional_and_torch_input():
    y, s = _random_problem(0)
    thr2, val2 = optimize_thresholds(y, s, metric="f2")
    thr1, val1 = optimize_thresholds(y[:, 1], s[:, 1], metric="f2")
    assert thr1.shape == val1.shape == (1,)
    assert thr1[0] == thr2[1] and val1[0] == val2[1]
    thr_t, val_t = optimize_thresholds(torch.from_numpy(y), torch.from_numpy(s).float(), metric="f2")
    best, best_thr, _ = _brute_force(y[:, 0], s[:, 0].astype(np.float32).astype(np.float64), "f2")
    assert val_t[0] == pytest.approx(best, abs=1e-12) and thr_t[0] == best_thr


@pytest.mark.parametrize(
    "y, s, expected",
    [
        # t=0.7: tp1 fn1 -> 2/3; t=0: tp2 fp1 -> 0.8 (1.0 if -0.0 were split from 0.0); t=-0.5: 2/3
        ([0, 1, 0, 1], [-0.0, 0.0, -0.5, 0.7], 0.8),
        ([1, 0, 0, 1], [-0.0, 0.0, -0.5, 0.7], 0.8),
        # no negative scores at all: t=0.7 -> 2/3, t=0 -> tp2 fp1 -> 0.8
        ([0, 1, 1], [-0.0, 0.0, 0.7], 0.8),
        ([0, 1, 1], [-0.0, 0.0, 7.0], 0.8),  # general (non-packed) path
    ],
)
def test_negative_zero_ties_with_zero(y, s, expected):
    # -0.0 >= 0.0 and 0.0 >= -0.0: the two are one candidate and always predicted together
    thr, val = optimize_thresholds(np.array(y), np.array(s), metric="f1")
    assert thr[0] == 0.0 and not np.signbit(thr[0]) and val[0] == pytest.approx(expected)


@pytest.mark.parametrize("column", [np.zeros(6), np.ones(6)])
def test_fallback_for_single_class_label(column, caplog):
    rng = np.random.default_rng(3)
    y = np.stack([np.array([1, 0, 1, 0, 0, 1]), column], axis=1)
    s = rng.random((6, 2))
    with caplog.at_level(logging.WARNING, logger="imbalance.thresholds"):
        thr, val = optimize_thresholds(y, s, metric="f1", fallback=0.3)
    assert thr[1] == 0.3 and np.isnan(val[1])
    assert np.isfinite(val[0]) and thr[0] in s[:, 0]
    assert any("label 1" in r.getMessage() for r in caplog.records)


def test_unknown_metric_lists_choices():
    with pytest.raises(UserError) as err:
        optimize_thresholds(np.array([0, 1]), np.array([0.2, 0.8]), metric="accuracy")
    msg = str(err.value)
    assert "accuracy" in msg
    for name in ("f1", "f2", "balanced_accuracy", "youden_j", "mcc"):
        assert name in msg


@pytest.mark.parametrize(
    "y, s, match",
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.2]), "same shape"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "finite"),
        (np.array([0, 1]), np.array([0.1, np.inf]), "finite"),
        (np.array([0, 2]), np.array([0.1, 0.2]), "0 and 1"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), "1-D"),
    ],
)
def test_bad_input_raises_value_error(y, s, match):
    with pytest.raises(ValueError, match=match):
        optimize_thresholds(y, s)


def test_objectives_are_vectorised_and_zero_when_undefined():
    z = np.zeros(3)
    tp = np.array([0.0, 3.0, 2.0])
    fp = np.array([0.0, 1.0, 2.0])
    fn = np.array([0.0, 0.0, 1.0])
    tn = np.array([5.0, 0.0, 4.0])
    f1 = THRESHOLD_OBJECTIVES.get("f1")(tp, fp, fn, tn)
    np.testing.assert_allclose(f1, [0.0, 6 / 7, 4 / 7])
    mcc = THRESHOLD_OBJECTIVES.get("mcc")(tp, fp, fn, tn)
    assert mcc[0] == 0.0 and mcc[1] == 0.0  # zero denominators
    assert mcc[2] == pytest.approx((2 * 4 - 2 * 1) / np.sqrt(4 * 3 * 6 * 5))
    for name in THRESHOLD_OBJECTIVES.names():
        out = THRESHOLD_OBJECTIVES.get(name)(z, z, z, z)
        assert out.shape == (3,) and out.dtype == np.float64 and (out == 0).all()


def test_large_continuous_scores_match_sklearn_curve():
    # n large enough for many distinct scores: compare with precision_recall_curve's F1
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(7)
    n = 20_000
    y = (rng.random(n) < 0.05).astype(int)
    s = np.clip(rng.normal(0.3 + 0.2 * y, 0.15), 0, 1)
    thr, val = optimize_thresholds(y, s, metric="f1")
    p, r, t = precision_recall_curve(y, s)
    p, r = p[:-1], r[:-1]
    f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)
    k = np.flatnonzero(f >= f.max() - 1e-12).max()
    assert val[0] == pytest.approx(f[k], abs=1e-12)
    assert thr[0] == t[k]


# --------------------------------------------------------------------------- objectives with a parameter


def _counts(y, pred):
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return tp, fp, fn, tn


def _ratio(a, b):
    return a / b if b else 0.0


# metric -> (value, constraint or None, what is maximised when nothing meets it), from sklearn's confusion matrix
PARAMETRIC_REFERENCE = {
    "fbeta:0.5": (lambda y, p: fbeta_score(y, p, beta=0.5, zero_division=0), None, None),
    "fbeta:3": (lambda y, p: fbeta_score(y, p, beta=3, zero_division=0), None, None),
    "cost:10": (lambda y, p: -(10 * _counts(y, p)[2] + _counts(y, p)[1]), None, None),
    "recall_at_precision:0.3": (
        lambda y, p: _ratio(_counts(y, p)[0], _counts(y, p)[0] + _counts(y, p)[2]),
        lambda y, p: _counts(y, p)[0] + _counts(y, p)[1] > 0 and _counts(y, p)[0] >= 0.3 * (_counts(y, p)[0] + _counts(y, p)[1]),
        lambda y, p: _ratio(_counts(y, p)[0], _counts(y, p)[0] + _counts(y, p)[1])),
    "precision_at_recall:0.6": (
        lambda y, p: _ratio(_counts(y, p)[0], _counts(y, p)[0] + _counts(y, p)[1]),
        lambda y, p: _counts(y, p)[0] >= 0.6 * (_counts(y, p)[0] + _counts(y, p)[2]), None),
    "specificity_at_recall:0.8": (
        lambda y, p: _ratio(_counts(y, p)[3], _counts(y, p)[3] + _counts(y, p)[1]),
        lambda y, p: _counts(y, p)[0] >= 0.8 * (_counts(y, p)[0] + _counts(y, p)[2]), None),
}


def _brute_force_constrained(y, s, metric):
    value, constraint, closest = PARAMETRIC_REFERENCE[metric]
    cands = np.unique(s)
    preds = [(s >= t).astype(int) for t in cands]
    ok = np.array([constraint is None or constraint(y, p) for p in preds])
    if not ok.any():
        values = np.array([closest(y, p) for p in preds])
        return None, cands[np.isclose(values, values.max(), rtol=0, atol=1e-12)].max()
    values = np.array([value(y, p) if good else -np.inf for p, good in zip(preds, ok)])
    best = values.max()
    return best, cands[np.isclose(values, best, rtol=0, atol=1e-12)].max()


@pytest.mark.parametrize("metric", sorted(PARAMETRIC_REFERENCE))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objectives_with_a_parameter_match_brute_force(metric, seed):
    y, s = _random_problem(seed)
    thresholds, values = optimize_thresholds(y, s, metric=metric)
    for j in range(3):
        best, best_thr = _brute_force_constrained(y[:, j], s[:, j], metric)
        assert thresholds[j] == best_thr
        if best is None:
            assert np.isnan(values[j])
        else:
            assert values[j] == pytest.approx(best, abs=1e-12)
            _, constraint, _ = PARAMETRIC_REFERENCE[metric]
            assert constraint is None or constraint(y[:, j], (s[:, j] >= thresholds[j]).astype(int))  # the constraint holds


def test_constraint_met_at_exactly_the_asked_share():
    # 4 of 5 predicted positives are right: precision 0.8 meets recall_at_precision:0.8 exactly
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1])
    thr, val = optimize_thresholds(y, s, metric="recall_at_precision:0.8")
    assert thr[0] == 0.5 and val[0] == pytest.approx(1.0)  # 5 of 6 at 0.5: precision 0.833, recall 1
    thr, val = optimize_thresholds(y, s, metric="recall_at_precision:0.9")
    assert thr[0] == 0.6 and val[0] == pytest.approx(0.8)  # the first four only


def test_an_infeasible_constraint_warns_once_naming_labels_and_fallback(caplog):
    y = np.array([[1, 1], [0, 0], [1, 1], [0, 0], [1, 0], [0, 1]])
    s = np.array([[0.2, 0.1], [0.9, 0.9], [0.3, 0.2], [0.8, 0.8], [0.4, 0.3], [0.7, 0.4]])  # positives ranked last
    with caplog.at_level(logging.WARNING, logger="imbalance.thresholds"):
        thr, val = optimize_thresholds(y, s, metric="recall_at_precision:0.99", label_names=["ckd", "stroke"])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "ckd, stroke" in messages[0] and "highest precision" in messages[0] and "recall_at_precision:0.99" in messages[0]
    assert np.isnan(val).all()
    # the fallback: the threshold with the best precision (ties: the highest threshold)
    for j in range(2):
        precision = [_ratio(((s[:, j] >= t) & (y[:, j] == 1)).sum(), (s[:, j] >= t).sum()) for t in s[:, j]]
        best = max(precision)
        assert thr[j] == max(t for t, p in zip(s[:, j], precision) if p == best)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imbalance.thresholds"):
        optimize_thresholds(y, s, metric="recall_at_precision:0.99", warn=False)
    assert not caplog.records


@pytest.mark.parametrize("metric, fragment", [
    ("recall_at_precision", "needs a value, written recall_at_precision:P"),
    ("recall_at_precision:1.5", "P in (0, 1]"),
    ("precision_at_recall:0", "R in (0, 1]"),
    ("cost:-2", "C > 0"),
    ("fbeta:abc", "B > 0"),
    ("fbeta:nan", "B > 0"),
    ("accuracy_at_recall:0.5", "unknown threshold metric"),
])
def test_malformed_metrics_are_user_errors_naming_the_form(metric, fragment):
    with pytest.raises(UserError, match="--threshold_metric") as err:
        optimize_thresholds(np.array([0, 1]), np.array([0.2, 0.8]), metric=metric)
    assert fragment in str(err.value)


def test_config_takes_a_constrained_threshold_metric():
    from imbalance.config import parse_config

    cfg, _ = parse_config(["--optimize_thresholds", "--threshold_metric", "recall_at_precision:0.25"])
    assert cfg.threshold_metric == "recall_at_precision:0.25"
    with pytest.raises(UserError, match="P in"):
        parse_config(["--threshold_metric", "recall_at_precision:2"])


@pytest.mark.parametrize("measured", ["recall", "precision"])
def test_best_with_floor_matches_brute_force(measured):
    rng = np.random.default_rng(5)
    y = rng.random((300, 3)) < [0.05, 0.2, 0.5]
    s = np.round(rng.random((300, 3)) * 0.6 + y * 0.3, 2)  # ties, informative
    floors = [0.3, 0.55, 0.8]
    got = best_with_floor(y, s, measured, floors)
    for j in range(3):
        best = 0.0
        for t in np.unique(s[:, j]):
            pred = s[:, j] >= t
            tp = (pred & y[:, j]).sum()
            recall, precision = tp / y[:, j].sum(), tp / pred.sum()
            value, held = (recall, precision) if measured == "recall" else (precision, recall)
            if held >= floors[j]:
                best = max(best, value)
        assert got[j] == pytest.approx(best, abs=1e-12)


def test_best_with_floor_unreachable_floor_single_class_and_shape():
    y = np.array([[1, 0], [0, 0], [0, 0], [1, 0]])
    s = np.array([[0.2, 0.1], [0.9, 0.2], [0.8, 0.3], [0.1, 0.4]])  # the positives ranked last
    got = best_with_floor(y, s, "recall", [1.0, 0.5])
    assert got[0] == 0.0  # no threshold reaches precision 1
    assert np.isnan(got[1])  # no positives: undefined
    assert best_with_floor(y[:, :1], s[:, :1], "recall", [0.5])[0] == 1.0  # all rows: precision 0.5, recall 1
    with pytest.raises(ValueError, match="one floor per label"):
        best_with_floor(y, s, "recall", [0.5])
