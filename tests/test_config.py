"""Config: the users' two commands verbatim, presets, precedence, files, and CLI errors."""

import argparse
import dataclasses
import json
import shlex

import pytest

import imbalance.config as config_module
from imbalance.config import (
    PRESET_DIR,
    TrainConfig,
    available_presets,
    build_arg_parser,
    load_config_file,
    parse_config,
    parse_model_args,
)
from imbalance.errors import UserError
from models import MODELS, model_settings

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


def test_balanced_corrects_once():
    # class weights on the natural mix of rows: weighted sampling would multiply the correction
    cfg = _parse("--preset balanced")
    assert not cfg.use_weighted_sampling
    assert (cfg.loss_type, cfg.class_weight_method, cfg.early_stop_metric) == ("weighted_bce", "balanced", "macro_auprc")


def test_precedence_defaults_then_preset_then_flags():
    default = TrainConfig()
    cfg = _parse("--preset aggressive --lr 0.01 --focal_gamma 1.5")
    assert cfg.lr == 0.01 and cfg.focal_gamma == 1.5  # flag beats preset
    assert cfg.batch_size == 32  # preset beats default
    assert cfg.model == default.model == "mlp" and cfg.model_args == {}  # untouched defaults
    assert cfg.model_settings == default.model_settings
    # a switch set by the preset can be turned off from the command line
    assert _parse("--preset aggressive --no_use_weighted_sampling").use_weighted_sampling is False


def test_config_file_layers_like_a_preset_and_flags_win(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text('loss_type = "weighted_bce"\nepochs = 7\nlr = 1\n\n[model]\nhidden_sizes = [32, 16]\n')
    cfg = _parse(f"--preset aggressive --config {toml} --epochs 9")
    assert cfg.loss_type == "weighted_bce"  # file beats preset
    assert cfg.epochs == 9  # flag beats file
    assert cfg.model == "mlp" and cfg.model_args == {"hidden_sizes": [32, 16]}
    assert cfg.model_settings.hidden_sizes == [32, 16]
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.weight_method == "per_class"  # from the preset
    js = tmp_path / "mine.json"
    js.write_text(json.dumps({"batch_size": 8}))
    assert _parse(f"--config {js}").batch_size == 8


def test_snake_and_kebab_spellings_are_the_same_flag():
    a = _parse("--csv_path x.csv --class_weight_multiplier 3 --use_weighted_sampling --model_args hidden_sizes=[8,4] --n_bins 8")
    b = _parse("--csv-path x.csv --class-weight-multiplier=3 --use-weighted-sampling --model-args=hidden_sizes=[8,4] --n-bins 8")
    assert a == b
    assert a.model_settings.hidden_sizes == [8, 4] and a.class_weight_multiplier == 3.0 and a.n_bins == 8


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
        ('loss_type = "hinge"\n', "unknown loss 'hinge'; choose from bce, weighted_bce, logit_adjusted, focal"),
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
    with pytest.raises(UserError, match=r"unknown preset 'turbo'; choose from aggressive, auto, balanced, none, very_aggressive"):
        _parse("--preset turbo")


def test_unknown_flag_is_one_line_with_valid_flags(capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--lerning_rate 0.1")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown flag --lerning_rate" in err and "--class_weight_multiplier" in err


def test_a_value_after_a_yes_no_flag_names_both_spellings(capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--no-optimize-thresholds off --lerning_rate 0.1")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown flag --lerning_rate" in err
    assert "--no-optimize-thresholds takes no value, got 'off'" in err
    assert "--optimize_thresholds to turn it on or --no_optimize_thresholds to turn it off" in err


def test_a_stray_value_is_traced_to_the_switch_before_it_not_to_an_earlier_flag_with_the_same_value(capsys):
    with pytest.raises(SystemExit):
        _parse("--epochs 3 --use_weighted_sampling 3")
    assert "--use_weighted_sampling takes no value, got '3'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse("--epochs 3 five")
    assert "unexpected value 'five': every value follows its flag" in capsys.readouterr().err


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
        ("--ensemble 0", "--ensemble must be >= 1"),
        ("--d_embedding 0", "--d_embedding must be >= 1"),
        ("--n_bins 1", "--n_bins must be >= 2"),
    ],
)
def test_invalid_values_name_the_flag(flags, fragment):
    with pytest.raises(UserError, match=fragment):
        _parse(flags)


def test_help_lists_every_lever_and_its_choices():
    text = build_arg_parser().format_help()
    for flag in ("--weight_method", "--class-weight-method", "--loss_type", "--early_stop_metric", "--threshold_metric"):
        assert flag in text
    for choice in ("per_class", "very_aggressive", "weighted_bce", "focal", "macro_f1_at_0.5", "youden_j"):
        assert choice in text


def test_resolved_config_round_trips_through_json(tmp_path):
    cfg = _parse("--preset aggressive --model_args hidden_sizes=[16,8],dropout=0.1 --ensemble 2 --num_embeddings periodic")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig(**json.loads(path.read_text())) == cfg
    assert cfg.model_settings.hidden_sizes == [16, 8] and cfg.ensemble == 2


# ------------------------------------------------------------------------- model settings


def test_model_args_values_are_toml_literals():
    assert parse_model_args("d_block=256,k=16,hidden_sizes=[128,64],norm=layer") == {
        "d_block": 256, "k": 16, "hidden_sizes": [128, 64], "norm": "layer"}
    values = parse_model_args(' dropout = 0.25 , hidden_sizes=[ 8, 4 ],,flag=true,lr=1e-3,name="tabm-mini",empty=[]')
    assert values == {"dropout": 0.25, "hidden_sizes": [8, 4], "flag": True, "lr": 1e-3, "name": "tabm-mini", "empty": []}
    assert type(values["dropout"]) is float and type(values["hidden_sizes"][0]) is int
    assert parse_model_args("") == {}


def test_model_args_commas_and_brackets_inside_quotes_do_not_split():
    assert parse_model_args('a="x,y",b=[1,2],c=\'[p,q\',d=none') == {"a": "x,y", "b": [1, 2], "c": "[p,q", "d": "none"}


@pytest.mark.parametrize("text", ["none", "None", "null"])
def test_none_sets_an_optional_model_setting(text):
    settings = model_settings("tabm", parse_model_args(f"n_blocks={text}"))
    assert settings.n_blocks is None
    with pytest.raises(UserError, match="'k' must be int"):  # not for a required one
        model_settings("tabm", parse_model_args(f"k={text}"))


@pytest.mark.parametrize("text", ["hidden_sizes", "=3", "dropout=", "a=1,b"])
def test_model_args_pair_without_key_or_value_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not key=value"):
        parse_model_args(text)


def test_bad_model_args_pair_is_a_one_line_cli_error(capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--model_args dropout")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--model_args" in err and "'dropout' is not key=value" in err


def test_model_args_reach_the_model_settings():
    cfg = _parse("--model_args hidden_sizes=[32,16,8],dropout=0,norm=layer")
    assert cfg.model_args == {"hidden_sizes": [32, 16, 8], "dropout": 0, "norm": "layer"}
    settings = cfg.model_settings
    assert (settings.hidden_sizes, settings.dropout, settings.norm) == ([32, 16, 8], 0.0, "layer")
    assert type(settings.dropout) is float  # an int stands for a float
    assert _parse("--model_args hidden_sizes=64").model_settings.hidden_sizes == [64]  # one width is a list of one


def test_model_table_in_a_config_file(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text('epochs = 3\n\n[model]\nname = "resnet"\nd_block = 64\nn_blocks = 3\n\n[model_args]\ndropout1 = 0.2\n')
    assert load_config_file(path) == {"epochs": 3, "model": "resnet", "model_args": {"d_block": 64, "n_blocks": 3, "dropout1": 0.2}}
    cfg = _parse(f"--config {path}")
    assert cfg.model == "resnet" and cfg.epochs == 3
    settings = cfg.model_settings
    assert (settings.d_block, settings.n_blocks, settings.dropout1) == (64, 3, 0.2)
    # a plain model = "name" line still works, and a [model] table without a name keeps the model
    plain = tmp_path / "plain.toml"
    plain.write_text('model = "tabm"\n')
    assert _parse(f"--config {plain}").model == "tabm"
    nameless = tmp_path / "nameless.toml"
    nameless.write_text("[model]\ndropout = 0.5\n")
    assert load_config_file(nameless) == {"model_args": {"dropout": 0.5}}
    assert _parse(f"--config {nameless}").model_settings.dropout == 0.5


def test_model_settings_merge_key_by_key_preset_then_config_then_flags(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "wide.toml").write_text("epochs = 5\n\n[model]\nhidden_sizes = [128, 64]\ndropout = 0.2\n")
    monkeypatch.setattr(config_module, "PRESET_DIR", presets)
    mine = tmp_path / "mine.toml"
    mine.write_text('[model]\ndropout = 0.4\nnorm = "batch"\n')
    assert _parse("--preset wide").model_args == {"hidden_sizes": [128, 64], "dropout": 0.2}
    assert _parse(f"--preset wide --config {mine}").model_args == {"hidden_sizes": [128, 64], "dropout": 0.4, "norm": "batch"}
    cfg = _parse(f"--preset wide --config {mine} --model_args norm=layer")
    assert cfg.model_args == {"hidden_sizes": [128, 64], "dropout": 0.4, "norm": "layer"}
    assert dataclasses.asdict(cfg.model_settings) == {"hidden_sizes": [128, 64], "dropout": 0.4, "norm": "layer"}
    # naming the same model again keeps the settings
    assert _parse(f"--preset wide --config {mine} --model mlp").model_args == {"hidden_sizes": [128, 64], "dropout": 0.4, "norm": "batch"}


def test_naming_another_model_drops_the_earlier_models_settings(tmp_path):
    mlp = tmp_path / "mlp.toml"
    mlp.write_text('[model]\nname = "mlp"\nhidden_sizes = [128]\ndropout = 0.1\n')
    cfg = _parse(f"--config {mlp} --model resnet")
    assert cfg.model == "resnet" and cfg.model_args == {}  # hidden_sizes is no resnet setting: not an error
    assert cfg.model_settings == MODELS.get("resnet").settings_cls()
    cfg = _parse(f"--config {mlp} --model resnet --model_args d_block=32")
    assert cfg.model_args == {"d_block": 32}
    # a config file naming another model over a preset's settings drops them the same way
    resnet = tmp_path / "resnet.toml"
    resnet.write_text('[model]\nname = "resnet"\nn_blocks = 1\n')
    assert _parse(f"--config {resnet} --model_args d_block=16").model_args == {"n_blocks": 1, "d_block": 16}
    assert _parse(f"--config {resnet} --model mlp").model_args == {}


def test_unknown_model_setting_names_the_model_and_the_valid_settings(tmp_path):
    with pytest.raises(UserError) as info:
        _parse("--model_args hiden_sizes=[8]")
    message = str(info.value)
    assert message.startswith("--model_args: model 'mlp': unknown setting 'hiden_sizes'")
    assert "did you mean 'hidden_sizes'" in message
    assert "valid settings: hidden_sizes, dropout, norm" in message
    # the same from a config file, and for another model
    path = tmp_path / "bad.toml"
    path.write_text('[model]\nname = "resnet"\nhidden_sizes = [8]\n')
    with pytest.raises(UserError, match=r"--model_args: model 'resnet': unknown setting 'hidden_sizes'.*valid settings: n_blocks, d_block"):
        _parse(f"--config {path}")


@pytest.mark.parametrize(
    "args, fragment",
    [
        ("dropout=abc", "model 'mlp': setting 'dropout' must be float, got 'abc'"),
        ("hidden_sizes=[8,true]", "setting 'hidden_sizes' must be int"),
        ("dropout=1.5", "dropout must be in [0, 1)"),
        ("norm=group", "norm must be one of none, batch, layer"),
    ],
)
def test_bad_model_setting_values_are_user_errors(args, fragment):
    with pytest.raises(UserError) as info:
        _parse(f"--model_args {args}")
    assert str(info.value).startswith("--model_args: ") and fragment in str(info.value)


def test_old_model_flags_are_gone(capsys):
    with pytest.raises(SystemExit):
        _parse("--hidden_sizes 8 4")
    assert "unknown flag --hidden_sizes" in capsys.readouterr().err


def test_numeric_embedding_flags():
    default = TrainConfig()
    assert (default.num_embeddings, default.embedding_bins, default.ensemble) == ("auto", "quantile", 1)
    for name in MODELS.names():  # auto: the model's own default
        assert TrainConfig(model=name).resolved_num_embeddings == MODELS.get(name).num_embeddings
    cfg = _parse("--model resnet --num_embeddings none --embedding_bins tree --n_bins 12 --d_embedding 8 --ensemble 3")
    assert (cfg.resolved_num_embeddings, cfg.embedding_bins, cfg.n_bins, cfg.d_embedding, cfg.ensemble) == ("none", "tree", 12, 8, 3)
    assert _parse("--num_embeddings periodic").resolved_num_embeddings == "periodic"
    with pytest.raises(UserError, match="--num_embeddings: unknown value 'spline'"):
        TrainConfig(num_embeddings="spline")


def test_help_lists_every_model_and_its_settings():
    text = build_arg_parser().format_help()
    for flag in ("--model_args", "--num_embeddings", "--embedding_bins", "--n_bins", "--d_embedding", "--ensemble"):
        assert flag in text
    lines = text.splitlines()
    for name in MODELS.names():
        spec = MODELS.get(name)
        assert any(line.startswith(f"{name}: ") and spec.num_embeddings in line for line in lines), name
        for field in dataclasses.fields(spec.settings_cls):
            assert any(line.startswith(f"    {field.name}=") for line in lines), (name, field.name)
            assert field.metadata["help"] in text


def test_compare_as_a_switch_still_reads():
    from imbalance.config import TrainConfig

    assert TrainConfig(compare=False).compare is None  # an earlier run's config.json
    assert TrainConfig(compare=True, generator="uniform").compare == ""  # the flags' own augmentation
    assert TrainConfig(compare="smotenc,uniform").compare == "smotenc,uniform"
