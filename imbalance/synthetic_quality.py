"""How close synthetic minority rows are to the real training minority rows, before they are mixed in.

A synthetic row can hurt training in two opposite ways: it can be *unlike* the real rows (the model
learns generator artefacts) or *too like* one real row (a near-copy that adds no information and
leaks that row). The report measures both, in the compact space of
:meth:`imbalance.preprocessing.TabularPreprocessor.encode` (numerics standardised, categories as
integer codes):

- per feature: means/stds with a KS test (numeric), level shares with a chi-square test (categorical);
- jointly: RBF-kernel MMD, and the cross-validated AUROC of a classifier telling real from synthetic;
- privacy: distance of each synthetic row to its closest real row, against real rows' own spacing;
- coverage (does the synthetic set reach all of the real rows?) and diversity (is it spread out?).

Distances use the one-hot/standardised space, i.e. the features the model sees. The pairwise and
model-based parts run on seeded subsamples of at most ``max_rows`` rows per side.

On the rows in their original columns, SDMetrics' quality report adds **column shapes** (per
column: 1 - KS statistic for numbers, 1 - total variation distance for levels) and **column pair
trends** (per pair of columns: how well correlations and contingency tables survive).

**The overall score** (0-100, with a grade: A from 90, B from 80, C from 70, D from 60, else F) is
the weighted mean of five parts, each from 0 (bad) to 1 (as good as real rows):

    column shapes       0.25   SDMetrics
    column pair trends  0.25   SDMetrics
    indistinguishable   0.25   1 - 2 x (discriminative AUROC - 0.5), 0 at AUROC 1
    novelty             0.15   1 at <= 5% near-copies (what real rows show among themselves), 0 at >= 50%
    coverage            0.10   coverage / 0.97 (0.97: a perfect generator's), at most 1

A part that could not be measured (too few rows) is left out and the weights of the others
rescaled. Recommendations name what pulled the score down and the setting to change.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "quality_summary", "quality_report", "duplicate_mask", "gate_failures", "report_markdown", "overall_score", "score_text",
    "GRADES"]

logger = logging.getLogger(__name__)

KINDS = ("numeric", "categorical")
CV_FOLDS = 5
# Coverage asks whether each real row has a synthetic row inside the ball reaching its k-th nearest
# real neighbour (Naeem et al. 2020, "density and coverage"); k=5 makes a perfect generator score
# about 0.97 rather than the coin flip that a 1-NN radius gives.
COVERAGE_K = 5
NEAR_COPY_PERCENTILE = 5.0
BANDWIDTH_ROWS = 1000  # the median heuristic is stable on a pooled sample of this size
BLOCK_ROWS = 1024
MISSING_LEVEL = "<missing>"
SCORE_WEIGHTS = {"column_shapes": 0.25, "column_pair_trends": 0.25, "indistinguishable": 0.25, "novelty": 0.15, "coverage": 0.10}
GRADES = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"), (-math.inf, "F"))
PERFECT_COVERAGE = 0.97  # what a perfect generator scores with COVERAGE_K = 5
MAX_PAIR_COLUMNS = 40  # column pair trends grow with the square of the columns: a seeded subset beyond this
SMOTE_LIKE = ("smote", "smotenc", "smoten", "borderline_smote", "svm_smote", "kmeans_smote", "adasyn", "smote_enn",
              "smote_tomek", "mlsmote")


# -- exact duplicates ---------------------------------------------------------------------------
def duplicate_mask(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Boolean mask over synthetic rows that equal some real row after rounding to 1e-9.

    Callers drop these before mixing: an exact copy adds no new information, only weight on one
    real row, and it would reproduce a training record verbatim.
    """
    real, synthetic = _matrix(real, "real"), _matrix(synthetic, "synthetic")
    if real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"real has {real.shape[1]} columns but synthetic has {synthetic.shape[1]}")
    seen = {row.tobytes() for row in _rounded(real)}
    return np.fromiter((row.tobytes() in seen for row in _rounded(synthetic)), dtype=bool, count=len(synthetic))


def _rounded(x: np.ndarray) -> np.ndarray:
    # "+ 0.0" turns -0.0 into 0.0, so the byte comparison does not tell them apart.
    return np.ascontiguousarray(np.round(x, 9) + 0.0)


# -- the report ---------------------------------------------------------------------------------
def quality_report(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    kinds: Sequence[str],
    names: Sequence[str],
    real_frame: Optional[pd.DataFrame] = None,
    synthetic_frame: Optional[pd.DataFrame] = None,
    seed: int = 0,
    max_rows: int = 5000,
    frame_kinds: Optional[dict[str, str]] = None,
    method: str = "",
    k_neighbors: Optional[int] = None,
) -> dict:
    """Compare synthetic minority rows with real ones; returns a plain JSON-ready dict.

    ``real``/``synthetic`` are compact matrices (one column per feature, ``kinds[j]`` "numeric" or
    "categorical"). The frames, when given, are the same rows decoded to original units and level
    names and are used only for the per-feature tables, so those read in the user's terms.
    Values that cannot be measured with so few rows are NaN. With ``frame_kinds`` (each frame
    column's kind: numeric, binary or categorical) SDMetrics' column shapes and pair trends are
    measured on the frames; ``method`` (and ``k_neighbors``) make the recommendations specific.
    """
    real, synthetic = _matrix(real, "real"), _matrix(synthetic, "synthetic")
    kinds, names = [str(k) for k in kinds], [str(n) for n in names]
    _check_inputs(real, synthetic, kinds, names, real_frame, synthetic_frame, max_rows)
    rng = np.random.default_rng(seed)
    # Random orders, so that any prefix is a random subset too (used to balance the two sides).
    real_sub = real[rng.permutation(len(real))[:max_rows]]
    synth_sub = synthetic[rng.permutation(len(synthetic))[:max_rows]]
    real_x, synth_x = _distance_space(real_sub, synth_sub, kinds)
    n_bal = min(len(real_sub), len(synth_sub))

    report: dict[str, Any] = {
        "n_real": int(len(real)),
        "n_synthetic": int(len(synthetic)),
        "rows_compared": {"real": int(len(real_sub)), "synthetic": int(len(synth_sub)), "balanced": int(n_bal)},
        "seed": int(seed),
        "exact_duplicates": int(duplicate_mask(real, synthetic).sum()),
        "numeric": {},
        "categorical": {},
    }
    for j, (kind, name) in enumerate(zip(kinds, names)):
        r_col, s_col = _feature(real, real_frame, j, name), _feature(synthetic, synthetic_frame, j, name)
        if kind == "numeric":
            report["numeric"][name] = _numeric_stats(r_col, s_col)
        else:
            from_codes = real_frame is None or name not in real_frame.columns
            report["categorical"][name] = _categorical_stats(r_col, s_col, from_codes)

    pair = _pairwise(real_x, synth_x, rng)
    report["mmd"] = {"mmd2": pair["mmd2"], "bandwidth": pair["bandwidth"]}
    report["discriminative_auroc"], report["discriminator"] = _discriminative_auroc(
        real_sub[:n_bal], synth_sub[:n_bal], kinds, seed)
    dcr, real_knn = _neighbour_distances(real_x, synth_x, COVERAGE_K)
    report["privacy"] = _privacy(dcr, None if real_knn is None else real_knn[:, 0])
    k = min(COVERAGE_K, n_bal - 1)
    # With as many synthetic rows as real ones the balanced real set is all of them: reuse.
    radius = real_knn[:, k - 1] if real_knn is not None and k >= 1 and n_bal == len(real_x) else None
    report["coverage"], report["coverage_k"] = _coverage(real_x[:n_bal], synth_x[:n_bal], k, radius)
    report["diversity"] = pair["diversity"]
    if real_frame is not None and synthetic_frame is not None and frame_kinds is not None:
        report["sdmetrics"] = _sdmetrics(real_frame, synthetic_frame, frame_kinds, rng, max_rows)
    report["score"] = overall_score(report, method=method, k_neighbors=k_neighbors)
    return report


def _sdmetrics(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str], rng: np.random.Generator,
               max_rows: int) -> dict:
    """SDMetrics' quality report on the rows in their original columns (seeded subsamples)."""
    import warnings

    from sdmetrics.reports import QualityReport

    columns = [c for c in real.columns if c in kinds and c in synthetic.columns]
    pair_columns = columns if len(columns) <= MAX_PAIR_COLUMNS else sorted(rng.choice(columns, MAX_PAIR_COLUMNS, replace=False).tolist(),
                                                                           key=columns.index)

    def prepared(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.iloc[rng.permutation(len(frame))[:max_rows]][columns].reset_index(drop=True)
        return pd.DataFrame({c: (pd.to_numeric(frame[c], errors="coerce").astype("float64") if kinds[c] == "numeric"
                                 else frame[c].astype(object).where(frame[c].notna(), None).map(lambda v: v if v is None else str(v)))
                             for c in columns})

    real_rows, synthetic_rows = prepared(real), prepared(synthetic)
    metadata = {"tables": {"rows": {"columns": {c: {"sdtype": "numerical" if kinds[c] == "numeric" else "categorical"}
                                                for c in columns}}}}

    def run(cols: list[str]) -> Any:
        sub = {"tables": {"rows": {"columns": {c: metadata["tables"]["rows"]["columns"][c] for c in cols}}}}
        report = QualityReport()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report.generate({"rows": real_rows[cols]}, {"rows": synthetic_rows[cols]}, sub, verbose=False)
        return report

    full = run(columns)
    shapes = full.get_details("Column Shapes")
    properties = dict(zip(full.get_properties()["Property"], full.get_properties()["Score"]))
    pairs_score = properties.get("Column Pair Trends", math.nan)
    if pair_columns != columns:
        pairs_score = dict(zip(*run(pair_columns).get_properties()[["Property", "Score"]].to_numpy().T)).get("Column Pair Trends", math.nan)
    return {
        "column_shapes": _float(properties.get("Column Shapes", math.nan)),
        "column_pair_trends": _float(pairs_score),
        "pair_columns": len(pair_columns),
        "per_column": {str(c): _float(v) for c, v in zip(shapes["Column"], shapes["Score"])},
    }


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def overall_score(report: dict, *, method: str = "", k_neighbors: Optional[int] = None) -> dict:
    """The 0-100 score, its grade, its parts and plain recommendations (see the module docstring)."""
    sdm = report.get("sdmetrics", {})
    auroc = report.get("discriminative_auroc", math.nan)
    near = report.get("privacy", {}).get("near_copy_share", math.nan)
    coverage = report.get("coverage", math.nan)
    parts = {
        "column_shapes": sdm.get("column_shapes", math.nan),
        "column_pair_trends": sdm.get("column_pair_trends", math.nan),
        "indistinguishable": float(np.clip(1.0 - 2.0 * (auroc - 0.5), 0.0, 1.0)) if not _is_nan(auroc) else math.nan,
        "novelty": float(np.clip(1.0 - (near - 0.05) / 0.45, 0.0, 1.0)) if not _is_nan(near) else math.nan,
        "coverage": float(min(1.0, coverage / PERFECT_COVERAGE)) if not _is_nan(coverage) else math.nan,
    }
    measured = {k: v for k, v in parts.items() if not _is_nan(v)}
    weight = sum(SCORE_WEIGHTS[k] for k in measured)
    score = 100.0 * sum(SCORE_WEIGHTS[k] * v for k, v in measured.items()) / weight if weight else math.nan
    grade = "n/a" if _is_nan(score) else next(letter for floor, letter in GRADES if round(score) >= floor)  # as shown: 89.6 is 90, an A
    return {"score": score, "grade": grade, "parts": parts,
            "recommendations": _recommendations(report, parts, method=method, k_neighbors=k_neighbors)}


def _recommendations(report: dict, parts: dict, *, method: str, k_neighbors: Optional[int]) -> list[str]:
    methods = set(method.replace(" ", "").split("+")) if method else set()
    smote_like = bool(methods & set(SMOTE_LIKE))
    independent = bool(methods & {"marginal", "uniform"})
    advice = []
    near = report.get("privacy", {}).get("near_copy_share", math.nan)
    if not _is_nan(near) and near > 0.10:
        fix = (f"lower --resample_k_neighbors (now {k_neighbors}) or use --generator gaussian_copula" if smote_like and k_neighbors
               else "mix in fewer rows (--generated_ratio below 1) or use --generator gaussian_copula")
        advice.append(f"{near:.0%} near-copies of real rows: {fix}")
    auroc = report.get("discriminative_auroc", math.nan)
    if not _is_nan(auroc) and auroc > 0.75:
        advice.append(f"a classifier tells synthetic from real rows (AUROC {auroc:.2f}): the columns below differ most; "
                      + ("a generator that learns the joint distribution (gaussian_copula, ctgan) makes closer rows" if independent
                         else "fewer rows, or another generator"))
    per_column = report.get("sdmetrics", {}).get("per_column", {})
    worst = sorted(((v, c) for c, v in per_column.items() if not _is_nan(v) and v < 0.8))[:3]
    if worst:
        named = ", ".join(f"{c} ({v:.2f})" for v, c in worst)
        advice.append(f"least like the real rows: {named}"
                      + ("; the uniform generator spreads numbers evenly over their range: use --generator gaussian_copula"
                         if "uniform" in methods else ""))
    pairs = parts.get("column_pair_trends", math.nan)
    if not _is_nan(pairs) and pairs < 0.75:
        advice.append(f"correlations between columns are weakened (pair trends {pairs:.2f})"
                      + (": marginal and uniform generators drop them; use gaussian_copula, ctgan or tvae" if independent else ""))
    coverage = parts.get("coverage", math.nan)
    if not _is_nan(coverage) and coverage < 0.5:
        advice.append(f"synthetic rows reach only {report['coverage']:.0%} of the real minority rows: more rows or a generator "
                      "that spreads wider (tvae, gaussian_copula)")
    return advice or ["no change needed"]


def _matrix(x: Any, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D matrix, got shape {x.shape}")
    return x


def _check_inputs(real, synthetic, kinds, names, real_frame, synthetic_frame, max_rows) -> None:
    width = real.shape[1]
    if synthetic.shape[1] != width or len(kinds) != width or len(names) != width:
        raise ValueError(f"column counts differ: real {width}, synthetic {synthetic.shape[1]}, "
                         f"kinds {len(kinds)}, names {len(names)}")
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ValueError(f"unknown column kind(s) {bad}; expected 'numeric' or 'categorical'")
    if len(set(names)) != len(names):
        raise ValueError("column names must be unique")
    if len(real) == 0 or len(synthetic) == 0:
        raise ValueError(f"need at least one real and one synthetic row (got {len(real)} and {len(synthetic)})")
    if not (np.isfinite(real).all() and np.isfinite(synthetic).all()):
        raise ValueError("compact matrices must be finite (encode() imputes missing values)")
    if (real_frame is None) != (synthetic_frame is None):
        raise ValueError("give both real_frame and synthetic_frame, or neither")
    if real_frame is not None and (len(real_frame) != len(real) or len(synthetic_frame) != len(synthetic)):
        raise ValueError("the decoded frames must have the same rows as the compact matrices")
    if max_rows < 2:
        raise ValueError("max_rows must be at least 2")


def _feature(matrix: np.ndarray, frame: Optional[pd.DataFrame], j: int, name: str) -> Any:
    """The column in original units when the decoded frame has it (missing indicators it lacks)."""
    if frame is not None and name in frame.columns:
        return frame[name]
    return matrix[:, j]


def _distance_space(real: np.ndarray, synth: np.ndarray, kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Numerics as they are (standardised), categories one-hot over the levels of both sides."""
    r_parts, s_parts = [], []
    for j, kind in enumerate(kinds):
        r, s = real[:, j], synth[:, j]
        if kind == "numeric":
            r_parts.append(r[:, None])
            s_parts.append(s[:, None])
            continue
        r, s = np.rint(r), np.rint(s)
        levels = np.unique(np.concatenate([r, s]))
        r_parts.append((r[:, None] == levels[None, :]).astype(np.float64))
        s_parts.append((s[:, None] == levels[None, :]).astype(np.float64))
    return np.hstack(r_parts), np.hstack(s_parts)


# -- per-feature statistics ---------------------------------------------------------------------
def _numeric_stats(real: Any, synth: Any) -> dict:
    from scipy.stats import ks_2samp

    r = pd.to_numeric(pd.Series(real), errors="coerce").dropna().to_numpy(dtype=np.float64)
    s = pd.to_numeric(pd.Series(synth), errors="coerce").dropna().to_numpy(dtype=np.float64)
    stat = p = math.nan
    if len(r) and len(s):
        result = ks_2samp(r, s)
        stat, p = float(result.statistic), float(result.pvalue)
    return {
        "real_mean": _mean(r), "real_std": _std(r),
        "synthetic_mean": _mean(s), "synthetic_std": _std(s),
        "ks_statistic": stat, "ks_pvalue": p,
    }


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _std(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def _levels(values: Any, from_codes: bool) -> pd.Series:
    """Category values as level names: codes -> '0', '1', ...; NaN (missing) -> '<missing>'."""
    series = pd.Series(values).astype(object)
    present = series.notna()
    out = pd.Series(MISSING_LEVEL, index=series.index, dtype=object)

    def name(v: Any) -> str:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    if from_codes:
        out[present] = np.rint(series[present].to_numpy(dtype=np.float64)).astype(np.int64).astype(str)
    else:
        out[present] = [name(v) for v in series[present]]
    return out


def _categorical_stats(real: Any, synth: Any, from_codes: bool) -> dict:
    from scipy.stats import chi2_contingency

    r_counts = _levels(real, from_codes).value_counts()
    s_counts = _levels(synth, from_codes).value_counts()
    table = pd.DataFrame({"real": r_counts, "synthetic": s_counts}).fillna(0).astype(np.int64)
    table = table[(table["real"] + table["synthetic"]) > 0]
    # Most common real level first, so the stored dicts read like a frequency table.
    table = table.assign(_key=table.index.astype(str)).sort_values(
        ["real", "synthetic", "_key"], ascending=[False, False, True]).drop(columns="_key")
    r_share = table["real"] / max(int(table["real"].sum()), 1)
    s_share = table["synthetic"] / max(int(table["synthetic"].sum()), 1)
    if len(table) < 2:
        stat, p = 0.0, 1.0
    else:
        result = chi2_contingency(table.to_numpy().T)
        stat, p = float(result[0]), float(result[1])
    diff = s_share - r_share
    where = str(diff.abs().idxmax()) if len(diff) else ""
    return {
        "real": {str(k): float(v) for k, v in r_share.items()},
        "synthetic": {str(k): float(v) for k, v in s_share.items()},
        "chi2": stat,
        "chi2_pvalue": p,
        "max_share_diff": float(diff[where]) if where else math.nan,
        "max_share_diff_level": where,
    }


# -- joint measures -----------------------------------------------------------------------------
def _pairwise(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict:
    """Unbiased RBF MMD^2 and the diversity ratio, from one blocked pass over the pairs.

    The bandwidth is the median pairwise distance of a pooled sample (the median heuristic); if
    that is 0 (mostly identical rows) the median of the non-zero distances is used instead.
    """
    from scipy.spatial.distance import pdist

    m, n = len(x), len(y)
    # float32 halves the cost of the 3 * max_rows^2 kernel values; centring first keeps the
    # |a|^2 + |b|^2 - 2ab expansion from losing the small distances to cancellation.
    pooled = np.vstack([x, y])
    centre = pooled.mean(0)
    x, y = (x - centre).astype(np.float32), (y - centre).astype(np.float32)
    pooled = pooled[rng.permutation(len(pooled))[:BANDWIDTH_ROWS]]
    dists = pdist(pooled) if len(pooled) > 1 else np.zeros(0)
    bandwidth = float(np.median(dists)) if len(dists) else 1.0
    if not bandwidth > 0:
        positive = dists[dists > 0]
        bandwidth = float(np.median(positive)) if len(positive) else 1.0
    gamma = 1.0 / (2.0 * bandwidth ** 2)
    kxx, dxx = _pair_sums(x, x, gamma, same=True)
    kyy, dyy = _pair_sums(y, y, gamma, same=True)
    kxy, _ = _pair_sums(x, y, gamma, same=False, distances=False)
    mmd2 = diversity = math.nan
    if m > 1 and n > 1:
        mmd2 = max(0.0, (kxx - m) / (m * (m - 1)) + (kyy - n) / (n * (n - 1)) - 2.0 * kxy / (m * n))
        real_spread = dxx / (m * (m - 1))
        diversity = (dyy / (n * (n - 1))) / real_spread if real_spread > 0 else math.nan
    return {"mmd2": float(mmd2), "bandwidth": bandwidth, "diversity": float(diversity)}


def _pair_sums(a: np.ndarray, b: np.ndarray, gamma: float, *, same: bool,
               distances: bool = True) -> tuple[float, float]:
    """Sum of RBF kernel values and of distances over all (a_i, b_j), in row blocks to bound memory.

    One matrix product per block gives the squared distances directly: [a, |a|^2, 1] . [-2b, 1, |b|^2].
    With ``same`` (b is a) only the blocks on and right of the diagonal are computed, the
    off-diagonal ones counted twice.
    """
    a_aug = np.hstack([a, (a.astype(np.float64) ** 2).sum(1, keepdims=True), np.ones((len(a), 1))]).astype(np.float32)
    b_aug = np.hstack([-2.0 * b, np.ones((len(b), 1)), (b.astype(np.float64) ** 2).sum(1, keepdims=True)])
    b_aug_t = np.ascontiguousarray(b_aug.T, dtype=np.float32)
    neg_gamma = np.float32(-gamma)
    k_sum = d_sum = 0.0
    for start in range(0, len(a), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(a))
        d2 = a_aug[start:stop] @ (b_aug_t[:, start:] if same else b_aug_t)
        np.maximum(d2, 0.0, out=d2)
        rows = stop - start
        if same:  # exact zeros on the diagonal, not rounding noise
            d2[np.arange(rows), np.arange(rows)] = 0.0
        # weights: the diagonal block once, blocks right of it for both triangles
        split = rows if same else d2.shape[1]
        if distances:
            dist = np.sqrt(d2)
            d_sum += float(dist[:, :split].sum(dtype=np.float64)) + 2.0 * float(dist[:, split:].sum(dtype=np.float64))
        d2 *= neg_gamma
        kern = np.exp(d2, out=d2)
        k_sum += float(kern[:, :split].sum(dtype=np.float64)) + 2.0 * float(kern[:, split:].sum(dtype=np.float64))
    return k_sum, d_sum


def _discriminative_auroc(real: np.ndarray, synth: np.ndarray, kinds: Sequence[str], seed: int) -> tuple[float, dict]:
    """Mean stratified-CV AUROC of gradient boosting telling real (0) from synthetic (1) rows.

    Boosted trees catch non-linear tells (a collapsed mode, wrong spread, impossible combinations)
    that a linear model misses, need no scaling and treat category codes natively. The sides come
    in equal sizes, so 0.5 means indistinguishable whatever the real/synthetic ratio. Small trees
    and few rounds lose almost no power here but cut the time threefold; one OpenMP thread,
    because on these small fits thread hand-offs cost more than they save, badly so on a busy machine.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    n = len(real)
    folds = min(CV_FOLDS, n)
    info = {"model": "HistGradientBoostingClassifier", "folds": int(folds) if folds >= 2 else 0,
            "rows_per_side": int(n), "fold_aurocs": []}
    if folds < 2:
        return math.nan, info
    x = np.vstack([real, synth])
    y = np.r_[np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    # Native categorical splits need codes in [0, 254]; other code ranges are split as numbers.
    categorical = np.array([kind == "categorical" and x[:, j].min() >= 0 and x[:, j].max() < 255
                            for j, kind in enumerate(kinds)], dtype=bool)
    if categorical.any():
        x[:, categorical] = np.rint(x[:, categorical])
    aurocs = []
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            model = HistGradientBoostingClassifier(
                max_iter=30, max_leaf_nodes=8, learning_rate=0.2, early_stopping=False, random_state=seed,
                categorical_features=categorical if categorical.any() else None)
            model.fit(x[train], y[train])
            aurocs.append(float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])))
    info["fold_aurocs"] = aurocs
    return float(np.mean(aurocs)), info


def _neighbour_distances(real: np.ndarray, synth: np.ndarray, k: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Each synthetic row's distance to its closest real row (DCR), and each real row's distances
    to its ``k`` nearest *other* real rows (fewer if there are not that many; None for one row)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=1).fit(real)
    dcr = index.kneighbors(synth)[0][:, 0]
    if len(real) < 2:
        return dcr, None
    # kneighbors() without X leaves each row out of its own neighbours.
    return dcr, index.kneighbors(n_neighbors=min(k, len(real) - 1))[0]


def _privacy(dcr: np.ndarray, real_nn: Optional[np.ndarray]) -> dict:
    """DCR of synthetic rows against real rows' own nearest-neighbour spacing.

    A synthetic row closer to a real row than all but the closest 5% of real rows are to one
    another is a near-copy. If real rows repeat (e.g. only categorical columns) that 5th
    percentile is 0 and only exact copies, counted separately, would qualify.
    """
    near_copy = real_median = real_p05 = math.nan
    if real_nn is not None:
        real_p05 = float(np.percentile(real_nn, NEAR_COPY_PERCENTILE))
        real_median = float(np.median(real_nn))
        near_copy = float(np.mean(dcr < real_p05))
    return {
        "dcr_median": float(np.median(dcr)),
        "dcr_p05": float(np.percentile(dcr, NEAR_COPY_PERCENTILE)),
        "real_nn_median": real_median,
        "real_nn_p05": real_p05,
        "near_copy_share": near_copy,
    }


def _coverage(real: np.ndarray, synth: np.ndarray, k: int, radius: Optional[np.ndarray]) -> tuple[float, int]:
    """Share of real rows with a synthetic row within their distance to the k-th nearest real row.

    The two sides come in equal sizes: with fewer synthetic rows coverage would fall by count
    alone, not because the generator misses part of the real data. ``radius`` is that k-th
    distance when already known.
    """
    from sklearn.neighbors import NearestNeighbors

    if k < 1:
        return math.nan, 0
    if radius is None:
        radius = NearestNeighbors(n_neighbors=k).fit(real).kneighbors()[0][:, -1]
    nearest_synth = NearestNeighbors(n_neighbors=1).fit(synth).kneighbors(real)[0][:, 0]
    return float(np.mean(nearest_synth <= radius)), int(k)


# -- the quality gate and the Markdown page -----------------------------------------------------
_SUMMARY_KEYS = ("label", "n_real", "n_synthetic", "exact_duplicates", "mmd", "discriminative_auroc", "privacy", "coverage", "diversity",
                 "score")


def quality_summary(report: dict) -> dict:
    """The headline numbers of a report (per label too), without the per-feature tables."""
    summary = {k: report[k] for k in _SUMMARY_KEYS if k in report}
    if "per_label" in report:
        summary["per_label"] = {name: quality_summary(sub) for name, sub in report["per_label"].items()}
    return summary


def gate_failures(report: dict, *, max_discriminative_auroc: float, max_near_copy_share: float) -> list[str]:
    """Reasons to refuse training on these synthetic rows; an empty list means they pass.

    A measure that is NaN (too few rows to estimate it) cannot fail the gate; that is logged.
    A multi-label report (with ``per_label`` reports) fails when any label's report fails.
    """
    if "per_label" in report:
        return [f"label '{name}': {reason}" for name, sub in report["per_label"].items()
                for reason in gate_failures(sub, max_discriminative_auroc=max_discriminative_auroc,
                                            max_near_copy_share=max_near_copy_share)]
    reasons = []
    auroc = report.get("discriminative_auroc", math.nan)
    near_copy = report.get("privacy", {}).get("near_copy_share", math.nan)
    if _is_nan(auroc) or _is_nan(near_copy):
        logger.warning("synthetic-data gate: %s could not be measured (too few rows) and is not checked",
                       " and ".join(n for n, v in (("discriminative AUROC", auroc), ("near-copy share", near_copy))
                                    if _is_nan(v)))
    if not _is_nan(auroc) and auroc > max_discriminative_auroc:
        reasons.append(
            f"discriminative AUROC {auroc:.3f} is above the limit {max_discriminative_auroc:.3f}: a classifier "
            "tells the synthetic rows from real minority rows, so the model would learn generator artefacts; "
            "use fewer synthetic rows or another generator (see the per-feature tables for what differs), "
            "or raise --gate_max_auroc if this is expected")
    if not _is_nan(near_copy) and near_copy > max_near_copy_share:
        reasons.append(
            f"near-copy share {near_copy:.3f} is above the limit {max_near_copy_share:.3f}: that share of synthetic "
            "rows sits closer to a real row than 95% of real rows are to each other, so they repeat training "
            "records instead of adding new ones; use fewer synthetic rows, more neighbours or another generator, "
            "or raise --gate_max_near_copies if this is expected")
    return reasons


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _auroc_meaning(auroc: float) -> str:
    if _is_nan(auroc):
        return "not measured (too few rows)"
    if auroc <= 0.6:
        return "hard to tell apart from real rows, good"
    if auroc <= 0.75:
        return "somewhat distinguishable from real rows"
    if auroc <= 0.9:
        return "clearly distinguishable from real rows"
    return "easily told apart from real rows, poor fidelity"


def _fmt(value: Any, digits: int = 3) -> str:
    if _is_nan(value):
        return "n/a"
    if isinstance(value, float) and value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _ordinal(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def score_text(report: dict) -> str:
    """"84/100 (B)", or "n/a" for a report without a score."""
    score = report.get("score", {})
    return "n/a" if _is_nan(score.get("score", math.nan)) else f"{score['score']:.0f}/100 ({score['grade']})"


def report_markdown(report: dict, *, title: str = "Synthetic data quality") -> str:
    """The report as a readable page: headline numbers first, then the per-feature tables."""
    privacy = report["privacy"]
    auroc = report["discriminative_auroc"]
    lines = [f"# {title}", ""]
    if "per_label" in report:
        lines += ["Each label's synthetic positives against its real positives:", "",
                  "| label | real | synthetic | score | discriminative AUROC | near-copy share | MMD² |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, sub in report["per_label"].items():
            lines.append(f"| {_cell(name)} | {sub['n_real']} | {sub['n_synthetic']} | {score_text(sub)} | {_fmt(sub['discriminative_auroc'])} | "
                         f"{_fmt(sub['privacy']['near_copy_share'])} | {_fmt(sub['mmd']['mmd2'], 4)} |")
        lines += ["", f"Details below for `{report.get('label')}`, the label with the most synthetic rows.", ""]
    elif report.get("label"):
        lines += [f"Synthetic positives of `{report['label']}` against its real positives.", ""]
    if "score" in report:
        score = report["score"]
        lines += [f"**Quality score: {score_text(report)}**", "", "| part | value (0-1) | weight |", "|---|---:|---:|"]
        lines += [f"| {name.replace('_', ' ')} | {_fmt(value)} | {SCORE_WEIGHTS[name]:.2f} |" for name, value in score["parts"].items()]
        lines.append("")
        shapes = report.get("sdmetrics", {}).get("per_column", {})
        if shapes:
            lines += ["Column shapes (SDMetrics, 1 = same distribution): "
                      + ", ".join(f"{_cell(c)} {_fmt(v, 2)}" for c, v in sorted(shapes.items(), key=lambda kv: kv[1])), ""]
        lines += ["Recommendations:", "", *[f"- {text}" for text in score["recommendations"]], ""]
    lines += [
        f"- rows: {report['n_real']} real minority, {report['n_synthetic']} synthetic"
        + (f" (pairwise measures on {report['rows_compared']['real']} / {report['rows_compared']['synthetic']})"
           if report["rows_compared"]["real"] < report["n_real"]
           or report["rows_compared"]["synthetic"] < report["n_synthetic"] else ""),
        f"- exact duplicates of real rows: {report['exact_duplicates']} (removed before mixing)",
        f"- MMD² (RBF, bandwidth {_fmt(report['mmd']['bandwidth'])}): {_fmt(report['mmd']['mmd2'], 4)} (0 = same distribution)",
        f"- discriminative AUROC: {_fmt(auroc)} — {_auroc_meaning(auroc)} (0.5 = indistinguishable)",
        f"- near-copy share: {_fmt(privacy['near_copy_share'])} (synthetic rows closer to a real row than 95% of "
        f"real rows are to each other; median distance to closest real row {_fmt(privacy['dcr_median'])} vs "
        f"{_fmt(privacy['real_nn_median'])} between real rows)",
        f"- coverage: {_fmt(report['coverage'])} (share of real rows with a synthetic row no farther than their "
        f"{_ordinal(report.get('coverage_k', COVERAGE_K))} nearest real neighbour; about 0.97 for a perfect generator)",
        f"- diversity: {_fmt(report['diversity'])} (synthetic vs real mean pairwise distance; 1 = as spread out, 0 = collapsed)",
        "",
    ]
    if report["numeric"]:
        lines += ["## Numeric features", "",
                  "| feature | real mean | real std | synthetic mean | synthetic std | KS | p |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, s in report["numeric"].items():
            lines.append(f"| {_cell(name)} | {_fmt(s['real_mean'])} | {_fmt(s['real_std'])} | {_fmt(s['synthetic_mean'])} "
                         f"| {_fmt(s['synthetic_std'])} | {_fmt(s['ks_statistic'])} | {_fmt(s['ks_pvalue'])} |")
        lines.append("")
    if report["categorical"]:
        lines += ["## Categorical features", "",
                  "| feature | chi² | p | biggest share difference |",
                  "|---|---:|---:|---|"]
        for name, s in report["categorical"].items():
            level = s["max_share_diff_level"]
            diff = (f"{_cell(level)}: {s['real'].get(level, 0.0):.1%} real vs {s['synthetic'].get(level, 0.0):.1%} synthetic"
                    if level else "n/a")
            lines.append(f"| {_cell(name)} | {_fmt(s['chi2'])} | {_fmt(s['chi2_pvalue'])} | {diff} |")
        lines.append("")
    return "\n".join(lines)
