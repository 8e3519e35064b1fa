"""Reading the input table and pulling out the outcome column(s) and feature columns."""

from __future__ import annotations

import csv
import gc
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .errors import UserError
from .slices import check_slice_columns

__all__ = [
    "MISSING_TOKENS",
    "LARGE_CSV_BYTES",
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

    def __post_init__(self) -> None:
        self.row_index: pd.Index = self.features.index  # kept when the feature data is released

    @property
    def is_multilabel(self) -> bool:
        return len(self.label_names) > 1

    def release_features(self) -> None:
        """Drop the feature values (keeping names and row index) once they are encoded elsewhere.

        On a large table the pandas columns are as big as the model's float32 matrix; this gives
        their memory back (Arrow's pool included) before training starts.
        """
        self.features = self.features.iloc[:0].copy()  # a copy: a zero-row view would keep the data alive
        gc.collect()
        if "pyarrow" in sys.modules:
            sys.modules["pyarrow"].default_memory_pool().release_unused()


# CSV files larger than this are read in chunks of about CSV_CHUNK_CELLS values (rows x columns),
# each chunk cast to its column's dtype at once, so no float64 copy of the whole table ever exists.
# pandas needs ~150 bytes per value of a chunk while parsing it (measured: 0.6 GB at 500k x 65).
LARGE_CSV_BYTES = 128 * 2**20
CSV_CHUNK_CELLS = 4_000_000
_PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(
    path: str | Path,
    *,
    columns: Optional[Sequence[str]] = None,
    exact_cols: Sequence[str] = (),
    progress: bool = False,
) -> pd.DataFrame:
    """CSV (or Parquet for a .parquet/.pq path) with the toolkit's missing-value tokens.

    Floating-point columns are stored as float32 (the model's precision; half the memory of
    pandas' float64), except ``exact_cols`` (an identifier, integer-coded categories) which keep
    the type they are read with. Integer and text columns are kept as read.

    Large inputs: Parquet is read through pyarrow row group by row group (float64 cast to float32
    per group) and converted column by column with ``self_destruct``, freeing each Arrow column
    once converted (measured peak ~2x the float32 table, against ~6.5x for ``pd.read_parquet`` of
    float64 data: ``benchmarks/read.py``); a CSV above
    ``LARGE_CSV_BYTES`` is parsed in chunks, each cast to its column's fixed dtype (float32 for
    numbers; a column that turns out to hold text somewhere stays text, as in a whole-file read).
    ``progress`` shows a bar on the terminal while a large file is read.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--csv_path: no such file '{path}'; check the path")
    parquet = path.suffix.lower() in _PARQUET_SUFFIXES
    exact = {str(c).strip() for c in exact_cols}
    started = time.perf_counter()
    try:
        if parquet:
            frame = _read_parquet(path, columns, progress, exact)
        elif path.stat().st_size > LARGE_CSV_BYTES:
            chunk_rows = max(1, CSV_CHUNK_CELLS // max(1, len(_raw_header(path))))
            frame = _read_csv_chunked(path, progress, chunk_rows, exact)
        else:
            frame = read_csv_text(path)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read it as {'Parquet' if parquet else 'CSV'} ({first})") from None
    if frame.shape[0] == 0:
        raise UserError(f"{path}: no data rows under the header")
    header = list(frame.columns) if parquet else _raw_header(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    # pandas renames a repeated CSV header ('a', 'a' -> 'a', 'a.1'), so check the file's own names.
    names = pd.Index([str(c).strip() for c in header])
    duplicated = names[names.duplicated()].unique().tolist()
    if duplicated:
        raise UserError(f"{path}: duplicated column name(s) {', '.join(duplicated)}; rename them")
    as_model_precision(frame, [c for c in frame.columns if c not in exact])
    seconds = time.perf_counter() - started
    if seconds > 5:
        logger.info("read %s: %d rows x %d columns in %.1f s (%.2f GB in memory)", path, frame.shape[0], frame.shape[1],
                    seconds, frame.memory_usage(index=False, deep=False).sum() / 2**30)
    return frame


def as_model_precision(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Cast the float64 ``columns`` of ``frame`` to float32 in place (one column at a time: the
    peak is one column, not the table) and return it. Every way rows reach a model goes through
    this (a file read here, a DataFrame given to the Predictor, a request to the server), so the
    same rows get the same probabilities whichever way they came."""
    for name in columns:
        if frame[name].dtype == np.float64:
            frame[name] = frame[name].astype(np.float32)
    return frame


def read_csv_text(handle: Any) -> pd.DataFrame:
    """A CSV with the toolkit's missing-value tokens and parsing options (a path or a buffer)."""
    return pd.read_csv(handle, na_values=MISSING_TOKENS, keep_default_na=True, skipinitialspace=True, low_memory=False)


def _bar(*, total: int, enabled: bool, desc: str, unit: str) -> Any:
    from tqdm.auto import tqdm  # deferred: only large reads show a bar

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, disable=None if enabled else True)


def _read_parquet(path: Path, columns: Optional[Sequence[str]], progress: bool, exact: set[str]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    if columns:
        schema = pa.schema([schema.field(c) for c in columns])
    # float64 -> float32 per row group, before pandas sees it: the float64 table never exists whole.
    target = pa.schema([
        f.with_type(pa.float32()) if pa.types.is_float64(f.type) and f.name.strip() not in exact else f for f in schema
    ])
    groups = []
    with _bar(total=source.metadata.num_rows, enabled=progress, desc=f"reading {path.name}", unit="rows") as bar:
        for i in range(source.metadata.num_row_groups):
            group = source.read_row_group(i, columns=list(columns) if columns else None)
            groups.append(group.cast(target) if target != schema else group)
            bar.update(group.num_rows)
    table = pa.concat_tables(groups) if groups else target.empty_table()
    del groups
    # Column by column, freeing each Arrow column once converted.
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _read_csv_chunked(path: Path, progress: bool, chunk_rows: int, exact: set[str]) -> pd.DataFrame:
    """The whole CSV, ``chunk_rows`` at a time.

    Columns that are decimal in the first chunk are written chunk by chunk into one array per
    column, allocated once for the file's line count (a fast newline count, an upper bound on the
    rows), so the table is never held twice. Other columns (integers, text) collect one piece per
    chunk, joined at the end; so does a decimal column once text shows up in it.
    """
    capacity = _count_newlines(path, progress)
    filled: dict[str, np.ndarray] = {}  # decimal columns, written in place
    pieces: dict[str, list[Any]] = {}
    order: list[str] = []
    rows = 0

    def to_pieces(name: str) -> None:  # the filled part becomes the column's first piece
        pieces[name] = [pd.Series(filled.pop(name)[:rows].copy())]

    with path.open("rb") as fh, _bar(total=path.stat().st_size, enabled=progress, desc=f"reading {path.name}", unit="B") as bar:
        # pandas' default low_memory parsing (~2x faster than low_memory=False here); a column it
        # types differently in two internal blocks comes back mixed, as from two chunks, which the
        # join below and the preprocessor handle, so its DtypeWarning is not shown.
        reader = pd.read_csv(
            fh, na_values=MISSING_TOKENS, keep_default_na=True, skipinitialspace=True, chunksize=chunk_rows,
        )
        with reader, warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            for chunk in reader:
                n = len(chunk)
                if rows + n > capacity:  # more rows than newlines (e.g. '\r' line ends): no preallocation
                    for name in list(filled):
                        to_pieces(name)
                    capacity = -1
                if not order:
                    order = list(chunk.columns)
                    if capacity >= 0:
                        for name in order:
                            if chunk[name].dtype.kind == "f":
                                filled[name] = np.empty(capacity, np.float64 if name.strip() in exact else np.float32)
                for name in order:
                    series = chunk[name]
                    target = filled.get(name)
                    if target is not None:
                        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
                            target[rows : rows + n] = series.to_numpy(dtype=target.dtype, na_value=np.nan)
                            continue
                        to_pieces(name)  # text in a decimal column: it stays text, as in a whole-file read
                    if series.dtype == np.float64 and name.strip() not in exact:
                        series = series.astype(np.float32)
                    pieces.setdefault(name, []).append(series)
                rows += n
                bar.update(fh.tell() - bar.n)
    if not order:  # a header and no rows
        return pd.DataFrame(columns=_raw_header(path))
    columns = {}
    for name in order:
        if name in filled:
            columns[name] = filled.pop(name)[:rows]
            continue
        parts = pieces.pop(name)  # join one column and drop its pieces before the next
        numeric = all(pd.api.types.is_numeric_dtype(p) and not pd.api.types.is_bool_dtype(p) for p in parts)
        if numeric and any(pd.api.types.is_float_dtype(p) for p in parts):
            dtype = np.float64 if name.strip() in exact else np.float32
            columns[name] = np.concatenate([p.to_numpy(dtype=dtype, na_value=np.nan) for p in parts])
        else:  # integers, text, or numbers in some chunks and text in others (left to the preprocessor)
            present = [p for p in parts if p.notna().any()]
            if present and all(p.dtype == present[0].dtype for p in present) and len(present) < len(parts):
                # chunks with only missing values read as float: give them the column's own type
                parts = [p if p.notna().any() else p.astype(present[0].dtype) for p in parts]
            columns[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns, copy=False)  # the default copies dict input: the table would exist twice


def _count_newlines(path: Path, progress: bool, block: int = 1 << 24) -> int:
    count = 0
    with path.open("rb") as fh, _bar(total=path.stat().st_size, enabled=progress, desc=f"counting rows of {path.name}", unit="B") as bar:
        while data := fh.read(block):
            count += data.count(b"\n")
            bar.update(len(data))
    return count


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
    categorical_cols: Sequence[str] = (),
    slice_cols: Sequence[str] = (),
) -> Table:
    """Separate outcomes, id and features; drop rows with a missing outcome (with a warning).
    ``slice_cols`` (``--slice_cols``) must be feature columns."""
    columns = list(frame.columns)
    for flag, names in (("--id_col", [id_col] if id_col else []), ("--drop_cols", list(drop_cols)),
                        ("--categorical_cols", list(categorical_cols))):
        missing = [c for c in names if c not in columns]
        if missing:
            raise UserError(f"{source}: {flag} names column(s) {', '.join(missing)} not in the file: {_list_columns(columns)}")
    label_names = resolve_targets(columns, target_cols, source)
    if id_col in label_names:
        raise UserError(f"{source}: column '{id_col}' is both --id_col and an outcome; choose one")

    raw = np.column_stack([parse_outcome(frame[c], c, source) for c in label_names])
    keep = ~np.isnan(raw).any(axis=1)
    if not keep.any():
        raise UserError(f"{source}: every row has a missing outcome in {', '.join(label_names)}")
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("dropped %d of %d rows with a missing outcome (%s)", dropped, len(frame), ", ".join(label_names))
    for j, name in enumerate(label_names):  # a label with one class only has nothing to learn
        values = raw[keep, j]
        if not values.any():
            raise UserError(f"{source}: outcome column '{name}' has no positive rows (no 1 among {len(values)}); "
                            "check the column, or leave it out of --target_cols")
        if values.all():
            raise UserError(f"{source}: outcome column '{name}' has no negative rows (every one of {len(values)} is 1); "
                            "check the column, or leave it out of --target_cols")

    excluded = set(label_names) | set(drop_cols) | ({id_col} if id_col else set())
    feature_cols = [c for c in columns if c not in excluded]
    if not feature_cols:
        raise UserError(f"{source}: no feature columns left after removing outcomes, --id_col and --drop_cols")
    check_slice_columns(slice_cols, feature_cols, source)
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
    exact_cols: Sequence[str] = (),
    demo_rows: int = 20_000,
    demo_seed: int = 0,
    progress: bool = False,
    slice_cols: Sequence[str] = (),
) -> Table:
    """The user's file, or the built-in demo cohort when ``csv_path`` is None.

    ``exact_cols`` (e.g. ``--categorical_cols``) and ``id_col`` keep their precision when read.
    """
    if csv_path is None:
        from .demo import make_demo_cohort

        # at the model's precision, as the same rows written to a file and read back would be
        frame = make_demo_cohort(n_rows=demo_rows, seed=demo_seed)
        frame = as_model_precision(frame, list(frame.columns))
        source = f"demo cohort ({demo_rows} rows)"
        id_col = id_col or "patient_id"
    else:
        frame = read_table(csv_path, exact_cols=[*([id_col] if id_col else []), *exact_cols], progress=progress)
        source = str(csv_path)
    return build_table(frame, source=source, target_cols=target_cols, id_col=id_col, drop_cols=drop_cols,
                       categorical_cols=exact_cols, slice_cols=slice_cols)
