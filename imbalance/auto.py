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
rows) with the models that measured best across tables and the linear model, the network form
of the logistic-regression baseline (:data:`STARTING_POINTS`), so even a short budget ends with
what the balanced preset would have given; TPE takes over from there. Models with hidden layers
stop at their best validation AUPRC; the linear and additive models at their best validation
loss (their optimum, as a fitted GLM's).

Each trial trains on the training split and is scored on the validation split only: its best
epoch's validation macro AUPRC (ties: macro F1 at the tuned thresholds). The test split never
reaches the search. Every trial reports its AUPRC after each epoch; the pruner stops a trial
whose AUPRC is below the median of earlier trials at the same epoch (not the linear and additive
models: cheap, and slow to climb to their optimum), and the budget stops the
last one at its deadline (keeping its best epoch). The best trial's trained model becomes the
run: thresholds tuned on validation, scored once on the test split, saved as an ordinary run
folder (``best.pt``, ``metrics.json``, ...) whose ``config.json`` is the chosen configuration,
with ``search.csv`` and ``search.md`` listing every trial. With ``--ensemble_top K`` the trained
models of the K best trials (by the same validation score) are averaged instead, in one
checkpoint that holds each member's model; the thresholds are tuned on the average. Ctrl-C ends
the search and keeps the best trial(s) so far.

Where the rarest label has fewer than 100 validation positives (or with ``--resplits N``), the
trial that scored best on validation is often only the luckiest, and a best epoch's validation
AUPRC is the maximum over epochs, biased up most for the models that vary most. The search then
keeps time to train the leading trials (the best trial of each model, three at most, the best
linear and additive trials, and the linear and additive models with the balanced preset's recipe,
the starting points) again on fresh stratified train/validation splits of the same
non-test rows, one split at a time (each fresh validation split drawn from the training rows
alone: the rows that chose the trials are not scored again, they join the fresh training rows),
each for the trial's own number of epochs (its best epoch) without early stopping. The time
kept is that of as many whole fresh splits as fit in 40% of the search (four at most), each
estimated from the leading trials' own seconds per epoch and updated after every trial; a
split that would not finish in the time left is not begun, and where not even one fits, the
choice is made on validation alone. Without early stopping the fresh validation rows choose
nothing, so their AUPRC at the last epoch is an honest estimate.
Each is scored by its mean over the fresh splits that all of them finished, and the simplest
model whose mean is within one standard error of the best mean is chosen (the
one-standard-error rule, with the split-to-split variance pooled over the candidates; the
linear and additive models are simpler than any with hidden layers, and of two alike the starting
point, whose recipe no validation score chose, is the simpler): a more complex model has to beat
a simpler one by more than the splits' noise. Without ``--ensemble_top``, averages of the
leading trials' models compete as well: the 2, 3, ... best by mean, each scored on the same fresh
splits from its members' own predictions there (no more training), and simpler than a single
model only where its most complex member is (an average of the linear and additive models is
simpler than one network with hidden layers; more members is less simple). Where an average is
chosen, the final model averages those trials' models, as ``--ensemble_top`` would. The models
that become the run are still the trials' own, trained on the training split.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np
import pandas as pd

from models import MODELS

from .augmentation import augment_training_split
from .config import TrainConfig, split_list
from .distributed import DistContext
from .errors import UserError
from .metrics import label_metrics
from .pipeline import PreparedData, RunCheckpoints, TrainedModels, fit_members, input_spec, predict_parts
from .preprocessing import EncodedRows
from .reporting import CollapseGuard, EpochLogger, Levers
from .splitting import split_indices

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
    stop_on: str = "macro_auprc"  # the early-stopping metric of its trials
    simplicity: int = 2  # the one-standard-error rule's order: lower is simpler

    @property
    def without_hidden_layers(self) -> bool:
        """The linear and additive models: the simplest, whose starting points are re-scored too."""
        return dict(self.settings).get("hidden_sizes") == ()

    def model_args(self, dropout: Optional[float]) -> dict[str, Any]:
        args = {name: (list(value) if isinstance(value, tuple) else value) for name, value in self.settings}
        if dropout is not None:
            args[DROPOUT_SETTING[self.model]] = dropout
        return args


MODEL_CHOICES: dict[str, ModelChoice] = {
    **{name: ModelChoice(name) for name in MODELS.names()},
    "mlp:piecewise_linear": ModelChoice("mlp", "piecewise_linear"),
    # Without hidden layers the loss is convex (linear) or nearly so (additive): they train to
    # their validation-loss optimum, as a fitted GLM would, instead of stopping at the epoch whose
    # validation AUPRC happened to peak (on stroke's 37 validation positives that choice alone
    # cost the linear model 0.203 against 0.247 test AUPRC, three seeds).
    "linear": ModelChoice("mlp", "none", (("hidden_sizes", ()),), tune_dropout=False, stop_on="val_loss", simplicity=0),
    "additive": ModelChoice("mlp", "piecewise_linear", (("hidden_sizes", ()),), tune_dropout=False, stop_on="val_loss",
                            simplicity=1),
}
# Fixed for every trial: what the balanced preset measured best for stopping and thresholds
# (the stopping metric is the model choice's own).
TRIAL_SETTINGS = dict(use_stratified_split=True, optimize_thresholds=True, early_stop_patience=16, epochs=200, batch_size=64,
                      ensemble=1, compare=None)
# The balanced preset's recipe, tried first with the models that led on the shared tables
# (benchmarks/quality.py): piecewise-linear MLP (stroke, mammography), ResNet (thyroid), the
# linear model (the logistic regression every report compares with) and the additive model (a
# GAM: what wins where a simple signal meets few positives).
_BALANCED_RECIPE = dict(sampling="none", loss="weighted_bce", class_weights="balanced", class_weight_multiplier=1.0,
                        more_rows="none", lr=1e-3, weight_decay=1e-4)
STARTING_POINTS = [
    {"model": "mlp:piecewise_linear", **_BALANCED_RECIPE, "dropout": 0.3},
    {"model": "resnet", **_BALANCED_RECIPE, "dropout": 0.15},
    {"model": "linear", **_BALANCED_RECIPE},
    {"model": "additive", **_BALANCED_RECIPE},
]
# Resampling ratio ranges. Binary: minority / majority after resampling. MLSMOTE: each minority
# label's count as a share of the most frequent label's (below its current share it adds nothing).
RESAMPLE_RATIOS = {False: (0.1, 0.5), True: (0.5, 1.0)}
GENERATOR = "gaussian_copula"  # the generator the search may mix rows from (fast, and keeps columns' correlations)
FINAL_RESERVE = 0.05  # share of the budget kept for scoring and writing the final run
# Re-scoring on fresh splits (--resplits): where validation holds few positives, the trial that
# scored best on it is often the luckiest, not the best. The leading trials (the best of each
# model, then the best overall, and the simplest models' starting points) are trained again on
# fresh train/validation splits of the same non-test rows (validation drawn from the training
# rows alone), and chosen by their mean validation AUPRC.
RESPLIT_BELOW_POSITIVES = 100  # the default applies when the rarest label has fewer validation positives
RESPLIT_ROUNDS = 4  # the default number of fresh splits
RESPLIT_CANDIDATES = 3  # trials scored again (at least --ensemble_top), besides the simplest models' best
RESPLIT_SHARE = 0.4  # the most of the search's time kept for re-scoring
RESPLIT_MARGIN = 1.15  # a fresh split's estimated seconds x this, to be sure it finishes


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
    resplit_auprc: list[float] = field(default_factory=list)  # validation AUPRC on each fresh split (--resplits)
    resplit_f1: list[float] = field(default_factory=list)

    @property
    def mean_auprc(self) -> float:
        """Validation AUPRC over the fresh splits (the original split's, before any)."""
        return float(np.mean(self.resplit_auprc)) if self.resplit_auprc else self.val_auprc

    @property
    def mean_f1(self) -> float:
        return float(np.mean(self.resplit_f1)) if self.resplit_f1 else self.val_f1_tuned

    @property
    def standard_error(self) -> float:
        """Of :attr:`mean_auprc`, over the fresh splits (NaN with fewer than two)."""
        scores = self.resplit_auprc
        return float(np.std(scores, ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else math.nan


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

    @property
    def simplicity(self) -> int:
        return MODEL_CHOICES[self.record.params["model"]].simplicity

    @property
    def untuned(self) -> bool:
        """One of the starting points: settings fixed before the search, none chosen on validation."""
        return self.record.params in STARTING_POINTS

    @property
    def resplit_key(self) -> tuple[float, float, int]:
        """The same, as means over the original and the fresh splits (NaN, from a failed split, ranks last)."""
        auprc, f1 = self.record.mean_auprc, self.record.mean_f1
        return (-math.inf if math.isnan(auprc) else auprc, -math.inf if math.isnan(f1) else f1, -self.record.number)


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
    resplits: int = 0  # fresh splits every re-scored trial was scored on (0: chosen on the validation split alone)
    resplit_reason: str = ""
    rule_note: str = ""  # how the one-standard-error rule chose among the re-scored trials
    averaged_by_rule: bool = False  # the rule chose the average of several trials' models (not --ensemble_top)

    def describe_choice(self) -> str:
        """The best trial's model as the search names it, with the registered model behind it
        where they differ: 'resnet (periodic embeddings)', 'linear (mlp without hidden layers, none embeddings)'."""
        cfg = self.cfg
        name = next((t.params["model"] for t in self.trials if t.number == (self.chosen or [None])[0]), cfg.model)
        if name.split(":")[0] == cfg.model and name.partition(":")[2] in ("", cfg.resolved_num_embeddings):
            return f"{cfg.model} ({cfg.resolved_num_embeddings} embeddings)"
        hidden = "" if MODEL_CHOICES.get(name, ModelChoice(cfg.model)).simplicity >= 2 else " without hidden layers"
        return f"{name} ({cfg.model}{hidden}, {cfg.resolved_num_embeddings} embeddings)"

    def table(self) -> pd.DataFrame:
        rows = []
        for t in self.trials:
            row = {"trial": t.number, "state": t.state, **t.params, "val_auprc": t.val_auprc, "val_f1_tuned": t.val_f1_tuned}
            if self.resplits:
                rescored = bool(t.resplit_auprc)
                row.update(resplit_auprc=t.mean_auprc if rescored else math.nan, resplit_se=t.standard_error if rescored else math.nan,
                           resplit_f1=t.mean_f1 if rescored else math.nan)
            rows.append({**row, "best_epoch": t.best_epoch, "epochs": t.epochs, "seconds": round(t.seconds, 2)})
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
        base, **TRIAL_SETTINGS, early_stop_metric=choice.stop_on, preset="auto", model=choice.model, num_embeddings=choice.num_embeddings,
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
        generator=cfg.generator, generated_ratio=cfg.generated_ratio, seed=cfg.seed, onehot_groups=split_list(cfg.onehot_groups),
        measure_quality=False,  # a trial is judged by its validation score; the quality report would only cost time
    )
    return replace(data, rows={**data.rows, "train": augmented.rows}, labels={**data.labels, "train": augmented.y},
                   augmented=augmented)


def resplit_rounds(base: TrainConfig, data: PreparedData) -> tuple[int, str]:
    """How many fresh splits re-score the leading trials, and why (for search.md)."""
    fewest = int(data.labels["val"].sum(axis=0).min())
    if base.resplits is not None:
        return base.resplits, f"--resplits {base.resplits}"
    if fewest < RESPLIT_BELOW_POSITIVES:
        return RESPLIT_ROUNDS, f"the rarest label has {fewest} validation positives, fewer than {RESPLIT_BELOW_POSITIVES}"
    return 0, f"the rarest label has {fewest} validation positives"


def resplit(data: PreparedData, seed: int) -> PreparedData:
    """The prepared data with a fresh stratified train/validation split of its training and
    validation rows: the fresh validation rows are drawn from the training split only (as many
    as the validation split has, at most half of them), and the original validation rows join
    the fresh training rows. The test rows stay where they are, unread.

    The search chose its leading trials by their score on the original validation rows, so a
    fresh validation split that holds some of those rows hands part of that luck back to the
    trials it favoured; rows that never scored a trial carry none of it (measured on stroke:
    README, "Few validation positives")."""
    train_rows, train_labels = data.real_train, data.real_train_labels
    size = min(len(data.splits["val"]), len(train_labels) // 2)
    parts = split_indices(train_labels, val_fraction=size / len(train_labels), test_fraction=0.0, stratify=True,
                          seed=seed, label_names=data.label_names)
    keep, val = parts["train"], parts["val"]
    rows = EncodedRows.concat([train_rows.take(keep), data.rows["val"]])
    labels = np.concatenate([train_labels[keep], data.labels["val"]])
    features = pd.concat([data.train_features.iloc[keep], data.val_features])
    return replace(data, splits={**data.splits, "train": np.concatenate([data.splits["train"][keep], data.splits["val"]]),
                                 "val": data.splits["train"][val]},
                   rows={**data.rows, "train": rows, "val": train_rows.take(val)},
                   labels={**data.labels, "train": labels, "val": train_labels[val]},
                   real_train=rows, real_train_labels=labels,
                   train_features=features, val_features=data.train_features.iloc[val], augmented=None)


@dataclass
class _Fit:
    """One configuration trained on one split, scored at its best epoch on that split's validation rows."""

    data: PreparedData
    trained: TrainedModels
    inputs: Any
    auprc: float
    f1: float
    best_epoch: int
    epochs: int
    val_prob: Optional[np.ndarray] = None  # with last_epoch: the last epoch's validation probabilities


def _fit_and_score(cfg: TrainConfig, data: PreparedData, *, device: Any, stop_check: Any, last_epoch: bool = False) -> _Fit:
    """Train ``cfg`` on ``data`` (with its extra minority rows) and score its best epoch, or with
    ``last_epoch`` its last (with that epoch's validation probabilities); UserError where the rows
    cannot take the recipe."""
    fit_data = _with_rows(data, cfg)
    inputs = input_spec(cfg, fit_data)
    last: dict[str, np.ndarray] = {}
    trained = fit_members(cfg, fit_data, inputs, device=device, dist=DistContext(), folder=None,
                          epoch_log=EpochLogger(None, fit_data.label_names, quiet=True),
                          guard=CollapseGuard(fit_data.label_names, levers=Levers.of(cfg)),
                          checkpoints=RunCheckpoints(cfg=cfg, data=fit_data, inputs=inputs), stop_check=stop_check,
                          on_epoch=(lambda record, prob: last.update(prob=prob)) if last_epoch else None)
    result = trained.results[0]
    best = result.history[-1] if last_epoch else next((r for r in result.history if r.epoch == result.best_epoch), result.history[-1])
    return _Fit(fit_data, trained, inputs, float(best.val["macro"]["auprc"]), float(best.val_tuned["macro"]["f1"]),
                result.best_epoch, len(result.history), val_prob=last.get("prob"))


def search(base: TrainConfig, data: PreparedData, *, device: Any, started: float, progress: bool = False) -> SearchResult:
    """Run the search until the budget (counted from ``started``) or ``--max_trials``; re-score
    the leading trials on fresh splits where validation is small; return the best, trained."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if data.train_features is None or data.val_features is None:
        raise RuntimeError("prepare_data(keep_search_rows=True) is needed for the search")
    end = started + base.time_budget * (1.0 - FINAL_RESERVE)
    rounds, reason = resplit_rounds(base, data)
    # The re-scoring's time: what the fresh splits of the current candidates will cost (estimated
    # from their trials), at most RESPLIT_SHARE of the search; the search runs until then.
    most = (end - time.perf_counter()) * RESPLIT_SHARE if rounds else 0.0
    plan = {"reserve": most, "deadline": end - most}
    count = max(RESPLIT_CANDIDATES, base.ensemble_top)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5))
    for params in STARTING_POINTS:
        study.enqueue_trial(params)
    records: list[TrialRecord] = []
    finalists: list[Finalist] = []  # the best base.ensemble_top trials so far, best first
    leaders: dict[str, Finalist] = {}  # with re-scoring: the best trial of each model so far
    untuned: list[Finalist] = []  # with re-scoring: the starting points of the models without hidden layers

    def objective(trial: Any) -> float:
        trial_started = time.perf_counter()
        cfg, params = suggest(trial, base, data)
        stopped = {"reason": ""}
        # Models without hidden layers are cheap and climb slowly to their loss optimum: early
        # epochs say little about them, so the median of faster models does not stop them.
        choice_prunable = MODEL_CHOICES[params["model"]].simplicity >= 2

        def stop_check(record: Any) -> Optional[str]:
            trial.report(record.val["macro"]["auprc"], record.epoch)
            if time.perf_counter() > plan["deadline"]:
                stopped["reason"] = "budget"
            elif choice_prunable and trial.should_prune():
                stopped["reason"] = "pruned"
            return stopped["reason"] or None

        try:
            fitted = _fit_and_score(cfg, data, device=device, stop_check=stop_check)
        except UserError as exc:  # a recipe these rows cannot take (e.g. too few neighbours): a failed trial
            records.append(TrialRecord(trial.number, "failed", params, math.nan, math.nan, 0, 0,
                                       time.perf_counter() - trial_started))
            log.info("trial %d failed: %s", trial.number, exc)
            return float("nan")
        state = stopped["reason"] or "complete"
        record = TrialRecord(trial.number, state, params, fitted.auprc, fitted.f1, fitted.best_epoch, fitted.epochs,
                             time.perf_counter() - trial_started)
        records.append(record)
        log.info("trial %d (%s): val AUPRC %.4f, tuned F1 %.4f, %s", trial.number, state, fitted.auprc, fitted.f1, params)
        if not math.isnan(fitted.auprc):
            finalist = Finalist(record, cfg, fitted.data, fitted.trained, fitted.inputs)
            finalists.append(finalist)
            finalists.sort(key=lambda f: f.rank_key, reverse=True)
            del finalists[base.ensemble_top:]  # the others' models are not needed any more
            model = params["model"]
            if rounds and (model not in leaders or finalist.rank_key > leaders[model].rank_key):
                leaders[model] = finalist
            if rounds and finalist.untuned and MODEL_CHOICES[model].without_hidden_layers:
                untuned.append(finalist)
        if rounds:
            plan["reserve"] = resplit_reserve(_resplit_candidates(finalists, leaders, count, untuned), rounds, most)
            plan["deadline"] = end - plan["reserve"]
        if state == "pruned":
            raise optuna.TrialPruned()
        return fitted.auprc

    def out_of_time(study: Any, trial: Any) -> None:
        if time.perf_counter() > plan["deadline"]:
            study.stop()

    interrupted = False
    try:
        study.optimize(objective, n_trials=base.max_trials or None, timeout=max(1.0, end - time.perf_counter()),
                       callbacks=[out_of_time], show_progress_bar=progress, catch=())
    except KeyboardInterrupt:
        interrupted = True
        log.warning("search interrupted after %d trials: keeping the best so far", len(records))
    if not finalists:
        raise UserError(f"--preset auto: no trial finished within --time_budget {base.time_budget:g} s; raise it")
    done, rule_note, averaged_by_rule = 0, "", False
    if rounds and not interrupted:
        candidates = _resplit_candidates(finalists, leaders, count, untuned)
        # Without --ensemble_top, averages of the leading trials' models compete with each trial alone.
        splits: Optional[list] = [] if base.ensemble_top == 1 else None
        done, interrupted = _rescore(base, data, candidates, rounds, deadline=end, device=device,
                                     estimate=split_seconds(candidates), predictions=splits)
        if done:
            averages = average_options(candidates, splits, data.label_names) if splits is not None else []
            ordered, rule_note, take = _one_standard_error(candidates, averages)
            finalists = ordered[:max(base.ensemble_top, take)]
            averaged_by_rule = take > 1
        elif not interrupted:
            reason += (f"; no fresh split of the leading trials (about {split_seconds(candidates):.0f} s each) fitted in "
                       f"{RESPLIT_SHARE:.0%} of the time")
    if len(finalists) < base.ensemble_top:
        log.warning("--ensemble_top %d: only %d trial(s) finished within the budget; averaging those", base.ensemble_top,
                    len(finalists))
    result = _final_model(base, finalists, device=device)
    result.trials, result.interrupted = records, interrupted
    result.resplits, result.resplit_reason, result.rule_note = done, reason, rule_note
    result.averaged_by_rule = averaged_by_rule
    result.seconds = time.perf_counter() - started
    return result


def refit_seconds(record: TrialRecord) -> float:
    """What training a trial's configuration again for its best-epoch count should take: its
    seconds per epoch run (data preparation included) x that count."""
    return record.seconds * max(1, record.best_epoch) / max(1, record.epochs)


def resplit_reserve(candidates: list[Finalist], rounds: int, most: float) -> float:
    """Seconds to keep for re-scoring ``candidates``: as many whole fresh splits as fit in
    ``most`` (``rounds`` at most), each estimated from the trials' own seconds with a margin;
    0 when not even one fits (the search then chooses on validation alone)."""
    per_split = split_seconds(candidates) * RESPLIT_MARGIN
    if per_split <= 0:
        return most
    return min(rounds, math.floor(most / per_split)) * per_split


def split_seconds(candidates: list[Finalist]) -> float:
    """Estimated seconds of one fresh split: every candidate trained again (:func:`refit_seconds`)."""
    return sum(refit_seconds(c.record) for c in candidates)


def _resplit_candidates(finalists: list[Finalist], leaders: dict[str, Finalist], count: int,
                        untuned: list[Finalist]) -> list[Finalist]:
    """The trials to score again: the best trial of each model, and the best trials overall
    (for --ensemble_top), ``count`` of them by validation score; the best trials of the models
    without hidden layers (the simplest, which the one-standard-error rule prefers); and
    ``untuned``, those models with the balanced preset's recipe (the starting points: the best
    trial of a model is partly the luckiest of its recipes on the validation rows, a starting
    point was fixed before any of them was scored)."""
    unique = {f.record.number: f for f in [*finalists, *leaders.values()]}
    ranked = sorted(unique.values(), key=lambda f: f.rank_key, reverse=True)
    chosen = ranked[:count]
    simplest = [f for name, f in leaders.items() if MODEL_CHOICES[name].without_hidden_layers]
    out: dict[int, Finalist] = {}
    for f in [*chosen, *simplest, *untuned]:
        out.setdefault(f.record.number, f)
    return list(out.values())


def pooled_standard_error(candidates: list[Finalist]) -> tuple[float, int]:
    """(The standard error of one candidate's mean over the fresh splits, from the split-to-split
    variance pooled over every candidate scored on all of them (NaN with fewer than two splits),
    and how many candidates it pools).
    With three or four splits one candidate's own variance rests on two or three degrees of
    freedom, so which model the rule keeps would hinge on how alike one model's few scores
    happened to be; pooled over the candidates it rests on several times more."""
    rows = [c.record.resplit_auprc for c in candidates]
    rows = [r for r in rows if len(r) > 1 and np.isfinite(r).all()]
    if not rows:
        return math.nan, 0
    splits = min(len(r) for r in rows)
    variance = float(np.mean([np.var(r[:splits], ddof=1) for r in rows]))
    return math.sqrt(variance / splits), len(rows)


@dataclass
class Option:
    """What the one-standard-error rule chooses among: one re-scored trial, or the average of
    several re-scored trials' models (their probabilities averaged, as the final model would)."""

    members: list[Finalist]
    scores: list[float]  # validation macro AUPRC on each fresh split

    @classmethod
    def single(cls, finalist: Finalist) -> "Option":
        return cls([finalist], list(finalist.record.resplit_auprc))

    @property
    def mean(self) -> float:
        """Over the fresh splits; -inf where a split failed (it ranks last)."""
        return float(np.mean(self.scores)) if self.scores and np.isfinite(self.scores).all() else -math.inf

    @property
    def simplicity(self) -> tuple[int, int, int]:
        """Lower is simpler: the most complex member's order, then how many models are averaged
        (an average of a linear and an additive model is simpler than one network with hidden
        layers), then how many of them had their recipe chosen by the search (a starting point's
        was fixed before the search: of two linear models, the balanced preset's recipe is the simpler)."""
        return max(m.simplicity for m in self.members), len(self.members), sum(not m.untuned for m in self.members)

    def describe(self) -> str:
        if len(self.members) == 1:
            member = self.members[0]
            untuned = ", the balanced recipe" if member.untuned else ""
            return f"trial {member.record.number} ({member.record.params['model']}{untuned})"
        numbers = ", ".join(str(m.record.number) for m in self.members)
        return f"the average of trials {numbers} ({', '.join(m.record.params['model'] for m in self.members)})"


def average_options(candidates: list[Finalist], splits: list[tuple[np.ndarray, list[Optional[np.ndarray]]]],
                    label_names: list[str]) -> list[Option]:
    """The averages of the 2, 3, ... best candidates by mean over the fresh splits, each scored
    on every split from the candidates' own validation probabilities there (``splits``: each
    split's validation labels and, per candidate in order, its probabilities or None where it
    failed). No training: the fresh splits already hold every prediction needed."""
    if not splits:
        return []
    ranked = [i for i in sorted(range(len(candidates)), key=lambda i: candidates[i].resplit_key, reverse=True)
              if np.isfinite(candidates[i].record.mean_auprc)]
    options = []
    for size in range(2, len(ranked) + 1):
        members = ranked[:size]
        scores = []
        for y, probs in splits:
            parts = [probs[i] for i in members]
            scores.append(math.nan if any(p is None for p in parts) else
                          float(label_metrics(y, np.mean(parts, axis=0), 0.5, label_names)["macro"]["auprc"]))
        options.append(Option([candidates[i] for i in members], scores))
    return options


def _one_standard_error(candidates: list[Finalist], averages: list[Option] = ()) -> tuple[list[Finalist], str, int]:
    """The candidates in the order the final model takes them, and how many of them it averages:
    first the simplest option (a candidate alone, or one of ``averages``) whose mean validation
    AUPRC over the splits is within one standard error (pooled over the candidates) of the best
    mean (the one-standard-error rule: a more complex model must beat a simpler one by more than
    the noise of the splits), then the other candidates by mean."""
    by_mean = sorted(candidates, key=lambda f: f.resplit_key, reverse=True)
    options = [Option.single(f) for f in by_mean] + list(averages)
    best = max(options, key=lambda o: o.mean)  # of equal means the first: a single trial before an average
    standard_error, pooled = pooled_standard_error(candidates)
    if math.isnan(standard_error):  # one fresh split: no noise to weigh, the best score is chosen
        pick, note = best, ""
    else:
        close = [o for o in options if o.mean >= best.mean - standard_error]
        pick = min(close, key=lambda o: (o.simplicity, -o.mean))
        note = (f"The best mean is {best.describe()}'s ({best.mean:.4f}; standard error {standard_error:.4f} over "
                f"{len(best.scores)} fresh splits, pooled over {pooled} trials)")
        if pick is not best:
            note += (f"; {pick.describe()} ({pick.mean:.4f}) is within one standard error of it and simpler, so it is "
                     "chosen (the one-standard-error rule).")
            log.info("one-standard-error rule: %s", note)
        else:
            note += "; no simpler model is within one standard error of it, so it is chosen."
        if averages:
            note += " Averages of the leading trials' models on the same splits: " + "; ".join(
                f"trials {' + '.join(str(m.record.number) for m in o.members)} {o.mean:.4f}" for o in averages) + "."
    return [*pick.members, *[f for f in by_mean if all(f is not m for m in pick.members)]], note, len(pick.members)


def _rescore(base: TrainConfig, data: PreparedData, candidates: list[Finalist], rounds: int, *, deadline: float,
             device: Any, estimate: float, predictions: Optional[list] = None) -> tuple[int, bool]:
    """Train every candidate's configuration on ``rounds`` fresh splits, one split at a time; a
    split is not begun when the last one (the first: ``estimate`` seconds) would not fit before
    the deadline, and one the deadline (or Ctrl-C) cuts short is not counted. Returns (splits
    done, interrupted). ``predictions``, a list: each counted split's validation labels and the
    candidates' last-epoch validation probabilities (None where one failed) are appended to it."""
    log.info("scoring trials %s again on up to %d fresh train/validation splits", [c.record.number for c in candidates], rounds)
    out_of_time = {"hit": False}

    def stop_check(record: Any) -> Optional[str]:
        if time.perf_counter() > deadline:
            out_of_time["hit"] = True
            return "budget"
        return None

    last_split = estimate
    for done in range(rounds):
        if time.perf_counter() + last_split > deadline:
            log.info("no time for fresh split %d (about %.0f s): choosing on %d", done + 1, last_split, done)
            return done, False
        split_started = time.perf_counter()
        fold = resplit(data, seed=base.seed + 1000 * (done + 1))
        scores, probs = [], []
        try:
            for candidate in candidates:
                try:
                    # The trial's own number of epochs, no early stopping: the fresh validation
                    # rows choose nothing, so their AUPRC is an honest estimate (a best epoch's
                    # is the maximum over epochs, biased up most for the models that vary most).
                    epochs = max(1, candidate.record.best_epoch)
                    fixed = replace(candidate.cfg, epochs=epochs, early_stop_patience=0)
                    fitted = _fit_and_score(fixed, fold, device=device, stop_check=stop_check, last_epoch=True)
                    scores.append((fitted.auprc, fitted.f1))
                    probs.append(fitted.val_prob)
                except UserError as exc:
                    log.info("trial %d on fresh split %d failed: %s", candidate.record.number, done + 1, exc)
                    scores.append((math.nan, math.nan))
                    probs.append(None)
                if out_of_time["hit"]:
                    log.info("fresh split %d cut short by the budget: not counted", done + 1)
                    return done, False
        except KeyboardInterrupt:
            log.warning("re-scoring interrupted: choosing on the %d fresh split(s) finished", done)
            return done, True
        last_split = time.perf_counter() - split_started
        if predictions is not None:
            predictions.append((fold.labels["val"], probs))
        for candidate, (auprc, f1) in zip(candidates, scores):
            candidate.record.resplit_auprc.append(auprc)
            candidate.record.resplit_f1.append(f1)
        log.info("fresh split %d: %s", done + 1, ", ".join(f"trial {c.record.number} {a:.4f}" for c, (a, _) in zip(candidates, scores)))
    return rounds, False


def _final_model(base: TrainConfig, finalists: list[Finalist], *, device: Any) -> SearchResult:
    """The best trial's model, or the average of the finalists' models (``--ensemble_top``, or an
    average the one-standard-error rule chose; the best trial's configuration and data describe
    the run; every member keeps its own model)."""
    best = finalists[0]
    cfg = replace(best.cfg, ensemble_top=max(base.ensemble_top, len(finalists)))
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
    order = ["resplit_auprc", "resplit_f1"] if result.resplits else []
    table = result.table().sort_values([*order, "val_auprc", "val_f1_tuned"], ascending=False, na_position="last")
    best = result.cfg
    lines = [f"# Search ({len(result.trials)} trials, {result.seconds:.0f} s{', interrupted' if result.interrupted else ''})", "",
             f"Best trial ({result.chosen[0]}): {result.describe_choice()}, sampling "
             f"{best.weight_method if best.use_weighted_sampling else 'none'}, loss {best.loss_type}, "
             f"class weights {best.class_weight_method} x {best.class_weight_multiplier:.2f}, more rows "
             f"{best.resample if best.resample != 'none' else best.generator}, lr {best.lr:.2g}, weight decay {best.weight_decay:.2g}.", ""]
    if len(result.chosen) > 1:
        why = ("their average scored best on the fresh splits, below" if result.averaged_by_rule else
               f"the {len(result.chosen)} best trials; --ensemble_top {best.ensemble_top}")
        lines += [f"The final model averages the models of trials {', '.join(map(str, result.chosen))} ({why}): validation "
                  f"macro AUPRC {result.ensemble_val_auprc:.4f} (best single trial {table['val_auprc'].max():.4f}).", ""]
    lines += ["Scored on validation rows only (best epoch's macro AUPRC; ties: tuned F1); the test split never reaches the search.", ""]
    if result.resplits:
        rescored = [str(t.number) for t in result.trials if t.resplit_auprc]
        lines += [f"Chosen on {result.resplits} fresh train/validation split(s) of the same non-test rows (validation rows drawn from the training split) "
                  f"({result.resplit_reason}): trials {', '.join(rescored)}, the leading trials of each model and the balanced "
                  "recipe's linear and additive models, were trained "
                  "again on each for their own best epoch count, without early stopping, and scored at the last epoch; "
                  "`resplit_auprc` and `resplit_f1` are the means over the fresh splits (`resplit_se`: the standard "
                  "error of each trial's AUPRC mean). Of these, the simplest model within one standard error of the best mean "
                  "is chosen, the split-to-split variance pooled over the trials (models without hidden layers are simpler; of "
                  "two alike, the balanced recipe, which no validation score chose).",
                  ""]
        if result.rule_note:
            lines += [result.rule_note, ""]
    elif result.resplit_reason:
        lines += [f"Chosen on the validation split alone ({result.resplit_reason}).", ""]
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
