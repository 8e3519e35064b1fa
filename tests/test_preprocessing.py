"""TabularPreprocessor (imbalance/preprocessing.py) on a tiny hand-made frame.

Every expected number is computed here from the training rows with numpy / sklearn / scipy,
following the module docstring: median imputation, log1p for non-negative columns with
skewness above 2, standardisation with the training mean and (population) std, 0/1 for
binary columns, and per categorical column one integer code per frequent level, then one for
``__other__`` (rare or unseen) and one for ``__missing__``. Most checks read the one-hot view
``rows.one_hot(pre.cardinalities)`` by the names in ``pre.feature_names``.
"""

import copy
import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import skew
from sklearn.preprocessing import StandardScaler

from imbalance.errors import UserError
from imbalance.preprocessing import MISSING_LEVEL, OTHER_LEVEL, EncodedRows, TabularPreprocessor

RND_SEED = 20240613
MIN_COUNT = 3

NUM = [1.0, 2.0, np.nan, 4.0, 5.0, 7.0, 3.0, np.nan, 6.0, 8.0, 2.5, 9.0]
SKEWED = [0.0, 1.0, 0.0, 2.0, 1.0, 0.0, 3.0, 1.0, 0.0, 2.0, 1.0, 60.0]
YN = ["Yes", "No", "No", "Yes", None, "No", "No", "No", "Yes", "No", "No", "No"]
TF = ["t", "f", "f", "t", "t", "f", "t", "t", "f", "t", "t", "t"]
FLAG = [True, False, False, False, True, False, False, False, False, True, False, False]
CAT = ["a", "a", "b", "a", "b", "c", "a", None, "b", "a", "b", "a"]  # a:6 b:4 c:1 (rare) + 1 missing
CODE = [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 9, 1]  # int, forced categorical; 9 is rare
EMPTY = [np.nan] * 12


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "num": NUM,
            "skewed": SKEWED,
            "yn": pd.Series(YN, dtype=object),
            "tf": TF,
            "flag": pd.Series(FLAG, dtype=bool),
            "cat": pd.Series(CAT, dtype=object),
            "code": CODE,
            "empty": EMPTY,
        }
    )


def _fit(frame=None) -> TabularPreprocessor:
    return TabularPreprocessor(categorical_cols=["code"], min_category_count=MIN_COUNT).fit(_train() if frame is None else frame)


def _dense(pre: TabularPreprocessor, frame: pd.DataFrame, **kwargs) -> np.ndarray:
    """The one-hot view of the encoded rows: columns as ``pre.feature_names``."""
    return pre.transform(frame, **kwargs).one_hot(pre.cardinalities)


def _col(pre: TabularPreprocessor, out: np.ndarray, name: str) -> np.ndarray:
    return out[:, pre.feature_names.index(name)]


def _assert_rows_equal(a: EncodedRows, b: EncodedRows) -> None:
    assert a.n_numeric == b.n_numeric
    assert a.num.dtype == b.num.dtype == np.float32 and a.cat.dtype == b.cat.dtype == np.int64
    np.testing.assert_array_equal(a.num, b.num)
    np.testing.assert_array_equal(a.cat, b.cat)


def _numeric_expected(train_values, new_values, *, log: bool) -> np.ndarray:
    train_values = np.asarray(train_values, dtype=float)
    new_values = np.asarray(new_values, dtype=float)
    median = np.nanmedian(train_values)
    tr = np.where(np.isnan(train_values), median, train_values)
    nv = np.where(np.isnan(new_values), median, new_values)
    if log:
        tr, nv = np.log1p(tr), np.log1p(nv)
    scaler = StandardScaler().fit(tr[:, None])
    return scaler.transform(nv[:, None])[:, 0]


# --------------------------------------------------------------------------- fitting


def test_inferred_kinds_and_empty_column_left_out(caplog):
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        pre = _fit()
    assert pre.kinds == {
        "num": "numeric",
        "skewed": "numeric",
        "yn": "binary",
        "tf": "binary",
        "flag": "binary",
        "cat": "categorical",
        "code": "categorical",
    }
    assert pre.input_columns == ["num", "skewed", "yn", "tf", "flag", "cat", "code"]
    assert not any(name.startswith("empty") for name in pre.feature_names)
    assert any("empty" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_block_names_flags_and_category_codes():
    pre = _fit()
    assert pre.numeric_names == ["num", "skewed"]
    # flags in input-column order: a yes/no column, then its indicator; numeric columns' indicators too
    assert pre.flag_names == ["num__missing", "yn", "yn__missing", "tf", "flag"]
    assert pre.categorical_names == ["cat", "code"]
    # categorical columns get no indicator: missing is one of their codes
    assert not any(n.startswith(("cat__", "code__")) for n in pre.feature_names)
    # levels with count >= 3, then other, then missing
    cat_block = [n for n in pre.feature_names if n.startswith("cat=")]
    code_block = [n for n in pre.feature_names if n.startswith("code=")]
    assert sorted(cat_block[:-2]) == ["cat=a", "cat=b"] and cat_block[-2:] == ["cat=__other__", "cat=__missing__"]
    assert sorted(code_block[:-2]) == ["code=1", "code=2", "code=3"]
    assert code_block[-2:] == [f"code={OTHER_LEVEL}", f"code={MISSING_LEVEL}"]
    assert pre.cardinalities == [4, 5]
    assert pre.feature_names == pre.numeric_names + pre.flag_names + cat_block + code_block
    assert len(pre.feature_names) == len(set(pre.feature_names)) == 2 + 5 + 4 + 5
    assert pre.compact_columns == [("num", "numeric"), ("skewed", "numeric")] + [
        (n, "categorical") for n in pre.flag_names + ["cat", "code"]]


def _expected_codes(values, names_block, min_count=MIN_COUNT):
    """Codes by counting the training values here: a kept level's position in the names, else other / missing."""
    present = [str(v) for v in values if v is not None]
    kept = {v for v in present if present.count(v) >= min_count}
    levels = [n.split("=", 1)[1] for n in names_block]
    assert set(levels[:-2]) == kept
    return [levels.index(MISSING_LEVEL) if v is None else levels.index(str(v)) if str(v) in kept else levels.index(OTHER_LEVEL)
            for v in values]


def test_encoded_rows_hold_numerics_then_flags_and_integer_codes():
    pre = _fit()
    rows = pre.transform(_train())
    assert isinstance(rows, EncodedRows) and len(rows) == 12
    assert rows.n_numeric == 2
    assert rows.num.shape == (12, 7) and rows.num.dtype == np.float32
    assert rows.cat.shape == (12, 2) and rows.cat.dtype == np.int64
    np.testing.assert_allclose(rows.num[:, 0], _numeric_expected(NUM, NUM, log=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rows.num[:, 2], np.isnan(NUM))  # num__missing, the first flag
    names = pre.feature_names
    assert rows.cat[:, 0].tolist() == _expected_codes(CAT, [n for n in names if n.startswith("cat=")])
    assert rows.cat[:, 1].tolist() == _expected_codes(CODE, [n for n in names if n.startswith("code=")])
    # the missing 'cat' (row 7) has the last code; rare 'c' (row 5) and 9 (row 10) the one before
    assert rows.cat[7, 0] == 3 and rows.cat[5, 0] == 2 and rows.cat[10, 1] == 3
    assert (rows.cat >= 0).all() and (rows.cat < np.array(pre.cardinalities)).all()


def test_one_hot_and_native_views_of_the_rows():
    from sklearn.preprocessing import OneHotEncoder

    pre = _fit()
    rows = pre.transform(_train())
    encoder = OneHotEncoder(categories=[list(range(c)) for c in pre.cardinalities], sparse_output=False)
    expected = np.hstack([rows.num, encoder.fit_transform(rows.cat)])
    dense = rows.one_hot(pre.cardinalities)
    assert dense.dtype == np.float32 and dense.shape == (12, len(pre.feature_names))
    np.testing.assert_array_equal(dense, expected)
    native = rows.native()
    assert native.dtype == np.float32
    np.testing.assert_array_equal(native, np.hstack([rows.num, rows.cat.astype(np.float32)]))
    # take, slice and concat keep both blocks aligned
    picked = rows.take(np.array([5, 0, 7]))
    np.testing.assert_array_equal(picked.cat, rows.cat[[5, 0, 7]])
    np.testing.assert_array_equal(picked.num, rows.num[[5, 0, 7]])
    back = EncodedRows.concat([rows.slice(0, 4), rows.slice(4, 12)])
    _assert_rows_equal(back, rows)


def test_training_rows_are_transformed_by_hand_computation():
    pre = _fit()
    train = _train()
    out = _dense(pre, train)
    assert out.dtype == np.float32
    assert out.shape == (12, len(pre.feature_names))

    # numeric: the median fill and the standardisation use training statistics
    np.testing.assert_allclose(_col(pre, out, "num"), _numeric_expected(NUM, NUM, log=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_col(pre, out, "num__missing"), np.isnan(NUM).astype(np.float32))

    # skewed, non-negative: log1p before standardising
    assert skew(SKEWED, bias=False) > 2
    np.testing.assert_allclose(_col(pre, out, "skewed"), _numeric_expected(SKEWED, SKEWED, log=True), rtol=1e-5, atol=1e-5)

    # binary: 0/1, missing -> most frequent (No -> 0) plus an indicator
    np.testing.assert_array_equal(_col(pre, out, "yn"), [1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(_col(pre, out, "yn__missing"), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(_col(pre, out, "tf"), [1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(_col(pre, out, "flag"), np.array(FLAG, dtype=np.float32))

    # categorical: rare 'c' -> other; missing has its own code (not filled with the most frequent 'a')
    np.testing.assert_array_equal(_col(pre, out, "cat=a"), [1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(_col(pre, out, "cat=b"), [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=__other__"), [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=__missing__"), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    for level in (1, 2, 3):
        np.testing.assert_array_equal(_col(pre, out, f"code={level}"), (np.array(CODE) == level).astype(np.float32))
    np.testing.assert_array_equal(_col(pre, out, "code=__other__"), (np.array(CODE) == 9).astype(np.float32))
    np.testing.assert_array_equal(_col(pre, out, "code=__missing__"), np.zeros(12))


def test_negative_values_are_not_log_transformed():
    values = [-1.0, 0.0, 1.0, 0.0, 2.0, 1.0, 0.0, 3.0, 1.0, 0.0, 2.0, 60.0]
    assert skew(values, bias=False) > 2
    frame = pd.DataFrame({"v": values})
    pre = TabularPreprocessor().fit(frame)
    np.testing.assert_allclose(pre.transform(frame).num[:, 0], _numeric_expected(values, values, log=False), rtol=1e-5, atol=1e-5)


def test_new_rows_use_training_statistics_and_map_rare_and_unseen_to_other():
    pre = _fit()
    new = pd.DataFrame(
        {
            "num": [np.nan, 100.0, -3.0],
            "skewed": [np.nan, 5.0, 1000.0],
            "yn": ["no", " YES", None],
            "tf": ["F", "T", "t"],
            "flag": [False, True, False],
            "cat": ["c", "zzz", None],  # rare, unseen, missing
            "code": [9, 42, 2],  # rare, unseen, frequent
            "empty": [1.0, 2.0, 3.0],
        }
    )
    out = _dense(pre, new)
    assert out.shape == (3, len(pre.feature_names)) and out.dtype == np.float32
    np.testing.assert_allclose(_col(pre, out, "num"), _numeric_expected(NUM, new["num"], log=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_col(pre, out, "num__missing"), [1, 0, 0])
    np.testing.assert_allclose(_col(pre, out, "skewed"), _numeric_expected(SKEWED, new["skewed"], log=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_col(pre, out, "yn"), [0, 1, 0])
    np.testing.assert_array_equal(_col(pre, out, "yn__missing"), [0, 0, 1])
    np.testing.assert_array_equal(_col(pre, out, "tf"), [0, 1, 1])
    np.testing.assert_array_equal(_col(pre, out, "flag"), [0, 1, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=__other__"), [1, 1, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=a"), [0, 0, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=b"), [0, 0, 0])
    np.testing.assert_array_equal(_col(pre, out, "cat=__missing__"), [0, 0, 1])
    np.testing.assert_array_equal(_col(pre, out, "code=__other__"), [1, 1, 0])
    np.testing.assert_array_equal(_col(pre, out, "code=2"), [0, 0, 1])
    np.testing.assert_array_equal(_col(pre, out, "code=__missing__"), [0, 0, 0])
    # every categorical block is one-hot
    for prefix in ("cat=", "code="):
        block = out[:, [i for i, n in enumerate(pre.feature_names) if n.startswith(prefix)]]
        np.testing.assert_array_equal(block.sum(axis=1), [1, 1, 1])


def test_output_columns_follow_feature_names_order_whatever_the_frame_order():
    pre = _fit()
    train = _train()
    shuffled = train[list(reversed(train.columns))]
    _assert_rows_equal(pre.transform(shuffled), pre.transform(train))


def test_unknown_binary_token_becomes_missing_with_warning(caplog):
    pre = _fit()
    new = _train().iloc[:3].copy()
    new["yn"] = pd.Series(["maybe", "Yes", "No"], index=new.index, dtype=object)
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        out = _dense(pre, new)
    # most frequent training value is No -> 0
    np.testing.assert_array_equal(_col(pre, out, "yn"), [0, 1, 0])
    assert any("yn" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_non_numeric_string_in_numeric_column_is_imputed_with_warning(caplog):
    pre = _fit()
    new = _train().iloc[:3].copy()
    new["num"] = pd.Series(["3", "abc", " 4.5 "], index=new.index, dtype=object)
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        out = _dense(pre, new)
    np.testing.assert_allclose(_col(pre, out, "num"), _numeric_expected(NUM, [3.0, np.nan, 4.5], log=False), rtol=1e-5, atol=1e-5)
    assert any("num" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_unparsable_value_treated_as_missing_sets_the_missing_indicator():
    # "treated as missing": the value is imputed like a NaN, so its indicator must say missing too;
    # otherwise the model sees an imputed median flagged as measured, a combination never seen in training.
    pre = _fit()
    new = _train().iloc[:3].copy()
    new["num"] = pd.Series(["3", "abc", None], index=new.index, dtype=object)
    new["yn"] = pd.Series(["maybe", "Yes", None], index=new.index, dtype=object)
    out = _dense(pre, new)
    np.testing.assert_array_equal(_col(pre, out, "num__missing"), [0, 1, 1])
    np.testing.assert_array_equal(_col(pre, out, "yn__missing"), [1, 0, 1])


def test_fitted_on_train_only():
    pre = _fit()
    before = copy.deepcopy(pre.state_dict())
    train_out = pre.transform(_train())
    rng = np.random.default_rng(RND_SEED)
    other = pd.DataFrame(
        {
            "num": rng.normal(1000, 50, size=30),
            "skewed": rng.exponential(500, size=30),
            "yn": ["Yes"] * 30,
            "tf": ["t"] * 30,
            "flag": [True] * 30,
            "cat": ["q"] * 30,
            "code": [7] * 30,
            "empty": rng.normal(size=30),
        }
    )
    pre.transform(other)
    assert pre.state_dict() == before
    _assert_rows_equal(pre.transform(_train()), train_out)


def _assert_plain(value, where="state"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, (where, key)
            _assert_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_plain(item, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), (where, type(value))


def test_state_dict_is_plain_and_round_trips_through_json():
    pre = _fit()
    state = pre.state_dict()
    _assert_plain(state)
    assert state["version"] == 2
    restored = TabularPreprocessor.from_state_dict(json.loads(json.dumps(state)))
    assert restored.feature_names == pre.feature_names
    assert restored.cardinalities == pre.cardinalities
    assert restored.kinds == pre.kinds
    new = _train().copy()
    new.loc[0, "cat"] = "zzz"
    new.loc[1, "num"] = np.nan
    _assert_rows_equal(restored.transform(new), pre.transform(new))


@pytest.mark.parametrize("version", [1, None, 3])
def test_state_of_another_version_asks_to_retrain(version):
    state = _fit().state_dict()
    state["version"] = version
    with pytest.raises(UserError, match="retrain"):
        TabularPreprocessor.from_state_dict(state)


def test_missing_feature_columns_are_all_named():
    pre = _fit()
    with pytest.raises(UserError) as err:
        pre.transform(_train().drop(columns=["num", "cat"]), source="new.csv")
    msg = str(err.value)
    assert "num" in msg and "cat" in msg and "new.csv" in msg


def test_float_read_integer_categories_match_ints_and_strings():
    # An int column with a NaN arrives as float (3.0); its levels must read '3', matching 3 and '3' later.
    train = pd.DataFrame({"code": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, np.nan, 3.0]})
    pre = TabularPreprocessor(categorical_cols=["code"], min_category_count=2).fit(train)
    assert sorted(pre.feature_names) == sorted(["code=1", "code=2", "code=3", "code=__other__", "code=__missing__"])
    as_float = pre.transform(pd.DataFrame({"code": [3.0, 1.0, np.nan]}))
    as_int = pre.transform(pd.DataFrame({"code": pd.array([3, 1, None], dtype="Int64")}))
    as_str = pre.transform(pd.DataFrame({"code": pd.Series(["3", "1", None], dtype=object)}))
    _assert_rows_equal(as_int, as_float)
    _assert_rows_equal(as_str, as_float)
    dense = as_float.one_hot(pre.cardinalities)
    np.testing.assert_array_equal(_col(pre, dense, "code=3"), [1, 0, 0])
    np.testing.assert_array_equal(_col(pre, dense, "code=1"), [0, 1, 0])
    np.testing.assert_array_equal(_col(pre, dense, "code=__other__"), [0, 0, 0])
    np.testing.assert_array_equal(_col(pre, dense, "code=__missing__"), [0, 0, 1])


def test_compact_matrix_round_trips_through_the_original_column_space():
    pre = _fit()
    frame = _train()
    rows = pre.transform(frame)
    compact = rows.compact()
    assert compact.dtype == np.float64 and compact.shape == (len(frame), len(pre.compact_columns))
    names = [name for name, _ in pre.compact_columns]
    # [numerics | flags | codes]: the codes are the category columns, as integers
    np.testing.assert_array_equal(compact[:, names.index("cat")], rows.cat[:, 0])
    np.testing.assert_array_equal(compact[:, names.index("code")], rows.cat[:, 1])
    np.testing.assert_array_equal(compact[:, names.index("yn__missing")], _col(pre, _dense(pre, frame), "yn__missing"))
    for j, (name, kind) in enumerate(pre.compact_columns):
        if kind == "categorical":
            assert np.array_equal(compact[:, j], np.rint(compact[:, j])), name
    _assert_rows_equal(pre.from_compact(compact), rows)  # float32 -> float64 -> float32 is exact
    decoded = pre.decode(compact)
    assert list(decoded.columns) == pre.input_columns
    pd.testing.assert_frame_equal(pre.decode(rows), decoded)
    again = pre.transform(decoded)
    np.testing.assert_allclose(again.num, rows.num, atol=1e-5)
    np.testing.assert_array_equal(again.cat, rows.cat)
    # decoded categories are real levels (or the other bucket), never interpolated values; missing is NaN
    for spec in pre.state_dict()["columns"]:
        if spec["kind"] == "categorical":
            assert set(decoded[spec["name"]].dropna()) <= set(spec["levels"]) | {OTHER_LEVEL}
    assert decoded["cat"].isna().tolist() == [v is None for v in CAT]
    assert decoded["num"].isna().tolist() == np.isnan(NUM).tolist()


def test_from_compact_snaps_interpolated_flags_and_codes_to_valid_values():
    pre = _fit()
    rows = pre.transform(_train())
    compact = rows.compact()
    n_float = len(pre.numeric_names) + len(pre.flag_names)
    noisy = pre.from_compact(compact + 0.3)  # what a careless interpolation would produce
    np.testing.assert_allclose(noisy.num[:, :2], rows.num[:, :2] + 0.3, atol=1e-6)
    np.testing.assert_array_equal(noisy.num[:, 2:], rows.num[:, 2:])  # flags rounded back
    np.testing.assert_array_equal(noisy.cat, rows.cat)  # codes rounded back
    high, low = pre.from_compact(compact + 10.0), pre.from_compact(compact - 10.0)
    assert (high.num[:, 2:n_float] == 1).all() and (low.num[:, 2:n_float] == 0).all()
    np.testing.assert_array_equal(high.cat, np.tile(np.array(pre.cardinalities) - 1, (12, 1)))
    np.testing.assert_array_equal(low.cat, np.zeros((12, 2)))
    assert high.cat.dtype == np.int64 and high.num.dtype == np.float32


def test_chunked_transform_equals_one_pass():
    pre = _fit()
    frame = pd.concat([_train()] * 7, ignore_index=True)
    _assert_rows_equal(pre.transform(frame, chunk_rows=5), pre.transform(frame))


def test_fit_on_row_positions_equals_fit_on_a_copy_of_those_rows():
    frame = pd.concat([_train()] * 3, ignore_index=True)
    rows = np.array([0, 2, 3, 5, 8, 9, 12, 14, 15, 18, 20, 23, 25, 27, 30, 33, 35])
    on_positions = TabularPreprocessor(categorical_cols=["code"], min_category_count=MIN_COUNT).fit(frame, rows=rows)
    on_copy = _fit(frame.iloc[rows].reset_index(drop=True))
    assert on_positions.state_dict() == on_copy.state_dict()


def test_transform_in_a_given_row_order_picks_those_rows_into_one_set_of_blocks():
    pre = _fit()
    frame = pd.concat([_train()] * 5, ignore_index=True)
    order = np.random.default_rng(RND_SEED).permutation(len(frame))[:41]
    expected = pre.transform(frame.iloc[order].reset_index(drop=True))
    got = pre.transform(frame, order=order, chunk_rows=4)
    _assert_rows_equal(got, expected)
    # The split layout the trainer uses: train rows then validation rows, each a view.
    train, val = np.sort(order[:30]), np.sort(order[30:])
    both = pre.transform(frame, order=np.concatenate([train, val]), chunk_rows=7)
    _assert_rows_equal(both.slice(0, 30), pre.transform(frame.iloc[train]))
    _assert_rows_equal(both.slice(30, 41), pre.transform(frame.iloc[val]))


def test_encoding_into_dirty_blocks_overwrites_every_cell():
    # transform allocates its blocks with np.empty: every cell must be written, whatever was there.
    pre = _fit()
    frame = _train()
    num = np.full((len(frame), len(pre.numeric_names) + len(pre.flag_names)), 7.0, dtype=np.float32)
    cat = np.full((len(frame), len(pre.categorical_names)), 7, dtype=np.int64)
    pre._encode_into(frame, num, cat, source="test")
    rows = pre.transform(frame)
    np.testing.assert_array_equal(num, rows.num)
    np.testing.assert_array_equal(cat, rows.cat)
    assert not (cat == 7).any()


def test_fit_with_worker_threads_gives_the_same_state(caplog):
    frame = pd.concat([_train()] * 4, ignore_index=True)
    rows = np.arange(0, len(frame), 2)
    one = _fit(frame.iloc[rows].reset_index(drop=True))
    with caplog.at_level(logging.WARNING):
        threaded = TabularPreprocessor(categorical_cols=["code"], min_category_count=MIN_COUNT).fit(frame, rows=rows, workers=3)
    assert threaded.state_dict() == one.state_dict()
    assert "'empty' is empty" in caplog.text


# -- values a careless export produces ------------------------------------------------------------


def _typo_frame(n_typos: int, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    age = rng.normal(60, 10, n).round(1).astype(object)
    age[:n_typos] = ["12,5", ">300", "80+", "n/a?"][:n_typos] * (n_typos // 4) + ["12,5", ">300", "80+", "n/a?"][: n_typos % 4]
    return pd.DataFrame({"age": age})


def test_a_column_of_nearly_all_numbers_stays_numeric_and_its_typos_become_missing(caplog):
    frame = _typo_frame(4)  # 2% typos
    pre = TabularPreprocessor().fit(frame)
    assert pre.numeric_names == ["age"] and pre.flag_names == ["age__missing"] and not pre.categorical_names
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        rows = pre.transform(frame, source="cohort.csv")
    assert rows.num[:4, 1].tolist() == [1, 1, 1, 1] and not rows.num[4:, 1].any()
    message = next(r.getMessage() for r in caplog.records if "age" in r.getMessage())
    assert "cohort.csv: 4 value(s) of 'age' are not numbers" in message and "'12,5'" in message and "'>300'" in message


def test_a_column_with_more_than_five_percent_text_is_categorical():
    pre = TabularPreprocessor(min_category_count=1).fit(_typo_frame(20))  # 10% text
    assert pre.categorical_names == ["age"]


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e400", "-1e999"])
def test_infinite_and_overflowing_values_are_missing_in_training_and_prediction_alike(caplog, bad):
    values = [str(v) for v in np.linspace(1.0, 50.0, 40)]
    train = pd.DataFrame({"x": [*values, bad]})
    pre = TabularPreprocessor().fit(train)
    assert pre.numeric_names == ["x"] and "x__missing" in pre.flag_names  # the bad value counted as missing
    clean = TabularPreprocessor().fit(pd.DataFrame({"x": values}))
    assert pre.state_dict()["columns"][0]["median"] == clean.state_dict()["columns"][0]["median"]
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        as_text = pre.transform(pd.DataFrame({"x": [bad, "2.0"]}), source="new.csv")
        as_float = pre.transform(pd.DataFrame({"x": [float(bad), 2.0]}), source="new.csv")  # a parsed float column
    np.testing.assert_array_equal(as_text.num, as_float.num)
    assert np.isfinite(as_text.num).all() and as_text.num[:, 1].tolist() == [1.0, 0.0]
    missing_row = pre.transform(pd.DataFrame({"x": [np.nan]}))
    np.testing.assert_array_equal(as_text.num[0], missing_row.num[0])  # exactly like a missing value
    assert sum("infinite or too large" in r.getMessage() and "'x'" in r.getMessage() for r in caplog.records) == 2


def test_zero_one_number_columns_are_binary_flags_not_scaled_numbers():
    frame = pd.DataFrame({"htn": [0, 1, 0, 0, 1] * 20, "smoker": [0.0, 1.0, np.nan, 0.0, 0.0] * 20,
                          "count": [0, 1, 2, 0, 1] * 20})
    pre = TabularPreprocessor().fit(frame)
    assert pre.numeric_names == ["count"]
    assert pre.flag_names == ["htn", "smoker", "smoker__missing"]
    rows = pre.transform(frame)
    np.testing.assert_array_equal(rows.num[:5, 1], [0, 1, 0, 0, 1])  # raw 0/1: no log, no scaling
    np.testing.assert_array_equal(rows.num[:5, 2:], [[0, 0], [1, 0], [0, 1], [0, 0], [0, 0]])  # missing -> the common 0


def test_resampled_and_generated_rows_keep_zero_one_columns_zero_one():
    from imbalance.augmentation import augment_training_split

    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({"age": rng.normal(60, 10, n), "htn": rng.integers(0, 2, n), "bmi": rng.normal(27, 4, n)})
    y = (rng.random((n, 1)) < 0.1).astype(np.uint8)
    pre = TabularPreprocessor().fit(frame)
    assert pre.flag_names == ["htn"]
    real = pre.transform(frame)
    for how in ({"resample_method": "smotenc", "resample_ratio": 1.0}, {"generator": "gaussian_copula"}):
        out = augment_training_split(pre, real, frame, y, label_names=["y"], seed=0, **how)
        added = out.rows.num[out.synthetic]
        assert len(added) > 0 and set(np.unique(added[:, pre.flag_names.index("htn") + len(pre.numeric_names)])) <= {0.0, 1.0}
        assert set(np.unique(pre.decode(out.rows.take(np.flatnonzero(out.synthetic)))["htn"])) <= {0, 1}
