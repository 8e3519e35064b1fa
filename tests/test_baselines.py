"""Baseline models scored beside the network (imbalance/baselines.py), on the toolkit's encoded rows."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

import imbalance.baselines as baselines
from imbalance.baselines import BASELINES, baseline_scores
from imbalance.errors import UserError
from imbalance.preprocessing import EncodedRows

RND_SEED = 20240617
CARDS = [6]  # one categorical column: 4 levels, other, missing
LEVEL_EFFECT = np.array([0.0, 2.5, 0.0, 0.0, 2.5, 0.0])  # not monotone in the code: only one-hot or native categories see it


def _rows(num, cat):
    return EncodedRows(num=num.astype(np.float32), cat=cat.astype(np.int64), n_numeric=num.shape[1] - 1)


def _data(n_train=400, n_val=150, n_test=120, seed=RND_SEED):
    """Two labels, about 10% and 20% positive: a noisy linear function of 4 numerics and a 0/1 flag,
    plus (label 0) the level of a categorical column. Returns (train rows, y_train), parts, y per part."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    num = np.c_[rng.normal(size=(n, 4)), rng.random(n) < 0.3]
    cat = rng.integers(0, CARDS[0], size=(n, 1))
    w = np.array([[2.0, -1.5, 0.0, 1.0, 0.5], [-1.0, 0.0, 2.5, 0.0, -1.5]])
    logits = num @ w.T + rng.normal(scale=0.3, size=(n, 2))
    logits[:, 0] += LEVEL_EFFECT[cat[:, 0]]
    cut = np.quantile(logits, [0.9, 0.8], axis=0).diagonal()
    y = (logits > cut).astype(np.int64)
    a, b = n_train, n_train + n_val
    rows = _rows(num, cat)
    parts = {"val": rows.take(np.arange(a, b)), "test": rows.take(np.arange(b, n))}
    return (rows.take(np.arange(a)), y[:a]), parts, {"val": y[a:b], "test": y[b:]}


def test_baselines_are_registered():
    assert {"prior", "logistic", "hgb"} <= set(BASELINES.names())


@pytest.fixture(scope="module", params=BASELINES.names())
def scored(request):
    """Each baseline fitted once (hgb is the slow one): name, data, parts and its scores."""
    (x_train, y_train), parts, y = _data()
    parts = {**parts, "empty": x_train.take(np.arange(0))}
    # one OpenMP thread: on a busy machine hgb's spinning thread barriers can take a minute
    with threadpool_limits(limits=1):
        scores = baseline_scores(request.param, x_train, y_train, parts, cardinalities=CARDS, seed=RND_SEED)
    return request.param, (x_train, y_train), parts, y, scores


def test_every_baseline_returns_probabilities_per_part(scored):
    name, (x_train, y_train), parts, _, scores = scored
    assert set(scores) == {"val", "test", "empty"}
    for part, x in parts.items():
        assert scores[part].shape == (len(x), y_train.shape[1]), (name, part)
        assert np.isfinite(scores[part]).all()
        assert (scores[part] >= 0).all() and (scores[part] <= 1).all()


def test_fitted_baselines_rank_well_on_held_out_rows(scored):
    name, (_, y_train), _, y, scores = scored
    floor = {"logistic": 0.9, "hgb": 0.8}.get(name)
    if floor is None:
        return  # prior has no ranking to check (see below)
    for part in ("val", "test"):
        for j in range(y_train.shape[1]):
            assert roc_auc_score(y[part][:, j], scores[part][:, j]) > floor, (name, part, j)


def test_prior_is_the_training_prevalence_for_every_row():
    (x_train, y_train), parts, _ = _data()
    scores = baseline_scores("prior", x_train, y_train, parts, cardinalities=CARDS)
    prevalence = y_train.sum(axis=0) / y_train.shape[0]
    assert 0.05 < prevalence[0] < 0.15 and 0.15 < prevalence[1] < 0.25
    for part, x in parts.items():
        np.testing.assert_allclose(scores[part], np.tile(prevalence, (len(x), 1)), rtol=0, atol=1e-12)


def test_logistic_is_fitted_per_label():
    # label 1 copies label 0 flipped: its scores must be (close to) the mirror image, not a copy
    (x_train, y_train), parts, _ = _data()
    y_mirror = np.column_stack([y_train[:, 0], 1 - y_train[:, 0]])
    scores = baseline_scores("logistic", x_train, y_mirror, parts, cardinalities=CARDS)
    np.testing.assert_allclose(scores["test"][:, 0] + scores["test"][:, 1], 1.0, atol=0.05)


def test_logistic_reads_the_floats_and_every_category_code_one_hot():
    (x_train, y_train), parts, _ = _data()
    scores = baseline_scores("logistic", x_train, y_train, parts, cardinalities=CARDS, seed=3)
    # an independent one-hot of the codes: one column per code 0..cardinality-1, seen or not
    encoder = OneHotEncoder(categories=[list(range(c)) for c in CARDS], sparse_output=False)

    def design(rows):
        return np.hstack([rows.num, encoder.fit_transform(rows.cat)])

    for j in range(y_train.shape[1]):
        reference = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=3).fit(design(x_train), y_train[:, j])
        np.testing.assert_allclose(scores["test"][:, j], reference.predict_proba(design(parts["test"]))[:, 1], atol=1e-6)


def test_baselines_see_a_category_effect_that_is_not_monotone_in_the_code():
    # A label set by the level alone (levels 1 and 4): a model of the codes as numbers ranks near chance.
    rng = np.random.default_rng(RND_SEED + 1)
    n = 3000
    num = np.c_[rng.normal(size=(n, 2)), np.zeros(n)]
    cat = rng.integers(0, CARDS[0], size=(n, 1))
    risky = np.isin(cat[:, 0], [1, 4])
    y = (rng.random(n) < np.where(risky, 0.5, 0.05)).astype(np.int64)[:, None]
    rows = _rows(num, cat)
    train, test = rows.take(np.arange(2000)), rows.take(np.arange(2000, n))
    oracle = roc_auc_score(y[2000:, 0], risky[2000:])
    as_numbers = LogisticRegression(class_weight="balanced").fit(train.native(), y[:2000, 0])
    assert roc_auc_score(y[2000:, 0], as_numbers.predict_proba(test.native())[:, 1]) < oracle - 0.1
    with threadpool_limits(limits=1):
        for name in ("logistic", "hgb"):
            scores = baseline_scores(name, train, y[:2000], {"test": test}, cardinalities=CARDS)
            assert roc_auc_score(y[2000:, 0], scores["test"][:, 0]) > oracle - 0.03, name


def test_hgb_takes_narrow_categorical_columns_natively(monkeypatch):
    seen = {}

    class Spy(baselines.HistGradientBoostingClassifier):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(baselines, "HistGradientBoostingClassifier", Spy)
    rng = np.random.default_rng(RND_SEED)
    n = 300
    num = np.c_[rng.normal(size=(n, 2)), rng.random(n) < 0.5]
    cards = [5, 300, 7]  # a 300-code column is wider than HistGradientBoosting's 255 categories: ordinal
    cat = np.column_stack([rng.integers(0, c, n) for c in cards])
    y = (rng.random((n, 1)) < 0.3).astype(np.int64)
    rows = _rows(num, cat)
    with threadpool_limits(limits=1):
        scores = baseline_scores("hgb", rows, y, {"train": rows}, cardinalities=cards)
    assert seen["categorical_features"] == [3 + 0, 3 + 2]  # after the 3 float columns
    assert seen["class_weight"] == "balanced"
    assert scores["train"].shape == (n, 1)


def test_unknown_baseline_is_a_user_error():
    (x_train, y_train), parts, _ = _data()
    with pytest.raises(UserError) as err:
        baseline_scores("random_forest", x_train, y_train, parts, cardinalities=CARDS)
    assert "random_forest" in str(err.value)
    assert "logistic" in str(err.value)
