"""The stages of a training run, each a function with a typed result.

``train_classifier.py`` calls them in order:

    prepare_data      load, split, fit preprocessing, analyse the imbalance, encode every row once, augment
    input_spec        what the model is given: feature counts, cardinalities, numeric-embedding bins
    fit_members       build the model, loss, optimiser and sampler per member and train with early stopping
    tune_thresholds   per-label decision thresholds on the validation split
    score_models      the network and the baselines on the held-out split (and bootstrap intervals)
    write_outputs     best.pt, metrics.json, report.md, model_card.md, plots/, test_predictions.csv, TensorBoard's last entries

``score_and_save`` runs the last three in order (every run ends with it, a search's too).

Every consumer (resamplers, generators' quality report, baselines, the model, the checkpoint)
reads the same :class:`~imbalance.preprocessing.EncodedRows`, made once in ``prepare_data``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models import InputSpec, create_model

from .analyze import Analysis, analyze
from .augmentation import AugmentedTrain, augment_training_split
from .baselines import baseline_scores
from .bootstrap import bootstrap_report
from .calibration import ECE_BINS, SHIFTED, Calibration, calibration_metrics, fit_calibration, prior_shift
from .bins import fit_bins
from .checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from .files import write_csv, write_json, write_text
from .class_weights import check_both_classes, compute_class_weights
from .config import TrainConfig, split_list
from .data import Table, load_table
from .distributed import DistContext
from .drift import feature_profile
from .errors import UserError
from .inference import prediction_frame
from .losses import ElementwiseLoss, build_loss
from .metrics import label_metrics
from .model_card import format_model_card
from .plots import PlotData, write_plots
from .preprocessing import EncodedRows, TabularPreprocessor
from .reporting import CollapseGuard, EpochLogger, format_report_markdown
from .run_folder import RunFolder
from .sampling import LabelBalance, build_sampler, effective_positive_share
from .slices import slice_report
from .splitting import split_indices
from .synthetic_quality import quality_summary
from .thresholds import optimize_thresholds
from .training import DEFAULT_THRESHOLD, EpochRecord, FitResult, FitState, TensorRows, build_optimizer, fit, predict_proba

__all__ = [
    "PARTS",
    "PreparedData",
    "Components",
    "TrainedModels",
    "RunCheckpoints",
    "resolve_device",
    "prepare_data",
    "input_spec",
    "build_components",
    "fit_members",
    "tune_thresholds",
    "score_models",
    "write_outputs",
    "score_and_save",
]

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- data -------------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """The run's data, encoded once. ``rows["train"]`` may hold added rows (``augmented``);
    ``real_train`` are the real training rows (baselines and embedding bins are fitted on them)."""

    table: Table
    splits: dict[str, np.ndarray]  # row positions in the table per part
    preprocessor: TabularPreprocessor
    rows: dict[str, EncodedRows]
    labels: dict[str, np.ndarray]  # (n, L) uint8 per part
    real_train: EncodedRows
    real_train_labels: np.ndarray
    analysis: Optional[Analysis] = None  # the imbalance analysis (analysis.json)
    train_features: Optional[Any] = None  # the raw training rows, kept for a search's per-trial augmentation
    val_features: Optional[Any] = None  # the raw validation rows, kept for a search's re-splits of training + validation
    augmented: Optional[AugmentedTrain] = None
    slice_values: Optional[pd.DataFrame] = None  # --slice_cols: those raw columns for every row of the table
    reference: Optional[dict[str, Any]] = None  # the training rows' profile, for drift checks on new rows (imbalance.drift)

    @property
    def label_names(self) -> list[str]:
        return self.table.label_names

    @property
    def report_split(self) -> str:
        """The split of the final report: test, or validation when there is no test split."""
        return "test" if len(self.splits["test"]) else "val"


def load_and_fit(cfg: TrainConfig, *, workers: int, progress: bool = False) -> tuple[Table, dict[str, np.ndarray], TabularPreprocessor]:
    """Load the table, split it, and fit the preprocessing on the training rows only."""
    table = load_table(
        cfg.csv_path, target_cols=split_list(cfg.target_cols), id_col=cfg.id_col, drop_cols=split_list(cfg.drop_cols),
        exact_cols=split_list(cfg.categorical_cols), demo_rows=cfg.demo_rows, progress=progress,
        slice_cols=split_list(cfg.slice_cols),
    )
    names = table.label_names
    splits = split_indices(table.labels, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                           stratify=cfg.use_stratified_split, seed=cfg.seed, label_names=names)
    check_both_classes(table.labels[splits["train"]], names)
    pre = TabularPreprocessor(categorical_cols=split_list(cfg.categorical_cols), min_category_count=cfg.min_category_count)
    # Column statistics in threads (numpy releases the GIL).
    pre.fit(table.features, rows=splits["train"], workers=workers)
    check_input_width(pre, n_train=len(splits["train"]))
    return table, splits, pre


def _analysis(cfg: TrainConfig, table: Table, splits: dict[str, np.ndarray], pre: TabularPreprocessor) -> Analysis:
    return analyze(source=table.source, labels=table.labels, label_names=table.label_names, splits=splits,
                   preprocessor=pre, features=table.features, batch_size=cfg.batch_size)


def analyze_data(cfg: TrainConfig) -> Analysis:
    """``python -m imbalance.analyze``: the analysis alone, without encoding or training."""
    table, splits, pre = load_and_fit(cfg, workers=min(4, _available_cores()))
    return _analysis(cfg, table, splits, pre)


def prepare_data(cfg: TrainConfig, *, dist: DistContext, progress: bool = False, keep_search_rows: bool = False) -> PreparedData:
    """Load, split, fit preprocessing on the training rows only, analyse the imbalance, encode
    every row once, then add the asked-for rows to the training split."""
    # One worker per process under torchrun.
    table, splits, pre = load_and_fit(cfg, workers=1 if dist.enabled else min(4, _available_cores()), progress=progress)
    names = table.label_names
    analysis = _analysis(cfg, table, splits, pre)
    # Train, validation and test rows back to back in one set of blocks; each split is a view.
    encoded = pre.transform(table.features, source=table.source, order=np.concatenate([splits[p] for p in PARTS]))
    bounds = np.cumsum([0] + [len(splits[p]) for p in PARTS])
    rows = {part: encoded.slice(int(bounds[i]), int(bounds[i + 1])) for i, part in enumerate(PARTS)}
    labels = {part: table.labels[splits[part]] for part in PARTS}
    log.info("%s: %d rows -> %d train / %d validation / %d test; %d input columns -> %d numeric, %d yes/no and "
             "missing flags, %d categorical; %s task with %d label(s)",
             table.source, len(table.labels), *(len(splits[p]) for p in PARTS), len(pre.input_columns),
             len(pre.numeric_names), len(pre.flag_names), len(pre.categorical_names),
             "multi-label" if table.is_multilabel else "binary", len(names))
    data = PreparedData(table=table, splits=splits, preprocessor=pre, rows=rows, labels=labels,
                        real_train=rows["train"], real_train_labels=labels["train"], analysis=analysis)
    if cfg.augments:
        data.augmented = augment_training_split(
            pre, rows["train"], table.features.iloc[splits["train"]], labels["train"], label_names=names,
            resample_method=cfg.resample, resample_ratio=cfg.resample_ratio, k_neighbors=cfg.resample_k_neighbors,
            generated_csv=cfg.generated_csv, generator=cfg.generator, augment_strategy=cfg.augment_strategy,
            generated_ratio=cfg.generated_ratio, seed=cfg.seed, onehot_groups=split_list(cfg.onehot_groups),
            generator_epochs=cfg.generator_epochs,
        )
        data.rows["train"], data.labels["train"] = data.augmented.rows, data.augmented.y
    if keep_search_rows:  # a search adds rows per trial and re-splits training + validation rows
        data.train_features = table.features.iloc[splits["train"]].copy()
        data.val_features = table.features.iloc[splits["val"]].copy()
    if cfg.slice_cols:
        data.slice_values = table.features[split_list(cfg.slice_cols)].copy()
    data.reference = {**feature_profile(table.features.iloc[splits["train"]], pre.kinds, seed=cfg.seed),
                      "prevalence": dict(zip(names, map(float, data.real_train_labels.mean(axis=0))))}
    table.release_features()  # from here on the encoded blocks hold the features
    return data


MAX_INPUT_COLUMNS = 10_000  # inputs after one-hot encoding: the first layer, and the one-hot baselines' matrix


def check_input_width(pre: TabularPreprocessor, *, n_train: int) -> None:
    """Refuse, before anything is allocated, an encoding whose one-hot width is unreasonable
    (a free-text or identifier column with tens of thousands of levels)."""
    widths = dict(zip(pre.categorical_names, pre.cardinalities))
    width = len(pre.numeric_names) + len(pre.flag_names) + sum(widths.values())
    if width <= MAX_INPUT_COLUMNS:
        return
    widest = sorted(widths, key=widths.get, reverse=True)[:3]
    gib = n_train * width * 4 / 2**30
    raise UserError(
        f"the inputs would be {width} columns wide once categories are one-hot encoded (a {n_train}-row training matrix "
        f"of {gib:.1f} GiB; limit {MAX_INPUT_COLUMNS}): widest {', '.join(f'{c} ({widths[c]} levels)' for c in widest)}; "
        "raise --min_category_count, leave such a column out with --drop_cols, or pass an identifier as --id_col")


def input_spec(cfg: TrainConfig, data: PreparedData) -> InputSpec:
    """What the model is built for; piecewise-linear bins are fitted on the real training rows."""
    pre = data.preprocessor
    kind = cfg.resolved_num_embeddings
    n_numeric = len(pre.numeric_names)
    bins = None
    if kind == "piecewise_linear" and n_numeric:
        bins = fit_bins(data.real_train.num[:, :n_numeric], data.real_train_labels, n_bins=cfg.n_bins,
                        method=cfg.embedding_bins, seed=cfg.seed)
    return InputSpec(n_numeric=n_numeric, n_flags=len(pre.flag_names), cardinalities=pre.cardinalities,
                     n_labels=len(data.label_names), num_embeddings=kind, d_embedding=cfg.d_embedding, bins=bins)


def log_label_summary(cfg: TrainConfig, names: list[str], y_train: np.ndarray, class_weights: np.ndarray,
                      share: np.ndarray) -> None:
    """Prevalence, positive share as the loss sees it (under weighted sampling, if any) and
    class weight, per label."""
    sampling = f"weighted sampling '{cfg.weight_method}'" if cfg.use_weighted_sampling else "uniform shuffling"
    log.info("label summary (training split, %s, class weights '%s' x %g, loss %s):",
             sampling, cfg.class_weight_method, cfg.class_weight_multiplier, cfg.loss_type)
    width = max(len(n) for n in names)
    for j, name in enumerate(names):
        log.info("  %-*s  prevalence %6.2f%%  (%d positives)  positive share in training %6.2f%%  class weight %.3g",
                 width, name, 100 * y_train[:, j].mean(), int(y_train[:, j].sum()), 100 * share[j], class_weights[j])


# -- model and training -----------------------------------------------------------------------


@dataclass
class Components:
    """One member's model, loss, optimiser and sampler, all from registries."""

    model: nn.Module
    train_model: nn.Module  # the DistributedDataParallel wrapper under torchrun, else the model
    loss_fn: ElementwiseLoss
    optimizer: torch.optim.Optimizer
    sampler: Any


def build_components(cfg: TrainConfig, data: PreparedData, inputs: InputSpec, class_weights: np.ndarray, *, seed: int,
                     device: torch.device, dist: DistContext) -> Components:
    torch.manual_seed(seed)
    model = create_model(cfg.model, inputs=inputs, settings=cfg.model_settings).to(device)
    loss_fn = build_loss(cfg.loss_type, class_weights=torch.tensor(class_weights, dtype=torch.float32),
                         focal_gamma=cfg.focal_gamma, focal_alpha=cfg.focal_alpha).to(device)
    optimizer = build_optimizer(cfg.optimizer, model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = build_sampler(data.labels["train"], weighted=cfg.use_weighted_sampling, method=cfg.weight_method, seed=seed,
                            world_size=dist.world_size)
    train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.enabled else model
    return Components(model=model, train_model=train_model, loss_fn=loss_fn, optimizer=optimizer, sampler=sampler)


@dataclass
class RunCheckpoints:
    """What every checkpoint of a run shares; :meth:`build` adds the weights and the moment."""

    cfg: TrainConfig
    data: PreparedData
    inputs: InputSpec
    # --ensemble_top: each member's {model_name, model_settings, inputs}; None: every member is cfg's model
    member_models: Optional[list[dict[str, Any]]] = None

    @classmethod
    def model_of(cls, cfg: TrainConfig, inputs: InputSpec) -> dict[str, Any]:
        """A member's model as a checkpoint describes it."""
        return {"model_name": cfg.model, "model_settings": dataclasses.asdict(cfg.model_settings), "inputs": inputs.to_dict()}

    def build(self, members: list[dict[str, torch.Tensor]], *, epoch: int, thresholds: Any, source: str,
              metrics: dict[str, Any], complete: bool = False, **extra: Any) -> dict[str, Any]:
        """``extra``: ``optimizer_state`` and ``resume`` (last.pt), ``calibration`` (the final best.pt)."""
        top = self.model_of(self.cfg, self.inputs)
        return build_checkpoint(
            **top, members=members, member_models=self.member_models, train_config=self.cfg.to_dict(),
            preprocessing=self.data.preprocessor.state_dict(), label_names=self.data.label_names,
            id_col=self.data.table.id_col, thresholds=thresholds, threshold_source=source, epoch=epoch, metrics=metrics,
            complete=complete, **extra,
        )


@dataclass
class TrainedModels:
    """The members of the run (one unless ``--ensemble`` or ``--ensemble_top``), each at its best
    epoch's weights. ``about``: what the report says of each member beyond its training (by
    default its seed; an ``--ensemble_top`` member's trial, model and recipe)."""

    members: list[nn.Module]
    results: list[FitResult]
    about: Optional[list[dict[str, Any]]] = None
    prior_shifts: Optional[list[list[float]]] = None  # per member and label: how far its recipe moved the log-odds

    @property
    def states(self) -> list[dict[str, torch.Tensor]]:
        return [r.best_state for r in self.results]

    @property
    def history(self) -> list[EpochRecord]:
        return [record for result in self.results for record in result.history]


@dataclass
class ResumePoint:
    """What ``last.pt`` holds for ``--resume``: the finished members, and the current member's
    model, optimiser and :class:`~imbalance.training.FitState` after its last completed epoch."""

    member: int
    finished: list[FitResult]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    fit_state: FitState
    guard: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path) -> Optional["ResumePoint"]:
        """None when the run stopped before its first epoch ended: it starts from the beginning."""
        path = run_dir / "last.pt"
        if not path.is_file():
            return None
        ckpt = load_checkpoint(path, allow_incomplete=True)
        state = ckpt.get("resume")
        if not isinstance(state, dict) or "optimizer" not in ckpt:
            raise UserError(f"--resume '{run_dir}': {path.name} holds no resume state; start the run again with --overwrite")
        try:
            member = int(state["member"])
            finished = [FitResult(best_epoch=r["best_epoch"], best_score=r["best_score"], best_state=ckpt["members"][i],
                                  history=[EpochRecord.from_json(t) for t in r["history"]], stopped_early=r["stopped_early"])
                        for i, r in enumerate(state["finished"])]
            fit_state = FitState(epoch=int(state["epoch"]), stopper=state["stopper"], scheduler=state["scheduler"],
                                 best_state=state["best_state"], history=[EpochRecord.from_json(t) for t in state["history"]])
            return cls(member=member, finished=finished, model_state=ckpt["members"][member], optimizer_state=ckpt["optimizer"],
                       fit_state=fit_state, guard=state["guard"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise UserError(f"--resume '{run_dir}': damaged resume state in {path.name} ({exc!r}); start the run again with --overwrite") from None


def _result_summary(result: FitResult) -> dict[str, Any]:
    return {"best_epoch": result.best_epoch, "best_score": result.best_score, "stopped_early": result.stopped_early,
            "history": [record.to_json() for record in result.history]}


def fit_members(cfg: TrainConfig, data: PreparedData, inputs: InputSpec, *, device: torch.device, dist: DistContext,
                folder: Optional[RunFolder], epoch_log: EpochLogger, guard: CollapseGuard, checkpoints: RunCheckpoints,
                progress: bool = False, stop_check: Optional[Callable[[EpochRecord], Optional[str]]] = None,
                on_epoch: Optional[Callable[[EpochRecord, np.ndarray], None]] = None) -> TrainedModels:
    """Train ``cfg.ensemble`` members (seeds ``cfg.seed``, ``cfg.seed + 1``, ...) on the same split.

    After every epoch ``last.pt`` holds the finished members and the current one's last epoch
    (with its optimiser and :class:`ResumePoint` state), and ``best.pt`` the finished members and
    the current one's best epoch, so a run stopped at any point leaves a usable checkpoint. Only
    the process that owns ``folder`` (rank 0) writes them. With ``--resume`` every process reads
    ``last.pt`` and training goes on from the epoch after it, as if never stopped. ``stop_check``
    (see :func:`imbalance.training.fit`) and ``on_epoch`` (given each epoch's record and validation
    probabilities) are a search's own hooks.
    """
    names = data.label_names
    # Class weights correct what the sampler leaves: computed on the mix each label's loss sees.
    y_train = data.labels["train"]
    share = effective_positive_share(y_train, cfg.weight_method) if cfg.use_weighted_sampling else y_train.mean(axis=0)
    class_weights = compute_class_weights(y_train, cfg.class_weight_method, cfg.class_weight_multiplier, names,
                                          positive_share=share if cfg.use_weighted_sampling else None)
    log_label_summary(cfg, names, y_train, class_weights, share)
    balance = LabelBalance.needed(y_train, weighted=cfg.use_weighted_sampling, method=cfg.weight_method, device=device)
    shift = None  # the same recipe for every member
    tensors = {part: (TensorRows.from_numpy(data.rows[part], device), torch.from_numpy(data.labels[part]).float().to(device))
               for part in ("train", "val")}
    resume = ResumePoint.load(Path(cfg.resume)) if cfg.resume is not None else None
    if resume is not None:
        guard.load_state_dict(resume.guard)
        log.info("resuming member %d of %d after epoch %d", resume.member + 1, cfg.ensemble, resume.fit_state.epoch)
    elif cfg.resume is not None:
        log.info("the run stopped before its first epoch ended: training starts from the beginning")
    members: list[nn.Module] = []
    results: list[FitResult] = []
    at_default = [DEFAULT_THRESHOLD] * len(names)
    for member in range(cfg.ensemble):
        seed = cfg.seed + member
        parts = build_components(cfg, data, inputs, class_weights, seed=seed, device=device, dist=dist)
        if shift is None:
            shift = prior_shift(prevalence=data.real_train_labels.mean(axis=0), trained_share=share,
                                positive_weight=parts.loss_fn.positive_weight(len(names)).numpy()).tolist()
        if resume is not None and member < resume.member:  # finished before the interruption
            parts.model.load_state_dict(resume.finished[member].best_state)
            members.append(parts.model)
            results.append(resume.finished[member])
            continue
        fit_resume = None
        if resume is not None and member == resume.member:
            parts.model.load_state_dict(resume.model_state)
            parts.optimizer.load_state_dict(resume.optimizer_state)
            fit_resume = resume.fit_state
        if cfg.ensemble > 1:
            log.info("ensemble member %d of %d (seed %d)", member + 1, cfg.ensemble, seed)

        def on_epoch_end(record: EpochRecord, val_prob: np.ndarray, state: FitState, parts: Components = parts) -> None:
            epoch_log.log_epoch(record)
            guard.update(record)
            if on_epoch is not None:
                on_epoch(record, val_prob)
            if folder is None:
                return
            finished = [r.best_state for r in results]
            common = dict(epoch=record.epoch, thresholds=at_default, source="default", metrics={"val": record.val})
            if record.improved:
                save_checkpoint(checkpoints.build(finished + [parts.model.state_dict()], **common), folder.file("best.pt"))
            save_checkpoint(checkpoints.build(
                finished + [parts.model.state_dict()], **common, optimizer_state=parts.optimizer.state_dict(),
                resume={"member": record.member, "epoch": state.epoch, "stopper": state.stopper, "scheduler": state.scheduler,
                        "best_state": state.best_state, "history": [r.to_json() for r in state.history],
                        "finished": [_result_summary(r) for r in results], "guard": guard.state_dict()},
            ), folder.file("last.pt"))

        result = fit(
            parts.train_model, train=tensors["train"], val=tensors["val"], sampler=parts.sampler, loss_fn=parts.loss_fn,
            optimizer=parts.optimizer, label_names=names, epochs=cfg.epochs, batch_size=cfg.batch_size,
            early_stop_metric=cfg.early_stop_metric, early_stop_patience=cfg.early_stop_patience, min_delta=cfg.min_delta,
            threshold_metric=cfg.threshold_metric, lr_scheduler=cfg.lr_scheduler, grad_clip=cfg.grad_clip, seed=seed,
            progress=progress, on_epoch_end=on_epoch_end, dist=dist, amp=cfg.amp, member=member, resume=fit_resume,
            tuned_thresholds=cfg.optimize_thresholds, stop_check=stop_check, label_balance=balance,
        )
        parts.model.load_state_dict(result.best_state)
        members.append(parts.model)
        results.append(result)
    return TrainedModels(members=members, results=results, prior_shifts=[shift] * len(members))


# -- thresholds, scores, outputs --------------------------------------------------------------


def tune_thresholds(cfg: TrainConfig, y_val: np.ndarray, prob_val: np.ndarray, *,
                    label_names: Optional[list[str]] = None) -> tuple[np.ndarray, str]:
    """Per-label thresholds tuned on validation for ``--threshold_metric``, or 0.5 everywhere.
    With ``label_names`` (the network's tuning), warnings such as an unmet constraint name them;
    without (the baselines'), the same conditions pass silently rather than repeat."""
    if not cfg.optimize_thresholds:
        return np.full(y_val.shape[1], DEFAULT_THRESHOLD), "default"
    thresholds, _ = optimize_thresholds(y_val, prob_val, cfg.threshold_metric, fallback=DEFAULT_THRESHOLD,
                                        warn=label_names is not None, label_names=label_names)
    return thresholds, f"tuned on validation for {cfg.threshold_metric}"


def predict_parts(trained: TrainedModels, data: PreparedData, *, device: torch.device, amp: bool = False,
                  calibration: Optional[Calibration] = None) -> dict[str, np.ndarray]:
    """The members' averaged probabilities on the validation and report splits (calibrated
    when a fitted ``calibration`` is given)."""
    calibration = calibration or Calibration()
    offsets = calibration.member_offsets()
    return {part: calibration.apply(predict_proba(trained.members, TensorRows.from_numpy(data.rows[part], device), amp=amp,
                                                  offsets=offsets).cpu().numpy())
            for part in ("val", data.report_split)}


def calibrate(cfg: TrainConfig, data: PreparedData, trained: TrainedModels, raw: dict[str, np.ndarray], *,
              device: torch.device) -> tuple[Calibration, dict[str, np.ndarray], dict[str, Any]]:
    """Fit ``--calibration`` on the validation split; the calibrated probabilities, and the
    calibration report (per label before and after, on the report split)."""
    base = raw
    if cfg.calibration in SHIFTED:  # the members' shifts undone first, then fitted on what is left
        base = predict_parts(trained, data, device=device, amp=cfg.amp,
                             calibration=Calibration("prior", member_shift=trained.prior_shifts))
    calibration = fit_calibration(cfg.calibration, data.labels["val"], base["val"], member_shift=trained.prior_shifts)
    prob = {part: calibration.apply(p) for part, p in base.items()}
    split, names = data.report_split, data.label_names
    report = {"method": cfg.calibration, "split": split, "ece_bins": ECE_BINS,
              "before": calibration_metrics(data.labels[split], raw[split], names),
              "after": calibration_metrics(data.labels[split], prob[split], names)}
    return calibration, prob, report


def score_models(cfg: TrainConfig, data: PreparedData, prob: dict[str, np.ndarray],
                 thresholds: np.ndarray) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per-label metrics on the report split: the network, then every baseline fitted on the real
    training rows (the simple model users would otherwise fit) with thresholds tuned the same way.
    Also each model's report-split probabilities and thresholds (for the bootstrap)."""
    split, names = data.report_split, data.label_names
    scored = {"network": label_metrics(data.labels[split], prob[split], thresholds, names)}
    used = {"network": (prob[split], thresholds)}
    for baseline in cfg.baseline_names:
        scores = baseline_scores(baseline, data.real_train, data.real_train_labels,
                                 {"val": data.rows["val"], split: data.rows[split]},
                                 cardinalities=data.preprocessor.cardinalities, seed=cfg.seed)
        base_thr, _ = tune_thresholds(cfg, data.labels["val"], scores["val"])
        scored[baseline] = label_metrics(data.labels[split], scores[split], base_thr, names)
        used[baseline] = (scores[split], base_thr)
    return scored, used


def slices(cfg: TrainConfig, data: PreparedData, prob: np.ndarray, thresholds: np.ndarray) -> Optional[dict[str, Any]]:
    """``--slice_cols``: the network's report split by subgroup (None without the flag)."""
    if data.slice_values is None:
        return None
    split = data.report_split
    columns = {name: (data.slice_values[name].iloc[data.splits["train"]], data.slice_values[name].iloc[data.splits[split]])
               for name in data.slice_values.columns}
    return slice_report(data.labels[split], prob, thresholds, data.label_names, columns, bins=cfg.slice_bins,
                        min_positives=cfg.slice_min_positives)


def intervals(cfg: TrainConfig, data: PreparedData, scored: dict[str, Any],
              used: dict[str, tuple[np.ndarray, np.ndarray]]) -> Optional[dict[str, Any]]:
    """``--bootstrap N`` intervals on the report split (None with ``--bootstrap 0``)."""
    if not cfg.bootstrap:
        return None
    started = time.perf_counter()
    report = bootstrap_report(data.labels[data.report_split], used, data.label_names, n_boot=cfg.bootstrap, seed=cfg.seed,
                              point=scored)
    log.info("bootstrap: %d stratified resamples of the %s split in %.1f s", cfg.bootstrap, data.report_split,
             time.perf_counter() - started)
    return report


def score_and_save(cfg: TrainConfig, data: PreparedData, trained: TrainedModels, checkpoints: RunCheckpoints, *,
                   device: torch.device, guard: CollapseGuard, epoch_log: EpochLogger, started: float,
                   folder: RunFolder) -> tuple[dict[str, Any], str]:
    """The end of every run: predict validation and report splits, tune thresholds, score the
    network and the baselines, write the outputs. Returns the report and the thresholds' source."""
    raw = predict_parts(trained, data, device=device, amp=cfg.amp)
    calibration, prob, calibration_report = calibrate(cfg, data, trained, raw, device=device)
    thresholds, source = tune_thresholds(cfg, data.labels["val"], prob["val"], label_names=data.label_names)
    scored, used = score_models(cfg, data, prob, thresholds)
    subgroups = slices(cfg, data, prob[data.report_split], thresholds)
    plot_data = None if not cfg.plots else PlotData(
        label_names=data.label_names, split=data.report_split, y=data.labels[data.report_split], models=used,
        raw=raw[data.report_split], y_val=data.labels["val"], prob_val=prob["val"], calibration=cfg.calibration,
        history=[record.summary(data.label_names) for record in trained.history], stop_metric=cfg.early_stop_metric,
        slices=subgroups)
    report = write_outputs(cfg, data, trained, checkpoints, prob=prob, thresholds=thresholds, source=source, scored=scored,
                           guard=guard, epoch_log=epoch_log, started=started, folder=folder,
                           calibration=calibration, calibration_report=calibration_report,
                           intervals=intervals(cfg, data, scored, used), slices=subgroups, plot_data=plot_data)
    return report, source


def write_outputs(cfg: TrainConfig, data: PreparedData, trained: TrainedModels, checkpoints: RunCheckpoints, *,
                  prob: dict[str, np.ndarray], thresholds: np.ndarray, source: str, scored: dict[str, Any],
                  guard: CollapseGuard, epoch_log: EpochLogger, started: float, folder: RunFolder,
                  calibration: Calibration, calibration_report: dict[str, Any],
                  intervals: Optional[dict[str, Any]] = None, slices: Optional[dict[str, Any]] = None,
                  plot_data: Optional[PlotData] = None) -> dict[str, Any]:
    """best.pt with every member, the calibration and the tuned thresholds, metrics.json,
    report.md and test_predictions.csv; returns the report written to metrics.json."""
    split, names = data.report_split, data.label_names
    final = scored["network"]
    collapsed_final = {n: ("all-negative" if m["n_pos_pred"] == 0 else "all-positive")
                       for n, m in final["labels"].items() if m["n_pos_pred"] in (0, m["n"])}
    first = trained.results[0]
    report = {
        "split": split,
        "run": {
            "output_dir": str(folder.path), "source": data.table.source, "labels": names,
            "rows": {p: int(len(r)) for p, r in data.splits.items()},
            "model": cfg.model, "model_settings": dataclasses.asdict(cfg.model_settings),
            "num_embeddings": checkpoints.inputs.num_embeddings, "ensemble": len(trained.results),
            "best_epoch": first.best_epoch, "epochs_run": len(first.history), "stopped_early": first.stopped_early,
            "members": [{"member": i, **about, "best_epoch": r.best_epoch, "epochs_run": len(r.history),
                         "stopped_early": r.stopped_early, "best_score": r.best_score}
                        for i, (r, about) in enumerate(zip(trained.results, trained.about or
                                                           [{"seed": cfg.seed + i} for i in range(len(trained.results))]))],
            "early_stop_metric": cfg.early_stop_metric, "best_score": first.best_score,
            "optimize_thresholds": cfg.optimize_thresholds, "threshold_metric": cfg.threshold_metric,
            "seconds": round(time.perf_counter() - started, 2),
        },
        "models": scored,
        "intervals": intervals,
        "slices": slices,
        "calibration": calibration_report,
        "augmentation": None if data.augmented is None else {
            "provenance": data.augmented.provenance,
            "quality": None if data.augmented.quality is None else quality_summary(data.augmented.quality),
        },
        "collapsed": {"final": collapsed_final, "during_training": dict(guard.collapsed)},
        "history": [record.summary(names) for record in trained.history],
    }
    if plot_data is not None:
        plots = folder.file("plots")
        report["plots"] = [str(path.relative_to(folder.path)) for path in write_plots(plot_data, plots)]
    last_epoch = trained.results[-1].best_epoch
    save_checkpoint(checkpoints.build(trained.states, epoch=last_epoch, thresholds=thresholds, source=source,
                                      metrics={"split": split, **final}, complete=True, calibration=calibration.to_dict(),
                                      reference=data.reference),
                    folder.file("best.pt"))
    write_json(folder.file("metrics.json"), report)
    write_text(folder.file("report.md"), format_report_markdown(report))
    write_text(folder.file("model_card.md"), format_model_card(report, data.analysis.to_dict() if data.analysis else {}, cfg.to_dict(),
                                                               (folder.record or {}).get("command")))
    if len(data.splits["test"]):
        test = data.splits["test"]
        preds = prediction_frame(prob["test"], thresholds, names, index=data.table.row_index[test],
                                 ids=None if data.table.ids is None else data.table.ids.iloc[test], id_col=data.table.id_col)
        for j, name in enumerate(names):
            preds.insert(preds.columns.get_loc(f"{name}_prob"), f"{name}_true", data.labels["test"][:, j])
        write_csv(folder.file("test_predictions.csv"), preds.rename_axis("row"))
    epoch_log.log_pr_curves(data.labels["val"], prob["val"], step=first.best_epoch)
    epoch_log.log_hparams({k: v for k, v in cfg.to_dict().items() if k not in ("quiet", "tensorboard")},
                          {f"{split}/{k}": float(final["macro"][k]) for k in ("f1", "recall", "precision", "auroc", "auprc")})
    return report
