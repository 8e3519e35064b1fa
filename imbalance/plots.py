"""The run's plots, PNG files under ``<run>/plots/`` that ``report.md`` and ``model_card.md`` embed.

Per label, one figure (``label_<name>.png``) of four panels: precision-recall and ROC curves
of the network and every baseline on the report split, each with its operating point (its
threshold) marked; a reliability diagram (observed rate against mean predicted probability in
10 bins of equal row count) before and after calibration; precision, recall and F1 against the
threshold on the validation split, where the threshold was chosen. For the run: training and validation loss and the early-stopping metric
per epoch (every member of an ensemble), and, with ``--slice_cols``, recall and false-positive
rate per subgroup. Figures are drawn with matplotlib's object API on an Agg canvas (no display,
no global pyplot state) and written atomically.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .files import write_atomic

__all__ = ["PlotData", "write_plots", "plot_name", "write_synthetic_plot"]

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def plot_name(kind: str, label: str) -> str:
    """A file name for a plot of one label (label names may hold any character)."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.png"


class PlotData:
    """What the plots draw: the report split's labels and every model's probabilities and
    thresholds there, the network's uncalibrated probabilities, its validation probabilities, the
    per-epoch history and the slice report."""

    def __init__(self, *, label_names: Sequence[str], split: str, y: np.ndarray, models: Mapping[str, tuple[np.ndarray, Sequence[float]]],
                 raw: Optional[np.ndarray], y_val: np.ndarray, prob_val: np.ndarray, calibration: str,
                 history: Sequence[Mapping[str, Any]], stop_metric: str, slices: Optional[Mapping[str, Any]] = None,
                 threshold_split: str = "validation") -> None:
        self.label_names, self.split, self.y, self.models = list(label_names), split, np.asarray(y), dict(models)
        self.raw, self.y_val, self.prob_val, self.calibration = raw, np.asarray(y_val), np.asarray(prob_val), calibration
        self.history, self.stop_metric, self.slices = list(history), stop_metric, slices
        self.threshold_split = threshold_split  # the rows of the threshold panel (where the threshold was chosen, in a run)


def _figure(width: float = 5.5, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})  # fast; the files stay small line art
    write_atomic(path, lambda handle: handle.write(buffer.getvalue()))
    return path


def _curves(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    precision, recall, _ = precision_recall_curve(y, score)
    fpr, tpr, _ = roc_curve(y, score)
    pred = score >= threshold
    tp = float((pred & (y == 1)).sum())
    point = {"recall": tp / max(y.sum(), 1), "precision": tp / pred.sum() if pred.sum() else 1.0,
             "fpr": float((pred & (y == 0)).sum()) / max((y == 0).sum(), 1)}
    return {"precision": precision, "recall": recall, "fpr": fpr, "tpr": tpr, "point": point}


def _label_curves(data: PlotData, j: int, label: str, ax_pr: Any, ax_roc: Any) -> None:
    y = data.y[:, j]
    for colour, (model, (prob, thresholds)) in zip(_COLOURS, data.models.items()):
        c = _curves(y, prob[:, j], thresholds[j])
        ax_pr.plot(c["recall"], c["precision"], color=colour, label=model, drawstyle="steps-post")
        ax_pr.plot(c["point"]["recall"], c["point"]["precision"], "o", color=colour, markersize=7)
        ax_roc.plot(c["fpr"], c["tpr"], color=colour, label=model)
        ax_roc.plot(c["point"]["fpr"], c["point"]["recall"], "o", color=colour, markersize=7)
    ax_pr.axhline(y.mean(), color="grey", linestyle=":", label=f"prevalence {y.mean():.3f}")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    for ax, title, (xl, yl) in ((ax_pr, "precision-recall", ("recall", "precision")), (ax_roc, "ROC", ("false-positive rate", "recall"))):
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xl, ylabel=yl, title=f"{title} ({data.split}; dots: thresholds)")
        ax.legend(loc="lower left" if ax is ax_pr else "lower right", fontsize=7)


def _binned(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    chunks = np.array_split(np.argsort(p, kind="stable"), min(bins, len(p)))
    return np.array([p[c].mean() for c in chunks]), np.array([y[c].mean() for c in chunks])


def _reliability(data: PlotData, j: int, ax: Any) -> None:
    y = data.y[:, j]
    if data.raw is not None and data.calibration != "none":
        ax.plot(*_binned(y, data.raw[:, j]), "s--", color="grey", label="before calibration")
    ax.plot(*_binned(y, data.models["network"][0][:, j]), "o-", color=_COLOURS[0],
            label=f"network ({data.calibration})" if data.calibration != "none" else "network")
    top = max(0.05, float(ax.get_xlim()[1]), float(ax.get_ylim()[1]))
    ax.plot([0, top], [0, top], color="black", linestyle=":", label="perfectly calibrated")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability", ylabel="observed rate",
           title=f"reliability ({data.split}, 10 bins of equal rows)")
    ax.legend(fontsize=7)


def _threshold_curve(data: PlotData, j: int, ax: Any) -> None:
    y, p = data.y_val[:, j], data.prob_val[:, j]
    candidates = np.unique(p)
    if len(candidates) > 400:  # enough to draw the curve
        candidates = np.quantile(p, np.linspace(0, 1, 400))
    pred = p[None, :] >= candidates[:, None]
    tp = (pred & (y == 1)).sum(axis=1)
    n_pred = pred.sum(axis=1)
    precision = np.divide(tp, n_pred, out=np.ones(len(tp)), where=n_pred > 0)
    recall = tp / max(y.sum(), 1)
    f1 = np.divide(2 * tp, n_pred + y.sum(), out=np.zeros(len(tp)), where=(n_pred + y.sum()) > 0)
    for values, name, colour in ((precision, "precision", _COLOURS[1]), (recall, "recall", _COLOURS[2]), (f1, "F1", _COLOURS[0])):
        ax.plot(candidates, values, label=name, color=colour)
    chosen = data.models["network"][1][j]
    ax.axvline(chosen, color="black", linestyle="--", label=f"threshold {chosen:.3g}")
    ax.set(xlabel="threshold", ylabel="value", ylim=(0, 1.02), title=f"metrics against the threshold ({data.threshold_split})")
    ax.legend(fontsize=7)


def _label_figure(data: PlotData, j: int, label: str, folder: Path) -> list[Path]:
    """One figure per label: precision-recall, ROC, reliability, metrics against the threshold."""
    if not (0 < data.y[:, j].sum() < len(data.y) and 0 < data.y_val[:, j].sum() < len(data.y_val)):
        return []  # curves need both classes
    figure = _figure(11.0, 9.0)
    axes = [figure.add_subplot(2, 2, k) for k in range(1, 5)]
    _label_curves(data, j, label, axes[0], axes[1])
    _reliability(data, j, axes[2])
    _threshold_curve(data, j, axes[3])
    figure.suptitle(label)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.07, top=0.92, wspace=0.22, hspace=0.3)  # no tight_layout: it draws twice
    return [_save(figure, folder / plot_name("label", label))]


def _training(data: PlotData, folder: Path) -> list[Path]:
    if not data.history:
        return []
    figure = _figure(9.0, 4.0)
    ax_loss, ax_score = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    members = sorted({h["member"] for h in data.history})
    for member in members:
        rows = [h for h in data.history if h["member"] == member]
        epochs = [h["epoch"] for h in rows]
        suffix = f" (member {member})" if len(members) > 1 else ""
        ax_loss.plot(epochs, [h["train_loss"] for h in rows], color=_COLOURS[member % 6], label=f"train{suffix}")
        ax_loss.plot(epochs, [h["val_loss"] for h in rows], color=_COLOURS[member % 6], linestyle="--", label=f"validation{suffix}")
        ax_score.plot(epochs, [h["score"] for h in rows], color=_COLOURS[member % 6], label=f"{data.stop_metric}{suffix}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    ax_score.set(xlabel="epoch", ylabel=data.stop_metric, title="early-stopping metric (validation)")
    ax_loss.legend(fontsize=7)
    ax_score.legend(fontsize=7)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
    return [_save(figure, folder / "training.png")]


def _slice_bars(data: PlotData, folder: Path) -> list[Path]:
    written = []
    for column, labels in (data.slices or {}).get("columns", {}).items():
        scored = [(label, result) for label, result in labels.items() if result["scored_groups"]]
        if not scored:
            continue
        figure = _figure(max(5.5, 1.2 * sum(len(r["scored_groups"]) for _, r in scored)), 4.5)
        ax = figure.add_subplot()
        names, recall, fpr = [], [], []
        for label, result in scored:
            for group in result["scored_groups"]:
                names.append(f"{label}\n{group}")
                recall.append(result["groups"][group]["recall"])
                fpr.append(result["groups"][group]["false_positive_rate"])
        x = np.arange(len(names))
        ax.bar(x - 0.2, recall, 0.4, label="recall", color=_COLOURS[2])
        ax.bar(x + 0.2, fpr, 0.4, label="false-positive rate", color=_COLOURS[1])
        ax.set_xticks(x, names, fontsize=7)
        ax.set(ylim=(0, 1.02), title=f"by {column} ({data.split}; scored groups)")
        ax.legend(fontsize=8)
        figure.subplots_adjust(bottom=0.2, top=0.9)
        written.append(_save(figure, folder / plot_name("slices", column)))
    return written


def write_plots(data: PlotData, folder: Path) -> list[Path]:
    """Every plot of the run into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for j, label in enumerate(data.label_names):
        written += _label_figure(data, j, label, folder)
    written += _training(data, folder)
    written += _slice_bars(data, folder)
    return written


def write_synthetic_plot(real: Any, synthetic: Any, kinds: Mapping[str, str], label: str, folder: Path, *,
                         order: Optional[Sequence[str]] = None, max_features: int = 24) -> Path:
    """One figure per label: for each feature (``order``: the least faithful first), the real
    minority rows' distribution against the synthetic rows' (numbers: histograms on shared
    bins; levels: shares side by side). At most ``max_features`` panels."""
    import math

    import pandas as pd

    columns = [c for c in (order or list(real.columns)) if c in real.columns and c in synthetic.columns][:max_features]
    per_row = 4
    rows = max(1, math.ceil(len(columns) / per_row))
    figure = _figure(3.0 * per_row, 2.4 * rows)
    for k, column in enumerate(columns):
        ax = figure.add_subplot(rows, per_row, k + 1)
        ax.set_title(str(column)[:30], fontsize=8)
        ax.tick_params(labelsize=6)
        if kinds.get(column) == "numeric":
            r = pd.to_numeric(real[column], errors="coerce").dropna().to_numpy(dtype=float)
            g = pd.to_numeric(synthetic[column], errors="coerce").dropna().to_numpy(dtype=float)
            both = np.concatenate([r, g])
            if len(both) == 0:
                continue
            bins = np.histogram_bin_edges(both, bins=20)
            ax.hist(r, bins=bins, density=True, histtype="step", color=_COLOURS[0], label="real")
            ax.hist(g, bins=bins, density=True, histtype="step", color=_COLOURS[1], label="synthetic")
        else:
            shares = pd.DataFrame({"real": real[column].astype(str).value_counts(normalize=True),
                                   "synthetic": synthetic[column].astype(str).value_counts(normalize=True)}).fillna(0.0)
            shares = shares.sort_values("real", ascending=False).head(8)
            at = np.arange(len(shares))
            ax.bar(at - 0.2, shares["real"], width=0.4, color=_COLOURS[0], label="real")
            ax.bar(at + 0.2, shares["synthetic"], width=0.4, color=_COLOURS[1], label="synthetic")
            ax.set_xticks(at)
            ax.set_xticklabels([str(v)[:10] for v in shares.index], rotation=45, ha="right")
        if k == 0:
            ax.legend(fontsize=6)
    figure.suptitle(f"{label}: real minority rows vs synthetic rows", fontsize=10)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    return _save(figure, folder / plot_name("synthetic", label))
