"""The training configuration: one typed dataclass, presets layered over it, the CLI generated from it.

Precedence, lowest to highest: dataclass defaults -> ``--preset``/``--config`` file -> flags given on
the command line. Preset files live in ``configs/<name>.toml`` and hold only what they change.
"""

import argparse
import dataclasses
import difflib
import json
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import argparse_dataclass

from .augmentation import AUGMENT_STRATEGIES
from .calibration import CALIBRATIONS
from .class_weights import CLASS_WEIGHT_METHODS
from .errors import UserError
from .generators import GENERATORS
from .losses import LOSSES
from .resampling import RESAMPLERS
from .sampling import WEIGHT_METHODS
from .thresholds import threshold_metric_forms, threshold_objective
from .early_stopping import EARLY_STOP_METRICS
from .training import LR_SCHEDULERS, OPTIMIZERS
from models import MODELS, NUM_EMBEDDINGS, model_settings, settings_help

__all__ = [
    "TrainConfig",
    "PRESET_DIR",
    "available_presets",
    "load_config_file",
    "parse_config",
    "build_arg_parser",
]

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
AUTO_PRESET, AUTO_BASE = "auto", "balanced"  # --preset auto searches over the balanced preset
_MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit; every member's seed must fit


COMPARE_CONFIGURED = ""  # --compare with no methods: the augmentation the other flags ask for
COMPARE_METHODS = [*RESAMPLERS.names(), *GENERATORS.names()]  # what --compare METHOD,... may name


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A config field carrying its CLI help; ``choices``/``nargs`` pass through to argparse."""
    metadata = {"help": help, **extra}
    if "choices" in extra:
        # One short metavar, the choices listed once in the help (not once per spelling).
        metadata.update(metavar="NAME", help=f"{help}: {' | '.join(extra['choices'])}")
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _switch(default: bool, help: str) -> Any:
    """A boolean flag; the parser gives it both --x and --no_x, so the CLI can undo a preset."""
    return field(default=default, metadata={"help": help})


def _spellings(name: str, prefix: str = "") -> list[str]:
    flags = [f"--{prefix}{name}", f"--{prefix}{name}".replace("_", "-")]
    return list(dict.fromkeys(flags))


def _with_flag_spellings(cls: type) -> type:
    """Give every field the flags --snake_case and --kebab-case (argparse-dataclass reads
    ``metadata["args"]``). Booleans defaulting to True are switched off by --no_<name>."""
    for name, value in list(vars(cls).items()):
        if isinstance(value, dataclasses.Field):
            is_on_switch = cls.__annotations__.get(name) is bool
            prefix = "no_" if is_on_switch and value.default is True else ""
            extra = {"args": _spellings(name, prefix)}
            if prefix:
                extra["help"] = f"turn off: {value.metadata['help']}"
            value.metadata = types.MappingProxyType({**value.metadata, **extra})
    return cls


@dataclass
@_with_flag_spellings
class TrainConfig:
    """Everything a training run depends on. Written to ``<output_dir>/config.json``."""

    # -- where things come from and go -------------------------------------------------------
    preset: Optional[str] = _opt(None, "named preset from configs/ (balanced, aggressive, very_aggressive, none), or auto: search models and recipes within --time_budget")
    config: Optional[str] = _opt(None, "a TOML or JSON file of settings, layered like a preset")
    csv_path: Optional[str] = _opt(None, "CSV or .parquet file; omitted = built-in demo cohort")
    output_dir: str = _opt("checkpoints/run", "run folder: config, checkpoints, metrics, TensorBoard logs (a new or empty folder, or an earlier run's with --overwrite)")
    overwrite: bool = _switch(False, "replace the earlier run in --output_dir: its own files are removed once this run's input has been read; nothing else in the folder is touched")
    resume: Optional[str] = _opt(None, "continue the interrupted run in this folder from its last.pt, with its own config.json (only --quiet and --num_threads may be given too)")
    target_cols: Optional[str] = _opt(None, "comma-separated outcome columns (default: every 'label_*' column)")
    id_col: Optional[str] = _opt(None, "row identifier: kept out of the features, written with predictions")
    drop_cols: Optional[str] = _opt(None, "comma-separated columns to ignore")
    categorical_cols: Optional[str] = _opt(None, "comma-separated columns to treat as categorical whatever their type")
    min_category_count: int = _opt(10, "levels seen fewer times in training go to the 'other' bucket")
    demo_rows: int = _opt(20_000, "rows of the built-in demo cohort when no --csv_path is given")

    # -- splitting -------------------------------------------------------------------------
    val_fraction: float = _opt(0.15, "share of rows for validation (early stopping, thresholds)")
    test_fraction: float = _opt(0.15, "share of rows held out for the final report (may be 0)")
    use_stratified_split: bool = _switch(False, "keep every label's prevalence in every split (iterative stratification for multi-label)")
    seed: int = _opt(42, "seed for splitting, sampling, initialisation: the whole run is reproducible")

    # -- imbalance levers ------------------------------------------------------------------
    use_weighted_sampling: bool = _switch(False, "draw training batches with replacement by row weight")
    weight_method: str = _opt("balanced", "row weights for --use_weighted_sampling", choices=WEIGHT_METHODS.names())
    class_weight_method: str = _opt("none", "per-label positive weight", choices=CLASS_WEIGHT_METHODS.names())
    class_weight_multiplier: float = _opt(1.0, "multiplies every class weight")
    loss_type: str = _opt("bce", "training loss", choices=LOSSES.names())
    focal_gamma: float = _opt(2.0, "focal loss focusing parameter")
    focal_alpha: Optional[float] = _opt(None, "focal positive-class weight in (0,1); default w/(1+w) from the class weight w")
    early_stop_metric: str = _opt("macro_f1", "validation metric that picks the best epoch", choices=EARLY_STOP_METRICS.names())
    early_stop_patience: int = _opt(10, "stop after this many epochs without improvement (0 = never stop early)")
    min_delta: float = _opt(0.0, "smallest change that counts as an improvement")
    optimize_thresholds: bool = _switch(False, "tune each label's decision threshold on validation after training")
    threshold_metric: str = _opt("f1", "objective for threshold tuning: " + ", ".join(threshold_metric_forms())
                                 + " (P, R in (0, 1]; C: a missed positive costs C false alarms)")
    calibration: str = _opt("platt", "turn scores into probabilities after training, fitted on validation: none, prior (undo the "
                            "recipe's shift, closed form), temperature, platt, isotonic", choices=CALIBRATIONS.names())
    collapse_patience: int = _opt(3, "warn after this many epochs with no (or only) positive predictions for a label")

    # -- more minority rows (training split only) -------------------------------------------
    resample: str = _opt("none", "resample the training split (imbalanced-learn; mlsmote for multi-label)", choices=["none", *RESAMPLERS.names()])
    resample_ratio: float = _opt(1.0, "minority/majority ratio after resampling (e.g. 0.1, 0.25, 1.0)")
    resample_k_neighbors: int = _opt(5, "neighbours for the SMOTE family and MLSMOTE")
    generated_csv: Optional[str] = _opt(None, "CSV/Parquet of generated minority rows to mix into training")
    generator: str = _opt("none", "built-in generator of minority rows, fitted on training positives", choices=["none", *GENERATORS.names()])
    generator_epochs: Optional[int] = _opt(None, "--generator ctgan/tvae: training epochs (default 300, sized for a CPU)")
    augment_strategy: str = _opt("conservative", "generated rows mixed in per label: conservative doubles the positives (adds n_pos), moderate quadruples them (adds 3 x n_pos), full balances the classes", choices=AUGMENT_STRATEGIES.names())
    generated_ratio: Optional[float] = _opt(None, "mix in this many times the positive count instead of --augment_strategy")
    onehot_groups: str = _opt("", "comma-separated prefixes of one-hot column groups (PREFIX_<level>) that resamplers and generators treat as one categorical (groups with exactly one column set per row are found without it)")
    quality_gate: bool = _switch(False, "refuse to train when synthetic rows fail the quality limits below")
    gate_max_auroc: float = _opt(0.85, "quality gate: highest allowed real-vs-synthetic discriminative AUROC")
    gate_max_near_copies: float = _opt(0.05, "quality gate: highest allowed share of near-copies of real rows")
    compare: Optional[str] = _opt(None, "train without and with augmentation on the same split and seed and compare on test: --compare alone compares the augmentation these flags ask for; --compare METHOD,... (resamplers and generators, e.g. smotenc,gaussian_copula,ctgan) trains one run per method", metavar="[METHOD,...]")

    # -- model -----------------------------------------------------------------------------
    model: str = _opt("mlp", "architecture (its settings: --model_args, listed at the end of --help)", choices=MODELS.names())
    model_args: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the model's own settings as key=value,... (lists as [a,b]); a config file's [model] table sets them too",
        "type": lambda text: parse_model_args(text), "metavar": "KEY=VALUE,..."})
    num_embeddings: str = _opt("auto", "numeric-feature embeddings (auto = the model's default, see below)", choices=["auto", *NUM_EMBEDDINGS])
    embedding_bins: str = _opt("quantile", "bins of piecewise_linear embeddings: training quantiles, or target-aware tree splits", choices=["quantile", "tree"])
    n_bins: int = _opt(48, "piecewise_linear embeddings: most bins per numeric column")
    d_embedding: int = _opt(16, "width of each numeric column's embedding")
    ensemble: int = _opt(1, "train this many members with seeds seed, seed+1, ... and average their probabilities")

    # -- optimisation ----------------------------------------------------------------------
    epochs: int = _opt(30, "maximum number of epochs")
    batch_size: int = _opt(256, "rows per training batch")
    lr: float = _opt(1e-3, "learning rate")
    weight_decay: float = _opt(1e-4, "L2 weight decay")
    optimizer: str = _opt("adam", "optimizer", choices=OPTIMIZERS.names())
    lr_scheduler: str = _opt("none", "learning-rate schedule", choices=LR_SCHEDULERS.names())
    grad_clip: float = _opt(0.0, "clip the gradient norm to this value (0 = off)")
    device: str = _opt("auto", "where to train (auto = cuda when available)", choices=["auto", "cpu", "cuda"])
    amp: bool = _switch(False, "bf16 autocast for the model's forward pass (losses stay float32)")
    num_threads: int = _opt(0, "torch CPU threads (0 = auto: 1, fastest for small MLPs on few cores)")

    # -- reporting -------------------------------------------------------------------------
    slice_cols: Optional[str] = _opt(None, "comma-separated feature columns to report subgroups by (e.g. sex,age): per-group recall, "
                                     "precision, false-positive rate, AUROC; equalized-odds and demographic-parity differences")
    slice_bins: int = _opt(4, "--slice_cols: numeric columns are cut into this many quantile bins of the training rows")
    slice_min_positives: int = _opt(10, "--slice_cols: groups with fewer positives are flagged, not scored")
    bootstrap: int = _opt(1000, "stratified bootstrap resamples for 95 percent intervals of the held-out metrics (0 = none)")
    baselines: str = _opt("logistic", "comma-separated baselines scored on the same split (logistic, hgb, prior) or 'none'")
    plots: bool = _switch(True, "write PNG plots (curves, calibration, thresholds, training, subgroups) under <output_dir>/plots")
    tensorboard: bool = _switch(True, "write TensorBoard logs under <output_dir>/tensorboard")
    quiet: bool = _switch(False, "no progress bar and no per-epoch lines")

    # -- --preset auto -----------------------------------------------------------------------
    time_budget: float = _opt(600.0, "--preset auto: seconds for the whole run, search and final scoring (held within 10 percent)")
    max_trials: int = _opt(0, "--preset auto: stop the search after this many trials (0 = as many as the budget allows)")
    ensemble_top: int = _opt(1, "--preset auto: average the models of the K best trials (different models and recipes) in one checkpoint")
    resplits: Optional[int] = _opt(None, "--preset auto: score the leading trials again on N fresh train/validation splits of the non-test rows (validation rows drawn from the training split) and choose by the mean (default: 4 when the rarest label has fewer than 100 validation positives, else 0)")

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

        if isinstance(self.compare, bool):  # config.json of runs before --compare took methods, or a config file's switch
            self.compare = COMPARE_CONFIGURED if self.compare else None

        for name, registry in (
            ("weight_method", WEIGHT_METHODS),
            ("class_weight_method", CLASS_WEIGHT_METHODS),
            ("loss_type", LOSSES),
            ("early_stop_metric", EARLY_STOP_METRICS),
            ("model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("lr_scheduler", LR_SCHEDULERS),
            ("calibration", CALIBRATIONS),
        ):
            value = getattr(self, name)
            need(value in registry, f"--{name}: unknown {registry.kind} '{value}'; choose from {', '.join(registry.names())}")
        for name, choices in (
            ("device", ("auto", "cpu", "cuda")), ("num_embeddings", ("auto", *NUM_EMBEDDINGS)),
            ("embedding_bins", ("quantile", "tree")),
            ("resample", ("none", *RESAMPLERS.names())), ("generator", ("none", *GENERATORS.names())),
            ("augment_strategy", tuple(AUGMENT_STRATEGIES.names())),
        ):
            value = getattr(self, name)
            need(value in choices, f"--{name}: unknown value '{value}'; choose from {', '.join(choices)}")
        threshold_objective(self.threshold_metric)  # a UserError names the valid forms
        need(0.0 < self.val_fraction < 1.0, f"--val_fraction must be in (0, 1), got {self.val_fraction}")
        need(0.0 <= self.test_fraction < 1.0, f"--test_fraction must be in [0, 1), got {self.test_fraction}")
        need(self.val_fraction + self.test_fraction < 0.9,
             f"--val_fraction + --test_fraction = {self.val_fraction + self.test_fraction:g} leaves too little to train on; keep it below 0.9")
        for name in ("epochs", "batch_size"):
            need(getattr(self, name) >= 1, f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("early_stop_patience", "collapse_patience", "num_threads", "min_category_count", "min_delta", "grad_clip", "weight_decay", "focal_gamma"):
            need(getattr(self, name) >= 0, f"--{name} must be >= 0, got {getattr(self, name)}")
        for name in ("ensemble", "d_embedding"):
            need(getattr(self, name) >= 1, f"--{name} must be >= 1, got {getattr(self, name)}")
        need(self.n_bins >= 2, f"--n_bins must be >= 2, got {self.n_bins}")
        need(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        need(self.class_weight_multiplier > 0, f"--class_weight_multiplier must be > 0, got {self.class_weight_multiplier}")
        need(self.focal_alpha is None or 0.0 < self.focal_alpha < 1.0, f"--focal_alpha must be in (0, 1), got {self.focal_alpha}")
        need(self.resample_ratio > 0, f"--resample_ratio must be > 0, got {self.resample_ratio}")
        need(self.resample_k_neighbors >= 1, f"--resample_k_neighbors must be >= 1, got {self.resample_k_neighbors}")
        need(self.generator_epochs is None or self.generator_epochs >= 1, f"--generator_epochs must be >= 1, got {self.generator_epochs}")
        need(self.generator_epochs is None or self.generator in ("ctgan", "tvae"),
             "--generator_epochs sets the training of --generator ctgan or tvae; the other generators do not train")
        need(self.generated_ratio is None or self.generated_ratio > 0, f"--generated_ratio must be > 0, got {self.generated_ratio}")
        need(self.generated_csv is None or self.generator == "none",
             "--generated_csv and --generator both add generated rows; choose one")
        need(0.5 <= self.gate_max_auroc <= 1.0, f"--gate_max_auroc must be in [0.5, 1], got {self.gate_max_auroc}")
        need(0.0 <= self.gate_max_near_copies <= 1.0, f"--gate_max_near_copies must be in [0, 1], got {self.gate_max_near_copies}")
        need(self.compare != COMPARE_CONFIGURED or self.augments,
             "--compare compares training without and with augmentation: also pass --resample, --generator or --generated_csv, "
             "or name the methods (--compare smotenc,gaussian_copula)")
        if self.compare:
            methods = split_list(self.compare)
            unknown = [m for m in methods if m not in COMPARE_METHODS]
            need(not unknown, f"--compare: unknown method(s) {', '.join(unknown)}; choose from {', '.join(COMPARE_METHODS)}")
            need(len(set(methods)) == len(methods), f"--compare: {self.compare!r} names a method twice")
            need(not self.augments, "--compare METHOD,... names the methods to compare: drop --resample, --generator and --generated_csv")
        need(0 <= self.seed and self.seed + self.ensemble - 1 <= _MAX_SEED,
             f"--seed must be an integer in [0, {_MAX_SEED - self.ensemble + 1}], got {self.seed}")
        need(self.time_budget > 0, f"--time_budget must be > 0 seconds, got {self.time_budget}")
        need(self.max_trials >= 0, f"--max_trials must be >= 0, got {self.max_trials}")
        need(self.slice_bins >= 2, f"--slice_bins must be >= 2, got {self.slice_bins}")
        need(self.slice_min_positives >= 1, f"--slice_min_positives must be >= 1, got {self.slice_min_positives}")
        need(self.bootstrap == 0 or self.bootstrap >= 100,
             f"--bootstrap must be 0 (no intervals) or at least 100 resamples, got {self.bootstrap}")
        need(self.ensemble_top >= 1, f"--ensemble_top must be >= 1, got {self.ensemble_top}")
        need(self.resplits is None or self.resplits >= 0, f"--resplits must be >= 0, got {self.resplits}")
        need(self.ensemble_top == 1 or self.preset == AUTO_PRESET,
             "--ensemble_top averages the best trials of a search: use it with --preset auto (or --ensemble N for one model)")
        need(self.demo_rows >= 500, f"--demo_rows must be >= 500, got {self.demo_rows}")
        need(isinstance(self.model_args, dict), f"--model_args must be key=value pairs, got {self.model_args!r}")
        try:
            model_settings(self.model, self.model_args)
        except UserError as exc:
            raise UserError(f"--model_args: {exc}") from None
        from .baselines import BASELINES  # deferred: sklearn import is only needed when a config is built

        for name in self.baseline_names:
            need(name in BASELINES, f"--baselines: unknown baseline '{name}'; choose from {', '.join(BASELINES.names())} or none")

    def advisories(self) -> list[str]:
        """Settings that are legal but probably not what the user meant."""
        notes = []
        if self.loss_type == "bce" and self.class_weight_method != "none":
            notes.append(f"--class_weight_method {self.class_weight_method} has no effect with --loss_type bce; use weighted_bce, logit_adjusted or focal")
        if self.loss_type == "focal" and self.focal_alpha is not None and self.class_weight_method != "none":
            notes.append("--focal_alpha overrides the alpha derived from --class_weight_method")
        if self.onehot_groups and not self.augments and self.preset != AUTO_PRESET:
            notes.append("--onehot_groups only shapes generated and resampled rows; add --resample or --generator, or drop it")
        return notes

    @property
    def augments(self) -> bool:
        """Whether the training split gets synthetic or resampled rows."""
        return self.resample != "none" or self.generator != "none" or self.generated_csv is not None

    @property
    def model_settings(self) -> Any:
        """The model's settings dataclass: its defaults with --model_args over them."""
        return model_settings(self.model, self.model_args)

    @property
    def resolved_num_embeddings(self) -> str:
        """--num_embeddings, or the model's own default for 'auto'."""
        return MODELS.get(self.model).num_embeddings if self.num_embeddings == "auto" else self.num_embeddings

    @property
    def baseline_names(self) -> list[str]:
        return [] if self.baselines.strip() in ("", "none") else split_list(self.baselines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_list(value: Optional[str]) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (None -> [])."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def parse_model_args(text: str) -> dict[str, Any]:
    """'d_block=256,k=16,hidden_sizes=[128,64],norm=layer' -> a dict of typed values.

    Each value is read as a TOML value (numbers, true/false, [lists], "strings"); anything else
    is taken as a bare string. Commas inside brackets or quotes do not split pairs.
    """
    pairs, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        else:
            depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0 and not quote:
            pairs.append(current)
            current = ""
        else:
            current += char
    pairs.append(current)
    values: dict[str, Any] = {}
    for pair in (p.strip() for p in pairs):
        if not pair:
            continue
        key, sep, raw = pair.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise argparse.ArgumentTypeError(f"'{pair}' is not key=value; write e.g. --model_args d_block=256,k=16")
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = raw
    return values


# ---------------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------------

_FIELDS = {f.name: f for f in fields(TrainConfig)}
_FILE_ONLY_FORBIDDEN = {"preset", "config"}



def available_presets() -> list[str]:
    return sorted([*(p.stem for p in PRESET_DIR.glob("*.toml")), AUTO_PRESET])


def _check_type(key: str, value: Any, source: str) -> Any:
    """Values from a file must already have the field's type (ints may stand for floats)."""
    hint = typing.get_type_hints(TrainConfig)[key]
    optional = type(None) in typing.get_args(hint)
    if optional:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if value is None and optional:
        return None
    origin = typing.get_origin(hint)
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            return list(value)
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint is bool and isinstance(value, bool):
        return value
    elif hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise UserError(f"{source}: key '{key}' must be {expected}, got {value!r}")


def load_config_file(path: "str | Path") -> dict[str, Any]:
    """Read a preset or user config (TOML or JSON); unknown keys and wrong types are errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config: no such file '{path}'; pass a .toml or .json file")
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: cannot parse ({exc}); fix the file's syntax") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a table of settings at the top level")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "model" and isinstance(value, dict):  # a [model] table: name = "...", then its settings
            table = dict(value)
            if "name" in table:
                values["model"] = _check_type("model", table.pop("name"), f"{path} [model] name")
            values["model_args"] = {**values.get("model_args", {}), **table}
            continue
        if key not in _FIELDS or key in _FILE_ONLY_FORBIDDEN:
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{path}: unknown key '{key}'{hint}; valid keys: {', '.join(k for k in _FIELDS if k not in _FILE_ONLY_FORBIDDEN)}")
        checked = _check_type(key, value, str(path))
        values[key] = {**values.get(key, {}), **checked} if key == "model_args" else checked
    return values


def resolve_preset(name: str) -> Path:
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"--preset: unknown preset '{name}'; choose from {', '.join(available_presets())}")
    return path


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class _Parser(argparse_dataclass.ArgumentParser):
    """argparse-dataclass parser whose errors are one line naming the flag and the fix."""

    given: Sequence[str] = ()  # the command line being parsed, set by parse_config: names the flag before a stray value

    def error(self, message: str) -> typing.NoReturn:  # argparse's hook for every parse failure
        if message.startswith("unrecognized arguments"):
            extra = message.split(":", 1)[1].split()
            flags = sorted({s for a in self._actions for s in a.option_strings if s.startswith("--") and (s == _canonical(s))})
            problems = []
            unknown = [a for a in extra if a.startswith("-")]
            if unknown:
                hints = []
                for flag in unknown:
                    close = difflib.get_close_matches(_canonical(flag.split("=")[0]), flags, n=1)
                    hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
                problems.append(f"unknown flag {', '.join(hints)}")
            for value in (a for a in extra if not a.startswith("-")):
                problems.append(self._stray(value))
            message = "; ".join(problems) + (f"; valid flags: {' '.join(flags)}" if unknown else "")
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _stray(self, value: str) -> str:
        """A value no flag takes: name the flag before it where that flag takes none (a yes/no switch)."""
        switches = {s for a in self._actions if a.nargs == 0 for s in a.option_strings}
        before = next((self.given[i - 1] for i in range(1, len(self.given))
                       if self.given[i] == value and self.given[i - 1] in switches), None)
        if before is not None:
            name = _canonical(before)[2:].removeprefix("no_")
            return f"{before} takes no value, got {value!r}: write --{name} to turn it on or --no_{name} to turn it off"
        return f"unexpected value {value!r}: every value follows its flag (--flag VALUE)"


def _canonical(flag: str) -> str:
    return "--" + flag.lstrip("-").replace("-", "_")


def compare_methods(cfg: TrainConfig) -> list[str]:
    """The augmentation runs of --compare, by name: the listed methods, or "augmented" (the flags' own)."""
    return split_list(cfg.compare) if cfg.compare else ["augmented"]


def build_arg_parser(prog: Optional[str] = None) -> _Parser:
    """The CLI, generated from TrainConfig: every field is a flag spelled with _ or -."""
    parser = _Parser(
        TrainConfig,
        prog=prog,
        description="Train a neural classifier on an imbalanced binary or multi-label tabular outcome.",
        epilog="Flags accept --snake_case and --kebab-case spellings. Precedence: defaults < --preset/--config < flags.\n\n"
               "Models and their settings (--model NAME --model_args key=value,...; or a [model] table in a config file):\n"
               + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    for f in fields(TrainConfig):
        if f.type is bool:
            # argparse-dataclass makes one side of each switch (--x for False defaults, --no_x
            # for True ones); add the other so a preset's setting can be undone from the CLI.
            other, action = (_spellings(f.name), "store_true") if f.default else (_spellings(f.name, "no_"), "store_false")
            parser.add_argument(*other, dest=f.name, action=action, default=dataclasses.MISSING, help=argparse.SUPPRESS)
    for action in parser._actions:  # --compare takes an optional list: alone, it compares the flags' own augmentation
        if action.dest == "compare":
            action.nargs, action.const = "?", COMPARE_CONFIGURED
    return parser


def parse_config(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Parse the command line into a resolved TrainConfig.

    Returns the config and the settings that came from the command line explicitly (so callers
    can record which layer each value came from).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_arg_parser(prog)
    parser.given = argv
    # The base class's parse: argparse-dataclass's own fills in defaults, which would hide
    # which flags were given and so break the preset layering.
    namespace, extra = argparse.ArgumentParser.parse_known_args(parser, argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    explicit = {k: v for k, v in vars(namespace).items() if v is not dataclasses.MISSING}
    if explicit.get("resume") is not None:
        return _resumed_config(explicit), explicit

    layered: dict[str, Any] = {}
    if explicit.get("preset") is not None:
        # auto searches its own recipes; the balanced preset is what it leaves unsearched.
        name = AUTO_BASE if explicit["preset"] == AUTO_PRESET else explicit["preset"]
        _merge_layer(layered, load_config_file(resolve_preset(name)))
    if explicit.get("config") is not None:
        _merge_layer(layered, load_config_file(explicit["config"]))
    _merge_layer(layered, explicit)
    return TrainConfig(**layered), explicit


RESUME_MAY_CHANGE = ("quiet", "num_threads")


def _resumed_config(explicit: dict[str, Any]) -> TrainConfig:
    """--resume DIR: the interrupted run's own config.json, with only what may differ on resuming."""
    folder = Path(explicit["resume"])
    given = sorted(k for k in explicit if k not in ("resume", *RESUME_MAY_CHANGE))
    if given:
        raise UserError(f"--resume continues a run with the settings in its config.json; drop --{given[0]} "
                        f"(only {', '.join('--' + k for k in RESUME_MAY_CHANGE)} may be given with it)")
    path = folder / "config.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"--resume '{folder}': no readable config.json there; pass the run folder of an interrupted run") from None
    if not isinstance(saved, dict) or not set(saved) <= set(_FIELDS):
        raise UserError(f"--resume '{folder}': its config.json was not written by this version of the toolkit; train anew")
    saved.update(resume=str(folder), output_dir=str(folder), overwrite=False,
                 **{k: explicit[k] for k in RESUME_MAY_CHANGE if k in explicit})
    try:
        return TrainConfig(**saved)
    except TypeError as exc:
        raise UserError(f"--resume '{folder}': its config.json is incomplete ({exc}); train anew") from None


def _merge_layer(layered: dict[str, Any], layer: dict[str, Any]) -> None:
    """Put a higher-precedence layer over ``layered``. Model settings merge key by key, and are
    dropped when the layer names a different model (they were another model's settings)."""
    default_model = _FIELDS["model"].default
    if "model" in layer and layer["model"] != layered.get("model", default_model):
        layered.pop("model_args", None)
    args = layer.get("model_args")
    layered.update({k: v for k, v in layer.items() if k != "model_args"})
    if args is not None:
        layered["model_args"] = {**layered.get("model_args", {}), **args}
