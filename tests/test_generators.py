"""Synthetic minority-row generators (imbalance/generators.py).

Rows come from a known source: latent normals z1, z2 with correlation 0.8 give
x = 50 + 10 z1, y = exp(z2), cat = a/b/c by cut points on z1 plus noise, flag = [z2 > 0.5] (a 0/1
int), labels l1 = [z1 > 1], l2 = [z2 > 1] (co-occurring); count ~ Poisson(3) and yn (30% "yes")
are independent of everything. y and cat are 20% missing. Expected values come from the source
itself (a large independent sample), never from the generator.
"""

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imbalance.errors import UserError
from imbalance.generators import GENERATORS, build_generator
from imbalance.preprocessing import TabularPreprocessor

RHO = 0.8
MISSING = 0.2
KINDS = {
    "x": "numeric",
    "y": "numeric",
    "count": "numeric",
    "cat": "categorical",
    "flag": "binary",
    "yn": "binary",
    "l1": "binary",
    "l2": "binary",
}
DEEP = ["ctgan", "tvae"]  # trained networks: their own, smaller tests below
ALL = [name for name in GENERATORS.names() if name not in DEEP]


def source(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, RHO], [RHO, 1.0]], size=n)
    frame = pd.DataFrame(
        {
            "x": 50.0 + 10.0 * z[:, 0],
            "y": np.exp(z[:, 1]),
            "count": rng.poisson(3.0, n).astype(np.int64),
            "cat": np.array(["a", "b", "c"], dtype=object)[np.digitize(z[:, 0] + rng.normal(0, 0.3, n), [-0.5, 0.5])],
            "flag": (z[:, 1] > 0.5).astype(np.int64),
            "yn": np.where(rng.random(n) < 0.3, "yes", "no").astype(object),
            "l1": (z[:, 0] > 1.0).astype(np.int64),
            "l2": (z[:, 1] > 1.0).astype(np.int64),
        }
    )
    frame["y"] = frame["y"].mask(rng.random(n) < MISSING)
    frame["cat"] = frame["cat"].mask(rng.random(n) < MISSING)
    return frame


TRAIN = source(20_000, 1)  # large, so that fitting noise is small beside 2000 draws
TRUTH = source(100_000, 2)  # "the source distribution", independent of the fitted rows


def fitted(name: str, frame: pd.DataFrame = TRAIN, seed: int = 0, kinds=KINDS):
    return build_generator(name, seed=seed).fit(frame.copy(), kinds)


# -- common contract, every registered generator ------------------------------------------------
def test_registry_has_the_documented_entries():
    assert GENERATORS.names() == ["marginal", "uniform", "gaussian_copula", "ctgan", "tvae"]


@pytest.mark.parametrize("name", ALL)
def test_columns_rows_and_dtypes_as_input(name):
    out = fitted(name).sample(500)
    assert list(out.columns) == list(TRAIN.columns)
    assert len(out) == 500
    for col in ["x", "y", "count"]:
        assert out[col].dtype == np.float64
    for col in ["flag", "l1", "l2"]:  # 0/1 ints (labels, for multi-label use) stay 0/1 ints
        assert out[col].dtype == np.int64
        assert set(out[col].unique()) == {0, 1}


@pytest.mark.parametrize("name", ALL)
def test_levels_are_only_those_seen(name):
    train = TRAIN.copy()
    train.loc[train["cat"] == "c", "cat"] = "a"  # the source has c; these minority rows do not
    out = fitted(name, train).sample(2000)
    assert set(out["cat"].dropna()) == {"a", "b"}
    assert set(out["yn"]) == {"yes", "no"}


@pytest.mark.parametrize("name", ALL)
def test_numbers_stay_in_observed_range_and_integers_integral(name):
    train = TRAIN.iloc[:60]
    out = fitted(name, train).sample(3000)
    for col in ["x", "y", "count"]:
        values = out[col].dropna()
        assert values.min() >= train[col].min() and values.max() <= train[col].max()
    assert (out["count"] == np.round(out["count"])).all()
    # With 60 rows the range is narrow: some draws must land near the ends, not all in the middle.
    assert out["x"].max() > train["x"].quantile(0.9)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_rows_other_seed_other_rows(name):
    a = fitted(name, seed=7).sample(300)
    b = fitted(name, seed=7).sample(300)
    c = fitted(name, seed=8).sample(300)
    pd.testing.assert_frame_equal(a, b)
    assert not a["x"].equals(c["x"])
    assert not a["cat"].equals(c["cat"])


@pytest.mark.parametrize("name", ALL)
def test_missing_rates_reproduced(name):
    out = fitted(name).sample(2000)
    for col in ["y", "cat"]:
        assert 0.15 <= out[col].isna().mean() <= 0.25
    assert out.drop(columns=["y", "cat"]).notna().all().all()


@pytest.mark.parametrize("name", ALL)
def test_nonpositive_n_gives_empty_frame_with_columns(name):
    generator = fitted(name)
    for n in (0, -3):
        out = generator.sample(n)
        assert len(out) == 0 and list(out.columns) == list(TRAIN.columns)
        assert out["x"].dtype == np.float64 and out["flag"].dtype == np.int64


def test_unknown_name_lists_choices():
    with pytest.raises(UserError, match="unknown generator 'nope'; choose from .*marginal.*gaussian_copula"):
        build_generator("nope")


@pytest.mark.parametrize("name", ALL)
def test_too_few_rows(name):
    with pytest.raises(UserError, match="needs at least 2 minority rows"):
        fitted(name, TRAIN.iloc[:1])
    fitted(name, TRAIN.iloc[:2]).sample(5)  # two rows are enough


@pytest.mark.parametrize("name", ALL)
def test_bad_kinds_and_unfitted(name):
    with pytest.raises(ValueError, match="no kind given for column.*l2"):
        fitted(name, kinds={k: v for k, v in KINDS.items() if k != "l2"})
    with pytest.raises(ValueError, match="unknown column kind"):
        fitted(name, kinds={**KINDS, "x": "ordinal"})
    with pytest.raises(RuntimeError, match="not fitted"):
        build_generator(name).sample(3)


@pytest.mark.parametrize("name", ALL)
def test_original_value_types_kept(name):
    """Strings that hold numbers come back as numbers; category/bool/str columns keep their dtype."""
    rng = np.random.default_rng(3)
    n = 200
    frame = pd.DataFrame(
        {
            "num_text": pd.Series(rng.normal(5, 1, n).round(2).astype(str), dtype=object),
            "grade": pd.Categorical(rng.choice(["I", "II", "III"], n)),
            "smoker": rng.random(n) < 0.4,
            "site": pd.Series(rng.choice(["north", "south"], n), dtype=object),
            "const": np.full(n, 4.0),
            "empty": np.full(n, np.nan),
        }
    )
    kinds = {"num_text": "numeric", "grade": "categorical", "smoker": "binary", "site": "categorical"}
    kinds.update(const="numeric", empty="numeric")
    out = fitted(name, frame, kinds=kinds).sample(400)
    numbers = frame["num_text"].astype(float)
    assert out["num_text"].dtype == np.float64 and out["num_text"].between(numbers.min(), numbers.max()).all()
    assert isinstance(out["grade"].dtype, pd.CategoricalDtype) and set(out["grade"]) == {"I", "II", "III"}
    assert out["smoker"].dtype == bool and 0.25 < out["smoker"].mean() < 0.55
    assert set(out["site"]) == {"north", "south"}
    assert (out["const"] == 4.0).all()
    assert out["empty"].isna().all()


@pytest.mark.parametrize("name", ALL)
def test_rows_go_through_the_fitted_preprocessor(name):
    pre = TabularPreprocessor(min_category_count=1).fit(TRAIN)
    out = fitted(name, kinds=pre.kinds).sample(100)
    rows = pre.transform(out)
    assert rows.num.shape == (100, len(pre.numeric_names) + len(pre.flag_names)) and np.isfinite(rows.num).all()
    assert rows.cat.shape == (100, len(pre.categorical_names)) == (100, 1)
    codes = rows.cat[:, 0]
    (card,) = pre.cardinalities
    # generated categories are real levels or missing: never the other code (card - 2) nor out of range
    assert ((codes >= 0) & (codes < card) & (codes != card - 2)).all()
    assert (codes == card - 1).any()  # 'cat' is missing in a fifth of the rows


# -- marginal: the minority distribution column by column, nothing joint -------------------------
def test_marginal_reproduces_each_column():
    out = fitted("marginal", seed=11).sample(2000)
    for col in ["x", "y"]:
        assert stats.ks_2samp(out[col].dropna(), TRUTH[col].dropna()).pvalue > 0.01
    # moments on a scale where they are stable (y is lognormal: its sample sd is tail noise)
    for got, expected in [(out["x"], TRUTH["x"]), (np.log(out["y"]), np.log(TRUTH["y"]))]:
        assert abs(got.mean() - expected.mean()) < 0.1 * expected.std()  # ~4 standard errors
        assert abs(got.std() / expected.std() - 1) < 0.08
    assert abs(out["count"].mean() - 3.0) < 0.15 and abs(out["count"].var() / 3.0 - 1) < 0.15
    for col in ["cat", "yn", "flag", "l1"]:
        expected = TRUTH[col].value_counts(normalize=True)
        got = out[col].value_counts(normalize=True).reindex(expected.index, fill_value=0)
        assert (got - expected).abs().max() < 0.04, col


def test_marginal_destroys_correlations():
    out = fitted("marginal", seed=12).sample(2000)
    present = out.dropna(subset=["y"])
    assert abs(np.corrcoef(present["x"], np.log(present["y"]))[0, 1]) < 0.07
    level_means = out.groupby("cat")["x"].mean()
    assert level_means.max() - level_means.min() < 2.0  # the source's spread is ~20
    both = ((out["l1"] == 1) & (out["l2"] == 1)).mean()
    assert abs(both - out["l1"].mean() * out["l2"].mean()) < 0.015


# -- Gaussian copula: marginals and the joint structure ------------------------------------------
def test_copula_reproduces_each_column():
    out = fitted("gaussian_copula", seed=13).sample(2000)
    for col in ["x", "y"]:
        assert stats.ks_2samp(out[col].dropna(), TRUTH[col].dropna()).pvalue > 0.01
    for col in ["cat", "yn", "flag", "l1"]:
        expected = TRUTH[col].value_counts(normalize=True)
        got = out[col].value_counts(normalize=True).reindex(expected.index, fill_value=0)
        assert (got - expected).abs().max() < 0.04, col


def test_copula_keeps_numeric_correlation():
    out = fitted("gaussian_copula", seed=14).sample(2000)
    present = out.dropna(subset=["y"])
    assert abs(np.corrcoef(present["x"], np.log(present["y"]))[0, 1] - RHO) < 0.1
    expected = stats.spearmanr(TRUTH["x"], TRUTH["y"], nan_policy="omit").statistic
    assert abs(stats.spearmanr(present["x"], present["y"]).statistic - expected) < 0.05
    assert abs(stats.spearmanr(out["x"], out["count"]).statistic) < 0.07  # independent stays so


def test_copula_keeps_category_and_binary_associations():
    out = fitted("gaussian_copula", seed=15).sample(2000)
    expected = TRUTH.groupby("cat")["x"].mean()
    got = out.groupby("cat")["x"].mean()
    assert (got - expected).abs().max() < 1.5, (got, expected)  # level means ~40 / 50 / 60
    expected = TRUTH.groupby("flag")["x"].mean()
    assert (out.groupby("flag")["x"].mean() - expected).abs().max() < 1.5
    # label co-occurrence (multi-label): P(l1 = l2 = 1) ~0.10 in the source, ~0.025 if independent
    expected_both = ((TRUTH["l1"] == 1) & (TRUTH["l2"] == 1)).mean()
    assert abs(((out["l1"] == 1) & (out["l2"] == 1)).mean() - expected_both) < 0.025  # ~3 standard errors


def test_copula_survives_singular_and_constant_columns():
    """5 rows, 12 columns: duplicates, a constant, a single-level category; shrinkage keeps it PD."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=5)
    frame = pd.DataFrame({f"v{i}": base + 0.01 * i for i in range(9)})
    frame["const"] = 1.0
    frame["one_level"] = "only"
    frame["neg"] = -base
    kinds = {c: "categorical" if c == "one_level" else "numeric" for c in frame.columns}
    generator = fitted("gaussian_copula", frame, kinds=kinds)
    assert np.linalg.eigvalsh(generator.corr_)[0] > 0
    out = generator.sample(500)
    assert (out["const"] == 1.0).all() and (out["one_level"] == "only").all()
    assert np.corrcoef(out["v0"], out["v8"])[0, 1] > 0.9 and np.corrcoef(out["v0"], out["neg"])[0, 1] < -0.9


@pytest.mark.parametrize("name", ALL)
def test_fast_enough(name):
    wide = pd.concat([TRAIN.iloc[:2000].add_suffix(f"_{k}") for k in range(3)], axis=1).iloc[:, :20]
    kinds = {c: KINDS[c.rsplit("_", 1)[0]] for c in wide.columns}
    start = time.perf_counter()
    build_generator(name).fit(wide, kinds).sample(2000)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("name", ALL)
def test_infinite_numbers_count_as_missing(name):
    frame = pd.DataFrame({"v": [1.0, np.inf, 2.0, -np.inf, 3.0, 4.0]})
    out = fitted(name, frame, kinds={"v": "numeric"}).sample(400)
    present = out["v"].dropna()
    assert present.between(1.0, 4.0).all() and 0.2 < out["v"].isna().mean() < 0.47  # 2 of 6 missing


# -- uniform: the stroke guide's recipe ----------------------------------------------------------
def test_uniform_spreads_numbers_evenly_between_the_minority_extremes():
    train = TRAIN.iloc[:500]
    out = fitted("uniform", train).sample(20_000)
    x = out["x"].to_numpy()
    low, high = train["x"].min(), train["x"].max()
    assert x.min() >= low and x.max() <= high
    counts, _ = np.histogram(x, bins=10, range=(low, high))
    assert counts.min() > 0.9 * counts.mean()  # flat, unlike the real (normal) column
    assert set(out["count"].unique()) == set(range(int(train["count"].min()), int(train["count"].max()) + 1))
    shares = out["cat"].value_counts(normalize=True)
    real = train["cat"].value_counts(normalize=True)
    assert (shares - real).abs().max() < 0.02  # levels by their minority frequencies
    assert abs(np.corrcoef(out["x"], out["y"].fillna(out["y"].mean()))[0, 1]) < 0.05  # columns independent


# -- CTGAN and TVAE (small data, few epochs: the contract, not the quality) ---------------------
SMALL = TRAIN.iloc[:200]


@pytest.mark.parametrize("name", DEEP)
def test_deep_generators_keep_the_columns_levels_ranges_and_seed(name):
    out = build_generator(name, seed=3, epochs=3).fit(SMALL.copy(), KINDS).sample(300)
    assert list(out.columns) == list(SMALL.columns) and len(out) == 300
    for col in ["x", "y", "count"]:
        assert out[col].dtype == np.float64
        values = out[col].dropna()
        assert values.min() >= SMALL[col].min() and values.max() <= SMALL[col].max()
    assert (out["count"] == np.round(out["count"])).all()
    for col in ["flag", "l1", "l2"]:
        assert out[col].dtype == np.int64 and set(out[col].unique()) <= {0, 1}
    assert set(out["cat"].dropna()) <= {"a", "b", "c"} and set(out["yn"]) <= {"yes", "no"}
    assert out["x"].notna().all()  # no missing values where the minority rows had none
    again = build_generator(name, seed=3, epochs=3).fit(SMALL.copy(), KINDS).sample(300)
    pd.testing.assert_frame_equal(out, again)
    other = build_generator(name, seed=4, epochs=3).fit(SMALL.copy(), KINDS).sample(300)
    assert not out["x"].equals(other["x"])


@pytest.mark.parametrize("name", DEEP)
def test_deep_generators_learn_where_values_are_missing(name):
    frame = pd.DataFrame({"v": np.r_[np.arange(1.0, 101.0), [np.nan] * 100], "w": np.r_[["a"] * 100, [None] * 100]})
    out = build_generator(name, seed=0, epochs=60).fit(frame, {"v": "numeric", "w": "categorical"}).sample(1000)
    assert 0.2 < out["v"].isna().mean() < 0.8 and 0.2 < out["w"].isna().mean() < 0.8
    assert out["v"].dropna().between(1.0, 100.0).all()


def test_generator_epochs_reach_the_deep_generators_only():
    assert build_generator("ctgan", epochs=7).epochs == 7 and build_generator("tvae").epochs == 300
    assert not hasattr(build_generator("uniform", epochs=7), "epochs")


def test_deep_generators_draw_again_rows_outside_the_minority_range():
    class Fake:  # the package's model: the first draw half outside [1.5, 4], later draws inside
        def __init__(self):
            self.calls = 0

        def sample(self, n):
            self.calls += 1
            values = np.where(np.arange(n) % 2 == 0, 9.0, 2.5) if self.calls == 1 else np.full(n, 3.0)
            return pd.DataFrame({"c0": values})

    from imbalance.generators import _fit_columns

    generator = build_generator("ctgan", seed=0)
    generator.columns_ = _fit_columns(pd.DataFrame({"v": [1.5, 2.0, 3.0, 4.0]}), {"v": "numeric"})
    generator.model_ = Fake()
    out = generator.sample(10)
    assert generator.model_.calls == 2 and sorted(out["v"]) == [2.5] * 5 + [3.0] * 5  # no 9.0 clipped to 4.0
