"""Synthetic clinical cohort so the toolkit can be tried end to end without a real CSV.

The cohort mimics a primary-care screening table: mixed numeric and categorical features
with plausible units and correlations, some missing values, and five rare comorbidity
outcomes that depend on the features and on each other.  Everything is derived from one
``numpy.random.default_rng(seed)`` stream, so a given ``(n_rows, seed)`` always yields the
same frame.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .files import write_csv

__all__ = ["DEMO_LABELS", "make_demo_cohort", "main"]

log = logging.getLogger(__name__)

DEMO_LABELS: tuple[str, ...] = (
    "label_diabetes",
    "label_ckd",
    "label_heart_failure",
    "label_atrial_fibrillation",
    "label_stroke",
)

# Target prevalences, in the causal order the outcomes are generated.
_PREVALENCE = {
    "label_diabetes": 0.075,  # a little under 8% so sampling noise stays inside the 1-8% band
    "label_ckd": 0.04,
    "label_heart_failure": 0.025,
    "label_atrial_fibrillation": 0.03,
    "label_stroke": 0.015,
}

# Fraction of values blanked per column; a lipid panel is either done or not, so HDL and
# LDL go missing together.
_MISSING = {"hba1c": 0.08, "lipids": 0.05, "education": 0.03, "physical_activity": 0.02}

_MIN_ROWS = 100


def _draw(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Index of one category per row; rows of ``p`` are per-patient probabilities, which
    lets a category depend on other features."""
    idx = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return np.minimum(idx, p.shape[1] - 1)


def _choice(rng: np.random.Generator, levels: list[str], p: np.ndarray) -> np.ndarray:
    return np.asarray(levels, dtype=object)[_draw(rng, p)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _intercept_for(eta: np.ndarray, prevalence: float) -> float:
    """Solve for the intercept whose mean risk equals the target, so prevalence holds
    whatever the cohort size or the strength of the other coefficients."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if _sigmoid(mid + eta).mean() < prevalence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _features(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Complete (latent) features; the outcome model sees these before any blanking."""
    age = np.clip(rng.normal(64, 9, n), 45, 85).round()
    female = rng.random(n) < 0.52
    race = _choice(
        rng,
        ["White", "Black", "Hispanic", "Asian", "Other"],
        np.tile([0.60, 0.13, 0.17, 0.07, 0.03], (n, 1)),
    )
    black, hispanic, asian = race == "Black", race == "Hispanic", race == "Asian"

    educ_levels = ["less_than_high_school", "high_school", "some_college", "bachelors_or_higher"]
    educ_rank = _draw(rng, np.tile([0.12, 0.30, 0.28, 0.30], (n, 1)))  # 0 = least schooling
    education = np.asarray(educ_levels, dtype=object)[educ_rank]

    # Schooling raises activity and lowers smoking; activity also falls with age.
    shift = 0.35 * (educ_rank - 1.5) - 0.03 * (age - 64)
    act_logits = np.stack([-shift, np.full(n, 0.3), shift - 0.4], axis=1)
    act_p = np.exp(act_logits) / np.exp(act_logits).sum(axis=1, keepdims=True)
    activity = _choice(rng, ["low", "moderate", "high"], act_p)
    active = np.select([activity == "low", activity == "high"], [-1.0, 1.0], 0.0)
    p_current = np.clip(0.22 - 0.04 * educ_rank - 0.002 * (age - 64), 0.04, 0.4)
    p_former = np.clip(0.22 + 0.005 * (age - 64), 0.1, 0.45)
    smoking = _choice(rng, ["current", "former", "never"],
                      np.stack([p_current, p_former, 1 - p_current - p_former], axis=1))
    current = smoking == "current"

    bmi = 28.5 - 1.4 * active - 1.0 * asian + 1.0 * (black | hispanic) - 0.6 * current
    bmi = np.clip(bmi + rng.gamma(4.0, 2.5, n) - 10.0, 16.5, 60).round(1)

    sbp_latent = (117 + 0.6 * (age - 45) + 0.8 * (bmi - 25) + 4 * black - 2.5 * female
                  + rng.normal(0, 15, n))
    on_med = rng.random(n) < _sigmoid(-0.4 + 0.06 * (sbp_latent - 135) + 0.04 * (age - 64))
    sbp = np.clip(sbp_latent - 9 * on_med, 88, 220).round()
    dbp = 22 + 0.42 * sbp - 0.12 * (age - 64) + rng.normal(0, 7, n)
    dbp = np.clip(dbp, 48, sbp - 20).round()  # keep a physiological pulse pressure

    family_cvd = rng.random(n) < 0.27
    glucose = (78 + 1.1 * (bmi - 25) + 0.2 * (age - 45) + 3 * (hispanic | black | asian)
               - 1.5 * active + rng.lognormal(2.6, 0.75, n))
    glucose = np.clip(glucose, 65, 350).round()
    # ADAG relation between mean glucose and HbA1c, plus biological scatter.
    hba1c = (glucose + 46.7) / 28.7 + 0.35 + 0.15 * black + rng.normal(0, 0.35, n)
    hba1c = np.clip(hba1c, 4.0, 14.0).round(1)

    hdl = 52 + 9 * female - 0.7 * (bmi - 27) + 2.5 * active - 4 * current + rng.normal(0, 11, n)
    hdl = np.clip(hdl, 22, 110).round()
    trig = np.clip(rng.lognormal(np.log(120) + 0.02 * (bmi - 27), 0.45, n), 40, 900)
    ldl = np.clip(118 + 0.35 * (age - 64) - 12 * on_med + rng.normal(0, 30, n), 35, 260).round()
    total_chol = (ldl + hdl + trig / 5).round()  # Friedewald identity

    egfr = (98 - 0.85 * (age - 45) - 0.12 * (sbp - 125) - 0.08 * (glucose - 100)
            + 5 * black + rng.normal(0, 11, n))
    egfr = np.clip(egfr, 8, 135).round()

    return {
        "age": age, "female": female, "race_ethnicity": race, "education": education,
        "physical_activity": activity, "active": active, "smoking_status": smoking,
        "current": current, "former": smoking == "former", "bmi": bmi, "systolic_bp": sbp,
        "diastolic_bp": dbp, "on_bp_medication": on_med, "family_history_cvd": family_cvd,
        "fasting_glucose": glucose, "hba1c": hba1c, "total_cholesterol": total_chol,
        "hdl_cholesterol": hdl, "ldl_cholesterol": ldl, "egfr": egfr, "black": black,
    }


def _outcomes(rng: np.random.Generator, f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draw the comorbidities in causal order so earlier ones feed later risks."""
    age, sbp, bmi, male = f["age"] - 64, f["systolic_bp"] - 130, f["bmi"] - 28, ~f["female"]
    y: dict[str, np.ndarray] = {}

    def draw(name: str, eta: np.ndarray) -> None:
        p = _sigmoid(_intercept_for(eta, _PREVALENCE[name]) + eta)
        y[name] = (rng.random(len(eta)) < p).astype(np.int64)

    draw("label_diabetes", 0.035 * (f["fasting_glucose"] - 100) + 0.9 * (f["hba1c"] - 5.7)
         + 0.05 * bmi + 0.015 * age + 0.3 * (f["active"] < 0) + 0.25 * f["family_history_cvd"])
    draw("label_ckd", -0.09 * (f["egfr"] - 75) + 0.015 * sbp + 0.02 * age + 0.3 * f["black"]
         + 1.1 * y["label_diabetes"])
    draw("label_heart_failure", 0.075 * age + 0.06 * bmi + 0.02 * sbp + 0.4 * male
         + 0.6 * f["current"] + 0.4 * f["on_bp_medication"] + 0.9 * y["label_diabetes"]
         + 1.0 * y["label_ckd"])
    draw("label_atrial_fibrillation", 0.1 * age + 0.05 * bmi + 0.008 * sbp + 0.45 * male
         + 0.2 * (f["active"] > 0) + 1.3 * y["label_heart_failure"])
    draw("label_stroke", 0.075 * age + 0.03 * sbp + 0.6 * f["current"] + 0.2 * f["former"]
         + 0.35 * f["family_history_cvd"] - 0.006 * (f["hdl_cholesterol"] - 50)
         + 0.5 * y["label_diabetes"] + 1.4 * y["label_atrial_fibrillation"])
    return y


def make_demo_cohort(n_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Build the demo cohort; features come first, then outcomes, then missingness, so that
    blanked values still drove the risk and missingness carries no label information."""
    if int(n_rows) != n_rows or n_rows < _MIN_ROWS:
        raise UserError(f"demo cohort needs an integer row count >= {_MIN_ROWS}, got {n_rows}")
    n = int(n_rows)
    rng = np.random.default_rng(seed)
    f = _features(rng, n)
    y = _outcomes(rng, f)

    df = pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in range(1, n + 1)],
        "age": f["age"].astype(np.int64),
        "sex": np.where(f["female"], "F", "M").astype(object),
        "race_ethnicity": f["race_ethnicity"],
        "bmi": f["bmi"],
        "systolic_bp": f["systolic_bp"].astype(np.int64),
        "diastolic_bp": f["diastolic_bp"].astype(np.int64),
        "fasting_glucose": f["fasting_glucose"].astype(np.int64),
        "hba1c": f["hba1c"],
        "total_cholesterol": f["total_cholesterol"].astype(np.int64),
        "hdl_cholesterol": f["hdl_cholesterol"],
        "ldl_cholesterol": f["ldl_cholesterol"],
        "egfr": f["egfr"].astype(np.int64),
        "smoking_status": f["smoking_status"],
        "physical_activity": f["physical_activity"],
        "on_bp_medication": np.where(f["on_bp_medication"], "Yes", "No").astype(object),
        "family_history_cvd": np.where(f["family_history_cvd"], "t", "f").astype(object),
        "education": f["education"],
        **y,
    })

    lipids = rng.random(n) < _MISSING["lipids"]
    df.loc[lipids, ["hdl_cholesterol", "ldl_cholesterol"]] = np.nan
    for col in ("hba1c", "education", "physical_activity"):
        df.loc[rng.random(n) < _MISSING[col], col] = np.nan

    log.debug("demo cohort: %d rows, seed %d, prevalence %s", n, seed,
              {k: round(float(df[k].mean()), 4) for k in DEMO_LABELS})
    return df


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m imbalance.demo", description="Write the synthetic demo cohort as CSV."
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--rows", type=int, default=20_000, help="number of patients")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)

    try:
        df = make_demo_cohort(args.rows, args.seed)
    except UserError as exc:
        parser.error(str(exc))
    out: Path = args.out
    if out.is_dir():
        parser.error(f"--out '{out}' is a folder; name a CSV file")
    if out.exists() and not args.overwrite:
        parser.error(f"--out '{out}' exists; pass --overwrite to replace it")
    try:
        write_csv(out, df, index=False)
    except UserError as exc:
        parser.error(str(exc))
    prevalence = ", ".join(f"{k.removeprefix('label_')} {df[k].mean():.1%}" for k in DEMO_LABELS)
    print(f"wrote {len(df)} rows to {out}; prevalence: {prevalence}")


if __name__ == "__main__":
    main()
