"""A training run from a command line, start to end: ``train_classifier.py`` is this module's
``main``.

``run(argv)`` parses the command line and runs one of: :func:`train` (one run), :func:`compare_augmentation`
(``--compare``: without and with augmentation) or :func:`search_and_train` (``--preset auto``),
each inside :func:`run_folder_for` (the run folder's claim, marker and lock), and prints the
report. ``main`` turns a :class:`~imbalance.errors.UserError` into one line and exit code 2,
Ctrl-C into 130 and SIGTERM into 143.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch

from .analyze import format_analysis
from .auto import format_search_markdown, search
from .config import AUTO_PRESET, TrainConfig, compare_methods, parse_config
from .distributed import DistContext, init_distributed
from .errors import UserError
from .files import write_csv, write_json, write_text
from .pipeline import RunCheckpoints, fit_members, input_spec, prepare_data, resolve_device, score_and_save
from .reporting import (CollapseGuard, EpochLogger, Levers, compare_reports, format_calibration, format_comparison_markdown,
                        format_intervals, format_label_table)
from .plots import write_synthetic_plot
from .resampling import RESAMPLERS
from .run_folder import RunFolder
from .synthetic_quality import gate_failures, report_markdown, score_text

log = logging.getLogger("train_classifier")  # the CLI's voice, whichever way it is called


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the current epoch is abandoned and the run marked interrupted."""


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"  # torchrun's rank 0 owns the run folder


@contextmanager
def run_folder_for(cfg: TrainConfig, command: Optional[Sequence[str]] = None):
    """Claim the run folder (rank 0) before any data is read, and record how the run ended."""
    if not _is_main_process():
        yield None
        return
    folder = RunFolder.claim(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume is not None,
                             argv=None if command is None else list(command))
    try:
        yield folder
    except UserError as exc:
        if folder.record is None:  # stopped on its input before writing anything: leave no trace
            folder.abandon()
        else:
            folder.finish("failed", error=str(exc))
        raise
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    except BaseException as exc:
        folder.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        folder.finish("complete")
    finally:
        folder.release()


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the command line and train (twice, with --compare). Returns the final report."""
    cfg, _ = parse_config(argv, prog="train_classifier.py")
    logging.basicConfig(level=logging.WARNING if cfg.quiet else logging.INFO, format="%(message)s", force=True)
    for note in cfg.advisories():
        log.warning(note)
    command = None if argv is None else ["train_classifier.py", *map(str, argv)]
    if cfg.preset == AUTO_PRESET:
        return search_and_train(cfg, command)
    return compare_augmentation(cfg, command) if cfg.compare is not None else train(cfg, command)


def search_and_train(cfg: TrainConfig, command: Optional[Sequence[str]] = None) -> dict:
    """--preset auto: search models and recipes on the validation split within --time_budget,
    then make the best trial's model an ordinary run (tuned thresholds, test scores, best.pt)."""
    if cfg.resume is not None:
        raise UserError("--resume continues one training run; a --preset auto search cannot be resumed: start it again with --overwrite")
    if cfg.compare is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--preset auto runs one process without --compare; drop --compare, or run it without torchrun")
    started = time.perf_counter()
    torch.set_num_threads(cfg.num_threads or 1)
    device = resolve_device(cfg.device)
    show_progress = not cfg.quiet and sys.stderr.isatty()
    with run_folder_for(cfg, command) as folder:
        data = prepare_data(cfg, dist=DistContext(), progress=show_progress, keep_search_rows=True)
        log.info("%s", format_analysis(data.analysis))
        folder.begin()
        write_json(folder.file("analysis.json"), data.analysis.to_dict())
        log.info("searching models and imbalance recipes for %g s (validation macro AUPRC)%s", cfg.time_budget,
                 f", at most {cfg.max_trials} trials" if cfg.max_trials else "")
        result = search(cfg, data, device=device, started=started, progress=show_progress)
        chosen = result.cfg
        write_json(folder.file("config.json"), chosen.to_dict())
        write_csv(folder.file("search.csv"), result.table(), index=False)
        write_text(folder.file("search.md"), format_search_markdown(result))
        report, source = score_and_save(
            chosen, result.data, result.trained, result.checkpoints, device=device,
            guard=CollapseGuard(result.data.label_names, levers=Levers.of(chosen)),
            epoch_log=EpochLogger(None, result.data.label_names, quiet=True), started=started, folder=folder)
    members = report["run"]["members"]
    final = (f"an average of {len(members)} trials' models ({', '.join(m['model'] for m in members)})" if len(members) > 1
             else result.describe_choice())
    print(f"\nsearch: {len(result.trials)} trials in {result.seconds:.0f} s; chosen {final}, see search.md; "
          f"thresholds {source}; scored on the {report['split']} split")
    print_tables(report)
    print(f"\nrun folder: {folder.path}  (best.pt, metrics.json, report.md, model_card.md, search.md, config.json)")
    return report


def compare_augmentation(cfg: TrainConfig, command: Optional[Sequence[str]] = None) -> dict:
    """The same configuration without augmentation and with each compared method (or with the
    flags' own augmentation), on the same split and seed: runs in folders of their own inside
    this run's folder, and one table (comparison.md / .json)."""
    if cfg.resume is not None:
        raise UserError("--resume continues one training run; a --compare run cannot be resumed, start it again with --overwrite")
    with run_folder_for(cfg, command) as folder:
        if folder is not None:
            folder.begin()
        inner = (lambda name: str(folder.file(name))) if folder is not None else (lambda name: str(Path(cfg.output_dir) / name))
        plain = replace(cfg, compare=None, overwrite=False, resample="none", generator="none", generated_csv=None)
        runs = {"baseline": replace(plain, output_dir=inner("baseline"))}
        for method in compare_methods(cfg):
            if method == "augmented":
                runs[method] = replace(cfg, compare=None, overwrite=False, output_dir=inner(method))
            elif method in RESAMPLERS.names():
                runs[method] = replace(plain, resample=method, output_dir=inner(method))
            else:
                runs[method] = replace(plain, generator=method, output_dir=inner(method))
        reports = {}
        for name, run_cfg in runs.items():
            print(f"\n=== {name}: {run_cfg.output_dir}")
            reports[name] = train(run_cfg, command)
        if folder is None:  # another torchrun rank: rank 0 compares
            return {}
        comparison = compare_reports(reports)
        write_json(folder.file("comparison.json"), comparison)
        write_text(folder.file("comparison.md"), format_comparison_markdown(comparison))
    print("\n" + format_comparison_markdown(comparison))
    return comparison


def train(cfg: TrainConfig, command: Optional[Sequence[str]] = None) -> dict:
    """One training run as configured; returns the report also written to metrics.json."""
    with run_folder_for(cfg, command) as folder:
        return _train(cfg, folder)


def _train(cfg: TrainConfig, folder: Optional[RunFolder]) -> dict:
    # Small models' steps are too short to split across threads (benchmarks/throughput.py);
    # --num_threads N overrides.
    torch.set_num_threads(cfg.num_threads or 1)
    device = resolve_device(cfg.device)
    dist = init_distributed(device)  # a no-op unless started by torchrun
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if not dist.is_main:
        logging.getLogger().setLevel(logging.ERROR)  # rank 0 speaks for the run
    started = time.perf_counter()
    show_progress = not cfg.quiet and dist.is_main and sys.stderr.isatty()

    data = prepare_data(cfg, dist=dist, progress=show_progress)
    log.info("%s", format_analysis(data.analysis))
    inputs = input_spec(cfg, data)
    log.info("model %s %s, numeric embeddings %s%s", cfg.model, cfg.model_settings, inputs.num_embeddings,
             f", ensemble of {cfg.ensemble}" if cfg.ensemble > 1 else "")

    # The input is good: the run folder becomes this run's (an --overwrite'n run's files go now),
    # the resolved config first, then checkpoints as training goes.
    if folder is not None:
        folder.begin(resume=cfg.resume is not None)
        if cfg.resume is None:
            write_json(folder.file("config.json"), cfg.to_dict())
            write_json(folder.file("analysis.json"), data.analysis.to_dict())
    epoch_log = EpochLogger(folder.file("tensorboard") if cfg.tensorboard and folder is not None else None, data.label_names,
                            quiet=cfg.quiet)
    check_synthetic_rows(cfg, data, folder, epoch_log)
    guard = CollapseGuard(data.label_names, patience=cfg.collapse_patience, levers=Levers.of(cfg))
    checkpoints = RunCheckpoints(cfg=cfg, data=data, inputs=inputs)
    trained = fit_members(cfg, data, inputs, device=device, dist=dist, folder=folder, epoch_log=epoch_log, guard=guard,
                          checkpoints=checkpoints, progress=show_progress)
    if folder is None:  # rank 0 scores, reports and saves; the others wait for it
        dist.barrier()
        dist.close()
        return {}

    report, source = score_and_save(cfg, data, trained, checkpoints, device=device, guard=guard, epoch_log=epoch_log,
                                    started=started, folder=folder)
    epoch_log.close()

    run_info = report["run"]
    print(f"\nbest epoch {run_info['best_epoch']} of {run_info['epochs_run']}"
          + (f" (members: {[m['best_epoch'] for m in run_info['members']]})" if cfg.ensemble > 1 else "")
          + f"; thresholds {source}; scored on the {report['split']} split")
    print_tables(report)
    collapsed = report["collapsed"]
    if collapsed["final"] or collapsed["during_training"]:
        print(f"\ncollapsed labels: final {collapsed['final'] or 'none'}; during training {collapsed['during_training'] or 'none'}")
    print(f"\nrun folder: {folder.path}  (best.pt, last.pt, metrics.json, report.md, model_card.md, "
          f"{'plots/, ' if cfg.plots else ''}config.json)")
    dist.barrier()
    dist.close()
    return report


def print_tables(report: dict) -> None:
    for model_name, metrics in report["models"].items():
        print("\n" + format_label_table(metrics, title=f"[{model_name}]"))
    if report.get("intervals"):
        print("\n" + format_intervals(report).replace("## ", "", 1))
    print("\n" + format_calibration(report["calibration"]).replace("## ", "", 1))
    for column, labels in (report.get("slices") or {}).get("columns", {}).items():
        for label, result in labels.items():
            flagged = [g for g, m in result["groups"].items() if "flagged" in m]
            eo, dp = (result[k] for k in ("equalized_odds_difference", "demographic_parity_difference"))
            print(f"subgroups of {label} by {column}: equalized-odds difference {'n/a' if eo is None else f'{eo:.3f}'}, "
                  f"demographic-parity difference {'n/a' if dp is None else f'{dp:.3f}'}"
                  + (f"; flagged (too few positives to score): {', '.join(flagged)}" if flagged else "") + " (report.md)")


def check_synthetic_rows(cfg: TrainConfig, data, folder: Optional[RunFolder], epoch_log: EpochLogger) -> None:
    """Write the augmentation's provenance and quality report; with --quality_gate, refuse to
    train on synthetic rows that fail its limits (every rank stops: they measured the same rows)."""
    augmented = data.augmented
    if augmented is None:
        return
    failures = [] if augmented.quality is None else gate_failures(
        augmented.quality, max_discriminative_auroc=cfg.gate_max_auroc, max_near_copy_share=cfg.gate_max_near_copies)
    made = synthetic_rows(data)
    if len(made):
        log.info("%d synthetic rows mixed in; the first %d:\n%s", len(made), min(PREVIEW_ROWS, len(made)),
                 made.head(PREVIEW_ROWS).to_string(index=False, max_colwidth=16))
    for label, quality in _label_reports(augmented.quality):
        score = quality["score"]
        log.info("synthetic rows%s: quality %s; %s", f" of {label}" if label else "", score_text(quality),
                 "; ".join(score["recommendations"]))
    if folder is not None:
        write_json(folder.file("augmentation.json"), augmented.provenance)
        if len(made):
            write_csv(folder.file("generated_rows.csv"), made, index=False)
        if augmented.quality is not None:
            write_json(folder.file("synthetic_quality.json"), augmented.quality)
            write_text(folder.file("synthetic_quality.md"), report_markdown(augmented.quality))
            epoch_log.log_synthetic_quality(augmented.quality, report_markdown(augmented.quality))
            if cfg.plots:
                write_synthetic_plots(data, made, folder.file("plots"))
        for reason in failures:
            log.warning("synthetic data quality: %s", reason)
    if failures and cfg.quality_gate:
        epoch_log.close()
        report = Path(cfg.output_dir) / "synthetic_quality.md"
        raise UserError(f"--quality_gate refused to train: {failures[0]} (report: {report})")


PREVIEW_ROWS = 10


def synthetic_rows(data) -> pd.DataFrame:
    """The synthetic rows as mixed into training, in the original columns, with their labels and
    the method that made each (empty when none were mixed in)."""
    augmented = data.augmented
    made = augmented.synthetic
    if not made.any():
        return pd.DataFrame()
    frame = data.preprocessor.decode(augmented.rows.compact()[made]).reset_index(drop=True)
    for j, name in enumerate(data.label_names):
        frame[name] = augmented.y[made, j].astype(int)
    frame["method"] = augmented.methods[made] if augmented.methods is not None else ""
    return frame


def _label_reports(quality: Optional[dict]) -> list[tuple[str, dict]]:
    if quality is None:
        return []
    if "per_label" in quality:
        return list(quality["per_label"].items())
    return [(quality.get("label", ""), quality)]


def write_synthetic_plots(data, made: pd.DataFrame, folder: Path) -> list[Path]:
    """Per label with a quality report: its real training positives against its synthetic rows,
    feature by feature, the least faithful (SDMetrics column shapes) first."""
    augmented, pre = data.augmented, data.preprocessor
    real = pre.decode(augmented.rows.compact()[~augmented.synthetic])
    real_y = augmented.y[~augmented.synthetic]
    written = []
    for label, quality in _label_reports(augmented.quality):
        j = data.label_names.index(label) if label in data.label_names else None
        shapes = quality.get("sdmetrics", {}).get("per_column", {})
        order = sorted(pre.input_columns, key=lambda c: shapes.get(c, 1.0))
        rows = real if j is None else real[real_y[:, j] == 1]
        synthetic = made if j is None else made[made[label] == 1]
        written.append(write_synthetic_plot(rows, synthetic, dict(pre.kinds), label or "all labels", folder, order=order))
    return written


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        run(argv)
    except UserError as exc:
        print(f"train_classifier.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"train_classifier.py: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}; "
              "last.pt holds the last completed epoch: continue with --resume RUN_DIR", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
