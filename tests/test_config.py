"""The configuration: embedded defaults, TOML round trip, and every validation error."""

import tomllib

import pytest
import tomli_w

from ddfa.config import (BOARDS, DEFAULTS, Config, ConfigError, Fixed, HardwareConfig, ModelConfig,
                         default_config, load_config, parse_arch)


@pytest.mark.parametrize("name", DEFAULTS)
def test_defaults_are_valid_and_fit(name):
    cfg = default_config(name)
    assert cfg.name == name
    assert cfg.memory_bits <= cfg.board.memory_bits
    assert cfg.multipliers_needed <= cfg.board.multipliers


@pytest.mark.parametrize("name", DEFAULTS)
def test_toml_round_trip(tmp_path, name):
    cfg = default_config(name)
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    again = load_config(path)
    assert again.to_dict() | {"name": name} == cfg.to_dict()


def test_example_config_loads():
    from pathlib import Path
    cfg = load_config(Path(__file__).parent.parent / "examples" / "config.toml")
    assert cfg.model.layers[0] == 64


def test_replace_validates():
    cfg = default_config("icebreaker")
    assert cfg.replace(**{"arith.lr_shift": 8}).arith.lr_shift == 8
    with pytest.raises(ConfigError, match="model.algorithm"):
        cfg.replace(**{"model.algorithm": "sgd"})


def test_parse_arch():
    assert parse_arch("2x800", 784, 10) == ((784, 800, 800, 10), False)
    assert parse_arch("784-128-10", 784, 10) == ((784, 128, 10), False)
    assert parse_arch("conv", 784, 10)[1] is True
    with pytest.raises(ConfigError, match="model.layers"):
        parse_arch("two by eight", 784, 10)


def _bad(**changes):
    return lambda: default_config("icebreaker").replace(**changes)


@pytest.mark.parametrize("changes, field, fix", [
    ({"arith.acc_width": 32}, "arith.acc_width", "at least 39"),
    ({"hardware.pes": (3, 1)}, "hardware.pes", "divisor of 32"),
    ({"hardware.pes": (4,)}, "hardware.pes", "one PE count per layer"),
    ({"hardware.pes": (32, 10), "hardware.stream": ()}, "hardware.pes", "fewer PEs"),
    ({"arith.lr_shift": 0}, "arith.lr_shift", "use a shift"),
    ({"arith.lr_shift": 30}, "arith.lr_shift", "use a shift"),
    ({"arith.alpha_shift": 0}, "arith.alpha_shift", "from 1 to 16"),
    ({"arith.weight": Fixed(20, 12), "arith.acc_width": 48}, "arith.weight.width", "at most 16 bits"),
    ({"arith.weight": Fixed(16, 15)}, "arith.weight.frac", "fractional bits"),
    ({"arith.lfsr_width": 23}, "arith.lfsr_width", "use one of"),
    ({"arith.rounding": "up"}, "arith.rounding", "nearest or stochastic"),
    ({"model.layers": (64, 4096, 10), "arith.acc_width": 48, "hardware.pes": (1, 1)}, "model.layers",
     "smaller network"),
    ({"model.layers": (784, 32, 10)}, "model.layers", "start the list with 64"),
    ({"model.dataset": "cifar"}, "model.dataset", "digits, mnist, fashion-mnist"),
    ({"model.inputs": "zscore"}, "model.inputs", "pm1, standardize"),
    ({"arith.act": Fixed(16, 14)}, "arith.act", "at least 3 integer bits (frac <= 13)"),
    ({"hardware.board": "de10"}, "hardware.board", "icebreaker"),
    ({"hardware.stream": (False,)}, "hardware.stream", "one true/false per layer"),
    ({"hardware.stream": (True, False)}, "hardware.stream", "first entry to false"),
    ({"hardware.pes": (4, 2), "hardware.stream": (False, True)}, "hardware.stream", "hardware.pes[1] = 1"),
    ({"model.layers": (64, 10), "hardware.pes": (2,), "hardware.stream": ()}, "hardware.share_multiplier",
     "share_multiplier = false"),
    ({"arith.err": Fixed(16, 14)}, "hardware.share_multiplier", "err.frac <= 13"),
    ({"train.setting": "fast"}, "train.setting", "paper or hardware"),
    ({"train.alpha": 1.5}, "train.alpha", "2**-6"),
    ({"train.epochs": 0}, "train.epochs", "at least 1"),
    ({"arith.exp_bits": 16}, "arith.exp_bits", "exp_bits <= 15"),
])
def test_validation_names_field_and_fix(changes, field, fix):
    with pytest.raises(ConfigError) as info:
        _bad(**changes)()
    assert info.value.field == field
    assert fix in str(info.value)
    assert "Fix:" in str(info.value)


def test_software_only_configs_skip_board_checks():
    cfg = default_config("icebreaker").replace(**{
        "hardware.board": "none", "model.dataset": "mnist", "model.layers": (784, 800, 800, 10),
        "arith.acc_width": 52, "arith.weight": Fixed(24, 20)})
    assert not cfg.has_board
    with pytest.raises(ConfigError, match="hardware.board"):
        cfg.board


def test_unknown_fields_and_sections(tmp_path):
    with pytest.raises(ConfigError, match="model.depth"):
        Config.from_dict({"model": {"depth": 3}})
    with pytest.raises(ConfigError, match="optimizer"):
        Config.from_dict({"optimizer": {}})
    with pytest.raises(ConfigError, match="wrong type"):
        Config.from_dict({"train": {"epochs": "many"}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nlayers = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="no embedded default"):
        default_config("de0-nano")


def test_direction_seeds_nonzero_and_distinct():
    cfg = default_config("ulx3s-85f").replace(**{"hardware.board": "none", "model.layers": (784, 64, 64, 64, 10)})
    seeds = [cfg.direction_seed(l) for l in (1, 2, 3)]
    assert all(seeds) and len(set(seeds)) == 3


def test_boards_table_platforms_exist():
    import importlib
    for board in BOARDS.values():
        module, cls = board.platform.split(":")
        assert hasattr(importlib.import_module(module), cls), board.platform


def _write(path, cfg, **sections):
    """Write ``cfg`` as TOML with some fields changed: ``hardware={"stream": [...]}``."""
    data = cfg.to_dict()
    for sec, changes in sections.items():
        data[sec].update(changes)
    path.write_text(tomli_w.dumps(data))


def test_stream_field(tmp_path):
    """``hardware.stream``: TOML booleans, the forward stages it makes, and a
    configuration without it serialises without it."""
    ice = default_config("icebreaker").replace(**{"hardware.stream": (), "hardware.share_multiplier": False})
    assert ice.hardware.stream == () and "stream" not in ice.to_toml()
    assert ice.forward_stages == [[1], [2]] and not ice.streams(2)
    path = tmp_path / "s.toml"
    _write(path, ice, hardware={"stream": [False, True]})
    cfg = load_config(path)
    assert cfg.hardware.stream == (False, True) and cfg.streams(2) and not cfg.streams(1)
    assert cfg.forward_stages == [[1, 2]]
    assert tomllib.loads(cfg.to_toml())["hardware"]["stream"] == [False, True]
    deep = Config(name="d", model=ModelConfig(layers=(64, 8, 6, 4, 10)),
                  hardware=HardwareConfig(board="ulx3s-85f", pes=(4, 1, 2, 1), stream=(False, True, False, True)))
    assert deep.forward_stages == [[1, 2], [3, 4]]
    _write(path, ice, hardware={"stream": "off, on"})           # as --set gives it
    assert load_config(path).hardware.stream == (False, True)
    _write(path, ice, train={"batchnorm": "maybe"})             # one word table
    with pytest.raises(ConfigError, match="train.batchnorm.*wrong type"):
        load_config(path)
    for bad in ([0, "yes"], "false, tru"):
        _write(path, ice, hardware={"stream": bad})
        with pytest.raises(ConfigError, match="hardware.stream.*wrong type"):
            load_config(path)


def test_share_multiplier_field(tmp_path):
    """``hardware.share_multiplier``: which units share, one multiplier fewer per extra
    unit, TOML, and a configuration without it serialises without it."""
    ice = default_config("icebreaker")
    assert ice.hardware.share_multiplier and ice.shared_multiplier_units == ("tangent", "softmax", "feedback")
    assert ice.multipliers_needed == 6 and ice.softmax_fold          # 4 + 1 + 1 shared; E = 2**15 is folded
    own = ice.replace(**{"hardware.share_multiplier": False})
    assert own.multipliers_needed == 8 and own.shared_multiplier_units == () and not own.softmax_fold
    assert "share_multiplier" not in own.to_toml() and "share_multiplier = true" in ice.to_toml()
    path = tmp_path / "s.toml"
    path.write_text(ice.to_toml())
    assert load_config(path).hardware.share_multiplier
    # the output layer with two PEs keeps its tangent multipliers: softmax and feedback share
    two = ice.replace(**{"hardware.pes": (2, 2), "hardware.stream": ()})
    assert two.shared_multiplier_units == ("softmax", "feedback") and two.multipliers_needed == 2 + 4 + 1
    ulx = default_config("ulx3s-85f")
    assert ulx.hardware.share_multiplier
    assert ulx.multipliers_needed == 18 and not ulx.softmax_fold    # 16 + 1 + 1 shared; 18-bit operands hold 2**15
    assert ulx.replace(**{"hardware.share_multiplier": False}).multipliers_needed == 20
