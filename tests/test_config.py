"""Config: the users' two commands verbatim, presets, precedence, files, and CLI errors."""

import json
import shlex

import pytest

from imbalance.config import (
    PRESET_DIR,
    TrainConfig,
    available_presets,
    build_arg_parser,
    load_config_file,
    parse_config,
)
from imbalance.errors import UserError

AGGRESSIVE_COMMAND = """
    --csv_path mesa_final.csv --output_dir checkpoints/comorbidity_aggressive
    --use_stratified_split --use_weighted_sampling --weight_method per_class
    --loss_type focal --focal_gamma 3.0
    --class_weight_method aggressive --class_weight_multiplier 2.0
    --optimize_thresholds --early_stop_metric macro_f1 --early_stop_patience 15
    --epochs 100 --batch_size 32 --lr 1e-3
"""
VERY_AGGRESSIVE_COMMAND = """
    --csv_path mesa_final.csv --output_dir checkpoints/comorbidity_very_aggressive
    --use_stratified_split --use_weighted_sampling --weight_method per_class
    --loss_type weighted_bce --class_weight_method very_aggressive --class_weight_multiplier 5.0
    --optimize_thresholds --early_stop_metric macro_recall --early_stop_patience 20
    --epochs 100 --batch_size 16 --lr 5e-4
"""

AGGRESSIVE_VALUES = dict(
    use_stratified_split=True, use_weighted_sampling=True, weight_method="per_class", loss_type="focal",
    focal_gamma=3.0, class_weight_method="aggressive", class_weight_multiplier=2.0, optimize_thresholds=True,
    early_stop_metric="macro_f1", early_stop_patience=15, epochs=100, batch_size=32, lr=1e-3,
)
VERY_AGGRESSIVE_VALUES = dict(
    use_stratified_split=True, use_weighted_sampling=True, weight_method="per_class", loss_type="weighted_bce",
    class_weight_method="very_aggressive", class_weight_multiplier=5.0, optimize_thresholds=True,
    early_stop_metric="macro_recall", early_stop_patience=20, epochs=100, batch_size=16, lr=5e-4,
)


def _parse(command: str) -> TrainConfig:
    return parse_config(shlex.split(command))[0]


@pytest.mark.parametrize(
    "command, expected, out",
    [
        (AGGRESSIVE_COMMAND, AGGRESSIVE_VALUES, "checkpoints/comorbidity_aggressive"),
        (VERY_AGGRESSIVE_COMMAND, VERY_AGGRESSIVE_VALUES, "checkpoints/comorbidity_very_aggressive"),
    ],
)
def test_users_commands_parse_verbatim(command, expected, out):
    cfg = _parse(command)
    assert cfg.csv_path == "mesa_final.csv"
    assert cfg.output_dir == out
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key


@pytest.mark.parametrize("preset, expected", [("aggressive", AGGRESSIVE_VALUES), ("very_aggressive", VERY_AGGRESSIVE_VALUES)])
def test_presets_equal_the_users_commands(preset, expected):
    cfg = _parse(f"--preset {preset}")
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key


@pytest.mark.parametrize("preset", ["none", "balanced", "aggressive", "very_aggressive"])
def test_every_preset_file_loads_and_starts_with_its_command(preset):
    assert preset in available_presets()
    path = PRESET_DIR / f"{preset}.toml"
    values = load_config_file(path)
    assert values, "a preset changes something"
    defaults = TrainConfig()
    cfg = _parse(f"--preset {preset}")
    for key, value in values.items():
        assert getattr(cfg, key) == value
    first_lines = path.read_text().splitlines()[:3]
    assert first_lines[0].startswith("#")
    assert any(f"--preset {preset}" in line for line in first_lines)
    assert cfg.preset == preset and defaults.preset is None


def test_naive_preset_uses_no_lever():
    cfg = _parse("--preset none")
    assert (cfg.use_weighted_sampling, cfg.class_weight_method, cfg.loss_type, cfg.optimize_thresholds) == (
        False, "none", "bce", False)


def test_balanced_is_moderate():
    cfg = _parse("--preset balanced")
    assert cfg.use_weighted_sampling and cfg.weight_method == "balanced" and cfg.class_weight_method == "balanced"


def test_precedence_defaults_then_preset_then_flags():
    default = TrainConfig()
    cfg = _parse("--preset aggressive --lr 0.01 --focal_gamma 1.5")
    assert cfg.lr == 0.01 and cfg.focal_gamma == 1.5  # flag beats preset
    assert cfg.batch_size == 32  # preset beats default
    assert cfg.dropout == default.dropout  # untouched default
    # a switch set by the preset can be turned off from the command line
    assert _parse("--preset aggressive --no_use_weighted_sampling").use_weighted_sampling is False


def test_config_file_layers_like_a_preset_and_flags_win(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text('loss_type = "weighted_bce"\nepochs = 7\nhidden_sizes = [32, 16]\nlr = 1\n')
    cfg = _parse(f"--preset aggressive --config {toml} --epochs 9")
    assert cfg.loss_type == "weighted_bce"  # file beats preset
    assert cfg.epochs == 9  # flag beats file
    assert cfg.hidden_sizes == [32, 16]
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.weight_method == "per_class"  # from the preset
    js = tmp_path / "mine.json"
    js.write_text(json.dumps({"batch_size": 8}))
    assert _parse(f"--config {js}").batch_size == 8


def test_snake_and_kebab_spellings_are_the_same_flag():
    a = _parse("--csv_path x.csv --class_weight_multiplier 3 --use_weighted_sampling --hidden_sizes 8 4")
    b = _parse("--csv-path x.csv --class-weight-multiplier=3 --use-weighted-sampling --hidden-sizes 8 4")
    assert a == b
    assert a.hidden_sizes == [8, 4] and a.class_weight_multiplier == 3.0


def test_tensorboard_switch():
    assert TrainConfig().tensorboard is True
    assert _parse("--no_tensorboard").tensorboard is False
    assert _parse("--no-tensorboard").tensorboard is False


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('learning_rate = 0.1\n', "unknown key 'learning_rate'"),
        ('epochs = "ten"\n', "key 'epochs' must be int"),
        ('use_weighted_sampling = 1\n', "key 'use_weighted_sampling' must be bool"),
        ('loss_type = "hinge"\n', "unknown loss 'hinge'; choose from bce, weighted_bce, focal"),
        ('epochs = [1\n', "cannot parse"),
    ],
)
def test_bad_config_file_names_the_key(tmp_path, content, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        _parse(f"--config {path}")


def test_unknown_key_error_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("focal_gama = 2.0\n")
    with pytest.raises(UserError) as info:
        _parse(f"--config {path}")
    message = str(info.value)
    assert "did you mean 'focal_gamma'" in message and "class_weight_multiplier" in message


def test_unknown_preset_lists_presets():
    with pytest.raises(UserError, match=r"unknown preset 'turbo'; choose from aggressive, balanced, none, very_aggressive"):
        _parse("--preset turbo")


def test_unknown_flag_is_one_line_with_valid_flags(capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--lerning_rate 0.1")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown flag --lerning_rate" in err and "--class_weight_multiplier" in err


def test_unknown_choice_lists_choices(capsys):
    with pytest.raises(SystemExit):
        _parse("--weight_method extreme")
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    for name in ("balanced", "aggressive", "per_class"):
        assert name in err


def test_abbreviations_are_not_accepted(capsys):
    with pytest.raises(SystemExit):
        _parse("--epoch 3")
    assert "unknown flag --epoch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, fragment",
    [
        ("--val_fraction 1.5", "--val_fraction"),
        ("--test_fraction -0.1", "--test_fraction"),
        ("--val_fraction 0.5 --test_fraction 0.45", "too little to train"),
        ("--batch_size 0", "--batch_size"),
        ("--lr 0", "--lr"),
        ("--focal_alpha 1.0", "--focal_alpha"),
        ("--class_weight_multiplier 0", "--class_weight_multiplier"),
        ("--baselines logistic,forest", "unknown baseline 'forest'"),
    ],
)
def test_invalid_values_name_the_flag(flags, fragment):
    with pytest.raises(UserError, match=fragment):
        _parse(flags)


def test_help_lists_every_lever_and_its_choices():
    text = build_arg_parser().format_help()
    for flag in ("--weight_method", "--class-weight-method", "--loss_type", "--early_stop_metric", "--threshold_metric"):
        assert flag in text
    for choice in ("per_class", "very_aggressive", "weighted_bce", "focal", "macro_f1_tuned", "youden_j"):
        assert choice in text


def test_resolved_config_round_trips_through_json(tmp_path):
    cfg = _parse("--preset aggressive --hidden_sizes 16 8")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig(**json.loads(path.read_text())) == cfg
