"""One-hot groups: 0/1 columns that together encode one categorical (``work_type_Private``,
``work_type_Govt_job``, ...), so that every generator and resampler treats them as one column.

Sampled or interpolated one at a time, such columns give rows with two work types or none. A
group is found in the training rows: two or more 0/1 columns whose names share a prefix ending
in ``_`` and that have exactly one column set in every row. ``--onehot_groups PREFIX,...``
declares groups by prefix instead (all 0/1 columns named ``PREFIX_<level>``); a declared group
may also have rows with no column set (a drop-first encoding), which become a level of their own.

:meth:`OneHotGroup.collapse` turns a group into one categorical column (its level: the column
that is set), :meth:`OneHotGroup.expand` turns it back, so that every row made from the
collapsed columns has exactly one level set (or none, for the declared drop-first level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .errors import UserError

__all__ = ["NONE_SET", "OneHotGroup", "find_onehot_groups", "collapse_frame", "expand_frame", "collapse_matrix", "expand_matrix"]

NONE_SET = "(none set)"  # the level of a declared group's rows with no column set


@dataclass(frozen=True)
class OneHotGroup:
    prefix: str
    columns: tuple[str, ...]
    allows_none: bool = False  # declared drop-first groups: rows may have no column set

    @property
    def key(self) -> str:
        """The collapsed column's name (cannot clash with a real column: real names never start with it)."""
        return f"__onehot__{self.prefix}"

    @property
    def levels(self) -> list[str]:
        return [*self.columns, *([NONE_SET] if self.allows_none else [])]

    def codes(self, block: np.ndarray) -> np.ndarray:
        """(n, k) 0/1 -> (n,) level index (k: none set)."""
        block = np.asarray(block)
        return np.where(block.any(axis=1), block.argmax(axis=1), len(self.columns))

    def one_hot(self, codes: np.ndarray) -> np.ndarray:
        """(n,) level index -> (n, k) 0/1 int64; the none-set level gives a row of zeros."""
        codes = np.asarray(codes, dtype=np.int64)
        return (codes[:, None] == np.arange(len(self.columns))[None, :]).astype(np.int64)


def _zero_one(series: pd.Series) -> Optional[np.ndarray]:
    """The column as 0/1 int64 when every value is 0 or 1 (no missing), else None."""
    values = pd.to_numeric(series, errors="coerce")
    if values.isna().any():
        return None
    array = values.to_numpy(dtype=np.float64)
    return array.astype(np.int64) if np.isin(array, (0.0, 1.0)).all() else None


def find_onehot_groups(frame: pd.DataFrame, binary_cols: Sequence[str], declared: Sequence[str] = ()) -> list[OneHotGroup]:
    """The one-hot groups among ``binary_cols`` of the training rows ``frame``: the declared
    prefixes, then any other prefix whose 0/1 columns have exactly one set in every row (the
    groups with the most columns first; a column belongs to one group at most)."""
    flags = {c: v for c in binary_cols if (v := _zero_one(frame[c])) is not None}
    groups: list[OneHotGroup] = []
    taken: set[str] = set()
    for prefix in declared:
        members = tuple(c for c in flags if c.startswith(f"{prefix}_"))
        if len(members) < 2:
            raise UserError(f"--onehot_groups {prefix}: {len(members)} yes/no (0/1) column(s) named {prefix}_<level>; "
                            "a group needs two or more: check the prefix")
        clash = [c for c in members if c in taken]
        if clash:
            raise UserError(f"--onehot_groups {prefix}: column(s) {', '.join(clash)} already belong to another declared group")
        sums = np.sum([flags[c] for c in members], axis=0)
        if (sums > 1).any():
            row = int(np.flatnonzero(sums > 1)[0])
            raise UserError(f"--onehot_groups {prefix}: {int((sums > 1).sum())} training row(s) have more than one of "
                            f"{', '.join(members)} set (first: row {row}); a one-hot group has at most one per row")
        groups.append(OneHotGroup(prefix, members, allows_none=bool((sums == 0).any())))
        taken.update(members)
    candidates: dict[str, tuple[str, ...]] = {}
    for column in flags:
        if column in taken:
            continue
        for cut in (i for i, ch in enumerate(column) if ch == "_" and 0 < i < len(column) - 1):
            prefix = column[:cut]
            candidates[prefix] = (*candidates.get(prefix, ()), column)
    found = []
    for prefix, members in candidates.items():
        if len(members) >= 2 and (np.sum([flags[c] for c in members], axis=0) == 1).all():
            found.append((len(members), len(prefix), prefix, members))
    for _, _, prefix, members in sorted(found, key=lambda f: (-f[0], -f[1], f[2])):
        if not taken.intersection(members):
            groups.append(OneHotGroup(prefix, members))
            taken.update(members)
    return groups


def collapse_frame(frame: pd.DataFrame, kinds: dict[str, str], groups: Sequence[OneHotGroup]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each group's columns replaced by one categorical column of level names (and the kinds to match)."""
    if not groups:
        return frame, kinds
    out = frame.drop(columns=[c for g in groups for c in g.columns])
    kinds = {k: v for k, v in kinds.items() if k in out.columns}
    for group in groups:
        codes = group.codes(frame[list(group.columns)].to_numpy(dtype=np.float64))
        out[group.key] = pd.Series(np.asarray(group.levels, dtype=object)[codes], index=frame.index, dtype=object)
        kinds[group.key] = "categorical"
    return out, kinds


def expand_frame(frame: pd.DataFrame, groups: Sequence[OneHotGroup], order: Sequence[str]) -> pd.DataFrame:
    """The inverse of :func:`collapse_frame`, with the columns in ``order``; a missing level
    (a generator reproducing missingness there is not possible: groups have none) sets nothing."""
    if not groups:
        return frame
    out = frame.copy()
    for group in groups:
        level = out.pop(group.key)
        index = pd.Index(group.levels)
        codes = index.get_indexer(level.astype(object))
        codes = np.where(codes < 0, len(group.columns), codes)
        block = group.one_hot(codes)
        for j, column in enumerate(group.columns):
            out[column] = block[:, j]
    return out[list(order)]


def collapse_matrix(x: np.ndarray, names: Sequence[str], categorical: np.ndarray,
                    groups: Sequence[OneHotGroup]) -> tuple[np.ndarray, np.ndarray]:
    """A compact matrix with each group's 0/1 columns replaced by one code column at the end
    (marked categorical), for resamplers."""
    if not groups:
        return x, categorical
    position = {n: i for i, n in enumerate(names)}
    drop = [position[c] for g in groups for c in g.columns]
    keep = np.setdiff1d(np.arange(x.shape[1]), drop)
    codes = [group.codes(x[:, [position[c] for c in group.columns]] > 0.5).astype(np.float64) for group in groups]
    return (np.column_stack([x[:, keep], *codes]),
            np.concatenate([np.asarray(categorical, dtype=bool)[keep], np.ones(len(groups), dtype=bool)]))


def expand_matrix(x: np.ndarray, names: Sequence[str], groups: Sequence[OneHotGroup]) -> np.ndarray:
    """The inverse of :func:`collapse_matrix`: the original columns in their original places."""
    if not groups:
        return x
    position = {n: i for i, n in enumerate(names)}
    drop = [position[c] for g in groups for c in g.columns]
    keep = np.setdiff1d(np.arange(len(names)), drop)
    out = np.empty((x.shape[0], len(names)), dtype=x.dtype)
    out[:, keep] = x[:, : len(keep)]
    for k, group in enumerate(groups):
        block = group.one_hot(np.rint(x[:, len(keep) + k]).astype(np.int64))
        out[:, [position[c] for c in group.columns]] = block
    return out
