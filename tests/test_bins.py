"""Bin edges for piecewise-linear numeric embeddings (imbalance/bins.py), checked against numpy and the data."""

import numpy as np
import pytest

import imbalance.bins as bins_module
from imbalance.bins import BIN_METHODS, fit_bins
from imbalance.errors import UserError

RND_SEED = 20240620


def _columns(n=600, seed=RND_SEED):
    """A normal column, a skewed one and an integer column with many ties, as float32."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(size=n), rng.exponential(size=n), rng.integers(0, 5, size=n)]).astype(np.float32)


def _assert_valid(edges, column):
    assert len(edges) >= 2
    assert all(type(v) is float for v in edges)  # plain floats: they are stored in the checkpoint
    assert np.all(np.diff(edges) > 0), "edges must be strictly increasing"
    assert edges[0] == pytest.approx(float(column.min())) and edges[-1] == pytest.approx(float(column.max()))


def test_registered_methods():
    assert BIN_METHODS.names() == ["quantile", "tree"]
    with pytest.raises(UserError, match="unknown bin method 'kmeans'"):
        fit_bins(_columns(), np.zeros((600, 1)), n_bins=8, method="kmeans")


@pytest.mark.parametrize("n_bins", [2, 8, 48])
def test_quantile_edges_are_the_unique_training_quantiles_of_each_column(n_bins):
    x = _columns()
    edges = fit_bins(x, np.zeros((len(x), 1)), n_bins=n_bins, method="quantile")
    assert len(edges) == x.shape[1]
    for j, column in enumerate(x.T):
        expected = np.unique(np.quantile(column.astype(np.float64), np.linspace(0.0, 1.0, n_bins + 1)))
        assert len(edges[j]) == len(expected), j
        np.testing.assert_allclose(edges[j], expected, rtol=1e-5, atol=1e-5)
        _assert_valid(edges[j], column)
    # the integer column's many tied quantiles are kept once each
    assert len(edges[2]) == len(set(edges[2])) <= n_bins + 1


def test_tree_edges_are_sorted_cover_the_column_and_follow_the_outcome():
    rng = np.random.default_rng(RND_SEED)
    n = 4000
    x = np.column_stack([rng.uniform(-2, 2, n), rng.normal(size=n)]).astype(np.float32)
    y = (x[:, :1] > 0.7).astype(np.uint8)  # the outcome turns on at 0.7 of the first column
    edges = fit_bins(x, y, n_bins=8, method="tree")
    for j, column in enumerate(x.T):
        _assert_valid(edges[j], column)
        assert len(edges[j]) <= 8 + 1
    assert np.min(np.abs(np.array(edges[0]) - 0.7)) < 0.05  # a split where the outcome changes


def test_tree_edges_with_several_labels_split_where_any_label_changes():
    rng = np.random.default_rng(RND_SEED + 1)
    n = 4000
    x = rng.uniform(-2, 2, size=(n, 2)).astype(np.float32)
    y = np.column_stack([x[:, 0] > 0.5, x[:, 1] < -0.8, np.zeros(n)]).astype(np.uint8)
    edges = fit_bins(x, y, n_bins=6, method="tree")
    assert np.min(np.abs(np.array(edges[0]) - 0.5)) < 0.05
    assert np.min(np.abs(np.array(edges[1]) + 0.8)) < 0.05
    for j, column in enumerate(x.T):
        _assert_valid(edges[j], column)


@pytest.mark.parametrize("method", ["quantile", "tree"])
def test_a_constant_column_gets_one_bin_around_its_value(method):
    x = _columns(n=300)
    x = np.column_stack([x[:, 0], np.full(300, 2.5, dtype=np.float32), x[:, 1]])
    y = (x[:, :1] > 0).astype(np.uint8)
    edges = fit_bins(x, y, n_bins=8, method=method)
    assert edges[1] == [2.0, 3.0]
    _assert_valid(edges[0], x[:, 0])
    _assert_valid(edges[2], x[:, 2])


@pytest.mark.parametrize("method", ["quantile", "tree"])
def test_no_numeric_column_gives_no_bins(method):
    assert fit_bins(np.zeros((50, 0), dtype=np.float32), np.zeros((50, 2)), n_bins=8, method=method) == []


def test_more_bins_than_rows_are_capped():
    x = np.arange(10, dtype=np.float32)[:, None] ** 2
    (edges,) = fit_bins(x, np.zeros((10, 1)), n_bins=48)
    assert len(edges) <= 10
    _assert_valid(edges, x[:, 0])


def test_large_tables_are_subsampled_reproducibly(monkeypatch):
    monkeypatch.setattr(bins_module, "_MAX_ROWS", 200)
    x = _columns(n=2000)
    y = np.zeros((2000, 1))
    first = fit_bins(x, y, n_bins=16, seed=1)
    assert first == fit_bins(x, y, n_bins=16, seed=1)
    assert first != fit_bins(x, y, n_bins=16, seed=2)
    everything = fit_bins(x[:200], y[:200], n_bins=16)
    assert first != everything  # not simply the first rows
    for j, column in enumerate(x.T):
        assert column.min() <= first[j][0] and first[j][-1] <= column.max()


@pytest.mark.parametrize("method", ["quantile", "tree"])
def test_two_rows_give_one_bin_from_the_smallest_to_the_largest_value(method):
    x = np.array([[0.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    edges = fit_bins(x, np.array([[0], [1]]), n_bins=8, method=method)
    assert edges == [[0.0, 2.0], [0.5, 1.5]]
