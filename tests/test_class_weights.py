"""Per-label positive weights (imbalance/class_weights.py) against the documented formulas."""

import logging

import numpy as np
import pytest

from imbalance.class_weights import CLASS_WEIGHT_METHODS, compute_class_weights, label_counts
from imbalance.errors import UserError

RND_SEED = 1234

N_ROWS = 20
N_POS = np.array([2, 5, 10, 16])  # 10%, 25%, 50%, 80% prevalence


def _matrix() -> np.ndarray:
    rng = np.random.default_rng(RND_SEED)
    y = np.zeros((N_ROWS, N_POS.size), dtype=np.int64)
    for j, k in enumerate(N_POS):
        y[rng.choice(N_ROWS, k, replace=False), j] = 1
    return y


# hand-written, per label: n = 20, n_pos as above, n_neg = 20 - n_pos
EXPECTED = {
    "none": [1.0, 1.0, 1.0, 1.0],
    "balanced": [20 / 4, 20 / 10, 20 / 20, 20 / 32],  # n / (2 n_pos)
    "inverse": [18 / 2, 15 / 5, 10 / 10, 4 / 16],  # n_neg / n_pos
    "aggressive": [3 * 18 / 2, 3 * 15 / 5, 3 * 10 / 10, 3 * 4 / 16],
    "very_aggressive": [5 * 18 / 2, 5 * 15 / 5, 5 * 10 / 10, 5 * 4 / 16],
}


def test_every_method_is_covered_here():
    assert set(CLASS_WEIGHT_METHODS.names()) == set(EXPECTED)


def test_label_counts():
    y = _matrix()
    n_pos, n_neg = label_counts(y)
    assert n_pos.dtype == np.float64 and n_neg.dtype == np.float64
    np.testing.assert_array_equal(n_pos, N_POS)
    np.testing.assert_array_equal(n_neg, N_ROWS - N_POS)


@pytest.mark.parametrize("name", CLASS_WEIGHT_METHODS.names())
@pytest.mark.parametrize("multiplier", [1.0, 2.5, 0.3])
def test_method_matches_formula(name, multiplier):
    got = compute_class_weights(_matrix(), name, multiplier)
    factor = 1.0 if name == "none" else multiplier
    assert got.shape == (N_POS.size,)
    np.testing.assert_allclose(got, np.array(EXPECTED[name]) * factor, rtol=1e-12)


def test_none_ignores_multiplier_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="imbalance.class_weights"):
        got = compute_class_weights(_matrix(), "none", 4.0)
    np.testing.assert_array_equal(got, np.ones(N_POS.size))
    assert any("ignored" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", CLASS_WEIGHT_METHODS.names())
def test_binary_column(name):
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])[:, None]  # n=10, n_pos=2, n_neg=8
    expected = {"none": 1.0, "balanced": 10 / 4, "inverse": 4.0, "aggressive": 12.0, "very_aggressive": 20.0}[name]
    np.testing.assert_allclose(compute_class_weights(y, name), [expected], rtol=1e-12)


@pytest.mark.parametrize("name", CLASS_WEIGHT_METHODS.names())
def test_label_without_positives_is_named(name):
    y = _matrix()
    y[:, 2] = 0
    with pytest.raises(UserError, match="outcome_c"):
        compute_class_weights(y, name, label_names=["outcome_a", "outcome_b", "outcome_c", "outcome_d"])
    with pytest.raises(UserError) as info:
        compute_class_weights(y, name, label_names=["outcome_a", "outcome_b", "outcome_c", "outcome_d"])
    msg = str(info.value)
    assert "outcome_a" not in msg and "outcome_b" not in msg and "outcome_d" not in msg
    with pytest.raises(UserError, match="label 2"):
        compute_class_weights(y, name)


def test_every_empty_label_is_named():
    y = _matrix()
    y[:, [0, 3]] = 0
    with pytest.raises(UserError) as info:
        compute_class_weights(y, "inverse", label_names=["a_lab", "b_lab", "c_lab", "d_lab"])
    assert "a_lab" in str(info.value) and "d_lab" in str(info.value)


def test_unknown_method_lists_choices():
    with pytest.raises(UserError) as info:
        compute_class_weights(_matrix(), "heavy")
    msg = str(info.value)
    assert "heavy" in msg
    for name in EXPECTED:
        assert name in msg


def test_with_weighted_sampling_the_weights_correct_the_sampled_mix_not_the_natural_one():
    from imbalance.sampling import effective_positive_share, expected_positive_share, row_weights

    rng = np.random.default_rng(0)
    y = (rng.random((4000, 1)) < 0.05).astype(np.uint8)
    natural = compute_class_weights(y, "balanced")
    assert natural[0] == pytest.approx(len(y) / (2 * y.sum()))  # about 10 at 5%
    share = effective_positive_share(y, "per_class")[0]
    # one label: the share its loss sees is the share of positive rows the sampler draws
    assert share == pytest.approx(expected_positive_share(y, row_weights(y, "per_class"))[0], rel=1e-12)
    assert share == pytest.approx(0.5, abs=1e-9)
    after = compute_class_weights(y, "balanced", positive_share=[share])
    assert after[0] == pytest.approx(1.0 / (2 * share), rel=1e-9)  # 1: the sampler already balanced it
    assert compute_class_weights(y, "aggressive", 2.0, positive_share=[share])[0] == pytest.approx(2 * 3 * (1 - share) / share)
    partial = effective_positive_share(y, "balanced")  # sqrt of per-class: part of the way
    assert 1.0 < compute_class_weights(y, "balanced", positive_share=partial)[0] < natural[0]
