"""Baseline models scored beside the network (imbalance/baselines.py)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from imbalance.baselines import BASELINES, baseline_scores
from imbalance.errors import UserError

RND_SEED = 20240617


def _data(n_train=400, n_val=150, n_test=120, n_features=5, seed=RND_SEED):
    """Two labels, each a noisy linear function of the features, about 10% and 20% positive."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    x = rng.normal(size=(n, n_features))
    w = np.array([[2.0, -1.5, 0.0, 1.0, 0.5], [-1.0, 0.0, 2.5, 0.0, -1.5]])
    logits = x @ w.T + rng.normal(scale=0.3, size=(n, 2))
    cut = np.quantile(logits, [0.9, 0.8], axis=0).diagonal()
    y = (logits > cut).astype(np.int64)
    a, b = n_train, n_train + n_val
    return (x[:a], y[:a]), {"val": x[a:b], "test": x[b:]}, {"val": y[a:b], "test": y[b:]}


def test_baselines_are_registered():
    assert {"prior", "logistic", "hgb"} <= set(BASELINES.names())


@pytest.fixture(scope="module", params=BASELINES.names())
def scored(request):
    """Each baseline fitted once (hgb is the slow one): name, data, parts and its scores."""
    (x_train, y_train), parts, y = _data()
    parts = {**parts, "empty": np.empty((0, x_train.shape[1]))}
    # one OpenMP thread: on a busy machine hgb's spinning thread barriers can take a minute
    with threadpool_limits(limits=1):
        scores = baseline_scores(request.param, x_train, y_train, parts, seed=RND_SEED)
    return request.param, (x_train, y_train), parts, y, scores


def test_every_baseline_returns_probabilities_per_part(scored):
    name, (x_train, y_train), parts, _, scores = scored
    assert set(scores) == {"val", "test", "empty"}
    for part, x in parts.items():
        assert scores[part].shape == (x.shape[0], y_train.shape[1]), (name, part)
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
    scores = baseline_scores("prior", x_train, y_train, parts)
    prevalence = y_train.sum(axis=0) / y_train.shape[0]
    assert 0.05 < prevalence[0] < 0.15 and 0.15 < prevalence[1] < 0.25
    for part, x in parts.items():
        np.testing.assert_allclose(scores[part], np.tile(prevalence, (x.shape[0], 1)), rtol=0, atol=1e-12)


def test_logistic_is_fitted_per_label():
    # label 1 copies label 0 flipped: its scores must be (close to) the mirror image, not a copy
    (x_train, y_train), parts, _ = _data()
    y_mirror = np.column_stack([y_train[:, 0], 1 - y_train[:, 0]])
    scores = baseline_scores("logistic", x_train, y_mirror, parts)
    np.testing.assert_allclose(scores["test"][:, 0] + scores["test"][:, 1], 1.0, atol=0.05)


def test_unknown_baseline_is_a_user_error():
    (x_train, y_train), parts, _ = _data()
    with pytest.raises(UserError) as err:
        baseline_scores("random_forest", x_train, y_train, parts)
    assert "random_forest" in str(err.value)
    assert "logistic" in str(err.value)
