"""MLSMOTE (imbalance/mlsmote.py).

Expected counts come from the module docstring's formulas worked by hand; neighbours, label votes
and categorical modes are recomputed here by brute force, never by calling the code under test.
"""

import logging
import math
from collections import Counter

import numpy as np
import pytest

from imbalance.errors import UserError
from imbalance.mlsmote import mlsmote

RND_SEED = 20240612


def _rows_with_counts(counts, n_rows):
    """(n_rows, L) y where label j is on exactly counts[j] random rows."""
    rng = np.random.default_rng(RND_SEED)
    y = np.zeros((n_rows, len(counts)), dtype=np.uint8)
    for j, c in enumerate(counts):
        y[rng.choice(n_rows, c, replace=False), j] = 1
    return y


def _by_label(res):
    """label -> slice of its synthetic rows (rows are grouped in minority_labels order)."""
    out, start = {}, 0
    for label in res.minority_labels:
        out[label] = slice(start, start + res.added_per_label[label])
        start += res.added_per_label[label]
    assert start == len(res.x)
    return out


def _brute_neighbours(x, cat, bag, s, k):
    """The k bag rows nearest to row s (s excluded): sqrt(sum numeric diff^2 + categorical mismatches)."""
    others = np.array([b for b in bag if b != s])
    num = ((x[others][:, ~cat] - x[s, ~cat]) ** 2).sum(axis=1)
    mis = (x[others][:, cat] != x[s, cat]).sum(axis=1)
    return others[np.argsort(np.sqrt(num + mis), kind="stable")[:k]]


def _mixed_data(n=90):
    """3 numeric columns, 2 categorical (codes 0..3), 4 labels; label 3 mostly rides with label 2."""
    rng = np.random.default_rng(RND_SEED)
    x = np.column_stack([rng.normal(size=(n, 3)), rng.integers(0, 4, size=(n, 2)).astype(float)])
    y = np.zeros((n, 4), dtype=np.uint8)
    y[:, 0] = rng.random(n) < 0.7
    y[:, 1] = rng.random(n) < 0.3
    y[:, 2] = rng.random(n) < 0.15
    y[:, 3] = (y[:, 2] == 1) & (rng.random(n) < 0.8)
    return x, y, np.array([False, False, False, True, True])


# -- how many rows ---------------------------------------------------------------------------


def test_minority_labels_and_counts_follow_the_formula():
    # counts 100, 40, 10, 5, 0 -> IRLbl 1, 2.5, 10, 20 (label 4 has no positives and is ignored)
    # MeanIR = 33.5 / 4 = 8.375 -> minority labels 2 and 3
    y = _rows_with_counts([100, 40, 10, 5, 0], 200)
    x = np.random.default_rng(RND_SEED).normal(size=(200, 3))
    cat = [False] * 3
    for ratio, expected in [(1.0, {2: 90, 3: 95}), (0.5, {2: 40, 3: 45}), (0.07, {2: 0, 3: 2}), (0.05, {2: 0, 3: 0})]:
        res = mlsmote(x, y, categorical=cat, ratio=ratio, seed=RND_SEED)
        assert res.minority_labels == [2, 3]
        assert res.added_per_label == expected
        assert len(res.x) == len(res.y) == len(res.seeds) == sum(expected.values())
        assert res.x.shape[1] == 3 and res.y.shape[1] == 5
        assert res.x.dtype == np.float64 and res.y.dtype == np.uint8


def test_equal_counts_have_no_minority_label():
    y = _rows_with_counts([30, 30, 30], 100)
    res = mlsmote(np.zeros((100, 2)) + np.arange(100)[:, None], y, categorical=[False, False], seed=RND_SEED)
    assert res.minority_labels == [] and res.added_per_label == {} and res.x.shape == (0, 2)


def test_seeds_come_from_the_bag_and_are_used_about_equally():
    # counts 100, 20 -> minority {1}; ratio 0.55 -> 55 - 20 = 35 rows = one pass over 20 + 15 more
    y = _rows_with_counts([100, 20], 200)
    x = np.random.default_rng(RND_SEED).normal(size=(200, 3))
    res = mlsmote(x, y, categorical=[False] * 3, ratio=0.55, seed=RND_SEED)
    assert res.added_per_label == {1: 35}
    bag = np.flatnonzero(y[:, 1])
    used = Counter(res.seeds.tolist())
    assert set(used) <= set(bag.tolist())
    assert sorted(used.get(b, 0) for b in bag) == [1] * 5 + [2] * 15


# -- what the rows are ---------------------------------------------------------------------


def test_rows_match_a_brute_force_reconstruction():
    x, y, cat = _mixed_data()
    k = 3  # seed + 3 neighbours: a label on 2 of the 4 is a tie, which must not be set
    res = mlsmote(x, y, categorical=cat, k_neighbors=k, seed=RND_SEED)
    assert res.minority_labels, "the fixture must have a minority label"
    for label, rows in _by_label(res).items():
        bag = np.flatnonzero(y[:, label])
        for i in range(rows.start, rows.stop):
            s = int(res.seeds[i])
            nbrs = _brute_neighbours(x, cat, bag, s, k)
            group = np.concatenate([[s], nbrs])
            # labels: set where more than half of seed + k neighbours carry it; the label itself always
            expected = (y[group].sum(axis=0) * 2 > k + 1).astype(np.uint8)
            expected[label] = 1
            np.testing.assert_array_equal(res.y[i], expected)
            # numeric: on the segment from the seed to one of the k neighbours
            diffs = x[nbrs][:, ~cat] - x[s, ~cat]
            u = (res.x[i, ~cat] - x[s, ~cat]) / diffs
            on_segment = np.all(np.isclose(u, u[:, :1]), axis=1) & (u[:, 0] >= 0) & (u[:, 0] <= 1)
            assert on_segment.any(), f"row {i} is not between seed {s} and a neighbour"
            assert not np.allclose(res.x[i, ~cat], x[s, ~cat]), f"row {i} copies its seed"
            # categorical: most frequent code of seed + neighbours; a tie keeps the seed's code if tied
            for col in np.flatnonzero(cat):
                tally = Counter(x[group, col].tolist())
                top = max(tally.values())
                want = x[s, col] if tally[x[s, col]] == top else min(v for v, c in tally.items() if c == top)
                assert res.x[i, col] == want


def test_every_row_carries_its_generating_label():
    x, y, cat = _mixed_data()
    res = mlsmote(x, y, categorical=cat, seed=RND_SEED)
    for label, rows in _by_label(res).items():
        assert rows.stop > rows.start
        assert res.y[rows, label].all()


def _bag_of_four(co_label_rows):
    """Label 2's bag is rows 0..3 (collinear points); label 1 is on co_label_rows plus 20 outside rows."""
    n = 44
    x = np.zeros((n, 1))
    x[:4, 0] = [0.0, 1.0, 2.0, 3.0]
    x[4:, 0] = np.arange(4, n) * 10.0
    y = np.zeros((n, 3), dtype=np.uint8)
    y[:40, 0] = 1  # counts 40, 20 + len(co_label_rows), 4 -> only label 2 is a minority label
    y[:4, 2] = 1
    y[20:40, 1] = 1
    y[list(co_label_rows), 1] = 1
    return x, y


def test_label_only_the_seed_has_is_not_copied():
    x, y = _bag_of_four(co_label_rows=[0])
    res = mlsmote(x, y, categorical=[False], k_neighbors=3, seed=RND_SEED)
    assert res.minority_labels == [2] and res.added_per_label[2] == 36
    # label 1 is on 1 of the 4 rows of every seed's neighbourhood: never a majority
    assert not res.y[:, 1].any()
    assert res.y[:, 0].all()  # label 0 is on all of them


def test_label_all_neighbours_share_is_set():
    x, y = _bag_of_four(co_label_rows=[1, 2, 3])
    res = mlsmote(x, y, categorical=[False], k_neighbors=3, seed=RND_SEED)
    assert res.minority_labels == [2]
    # seed 0: its 3 neighbours carry label 1 (3 of 4); any other seed: 3 of 4 as well
    assert res.y[:, 1].all()
    assert set(res.seeds[res.seeds == 0].tolist()) == {0}  # the seed lacking it is used too


def test_label_on_half_the_neighbourhood_is_not_set():
    x, y = _bag_of_four(co_label_rows=[0, 1])
    res = mlsmote(x, y, categorical=[False], k_neighbors=3, seed=RND_SEED)
    assert res.minority_labels == [2]
    assert not res.y[:, 1].any()  # 2 of 4 is not more than half


def test_exact_duplicates_in_the_bag():
    n = 50
    x = np.arange(n, dtype=float)[:, None]
    x[:8] = 7.0  # label 1's bag: 8 identical rows, more than k + 1
    y = np.zeros((n, 2), dtype=np.uint8)
    y[8:, 0] = 1
    y[:8, 1] = 1
    res = mlsmote(x, y, categorical=[False], k_neighbors=3, seed=RND_SEED)
    assert res.added_per_label == {1: 34}
    assert np.all(res.x == 7.0) and np.all(res.y == [0, 1])


def test_co_occurring_labels_are_kept():
    # every row with label 2 also has label 1; counts 100, 30, 10 -> IRLbl 1, 3.33, 10 -> minority {2}
    rng = np.random.default_rng(RND_SEED)
    n = 200
    y = np.zeros((n, 3), dtype=np.uint8)
    y[:100, 0] = 1
    y[90:120, 1] = 1
    y[90:100, 2] = 1
    x = rng.normal(size=(n, 4))
    res = mlsmote(x, y, categorical=[False] * 4, seed=RND_SEED)
    assert res.minority_labels == [2]
    assert res.added_per_label == {2: 90}
    assert res.y[:, 2].all() and res.y[:, 1].all()
    assert res.y[:, 0].all()  # rows 90..99 also carry label 0


def test_numeric_features_stay_inside_the_bag():
    x, y, cat = _mixed_data()
    res = mlsmote(x, y, categorical=cat, seed=RND_SEED)
    for label, rows in _by_label(res).items():
        bag = x[y[:, label] == 1]
        lo, hi = bag[:, ~cat].min(axis=0), bag[:, ~cat].max(axis=0)
        assert np.all(res.x[rows][:, ~cat] >= lo) and np.all(res.x[rows][:, ~cat] <= hi)


def test_one_numeric_column_lies_between_seed_and_a_neighbour():
    rng = np.random.default_rng(RND_SEED)
    n = 120
    x = rng.normal(size=(n, 1))
    y = np.zeros((n, 2), dtype=np.uint8)
    y[:100, 0] = 1
    y[rng.choice(n, 12, replace=False), 1] = 1
    k = 3
    res = mlsmote(x, y, categorical=[False], k_neighbors=k, seed=RND_SEED)
    assert res.minority_labels == [1] and len(res.x) > 0
    bag = np.flatnonzero(y[:, 1])
    values = np.sort(x[bag, 0])
    for v, s in zip(res.x[:, 0], res.seeds):
        nbrs = bag[np.argsort(np.abs(x[bag, 0] - x[s, 0]))[1 : k + 1]]
        lows, highs = np.minimum(x[nbrs, 0], x[s, 0]), np.maximum(x[nbrs, 0], x[s, 0])
        assert np.any((lows <= v) & (v <= highs))
    assert len(np.unique(res.x[:, 0])) > len(values)  # new values, not copies


def test_categorical_codes_are_codes_of_the_bag():
    x, y, cat = _mixed_data()
    res = mlsmote(x, y, categorical=cat, seed=RND_SEED)
    for label, rows in _by_label(res).items():
        bag = x[y[:, label] == 1]
        for col in np.flatnonzero(cat):
            assert set(res.x[rows, col].tolist()) <= set(bag[:, col].tolist())


# -- determinism, small bags, binary, validation -------------------------------------------


def test_same_seed_same_rows_other_seed_other_rows():
    x, y, cat = _mixed_data()
    a = mlsmote(x, y, categorical=cat, seed=RND_SEED)
    b = mlsmote(x, y, categorical=cat, seed=RND_SEED)
    c = mlsmote(x, y, categorical=cat, seed=RND_SEED + 1)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert a.x.shape == c.x.shape and not np.array_equal(a.x, c.x)


def test_small_bag_reduces_k_with_a_warning(caplog):
    rng = np.random.default_rng(RND_SEED)
    n = 60
    x = rng.normal(size=(n, 2))
    y = np.zeros((n, 2), dtype=np.uint8)
    y[:50, 0] = 1
    y[50:53, 1] = 1  # bag of 3 < k_neighbors + 1
    with caplog.at_level(logging.WARNING, logger="imbalance.mlsmote"):
        res = mlsmote(x, y, categorical=[False, False], k_neighbors=5, seed=RND_SEED, label_names=["a", "rare"])
    assert res.added_per_label == {1: 47}
    assert any("rare" in r.getMessage() and "from 5 to 2" in r.getMessage() for r in caplog.records)
    # with k = 2 every other bag row is a neighbour: rows stay in the bag's bounding box
    lo, hi = x[50:53].min(axis=0), x[50:53].max(axis=0)
    assert np.all((res.x >= lo) & (res.x <= hi))


def test_bag_of_one_is_skipped_with_a_warning(caplog):
    n = 40
    x = np.arange(n, dtype=float)[:, None]
    y = np.zeros((n, 3), dtype=np.uint8)
    y[:30, 0] = 1
    y[30:38, 1] = 1
    y[39, 2] = 1  # counts 30, 8, 1 -> IRLbl 1, 3.75, 30 -> MeanIR 11.58 -> minority {2}
    with caplog.at_level(logging.WARNING, logger="imbalance.mlsmote"):
        res = mlsmote(x, y, categorical=[False], seed=RND_SEED, label_names=["a", "b", "lonely"])
    assert res.minority_labels == [2] and res.added_per_label == {2: 0} and len(res.x) == 0
    assert any("lonely" in r.getMessage() and "too few" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("k", [0, -1])
def test_k_neighbors_below_one_is_a_user_error(k):
    x, y, cat = _mixed_data()
    with pytest.raises(UserError, match="k_neighbors"):
        mlsmote(x, y, categorical=cat, k_neighbors=k)


def test_negative_ratio_is_a_user_error():
    x, y, cat = _mixed_data()
    with pytest.raises(UserError, match="ratio"):
        mlsmote(x, y, categorical=cat, ratio=-0.5)


def test_single_label_balances_against_negatives():
    rng = np.random.default_rng(RND_SEED)
    n = 100
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 3, size=n)])
    y = (np.arange(n) < 20).astype(np.uint8)[:, None]  # 20 positives, 80 negatives
    res = mlsmote(x, y, categorical=[False, True], seed=RND_SEED)
    assert res.minority_labels == [0] and res.added_per_label == {0: 60}
    assert res.y.shape == (60, 1) and res.y.all()
    assert set(res.seeds.tolist()) <= set(range(20))
    half = mlsmote(x, y, categorical=[False, True], ratio=0.5, seed=RND_SEED)
    assert half.added_per_label == {0: math.ceil(0.5 * 80) - 20}


@pytest.mark.parametrize(
    "x_shape, y_shape, n_cat, match",
    [
        ((10,), (10, 2), 1, "x must be 2-D"),
        ((10, 3), (10,), 3, "y must be 2-D"),
        ((10, 3), (9, 2), 3, "rows"),
        ((10, 3), (10, 2), 2, "categorical has 2"),
    ],
)
def test_bad_shapes_are_value_errors(x_shape, y_shape, n_cat, match):
    with pytest.raises(ValueError, match=match):
        mlsmote(np.zeros(x_shape), np.zeros(y_shape, dtype=np.uint8), categorical=[False] * n_cat)


def test_non_binary_y_is_a_value_error():
    y = np.zeros((10, 2))
    y[0, 0] = 2
    with pytest.raises(ValueError, match="0 and 1"):
        mlsmote(np.zeros((10, 1)), y, categorical=[False])
