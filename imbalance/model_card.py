"""``model_card.md``: what a clinician or reviewer needs to judge a trained model, in one page.

Built from what the run already wrote (the report in ``metrics.json``, the imbalance analysis,
the resolved config and the command in ``run.json``), so ``python -m imbalance.report RUN_DIR``
can write it again. Sections: intended use and out-of-scope use; data; training recipe and the
command that reproduces it; augmentation; metrics with intervals next to the baselines;
calibration; thresholds and their objective; subgroups; limitations.
"""

from __future__ import annotations

import math
import shlex
from typing import Any, Mapping, Optional, Sequence

from .reporting import format_calibration, format_plots, format_slices
from .synthetic_quality import gate_failures, score_text

__all__ = ["format_model_card", "limitations", "FEW_POSITIVES"]

FEW_POSITIVES = 50  # held-out positives below which a label's metrics are flagged as fragile


def _num(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def _with_interval(value: float, interval: Optional[Sequence[float]]) -> str:
    return _num(value) if not interval else f"{_num(value)} [{_num(interval[0])}, {_num(interval[1])}]"


def limitations(report: Mapping[str, Any], analysis: Mapping[str, Any]) -> list[str]:
    """The run's own caveats: few held-out positives, collapsed labels, synthetic rows, wide
    intervals, a baseline that does as well, subgroups too small to score."""
    notes = []
    split = report["split"]
    network = report["models"]["network"]
    for name, metrics in network["labels"].items():
        if metrics["n_pos_true"] < FEW_POSITIVES:
            notes.append(f"`{name}` has {metrics['n_pos_true']} positives in the {split} split: its metrics move by several "
                         "points with a handful of patients (see the intervals).")
    for name, kind in report.get("collapsed", {}).get("final", {}).items():
        notes.append(f"`{name}` is {kind} on the {split} split at its threshold: the model gives no usable decision for it.")
    for name, kind in report.get("collapsed", {}).get("during_training", {}).items():
        notes.append(f"`{name}` went {kind} on validation for several epochs during training.")
    augmentation = report.get("augmentation") or {}
    if augmentation:
        final = (augmentation.get("provenance") or {}).get("final", {}).get("rows", {})
        notes.append(f"The model trained on {final.get('synthetic', 'some')} synthetic rows besides {final.get('real', 'the')} real "
                     "ones; every metric here is on real rows only.")
    paired = (report.get("intervals") or {}).get("paired")
    if paired and paired["interval"][0] <= 0 <= paired["interval"][1]:
        notes.append(f"The network's macro AUPRC is not distinguishable from {paired['baseline']}'s on this split "
                     f"(difference {paired['difference']:+.3f}, 95% interval {paired['interval'][0]:+.3f} to "
                     f"{paired['interval'][1]:+.3f}): the simpler model may serve as well.")
    elif paired and paired["interval"][1] < 0:
        notes.append(f"{paired['baseline']} ranks the {split} rows better than the network (macro AUPRC difference "
                     f"{paired['difference']:+.3f}): prefer it, or train further.")
    for column, labels in (report.get("slices") or {}).get("columns", {}).items():
        for label, result in labels.items():
            flagged = [g for g, m in result["groups"].items() if "flagged" in m]
            if flagged:
                notes.append(f"`{label}` by `{column}`: groups {', '.join(flagged)} have too few positives to score.")
    missing = (analysis.get("features") or {}).get("missing_share") or {}
    heavy = {c: s for c, s in missing.items() if s >= 0.2}
    if heavy:
        notes.append("Columns missing in at least 20% of rows (filled in training, and so in use): "
                     + ", ".join(f"{c} ({100 * s:.0f}%)" for c, s in heavy.items()) + ".")
    notes.append("Validated on a random split of one source file only: performance on another site, period or population "
                 "is unknown until measured (`python -m imbalance.report RUN_DIR --csv_path new.csv`).")
    return notes


def format_model_card(report: Mapping[str, Any], analysis: Mapping[str, Any], config: Mapping[str, Any],
                      command: Optional[Sequence[str]]) -> str:
    run, split = report["run"], report["split"]
    labels = run["labels"]
    lines = [f"# Model card: {', '.join(labels)}", ""]

    lines += ["## Intended use", "",
              f"Estimates the probability of {', '.join(f'`{n}`' for n in labels)} for rows shaped like `{run['source']}` "
              f"({len(analysis.get('features', {}).get('category_levels', {}))} categorical and "
              f"{analysis.get('features', {}).get('numeric', '?')} numeric inputs), to rank or flag rows for review by a "
              "clinician at the stated thresholds. Probabilities are calibrated on the validation split "
              f"(`{report.get('calibration', {}).get('method', 'none')}`).", "",
              "**Out of scope**: automated decisions without clinical review; populations, sites or time periods unlike the "
              "training file without validating there first; outcomes, definitions or feature encodings other than the ones "
              "trained on; using the scores to explain causes (they are associations).", ""]

    lines += ["## Data", "", f"- source: `{run['source']}`, {analysis.get('rows', '?')} rows ({analysis.get('task', '')}); split "
              f"{run['rows']['train']} train / {run['rows']['val']} validation / {run['rows']['test']} test "
              f"({'stratified' if config.get('use_stratified_split') else 'random'}, seed {config.get('seed')})"]
    features = analysis.get("features") or {}
    lines.append(f"- features: {features.get('columns', '?')} columns: {features.get('numeric', '?')} numeric, "
                 f"{features.get('binary', '?')} yes/no, {features.get('categorical', '?')} categorical"
                 + (f"; left out: {', '.join(features['left_out'])}" if features.get("left_out") else ""))
    if features.get("missing_share"):
        lines.append("- most missing: " + ", ".join(f"{c} {100 * s:.1f}%" for c, s in features["missing_share"].items()))
    lines += ["", "| label | prevalence | positives (train / val / test) | imbalance ratio | severity |", "|---|---|---|---|---|"]
    for entry in analysis.get("labels", []):
        per = entry["positives_per_split"]
        lines.append(f"| {entry['name']} | {100 * entry['prevalence']:.2f}% | {per['train']} / {per['val']} / {per['test']} | "
                     f"{entry['ratio']:.1f}:1 | {entry['severity']} |")
    lines.append("")

    lines += ["## Training recipe", "",
              f"- model: `{run['model']}` (numeric embeddings: {run['num_embeddings']}), {run['ensemble']} member(s); "
              f"preset `{config.get('preset')}`",
              f"- sampling: {config.get('weight_method') + ' weighted sampling' if config.get('use_weighted_sampling') else 'none'}; "
              f"loss `{config.get('loss_type')}`; class weights `{config.get('class_weight_method')}` x "
              f"{config.get('class_weight_multiplier')}; learning rate {config.get('lr')}, batch {config.get('batch_size')}",
              f"- early stopping on `{run['early_stop_metric']}`: best epoch {run['best_epoch']} of {run['epochs_run']}",
              f"- more minority rows: {config.get('resample') if config.get('resample') != 'none' else ''}"
              f"{config.get('generator') if config.get('generator') != 'none' else ''}"
              f"{'none' if config.get('resample') == 'none' and config.get('generator') == 'none' and not config.get('generated_csv') else ''}",
              "", "Reproduce (same file, same toolkit version; `config.json` holds every resolved setting):", "", "```bash",
              "python " + (shlex.join(command) if command else "train_classifier.py --config <the run's settings>"), "```", ""]

    augmentation = report.get("augmentation")
    lines += ["## Augmentation", ""]
    if not augmentation:
        lines += ["None: the model trained on real rows only.", ""]
    else:
        provenance = augmentation.get("provenance") or {}
        steps = ", ".join(str(s.get("method")) for s in provenance.get("steps", [])) or "yes"
        rows = provenance.get("final", {}).get("rows", {})
        quality = augmentation.get("quality")
        if not quality:
            verdict = "not measured (resampled copies, or too few rows to compare)"
        else:
            failures = gate_failures(quality, max_discriminative_auroc=config.get("gate_max_auroc", 1.0),
                                     max_near_copy_share=config.get("gate_max_near_copies", 1.0))
            verdict = (f"score {score_text(quality)}; "
                       f"{'fails' if failures else 'passes'} the quality gate's limits (discriminative AUROC <= "
                       f"{config.get('gate_max_auroc')}, near-copy share <= {config.get('gate_max_near_copies')})"
                       + (": " + "; ".join(failures) if failures else "") + "; details in synthetic_quality.md")
        lines += [f"- method: {steps}; real rows {rows.get('real', '?')}, synthetic rows {rows.get('synthetic', '?')}",
                  f"- synthetic-data quality: {verdict}", ""]

    intervals = report.get("intervals") or {}
    lines += [f"## Metrics ({split} split" + (f", 95% intervals from {intervals['n_boot']} bootstrap resamples)" if intervals else ")"),
              "", "| model | AUROC | AUPRC | F1 | precision | recall |", "|---|---|---|---|---|---|"]
    for model, metrics in report["models"].items():
        ci = (intervals.get("models") or {}).get(model, {}).get("macro", {})
        lines.append(f"| {model} (macro) | " + " | ".join(_with_interval(metrics["macro"][k], ci.get(k))
                                                        for k in ("auroc", "auprc", "f1", "precision", "recall")) + " |")
    lines += ["", "| label | positives | AUROC | AUPRC | F1 | precision | recall |", "|---|---|---|---|---|---|---|"]
    label_ci = (intervals.get("models") or {}).get("network", {}).get("labels", {})
    for name, m in report["models"]["network"]["labels"].items():
        ci = label_ci.get(name, {})
        lines.append(f"| {name} | {m['n_pos_true']} | " + " | ".join(_with_interval(m[k], ci.get(k))
                                                                 for k in ("auroc", "auprc", "f1", "precision", "recall")) + " |")
    if intervals.get("paired"):
        p = intervals["paired"]
        lines += ["", f"Network - {p['baseline']} (the better baseline), macro AUPRC: {p['difference']:+.3f} "
                      f"(95% interval {p['interval'][0]:+.3f} to {p['interval'][1]:+.3f})."]
    lines.append("")

    if report.get("calibration"):
        lines += [format_calibration(report["calibration"]), ""]

    lines += ["## Thresholds", "",
              f"{'Tuned on the validation split for `' + run['threshold_metric'] + '`' if run['optimize_thresholds'] else 'Fixed at 0.5'}; "
              "a row is flagged when its probability is at or above its label's threshold.", "",
              "| label | threshold | flagged in test | precision | recall |", "|---|---|---|---|---|"]
    for name, m in report["models"]["network"]["labels"].items():
        lines.append(f"| {name} | {_num(m['threshold'], '.4g')} | {m['n_pos_pred']} of {m['n']} | {_num(m['precision'])} | {_num(m['recall'])} |")
    lines.append("")

    lines += (format_slices(report).splitlines() if report.get("slices")
              else ["## Subgroups", "", "Not examined: pass `--slice_cols` (e.g. `sex,age`) to report recall, precision and "
                    "false-positive rate per group with fairness gaps.", ""])

    lines += ["## Limitations", ""] + [f"- {note}" for note in limitations(report, analysis)] + [""]
    if report.get("plots"):
        lines += [format_plots(report["plots"]), ""]
    return "\n".join(lines)
