"""Subgroup slices (imbalance/slices.py): groups, per-group metrics and fairness gaps by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from imbalance.errors import UserError
from imbalance.slices import check_slice_columns, slice_groups, slice_report


def test_numeric_columns_are_cut_at_the_training_rows_quantiles():
    train = pd.Series(np.arange(1, 101, dtype=float))  # quartile edges 25.75, 50.5, 75.25
    values = pd.Series([1.0, 30.0, 60.0, 99.0, 500.0, np.nan, -3.0])
    groups, order = slice_groups(train, values, bins=4)
    assert order == ["< 25.75", "[25.75, 50.5)", "[50.5, 75.25)", ">= 75.25", "missing"]
    assert groups.tolist() == ["< 25.75", "[25.75, 50.5)", "[50.5, 75.25)", ">= 75.25", ">= 75.25", "missing", "< 25.75"]


def test_categorical_and_few_valued_columns_keep_their_values():
    train = pd.Series(["F", "M", "M", None])
    groups, order = slice_groups(train, pd.Series(["M", None, "F", "F"]), bins=4)
    assert order == ["F", "M", "missing"] and groups.tolist() == ["M", "missing", "F", "F"]
    flags = pd.Series([0, 1, 1, 0, 1])  # two values: groups, not bins
    assert slice_groups(flags, flags, bins=4)[1] == ["0", "1"]


def test_group_metrics_and_gaps_by_hand():
    # group A: 12 rows, 5 positives; group B: 12 rows, 6 positives; group C: 4 rows, 1 positive (flagged)
    group = np.array(["A"] * 12 + ["B"] * 12 + ["C"] * 4)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
                  1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                  1, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,   # A: tp 3 of 5, fp 1 of 7
                     1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0,   # B: tp 2 of 6, fp 3 of 6
                     1, 1, 0, 0])
    prob = np.where(pred == 1, 0.8, 0.2) + np.linspace(0, 0.01, len(y))  # thresholded at 0.5 gives pred
    report = slice_report(y[:, None], prob[:, None], [0.5], ["outcome"], {"grp": (pd.Series(group), pd.Series(group))},
                          bins=4, min_positives=2)
    result = report["columns"]["grp"]["outcome"]
    a, b, c = (result["groups"][g] for g in "ABC")
    assert (a["rows"], a["positives"], b["positives"], c["positives"]) == (12, 5, 6, 1)
    assert a["recall"] == pytest.approx(3 / 5) and a["precision"] == pytest.approx(3 / 4)
    assert a["false_positive_rate"] == pytest.approx(1 / 7) and a["selection_rate"] == pytest.approx(4 / 12)
    assert b["recall"] == pytest.approx(2 / 6) and b["precision"] == pytest.approx(2 / 5)
    assert b["false_positive_rate"] == pytest.approx(3 / 6)
    assert c["flagged"] == "fewer than 2 positives" and "recall" not in c
    assert result["scored_groups"] == ["A", "B"]
    # gaps over the scored groups only: max(|TPR gap|, |FPR gap|) and |selection-rate gap|
    assert result["equalized_odds_difference"] == pytest.approx(max(abs(3 / 5 - 2 / 6), abs(1 / 7 - 3 / 6)))
    assert result["demographic_parity_difference"] == pytest.approx(abs(4 / 12 - 5 / 12))
    # AUROC per group where defined
    from sklearn.metrics import roc_auc_score

    assert a["auroc"] == pytest.approx(roc_auc_score(y[:12], prob[:12]))


def test_one_scored_group_has_no_gap():
    group = np.array(["A"] * 10 + ["B"] * 10)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0] + [0] * 10)
    report = slice_report(y[:, None], np.linspace(0, 1, 20)[:, None], [0.5], ["o"],
                          {"g": (pd.Series(group), pd.Series(group))}, bins=4, min_positives=1)
    result = report["columns"]["g"]["o"]
    assert result["groups"]["B"]["flagged"] == "fewer than 1 positives"  # no positives at all
    assert result["equalized_odds_difference"] is None and result["demographic_parity_difference"] is None
    assert not math.isnan(result["groups"]["A"]["recall"])


def test_an_unknown_slice_column_is_named_in_one_line():
    with pytest.raises(UserError, match="--slice_cols: 'sexx' is not a feature column of cohort.csv; feature columns: age, sex"):
        check_slice_columns(["sex", "sexx"], ["age", "sex"], "cohort.csv")
