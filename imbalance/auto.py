"""``--preset auto``: choose the model and the imbalance recipe from the data, within a time budget.

A seeded Optuna search (TPE sampler, median pruning by epoch) over:

- the model: every registered model with its default numeric embedding, the MLP with
  piecewise-linear embeddings, and two models without hidden layers: ``linear`` (a logistic
  regression trained with the trial's recipe) and ``additive`` (a linear head on piecewise-linear
  encodings of the numeric columns: a generalised additive model, one learned curve per column);
- the imbalance recipe: weighted sampling (none, ``balanced``, ``per_class``), class weights
  (none, or ``balanced`` x a multiplier in [0.5, 4]), the loss (``bce``, ``weighted_bce``,
  ``focal`` with gamma in [1, 3]), more minority rows (none; binary: ``random_over`` or the SMOTE
  variant the columns allow, to a minority / majority ratio in [0.1, 0.5]; multi-label:
  ``mlsmote``, minority labels to [0.5, 1] x the most frequent label's count), or rows
  made by the ``gaussian_copula`` generator, R x each label's positives with R in [0.5, 4];
- the optimisation: learning rate in [1e-4, 3e-3], weight decay in [1e-6, 1e-3], and the
  model's dropout in [0, 0.5] (log scales for the first two).

The first trials are the balanced preset's recipe (class-weighted BCE on the natural mix of
rows) with the models that measured best across tables (:data:`STARTING_POINTS`), so even a
short budget ends with what the balanced preset would have given; TPE takes over from there.

Each trial trains on the training split and is scored on the validation split only: its best
epoch's validation macro AUPRC (ties: macro F1 at the tuned thresholds). The test split never
reaches the search. Every trial reports its AUPRC after each epoch; the pruner stops a trial
whose AUPRC is below the median of earlier trials at the same epoch, and the budget stops the
last one at its deadline (keeping its best epoch). The best trial's trained model becomes the
run: thresholds tuned on validation, scored once on the test split, saved as an ordinary run
folder (``best.pt``, ``metrics.json``, ...) whose ``config.json`` is the chosen configuration,
with ``search.csv`` and ``search.md`` listing every trial. With ``--ensemble_top K`` the trained
models of the K best trials (by the same validation score) are averaged instead, in one
checkpoint that holds each member's model; the thresholds are tuned on the average. Ctrl-C ends
the search and keeps the best trial(s) so far.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import pandas as pd

from models import MODELS

from .augmentation import augment_training_split
from .config import TrainConfig
from .distributed import DistContext
from .errors import UserError
from .metrics import label_metrics
from .pipeline import PreparedData, RunCheckpoints, TrainedModels, fit_members, input_spec, predict_parts
from .reporting import CollapseGuard, EpochLogger, Levers

__all__ = ["MODEL_CHOICES", "DROPOUT_SETTING", "ModelChoice", "Finalist", "SearchResult", "TrialRecord", "search", "format_search_markdown"]

log = logging.getLogger(__name__)

# The setting each model's dropout goes by (the model owns its settings; the search tunes this one).
DROPOUT_SETTING = {"mlp": "dropout", "resnet": "dropout1", "ft_transformer": "ffn_dropout", "tabm": "dropout"}


@dataclass(frozen=True)
class ModelChoice:
    """A model the search may pick: a registered model, its numeric embedding and fixed settings."""

    model: str
    num_embeddings: str = "auto"  # auto: the model's own default
    settings: tuple[tuple[str, Any], ...] = ()  # fixed settings, as (name, value) pairs
    tune_dropout: bool = True  # False where the model has no layer a dropout would act on

    def model_args(self, dropout: Optional[float]) -> dict[str, Any]:
        args = {name: (list(value) if isinstance(value, tuple) else value) for name, value in self.settings}
        if dropout is not None:
            args[DROPOUT_SETTING[self.model]] = dropout
        return args


MODEL_CHOICES: dict[str, ModelChoice] = {
    **{name: ModelChoice(name) for name in MODELS.names()},
    "mlp:piecewise_linear": ModelChoice("mlp", "piecewise_linear"),
    "linear": ModelChoice("mlp", "none", (("hidden_sizes", ()),), tune_dropout=False),
    "additive": ModelChoice("mlp", "piecewise_linear", (("hidden_sizes", ()),), tune_dropout=False),
}
# Fixed for every trial: what the balanced preset measured best for stopping and thresholds.
TRIAL_SETTINGS = dict(use_stratified_split=True, optimize_thresholds=True, early_stop_metric="macro_auprc",
                      early_stop_patience=16, epochs=200, batch_size=64, ensemble=1, compare=False)
# The balanced preset's recipe, tried first with the models that led on the shared tables
# (benchmarks/quality.py): piecewise-linear MLP (stroke, mammography), ResNet (thyroid), and the
# additive model (a GAM: what wins where a simple signal meets few positives).
_BALANCED_RECIPE = dict(sampling="none", loss="weighted_bce", class_weights="balanced", class_weight_multiplier=1.0,
                        more_rows="none", lr=1e-3, weight_decay=1e-4)
STARTING_POINTS = [
    {"model": "mlp:piecewise_linear", **_BALANCED_RECIPE, "dropout": 0.3},
    {"model": "resnet", **_BALANCED_RECIPE, "dropout": 0.15},
    {"model": "additive", **_BALANCED_RECIPE},
]
# Resampling ratio ranges. Binary: minority / majority after resampling. MLSMOTE: each minority
# label's count as a share of the most frequent label's (below its current share it adds nothing).
RESAMPLE_RATIOS = {False: (0.1, 0.5), True: (0.5, 1.0)}
GENERATOR = "gaussian_copula"  # the generator the search may mix rows from (fast, and keeps columns' correlations)
FINAL_RESERVE = 0.05  # share of the budget kept for scoring and writing the final run


@dataclass
class TrialRecord:
    number: int
    state: str  # complete | pruned | budget (stopped at the deadline, best epoch kept) | failed
    params: dict[str, Any]
    val_auprc: float
    val_f1_tuned: float
    best_epoch: int
    epochs: int
    seconds: float


@dataclass
class Finalist:
    """A trial kept for the final model: its configuration and trained model."""

    record: TrialRecord
    cfg: TrainConfig
    data: PreparedData
    trained: TrainedModels
    inputs: Any

    @property
    def rank_key(self) -> tuple[float, float, int]:
        """Validation AUPRC, then tuned F1; of equals, the earlier trial."""
        return (self.record.val_auprc, self.record.val_f1_tuned, -self.record.number)


@dataclass
class SearchResult:
    cfg: TrainConfig  # the chosen configuration, as an ordinary run's config (the best trial's)
    data: PreparedData  # the prepared data as the best trial trained on it (its augmentation)
    trained: TrainedModels  # the best trial's model, or the K best trials' models (--ensemble_top)
    checkpoints: RunCheckpoints
    trials: list[TrialRecord]
    seconds: float
    interrupted: bool = False
    chosen: list[int] = field(default_factory=list)  # the trial numbers in the final model
    ensemble_val_auprc: Optional[float] = None  # --ensemble_top: the averaged models' validation macro AUPRC

    def table(self) -> pd.DataFrame:
        rows = [{"trial": t.number, "state": t.state, **t.params, "val_auprc": t.val_auprc, "val_f1_tuned": t.val_f1_tuned,
                 "best_epoch": t.best_epoch, "epochs": t.epochs, "seconds": round(t.seconds, 2)} for t in self.trials]
        return pd.DataFrame(rows)


def _resampler(data: PreparedData) -> str:
    if len(data.label_names) > 1:
        return "mlsmote"
    pre = data.preprocessor
    return "smotenc" if (pre.categorical_names or pre.flag_names) else "smote"


def suggest(trial: Any, base: TrainConfig, data: PreparedData) -> tuple[TrainConfig, dict[str, Any]]:
    """One trial's configuration (define-by-run: the conditional choices are asked only when they matter)."""
    choice = MODEL_CHOICES[trial.suggest_categorical("model", list(MODEL_CHOICES))]
    sampling = trial.suggest_categorical("sampling", ["none", "balanced", "per_class"])
    loss = trial.suggest_categorical("loss", ["bce", "weighted_bce", "focal"])
    class_weights = "none" if loss == "bce" else trial.suggest_categorical("class_weights", ["none", "balanced"])
    multiplier = trial.suggest_float("class_weight_multiplier", 0.5, 4.0, log=True) if class_weights != "none" else 1.0
    gamma = trial.suggest_float("focal_gamma", 1.0, 3.0) if loss == "focal" else base.focal_gamma
    resampler = _resampler(data)
    more_rows = trial.suggest_categorical(
        "more_rows", ["none", "random_over", "smote", GENERATOR] if len(data.label_names) == 1 else ["none", "smote", GENERATOR])
    method = {"none": "none", "random_over": "random_over", "smote": resampler, GENERATOR: "none"}[more_rows]
    ratio = trial.suggest_float("more_rows_ratio", *RESAMPLE_RATIOS[method == "mlsmote"]) if method != "none" else 1.0
    generated = trial.suggest_float("generated_ratio", 0.5, 4.0, log=True) if more_rows == GENERATOR else None
    lr = trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5) if choice.tune_dropout else None
    cfg = replace(
        base, **TRIAL_SETTINGS, preset="auto", model=choice.model, num_embeddings=choice.num_embeddings,
        model_args=choice.model_args(dropout),
        use_weighted_sampling=sampling != "none", weight_method=sampling if sampling != "none" else base.weight_method,
        loss_type=loss, class_weight_method=class_weights, class_weight_multiplier=multiplier, focal_gamma=gamma,
        focal_alpha=None, resample=method, resample_ratio=ratio, generated_csv=None,
        generator=GENERATOR if generated else "none", generated_ratio=generated,
        lr=lr, weight_decay=weight_decay,
    )
    return cfg, dict(trial.params)


def _with_rows(data: PreparedData, cfg: TrainConfig) -> PreparedData:
    """The prepared data with this trial's extra minority rows (the real rows are shared)."""
    if not cfg.augments:
        return data
    augmented = augment_training_split(
        data.preprocessor, data.real_train, data.train_features, data.real_train_labels, label_names=data.label_names,
        resample_method=cfg.resample, resample_ratio=cfg.resample_ratio, k_neighbors=cfg.resample_k_neighbors,
        generator=cfg.generator, generated_ratio=cfg.generated_ratio, seed=cfg.seed,
    )
    return replace(data, rows={**data.rows, "train": augmented.rows}, labels={**data.labels, "train": augmented.y},
                   augmented=augmented)


def search(base: TrainConfig, data: PreparedData, *, device: Any, started: float, progress: bool = False) -> SearchResult:
    """Run the search until the budget (counted from ``started``) or ``--max_trials``; return the best trial, trained."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if data.train_features is None:
        raise RuntimeError("prepare_data(keep_train_features=True) is needed for the search")
    deadline = started + base.time_budget * (1.0 - FINAL_RESERVE)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5))
    for params in STARTING_POINTS:
        study.enqueue_trial(params)
    records: list[TrialRecord] = []
    finalists: list[Finalist] = []  # the best base.ensemble_top trials so far, best first

    def objective(trial: Any) -> float:
        trial_started = time.perf_counter()
        cfg, params = suggest(trial, base, data)
        stopped = {"reason": ""}

        def stop_check(record: Any) -> Optional[str]:
            trial.report(record.val["macro"]["auprc"], record.epoch)
            if time.perf_counter() > deadline:
                stopped["reason"] = "budget"
            elif trial.should_prune():
                stopped["reason"] = "pruned"
            return stopped["reason"] or None

        try:
            trial_data = _with_rows(data, cfg)
            inputs = input_spec(cfg, trial_data)
            trained = fit_members(cfg, trial_data, inputs, device=device, dist=DistContext(), folder=None,
                                  epoch_log=EpochLogger(None, trial_data.label_names, quiet=True),
                                  guard=CollapseGuard(trial_data.label_names, levers=Levers.of(cfg)),
                                  checkpoints=RunCheckpoints(cfg=cfg, data=trial_data, inputs=inputs), stop_check=stop_check)
        except UserError as exc:  # a recipe these rows cannot take (e.g. too few neighbours): a failed trial
            records.append(TrialRecord(trial.number, "failed", params, math.nan, math.nan, 0, 0,
                                       time.perf_counter() - trial_started))
            log.info("trial %d failed: %s", trial.number, exc)
            return float("nan")
        result = trained.results[0]
        best_record = next((r for r in result.history if r.epoch == result.best_epoch), result.history[-1])
        auprc = float(best_record.val["macro"]["auprc"])
        f1 = float(best_record.val_tuned["macro"]["f1"])
        state = stopped["reason"] or "complete"
        record = TrialRecord(trial.number, state, params, auprc, f1, result.best_epoch, len(result.history),
                             time.perf_counter() - trial_started)
        records.append(record)
        log.info("trial %d (%s): val AUPRC %.4f, tuned F1 %.4f, %s", trial.number, state, auprc, f1, params)
        if not math.isnan(auprc):
            finalists.append(Finalist(record, cfg, trial_data, trained, inputs))
            finalists.sort(key=lambda f: f.rank_key, reverse=True)
            del finalists[base.ensemble_top:]  # the others' models are not needed any more
        if state == "pruned":
            raise optuna.TrialPruned()
        return auprc

    def out_of_time(study: Any, trial: Any) -> None:
        if time.perf_counter() > deadline:
            study.stop()

    interrupted = False
    try:
        study.optimize(objective, n_trials=base.max_trials or None, timeout=max(1.0, deadline - time.perf_counter()),
                       callbacks=[out_of_time], show_progress_bar=progress, catch=())
    except KeyboardInterrupt:
        interrupted = True
        log.warning("search interrupted after %d trials: keeping the best so far", len(records))
    if not finalists:
        raise UserError(f"--preset auto: no trial finished within --time_budget {base.time_budget:g} s; raise it")
    if len(finalists) < base.ensemble_top:
        log.warning("--ensemble_top %d: only %d trial(s) finished within the budget; averaging those", base.ensemble_top,
                    len(finalists))
    result = _final_model(base, finalists, device=device)
    result.trials, result.interrupted = records, interrupted
    result.seconds = time.perf_counter() - started
    return result


def _final_model(base: TrainConfig, finalists: list[Finalist], *, device: Any) -> SearchResult:
    """The best trial's model, or with ``--ensemble_top`` the average of the finalists' models
    (the best trial's configuration and data describe the run; every member keeps its own model)."""
    best = finalists[0]
    cfg = replace(best.cfg, ensemble_top=base.ensemble_top)
    if len(finalists) == 1:
        return SearchResult(cfg=cfg, data=best.data, trained=best.trained, chosen=[best.record.number], trials=[], seconds=0.0,
                            checkpoints=RunCheckpoints(cfg=cfg, data=best.data, inputs=best.inputs))
    trained = TrainedModels(
        members=[m for f in finalists for m in f.trained.members], results=[r for f in finalists for r in f.trained.results],
        prior_shifts=[shift for f in finalists for shift in f.trained.prior_shifts],
        about=[{"trial": f.record.number, **f.record.params, "num_embeddings": f.inputs.num_embeddings, "seed": f.cfg.seed,
                "val_auprc": f.record.val_auprc} for f in finalists],
    )
    # The members trained on different rows (each trial its own extra minority rows); scoring
    # reads only the validation and test rows, which every trial shares.
    data = replace(best.data, augmented=None)
    prob = predict_parts(trained, data, device=device, amp=cfg.amp)
    ensemble_auprc = float(label_metrics(data.labels["val"], prob["val"], 0.5, data.label_names)["macro"]["auprc"])
    log.info("ensemble of trials %s: validation macro AUPRC %.4f (best single trial %.4f)",
             [f.record.number for f in finalists], ensemble_auprc, best.record.val_auprc)
    return SearchResult(
        cfg=cfg, data=data, trained=trained, trials=[], seconds=0.0, chosen=[f.record.number for f in finalists],
        ensemble_val_auprc=ensemble_auprc,
        checkpoints=RunCheckpoints(cfg=cfg, data=data, inputs=best.inputs,
                                   member_models=[RunCheckpoints.model_of(f.cfg, f.inputs) for f in finalists]),
    )


def format_search_markdown(result: SearchResult) -> str:
    table = result.table().sort_values(["val_auprc", "val_f1_tuned"], ascending=False, na_position="last")
    best = result.cfg
    lines = [f"# Search ({len(result.trials)} trials, {result.seconds:.0f} s{', interrupted' if result.interrupted else ''})", "",
             f"Best trial ({result.chosen[0]}): `{best.model}` ({best.resolved_num_embeddings} embeddings), sampling "
             f"{best.weight_method if best.use_weighted_sampling else 'none'}, loss {best.loss_type}, "
             f"class weights {best.class_weight_method} x {best.class_weight_multiplier:.2f}, more rows "
             f"{best.resample if best.resample != 'none' else best.generator}, lr {best.lr:.2g}, weight decay {best.weight_decay:.2g}.", ""]
    if len(result.chosen) > 1:
        lines += [f"The final model averages the {len(result.chosen)} best trials ({', '.join(map(str, result.chosen))}; "
                  f"--ensemble_top {best.ensemble_top}): validation macro AUPRC {result.ensemble_val_auprc:.4f} "
                  f"(best single trial {table['val_auprc'].max():.4f}).", ""]
    lines += ["Scored on the validation split only (best epoch's macro AUPRC; ties: tuned F1).", ""]
    columns = list(table.columns)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"  # NaN: a setting this trial did not use
    return str(value)
