"""Reading the input table and pulling out the outcome column(s) and feature columns."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .errors import UserError

__all__ = [
    "MISSING_TOKENS",
    "TRUE_TOKENS",
    "FALSE_TOKENS",
    "Table",
    "read_table",
    "resolve_targets",
    "parse_outcome",
    "build_table",
    "load_table",
]

logger = logging.getLogger(__name__)

# Read as missing everywhere (outcomes and features), on top of pandas' defaults.
MISSING_TOKENS = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "?", "null", "NULL", "None", "none", "-"]
TRUE_TOKENS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
FALSE_TOKENS = frozenset({"0", "0.0", "false", "f", "no", "n"})


@dataclass
class Table:
    """An input table split into features and outcomes; rows without an outcome are gone."""

    features: pd.DataFrame  # feature columns only, index = row number in the source file
    labels: np.ndarray  # (n, L) uint8
    label_names: list[str]
    ids: Optional[pd.Series]  # the --id_col values, aligned with features
    id_col: Optional[str]
    source: str

    @property
    def is_multilabel(self) -> bool:
        return len(self.label_names) > 1


def read_table(path: str | Path, *, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """CSV (or Parquet for a .parquet/.pq path) with the toolkit's missing-value tokens."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--csv_path: no such file '{path}'; check the path")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path, columns=list(columns) if columns else None)
        else:
            frame = pd.read_csv(
                path, na_values=MISSING_TOKENS, keep_default_na=True, skipinitialspace=True, low_memory=False
            )
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read it as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} ({first})") from None
    if frame.shape[0] == 0:
        raise UserError(f"{path}: no data rows under the header")
    header = _raw_header(path) if path.suffix.lower() not in (".parquet", ".pq") else list(frame.columns)
    frame.columns = [str(c).strip() for c in frame.columns]
    # pandas renames a repeated CSV header ('a', 'a' -> 'a', 'a.1'), so check the file's own names.
    names = pd.Index([str(c).strip() for c in header])
    duplicated = names[names.duplicated()].unique().tolist()
    if duplicated:
        raise UserError(f"{path}: duplicated column name(s) {', '.join(duplicated)}; rename them")
    return frame


def _raw_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        return next(csv.reader(fh), [])


def _list_columns(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def resolve_targets(columns: Sequence[str], target_cols: Sequence[str], source: str) -> list[str]:
    """The named outcome columns, or every ``label_*`` column when none are named."""
    columns = list(columns)
    if target_cols:
        missing = [c for c in target_cols if c not in columns]
        if missing:
            raise UserError(
                f"{source}: target column(s) {', '.join(missing)} not found; "
                f"--target_cols must name columns of the file: {_list_columns(columns)}"
            )
        return list(dict.fromkeys(target_cols))
    found = [c for c in columns if c.startswith("label_")]
    if not found:
        raise UserError(
            f"{source}: no outcome columns: none is named with the 'label_' prefix; "
            f"pass --target_cols with the outcome column(s) from: {_list_columns(columns)}"
        )
    return found


def parse_outcome(values: pd.Series, name: str, source: str) -> np.ndarray:
    """0/1 (or true/false, yes/no, t/f) -> float array with nan where missing; else a clear error."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.unique(arr[~np.isnan(arr) & (arr != 0) & (arr != 1)])
        if bad.size:
            shown = ", ".join(f"{v:g}" for v in bad[:5])
            raise UserError(
                f"{source}: outcome column '{name}' must hold 0/1 (or true/false, yes/no), found {shown}"
                + (f" and {bad.size - 5} more" if bad.size > 5 else "")
                + "; recode it to a binary outcome"
            )
        return arr
    text = values.astype("string").str.strip().str.lower()
    out = np.full(len(values), np.nan)
    present = text.notna().to_numpy()
    is_true = text.isin(TRUE_TOKENS).fillna(False).to_numpy(dtype=bool)
    is_false = text.isin(FALSE_TOKENS).fillna(False).to_numpy(dtype=bool)
    out[is_true] = 1.0
    out[is_false] = 0.0
    bad_mask = present & ~is_true & ~is_false
    if bad_mask.any():
        bad = pd.unique(values[bad_mask].astype(str))
        shown = ", ".join(repr(v) for v in bad[:5])
        raise UserError(
            f"{source}: outcome column '{name}' must hold 0/1 (or true/false, yes/no), found {shown}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            + "; recode it to a binary outcome"
        )
    return out


def _warn_identifier_like(features: pd.DataFrame) -> None:
    n = len(features)
    if n < 100:
        return
    for col in features.columns:
        series = features[col]
        if (pd.api.types.is_integer_dtype(series) or not pd.api.types.is_numeric_dtype(series)) and series.nunique() == n:
            logger.warning(
                "column '%s' has a different value in every row and looks like an identifier; "
                "pass --id_col %s or --drop_cols %s if it is one",
                col, col, col,
            )


def build_table(
    frame: pd.DataFrame,
    *,
    source: str,
    target_cols: Sequence[str] = (),
    id_col: Optional[str] = None,
    drop_cols: Sequence[str] = (),
) -> Table:
    """Separate outcomes, id and features; drop rows with a missing outcome (with a warning)."""
    columns = list(frame.columns)
    for flag, names in (("--id_col", [id_col] if id_col else []), ("--drop_cols", list(drop_cols))):
        missing = [c for c in names if c not in columns]
        if missing:
            raise UserError(f"{source}: {flag} names column(s) {', '.join(missing)} not in the file: {_list_columns(columns)}")
    label_names = resolve_targets(columns, target_cols, source)
    if id_col in label_names:
        raise UserError(f"{source}: column '{id_col}' is both --id_col and an outcome; choose one")

    raw = np.column_stack([parse_outcome(frame[c], c, source) for c in label_names])
    keep = ~np.isnan(raw).any(axis=1)
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("dropped %d of %d rows with a missing outcome (%s)", dropped, len(frame), ", ".join(label_names))
    if not keep.any():
        raise UserError(f"{source}: every row has a missing outcome in {', '.join(label_names)}")

    excluded = set(label_names) | set(drop_cols) | ({id_col} if id_col else set())
    feature_cols = [c for c in columns if c not in excluded]
    if not feature_cols:
        raise UserError(f"{source}: no feature columns left after removing outcomes, --id_col and --drop_cols")
    # Column selection alone does not copy the data (pandas copy-on-write); a row mask does.
    features = frame[feature_cols] if keep.all() else frame.loc[keep, feature_cols]
    _warn_identifier_like(features)
    return Table(
        features=features,
        labels=raw[keep].astype(np.uint8),
        label_names=label_names,
        ids=(frame[id_col] if keep.all() else frame.loc[keep, id_col]) if id_col else None,
        id_col=id_col,
        source=source,
    )


def load_table(
    csv_path: Optional[str],
    *,
    target_cols: Sequence[str] = (),
    id_col: Optional[str] = None,
    drop_cols: Sequence[str] = (),
    demo_rows: int = 20_000,
    demo_seed: int = 0,
) -> Table:
    """The user's file, or the built-in demo cohort when ``csv_path`` is None."""
    if csv_path is None:
        from .demo import make_demo_cohort

        frame = make_demo_cohort(n_rows=demo_rows, seed=demo_seed)
        source = f"demo cohort ({demo_rows} rows)"
        id_col = id_col or "patient_id"
    else:
        frame = read_table(csv_path)
        source = str(csv_path)
    return build_table(frame, source=source, target_cols=target_cols, id_col=id_col, drop_cols=drop_cols)
