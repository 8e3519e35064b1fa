"""Feature preprocessing fitted on the training split, stored as plain data in checkpoints.

Each input column becomes one of three kinds, inferred from the training rows:

- numeric: every present value parses as a number. Missing -> training median; a
  non-negative column with skewness above 2 is log1p-transformed; then standardised with
  the training mean and standard deviation.
- binary: two-level yes/no, true/false, t/f, y/n (or a boolean column) -> 0/1. Missing -> the
  most frequent value. Not standardised.
- categorical: anything else, or listed in ``--categorical_cols``. One-hot over the levels seen at
  least ``min_category_count`` times in training, plus an ``other`` column for rare and unseen
  levels. Missing -> the most frequent level.

A column with missing values in the training split also gets a ``<col>__missing`` 0/1 indicator,
so that "not measured" stays visible to the model after imputation.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .data import FALSE_TOKENS, TRUE_TOKENS
from .errors import UserError

__all__ = ["TabularPreprocessor", "OTHER_LEVEL"]

logger = logging.getLogger(__name__)

OTHER_LEVEL = "__other__"
STATE_VERSION = 1
# Non-negative numeric columns skewed beyond this (lab values such as TSH, counts) are log1p'd
# before standardising: a few huge values would otherwise squash everyone else near zero.
SKEW_LIMIT = 2.0


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
    return pd.to_numeric(series.astype("string").str.strip(), errors="coerce").astype("float64")


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
    if len(present) and _numeric(present).notna().all():
        return "numeric"
    levels = set(_category_strings(present).str.lower().unique())
    if levels and levels <= (TRUE_TOKENS | FALSE_TOKENS) and len(levels) <= 2 and not levels <= {"0", "1", "0.0", "1.0"}:
        return "binary"
    return "categorical"


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
        spec: dict[str, Any] = {"name": name, "kind": kind, "indicator": n_missing > 0}
        if kind == "numeric":
            spec.update(_numeric_stats(_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)))
        elif kind == "binary":
            values = _as_binary(series)
            spec.update(fill=float(values.mode().iloc[0]))
        else:
            text = _category_strings(series)
            counts = text.value_counts()
            spec.update(
                levels=[str(level) for level, count in counts.items() if count >= self.min_category_count],
                fill=str(counts.index[0]),
            )
        return spec

    # -- the fitted state as plain data -------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        return [spec["name"] for spec in self._fitted()]

    @property
    def feature_names(self) -> list[str]:
        names = []
        for spec in self._fitted():
            if spec["kind"] == "categorical":
                names += [f"{spec['name']}={level}" for level in spec["levels"]] + [f"{spec['name']}={OTHER_LEVEL}"]
            else:
                names.append(spec["name"])
            if spec["indicator"]:
                names.append(f"{spec['name']}__missing")
        return names

    @property
    def kinds(self) -> dict[str, str]:
        return {spec["name"]: spec["kind"] for spec in self._fitted()}

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
            raise UserError(f"preprocessing state version {state.get('version')} is not supported (expected {STATE_VERSION})")
        pre = cls(categorical_cols=state["categorical_cols"], min_category_count=state["min_category_count"])
        pre.columns_ = [dict(spec) for spec in state["columns"]]
        return pre

    def _fitted(self) -> list[dict[str, Any]]:
        if self.columns_ is None:
            raise RuntimeError("TabularPreprocessor is not fitted; call fit() first")
        return self.columns_

    # -- transforming -------------------------------------------------------------------------
    # Two steps: ``encode`` to a compact matrix with one column per input column (numerics
    # standardised, yes/no as 0/1, categories as integer codes, missing indicators), then
    # ``expand`` the codes to one-hot. Resamplers work in the compact space, where a category is
    # one column (SMOTENC can keep it valid) and distances are on standardised numbers.
    def transform(
        self, frame: pd.DataFrame, *, source: str = "input", order: Optional[np.ndarray] = None, chunk_rows: int = 1 << 16,
    ) -> np.ndarray:
        """Rows -> (n, n_features) float32, columns in :attr:`feature_names` order.

        ``order`` (row positions) picks and orders the rows: output row i is ``frame`` row
        ``order[i]``; the toolkit passes the train, validation and test positions back to back,
        so each split is a contiguous view of one matrix. Works through ``chunk_rows`` rows at a
        time into one preallocated float32 matrix, so the float64 intermediates stay small.
        """
        missing = [name for name in self.input_columns if name not in frame.columns]
        if missing:
            raise UserError(f"{source}: missing feature column(s) {', '.join(missing)}; the model was trained with them")
        frame = frame[self.input_columns]  # no copy: just the columns the model uses
        n = len(frame) if order is None else len(order)
        out = np.empty((n, len(self.feature_names)), dtype=np.float32)
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            part = frame.iloc[start:stop] if order is None else frame.take(order[start:stop])
            self.expand(self.encode(part, source=source), out=out[start:stop])
        return out

    @property
    def compact_columns(self) -> list[tuple[str, str]]:
        """(name, kind) of each compact column; kind is 'numeric' or 'categorical' (a code)."""
        cols = []
        for spec in self._fitted():
            cols.append((spec["name"], "numeric" if spec["kind"] == "numeric" else "categorical"))
            if spec["indicator"]:
                cols.append((f"{spec['name']}__missing", "categorical"))
        return cols

    def encode(self, frame: pd.DataFrame, *, source: str = "input") -> np.ndarray:
        """Rows -> the compact (n, len(compact_columns)) float64 matrix."""
        specs = self._fitted()
        missing = [spec["name"] for spec in specs if spec["name"] not in frame.columns]
        if missing:
            raise UserError(f"{source}: missing feature column(s) {', '.join(missing)}; the model was trained with them")
        out = np.empty((len(frame), len(self.compact_columns)), dtype=np.float64)
        col = 0
        for spec in specs:
            series = frame[spec["name"]]
            if spec["kind"] == "numeric" and _plain_numeric(series):  # numpy only: the hot path on large tables
                filled = series.to_numpy(dtype=np.float64, na_value=np.nan)
                was_missing = np.isnan(filled)
                if was_missing.any():
                    filled = np.where(was_missing, spec["median"], filled)  # never in place: may view the frame
                if spec["log"]:
                    filled = np.log1p(np.maximum(filled, 0.0))
                out[:, col] = (filled - spec["mean"]) / spec["std"]
                col += 1
                if spec["indicator"]:
                    out[:, col] = was_missing
                    col += 1
                continue
            was_missing = series.isna().to_numpy()
            if spec["kind"] == "numeric":
                values = _numeric(series)
                _warn_unparsed(values, was_missing, spec["name"], "numbers", source)
                was_missing = values.isna().to_numpy()  # unparsable values count as missing
                filled = values.fillna(spec["median"]).to_numpy()
                if spec["log"]:
                    filled = np.log1p(np.maximum(filled, 0.0))
                out[:, col] = (filled - spec["mean"]) / spec["std"]
            elif spec["kind"] == "binary":
                values = _as_binary(series)
                _warn_unparsed(values, was_missing, spec["name"], "yes/no values", source)
                was_missing = values.isna().to_numpy()
                out[:, col] = values.fillna(spec["fill"]).to_numpy()
            else:
                text = _category_strings(series).fillna(spec["fill"])
                levels = spec["levels"]
                codes = pd.Index(levels, dtype=object).get_indexer(text.astype(object))
                out[:, col] = np.where(codes < 0, len(levels), codes)  # rare or unseen -> other
            col += 1
            if spec["indicator"]:
                out[:, col] = was_missing
                col += 1
        return out

    def expand(self, compact: np.ndarray, *, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Compact matrix -> model features (float32); category codes become one-hot blocks.

        Runs of numeric columns are copied as one block; ``out`` (n, n_features) float32 is
        written in place when given.
        """
        compact = np.asarray(compact, dtype=np.float64)
        n = compact.shape[0]
        if out is None:
            out = np.empty((n, len(self.feature_names)), dtype=np.float32)
        for src, dst, width, one_hot in self._expand_plan():
            if one_hot:
                out[:, dst : dst + width] = 0.0
                codes = np.clip(np.rint(compact[:, src]), 0, width - 1).astype(np.int64)
                out[np.arange(n), dst + codes] = 1.0
            else:
                out[:, dst : dst + width] = compact[:, src : src + width]
        return out

    def _expand_plan(self) -> list[tuple[int, int, int, bool]]:
        """(compact column, feature column, width, one-hot?) blocks; adjacent plain columns merged."""
        plan: list[tuple[int, int, int, bool]] = []
        src = dst = 0

        def plain(width: int = 1) -> None:
            if plan and not plan[-1][3] and plan[-1][0] + plan[-1][2] == src and plan[-1][1] + plan[-1][2] == dst:
                plan[-1] = (plan[-1][0], plan[-1][1], plan[-1][2] + width, False)
            else:
                plan.append((src, dst, width, False))

        for spec in self._fitted():
            if spec["kind"] == "categorical":
                width = len(spec["levels"]) + 1
                plan.append((src, dst, width, True))
                dst += width
            else:
                plain()
                dst += 1
            src += 1
            if spec["indicator"]:
                plain()
                src += 1
                dst += 1
        return plan

    def decode(self, compact: np.ndarray) -> pd.DataFrame:
        """Compact matrix -> rows in the original column space (units, level names).

        A row whose missing indicator is set gets NaN in that column, so decoding then
        transforming gives back the same features.
        """
        compact = np.asarray(compact, dtype=np.float64)
        columns: dict[str, Any] = {}
        src = 0
        for spec in self._fitted():
            values = compact[:, src]
            if spec["kind"] == "numeric":
                decoded: Any = values * spec["std"] + spec["mean"]
                if spec["log"]:
                    decoded = np.expm1(decoded)
            elif spec["kind"] == "binary":
                decoded = pd.array(np.rint(values).astype(np.int64), dtype="Int64")
            else:
                names = np.array(list(spec["levels"]) + [OTHER_LEVEL], dtype=object)
                decoded = names[np.clip(np.rint(values), 0, len(names) - 1).astype(np.int64)]
            src += 1
            series = pd.Series(decoded)
            if spec["indicator"]:
                series = series.mask(compact[:, src] > 0.5)
                src += 1
            columns[spec["name"]] = series
        return pd.DataFrame(columns)


def _warn_unparsed(values: pd.Series, was_missing: np.ndarray, name: str, what: str, source: str) -> None:
    unparsed = int((values.isna().to_numpy() & ~was_missing).sum())
    if unparsed:
        logger.warning("%s: %d value(s) of '%s' are not %s and are treated as missing", source, unparsed, name, what)
