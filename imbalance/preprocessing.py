"""Feature preprocessing fitted on the training split, stored as plain data in checkpoints.

Each input column becomes one of three kinds, inferred from the training rows:

- numeric: at least 95% of the present training values parse as numbers (``NUMERIC_SHARE``).
  The rest (typos such as ``12,5``, ``>300``, ``80+``) and infinite or overflowing values
  (``inf``, ``1e400``) count as missing, with a warning naming the column, the count and a few
  examples; the same holds for validation, test and prediction rows. Missing -> training median;
  a non-negative column with skewness above 2 is log1p-transformed; then standardised with the
  training mean and standard deviation.
- binary: 0/1 numbers (integers, or floats beside missing values), two-level yes/no,
  true/false, t/f, y/n, or a boolean column -> 0/1. Missing -> the most frequent value. Not
  log-transformed, not standardised; resampled and generated rows keep them 0/1.
- categorical: anything else, or listed in ``--categorical_cols``. An integer code per level
  seen at least ``min_category_count`` times in training, then one code for rare and unseen
  levels (``other``) and one for missing values.

A numeric or binary column with missing values in the training split also gets a
``<col>__missing`` 0/1 indicator, so that "not measured" stays visible to the model after
imputation.

The result is :class:`EncodedRows`: a float32 block (numerics, then the 0/1 flags) and an int64
block of category codes. Models embed or one-hot the codes themselves; the cardinalities are
:attr:`TabularPreprocessor.cardinalities`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .data import FALSE_TOKENS, TRUE_TOKENS
from .errors import UserError

__all__ = ["TabularPreprocessor", "EncodedRows", "OTHER_LEVEL", "MISSING_LEVEL"]

logger = logging.getLogger(__name__)

OTHER_LEVEL = "__other__"
MISSING_LEVEL = "__missing__"
STATE_VERSION = 2  # 2: categorical missing values have their own code (no indicator); blocks num / flags / codes
# Non-negative numeric columns skewed beyond this (lab values such as TSH, counts) are log1p'd
# before standardising: a few huge values would otherwise squash everyone else near zero.
SKEW_LIMIT = 2.0
# A text column stays numeric when at least this share of its present training values are numbers.
NUMERIC_SHARE = 0.95


def _category_strings(series: pd.Series) -> pd.Series:
    """Values as category strings; 3.0 and 3 both become '3' (CSV ints turn float beside NaN)."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(values) & (np.floor(values) == values)
        text = series.astype("string")
        text[whole] = pd.Series(values[whole].astype(np.int64), index=series.index[whole]).astype("string")
        return text.str.strip()
    return series.astype("string").str.strip()


def _as_binary(series: pd.Series) -> pd.Series:
    """yes/no-style values -> 1.0/0.0, unknown tokens -> NaN (float Series)."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series):  # 0/1 numbers; anything else (2, inf) is not a flag value
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(np.where((values == 0.0) | (values == 1.0), values, np.nan), index=series.index)
    text = _category_strings(series).str.lower()
    out = pd.Series(np.nan, index=series.index, dtype="float64")
    out[text.isin(TRUE_TOKENS).fillna(False).to_numpy(dtype=bool)] = 1.0
    out[text.isin(FALSE_TOKENS).fillna(False).to_numpy(dtype=bool)] = 0.0
    return out


def _numeric(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    failed = (values.isna() & text.notna()).to_numpy()
    if failed.any():  # an overflow ("1e400") is a number too large, +-inf, whatever pandas' parser says
        values[failed] = [_overflow(v) for v in text[failed]]
    return values


def _overflow(text: str) -> float:
    """+-inf for text that is a number too large for float64, else NaN."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isinf(value) else math.nan


def _plain_numeric(series: pd.Series) -> bool:
    """A numpy int or float column (no text to parse, no pandas extension type)."""
    return isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf"


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    """Median for imputation, whether to log1p, and the standardisation mean / std (numpy, one column).

    The skewness is the adjusted Fisher-Pearson coefficient (pandas' ``Series.skew``).
    """
    missing = np.isnan(values)
    median = float(np.median(values[~missing]))
    filled = np.where(missing, median, values) if missing.any() else values
    log = bool(filled.min() >= 0 and _sample_skew(filled) > SKEW_LIMIT)
    if log:
        filled = np.log1p(filled)
    mean = float(filled.mean())
    std = float(np.sqrt(np.mean(np.square(filled - mean))))
    return {"median": median, "log": log, "mean": mean, "std": std if std > 0 else 1.0}


def _sample_skew(x: np.ndarray) -> float:
    n = x.size
    if n < 3:
        return float("nan")
    centred = x - x.mean()
    m2 = float(np.dot(centred, centred))
    if m2 <= 1e-14 * max(1.0, float(np.dot(x, x))):  # constant up to rounding
        return 0.0
    m3 = float(np.dot(centred * centred, centred))
    return n * (n - 1) ** 0.5 / (n - 2) * m3 / m2**1.5


def _infer_kind(series: pd.Series) -> str:
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "binary"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if len(present) and _numeric(present).notna().mean() >= NUMERIC_SHARE:
        return "numeric"
    levels = set(_category_strings(present).str.lower().unique())
    if levels and levels <= (TRUE_TOKENS | FALSE_TOKENS) and len(levels) <= 2:
        return "binary"
    return "categorical"


def _is_zero_one(values: np.ndarray) -> bool:
    """Every present value is 0 or 1 (a numeric column that is really a flag)."""
    present = values[~np.isnan(values)]
    return present.size > 0 and bool(np.all((present == 0.0) | (present == 1.0)))


def _examples(series: pd.Series, mask: np.ndarray, limit: int = 3) -> str:
    shown = pd.unique(series[mask].astype(str))
    return ", ".join(repr(v) for v in shown[:limit]) + (", ..." if len(shown) > limit else "")


def _numbers(series: pd.Series, name: str, source: Optional[str]) -> np.ndarray:
    """A numeric column's values as float64, with what is not a finite number (text that does not
    parse, inf, -inf, overflow) as NaN, and one warning per kind naming the column and the count
    (none when ``source`` is None: fitting, whose rows are encoded, and warned about, next)."""
    if _plain_numeric(series):  # numpy only: the hot path on large tables
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = _numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
        unparsed = np.isnan(values) & ~series.isna().to_numpy()
        if unparsed.any() and source is not None:
            logger.warning("%s: %d value(s) of '%s' are not numbers and are treated as missing (e.g. %s)",
                           source, int(unparsed.sum()), name, _examples(series, unparsed))
    infinite = np.isinf(values)
    if infinite.any():
        if source is not None:
            logger.warning("%s: %d value(s) of '%s' are infinite or too large for a number (e.g. %s) and are treated as missing",
                           source, int(infinite.sum()), name, _examples(series, infinite))
        values = np.where(infinite, np.nan, values)
    return values


@dataclass
class EncodedRows:
    """Rows in the toolkit's one encoding, made once per run by :meth:`TabularPreprocessor.transform`.

    ``num`` (n, n_numeric + n_flags) float32: the standardised numeric columns first, then the
    0/1 flags (yes/no features and missing indicators); ``cat`` (n, n_categorical) int64: one code
    per categorical column, in [0, cardinality). Models, resamplers, generators' quality checks,
    baselines and checkpoints all read these blocks; :meth:`compact` lays them side by side as one
    float64 matrix for the libraries that want one (imbalanced-learn, nearest neighbours).
    """

    num: np.ndarray
    cat: np.ndarray
    n_numeric: int

    def __len__(self) -> int:
        return self.num.shape[0]

    def take(self, rows: np.ndarray) -> "EncodedRows":
        return EncodedRows(num=self.num[rows], cat=self.cat[rows], n_numeric=self.n_numeric)

    def slice(self, start: int, stop: int) -> "EncodedRows":
        """Rows ``start:stop`` as views (no copy)."""
        return EncodedRows(num=self.num[start:stop], cat=self.cat[start:stop], n_numeric=self.n_numeric)

    @staticmethod
    def concat(parts: Sequence["EncodedRows"]) -> "EncodedRows":
        return EncodedRows(num=np.concatenate([p.num for p in parts]), cat=np.concatenate([p.cat for p in parts]),
                           n_numeric=parts[0].n_numeric)

    def compact(self) -> np.ndarray:
        """(n, n_numeric + n_flags + n_categorical) float64: [numerics | flags | codes]."""
        return np.hstack([self.num.astype(np.float64), self.cat.astype(np.float64)])

    def one_hot(self, cardinalities: Sequence[int]) -> np.ndarray:
        """(n, n_float + sum(cardinalities)) float32: the float block, then every code one-hot
        (columns as :attr:`TabularPreprocessor.feature_names`), for learners that need one matrix."""
        out = np.zeros((len(self), self.num.shape[1] + int(sum(cardinalities))), dtype=np.float32)
        out[:, : self.num.shape[1]] = self.num
        offset = self.num.shape[1]
        for j, width in enumerate(cardinalities):
            out[np.arange(len(self)), offset + self.cat[:, j]] = 1.0
            offset += width
        return out

    def native(self) -> np.ndarray:
        """(n, c) float32 with the codes as numbers: for learners that take categorical columns
        natively (HistGradientBoosting's ``categorical_features``)."""
        return np.hstack([self.num, self.cat.astype(np.float32)])


# What transform() reads of each column's fitted state, by kind.
_SPEC_KEYS = {
    "numeric": ("name", "indicator", "median", "log", "mean", "std"),
    "binary": ("name", "indicator", "fill"),
    "categorical": ("name", "indicator", "levels"),
}


class TabularPreprocessor:
    """Fit on training rows with :meth:`fit`, then :meth:`transform` any rows to float32."""

    def __init__(self, *, categorical_cols: Sequence[str] = (), min_category_count: int = 10) -> None:
        self.categorical_cols = list(categorical_cols)
        self.min_category_count = int(min_category_count)
        self.columns_: Optional[list[dict[str, Any]]] = None

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, *, rows: Optional[np.ndarray] = None, workers: int = 1) -> "TabularPreprocessor":
        """Learn each column's kind and statistics from ``frame`` (only its ``rows`` positions when given).

        Taking the rows one column at a time keeps the extra memory to one column (per worker),
        not a copy of the training rows. ``workers`` > 1 fits that many columns at once in
        threads (numpy's sorts and reductions release the GIL); the result is the same.
        """
        unknown = [c for c in self.categorical_cols if c not in frame.columns]
        if unknown:
            raise UserError(f"--categorical_cols names column(s) {', '.join(unknown)} that are not feature columns")

        def fit_one(name: Any) -> Optional[dict[str, Any]]:
            return self._fit_column(str(name), frame[name] if rows is None else frame[name].take(rows))

        if workers > 1 and len(frame.columns) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fit") as pool:
                fitted = list(pool.map(fit_one, frame.columns))
        else:
            fitted = [fit_one(name) for name in frame.columns]
        specs = [spec for spec in fitted if spec is not None]
        if not specs:
            raise UserError("no usable feature columns: every feature is empty in the training split")
        self.columns_ = specs
        return self

    def _fit_column(self, name: str, series: pd.Series) -> Optional[dict[str, Any]]:
        """One column's spec, or None (with a warning) when it is empty in the training rows."""
        n_missing = int(series.isna().sum())
        if n_missing == len(series):
            logger.warning("feature '%s' is empty in the training split and is left out", name)
            return None
        if name in self.categorical_cols:
            kind = "categorical"
        elif _plain_numeric(series):
            kind = "numeric"
        else:
            kind = _infer_kind(series)
        values = None
        if kind == "numeric":
            values = _numbers(series, name, None)
            n_missing = int(np.isnan(values).sum())
            if n_missing == len(values):
                logger.warning("feature '%s' has no finite number in the training split and is left out", name)
                return None
            if _is_zero_one(values):
                kind = "binary"
        # A categorical column's missing values get their own code instead of an indicator.
        spec: dict[str, Any] = {"name": name, "kind": kind, "indicator": n_missing > 0 and kind != "categorical"}
        if kind == "numeric":
            spec.update(_numeric_stats(values))
        elif kind == "binary" and values is not None:  # 0/1 numbers: missing -> the more frequent value
            spec.update(fill=float(np.nanmean(values) > 0.5))
        elif kind == "binary":
            values = _as_binary(series)
            spec.update(fill=float(values.mode().iloc[0]))
        else:
            text = _category_strings(series)
            counts = text.value_counts()
            spec.update(levels=[str(level) for level, count in counts.items() if count >= self.min_category_count])
        return spec

    # -- the fitted state as plain data -------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        return [spec["name"] for spec in self._fitted()]

    @property
    def kinds(self) -> dict[str, str]:
        return {spec["name"]: spec["kind"] for spec in self._fitted()}

    @property
    def numeric_names(self) -> list[str]:
        """The standardised numeric columns: the first block of :attr:`EncodedRows.num`."""
        return [spec["name"] for spec in self._fitted() if spec["kind"] == "numeric"]

    @property
    def flag_names(self) -> list[str]:
        """The 0/1 columns after them: yes/no features and ``<col>__missing`` indicators."""
        names = []
        for spec in self._fitted():
            if spec["kind"] == "binary":
                names.append(spec["name"])
            if spec["indicator"]:
                names.append(f"{spec['name']}__missing")
        return names

    @property
    def categorical_names(self) -> list[str]:
        return [spec["name"] for spec in self._fitted() if spec["kind"] == "categorical"]

    @property
    def cardinalities(self) -> list[int]:
        """Codes per categorical column: its kept levels, then ``other`` (rare or unseen), then missing."""
        return [len(spec["levels"]) + 2 for spec in self._fitted() if spec["kind"] == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        """Columns of :meth:`EncodedRows.one_hot`: numerics, flags, then one column per category code."""
        names = self.numeric_names + self.flag_names
        for spec in self._fitted():
            if spec["kind"] == "categorical":
                names += [f"{spec['name']}={level}" for level in _code_names(spec)]
        return names

    @property
    def compact_columns(self) -> list[tuple[str, str]]:
        """(name, kind) of each column of :meth:`EncodedRows.compact`; kind is 'numeric' or
        'categorical' (a flag or a category code: values a resampler must keep valid)."""
        return ([(n, "numeric") for n in self.numeric_names] + [(n, "categorical") for n in self.flag_names]
                + [(n, "categorical") for n in self.categorical_names])

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "categorical_cols": list(self.categorical_cols),
            "min_category_count": self.min_category_count,
            "columns": [dict(spec) for spec in self._fitted()],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "TabularPreprocessor":
        if state.get("version") != STATE_VERSION:
            raise UserError(f"preprocessing state version {state.get('version')} is not supported (expected {STATE_VERSION}); "
                            "retrain the model with this version of the toolkit")
        pre = cls(categorical_cols=state["categorical_cols"], min_category_count=state["min_category_count"])
        pre.columns_ = [dict(spec) for spec in state["columns"]]
        for spec in pre.columns_:
            needed = _SPEC_KEYS.get(spec.get("kind"))
            if needed is None or not isinstance(spec.get("name"), str) or any(k not in spec for k in needed):
                raise ValueError(f"column {spec.get('name')!r} of kind {spec.get('kind')!r} lacks {sorted(set(needed or []) - set(spec))}")
            if spec["kind"] == "numeric" and not (np.isfinite(spec["mean"]) and np.isfinite(spec["std"]) and spec["std"] > 0):
                raise ValueError(f"column {spec['name']!r} has mean {spec['mean']} and scale {spec['std']}")
        return pre

    def _fitted(self) -> list[dict[str, Any]]:
        if self.columns_ is None:
            raise RuntimeError("TabularPreprocessor is not fitted; call fit() first")
        return self.columns_

    # -- transforming -------------------------------------------------------------------------
    def transform(
        self, frame: pd.DataFrame, *, source: str = "input", order: Optional[np.ndarray] = None, chunk_rows: int = 1 << 16,
    ) -> EncodedRows:
        """Rows -> :class:`EncodedRows`: the one encoding every consumer uses.

        ``order`` (row positions) picks and orders the rows: output row i is ``frame`` row
        ``order[i]``; the toolkit passes the train, validation and test positions back to back,
        so each split is a contiguous slice. Works through ``chunk_rows`` rows at a time into
        preallocated blocks, so the float64 intermediates stay small.
        """
        specs = self._fitted()
        missing = [spec["name"] for spec in specs if spec["name"] not in frame.columns]
        if missing:
            raise UserError(f"{source}: missing feature column(s) {', '.join(missing)}; the model was trained with them")
        frame = frame[self.input_columns]  # no copy: just the columns the model uses
        n = len(frame) if order is None else len(order)
        n_numeric = len(self.numeric_names)
        out = EncodedRows(num=np.empty((n, n_numeric + len(self.flag_names)), dtype=np.float32),
                          cat=np.empty((n, len(self.categorical_names)), dtype=np.int64), n_numeric=n_numeric)
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            part = frame.iloc[start:stop] if order is None else frame.take(order[start:stop])
            self._encode_into(part, out.num[start:stop], out.cat[start:stop], source=source)
        return out

    def _encode_into(self, frame: pd.DataFrame, num: np.ndarray, cat: np.ndarray, *, source: str) -> None:
        n_numeric = len(self.numeric_names)
        col_num, col_flag, col_cat = 0, n_numeric, 0
        for spec in self._fitted():
            series = frame[spec["name"]]
            if spec["kind"] == "categorical":
                was_missing = series.isna().to_numpy()
                text = _category_strings(series)
                levels = spec["levels"]
                codes = pd.Index(levels, dtype=object).get_indexer(text.astype(object))
                codes = np.where(codes < 0, len(levels), codes)  # rare or unseen -> other
                cat[:, col_cat] = np.where(was_missing, len(levels) + 1, codes)  # missing has its own code
                col_cat += 1
                continue
            if spec["kind"] == "numeric":
                filled = _numbers(series, spec["name"], source)
                was_missing = np.isnan(filled)  # unparsable and infinite values count as missing
                if was_missing.any():
                    filled = np.where(was_missing, spec["median"], filled)  # never in place: may view the frame
                if spec["log"]:
                    filled = np.log1p(np.maximum(filled, 0.0))
                num[:, col_num] = (filled - spec["mean"]) / spec["std"]
                col_num += 1
            else:  # binary
                values = _as_binary(series)
                unparsed = values.isna().to_numpy() & ~series.isna().to_numpy()
                if unparsed.any():
                    logger.warning("%s: %d value(s) of '%s' are not 0/1 or yes/no values and are treated as missing (e.g. %s)",
                                   source, int(unparsed.sum()), spec["name"], _examples(series, unparsed))
                was_missing = values.isna().to_numpy()
                num[:, col_flag] = values.fillna(spec["fill"]).to_numpy()
                col_flag += 1
            if spec["indicator"]:
                num[:, col_flag] = was_missing
                col_flag += 1

    def from_compact(self, compact: np.ndarray) -> EncodedRows:
        """A compact matrix (see :meth:`EncodedRows.compact`) back to rows; flags and codes are
        rounded and clipped to valid values, so rows made by interpolation stay valid."""
        compact = np.asarray(compact, dtype=np.float64)
        n_numeric, n_float = len(self.numeric_names), len(self.numeric_names) + len(self.flag_names)
        num = compact[:, :n_float].astype(np.float32)
        num[:, n_numeric:] = np.clip(np.rint(num[:, n_numeric:]), 0.0, 1.0)
        cards = np.asarray(self.cardinalities, dtype=np.int64)
        cat = np.clip(np.rint(compact[:, n_float:]), 0, np.maximum(cards - 1, 0)).astype(np.int64)
        return EncodedRows(num=num, cat=cat.reshape(len(compact), len(cards)), n_numeric=n_numeric)

    def decode(self, rows: "EncodedRows | np.ndarray") -> pd.DataFrame:
        """Rows (or a compact matrix) -> the original column space (units, level names).

        A set missing indicator or the missing code gives NaN in that column, so decoding then
        transforming gives back the same rows.
        """
        if not isinstance(rows, EncodedRows):
            rows = self.from_compact(rows)
        num = rows.num.astype(np.float64)
        col_num, col_flag, col_cat = 0, len(self.numeric_names), 0
        columns: dict[str, Any] = {}
        for spec in self._fitted():
            if spec["kind"] == "categorical":
                names = np.array(list(_code_names(spec)[:-1]) + [np.nan], dtype=object)
                columns[spec["name"]] = pd.Series(names[rows.cat[:, col_cat]])
                col_cat += 1
                continue
            if spec["kind"] == "numeric":
                decoded: Any = num[:, col_num] * spec["std"] + spec["mean"]
                if spec["log"]:
                    decoded = np.expm1(decoded)
                col_num += 1
            else:
                decoded = pd.array(np.rint(num[:, col_flag]).astype(np.int64), dtype="Int64")
                col_flag += 1
            series = pd.Series(decoded)
            if spec["indicator"]:
                series = series.mask(num[:, col_flag] > 0.5)
                col_flag += 1
            columns[spec["name"]] = series
        return pd.DataFrame(columns)


def _code_names(spec: dict[str, Any]) -> list[str]:
    """Names of a categorical column's codes: its levels, ``other``, ``missing``."""
    return [str(level) for level in spec["levels"]] + [OTHER_LEVEL, MISSING_LEVEL]

