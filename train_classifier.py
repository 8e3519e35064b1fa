#!/usr/bin/env python
"""Train a neural classifier on a rare binary outcome or several rare labels at once.

Usage:
    python train_classifier.py --preset aggressive                      # built-in demo cohort
    python train_classifier.py --preset aggressive --csv_path cohort.csv --target_cols stroke \\
        --id_col id --output_dir checkpoints/stroke
    python train_classifier.py --help                                   # every flag, by lever

The run folder (--output_dir) receives config.json (before training), best.pt, last.pt,
metrics.json and report.md (final per-label report with baselines), test_predictions.csv and
TensorBoard logs. Score new rows with predict.py.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from imbalance.config import TrainConfig, parse_config
from imbalance.distributed import init_distributed
from imbalance.errors import UserError
from imbalance.pipeline import (
    RunCheckpoints, fit_members, input_spec, predict_parts, prepare_data, resolve_device, score_models, tune_thresholds,
    write_outputs,
)
from imbalance.reporting import (
    CollapseGuard, EpochLogger, compare_reports, format_comparison_markdown, format_label_table, write_json_atomic,
)
from imbalance.synthetic_quality import gate_failures, report_markdown

log = logging.getLogger("train_classifier")


def prepare_run_dir(path: str) -> Path:
    out = Path(path)
    if (out / "config.json").exists():
        log.info("output folder %s holds an earlier run; its files will be replaced", out)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the command line and train (twice, with --compare). Returns the final report."""
    cfg, _ = parse_config(argv, prog="train_classifier.py")
    logging.basicConfig(level=logging.WARNING if cfg.quiet else logging.INFO, format="%(message)s", force=True)
    for note in cfg.advisories():
        log.warning(note)
    return compare_augmentation(cfg) if cfg.compare else train(cfg)


def compare_augmentation(cfg: TrainConfig) -> dict:
    """The same configuration without and with augmentation, on the same split and seed."""
    out = Path(cfg.output_dir)
    runs = {
        "baseline": replace(cfg, compare=False, resample="none", generator="none", generated_csv=None, output_dir=str(out / "baseline")),
        "augmented": replace(cfg, compare=False, output_dir=str(out / "augmented")),
    }
    reports = {}
    for name, run_cfg in runs.items():
        print(f"\n=== {name}: {run_cfg.output_dir}")
        reports[name] = train(run_cfg)
    comparison = compare_reports(reports["baseline"], reports["augmented"])
    write_json_atomic(out / "comparison.json", comparison)
    (out / "comparison.md").write_text(format_comparison_markdown(comparison))
    print("\n" + format_comparison_markdown(comparison))
    return comparison


def train(cfg: TrainConfig) -> dict:
    """One training run as configured; returns the report also written to metrics.json."""
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
    inputs = input_spec(cfg, data)
    log.info("model %s %s, numeric embeddings %s%s", cfg.model, cfg.model_settings, inputs.num_embeddings,
             f", ensemble of {cfg.ensemble}" if cfg.ensemble > 1 else "")

    # The run folder: the resolved config first, then checkpoints as training goes.
    out = Path(cfg.output_dir)
    if dist.is_main:
        prepare_run_dir(cfg.output_dir)
        write_json_atomic(out / "config.json", cfg.to_dict())
    epoch_log = EpochLogger(out / "tensorboard" if cfg.tensorboard and dist.is_main else None, data.label_names, quiet=cfg.quiet)
    check_synthetic_rows(cfg, data, out, epoch_log, is_main=dist.is_main)
    guard = CollapseGuard(data.label_names, patience=cfg.collapse_patience, optimize_thresholds=cfg.optimize_thresholds)
    checkpoints = RunCheckpoints(cfg=cfg, data=data, inputs=inputs)
    trained = fit_members(cfg, data, inputs, device=device, dist=dist, out=out, epoch_log=epoch_log, guard=guard,
                          checkpoints=checkpoints, progress=show_progress)
    if not dist.is_main:  # rank 0 scores, reports and saves; the others wait for it
        dist.barrier()
        dist.close()
        return {}

    prob = predict_parts(trained, data, device=device, amp=cfg.amp)
    thresholds, source = tune_thresholds(cfg, data.labels["val"], prob["val"])
    scored = score_models(cfg, data, prob, thresholds)
    report = write_outputs(cfg, data, trained, checkpoints, prob=prob, thresholds=thresholds, source=source, scored=scored,
                           guard=guard, epoch_log=epoch_log, started=started, out=out)
    epoch_log.close()

    run_info = report["run"]
    print(f"\nbest epoch {run_info['best_epoch']} of {run_info['epochs_run']}"
          + (f" (members: {[m['best_epoch'] for m in run_info['members']]})" if cfg.ensemble > 1 else "")
          + f"; thresholds {source}; scored on the {report['split']} split")
    for model_name, metrics in scored.items():
        print("\n" + format_label_table(metrics, title=f"[{model_name}]"))
    collapsed = report["collapsed"]
    if collapsed["final"] or collapsed["during_training"]:
        print(f"\ncollapsed labels: final {collapsed['final'] or 'none'}; during training {collapsed['during_training'] or 'none'}")
    print(f"\nrun folder: {out}  (best.pt, last.pt, metrics.json, report.md, config.json)")
    dist.barrier()
    dist.close()
    return report


def check_synthetic_rows(cfg: TrainConfig, data, out: Path, epoch_log: EpochLogger, *, is_main: bool) -> None:
    """Write the augmentation's provenance and quality report; with --quality_gate, refuse to
    train on synthetic rows that fail its limits (every rank stops: they measured the same rows)."""
    augmented = data.augmented
    if augmented is None:
        return
    failures = [] if augmented.quality is None else gate_failures(
        augmented.quality, max_discriminative_auroc=cfg.gate_max_auroc, max_near_copy_share=cfg.gate_max_near_copies)
    if is_main:
        write_json_atomic(out / "augmentation.json", augmented.provenance)
        if augmented.quality is not None:
            write_json_atomic(out / "synthetic_quality.json", augmented.quality)
            (out / "synthetic_quality.md").write_text(report_markdown(augmented.quality))
            epoch_log.log_synthetic_quality(augmented.quality, report_markdown(augmented.quality))
        for reason in failures:
            log.warning("synthetic data quality: %s", reason)
    if failures and cfg.quality_gate:
        epoch_log.close()
        raise UserError(f"--quality_gate refused to train: {failures[0]} (report: {out / 'synthetic_quality.md'})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        run(argv)
    except UserError as exc:
        print(f"train_classifier.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train_classifier.py: interrupted; best.pt and last.pt hold the last completed epochs", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
