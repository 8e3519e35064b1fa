"""Row weights, expected positive shares and the O(rows) weighted sampler (imbalance/sampling.py).

Every expected value is computed here by hand (the module docstring's definitions), never by
calling the code under test a second time.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from imbalance.errors import UserError
from imbalance.sampling import (
    WEIGHT_METHODS,
    LabelBalance,
    ShuffleSampler,
    WeightedIndexSampler,
    build_sampler,
    effective_positive_share,
    expected_positive_share,
    iterate_batches,
    row_weights,
)

RND_SEED = 20240611

# 10 rows x 2 labels.  label 0: 2 positives (rows 0, 1) -> r0 = 8 / 2 = 4
#                      label 1: 3 positives (rows 1, 2, 3) -> r1 = 7 / 3
Y_ML = np.array(
    [
        [1, 0],
        [1, 1],
        [0, 1],
        [0, 1],
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
    ],
    dtype=np.int64,
)
R0, R1 = 4.0, 7.0 / 3.0
PER_CLASS_ML = np.array([R0, max(R0, R1), R1, R1, 1, 1, 1, 1, 1, 1], dtype=np.float64)
EXPECTED_ML = {
    "per_class": PER_CLASS_ML,
    "aggressive": np.array([5, 5, 5, 5, 1, 1, 1, 1, 1, 1], dtype=np.float64),
    "balanced": np.sqrt(PER_CLASS_ML),
}

# Binary: 20 rows, 5 positives -> r = 15 / 5 = 3.
Y_BIN = np.zeros(20, dtype=np.int64)
Y_BIN[[0, 3, 7, 12, 19]] = 1
EXPECTED_BIN = {
    "per_class": np.where(Y_BIN == 1, 3.0, 1.0),
    "aggressive": np.where(Y_BIN == 1, 5.0, 1.0),
    "balanced": np.where(Y_BIN == 1, math.sqrt(3.0), 1.0),
}


def _binary_at_prevalence(n: int, n_pos: int) -> np.ndarray:
    y = np.zeros(n, dtype=np.int64)
    y[np.random.default_rng(RND_SEED).choice(n, n_pos, replace=False)] = 1
    return y


def _closed_form_share(method: str, p: float) -> float:
    r = (1 - p) / p
    w = {"per_class": r, "aggressive": 5.0, "balanced": math.sqrt(r)}[method]
    return w * p / (w * p + (1 - p))


# --------------------------------------------------------------------------- several labels: the per-label correction

# Label j's weight for each row of Y_ML (a_j for its positives, 1 otherwise), by hand.
PER_LABEL_ML = {
    "per_class": np.column_stack([np.where(Y_ML[:, 0] == 1, R0, 1.0), np.where(Y_ML[:, 1] == 1, R1, 1.0)]),
    "aggressive": np.where(Y_ML == 1, 5.0, 1.0),
    "balanced": np.column_stack([np.where(Y_ML[:, 0] == 1, math.sqrt(R0), 1.0), np.where(Y_ML[:, 1] == 1, math.sqrt(R1), 1.0)]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ML))
def test_label_balance_factors_match_the_definition(name):
    w_ij = PER_LABEL_ML[name]
    w_i = EXPECTED_ML[name]
    expected = w_ij / w_i[:, None] * (w_i.sum() / w_ij.sum(axis=0))
    got = LabelBalance(Y_ML, name).factors(torch.from_numpy(Y_ML).float()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED_ML))
def test_under_the_sampler_each_label_sees_its_own_weighting(name):
    # Exact expectation over the sampler's draws: sum_i (w_i / W) c_ij l_ij equals label j's own
    # w_ij-weighted mean of any per-row loss l_ij, and the positive share is effective_positive_share.
    rng = np.random.default_rng(RND_SEED)
    y = (rng.random((500, 3)) < [0.02, 0.08, 0.3]).astype(np.int64)
    w_i = row_weights(y, name)
    factors = LabelBalance(y, name).factors(torch.from_numpy(y).float()).double().numpy()
    losses = rng.random(y.shape)
    under_sampler = (w_i[:, None] * factors * losses).sum(axis=0) / w_i.sum()
    ratios = (len(y) - y.sum(axis=0)) / y.sum(axis=0)
    a = {"per_class": np.maximum(1, ratios), "aggressive": np.full(3, 5.0), "balanced": np.sqrt(np.maximum(1, ratios))}[name]
    w_ij = np.where(y == 1, a, 1.0)
    np.testing.assert_allclose(under_sampler, (w_ij * losses).sum(axis=0) / w_ij.sum(axis=0), rtol=1e-6)
    share = (w_i[:, None] * factors * y).sum(axis=0) / w_i.sum()
    np.testing.assert_allclose(share, effective_positive_share(y, name), rtol=1e-6)
    if name == "per_class":
        np.testing.assert_allclose(share, 0.5, rtol=1e-6)  # every label balanced, the rarest too


def test_drawn_batches_carry_the_corrected_share():
    # The same through the real sampler: mean of c_ij y_ij over an epoch's drawn rows.
    rng = np.random.default_rng(RND_SEED)
    y = (rng.random((4000, 2)) < [0.01, 0.1]).astype(np.int64)
    sampler = WeightedIndexSampler(row_weights(y, "per_class"), num_samples=200_000, seed=3)
    drawn = y[sampler.epoch_indices(0).numpy()]
    factors = LabelBalance(y, "per_class").factors(torch.from_numpy(drawn).float()).double().numpy()
    raw = drawn.mean(axis=0)
    assert raw[1] > 0.2  # uncorrected, the rare label's rows inflate the common label's positives
    np.testing.assert_allclose((factors * drawn).mean(axis=0), [0.5, 0.5], atol=0.01)


def test_label_balance_only_where_it_changes_something():
    y2 = np.column_stack([Y_BIN, Y_BIN[::-1]])
    assert LabelBalance.needed(Y_BIN, weighted=True, method="per_class") is None  # one label: c = 1
    assert LabelBalance.needed(y2, weighted=False, method="per_class") is None
    assert isinstance(LabelBalance.needed(y2, weighted=True, method="per_class"), LabelBalance)


# --------------------------------------------------------------------------- row weights


def test_every_weight_method_is_covered_here():
    assert set(WEIGHT_METHODS.names()) == set(EXPECTED_ML)


@pytest.mark.parametrize("name", WEIGHT_METHODS.names())
def test_row_weights_multilabel_match_definitions(name):
    got = row_weights(Y_ML, name)
    assert got.shape == (10,)
    np.testing.assert_allclose(got, EXPECTED_ML[name], rtol=1e-12)


@pytest.mark.parametrize("name", WEIGHT_METHODS.names())
@pytest.mark.parametrize("shape", ["1d", "column"])
def test_row_weights_binary_match_definitions(name, shape):
    y = Y_BIN if shape == "1d" else Y_BIN[:, None]
    got = row_weights(y, name)
    assert got.shape == (20,)
    np.testing.assert_allclose(got, EXPECTED_BIN[name], rtol=1e-12)


@pytest.mark.parametrize("name", WEIGHT_METHODS.names())
def test_row_weights_never_below_one_for_a_majority_positive_label(name):
    # 8 of 10 positive: r = 2 / 8 = 0.25, so per_class (and balanced) clip at 1; aggressive 5.
    y = np.array([1] * 8 + [0] * 2)
    expected = {"per_class": np.ones(10), "balanced": np.ones(10), "aggressive": np.r_[np.full(8, 5.0), np.ones(2)]}
    np.testing.assert_allclose(row_weights(y, name), expected[name], rtol=1e-12)


def test_row_weights_label_without_positives_is_neutral():
    y = np.c_[Y_BIN, np.zeros(20, dtype=np.int64)]  # second label never positive
    np.testing.assert_allclose(row_weights(y, "per_class"), EXPECTED_BIN["per_class"], rtol=1e-12)


# ------------------------------------------------------------------ expected_positive_share


def test_expected_positive_share_uniform_is_prevalence():
    np.testing.assert_allclose(expected_positive_share(Y_ML), [0.2, 0.3], rtol=1e-12)


def test_expected_positive_share_multilabel_brute_force():
    for name, w in EXPECTED_ML.items():
        brute = [sum(w[i] for i in range(10) if Y_ML[i, j]) / w.sum() for j in range(2)]
        np.testing.assert_allclose(expected_positive_share(Y_ML, row_weights(Y_ML, name)), brute, rtol=1e-12)


def test_expected_positive_share_orders_methods_at_5_percent():
    y = _binary_at_prevalence(1000, 50)  # exactly 5%
    p = 0.05
    shares = {m: float(expected_positive_share(y, row_weights(y, m))[0]) for m in WEIGHT_METHODS.names()}
    for m, share in shares.items():
        assert share == pytest.approx(_closed_form_share(m, p), rel=1e-12), m
    assert shares["balanced"] < shares["aggressive"] < shares["per_class"]
    # the numbers quoted in the module docstring
    assert shares["per_class"] == pytest.approx(0.5, rel=1e-12)
    assert shares["aggressive"] == pytest.approx(0.25 / 1.2, rel=1e-12)
    assert round(shares["balanced"], 3) == 0.187 and round(shares["aggressive"], 3) == 0.208


# --------------------------------------------------------------------- WeightedIndexSampler


@pytest.mark.parametrize("num_samples", [None, 1, 37, 5000])
def test_weighted_sampler_indices_are_valid(num_samples):
    w = np.random.default_rng(RND_SEED).integers(1, 6, size=123).astype(float)
    idx = WeightedIndexSampler(w, num_samples=num_samples, seed=RND_SEED).epoch_indices(0)
    assert isinstance(idx, torch.Tensor)
    assert idx.dtype == torch.int64
    assert idx.shape == (123 if num_samples is None else num_samples,)
    assert int(idx.min()) >= 0 and int(idx.max()) < 123


@pytest.mark.parametrize("name", WEIGHT_METHODS.names())
def test_weighted_sampler_positive_share_matches_expectation(name):
    y = _binary_at_prevalence(1000, 50)
    w = row_weights(y, name)
    q = _closed_form_share(name, 0.05)
    n_draws = 200_000
    idx = WeightedIndexSampler(w, num_samples=n_draws, seed=RND_SEED).epoch_indices(3).numpy()
    share = y[idx].mean()
    se = math.sqrt(q * (1 - q) / n_draws)
    assert abs(share - q) < 4 * se, (share, q, se)


@pytest.mark.parametrize(
    "weights",
    [
        [0.5, 1.0, 2.0, 3.0, 5.0, 8.0],  # all distinct: one row per group
        [1.0, 1.0, 1.0, 4.0, 4.0, 9.0, 2.5, 1.0],  # repeated values: rows within a group uniform
    ],
)
def test_weighted_sampler_row_frequencies_follow_weights(weights):
    w = np.asarray(weights)
    n_draws = 60_000
    idx = WeightedIndexSampler(w, num_samples=n_draws, seed=RND_SEED).epoch_indices(0).numpy()
    observed = np.bincount(idx, minlength=w.size)
    expected = n_draws * w / w.sum()
    assert chisquare(observed, expected).pvalue > 1e-3


def test_weighted_sampler_chisquare_would_catch_uniform_draws():
    # guard: the chi-square test above has the power to reject draws that ignore the weights
    w = np.array([0.5, 1.0, 2.0, 3.0, 5.0, 8.0])
    idx = np.random.default_rng(RND_SEED).integers(0, w.size, size=60_000)
    assert chisquare(np.bincount(idx, minlength=w.size), 60_000 * w / w.sum()).pvalue < 1e-3


def test_weighted_sampler_is_reproducible_per_seed_and_epoch():
    w = np.random.default_rng(RND_SEED).integers(1, 10, size=500).astype(float)
    a = WeightedIndexSampler(w, seed=7)
    b = WeightedIndexSampler(w, seed=7)
    assert torch.equal(a.epoch_indices(0), b.epoch_indices(0))
    assert torch.equal(a.epoch_indices(5), a.epoch_indices(5))
    assert not torch.equal(a.epoch_indices(0), a.epoch_indices(1))
    assert not torch.equal(a.epoch_indices(0), WeightedIndexSampler(w, seed=8).epoch_indices(0))


def test_weighted_sampler_draws_are_shuffled():
    # rows are grouped internally by weight; the epoch must not come out grouped
    w = np.r_[np.full(500, 1.0), np.full(500, 3.0)]
    idx = WeightedIndexSampler(w, seed=RND_SEED).epoch_indices(0).numpy()
    heavy = (idx >= 500).astype(int)
    assert np.count_nonzero(np.diff(heavy)) > 100  # a grouped output would switch once


def test_weighted_sampler_continuous_weights_fallback_matches_weights():
    rng = np.random.default_rng(RND_SEED)
    n = 6000
    w = 0.05 + rng.random(n) ** 2  # > 4096 distinct values
    assert np.unique(w).size > 4096
    n_draws = 200_000
    sampler = WeightedIndexSampler(w, num_samples=n_draws, seed=RND_SEED)
    idx = sampler.epoch_indices(0).numpy()
    assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < n
    # group rows into 30 bins by weight rank, so bins carry very different mass
    order = np.argsort(w)
    bin_of_row = np.empty(n, dtype=np.int64)
    bin_of_row[order] = np.arange(n) * 30 // n
    observed = np.bincount(bin_of_row[idx], minlength=30)
    expected = n_draws * np.bincount(bin_of_row, weights=w, minlength=30) / w.sum()
    assert chisquare(observed, expected).pvalue > 1e-3
    # and a uniform draw would have been rejected by the same test
    uniform = np.bincount(bin_of_row[rng.integers(0, n, n_draws)], minlength=30)
    assert chisquare(uniform, expected).pvalue < 1e-3


def test_weighted_sampler_fallback_is_reproducible():
    w = 0.1 + np.random.default_rng(RND_SEED).random(5000)
    s = WeightedIndexSampler(w, seed=3)
    assert torch.equal(s.epoch_indices(2), WeightedIndexSampler(w, seed=3).epoch_indices(2))
    assert not torch.equal(s.epoch_indices(2), s.epoch_indices(4))


def test_weighted_sampler_never_draws_zero_weight_rows_grouped():
    w = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 5.0, 0.0])
    idx = WeightedIndexSampler(w, num_samples=50_000, seed=RND_SEED).epoch_indices(0).numpy()
    assert set(np.unique(idx)) == {1, 3, 6}


def test_weighted_sampler_never_draws_zero_weight_rows_fallback():
    rng = np.random.default_rng(RND_SEED)
    w = 0.1 + rng.random(10_000)
    w[::2] = 0.0  # first row and every other row weightless
    w[-50:] = 0.0  # and a weightless tail
    assert np.unique(w).size > 4096
    idx = WeightedIndexSampler(w, num_samples=200_000, seed=RND_SEED).epoch_indices(0).numpy()
    assert np.all(w[idx] > 0)


class _FixedUniforms:
    """Stands in for the epoch's generator: ``random`` returns the given uniforms in [0, 1)."""

    def __init__(self, uniforms: np.ndarray) -> None:
        self.uniforms = uniforms

    def random(self, size=None):
        return np.resize(self.uniforms, size)


def test_weighted_sampler_fallback_zero_weight_tail_for_every_uniform(monkeypatch):
    # The inverse-CDF path maps a uniform u in [0, 1) to a row.  Any u -- including the largest
    # double below 1, a legal output of Generator.random -- must land on a row with weight > 0.
    # cumsum(w / w.sum()) usually ends a few ulps below 1.0, so u in [cdf[-1], 1) falls past
    # the end and is clamped onto the last row, whatever its weight.
    u = np.array([0.0, 0.5, 0.999999, np.nextafter(1.0, 0.0)])
    drawn_zero = []
    for k in range(10):
        rng = np.random.default_rng([RND_SEED, k])
        w = 0.1 + rng.random(5000)
        w[-3:] = 0.0
        sampler = WeightedIndexSampler(w, num_samples=u.size, seed=0)
        monkeypatch.setattr(sampler, "_rng", lambda epoch: _FixedUniforms(u))
        idx = sampler.epoch_indices(0).numpy()
        drawn_zero += [int(i) for i in idx if w[i] == 0]
    assert drawn_zero == [], f"weight-0 rows drawn: {drawn_zero}"


@pytest.mark.parametrize(
    "weights",
    [
        [1.0, -0.5, 2.0],
        [1.0, float("nan"), 2.0],
        [1.0, float("inf"), 2.0],
        [0.0, 0.0, 0.0],
        [],
        [[1.0, 2.0], [3.0, 4.0]],
    ],
)
def test_weighted_sampler_rejects_bad_weights(weights):
    with pytest.raises(ValueError):
        WeightedIndexSampler(np.asarray(weights, dtype=float))


def test_weighted_sampler_beyond_2_pow_24_rows():
    n = 17_000_000
    assert n > 2**24
    # torch.multinomial (and so WeightedRandomSampler) refuses this many categories:
    with pytest.raises(RuntimeError, match="2\\^24"):
        torch.multinomial(torch.ones(n, dtype=torch.float32), 1)
    rng = np.random.default_rng(RND_SEED)
    positive = rng.random(n) < 0.001
    w = np.where(positive, 999.0, 1.0)
    sampler = WeightedIndexSampler(w, seed=RND_SEED)
    del w
    idx = sampler.epoch_indices(0).numpy()
    assert idx.shape == (n,) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < n
    assert idx.max() >= 2**24  # rows past 2^24 are reachable
    q = 999.0 * positive.sum() / (999.0 * positive.sum() + (n - positive.sum()))  # ~0.5
    share = positive[idx].mean()
    assert abs(q - 0.5) < 0.01
    assert abs(share - q) < 5 * math.sqrt(q * (1 - q) / n)


# ---------------------------------------------------------------------------- ShuffleSampler


@pytest.mark.parametrize("n", [1, 2, 17, 1000])
def test_shuffle_sampler_is_a_permutation(n):
    idx = ShuffleSampler(n, seed=RND_SEED).epoch_indices(0)
    assert idx.dtype == torch.int64 and idx.shape == (n,)
    assert sorted(idx.tolist()) == list(range(n))


def test_shuffle_sampler_reproducible_and_varies_by_epoch():
    a, b = ShuffleSampler(1000, seed=1), ShuffleSampler(1000, seed=1)
    assert torch.equal(a.epoch_indices(3), b.epoch_indices(3))
    assert not torch.equal(a.epoch_indices(0), a.epoch_indices(1))
    assert not torch.equal(a.epoch_indices(0), torch.arange(1000))


# --------------------------------------------------------------------------- iterate_batches


@pytest.mark.parametrize(
    "n, batch_size, sizes",
    [
        (10, 5, [5, 5]),
        (10, 4, [4, 4, 2]),
        (10, 3, [3, 3, 3]),  # trailing singleton dropped
        (10, 9, [9]),  # trailing singleton dropped
        (10, 10, [10]),
        (10, 64, [10]),
        (1, 4, [1]),  # a one-row epoch is kept
    ],
)
def test_iterate_batches_sizes_and_order(n, batch_size, sizes):
    indices = torch.randperm(n, generator=torch.Generator().manual_seed(RND_SEED))
    batches = list(iterate_batches(indices, batch_size))
    assert [b.numel() for b in batches] == sizes
    covered = torch.cat(batches)
    assert torch.equal(covered, indices[: covered.numel()])
    assert len(set(covered.tolist())) == covered.numel()


@pytest.mark.parametrize("n", [2, 5])
def test_iterate_batches_batch_size_one_still_yields_the_epoch(n):
    # With batch_size 1 every batch is a singleton; at most the trailing one may be dropped,
    # never the whole epoch (config.py accepts --batch_size 1).
    indices = torch.arange(n)
    batches = list(iterate_batches(indices, 1))
    assert all(b.numel() == 1 for b in batches)
    covered = torch.cat(batches).tolist() if batches else []
    assert covered in (list(range(n)), list(range(n - 1))), covered


def test_iterate_batches_keeps_singleton_when_asked():
    indices = torch.arange(10)
    batches = list(iterate_batches(indices, 3, drop_singleton=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


# ----------------------------------------------------------------------------- build_sampler


@pytest.mark.parametrize("name", WEIGHT_METHODS.names())
def test_build_sampler_weighted(name):
    y = _binary_at_prevalence(1000, 50)
    sampler = build_sampler(y, weighted=True, method=name, seed=RND_SEED)
    assert isinstance(sampler, WeightedIndexSampler)
    assert sampler.num_samples == 1000
    draws = torch.cat([sampler.epoch_indices(e) for e in range(100)]).numpy()
    q = _closed_form_share(name, 0.05)
    assert abs(y[draws].mean() - q) < 4 * math.sqrt(q * (1 - q) / draws.size)


@pytest.mark.parametrize("method", WEIGHT_METHODS.names() + ["no_such_method"])
def test_build_sampler_unweighted_is_shuffle(method):
    y = _binary_at_prevalence(100, 5)
    sampler = build_sampler(y, weighted=False, method=method, seed=RND_SEED)
    assert isinstance(sampler, ShuffleSampler)
    assert sorted(sampler.epoch_indices(0).tolist()) == list(range(100))


def test_build_sampler_unknown_method_lists_choices():
    with pytest.raises(UserError) as info:
        build_sampler(Y_BIN, weighted=True, method="no_such_method", seed=0)
    msg = str(info.value)
    assert "no_such_method" in msg
    for name in ["per_class", "aggressive", "balanced"]:
        assert name in msg
    for name in WEIGHT_METHODS.names():
        assert name in msg


def test_row_weights_unknown_method_is_user_error():
    with pytest.raises(UserError, match="per_class"):
        row_weights(Y_BIN, "nope")
