"""Reading the input table, resolving outcome columns, parsing outcomes, building the Table (imbalance/data.py).

Expected values are written out by hand (or built with plain pandas/numpy) in each test.
"""

import logging
import re

import numpy as np
import pandas as pd
import pytest

from imbalance.data import build_table, load_table, parse_outcome, read_table, resolve_targets
from imbalance.demo import make_demo_cohort
from imbalance.errors import UserError

RND_SEED = 20240612


def _write(path, text: str):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- read_table


def test_csv_missing_tokens_are_read_as_nan(tmp_path):
    path = _write(
        tmp_path / "miss.csv",
        "x,y,z\n"
        "1,,a\n"
        "2,NA,b\n"
        "3,N/A,c\n"
        "4,?,d\n"
        "5,null,e\n"
        "6,7.5,?\n",
    )
    frame = read_table(path)
    assert list(frame.columns) == ["x", "y", "z"]
    assert frame.shape == (6, 3)
    assert frame["x"].tolist() == [1, 2, 3, 4, 5, 6]
    # y: the five missing tokens are NaN, the last value is a number (the column is numeric)
    assert frame["y"].isna().tolist() == [True, True, True, True, True, False]
    assert pd.api.types.is_numeric_dtype(frame["y"])
    assert frame["y"].iloc[5] == 7.5
    # z: '?' is missing in a string column too
    assert frame["z"].isna().tolist() == [False] * 5 + [True]
    assert frame["z"].iloc[:5].tolist() == ["a", "b", "c", "d", "e"]


def test_csv_header_whitespace_is_stripped(tmp_path):
    path = _write(tmp_path / "ws.csv", " a , b\n1,2\n")
    assert list(read_table(path).columns) == ["a", "b"]


def test_parquet_is_read(tmp_path):
    rng = np.random.default_rng(RND_SEED)
    expected = pd.DataFrame(
        {
            "num": rng.normal(size=8),
            "cat": list("abcdabcd"),
            "label_x": [0, 1, 0, 0, 1, 0, 0, 0],
        }
    )
    expected.loc[3, "num"] = np.nan
    path = tmp_path / "table.parquet"
    expected.to_parquet(path, index=False)
    frame = read_table(path)
    assert list(frame.columns) == ["num", "cat", "label_x"]
    assert frame.shape == (8, 3)
    np.testing.assert_allclose(frame["num"].to_numpy(dtype=float), expected["num"].to_numpy(), equal_nan=True)
    assert frame["cat"].tolist() == list("abcdabcd")
    assert frame["label_x"].tolist() == [0, 1, 0, 0, 1, 0, 0, 0]


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "absent.csv"
    with pytest.raises(UserError) as err:
        read_table(path)
    assert "absent.csv" in str(err.value)


def test_empty_file_names_the_file(tmp_path):
    path = _write(tmp_path / "empty_input.csv", "")
    with pytest.raises(UserError) as err:
        read_table(path)
    assert "empty_input.csv" in str(err.value)


def test_header_only_file_names_the_file(tmp_path):
    path = _write(tmp_path / "header_only.csv", "a,b,label_y\n")
    with pytest.raises(UserError) as err:
        read_table(path)
    assert "header_only.csv" in str(err.value)


def test_duplicated_column_names_name_the_file_and_column(tmp_path):
    # pandas silently renames a repeated CSV header to 'a.1'; the reader must still refuse it.
    path = _write(tmp_path / "dups.csv", "a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(UserError) as err:
        read_table(path)
    assert "dups.csv" in str(err.value)
    assert "a" in str(err.value)


def test_duplicated_column_names_after_stripping_spaces(tmp_path):
    path = _write(tmp_path / "dups_ws.csv", "age ,b,age\n1,2,3\n4,5,6\n")
    with pytest.raises(UserError) as err:
        read_table(path)
    assert "dups_ws.csv" in str(err.value)
    assert "age" in str(err.value)


# --------------------------------------------------------------------------- resolve_targets


def test_resolve_targets_explicit_names_in_given_order():
    cols = ["id", "age", "label_a", "outcome", "label_b"]
    assert resolve_targets(cols, ["outcome", "label_b"], "f.csv") == ["outcome", "label_b"]


def test_resolve_targets_defaults_to_label_columns_in_file_order():
    cols = ["label_z", "age", "label_a", "sex", "label_m", "labels"]
    assert resolve_targets(cols, [], "f.csv") == ["label_z", "label_a", "label_m"]


def test_resolve_targets_none_found_mentions_flag():
    with pytest.raises(UserError) as err:
        resolve_targets(["age", "sex", "outcome"], [], "f.csv")
    assert "--target_cols" in str(err.value)


def test_resolve_targets_unknown_names_are_named():
    with pytest.raises(UserError) as err:
        resolve_targets(["age", "label_a"], ["label_a", "died_30d", "readmit"], "f.csv")
    msg = str(err.value)
    assert "died_30d" in msg and "readmit" in msg


# --------------------------------------------------------------------------- parse_outcome


def _assert_same(actual, expected):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(actual[~np.isnan(actual)], expected[~np.isnan(expected)])


@pytest.mark.parametrize(
    "values, expected",
    [
        (pd.Series([0, 1, 1, 0]), [0, 1, 1, 0]),
        (pd.Series([0.0, 1.0, np.nan, 1.0]), [0, 1, np.nan, 1]),
        (pd.Series([True, False, True]), [1, 0, 1]),
        (pd.Series([True, None, False], dtype=object), [1, np.nan, 0]),
        (pd.Series(["yes", "no", "YES", " No "]), [1, 0, 1, 0]),
        (pd.Series(["true", "False", " TRUE", "false "]), [1, 0, 1, 0]),
        (pd.Series(["t", "F", "T", "f"]), [1, 0, 1, 0]),
        (pd.Series(["Y", "n", "y", " N"]), [1, 0, 1, 0]),
        (pd.Series(["1", "0", None, "yes"], dtype=object), [1, 0, np.nan, 1]),
        (pd.Series([1, None, 0], dtype="Int64"), [1, np.nan, 0]),
    ],
)
def test_parse_outcome_accepts_binary_spellings(values, expected):
    _assert_same(parse_outcome(values, "label_x", "f.csv"), expected)


@pytest.mark.parametrize(
    "values, offending",
    [
        (pd.Series([0, 1, 2, 1]), "2"),
        (pd.Series([0.0, 0.5, 1.0]), "0.5"),
        (pd.Series(["yes", "maybe", "no"]), "maybe"),
    ],
)
def test_parse_outcome_rejects_other_values_naming_column_and_value(values, offending):
    with pytest.raises(UserError) as err:
        parse_outcome(values, "label_weird", "f.csv")
    msg = str(err.value)
    assert "label_weird" in msg
    assert offending in msg


# --------------------------------------------------------------------------- build_table


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": ["p0", "p1", "p2", "p3", "p4", "p5"],
            "age": [50, 61, 72, 43, 38, 80],
            "site": ["x", "y", "x", "z", "y", "x"],
            "notes": ["a", "b", "c", "d", "e", "f"],
            "label_a": [0, 1, np.nan, 0, 1, 0],
            "label_b": ["no", "yes", "no", None, "no", "yes"],
        }
    )


def test_build_table_drops_rows_with_missing_outcome_and_warns_count(caplog):
    frame = _frame()
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        table = build_table(frame, source="f.csv", id_col="pid", drop_cols=["notes"])
    # rows 2 (label_a missing) and 3 (label_b missing) are gone
    assert table.label_names == ["label_a", "label_b"]
    assert table.labels.tolist() == [[0, 0], [1, 1], [1, 0], [0, 1]]
    assert table.labels.dtype == np.uint8
    assert list(table.features.columns) == ["age", "site"]
    assert table.features["age"].tolist() == [50, 61, 38, 80]
    assert table.features.index.tolist() == [0, 1, 4, 5]
    assert table.ids is not None
    assert table.ids.tolist() == ["p0", "p1", "p4", "p5"]
    assert table.ids.index.tolist() == table.features.index.tolist()
    assert table.id_col == "pid"
    assert table.is_multilabel
    dropped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert re.search(r"\b2\b", dropped[0].split("rows")[0]), dropped[0]


def test_build_table_explicit_targets_and_no_id():
    frame = _frame()
    table = build_table(frame, source="f.csv", target_cols=["label_a"], drop_cols=["pid", "notes", "label_b"])
    assert table.label_names == ["label_a"]
    assert table.labels[:, 0].tolist() == [0, 1, 0, 1, 0]
    assert list(table.features.columns) == ["age", "site"]
    assert table.ids is None
    assert not table.is_multilabel


@pytest.mark.parametrize("kwargs, name", [({"id_col": "patient"}, "patient"), ({"drop_cols": ["age", "zip_code"]}, "zip_code")])
def test_build_table_unknown_id_or_drop_columns(kwargs, name):
    with pytest.raises(UserError) as err:
        build_table(_frame(), source="f.csv", **kwargs)
    assert name in str(err.value)


def test_build_table_warns_about_identifier_like_column(caplog):
    rng = np.random.default_rng(RND_SEED)
    n = 150
    frame = pd.DataFrame(
        {
            "record_code": [f"R{i:05d}" for i in rng.permutation(n)],
            "age": rng.integers(30, 40, size=n),  # repeats: not identifier-like
            "label_a": (rng.random(n) < 0.2).astype(int),
        }
    )
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        build_table(frame, source="f.csv")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("record_code" in m for m in warned)
    assert not any("'age'" in m for m in warned)


def test_build_table_no_identifier_warning_once_it_is_the_id(caplog):
    n = 150
    frame = pd.DataFrame({"record_code": [f"R{i}" for i in range(n)], "age": [30 + i % 7 for i in range(n)], "label_a": [i % 5 == 0 for i in range(n)]})
    with caplog.at_level(logging.WARNING, logger="imbalance"):
        build_table(frame, source="f.csv", id_col="record_code")
    assert not any("record_code" in r.getMessage() for r in caplog.records)


def test_load_table_demo_cohort():
    table = load_table(None, demo_rows=1000)
    expected = make_demo_cohort(n_rows=1000, seed=0)
    labels = [c for c in expected.columns if c.startswith("label_")]
    assert len(labels) == 5
    assert table.label_names == labels
    assert table.id_col == "patient_id"
    assert table.labels.shape == (1000, 5)
    np.testing.assert_array_equal(table.labels, expected[labels].to_numpy())
    assert table.ids.tolist() == expected["patient_id"].tolist()
    assert "patient_id" not in table.features.columns
    assert not any(c.startswith("label_") for c in table.features.columns)
    assert len(table.features.columns) == expected.shape[1] - 6
    assert len(table.features) == 1000


# --------------------------------------------------------------------------- large inputs


def _mixed_frame(n=2_500, seed=RND_SEED):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(10**12, 10**12 + n),  # beyond float32 precision: must stay exact
        "age": rng.normal(60, 10, n).round(3),
        "count": rng.integers(0, 50, n),
        "smoker": rng.choice(["yes", "no"], n),
        "site": rng.choice(["north", "south", "east"], n),
        "lab": rng.lognormal(0, 1, n),
        "label_y": (rng.random(n) < 0.05).astype(int),
    })
    frame.loc[rng.choice(n, 40, replace=False), "lab"] = np.nan
    frame.loc[rng.choice(n, 30, replace=False), "site"] = None
    return frame


@pytest.mark.parametrize("chunk_rows", [1, 333, 10_000])
def test_large_csv_read_in_chunks_equals_a_whole_file_read(tmp_path, monkeypatch, chunk_rows):
    import imbalance.data as data

    path = tmp_path / "big.csv"
    _mixed_frame().to_csv(path, index=False)
    whole = read_table(path)  # small file: one pandas read
    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", chunk_rows * 7)  # 7 columns
    chunked = read_table(path, progress=True)
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked["age"].dtype == np.float32 and chunked["lab"].dtype == np.float32
    assert chunked["id"].dtype == np.int64 and chunked["count"].dtype == np.int64


def test_floats_are_float32_except_exact_columns(tmp_path):
    frame = _mixed_frame()
    frame["code"] = np.where(np.arange(len(frame)) % 7 == 0, np.nan, 16_777_217.0)  # 2**24 + 1: not a float32
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    got = read_table(path, exact_cols=["code"])
    assert got["age"].dtype == np.float32
    assert got["code"].dtype == np.float64 and got["code"].max() == 16_777_217.0
    np.testing.assert_allclose(got["age"].to_numpy(), frame["age"].to_numpy(), rtol=1e-6)


def test_chunked_csv_keeps_a_column_with_text_in_a_later_chunk_as_text(tmp_path, monkeypatch):
    import imbalance.data as data

    lines = ["x,y,label_y"] + [f"{i}.5,{i},0" for i in range(50)] + ["unknown,7,1", "3.25,8,0"]
    path = _write(tmp_path / "dirty.csv", "\n".join(lines) + "\n")
    whole = read_table(path)
    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", 20 * 3)  # 20 rows of 3 columns
    chunked = read_table(path)
    assert not pd.api.types.is_numeric_dtype(chunked["x"])  # as in a whole-file read
    assert not pd.api.types.is_numeric_dtype(whole["x"])
    assert chunked["x"].iloc[50] == "unknown"
    # Numbers read as numbers in early chunks parse back to the same values as the whole read's text.
    np.testing.assert_allclose(pd.to_numeric(chunked["x"].astype(str), errors="coerce").to_numpy(dtype=float),
                               pd.to_numeric(whole["x"], errors="coerce").to_numpy(dtype=float), equal_nan=True)
    assert chunked["y"].tolist() == whole["y"].tolist()


def test_chunked_csv_header_only_and_duplicates_give_the_usual_errors(tmp_path, monkeypatch):
    import imbalance.data as data

    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    with pytest.raises(UserError, match="no data rows"):
        read_table(_write(tmp_path / "header_only.csv", "a,b,label_y\n"))
    with pytest.raises(UserError, match="duplicated column name"):
        read_table(_write(tmp_path / "dups.csv", "a,b,a\n1,2,3\n"))


def test_parquet_with_many_row_groups_is_read_whole(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _mixed_frame()
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=300)
    assert pq.ParquetFile(path).metadata.num_row_groups == 9
    got = read_table(path, progress=True)
    assert got.shape == frame.shape and list(got.columns) == list(frame.columns)
    assert got["id"].tolist() == frame["id"].tolist()
    np.testing.assert_allclose(got["lab"].to_numpy(dtype=float), frame["lab"].to_numpy(), rtol=1e-6, equal_nan=True)
    assert got["lab"].dtype == np.float32
    assert got["site"].fillna("?").tolist() == frame["site"].fillna("?").tolist()


def test_release_features_keeps_names_index_and_labels():
    table = build_table(_mixed_frame(), source="t", id_col="id")
    index = table.features.index
    table.release_features()
    assert len(table.features) == 0 and "age" in table.features.columns
    assert table.row_index.equals(index)
    assert len(table.labels) == len(index)


def test_chunked_csv_keeps_an_exact_column_with_gaps_in_float64(tmp_path, monkeypatch):
    import imbalance.data as data

    frame = _mixed_frame(n=600)
    frame["id"] = frame["id"].astype(float)
    frame.loc[::50, "id"] = np.nan  # an id column with gaps reads as float
    path = tmp_path / "ids.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", 100 * 7)
    got = read_table(path, exact_cols=["id"])
    assert got["id"].dtype == np.float64
    np.testing.assert_array_equal(got["id"].to_numpy(), frame["id"].to_numpy())
    assert read_table(path)["id"].dtype == np.float32  # without the flag it is a feature like any other


@pytest.mark.parametrize("newline", ["\r", "\r\n"])
def test_chunked_csv_with_other_line_endings_equals_a_whole_read(tmp_path, monkeypatch, newline):
    import imbalance.data as data

    frame = _mixed_frame(n=400)
    path = tmp_path / "endings.csv"
    path.write_bytes(frame.to_csv(index=False, lineterminator=newline).encode())
    whole = read_table(path)
    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", 70 * 7)
    pd.testing.assert_frame_equal(read_table(path), whole)


def test_chunked_csv_with_quoted_newlines_and_blank_lines(tmp_path, monkeypatch):
    import imbalance.data as data

    lines = ["x,note,label_y"] + [f'{i / 4},"line one\nline two",{i % 2}' if i % 5 == 0 else f"{i / 4},plain,{i % 2}"
                                  for i in range(60)] + ["", ""]
    path = _write(tmp_path / "quoted.csv", "\n".join(lines) + "\n")
    whole = read_table(path)
    monkeypatch.setattr(data, "LARGE_CSV_BYTES", 0)
    monkeypatch.setattr(data, "CSV_CHUNK_CELLS", 7 * 3)
    chunked = read_table(path)
    pd.testing.assert_frame_equal(chunked, whole)
    assert len(chunked) == 60 and chunked["note"].iloc[0] == "line one\nline two"


def test_parquet_float64_columns_become_float32_except_exact_ones(tmp_path):
    frame = _mixed_frame(n=500)
    frame["code"] = 16_777_217.0  # 2**24 + 1: not representable in float32
    path = tmp_path / "f64.parquet"
    frame.to_parquet(path, index=False)
    got = read_table(path, exact_cols=["code"])
    assert got["age"].dtype == np.float32 and got["lab"].dtype == np.float32
    assert got["code"].dtype == np.float64 and (got["code"] == 16_777_217.0).all()
    assert got["count"].dtype == np.int64 and got["id"].tolist() == frame["id"].tolist()
