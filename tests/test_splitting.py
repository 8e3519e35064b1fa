"""split_indices (imbalance/splitting.py): a partition of the rows, sized by the fractions,
reproducible by seed, and stratified on the outcome(s) when asked."""

import logging

import numpy as np
import pytest

from imbalance.errors import UserError
from imbalance.splitting import split_indices

RND_SEED = 20240614


def _binary(n: int, n_pos: int, seed: int = RND_SEED) -> np.ndarray:
    y = np.zeros(n, dtype=np.int64)
    y[np.random.default_rng(seed).choice(n, n_pos, replace=False)] = 1
    return y


def _multilabel(n: int = 3000, seed: int = RND_SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.02, 0.04, 0.06, 0.08])
    y = (rng.random((n, 4)) < prevalence).astype(np.int64)
    return y, prevalence


def _assert_partition(splits: dict, n: int) -> None:
    assert set(splits) == {"train", "val", "test"}
    every = np.concatenate([splits[p] for p in ("train", "val", "test")])
    assert len(every) == n
    np.testing.assert_array_equal(np.sort(every), np.arange(n))  # complete and disjoint
    for part in ("train", "val", "test"):
        assert np.all(np.diff(splits[part]) > 0), part  # sorted, no repeats


@pytest.mark.parametrize("stratify", [False, True])
@pytest.mark.parametrize("val_fraction, test_fraction", [(0.15, 0.15), (0.2, 0.1), (0.1, 0.3)])
def test_partition_with_sizes_matching_fractions(stratify, val_fraction, test_fraction):
    n = 1000
    y = _binary(n, 80)
    splits = split_indices(y, val_fraction=val_fraction, test_fraction=test_fraction, stratify=stratify, seed=3, label_names=["y"])
    _assert_partition(splits, n)
    # +-1 row (rounding), with a hair of slack for float products such as 1000 * (1 - 0.1 - 0.3)
    assert abs(len(splits["test"]) - n * test_fraction) <= 1 + 1e-9
    assert abs(len(splits["val"]) - n * val_fraction) <= 1 + 1e-9
    assert abs(len(splits["train"]) - n * (1 - val_fraction - test_fraction)) <= 1 + 1e-9


@pytest.mark.parametrize("stratify", [False, True])
def test_zero_test_fraction_gives_empty_test(stratify):
    n = 400
    y, _ = _multilabel(n)
    splits = split_indices(y, val_fraction=0.25, test_fraction=0.0, stratify=stratify, seed=1, label_names=list("abcd"))
    assert len(splits["test"]) == 0
    _assert_partition(splits, n)
    assert abs(len(splits["val"]) - 100) <= 1


@pytest.mark.parametrize("stratify", [False, True])
def test_same_seed_same_split_other_seed_differs(stratify):
    y, _ = _multilabel(600)
    kw = dict(val_fraction=0.2, test_fraction=0.2, stratify=stratify, label_names=list("abcd"))
    a = split_indices(y, seed=11, **kw)
    b = split_indices(y, seed=11, **kw)
    c = split_indices(y, seed=12, **kw)
    for part in a:
        np.testing.assert_array_equal(a[part], b[part])
    assert any(not np.array_equal(a[p], c[p]) for p in ("val", "test"))


def test_stratified_binary_keeps_prevalence_within_one_positive():
    n, n_pos = 1000, 50
    y = _binary(n, n_pos)
    for seed in range(5):
        splits = split_indices(y, val_fraction=0.2, test_fraction=0.2, stratify=True, seed=seed, label_names=["y"])
        for part in ("train", "val", "test"):
            expected = n_pos * len(splits[part]) / n
            assert abs(y[splits[part]].sum() - expected) <= 1, (seed, part, y[splits[part]].sum(), expected)


def _max_deviation(y: np.ndarray, splits: dict) -> float:
    overall = y.mean(axis=0)
    return max(float(np.abs(y[rows].mean(axis=0) - overall).max()) for rows in splits.values() if len(rows))


def test_stratified_multilabel_keeps_every_label_prevalence_and_beats_random():
    y, _ = _multilabel(3000)
    names = ["l2", "l4", "l6", "l8"]
    strat, plain = [], []
    for seed in range(6):
        kw = dict(val_fraction=0.15, test_fraction=0.15, seed=seed, label_names=names)
        s = split_indices(y, stratify=True, **kw)
        _assert_partition(s, len(y))
        # every label in every split within 0.4 percentage points (about 2 positives in 450 rows)
        assert _max_deviation(y, s) <= 0.004, seed
        strat.append(_max_deviation(y, s))
        plain.append(_max_deviation(y, split_indices(y, stratify=False, **kw)))
    assert np.mean(strat) < np.mean(plain)


@pytest.mark.parametrize("n_pos", [0, 1, 99])
def test_too_few_positives_to_stratify_names_the_label(n_pos):
    y = _binary(100, n_pos)
    with pytest.raises(UserError) as err:
        split_indices(y, val_fraction=0.2, test_fraction=0.2, stratify=True, seed=0, label_names=["label_rare"])
    assert "label_rare" in str(err.value)


def test_too_few_rows_is_a_user_error():
    with pytest.raises(UserError):
        split_indices(np.zeros(10, dtype=int), val_fraction=0.2, test_fraction=0.2, stratify=False, seed=0, label_names=["y"])


def test_split_without_positives_for_a_label_warns_naming_it(caplog):
    y, _ = _multilabel(300)
    y[:, 3] = 0
    y[7, 3] = 1  # a single positive: at most one of train/val/test can hold it
    names = ["label_a", "label_b", "label_c", "label_solo"]
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        splits = split_indices(y, val_fraction=0.2, test_fraction=0.2, stratify=False, seed=5, label_names=names)
    empty_parts = [p for p in ("val", "test") if y[splits[p], 3].sum() == 0]
    assert empty_parts  # computed from the split itself
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for part in empty_parts:
        assert any("label_solo" in m and part in m for m in messages), (part, messages)
    # labels that do have positives in every split are not named
    for j, name in enumerate(names[:3]):
        if all(y[splits[p], j].sum() > 0 for p in ("val", "test")):
            assert not any(name in m for m in messages)
