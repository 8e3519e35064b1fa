import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from imbalance.demo import DEMO_LABELS, main, make_demo_cohort
from imbalance.errors import UserError

NUMERIC = [
    "age", "bmi", "systolic_bp", "diastolic_bp", "fasting_glucose", "hba1c",
    "total_cholesterol", "hdl_cholesterol", "ldl_cholesterol", "egfr",
]
CATEGORICAL = [
    "sex", "race_ethnicity", "smoking_status", "physical_activity", "on_bp_medication",
    "family_history_cvd", "education",
]
LABELS = [
    "label_diabetes", "label_ckd", "label_heart_failure", "label_atrial_fibrillation",
    "label_stroke",
]
# The generator aims at these; kept here so a silent change to the targets fails a test.
TARGETS = dict(zip(LABELS, [0.075, 0.04, 0.025, 0.03, 0.015]))
MISSING = {"hba1c": 0.08, "hdl_cholesterol": 0.05, "ldl_cholesterol": 0.05,
           "education": 0.03, "physical_activity": 0.02}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_demo_cohort()


def test_same_seed_gives_identical_frame_and_other_seed_differs():
    a = make_demo_cohort(3000, seed=7)
    pd.testing.assert_frame_equal(a, make_demo_cohort(3000, seed=7), check_exact=True)
    b = make_demo_cohort(3000, seed=8)
    assert not a.equals(b)
    assert (a["bmi"] != b["bmi"]).mean() > 0.5
    assert not a[LABELS].equals(b[LABELS])


def test_shape_columns_and_ids(cohort):
    assert tuple(DEMO_LABELS) == tuple(LABELS)
    assert cohort.columns[0] == "patient_id"
    assert list(cohort.columns[-5:]) == LABELS
    assert sorted(cohort.columns) == sorted(["patient_id", *NUMERIC, *CATEGORICAL, *LABELS])
    assert cohort.shape[0] == 20_000
    assert cohort["patient_id"].is_unique
    assert cohort["patient_id"].iloc[0] == "P000001"
    assert cohort["patient_id"].str.fullmatch(r"P\d{6}").all()


def test_feature_values_are_plausible(cohort):
    assert cohort["age"].between(45, 85).all()
    assert 60 < cohort["age"].mean() < 68
    assert set(cohort["sex"]) == {"F", "M"}
    assert set(cohort["smoking_status"]) == {"never", "former", "current"}
    assert set(cohort["physical_activity"].dropna()) == {"low", "moderate", "high"}
    assert set(cohort["on_bp_medication"]) == {"Yes", "No"}
    assert set(cohort["family_history_cvd"]) == {"t", "f"}
    assert 3 <= cohort["race_ethnicity"].nunique() <= 6
    assert 3 <= cohort["education"].nunique() <= 6
    ranges = {"bmi": (15, 65), "systolic_bp": (80, 230), "diastolic_bp": (40, 140),
              "fasting_glucose": (60, 400), "hba1c": (4, 14), "total_cholesterol": (60, 450),
              "hdl_cholesterol": (15, 120), "ldl_cholesterol": (30, 270), "egfr": (5, 140)}
    for col, (lo, hi) in ranges.items():
        assert cohort[col].dropna().between(lo, hi).all(), col
    assert (cohort["systolic_bp"] - cohort["diastolic_bp"] >= 20).all()


def test_features_correlate_plausibly(cohort):
    corr = cohort[NUMERIC].corr()
    assert corr.loc["bmi", "fasting_glucose"] > 0.2
    assert corr.loc["bmi", "systolic_bp"] > 0.1
    assert corr.loc["age", "systolic_bp"] > 0.1
    assert corr.loc["age", "egfr"] < -0.3
    assert corr.loc["fasting_glucose", "hba1c"] > 0.6
    assert corr.loc["bmi", "hdl_cholesterol"] < -0.1
    treated = cohort["on_bp_medication"] == "Yes"
    assert cohort.loc[treated, "age"].mean() > cohort.loc[~treated, "age"].mean()


def test_labels_are_binary_with_rare_prevalence(cohort):
    for label in LABELS:
        assert cohort[label].dtype == np.int64
        assert set(cohort[label].unique()) == {0, 1}
        assert 0.01 <= cohort[label].mean() <= 0.08, label


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prevalence_tracks_target_at_small_sizes(seed):
    n = 2000
    df = make_demo_cohort(n, seed=seed)
    for label, p in TARGETS.items():
        tolerance = 4 * math.sqrt(p * (1 - p) / n)
        assert abs(df[label].mean() - p) < tolerance, (label, df[label].mean())


def test_missing_values_where_expected(cohort):
    assert set(cohort.columns[cohort.isna().any()]) == set(MISSING)
    for col, rate in MISSING.items():
        assert rate / 2 < cohort[col].isna().mean() < rate * 1.5, col
    # A lipid panel is all-or-nothing.
    assert cohort["hdl_cholesterol"].isna().equals(cohort["ldl_cholesterol"].isna())
    assert cohort[["patient_id", *LABELS]].notna().all().all()


def test_missingness_does_not_leak_the_label(cohort):
    blank = cohort["hba1c"].isna()
    gap = cohort.loc[blank, "label_diabetes"].mean() - cohort.loc[~blank, "label_diabetes"].mean()
    assert abs(gap) < 0.03


def test_labels_depend_on_each_other(cohort):
    def lift(outcome: str, cause: str) -> float:
        rates = cohort.groupby(cause)[outcome].mean()
        return rates[1] / rates[0]

    pairs = [("label_ckd", "label_diabetes"),
             ("label_heart_failure", "label_diabetes"),
             ("label_heart_failure", "label_ckd"),
             ("label_atrial_fibrillation", "label_heart_failure"),
             ("label_stroke", "label_atrial_fibrillation")]
    for outcome, cause in pairs:
        assert lift(outcome, cause) > 1.5, (outcome, cause)


def test_labels_depend_on_each_other_beyond_shared_features(cohort):
    # Shared risk factors alone make comorbidities co-occur; the direct link shows up as a
    # clearly positive coefficient on the earlier label once the features are adjusted for.
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(drop="first"), ["sex", "smoking_status", "on_bp_medication"]),
    ])
    x = prep.fit_transform(cohort)
    for outcome, cause in [("label_ckd", "label_diabetes"),
                           ("label_heart_failure", "label_ckd"),
                           ("label_stroke", "label_atrial_fibrillation")]:
        design = np.column_stack([x, cohort[cause].to_numpy()])
        model = LogisticRegression(C=100.0, max_iter=2000).fit(design, cohort[outcome])
        assert model.coef_[0, -1] > 0.5, (outcome, cause, model.coef_[0, -1])


def test_labels_are_learnable_but_not_separable(cohort):
    train, test = train_test_split(cohort, test_size=0.3, random_state=0)
    features = NUMERIC + CATEGORICAL
    for label in LABELS:
        prep = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
        ])
        model = make_pipeline(prep, LogisticRegression(max_iter=1000))
        model.fit(train[features], train[label])
        auc = roc_auc_score(test[label], model.predict_proba(test[features])[:, 1])
        assert 0.7 < auc < 0.97, (label, auc)


def test_cli_writes_csv_that_reads_back_equal(tmp_path, capsys):
    out = tmp_path / "nested" / "demo.csv"
    main(["--out", str(out), "--rows", "600", "--seed", "3"])
    pd.testing.assert_frame_equal(pd.read_csv(out), make_demo_cohort(600, seed=3))
    assert [p.name for p in out.parent.iterdir()] == ["demo.csv"]  # no temp file left
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "600" in printed[0] and "stroke" in printed[0]


def test_rejects_too_few_rows(tmp_path):
    with pytest.raises(UserError):
        make_demo_cohort(10)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.csv"), "--rows", "0"])
    assert not (tmp_path / "x.csv").exists()
