"""How far new rows have moved from the training rows: a reference profile kept in the checkpoint,
and drift statistics against it.

The profile (plain data) holds, per input column of the training split: numeric columns their
decile edges, the share of rows in each decile bin, the missing share and a sample of up to
:data:`SAMPLE_SIZE` values (for the Kolmogorov-Smirnov test); categorical and yes/no columns the
share of each level and of missing values. With new rows, per column:

- population stability index, PSI = sum over bins (new - reference) x ln(new / reference), over
  the deciles (numeric) or the levels (categorical; levels never seen in training pooled as one),
  plus a missing bin, shares floored at 1e-4: below 0.1 stable, 0.1-0.25 moderate shift, above
  0.25 major shift (the usual reading);
- numeric columns: the two-sample Kolmogorov-Smirnov statistic and p-value (scipy) against the
  sample; with thousands of rows any difference is "significant", so the flag reads the statistic
  (>= 0.1) and the PSI, not the p-value alone.

And per label: the share of new rows the model flags at its threshold against the training
prevalence and against the share it flagged on the held-out split; a ratio outside [0.5, 2] is
flagged.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["feature_profile", "drift_report", "SAMPLE_SIZE", "PSI_MODERATE", "PSI_MAJOR"]

SAMPLE_SIZE = 2000
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
KS_FLAG = 0.1
RATE_BAND = (0.5, 2.0)
_FLOOR = 1e-4
_UNSEEN = "(unseen in training)"
_MISSING = "(missing)"


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def feature_profile(frame: pd.DataFrame, kinds: Mapping[str, str], *, seed: int = 0) -> dict[str, Any]:
    """The training rows' reference profile of every column in ``kinds`` (name -> numeric / binary / categorical)."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, kind in kinds.items():
        values = frame[name]
        missing = float(values.isna().mean()) if len(values) else 0.0
        if kind == "numeric":
            x = _numbers(values)
            x = x[np.isfinite(x)]
            if not len(x):
                columns[name] = {"kind": "numeric", "edges": [], "shares": [], "missing": missing, "sample": []}
                continue
            edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1])).tolist()
            shares = _binned_shares(x, edges) * (1 - missing)
            sample = x if len(x) <= SAMPLE_SIZE else rng.choice(x, SAMPLE_SIZE, replace=False)
            columns[name] = {"kind": "numeric", "edges": edges, "shares": shares.tolist(), "missing": missing,
                             "sample": np.sort(sample).tolist()}
        else:
            counts = values.dropna().astype(str).value_counts(normalize=False)
            total = max(len(values), 1)
            columns[name] = {"kind": kind, "levels": {str(k): float(v) / total for k, v in counts.items()}, "missing": missing}
    return {"rows": int(len(frame)), "columns": columns}


def _binned_shares(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    codes = np.searchsorted(np.asarray(edges), x, side="right")
    return np.bincount(codes, minlength=len(edges) + 1) / max(len(x), 1)


def _psi(reference: np.ndarray, new: np.ndarray) -> float:
    ref = np.maximum(np.asarray(reference, dtype=np.float64), _FLOOR)
    cur = np.maximum(np.asarray(new, dtype=np.float64), _FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _reading(psi: float) -> str:
    return "major shift" if psi > PSI_MAJOR else "moderate shift" if psi >= PSI_MODERATE else "stable"


def drift_report(profile: Mapping[str, Any], frame: pd.DataFrame, *, flagged_share: Mapping[str, float],
                 prevalence: Mapping[str, float], held_out_share: Mapping[str, float]) -> dict[str, Any]:
    """Drift of ``frame``'s columns against ``profile``, and each label's flagged share."""
    from scipy.stats import ks_2samp

    features = {}
    for name, ref in profile["columns"].items():
        if name not in frame.columns:
            continue
        values = frame[name]
        missing = float(values.isna().mean()) if len(values) else 0.0
        entry: dict[str, Any] = {"kind": ref["kind"], "missing_reference": ref["missing"], "missing_new": missing}
        if ref["kind"] == "numeric":
            x = _numbers(values)
            x = x[np.isfinite(x)]
            if ref["edges"]:
                new_shares = _binned_shares(x, ref["edges"]) * (1 - missing)
                entry["psi"] = _psi([*ref["shares"], ref["missing"]], [*new_shares, missing])
            else:
                entry["psi"] = math.nan
            if len(x) and ref["sample"]:
                test = ks_2samp(np.asarray(ref["sample"]), x)
                entry.update(ks_statistic=float(test.statistic), ks_pvalue=float(test.pvalue))
                entry.update(mean_reference=float(np.mean(ref["sample"])), mean_new=float(np.mean(x)))
        else:
            present = values.dropna().astype(str)
            total = max(len(values), 1)
            levels = list(ref["levels"])
            new_shares = [float((present == level).sum()) / total for level in levels]
            unseen = float((~present.isin(levels)).sum()) / total
            entry["psi"] = _psi([*ref["levels"].values(), 0.0, ref["missing"]], [*new_shares, unseen, missing])
            if unseen:
                entry["unseen_share"] = unseen
        entry["reading"] = _reading(entry["psi"]) if np.isfinite(entry["psi"]) else "not measured"
        entry["flagged"] = bool(np.isfinite(entry["psi"]) and entry["psi"] >= PSI_MODERATE
                                or entry.get("ks_statistic", 0.0) >= KS_FLAG)
        features[name] = entry
    labels = {}
    for name, share in flagged_share.items():
        ref_prev, ref_flagged = prevalence.get(name, math.nan), held_out_share.get(name, math.nan)
        ratio = share / ref_flagged if ref_flagged else math.nan
        labels[name] = {"flagged_share": share, "training_prevalence": ref_prev, "held_out_flagged_share": ref_flagged,
                        "ratio_to_held_out": ratio,
                        "flagged": bool(np.isfinite(ratio) and not RATE_BAND[0] <= ratio <= RATE_BAND[1])}
    moved = sorted((n for n, e in features.items() if e["flagged"]), key=lambda n: -features[n]["psi"])
    return {"rows": int(len(frame)), "reference_rows": profile["rows"], "features": features, "labels": labels, "moved": moved,
            "thresholds": {"psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR, "ks_statistic": KS_FLAG, "rate_band": list(RATE_BAND)}}
