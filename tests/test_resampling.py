"""Resampling of the training split: every registered resampler, its guards and its provenance."""

import numpy as np
import pytest

from imbalance.errors import UserError
from imbalance.resampling import RESAMPLERS, resample, row_provenance

RND_SEED = 31337
NUMERIC_ONLY = [n for n in RESAMPLERS.names() if RESAMPLERS.get(n).columns == "numeric"]


def _numeric_data(n=600, prevalence=0.08, seed=RND_SEED):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.uint8)
    x = rng.normal(size=(n, 4)) + y[:, None] * 1.5
    return x, y[:, None]


def _mixed_data(n=600, prevalence=0.08, seed=RND_SEED):
    x, y = _numeric_data(n, prevalence, seed)
    rng = np.random.default_rng(seed + 1)
    codes = np.where(y[:, 0] == 1, rng.integers(0, 2, n), rng.integers(0, 4, n)).astype(float)  # 4 levels
    flag = rng.integers(0, 2, n).astype(float)
    return np.column_stack([x, codes, flag]), y, [False] * 4 + [True, True]


def _run(method, x, y, categorical, ratio=0.5, k=5, seed=RND_SEED):
    return resample(x, y, method=method, ratio=ratio, k_neighbors=k, categorical=categorical,
                    column_names=[f"c{j}" for j in range(x.shape[1])], label_names=["outcome"], seed=seed)


def _data_for(method):
    columns = RESAMPLERS.get(method).columns
    if columns == "numeric":
        x, y = _numeric_data()
        return x, y, [False] * 4
    if columns == "categorical":
        rng = np.random.default_rng(RND_SEED)
        y = (rng.random(600) < 0.08).astype(np.uint8)[:, None]
        x = np.column_stack([np.where(y[:, 0] == 1, rng.integers(0, 2, 600), rng.integers(0, 5, 600)), rng.integers(0, 3, 600)]).astype(float)
        return x, y, [True, True]
    return _mixed_data()


@pytest.mark.parametrize("method", [m for m in RESAMPLERS.names() if m != "mlsmote"])
def test_every_binary_resampler_reaches_the_requested_ratio_and_marks_synthetic_rows(method):
    x, y, categorical = _data_for(method)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    result = _run(method, x, y, categorical)
    pos_after = int(result.y.sum())
    neg_after = len(result.y) - pos_after
    if method == "random_under":
        assert pos_after == n_pos and neg_after == pytest.approx(n_pos / 0.5, abs=1)
    elif method in ("smote_enn", "smote_tomek"):
        assert pos_after > n_pos and neg_after <= n_neg  # oversampled, then cleaned
    elif method in ("adasyn", "svm_smote", "kmeans_smote", "borderline_smote"):
        assert n_pos < pos_after <= int(0.5 * n_neg) + 2  # approximately; some place fewer rows
    else:
        assert pos_after == int(0.5 * n_neg) and neg_after == n_neg
    # synthetic rows are exactly those not among the real rows, and copies are flagged separately
    real_keys = {row.tobytes() for row in np.round(x, 9)}
    is_real = np.array([row.tobytes() in real_keys for row in np.round(result.x, 9)])
    np.testing.assert_array_equal(result.synthetic, ~is_real)
    rows = result.provenance["rows"]
    assert rows["real"] + rows["duplicated"] + rows["synthetic"] == len(result.x)
    assert rows["real"] + rows["real_removed"] == len(x)
    per = result.provenance["per_label"]["outcome"]
    assert per["synthetic_positive"] + per["synthetic_negative"] == rows["synthetic"]
    if method == "random_over":
        assert rows["synthetic"] == 0 and rows["duplicated"] == pos_after - n_pos
    if method not in ("random_over", "random_under"):
        assert result.y[result.synthetic].all(), "synthetic rows are minority rows"


@pytest.mark.parametrize("method", ["smotenc", "smote_enn", "smote_tomek", "random_over"])
def test_categorical_columns_stay_valid_codes(method):
    x, y, categorical = _mixed_data()
    result = _run(method, x, y, categorical, ratio=1.0)
    for j in np.flatnonzero(categorical):
        assert set(np.unique(result.x[:, j])) <= set(np.unique(x[:, j]))


@pytest.mark.parametrize("method", NUMERIC_ONLY)
def test_interpolating_resamplers_refuse_categorical_columns(method):
    x, y, categorical = _mixed_data()
    with pytest.raises(UserError, match="use --resample smotenc"):
        _run(method, x, y, categorical)


def test_smotenc_without_categorical_columns_points_to_smote():
    x, y = _numeric_data()
    with pytest.raises(UserError, match="use --resample smote"):
        _run("smotenc", x, y, [False] * 4)


def test_too_few_positives_for_k_neighbors_explains_what_to_change():
    x, y = _numeric_data(n=400, prevalence=0.01, seed=5)
    n_pos = int(y.sum())
    with pytest.raises(UserError, match=rf"{n_pos} minority rows.*at most {n_pos - 1}.*random_over"):
        _run("smote", x, y, [False] * 4, k=n_pos)


def test_ratio_below_the_current_one_is_refused():
    x, y = _numeric_data()
    with pytest.raises(UserError, match="--resample_ratio 0.01 is not above"):
        _run("smote", x, y, [False] * 4, ratio=0.01)


def test_multilabel_needs_mlsmote():
    x, y = _numeric_data()
    y2 = np.column_stack([y[:, 0], 1 - y[:, 0]])
    with pytest.raises(UserError, match="use --resample mlsmote"):
        resample(x, y2, method="smote", ratio=0.5, k_neighbors=5, categorical=[False] * 4,
                 column_names=list("abcd"), label_names=["a", "b"])


def test_mlsmote_path_appends_synthetic_multilabel_rows():
    rng = np.random.default_rng(RND_SEED)
    x = rng.normal(size=(500, 3))
    y = np.column_stack([rng.random(500) < 0.3, rng.random(500) < 0.05, rng.random(500) < 0.03]).astype(np.uint8)
    result = resample(x, y, method="mlsmote", ratio=1.0, k_neighbors=3, categorical=[False] * 3,
                      column_names=list("abc"), label_names=["a", "b", "c"], seed=1)
    assert result.synthetic[:500].sum() == 0 and result.synthetic[500:].all()
    np.testing.assert_array_equal(result.x[:500], x)
    assert result.y[result.synthetic][:, 1:].any(axis=1).all()  # generated for the rare labels


def test_resampling_is_reproducible_with_a_seed():
    x, y, categorical = _mixed_data()
    a = _run("smotenc", x, y, categorical, seed=3)
    b = _run("smotenc", x, y, categorical, seed=3)
    c = _run("smotenc", x, y, categorical, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_row_provenance_counts_by_hand():
    real = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    out = np.array([[0.0, 1.0], [2.0, 0.0], [2.0, 0.0], [0.5, 1.0]])  # row 1 removed, row 2 copied, one new
    y = np.array([[0], [1], [1], [1]], dtype=np.uint8)
    synthetic, duplicated, prov = row_provenance(real, out, y, ["o"], method="test")
    assert synthetic.tolist() == [False, False, False, True]
    assert duplicated.tolist() == [False, False, True, False]
    assert prov["rows"] == {"real": 2, "real_removed": 1, "duplicated": 1, "synthetic": 1}
    assert prov["per_label"]["o"]["real_positive"] == 1 and prov["per_label"]["o"]["duplicated_positive"] == 1


def test_unknown_resampler_lists_choices():
    x, y = _numeric_data()
    with pytest.raises(UserError, match="unknown resampler 'magic'; choose from random_over"):
        _run("magic", x, y, [False] * 4)


def test_row_provenance_with_duplicate_rows_in_the_input():
    real = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])  # the input holds the same row twice
    out = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])  # one extra copy, nothing removed
    y = np.zeros((4, 1), dtype=np.uint8)
    synthetic, duplicated, prov = row_provenance(real, out, y, ["o"], method="test")
    assert prov["rows"] == {"real": 3, "real_removed": 0, "duplicated": 1, "synthetic": 0}
    assert duplicated.sum() == 1 and not synthetic.any()
