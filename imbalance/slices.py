"""Subgroup slices of the held-out report: ``--slice_cols sex,age``.

Each slice column splits the report split's rows into groups: a categorical or yes/no column by
its values, a numeric column by quantile bins (``--slice_bins``, quartiles by default) whose
edges come from the *training* rows, so the test split does not choose its own groups; missing
values form a group of their own. Per label and group (fairlearn's ``MetricFrame``): rows,
positives, prevalence, recall, precision, false-positive rate and selection rate at the model's
threshold, and AUROC where both classes are present. A group with fewer than
``--slice_min_positives`` positives is listed with its counts and flagged, not scored: its
recall would swing by whole tens of percent with one patient. Across the scored groups:
fairlearn's equalized-odds difference (the larger of the gaps in true- and false-positive
rates) and demographic-parity difference (the gap in selection rates).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .errors import UserError

__all__ = ["slice_groups", "slice_report", "check_slice_columns"]

MISSING = "missing"


def check_slice_columns(columns: Sequence[str], available: Sequence[str], source: str) -> None:
    """A one-line error for a slice column the table's features do not hold."""
    for name in columns:
        if name not in available:
            raise UserError(f"--slice_cols: '{name}' is not a feature column of {source}; feature columns: "
                            f"{', '.join(list(available)[:20])}{' ...' if len(available) > 20 else ''}")


def _is_numeric(values: pd.Series, bins: int) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    present = values.notna()
    return bool(present.any() and numbers[present].notna().all() and numbers[present].nunique() > bins)


def _fmt_edge(value: float) -> str:
    return f"{value:.4g}"


def slice_groups(train_values: pd.Series, values: pd.Series, *, bins: int) -> tuple[pd.Series, list[str]]:
    """Each row's group name, and the groups in order. Numeric columns are cut at the training
    rows' quantiles (the outer bins are open-ended, so new extremes still fall in one)."""
    if _is_numeric(train_values, bins):
        edges = np.unique(np.nanquantile(pd.to_numeric(train_values, errors="coerce").to_numpy(dtype=float),
                                         np.linspace(0, 1, bins + 1)[1:-1]))
        names = ([f"< {_fmt_edge(edges[0])}"] + [f"[{_fmt_edge(a)}, {_fmt_edge(b)})" for a, b in zip(edges[:-1], edges[1:])]
                 + [f">= {_fmt_edge(edges[-1])}"])
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        codes = np.searchsorted(edges, numbers, side="right")
        groups = pd.Series(np.array(names, dtype=object)[np.minimum(codes, len(names) - 1)], index=values.index)
        groups[np.isnan(numbers)] = MISSING
        order = [*names, MISSING]
    else:
        groups = values.astype("string").fillna(MISSING).astype(object)
        order = [*sorted(set(groups) - {MISSING}, key=str), MISSING]
    present = set(groups)
    return groups, [g for g in order if g in present]


def _auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, score)) if 0 < y_true.sum() < len(y_true) else math.nan


def slice_report(y: np.ndarray, prob: np.ndarray, thresholds: Sequence[float], label_names: Sequence[str],
                 columns: dict[str, tuple[pd.Series, pd.Series]], *, bins: int, min_positives: int) -> dict[str, Any]:
    """``columns``: name -> (training rows' values, report rows' values aligned with ``y``)."""
    from fairlearn.metrics import (MetricFrame, demographic_parity_difference, equalized_odds_difference, false_positive_rate,
                                   selection_rate)
    from sklearn.metrics import precision_score, recall_score

    y = np.asarray(y).reshape(len(y), -1).astype(int)
    prob = np.asarray(prob, dtype=np.float64).reshape(len(y), -1)
    report: dict[str, Any] = {"bins": bins, "min_positives": min_positives, "columns": {}}
    for column, (train_values, values) in columns.items():
        groups, order = slice_groups(train_values, values.reset_index(drop=True), bins=bins)
        groups = groups.to_numpy()
        per_label = {}
        for j, label in enumerate(label_names):
            yj, pj = y[:, j], prob[:, j]
            pred = (pj >= thresholds[j]).astype(int)
            with warnings.catch_warnings():  # fairlearn / sklearn warn about undefined metrics of tiny groups
                warnings.simplefilter("ignore")
                frame = MetricFrame(
                    metrics={"rows": lambda t, p: len(t), "positives": lambda t, p: int(np.sum(t)),
                             "recall": lambda t, p: recall_score(t, p, zero_division=0),
                             "precision": lambda t, p: precision_score(t, p, zero_division=0),
                             "false_positive_rate": false_positive_rate, "selection_rate": selection_rate},
                    y_true=yj, y_pred=pred, sensitive_features=pd.Series(groups, name=column))
                ranking = MetricFrame(metrics={"auroc": _auroc}, y_true=yj, y_pred=pj,
                                      sensitive_features=pd.Series(groups, name=column))
            table = frame.by_group
            scored_groups = [g for g in order if table.loc[g, "positives"] >= min_positives
                             and table.loc[g, "positives"] < table.loc[g, "rows"]]
            rows = {}
            for g in order:
                n, positives = int(table.loc[g, "rows"]), int(table.loc[g, "positives"])
                entry: dict[str, Any] = {"rows": n, "positives": positives, "prevalence": positives / n if n else math.nan}
                if g in scored_groups:
                    entry.update({key: float(table.loc[g, key]) for key in ("recall", "precision", "false_positive_rate",
                                                                             "selection_rate")})
                    entry["auroc"] = float(ranking.by_group.loc[g, "auroc"])
                else:
                    entry["flagged"] = f"fewer than {min_positives} positives" if positives < min_positives else "no negatives"
                rows[str(g)] = entry
            keep = np.isin(groups, scored_groups)
            gaps: dict[str, Optional[float]] = {"equalized_odds_difference": None, "demographic_parity_difference": None}
            if len(scored_groups) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gaps = {
                        "equalized_odds_difference": float(equalized_odds_difference(
                            yj[keep], pred[keep], sensitive_features=groups[keep])),
                        "demographic_parity_difference": float(demographic_parity_difference(
                            yj[keep], pred[keep], sensitive_features=groups[keep])),
                    }
            per_label[label] = {"groups": rows, "scored_groups": [str(g) for g in scored_groups], **gaps}
        report["columns"][column] = per_label
    return report
