"""Where metric dicts go: the console, TensorBoard, the all-negatives guard, the final report.

Metrics are computed once (in ``training.evaluate``); this module only formats and writes them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "CollapseGuard", "Levers", "EpochLogger", "format_label_table", "format_report_markdown", "format_calibration",
    "format_intervals", "format_slices", "format_plots",
    "compare_reports", "format_comparison_markdown",
]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Levers:
    """The run's imbalance settings that decide what to advise when a label collapses."""

    optimize_thresholds: bool = False
    use_weighted_sampling: bool = False
    weight_method: str = "balanced"
    loss_type: str = "bce"
    class_weight_method: str = "none"
    class_weight_multiplier: float = 1.0

    @classmethod
    def of(cls, cfg: Any) -> "Levers":
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})

    def advice(self, kind: str) -> str:
        """The next one or two flags to try, among those the run does not use yet."""
        steps: list[str] = []
        if kind == "all-negative":
            if not self.optimize_thresholds:
                steps.append("--optimize_thresholds (each label's cut-off tuned on validation)")
            if self.loss_type == "bce":
                steps.append("--loss_type weighted_bce --class_weight_method balanced")
            elif self.class_weight_method == "none":
                steps.append("--class_weight_method balanced")
            if not self.use_weighted_sampling:
                steps.append("--use_weighted_sampling --weight_method balanced")
            elif self.weight_method != "per_class":
                steps.append("--weight_method per_class")
            steps.append(f"a larger --class_weight_multiplier (now {self.class_weight_multiplier:g})")
        else:
            if not self.optimize_thresholds:
                steps.append("--optimize_thresholds (the cut-off, not the model, may be what is off)")
            corrections = self.use_weighted_sampling + (self.loss_type != "bce" and self.class_weight_method != "none")
            if corrections == 2:
                steps.append("one correction instead of two: drop --use_weighted_sampling or set --class_weight_method none")
            if self.class_weight_multiplier > 1:
                steps.append(f"a smaller --class_weight_multiplier (now {self.class_weight_multiplier:g})")
            if self.use_weighted_sampling and self.weight_method != "balanced":
                steps.append("--weight_method balanced")
            steps.append("a lower --lr")
        return "; or ".join(steps[:2])


class CollapseGuard:
    """Watches for labels that get no positive (or only positive) validation predictions, at the
    thresholds the run will use (tuned ones with ``--optimize_thresholds``, else 0.5), for
    ``patience`` epochs in a row. It says so once per run, in one short line naming the labels
    and the next levers to try among those the run does not use yet; every collapsed label is
    also in metrics.json and the final summary."""

    def __init__(self, label_names: Sequence[str], *, patience: int = 3, levers: Optional[Levers] = None) -> None:
        self.label_names = list(label_names)
        self.patience = max(1, int(patience))
        self.levers = levers or Levers()
        self.streak = {name: (None, 0) for name in self.label_names}  # name -> (kind, epochs)
        self.collapsed: dict[str, str] = {}  # name -> "all-negative" / "all-positive", ever seen
        self.warned = False

    def state_dict(self) -> dict[str, Any]:
        return {"streak": {n: [kind, count] for n, (kind, count) in self.streak.items()}, "collapsed": dict(self.collapsed),
                "warned": self.warned}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.streak = {n: (kind, int(count)) for n, (kind, count) in state["streak"].items()}
        self.collapsed = dict(state["collapsed"])
        self.warned = bool(state.get("warned", False))

    def update(self, record: Any) -> Optional[str]:
        """One epoch (a ``training.EpochRecord``); returns the warning when this epoch gave one."""
        metrics = record.val_tuned if self.levers.optimize_thresholds else record.val
        new: dict[str, str] = {}
        for name in self.label_names:
            m = metrics["labels"][name]
            kind = "all-negative" if m["n_pos_pred"] == 0 else "all-positive" if m["n_pos_pred"] == m["n"] else None
            prev_kind, count = self.streak[name]
            count = count + 1 if (kind is not None and kind == prev_kind) else (1 if kind else 0)
            self.streak[name] = (kind, count)
            if kind is not None and count == self.patience:
                self.collapsed[name] = new[name] = kind
        if not new or self.warned:
            return None
        self.warned = True
        kind = "all-negative" if "all-negative" in new.values() else "all-positive"
        names = [n for n, k in new.items() if k == kind]
        where = "tuned thresholds" if self.levers.optimize_thresholds else "threshold 0.5"
        message = (f"{', '.join(names)}: {'no positive' if kind == 'all-negative' else 'only positive'} validation "
                   f"predictions at the {where} for {self.patience} epochs; try {self.levers.advice(kind)}")
        logger.warning(message)
        return message


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "  nan"
    return format(value, spec)


def format_label_table(metrics: Mapping[str, Any], *, title: str = "") -> str:
    """Per-label precision / recall / F1 / AUROC / AUPRC / positive predictions as aligned text."""
    labels = metrics["labels"]
    width = max(12, *(len(n) for n in labels)) if labels else 12
    head = f"{'label':<{width}}  {'prev':>6}  {'thresh':>6}  {'pos_pred':>8}  {'pos_true':>8}  {'prec':>5}  {'recall':>6}  {'f1':>5}  {'auroc':>5}  {'auprc':>5}"
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for name, m in labels.items():
        lines.append(
            f"{name:<{width}}  {m['prevalence']:>6.2%}  {_fmt(m['threshold']):>6}  {m['n_pos_pred']:>8d}  {m['n_pos_true']:>8d}  "
            f"{_fmt(m['precision'])}  {_fmt(m['recall']):>6}  {_fmt(m['f1'])}  {_fmt(m['auroc'])}  {_fmt(m['auprc'])}"
        )
    if len(labels) > 1:
        mac = metrics["macro"]
        lines.append(
            f"{'macro':<{width}}  {'':>6}  {'':>6}  {mac['n_pos_pred']:>8d}  {'':>8}  {_fmt(mac['precision'])}  "
            f"{_fmt(mac['recall']):>6}  {_fmt(mac['f1'])}  {_fmt(mac['auroc'])}  {_fmt(mac['auprc'])}"
        )
    return "\n".join(lines)


class EpochLogger:
    """Console line per epoch and TensorBoard scalars per label; the PR curves and hparams at the end."""

    def __init__(self, log_dir: Optional[Path], label_names: Sequence[str], *, quiet: bool = False) -> None:
        self.label_names = list(label_names)
        self.quiet = quiet
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when logging

            self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_epoch(self, record: Any) -> None:
        """One epoch (a ``training.EpochRecord``): the console line and TensorBoard scalars."""
        epoch = record.epoch
        step = epoch if not record.member else 1000 * record.member + epoch  # ensemble members apart
        val, tuned = record.val, record.val_tuned
        if not self.quiet:
            counts = " ".join(str(val["labels"][n]["n_pos_pred"]) for n in self.label_names)
            # The metric early stopping watches comes first, with its value, a star on a new best
            # and, on an exact tie with the best epoch, how the tie was broken; recall and precision
            # at tuned thresholds also show the value compared at the best epoch's operating point.
            logger.info(
                "%sepoch %3d  loss %.4f/%.4f  %s %.4f%s  |  AUROC %.3f AUPRC %.3f  tuned F1 %.3f  @0.5 F1 %.3f pos_pred [%s]%s",
                f"member {record.member + 1} " if record.member else "", epoch, record.train_loss, record.val_loss,
                record.metric or "score", record.score, " *" if record.improved else "  ",
                val["macro"]["auroc"], val["macro"]["auprc"], tuned["macro"]["f1"], val["macro"]["f1"], counts,
                "".join(f"  ({note})" for note in (record.compared, record.tie) if note),
            )
        if self.writer is None:
            return
        w = self.writer
        w.add_scalar("loss/train", record.train_loss, step)
        w.add_scalar("loss/val", record.val_loss, step)
        w.add_scalar("lr", record.lr, step)
        for key in ("precision", "recall", "f1", "auroc", "auprc"):
            w.add_scalar(f"macro/{key}", val["macro"][key], step)
        w.add_scalar("macro/f1_tuned", tuned["macro"]["f1"], step)
        for name in self.label_names:
            m = val["labels"][name]
            for key in ("precision", "recall", "f1", "auroc", "auprc", "n_pos_pred"):
                w.add_scalar(f"{name}/{key}", m[key], step)
            w.add_scalar(f"{name}/loss_train", record.train_loss_per_label[name], step)
            w.add_scalar(f"{name}/loss_val", record.val_loss_per_label[name], step)
            w.add_scalar(f"{name}/f1_tuned", tuned["labels"][name]["f1"], step)
            w.add_scalar(f"{name}/threshold_tuned", tuned["labels"][name]["threshold"], step)

    def log_synthetic_quality(self, quality: Mapping[str, Any], markdown: str) -> None:
        if self.writer is None:
            return
        scalars = {
            "discriminative_auroc": quality["discriminative_auroc"],
            "mmd2": quality["mmd"]["mmd2"],
            "near_copy_share": quality["privacy"]["near_copy_share"],
            "coverage": quality["coverage"],
            "diversity": quality["diversity"],
            "exact_duplicates": quality["exact_duplicates"],
        }
        scalars["quality_score"] = quality.get("score", {}).get("score")
        for name, sub in quality.get("per_label", {}).items():
            scalars[f"quality_score/{name}"] = sub.get("score", {}).get("score")
        for key, value in scalars.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"synthetic/{key}", value, 0)
        self.writer.add_text("synthetic/report", markdown, 0)

    def log_pr_curves(self, y_true: np.ndarray, prob: np.ndarray, *, step: int, tag: str = "pr_curve") -> None:
        if self.writer is None:
            return
        for j, name in enumerate(self.label_names):
            self.writer.add_pr_curve(f"{tag}/{name}", y_true[:, j].astype(bool), prob[:, j], global_step=step)

    def log_hparams(self, hparams: Mapping[str, Any], final: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        flat = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items() if v is not None}
        self.writer.add_hparams(flat, {f"hparam/{k}": v for k, v in final.items()}, run_name="hparams")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_report_markdown(report: Mapping[str, Any]) -> str:
    """The final report (metrics.json) as a readable Markdown page."""
    lines = [f"# Run report: {report['run']['output_dir']}", ""]
    run = report["run"]
    lines += [
        f"- data: `{run['source']}`, {run['rows']['train']} train / {run['rows']['val']} validation / {run['rows']['test']} test rows",
        f"- best epoch {run['best_epoch']} of {run['epochs_run']} by `{run['early_stop_metric']}`"
        + (" (stopped early)" if run["stopped_early"] else ""),
        f"- thresholds: {'tuned on validation for ' + run['threshold_metric'] if run['optimize_thresholds'] else 'fixed at 0.5'}",
        f"- scored on the **{report['split']}** split",
        "",
    ]
    collapsed = report.get("collapsed", {})
    if collapsed.get("final") or collapsed.get("during_training"):
        lines.append("## Collapsed labels")
        for name, kind in collapsed.get("final", {}).items():
            lines.append(f"- `{name}`: {kind} on the {report['split']} split at its final threshold")
        for name, kind in collapsed.get("during_training", {}).items():
            lines.append(f"- `{name}`: went {kind} on validation for several epochs during training")
        lines.append("")
    header = "| model | label | threshold | pos pred | pos true | precision | recall | F1 | AUROC | AUPRC |"
    lines += ["## Per-label metrics", "", header, "|" + "---|" * 10]
    for model_name, metrics in report["models"].items():
        for name, m in metrics["labels"].items():
            lines.append(
                f"| {model_name} | {name} | {_fmt(m['threshold'])} | {m['n_pos_pred']} | {m['n_pos_true']} | {_fmt(m['precision'])} | "
                f"{_fmt(m['recall'])} | {_fmt(m['f1'])} | {_fmt(m['auroc'])} | {_fmt(m['auprc'])} |"
            )
        if len(metrics["labels"]) > 1:
            mac = metrics["macro"]
            lines.append(
                f"| {model_name} | **macro** | | {mac['n_pos_pred']} | | {_fmt(mac['precision'])} | {_fmt(mac['recall'])} | "
                f"{_fmt(mac['f1'])} | {_fmt(mac['auroc'])} | {_fmt(mac['auprc'])} |"
            )
    lines.append("")
    if report.get("intervals"):
        lines += [format_intervals(report), ""]
    if report.get("calibration"):
        lines += [format_calibration(report["calibration"]), ""]
    if report.get("slices"):
        lines += [format_slices(report), ""]
    if report.get("plots"):
        lines += [format_plots(report["plots"]), ""]
    return "\n".join(lines)


def format_intervals(report: Mapping[str, Any]) -> str:
    """Point estimates with bootstrap intervals (Markdown): macro per model, then per label for
    every model, then the paired difference between the network and the better baseline."""
    boot = report["intervals"]
    level = round(100 * boot["level"])
    keys = ("auroc", "auprc", "f1", "precision", "recall")

    def cell(value: float, interval: Sequence[float]) -> str:
        return f"{_fmt(value)} [{_fmt(interval[0])}, {_fmt(interval[1])}]"

    lines = [f"## {level}% intervals ({boot['n_boot']} bootstrap resamples of the {report['split']} split, "
             f"stratified by {boot['stratified_by']})", "",
             "| model | label | " + " | ".join(k.upper() if k.startswith("au") else k for k in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for model, models in boot["models"].items():
        point = report["models"][model]
        rows = [(name, point["labels"][name], models["labels"][name]) for name in models["labels"]]
        if len(rows) > 1:
            rows.append(("**macro**", point["macro"], models["macro"]))
        for name, values, ci in rows:
            lines.append(f"| {model} | {name} | " + " | ".join(cell(values[k], ci[k]) for k in keys) + " |")
    paired = boot.get("paired")
    if paired:
        low, high = paired["interval"]
        lines += ["", f"Network - {paired['baseline']}, {paired['metric']}: {paired['difference']:+.3f} "
                      f"({level}% interval {low:+.3f} to {high:+.3f}); the network was ahead in "
                      f"{100 * paired['share_network_better']:.0f}% of the resamples."]
    return "\n".join(lines)


def format_slices(report: Mapping[str, Any]) -> str:
    """Per slice column and label, each group's counts and metrics (Markdown)."""
    slices = report["slices"]
    lines = [f"## Subgroups ({report['split']} split; numeric columns in {slices['bins']} quantile bins of the training rows; "
             f"groups with fewer than {slices['min_positives']} positives flagged, not scored)", ""]
    keys = ("recall", "precision", "false_positive_rate", "auroc")
    for column, labels in slices["columns"].items():
        for label, result in labels.items():
            eo, dp = result["equalized_odds_difference"], result["demographic_parity_difference"]
            lines += [f"### `{label}` by `{column}`", "",
                      f"Equalized-odds difference {_fmt(eo)}, demographic-parity difference {_fmt(dp)} "
                      f"(over {len(result['scored_groups'])} scored groups).", "",
                      "| group | rows | positives | prevalence | recall | precision | false-positive rate | AUROC |",
                      "|---|---|---|---|---|---|---|---|"]
            for group, m in result["groups"].items():
                values = " | ".join(_fmt(m[k]) for k in keys) if "flagged" not in m else f"flagged: {m['flagged']} | | |"
                lines.append(f"| {group} | {m['rows']} | {m['positives']} | {_fmt(m['prevalence'])} | {values} |")
            lines.append("")
    return "\n".join(lines)


def format_plots(plots: Sequence[str]) -> str:
    """The run's plots embedded in Markdown: the run's own, then one figure per label."""
    lines = ["## Plots", ""]
    for path in sorted(plots, key=lambda p: (Path(p).stem.startswith("label_"), p)):
        lines += [f"![{Path(path).stem}]({path})", ""]
    return "\n".join(lines)


def format_calibration(calibration: Mapping[str, Any]) -> str:
    """Per label, before and after ``--calibration``, on the report split (Markdown table)."""
    lines = [f"## Calibration: `{calibration['method']}` (fitted on validation; scored on the {calibration['split']} split)", "",
             f"Brier score, expected calibration error (ECE, {calibration['ece_bins']} bins of equal row count), calibration "
             "slope and intercept (1 and 0 when calibrated), mean predicted probability against the observed rate.", "",
             "| label | Brier | ECE | slope | intercept | mean predicted | observed |", "|---|---|---|---|---|---|---|"]
    for name, before in calibration["before"].items():
        after = calibration["after"][name]

        def pair(key: str) -> str:
            return _fmt(after[key]) if calibration["method"] == "none" else f"{_fmt(before[key])} -> {_fmt(after[key])}"

        lines.append(f"| {name} | {pair('brier')} | {pair('ece')} | {pair('slope')} | {pair('intercept')} | "
                     f"{pair('mean_predicted')} | {_fmt(after['observed_rate'])} |")
    return "\n".join(lines)


_COMPARED = ("precision", "recall", "f1", "auroc", "auprc", "tp", "fp", "fn", "tn", "n_pos_pred")


def _quality_of(report: Mapping[str, Any], label: Optional[str]) -> Optional[dict[str, Any]]:
    """A run's synthetic-row quality score (for one label of a multi-label run), if it has one."""
    quality = (report.get("augmentation") or {}).get("quality") or {}
    if label is not None and label in quality.get("per_label", {}):
        quality = quality["per_label"][label]
    elif label is not None and quality.get("label") not in (None, label):
        return None
    score = quality.get("score")
    return None if not score or _is_missing(score.get("score")) else {"score": score["score"], "grade": score["grade"]}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def compare_reports(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-label network metrics of a baseline run and augmented runs on the same held-out split:
    each run's values and its difference to the baseline, the synthetic rows' quality score and
    the seconds each run took. ``reports``: run name -> metrics.json, the baseline first."""
    names = list(reports)
    baseline, others = names[0], names[1:]
    if len({r["split"] for r in reports.values()}) != 1:
        raise ValueError("the runs were scored on different splits")
    nets = {name: r["models"]["network"] for name, r in reports.items()}
    labels = {}
    for label in nets[baseline]["labels"]:
        labels[label] = {key: {**{name: nets[name]["labels"][label][key] for name in names},
                               "difference": {name: nets[name]["labels"][label][key] - nets[baseline]["labels"][label][key]
                                              for name in others}}
                         for key in _COMPARED}
    macro = {key: {**{name: nets[name]["macro"][key] for name in names},
                   "difference": {name: nets[name]["macro"][key] - nets[baseline]["macro"][key] for name in others}}
             for key in ("precision", "recall", "f1", "auroc", "auprc")}
    quality = {name: {label: _quality_of(reports[name], label) for label in labels} for name in others}
    return {"split": reports[baseline]["split"], "baseline": baseline, "runs": names, "labels": labels, "macro": macro,
            "quality": quality, "seconds": {name: r.get("run", {}).get("seconds") for name, r in reports.items()},
            "augmentation": {name: reports[name].get("augmentation") or {} for name in others}}


def format_comparison_markdown(comparison: Mapping[str, Any]) -> str:
    baseline, runs = comparison["baseline"], comparison["runs"]

    def methods(name: str) -> str:
        steps = (comparison["augmentation"].get(name, {}).get("provenance") or {}).get("steps", [])
        described = ", ".join(str(step.get("method")) for step in steps)
        return f"{name} ({described})" if described and described != name else name

    lines = [f"# Baseline vs {', '.join(methods(n) for n in runs[1:])}: {comparison['split']} split (real rows only)", "",
             "Same split, seed and settings; each augmented run's difference to the baseline in brackets. Quality: the "
             "synthetic rows' score (synthetic_quality.md in the run's folder).", "",
             "| label | run | precision | recall | F1 | AUROC | AUPRC | quality | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    keys = ("precision", "recall", "f1", "auroc", "auprc")

    def row(label: str, values: Mapping[str, Any], name: str, quality: Optional[dict]) -> str:
        cells = []
        for key in keys:
            v = values[key]
            text = _fmt(v[name])
            if name != baseline:
                diff = v["difference"][name]
                text += f" ({'+' if diff > 0 else ''}{_fmt(diff)})"
            cells.append(text)
        score = "" if not quality else f"{quality['score']:.0f} ({quality['grade']})"
        seconds = comparison["seconds"].get(name)
        return f"| {label} | {name} | " + " | ".join(cells) + f" | {score} | {'' if seconds is None else f'{seconds:.1f}'} |"

    for label, values in comparison["labels"].items():
        for name in runs:
            lines.append(row(label, values, name, comparison["quality"].get(name, {}).get(label)))
    if len(comparison["labels"]) > 1:
        for name in runs:
            lines.append(row("**macro**", comparison["macro"], name, None))
    return "\n".join(lines) + "\n"
