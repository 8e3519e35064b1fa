"""Bootstrap intervals (imbalance/bootstrap.py): each resample's metrics against scikit-learn, the
strata, coverage in a simulation, the paired difference, and chunking."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

import imbalance.bootstrap as bootstrap
from imbalance.bootstrap import bootstrap_metrics, bootstrap_report, label_strata, macro_strata, resamples
from imbalance.metrics import label_metrics

RND_SEED = 20241203


def _problem(n=300, seed=RND_SEED):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.04, 0.1, 0.25]).astype(np.int64)
    prob = np.round(0.6 * rng.random((n, 3)) + 0.3 * y * rng.random((n, 3)), 2)  # rounded: many ties
    return y, prob


def test_every_resample_matches_scikit_learn():
    y, prob = _problem()
    thresholds = [0.4, 0.5, 0.45]
    indices = next(resamples(macro_strata(y), 20, seed=1, chunk=20))
    got = bootstrap_metrics(y, prob, thresholds, indices, labels=[0, 1, 2])
    for b in range(20):
        for j in range(3):
            yy, pp = y[indices[b], j], prob[indices[b], j]
            pred = (pp >= thresholds[j]).astype(int)
            assert got["auroc"][b, j] == pytest.approx(roc_auc_score(yy, pp), abs=1e-12)
            assert got["auprc"][b, j] == pytest.approx(average_precision_score(yy, pp), abs=1e-12)
            assert got["f1"][b, j] == pytest.approx(f1_score(yy, pred, zero_division=0), abs=1e-12)
            assert got["precision"][b, j] == pytest.approx(precision_score(yy, pred, zero_division=0), abs=1e-12)
            assert got["recall"][b, j] == pytest.approx(recall_score(yy, pred, zero_division=0), abs=1e-12)


def test_strata_keep_the_positive_counts():
    y, _ = _problem()
    for j in range(3):
        for indices in resamples(label_strata(y, j), 50, seed=j, chunk=16):
            assert (y[indices, j].sum(axis=1) == y[:, j].sum()).all()
    rarest = int(np.argmin(y.sum(axis=0)))
    for indices in resamples(macro_strata(y), 50, seed=9, chunk=50):
        assert (y[indices, rarest].sum(axis=1) == y[:, rarest].sum()).all()
        assert len(np.unique(indices[0])) < len(y)  # rows are drawn with replacement


def test_macro_strata_by_hand():
    y = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1]])
    # counts: label 0 -> 2, label 1 -> 2, label 2 -> 4; rarest first: 0, 1 (stable), then 2
    np.testing.assert_array_equal(macro_strata(y), [0, 2, 1, 3, 0, 2])


def test_intervals_cover_the_true_value_at_about_the_nominal_rate():
    # binormal scores: AUROC = Phi(mu / sqrt 2); recall at threshold t = 1 - Phi(t - mu)
    mu, t, n, n_pos = 1.2, 1.0, 400, 40
    true_auroc, true_recall = norm.cdf(mu / np.sqrt(2)), 1 - norm.cdf(t - mu)
    rng = np.random.default_rng(RND_SEED)
    hits = {"auroc": 0, "recall": 0}
    replications = 150
    for r in range(replications):
        y = np.zeros((n, 1), dtype=np.int64)
        y[:n_pos] = 1
        score = rng.normal(size=(n, 1)) + mu * y
        prob = 1 / (1 + np.exp(-score))
        point = {"network": label_metrics(y, prob, [1 / (1 + np.exp(-t))], ["x"])}
        report = bootstrap_report(y, {"network": (prob, [1 / (1 + np.exp(-t))])}, ["x"], n_boot=400, seed=r, point=point)
        intervals = report["models"]["network"]["labels"]["x"]
        hits["auroc"] += intervals["auroc"][0] <= true_auroc <= intervals["auroc"][1]
        hits["recall"] += intervals["recall"][0] <= true_recall <= intervals["recall"][1]
    for key, count in hits.items():
        assert 0.88 <= count / replications <= 0.99, (key, count / replications)


def test_paired_difference_between_the_network_and_the_better_baseline():
    y, prob = _problem(n=600)
    rng = np.random.default_rng(3)
    worse = np.clip(prob + rng.normal(0, 0.3, prob.shape), 0, 1)
    scored = {"network": (prob, [0.5] * 3), "logistic": (worse, [0.5] * 3), "prior": (np.full_like(prob, 0.1), [0.5] * 3)}
    point = {m: label_metrics(y, p, thr, ["a", "b", "c"]) for m, (p, thr) in scored.items()}
    report = bootstrap_report(y, scored, ["a", "b", "c"], n_boot=300, seed=1, point=point)
    paired = report["paired"]
    assert paired["baseline"] == "logistic"  # the better of the two baselines by point estimate
    assert paired["difference"] == pytest.approx(point["network"]["macro"]["auprc"] - point["logistic"]["macro"]["auprc"])
    assert paired["interval"][0] > 0 and paired["share_network_better"] > 0.97  # clearly ahead
    same = bootstrap_report(y, {"network": scored["network"], "logistic": scored["network"]}, ["a", "b", "c"], n_boot=200,
                            seed=1, point={"network": point["network"], "logistic": point["network"]})
    assert same["paired"]["interval"] == [0.0, 0.0] and same["paired"]["share_network_better"] == 0.0


def test_chunking_does_not_change_the_intervals(monkeypatch):
    y, prob = _problem()
    args = dict(n_boot=120, seed=5, point={"network": label_metrics(y, prob, [0.5] * 3, ["a", "b", "c"])})
    whole = bootstrap_report(y, {"network": (prob, [0.5] * 3)}, ["a", "b", "c"], **args)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 300 * 7)  # 7 resamples per chunk
    chunked = bootstrap_report(y, {"network": (prob, [0.5] * 3)}, ["a", "b", "c"], **args)
    assert whole == chunked and whole["models"]["network"]["macro"]["auroc"][0] > 0
    other_seed = bootstrap_report(y, {"network": (prob, [0.5] * 3)}, ["a", "b", "c"], **{**args, "seed": 6})
    assert other_seed != whole
