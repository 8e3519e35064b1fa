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
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from imbalance.augmentation import augment_training_split
from imbalance.baselines import baseline_scores
from imbalance.checkpoint import build_checkpoint, save_checkpoint
from imbalance.class_weights import compute_class_weights
from imbalance.config import TrainConfig, parse_config, split_list
from imbalance.data import load_table
from imbalance.distributed import init_distributed
from imbalance.errors import UserError
from imbalance.inference import prediction_frame
from imbalance.losses import build_loss
from imbalance.metrics import label_metrics
from imbalance.preprocessing import TabularPreprocessor
from imbalance.reporting import (
    CollapseGuard, EpochLogger, compare_reports, format_comparison_markdown, format_label_table, format_report_markdown,
    write_json_atomic,
)
from imbalance.sampling import build_sampler, expected_positive_share, row_weights
from imbalance.splitting import split_indices
from imbalance.synthetic_quality import gate_failures, quality_summary, report_markdown
from imbalance.thresholds import optimize_thresholds
from imbalance.training import DEFAULT_THRESHOLD, build_optimizer, fit, predict_proba
from models import create_model, model_config_for

log = logging.getLogger("train_classifier")

PARTS = ("train", "val", "test")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def log_label_summary(cfg: TrainConfig, names: Sequence[str], y_train: np.ndarray, class_weights: np.ndarray) -> None:
    """Prevalence, expected positive share per batch and class weight, per label."""
    weights = row_weights(y_train, cfg.weight_method) if cfg.use_weighted_sampling else None
    share = expected_positive_share(y_train, weights)
    sampling = f"weighted sampling '{cfg.weight_method}'" if cfg.use_weighted_sampling else "uniform shuffling"
    log.info("label summary (training split, %s, class weights '%s' x %g, loss %s):",
             sampling, cfg.class_weight_method, cfg.class_weight_multiplier, cfg.loss_type)
    width = max(len(n) for n in names)
    for j, name in enumerate(names):
        log.info("  %-*s  prevalence %6.2f%%  (%d positives)  expected positive share per batch %6.2f%%  class weight %.3g",
                 width, name, 100 * y_train[:, j].mean(), int(y_train[:, j].sum()), 100 * share[j], class_weights[j])


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
    # A small MLP step is too short to split across threads: on 2 busy cores one thread ran the
    # stroke preset 4x faster than two, and benchmarks/throughput.py measured one thread faster at
    # batch 32 and at batch 4096. --num_threads N overrides.
    torch.set_num_threads(cfg.num_threads or 1)
    device = resolve_device(cfg.device)
    dist = init_distributed(device)  # a no-op unless started by torchrun
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if not dist.is_main:
        logging.getLogger().setLevel(logging.ERROR)  # rank 0 speaks for the run
    started = time.perf_counter()

    # -- data: load, split, fit preprocessing on the training rows only ---------------------------
    show_progress = not cfg.quiet and dist.is_main and sys.stderr.isatty()
    table = load_table(
        cfg.csv_path, target_cols=split_list(cfg.target_cols), id_col=cfg.id_col, drop_cols=split_list(cfg.drop_cols),
        exact_cols=split_list(cfg.categorical_cols), demo_rows=cfg.demo_rows, progress=show_progress,
    )
    names = table.label_names
    splits = split_indices(table.labels, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                           stratify=cfg.use_stratified_split, seed=cfg.seed, label_names=names)
    pre = TabularPreprocessor(categorical_cols=split_list(cfg.categorical_cols), min_category_count=cfg.min_category_count)
    # Column statistics in threads (numpy releases the GIL): one per process under torchrun.
    pre.fit(table.features, rows=splits["train"], workers=1 if dist.enabled else min(4, available_cores()))
    # One float32 matrix with the train, validation and test rows back to back; each split is a view.
    x_all = pre.transform(table.features, source=table.source, order=np.concatenate([splits[p] for p in PARTS]))
    bounds = np.cumsum([0] + [len(splits[p]) for p in PARTS])
    x = {part: x_all[bounds[i] : bounds[i + 1]] for i, part in enumerate(PARTS)}
    y = {part: table.labels[splits[part]] for part in PARTS}
    log.info("%s: %d rows -> %d train / %d validation / %d test; %d input columns -> %d features; %s task with %d label(s)",
             table.source, len(table.labels), *(len(splits[p]) for p in ("train", "val", "test")),
             len(pre.input_columns), len(pre.feature_names), "multi-label" if table.is_multilabel else "binary", len(names))

    # -- more minority rows, for the training split only ------------------------------------------
    x_real_train, y_real_train, augmented = x["train"], y["train"], None
    if cfg.augments:
        augmented = augment_training_split(
            pre, table.features.iloc[splits["train"]], y["train"], label_names=names,
            resample_method=cfg.resample, resample_ratio=cfg.resample_ratio, k_neighbors=cfg.resample_k_neighbors,
            generated_csv=cfg.generated_csv, generator=cfg.generator, augment_strategy=cfg.augment_strategy,
            generated_ratio=cfg.generated_ratio, seed=cfg.seed,
        )
        x["train"], y["train"] = pre.expand(augmented.x), augmented.y
    table.release_features()  # from here on the float32 matrix holds the features

    # -- the imbalance levers, the model, the optimiser, all from registries ----------------------
    class_weights = compute_class_weights(y["train"], cfg.class_weight_method, cfg.class_weight_multiplier, names)
    log_label_summary(cfg, names, y["train"], class_weights)
    torch.manual_seed(cfg.seed)
    model_config = model_config_for(cfg.model, in_features=x["train"].shape[1], out_features=len(names), source=cfg)
    model = create_model(cfg.model, **model_config).to(device)
    loss_fn = build_loss(cfg.loss_type, class_weights=torch.tensor(class_weights, dtype=torch.float32),
                         focal_gamma=cfg.focal_gamma, focal_alpha=cfg.focal_alpha).to(device)
    optimizer = build_optimizer(cfg.optimizer, model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = build_sampler(y["train"], weighted=cfg.use_weighted_sampling, method=cfg.weight_method, seed=cfg.seed,
                            world_size=dist.world_size)
    train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.enabled else model
    tensors = {part: (torch.from_numpy(x[part]).to(device), torch.from_numpy(y[part]).float().to(device)) for part in x}

    # -- the run folder: resolved config first, then checkpoints as training goes -----------------
    out = Path(cfg.output_dir)
    if dist.is_main:
        prepare_run_dir(cfg.output_dir)
        write_json_atomic(out / "config.json", cfg.to_dict())
    epoch_log = EpochLogger(out / "tensorboard" if cfg.tensorboard and dist.is_main else None, names, quiet=cfg.quiet)
    failures = [] if augmented is None or augmented.quality is None else gate_failures(
        augmented.quality, max_discriminative_auroc=cfg.gate_max_auroc, max_near_copy_share=cfg.gate_max_near_copies)
    if augmented is not None and dist.is_main:
        write_json_atomic(out / "augmentation.json", augmented.provenance)
        if augmented.quality is not None:
            write_json_atomic(out / "synthetic_quality.json", augmented.quality)
            (out / "synthetic_quality.md").write_text(report_markdown(augmented.quality))
            epoch_log.log_synthetic_quality(augmented.quality, report_markdown(augmented.quality))
        for reason in failures:
            log.warning("synthetic data quality: %s", reason)
    if failures and cfg.quality_gate:  # every rank stops: they all measured the same rows
        epoch_log.close()
        raise UserError(f"--quality_gate refused to train: {failures[0]} (report: {out / 'synthetic_quality.md'})")
    guard = CollapseGuard(names, patience=cfg.collapse_patience, optimize_thresholds=cfg.optimize_thresholds)

    def checkpoint(state, *, epoch, thresholds, source, metrics, **resume_state):
        return build_checkpoint(
            model_name=cfg.model, model_config=model_config, state_dict=state, train_config=cfg.to_dict(),
            preprocessing=pre.state_dict(), label_names=names, id_col=table.id_col,
            thresholds=thresholds, threshold_source=source, epoch=epoch, metrics=metrics, **resume_state,
        )

    def on_epoch_end(record: dict, val_prob: np.ndarray) -> None:
        epoch_log.log_epoch(record)
        guard.update(record["val"])
        at_default = dict(thresholds=[DEFAULT_THRESHOLD] * len(names), source="default", metrics={"val": record["val"]})
        if record["improved"]:
            save_checkpoint(checkpoint(model.state_dict(), epoch=record["epoch"], **at_default), out / "best.pt")
        save_checkpoint(checkpoint(
            model.state_dict(), epoch=record["epoch"], **at_default, optimizer_state=optimizer.state_dict(),
            early_stopping_state={"best_epoch": record["best_epoch"], "best_score": record["best_score"]},
        ), out / "last.pt")

    result = fit(
        train_model, train=tensors["train"], val=tensors["val"], sampler=sampler, loss_fn=loss_fn, optimizer=optimizer,
        label_names=names, epochs=cfg.epochs, batch_size=cfg.batch_size, early_stop_metric=cfg.early_stop_metric,
        early_stop_patience=cfg.early_stop_patience, min_delta=cfg.min_delta, threshold_metric=cfg.threshold_metric,
        lr_scheduler=cfg.lr_scheduler, grad_clip=cfg.grad_clip, seed=cfg.seed,
        progress=not cfg.quiet and sys.stderr.isatty(), on_epoch_end=on_epoch_end, dist=dist, amp=cfg.amp,
    )
    if not dist.is_main:  # rank 0 scores, reports and saves; the others wait for it
        dist.barrier()
        dist.close()
        return {}
    model.load_state_dict(result.best_state)

    # -- thresholds on validation, then one honest score on the held-out split --------------------
    prob = {part: predict_proba(model, tensors[part][0]).cpu().numpy() for part in ("val", "test")}
    if cfg.optimize_thresholds:
        thresholds, _ = optimize_thresholds(y["val"], prob["val"], cfg.threshold_metric, fallback=DEFAULT_THRESHOLD)
        source = f"tuned on validation for {cfg.threshold_metric}"
    else:
        thresholds, source = np.full(len(names), DEFAULT_THRESHOLD), "default"
    split = "test" if len(splits["test"]) else "val"
    report_models = {"network": label_metrics(y[split], prob[split], thresholds, names)}
    for baseline in cfg.baseline_names:
        # Baselines see the real training rows: the simple model users would otherwise fit.
        scores = baseline_scores(baseline, x_real_train, y_real_train, {"val": x["val"], split: x[split]}, seed=cfg.seed)
        base_thr = (optimize_thresholds(y["val"], scores["val"], cfg.threshold_metric, fallback=DEFAULT_THRESHOLD)[0]
                    if cfg.optimize_thresholds else np.full(len(names), DEFAULT_THRESHOLD))
        report_models[baseline] = label_metrics(y[split], scores[split], base_thr, names)

    final = report_models["network"]
    collapsed_final = {n: ("all-negative" if m["n_pos_pred"] == 0 else "all-positive")
                       for n, m in final["labels"].items() if m["n_pos_pred"] in (0, m["n"])}
    report = {
        "split": split,
        "run": {
            "output_dir": str(out), "source": table.source, "labels": names,
            "rows": {p: int(len(r)) for p, r in splits.items()}, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "stopped_early": result.stopped_early,
            "early_stop_metric": cfg.early_stop_metric, "best_score": result.best_score,
            "optimize_thresholds": cfg.optimize_thresholds, "threshold_metric": cfg.threshold_metric,
            "seconds": round(time.perf_counter() - started, 2),
        },
        "models": report_models,
        "augmentation": None if augmented is None else {
            "provenance": augmented.provenance,
            "quality": None if augmented.quality is None else quality_summary(augmented.quality),
        },
        "collapsed": {"final": collapsed_final, "during_training": dict(guard.collapsed)},
        "history": [{**{k: r[k] for k in ("epoch", "train_loss", "val_loss", "score", "lr")},
                     "val_pos_pred": {n: r["val"]["labels"][n]["n_pos_pred"] for n in names}} for r in result.history],
    }
    best = checkpoint(result.best_state, epoch=result.best_epoch, thresholds=thresholds, source=source,
                      metrics={"split": split, **final})
    save_checkpoint(best, out / "best.pt")
    write_json_atomic(out / "metrics.json", report)
    (out / "report.md").write_text(format_report_markdown(report))
    if len(splits["test"]):
        preds = prediction_frame(prob["test"], thresholds, names, index=table.row_index[splits["test"]],
                                 ids=None if table.ids is None else table.ids.iloc[splits["test"]], id_col=table.id_col)
        for j, name in enumerate(names):
            preds.insert(preds.columns.get_loc(f"{name}_prob"), f"{name}_true", y["test"][:, j])
        preds.rename_axis("row").to_csv(out / "test_predictions.csv")

    epoch_log.log_pr_curves(y["val"], prob["val"], step=result.best_epoch)
    epoch_log.log_hparams({k: v for k, v in cfg.to_dict().items() if k not in ("quiet", "tensorboard")},
                          {f"{split}/{k}": float(final["macro"][k]) for k in ("f1", "recall", "precision", "auroc", "auprc")})
    epoch_log.close()

    print(f"\nbest epoch {result.best_epoch} of {len(result.history)}; thresholds {source}; scored on the {split} split")
    for model_name, metrics in report_models.items():
        print("\n" + format_label_table(metrics, title=f"[{model_name}]"))
    if collapsed_final or guard.collapsed:
        print(f"\ncollapsed labels: final {collapsed_final or 'none'}; during training {dict(guard.collapsed) or 'none'}")
    print(f"\nrun folder: {out}  (best.pt, last.pt, metrics.json, report.md, config.json)")
    dist.barrier()
    dist.close()
    return report


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
