"""Synthetic-vs-real quality report, duplicate mask, gate and Markdown (imbalance/synthetic_quality.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from imbalance.preprocessing import TabularPreprocessor
from imbalance.synthetic_quality import duplicate_mask, gate_failures, quality_report, quality_summary, report_markdown

N = 800
KINDS = ["numeric", "numeric", "numeric", "categorical", "categorical"]
NAMES = ["age", "dose", "score", "ward", "sex"]
WARD_P = (0.5, 0.3, 0.2)


def _mixed(n, seed, *, shift=0.0, ward_p=WARD_P):
    """3 correlated standardised numerics (the first shifted by ``shift``) and 2 category codes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    num = np.c_[z[:, 0] + shift, 0.6 * z[:, 0] + 0.8 * z[:, 1], z[:, 2]]
    ward = rng.choice(3, size=n, p=ward_p)
    sex = rng.choice(2, size=n, p=(0.7, 0.3))
    return np.c_[num, ward, sex].astype(np.float64)


def _report(real, synthetic, kinds=KINDS, names=NAMES, **kw):
    return quality_report(real, synthetic, kinds=kinds, names=names, **kw)


@pytest.fixture(scope="module")
def same():
    return _report(_mixed(N, 1), _mixed(N, 2))


@pytest.fixture(scope="module")
def shifted():
    return _report(_mixed(N, 1), _mixed(N, 2, shift=2.0, ward_p=(0.2, 0.3, 0.5)))


# -- samples of one distribution vs shifted ones ------------------------------------------------
def test_two_samples_of_one_distribution_look_alike(same):
    assert same["n_real"] == N and same["n_synthetic"] == N and same["exact_duplicates"] == 0
    assert abs(same["discriminative_auroc"] - 0.5) < 0.1
    assert 0.0 <= same["mmd"]["mmd2"] < 0.01 and same["mmd"]["bandwidth"] > 0
    assert sum(s["ks_pvalue"] > 0.01 for s in same["numeric"].values()) >= 2
    assert all(s["chi2_pvalue"] > 0.001 for s in same["categorical"].values())
    assert same["privacy"]["near_copy_share"] < 0.1
    assert same["coverage"] > 0.9
    assert 0.9 < same["diversity"] < 1.1
    assert same["numeric"]["age"]["real_mean"] == pytest.approx(0.0, abs=0.15)
    assert same["numeric"]["age"]["real_std"] == pytest.approx(1.0, abs=0.1)
    assert same["categorical"]["ward"]["real"]["0"] == pytest.approx(0.5, abs=0.05)


def test_shifted_sets_are_told_apart(same, shifted):
    assert shifted["discriminative_auroc"] > 0.9
    assert shifted["mmd"]["mmd2"] > 10 * max(same["mmd"]["mmd2"], 0.005)
    age = shifted["numeric"]["age"]
    assert age["ks_pvalue"] < 1e-6 and age["synthetic_mean"] - age["real_mean"] == pytest.approx(2.0, abs=0.2)
    assert shifted["numeric"]["score"]["ks_pvalue"] > 1e-3  # the unshifted feature is not blamed
    ward = shifted["categorical"]["ward"]
    assert ward["chi2_pvalue"] < 1e-6
    assert ward["max_share_diff_level"] in ("0", "2") and abs(ward["max_share_diff"]) == pytest.approx(0.3, abs=0.06)
    assert shifted["categorical"]["sex"]["chi2_pvalue"] > 1e-3
    assert shifted["coverage"] < same["coverage"]


# -- copies --------------------------------------------------------------------------------------
def test_near_copies_are_flagged_but_not_counted_as_exact():
    real = _mixed(N, 1)
    synthetic = real.copy()
    synthetic[:, :3] += np.random.default_rng(3).normal(scale=1e-4, size=(N, 3))
    report = _report(real, synthetic)
    assert report["privacy"]["near_copy_share"] > 0.9
    assert report["privacy"]["dcr_median"] < 1e-3 < report["privacy"]["real_nn_median"]
    assert report["exact_duplicates"] == 0 and not duplicate_mask(real, synthetic).any()


def test_exact_copies_are_counted_and_masked():
    real, fresh = _mixed(200, 1), _mixed(50, 2)
    synthetic = np.vstack([fresh[:20], real[:30], fresh[20:]])
    mask = duplicate_mask(real, synthetic)
    assert mask.tolist() == [False] * 20 + [True] * 30 + [False] * 30
    assert _report(real, synthetic)["exact_duplicates"] == 30


def test_duplicate_mask_rounds_to_1e9_and_ignores_the_sign_of_zero():
    real = np.array([[0.0, 1.0], [1.0, 2.0]])
    synthetic = np.array([[-0.0, 1.0 + 1e-12], [1.0, 2.0 + 1e-6], [1.0, 2.0], [5.0, 5.0]])
    assert duplicate_mask(real, synthetic).tolist() == [True, False, True, False]


def test_collapsed_generator_has_no_diversity():
    real = _mixed(N, 1)
    synthetic = np.tile(real[7], (300, 1))
    report = _report(real, synthetic)
    assert report["diversity"] < 0.01
    assert report["coverage"] < 0.1
    assert report["discriminative_auroc"] > 0.95


# -- small hand-made cases with known answers ---------------------------------------------------
def test_mmd_of_two_point_masses_has_the_closed_form():
    # Pooled pairwise distances: 12 zeros within the groups, 16 of 3.0 across -> bandwidth 3, and
    # MMD^2 = 1 + 1 - 2 exp(-3^2 / (2 * 3^2)).
    real, synthetic = np.zeros((4, 1)), np.full((4, 1), 3.0)
    report = _report(real, synthetic, kinds=["numeric"], names=["x"])
    assert report["mmd"]["bandwidth"] == pytest.approx(3.0)
    assert report["mmd"]["mmd2"] == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-5)
    assert _report(real, real.copy(), kinds=["numeric"], names=["x"])["mmd"]["mmd2"] == 0.0  # clipped at 0


def test_diversity_of_a_half_size_square_is_one_half():
    square = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    report = _report(square, 0.5 * square, kinds=["numeric"] * 2, names=["a", "b"])
    assert report["diversity"] == pytest.approx(0.5, rel=1e-5)


def test_privacy_distances_on_a_line():
    # Real 1-NN distances 1, 1, 2, 3: median 1.5, 5th percentile 1. Synthetic DCRs 0.001, 4, 0.5.
    real, synthetic = np.array([[0.0], [1.0], [3.0], [6.0]]), np.array([[0.001], [10.0], [3.5]])
    privacy = _report(real, synthetic, kinds=["numeric"], names=["x"])["privacy"]
    assert privacy["real_nn_median"] == pytest.approx(1.5) and privacy["real_nn_p05"] == pytest.approx(1.0)
    assert privacy["dcr_median"] == pytest.approx(0.5)
    assert privacy["near_copy_share"] == pytest.approx(2 / 3)


def test_categorical_shares_and_chi_square_by_hand():
    # Table [[2, 1, 1], [1, 3, 0]]; expected counts 1.5, 2, 0.5 per row -> chi2 = 1/3 + 1 + 1.
    real, synthetic = np.array([[0.0], [0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [1.0], [1.0]])
    cat = _report(real, synthetic, kinds=["categorical"], names=["c"])["categorical"]["c"]
    assert cat["real"] == {"0": 0.5, "1": 0.25, "2": 0.25}
    assert cat["synthetic"] == {"0": 0.25, "1": 0.75, "2": 0.0}
    assert cat["chi2"] == pytest.approx(7 / 3)
    assert cat["max_share_diff_level"] == "1" and cat["max_share_diff"] == pytest.approx(0.5)
    single = _report(real * 0, synthetic * 0, kinds=["categorical"], names=["c"])["categorical"]["c"]
    assert (single["chi2"], single["chi2_pvalue"]) == (0.0, 1.0)


# -- decoded frames -------------------------------------------------------------------------------
def test_per_feature_tables_use_original_units_and_level_names():
    rng = np.random.default_rng(0)

    def frame(n, age_mean):
        age = rng.normal(age_mean, 10, n)
        age[:5] = np.nan  # gives an age__missing indicator, which the decoded frame has no column for
        return pd.DataFrame({"age": age, "colour": rng.choice(["red", "green", "blue"], n)})

    real_df, synth_df = frame(300, 50.0), frame(200, 60.0)
    pre = TabularPreprocessor(min_category_count=1).fit(real_df)
    names, kinds = zip(*pre.compact_columns)
    real, synthetic = pre.transform(real_df).compact(), pre.transform(synth_df).compact()
    report = quality_report(real, synthetic, kinds=kinds, names=names,
                            real_frame=pre.decode(real), synthetic_frame=pre.decode(synthetic))
    age = report["numeric"]["age"]
    assert age["real_mean"] == pytest.approx(real_df["age"].mean(), rel=1e-6)
    assert age["synthetic_mean"] == pytest.approx(synth_df["age"].mean(), rel=1e-6)
    assert age["real_std"] == pytest.approx(real_df["age"].std(), rel=1e-6)
    assert set(report["categorical"]["colour"]["real"]) == {"red", "green", "blue"}
    assert report["categorical"]["age__missing"]["real"]["1"] == pytest.approx(5 / 300)
    compact_only = quality_report(real, synthetic, kinds=kinds, names=names)
    assert abs(compact_only["numeric"]["age"]["real_mean"]) < 0.1  # standardised without the frames


# -- gate, JSON, Markdown -------------------------------------------------------------------------
def test_gate_names_the_measured_values_and_limits():
    report = {"discriminative_auroc": 0.934, "privacy": {"near_copy_share": 0.25}}
    reasons = gate_failures(report, max_discriminative_auroc=0.8, max_near_copy_share=0.1)
    assert len(reasons) == 2
    assert "0.934" in reasons[0] and "0.800" in reasons[0] and "AUROC" in reasons[0]
    assert "0.250" in reasons[1] and "0.100" in reasons[1] and "near-copy" in reasons[1]
    assert gate_failures(report, max_discriminative_auroc=0.95, max_near_copy_share=0.3) == []


def test_gate_passes_alike_samples_and_stops_shifted_ones(same, shifted):
    assert gate_failures(same, max_discriminative_auroc=0.7, max_near_copy_share=0.2) == []
    reasons = gate_failures(shifted, max_discriminative_auroc=0.7, max_near_copy_share=0.2)
    assert len(reasons) == 1 and f"{shifted['discriminative_auroc']:.3f}" in reasons[0]


def test_gate_does_not_fail_on_unmeasured_values(caplog):
    report = {"discriminative_auroc": float("nan"), "privacy": {"near_copy_share": float("nan")}}
    assert gate_failures(report, max_discriminative_auroc=0.7, max_near_copy_share=0.1) == []
    assert "could not be measured" in caplog.text


def test_report_is_json_and_markdown_names_every_feature(shifted):
    back = json.loads(json.dumps(shifted, allow_nan=True))
    assert back["numeric"]["age"]["ks_pvalue"] == shifted["numeric"]["age"]["ks_pvalue"]
    page = report_markdown(shifted, title="Minority SMOTE rows")
    assert page.startswith("# Minority SMOTE rows")
    for name in NAMES:
        assert f"| {name} |" in page
    assert "easily told apart" in page and f"{shifted['discriminative_auroc']:.3f}" in page


# -- shapes and sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize("cols", [[0, 1, 2], [3, 4]], ids=["numeric-only", "categorical-only"])
def test_one_kind_of_column_only(cols):
    real, synthetic = _mixed(300, 1)[:, cols], _mixed(300, 2)[:, cols]
    report = _report(real, synthetic, kinds=[KINDS[c] for c in cols], names=[NAMES[c] for c in cols])
    json.dumps(report, allow_nan=True)
    assert 0.35 < report["discriminative_auroc"] < 0.65
    assert len(report["numeric"]) + len(report["categorical"]) == len(cols)
    assert all(NAMES[c] in report_markdown(report) for c in cols)


def test_very_few_rows_do_not_crash():
    report = _report(_mixed(6, 1), _mixed(4, 2))
    json.dumps(report, allow_nan=True)
    assert report["discriminator"]["folds"] == 4 and report["rows_compared"]["balanced"] == 4
    assert report["coverage_k"] == 3
    report_markdown(report)
    single = _report(_mixed(1, 1), _mixed(1, 2))
    assert math.isnan(single["discriminative_auroc"]) and math.isnan(single["privacy"]["near_copy_share"])
    assert math.isnan(single["mmd"]["mmd2"]) and math.isnan(single["numeric"]["age"]["real_std"])
    assert "n/a" in report_markdown(single)


def test_subsampling_is_capped_and_seeded():
    real, synthetic = _mixed(600, 1), _mixed(500, 2)
    a = _report(real, synthetic, max_rows=100, seed=5)
    assert a["rows_compared"] == {"real": 100, "synthetic": 100, "balanced": 100}
    assert a["n_real"] == 600 and sum(a["categorical"]["sex"]["real"].values()) == pytest.approx(1.0)
    assert json.dumps(a, allow_nan=True) == json.dumps(_report(real, synthetic, max_rows=100, seed=5), allow_nan=True)
    assert a["privacy"] != _report(real, synthetic, max_rows=100, seed=6)["privacy"]  # other rows drawn


def test_bad_inputs_are_refused():
    real = _mixed(10, 1)
    with pytest.raises(ValueError, match="column counts"):
        _report(real, real[:, :4])
    with pytest.raises(ValueError, match="kind"):
        _report(real, real, kinds=["numeric"] * 4 + ["binary"])
    with pytest.raises(ValueError, match="at least one"):
        _report(real, real[:0])
    with pytest.raises(ValueError, match="both"):
        _report(real, real, real_frame=pd.DataFrame(real))


def test_multilabel_report_gates_on_every_label():
    rng = np.random.default_rng(7)
    same = quality_report(rng.normal(size=(80, 2)), rng.normal(size=(60, 2)), kinds=["numeric"] * 2, names=["a", "b"], seed=0)
    shifted = quality_report(rng.normal(size=(80, 2)), rng.normal(size=(60, 2)) + 3, kinds=["numeric"] * 2, names=["a", "b"], seed=0)
    report = {**same, "label": "common", "per_label": {"common": same, "rare": shifted}}
    reasons = gate_failures(report, max_discriminative_auroc=0.85, max_near_copy_share=1.0)
    assert len(reasons) == 1 and reasons[0].startswith("label 'rare': discriminative AUROC")
    text = report_markdown(report)
    assert "| rare |" in text and "| common |" in text


def test_quality_summary_keeps_headlines_and_drops_tables():
    rng = np.random.default_rng(3)
    report = quality_report(rng.normal(size=(50, 2)), rng.normal(size=(40, 2)), kinds=["numeric"] * 2, names=["a", "b"], seed=0)
    summary = quality_summary({**report, "per_label": {"x": report}})
    assert summary["discriminative_auroc"] == report["discriminative_auroc"] and "numeric" not in summary
    assert summary["per_label"]["x"]["privacy"] == report["privacy"]
