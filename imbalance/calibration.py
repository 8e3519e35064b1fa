"""Calibrated probabilities: ``--calibration {none,prior,temperature,platt,isotonic}``, and how
calibrated a model's scores are.

Weighted sampling, class weights and more minority rows train a network on a world with more
positives than the real one, so its scores overstate the risk. After training, per label:

- ``prior``: the closed-form correction for that shift, fitted on nothing. A model trained where
  a positive's odds were multiplied by k (k = w x odds(s) / odds(pi): w the positive's loss
  weight -- the class weight for ``weighted_bce`` and ``logit_adjusted``, alpha / (1 - alpha) for ``focal``, 1 for
  ``bce`` --, s the positive share its loss saw, pi the real training prevalence) outputs
  odds k times too high; the correction is logit(p) - log k, applied to each member's logits
  before they are averaged (members of an ``--ensemble_top`` average had different recipes).
- ``temperature``: the ``prior`` correction, then logit / T with one T per label fitted on
  validation (log loss). A temperature alone only stretches or shrinks the log-odds around 0;
  it cannot undo a shift, which is what an imbalance recipe leaves.
- ``platt``: a x logit(p) + b per label fitted on validation (unpenalised logistic regression,
  a > 0 so that the ranking is kept).
- ``isotonic``: scikit-learn's isotonic regression of the label on p per label, fitted on
  validation; a step function, so it can tie scores that were apart.

The fitted calibration is plain data stored in the checkpoint and applied by ``predict.py``;
thresholds are tuned on the calibrated validation scores. :func:`calibration_metrics` gives the
Brier score, the expected calibration error (ECE over 10 bins of equal row count: at 5%
prevalence most rows would share one equal-width bin) and the calibration slope and intercept
(a logistic regression of the label on logit(p): 1 and 0 when calibrated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit

from .errors import UserError
from .registry import Registry

__all__ = ["CALIBRATIONS", "SHIFTED", "Calibration", "fit_calibration", "calibration_metrics", "prior_shift", "ECE_BINS"]

ECE_BINS = 10
_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before taking logits

CALIBRATIONS: Registry[Any] = Registry("calibration")
SHIFTED = ("prior", "temperature")  # methods that first undo the recipe's shift, member by member


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS))


def prior_shift(*, prevalence: np.ndarray, trained_share: np.ndarray, positive_weight: np.ndarray) -> np.ndarray:
    """log k per label (module docstring): how far the training recipe moved a positive's log-odds."""
    pi = np.clip(np.asarray(prevalence, dtype=np.float64), _EPS, 1 - _EPS)
    s = np.clip(np.asarray(trained_share, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(np.asarray(positive_weight, dtype=np.float64)) + logit(s) - logit(pi)


@dataclass
class Calibration:
    """A fitted calibration: ``method`` and per label its parameters (plain data)."""

    method: str = "none"
    labels: list[dict[str, Any]] = field(default_factory=list)  # one dict per label
    member_shift: Optional[list[list[float]]] = None  # prior: log k per member and label

    def apply(self, prob: np.ndarray) -> np.ndarray:
        """Calibrate (n, L) probabilities (for ``prior``, see :meth:`member_offsets` instead)."""
        prob = np.asarray(prob, dtype=np.float64)
        if self.method in ("none", "prior"):
            return prob
        out = np.empty_like(prob)
        for j, params in enumerate(self.labels):
            out[:, j] = CALIBRATIONS.get(self.method).apply(prob[:, j], params)
        return out

    def member_offsets(self) -> Optional[np.ndarray]:
        """``prior`` and ``temperature``: the (members, L) logit offsets to subtract before the
        members are averaged; :meth:`apply` then acts on the average."""
        return np.asarray(self.member_shift, dtype=np.float64) if self.method in SHIFTED else None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "labels": [dict(p) for p in self.labels], "member_shift": self.member_shift}

    @classmethod
    def from_dict(cls, values: Optional[Mapping[str, Any]], *, n_labels: int, n_members: int, source: str = "checkpoint") -> "Calibration":
        """A checkpoint's calibration (none when it has none); a damaged one is a UserError."""
        if values is None:
            return cls()
        try:
            cal = cls(method=str(values["method"]), labels=[dict(p) for p in values["labels"]],
                      member_shift=None if values.get("member_shift") is None else [list(map(float, m)) for m in values["member_shift"]])
            if cal.method not in CALIBRATIONS:
                raise ValueError(f"unknown method {cal.method!r}")
            if cal.method not in ("none", "prior") and len(cal.labels) != n_labels:
                raise ValueError(f"{len(cal.labels)} labels' parameters for {n_labels} labels")
            if cal.method in SHIFTED and (len(cal.member_shift or []) != n_members
                                          or any(len(m) != n_labels for m in cal.member_shift)):
                raise ValueError("prior shifts do not fit the members and labels")
            probe = np.full((1, n_labels), 0.5)
            if not np.isfinite(cal.apply(probe)).all():
                raise ValueError("parameters give non-finite probabilities")
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source}: damaged checkpoint: its calibration does not load ({exc}); "
                            "use the run's own best.pt or train again") from None
        return cal


@dataclass(frozen=True)
class _Method:
    fit: Any  # (y (n,), p (n,)) -> params dict
    apply: Any  # (p (n,), params) -> calibrated p (n,)


def _identity_fit(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {}


CALIBRATIONS.register("none")(_Method(_identity_fit, lambda p, params: p))
CALIBRATIONS.register("prior")(_Method(_identity_fit, lambda p, params: p))  # applied per member, see Calibration


def _log_loss(y: np.ndarray, z: np.ndarray) -> float:
    # -[y log sigma(z) + (1 - y) log sigma(-z)], stably
    return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)))


def _fit_temperature(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    z = _logit(p)
    found = minimize_scalar(lambda log_t: _log_loss(y, z / math.exp(log_t)), bounds=(-5.0, 5.0), method="bounded")
    return {"temperature": math.exp(float(found.x))}


def _fit_platt(y: np.ndarray, p: np.ndarray, *, monotone: bool = True) -> dict[str, Any]:
    z = _logit(p)

    def loss_and_grad(ab: np.ndarray) -> tuple[float, np.ndarray]:
        u = ab[0] * z + ab[1]
        residual = expit(u) - y  # d loss / d u per row
        return _log_loss(y, u), np.array([np.mean(residual * z), np.mean(residual)])

    # a > 0: calibration keeps the model's ranking (a model ranking validation worse than chance
    # is not turned around by its calibration)
    found = minimize(loss_and_grad, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(1e-3 if monotone else None, None), (None, None)])
    return {"a": float(found.x[0]), "b": float(found.x[1])}


def _fit_isotonic(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(p, dtype=np.float64), y)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


CALIBRATIONS.register("temperature")(_Method(_fit_temperature, lambda p, params: expit(_logit(p) / params["temperature"])))
CALIBRATIONS.register("platt")(_Method(_fit_platt, lambda p, params: expit(params["a"] * _logit(p) + params["b"])))
CALIBRATIONS.register("isotonic")(_Method(
    _fit_isotonic, lambda p, params: np.interp(np.asarray(p, dtype=np.float64), params["x"], params["y"])))


def fit_calibration(method: str, y_val: np.ndarray, prob_val: np.ndarray, *,
                    member_shift: Optional[Sequence[Sequence[float]]] = None) -> Calibration:
    """Fit ``method`` per label on the validation labels and probabilities: the members'
    average, after the members' ``member_shift`` offsets for the methods in :data:`SHIFTED`
    (:func:`prior_shift` per member; needed by those). A label with a single class on
    validation cannot be fitted and is left as it is."""
    spec = CALIBRATIONS.get(method)
    y_val = np.asarray(y_val, dtype=np.float64)
    prob_val = np.asarray(prob_val, dtype=np.float64)
    labels = []
    for j in range(y_val.shape[1]):
        if method in ("none", "prior") or 0 < y_val[:, j].sum() < len(y_val):
            labels.append(spec.fit(y_val[:, j], prob_val[:, j]))
        else:  # left as it is: the identity in this method's terms
            labels.append({**_identity_params(method), "skipped": "one class on validation"})
    return Calibration(method=method, labels=labels,
                       member_shift=None if method not in SHIFTED else [list(map(float, m)) for m in member_shift])


def _identity_params(method: str) -> dict[str, Any]:
    return {"temperature": {"temperature": 1.0}, "platt": {"a": 1.0, "b": 0.0},
            "isotonic": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}.get(method, {})


def calibration_metrics(y: np.ndarray, prob: np.ndarray, label_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per label: Brier score, ECE (10 equal-count bins), calibration slope and intercept."""
    y = np.asarray(y, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    out = {}
    for j, name in enumerate(label_names):
        yj, pj = y[:, j], prob[:, j]
        brier = float(np.mean((pj - yj) ** 2)) if len(yj) else math.nan
        out[name] = {"brier": brier, "ece": _ece(yj, pj), **_slope_intercept(yj, pj), "mean_predicted": float(pj.mean()) if len(pj) else math.nan,
                     "observed_rate": float(yj.mean()) if len(yj) else math.nan}
    return out


def _ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over bins of (about) equal row count, in score order."""
    if not len(y):
        return math.nan
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        total += len(chunk) * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / len(y)


def _slope_intercept(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if not 0 < y.sum() < len(y):
        return {"slope": math.nan, "intercept": math.nan}
    params = _fit_platt(y, p, monotone=False)  # a measurement: the slope may come out negative
    return {"slope": params["a"], "intercept": params["b"]}
