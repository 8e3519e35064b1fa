"""Calibration (imbalance/calibration.py): each method on a deliberately miscalibrated case, the
prior shift's closed form, the metrics by hand, and what a checkpoint stores."""

import math

import numpy as np
import pytest
from scipy.special import expit, logit

from imbalance.calibration import (
    CALIBRATIONS,
    Calibration,
    calibration_metrics,
    fit_calibration,
    prior_shift,
)
from imbalance.errors import UserError

RND_SEED = 20241203


def _miscalibrated(n: int, seed: int, *, slope: float = 3.0, shift: float = 2.0):
    """True risks q at about 5% prevalence and scores that overstate them (too steep, shifted up)."""
    rng = np.random.default_rng(seed)
    q = expit(rng.normal(-3.3, 1.0, size=(n, 2)))
    y = (rng.random((n, 2)) < q).astype(np.uint8)
    p = expit(slope * logit(q) + shift + 3.3 * (slope - 1))  # same ranking as q, far from it
    return y, p, q


def test_every_method_is_covered_here():
    assert sorted(CALIBRATIONS.names()) == ["isotonic", "none", "platt", "prior", "temperature"]


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_fitted_methods_lower_the_calibration_error_on_new_rows(method):
    y_fit, p_fit, _ = _miscalibrated(20_000, RND_SEED)
    y_new, p_new, _ = _miscalibrated(20_000, RND_SEED + 1)
    shift = [[2.0, 2.0]]  # what a recipe's prior_shift would say: temperature starts from it
    offsets = np.asarray(shift) if method == "temperature" else np.zeros((1, 2))
    cal = fit_calibration(method, y_fit, expit(logit(p_fit) - offsets[0]), member_shift=shift)
    before = calibration_metrics(y_new, p_new, ["a", "b"])
    after = calibration_metrics(y_new, cal.apply(expit(logit(p_new) - offsets[0])), ["a", "b"])
    for name in ("a", "b"):
        assert after[name]["ece"] < 0.5 * before[name]["ece"], (method, name)
        assert after[name]["brier"] < before[name]["brier"]
    if method == "platt":  # the model is exactly platt-shaped: the true parameters come back
        for name in ("a", "b"):
            assert after[name]["slope"] == pytest.approx(1.0, abs=0.1)
            assert after[name]["intercept"] == pytest.approx(0.0, abs=0.3)


def test_monotone_methods_keep_the_ranking():
    y, p, _ = _miscalibrated(5_000, RND_SEED)
    for method in ("temperature", "platt"):
        calibrated = fit_calibration(method, y, p, member_shift=[[0.0, 0.0]]).apply(p)
        for j in range(2):
            assert (np.argsort(calibrated[:, j], kind="stable") == np.argsort(p[:, j], kind="stable")).all()


def test_prior_undoes_a_known_shift_exactly():
    # scores trained where a positive's odds were k times higher: logit(p) = logit(q) + log k
    rng = np.random.default_rng(RND_SEED)
    q = expit(rng.normal(-3.0, 1.0, size=(1000, 2)))
    k = np.array([19.0, 4.0])
    p = expit(logit(q) + np.log(k))
    cal = fit_calibration("prior", (q > 0.5).astype(int), p, member_shift=[np.log(k).tolist()])
    assert cal.apply(p) is not None and np.allclose(cal.apply(p), p)  # prior acts on logits, member by member
    np.testing.assert_allclose(cal.member_offsets(), [np.log(k)])
    np.testing.assert_allclose(expit(logit(p) - cal.member_offsets()[0]), q, rtol=1e-9)


def test_prior_shift_closed_form():
    # 5% prevalence, per_class sampling (the loss sees half positives), weighted BCE with weight 3
    shift = prior_shift(prevalence=np.array([0.05]), trained_share=np.array([0.5]), positive_weight=np.array([3.0]))
    assert shift[0] == pytest.approx(math.log(3.0) + 0.0 - math.log(0.05 / 0.95))
    # nothing changed: no shift
    assert prior_shift(prevalence=np.array([0.2]), trained_share=np.array([0.2]), positive_weight=np.array([1.0]))[0] == 0.0


def test_metrics_by_hand():
    y = np.array([[0], [0], [1], [1]])
    p = np.array([[0.1], [0.4], [0.35], [0.8]])
    got = calibration_metrics(y, p, ["x"])["x"]
    assert got["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    # 4 rows, bins of one row each (fewer rows than bins): ECE = mean |p - y|
    assert got["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)
    assert got["mean_predicted"] == pytest.approx(0.4125) and got["observed_rate"] == 0.5


def test_ece_uses_bins_of_equal_row_count():
    y = np.zeros((100, 1))
    y[-10:] = 1
    p = np.linspace(0.01, 0.99, 100)[:, None]
    by_hand = sum(abs(p[i:i + 10].mean() - y[i:i + 10].mean()) * 10 for i in range(0, 100, 10)) / 100
    assert calibration_metrics(y, p, ["x"])["x"]["ece"] == pytest.approx(by_hand)


def test_a_label_with_one_class_on_validation_is_left_as_it_is():
    y, p, _ = _miscalibrated(2_000, RND_SEED)
    y[:, 1] = 0
    cal = fit_calibration("platt", y, p)
    assert cal.labels[1]["skipped"] and (cal.labels[1]["a"], cal.labels[1]["b"]) == (1.0, 0.0)
    np.testing.assert_allclose(cal.apply(p)[:, 1], p[:, 1], rtol=1e-6)


@pytest.mark.parametrize("method", ["none", "prior", "temperature", "platt", "isotonic"])
def test_round_trip_through_plain_data(method):
    y, p, _ = _miscalibrated(3_000, RND_SEED)
    cal = fit_calibration(method, y, p, member_shift=[[0.5, 1.0], [0.7, 1.1]])
    back = Calibration.from_dict(cal.to_dict(), n_labels=2, n_members=2)
    np.testing.assert_array_equal(back.apply(p), cal.apply(p))
    assert back.method == method


@pytest.mark.parametrize("values, fragment", [
    ({"method": "magic", "labels": []}, "unknown method"),
    ({"method": "platt", "labels": [{"a": 1.0, "b": 0.0}]}, "1 labels' parameters for 2 labels"),
    ({"method": "platt", "labels": [{"a": 1.0}, {"a": 1.0}]}, "does not load"),
    ({"method": "prior", "labels": [{}, {}], "member_shift": [[0.1, 0.2]]}, "prior shifts"),
])
def test_a_damaged_calibration_is_refused_in_one_line(values, fragment):
    with pytest.raises(UserError, match="damaged checkpoint") as err:
        Calibration.from_dict(values, n_labels=2, n_members=2, source="best.pt")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_platt_never_turns_the_ranking_around():
    # validation rows on which the model ranks worse than chance: the fitted slope stays positive
    y, p, _ = _miscalibrated(3_000, RND_SEED)
    cal = fit_calibration("platt", y, 1.0 - p)
    assert all(params["a"] > 0 for params in cal.labels)
    calibrated = cal.apply(1.0 - p)
    for j in range(2):
        order = np.argsort(1.0 - p[:, j], kind="stable")
        assert (np.diff(calibrated[order, j]) >= 0).all()
    # the slope reported as a measurement is not bounded: it shows the reversal
    assert calibration_metrics(y, 1.0 - p, ["a", "b"])["a"]["slope"] < 0
