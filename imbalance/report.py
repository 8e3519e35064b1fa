"""``python -m imbalance.report RUN_DIR [--csv_path new.csv]``: the reports again, or the same report
on new labelled rows with drift checks.

Without ``--csv_path`` it writes ``report.md`` and ``model_card.md`` of a completed run again
from the run's own files (``metrics.json``, ``analysis.json``, ``config.json``, ``run.json``),
in place: they are the run's generated files.

With ``--csv_path`` (rows with the outcome columns filled in: an external site, a later period)
it scores the run's checkpoint on them, exactly as ``predict.py`` would (preprocessing,
calibration, thresholds), and writes into ``--output_dir`` (default ``RUN_DIR/external_<file>``,
a folder of its own with its ``run.json``): ``metrics.json`` and ``report.md`` with per-label
metrics and bootstrap intervals, calibration, subgroups (the run's ``--slice_cols``, if the file
has them), plots, and drift: per feature the population stability index and Kolmogorov-Smirnov
statistic against the training rows' profile stored in the checkpoint, and per label the share
of rows flagged against the training prevalence and the held-out split, with what moved
flagged.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_report
from .calibration import calibration_metrics
from .config import split_list
from .data import parse_outcome, read_table
from .drift import drift_report
from .errors import UserError, exit_code
from .files import write_json, write_text
from .inference import Predictor
from .metrics import label_metrics
from .model_card import format_model_card
from .plots import PlotData, write_plots
from .reporting import format_calibration, format_intervals, format_plots, format_report_markdown, format_slices
from .run_folder import MARKER, RunFolder, read_marker
from .slices import slice_report
from .training import TensorRows, predict_proba

__all__ = ["regenerate", "external_report", "format_drift", "main"]

log = logging.getLogger(__name__)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path}: missing or unreadable; pass the folder of a completed training run") from None


def _completed_run(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise UserError(f"RUN_DIR '{run_dir}': no such folder; pass the folder of a completed training run")
    marker = read_marker(run_dir)
    if marker is None:
        raise UserError(f"RUN_DIR '{run_dir}': not a run folder of this tool (no readable {MARKER})")
    if marker.get("status") != "complete":
        raise UserError(f"RUN_DIR '{run_dir}': that run is {marker.get('status')}, not complete; finish it first "
                        "(train_classifier.py --resume RUN_DIR)")
    return marker


def regenerate(run_dir: Path) -> list[Path]:
    """report.md and model_card.md of a completed run, from its own files."""
    marker = _completed_run(run_dir)
    report = _read_json(run_dir / "metrics.json")
    analysis = _read_json(run_dir / "analysis.json")
    config = _read_json(run_dir / "config.json")
    if "metrics.json" not in marker.get("files", []):
        raise UserError(f"RUN_DIR '{run_dir}': its run.json does not list metrics.json; the folder was changed by hand")
    lock = RunFolder._lock_folder(run_dir, "RUN_DIR")  # not while a training run writes here
    try:
        written = [write_text(run_dir / "report.md", format_report_markdown(report)),
                   write_text(run_dir / "model_card.md", format_model_card(report, analysis, config, marker.get("command")))]
    finally:
        lock.close()
    return written


def _labelled_rows(path: str, label_names: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    frame = read_table(path)
    missing = [n for n in label_names if n not in frame.columns]
    if missing:
        raise UserError(f"--csv_path {path}: outcome column(s) {', '.join(missing)} missing; this report needs labelled rows "
                        "(score unlabelled rows with predict.py)")
    outcomes = np.column_stack([parse_outcome(frame[n], n, path) for n in label_names])
    keep = ~np.isnan(outcomes).any(axis=1)
    if not keep.all():
        log.warning("%s: %d row(s) without every outcome are left out", path, int((~keep).sum()))
    if not keep.any():
        raise UserError(f"--csv_path {path}: no row has every outcome ({', '.join(label_names)}) filled in")
    return frame.loc[keep].reset_index(drop=True), outcomes[keep].astype(np.uint8)


def external_report(run_dir: Path, csv_path: str, *, output_dir: Optional[str], overwrite: bool, n_boot: int, seed: int,
                    plots: bool, argv: Optional[list[str]] = None) -> Path:
    """Score the run's checkpoint on labelled rows and write the same report with drift checks."""
    _completed_run(run_dir)
    config = _read_json(run_dir / "config.json")
    predictor = Predictor.load(run_dir)
    names = predictor.label_names
    frame, y = _labelled_rows(csv_path, names)
    out = Path(output_dir) if output_dir else run_dir / f"external_{Path(csv_path).stem}"
    folder = RunFolder.claim(str(out), overwrite=overwrite, flag="--output_dir", argv=argv)
    try:
        rows = TensorRows.from_numpy(predictor.preprocessor.transform(frame, source=csv_path), predictor.device)
        raw = predict_proba(predictor.models, rows).cpu().numpy()
        offsets = predictor.calibration.member_offsets()
        prob = predictor.calibration.apply(raw if offsets is None else predict_proba(predictor.models, rows, offsets=offsets).cpu().numpy())
        thresholds = predictor.thresholds
        folder.begin()
        network = label_metrics(y, prob, thresholds, names)
        report: dict[str, Any] = {
            "split": "external", "source": csv_path, "run_dir": str(run_dir), "rows": int(len(y)),
            "models": {"network": network},
            "intervals": None if not n_boot else bootstrap_report(y, {"network": (prob, thresholds)}, names, n_boot=n_boot,
                                                                  seed=seed, point={"network": network}),
            "calibration": {"method": predictor.calibration.method, "split": "external", "ece_bins": 10,
                            "before": calibration_metrics(y, raw, names), "after": calibration_metrics(y, prob, names)},
        }
        reference = predictor.checkpoint.get("reference")
        report["slices"] = _slices(config, reference, frame, y, prob, thresholds, names)
        held_out = predictor.checkpoint.get("metrics", {}).get("labels", {})
        if reference:
            report["drift"] = drift_report(
                reference, frame, flagged_share={n: float((prob[:, j] >= thresholds[j]).mean()) for j, n in enumerate(names)},
                prevalence=reference.get("prevalence", {}),
                held_out_share={n: m["n_pos_pred"] / m["n"] for n, m in held_out.items() if m.get("n")})
        else:
            log.warning("%s: the checkpoint holds no training profile (an older run); drift is not measured", run_dir)
        if plots:
            data = PlotData(label_names=names, split="external", y=y, models={"network": (prob, thresholds)}, raw=raw,
                            y_val=y, prob_val=prob, calibration=predictor.calibration.method, history=[],
                            stop_metric="", slices=report["slices"], threshold_split="external")
            report["plots"] = [str(p.relative_to(folder.path)) for p in write_plots(data, folder.file("plots"))]
        write_json(folder.file("metrics.json"), report)
        write_text(folder.file("report.md"), format_external(report))
        folder.finish("complete")
    except BaseException as exc:
        if folder.record is None:
            folder.abandon()
        else:
            folder.finish("failed", error=str(exc))
        raise
    finally:
        folder.release()
    return folder.path


def _slices(config: Mapping[str, Any], reference: Optional[Mapping[str, Any]], frame: pd.DataFrame, y: np.ndarray,
            prob: np.ndarray, thresholds: np.ndarray, names: Sequence[str]) -> Optional[dict[str, Any]]:
    """The run's --slice_cols on the new rows; numeric bins from the training profile's sample."""
    columns = [c for c in split_list(config.get("slice_cols")) if c in frame.columns]
    if not columns:
        return None
    profiles = (reference or {}).get("columns", {})
    train_values = {}
    for c in columns:
        profile = profiles.get(c, {})
        train_values[c] = pd.Series(profile.get("sample") or list(profile.get("levels", {})) or frame[c].tolist())
    return slice_report(y, prob, thresholds, names, {c: (train_values[c], frame[c]) for c in columns},
                        bins=int(config.get("slice_bins", 4)), min_positives=int(config.get("slice_min_positives", 10)))


def _num(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_drift(drift: Mapping[str, Any]) -> str:
    limits = drift["thresholds"]
    lines = [f"## Drift against the training rows ({drift['rows']} new rows, {drift['reference_rows']} training rows)", "",
             f"Population stability index (PSI: below {limits['psi_moderate']} stable, to {limits['psi_major']} moderate, above "
             f"major) and, for numeric columns, the Kolmogorov-Smirnov statistic against a sample of the training values "
             f"(flagged at >= {limits['ks_statistic']}).", ""]
    lines.append("Moved: " + (", ".join(f"`{n}`" for n in drift["moved"]) if drift["moved"] else "nothing flagged") + ".")
    lines += ["", "| feature | kind | PSI | reading | KS statistic | KS p-value | mean (train -> new) | missing (train -> new) | flagged |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, e in sorted(drift["features"].items(), key=lambda kv: -(kv[1]["psi"] if np.isfinite(kv[1]["psi"]) else -1)):
        mean = f"{_num(e.get('mean_reference'), '.4g')} -> {_num(e.get('mean_new'), '.4g')}" if "mean_new" in e else ""
        lines.append(f"| {name} | {e['kind']} | {_num(e['psi'])} | {e['reading']} | {_num(e.get('ks_statistic'))} | "
                     f"{_num(e.get('ks_pvalue'), '.2g')} | {mean} | {_num(e['missing_reference'])} -> {_num(e['missing_new'])} | "
                     f"{'yes' if e['flagged'] else ''} |")
    band = limits["rate_band"]
    lines += ["", f"Share of rows flagged positive (flagged when outside {band[0]}-{band[1]} x the held-out split's share):", "",
              "| label | flagged share (new) | training prevalence | flagged share (held out) | ratio | flagged |", "|---|---|---|---|---|---|"]
    for name, e in drift["labels"].items():
        lines.append(f"| {name} | {_num(e['flagged_share'])} | {_num(e['training_prevalence'])} | {_num(e['held_out_flagged_share'])} | "
                     f"{_num(e['ratio_to_held_out'], '.2f')} | {'yes' if e['flagged'] else ''} |")
    return "\n".join(lines)


def format_external(report: Mapping[str, Any]) -> str:
    network = report["models"]["network"]
    lines = [f"# External validation: `{report['source']}` scored with `{report['run_dir']}`", "",
             f"{report['rows']} labelled rows, scored as predict.py would (preprocessing, calibration, thresholds of the run).", "",
             "| label | positives | threshold | flagged | precision | recall | F1 | AUROC | AUPRC |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in network["labels"].items():
        lines.append(f"| {name} | {m['n_pos_true']} | {_num(m['threshold'], '.4g')} | {m['n_pos_pred']} | {_num(m['precision'])} | "
                     f"{_num(m['recall'])} | {_num(m['f1'])} | {_num(m['auroc'])} | {_num(m['auprc'])} |")
    lines.append("")
    if report.get("intervals"):
        lines += [format_intervals(report), ""]
    lines += [format_calibration(report["calibration"]), ""]
    if report.get("slices"):
        lines += [format_slices(report), ""]
    if report.get("drift"):
        lines += [format_drift(report["drift"]), ""]
    if report.get("plots"):
        lines += [format_plots(report["plots"]), ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imbalance.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="the folder of a completed training run")
    parser.add_argument("--csv_path", "--csv-path", help="labelled rows (CSV or Parquet) to score and check for drift")
    parser.add_argument("--output_dir", "--output-dir", help="where the external report goes (default RUN_DIR/external_<file>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier external report in --output_dir")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (0 = none)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_plots", "--no-plots", action="store_true", help="write no PNG plots")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dir = Path(args.run_dir)

    def act() -> None:
        if args.bootstrap and args.bootstrap < 100:
            raise UserError(f"--bootstrap must be 0 (no intervals) or at least 100 resamples, got {args.bootstrap}")
        if args.csv_path is None:
            for path in regenerate(run_dir):
                print(f"wrote {path}")
            return
        out = external_report(run_dir, args.csv_path, output_dir=args.output_dir, overwrite=args.overwrite,
                              n_boot=args.bootstrap, seed=args.seed, plots=not args.no_plots,
                              argv=["python -m imbalance.report", *map(str, argv if argv is not None else sys.argv[1:])])
        report = json.loads((out / "metrics.json").read_text())
        moved = (report.get("drift") or {}).get("moved", [])
        print(f"external report: {out / 'report.md'}; macro AUPRC {report['models']['network']['macro']['auprc']:.3f}; "
              f"drift: {', '.join(moved) if moved else 'nothing flagged'}")

    return exit_code("python -m imbalance.report", act)


if __name__ == "__main__":
    sys.exit(main())
