"""The configuration: embedded defaults, TOML round trip, and every validation error."""

import dataclasses
import tomllib

import pytest
import tomli_w
import torch

from ddfa.config import (BOARDS, DEFAULTS, HASHED_FIELDS, SECTIONS, UNHASHED_FIELDS, Config, ConfigError, Fixed,
                         HardwareConfig, ModelConfig, bank_address, bank_depth, board_makes_clock, config_diff,
                         config_hash, default_config, hashed_values, load_config, parse_arch, split_banks)
from ddfa.config.pll import made_clock_hz, pll_for
import hdl.host
from hdl.verilog import processor_verilog


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


# -- range checks ----------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("changes, field, fix", [
    ({"train.lr": INF}, "train.lr", "finite, positive learning rate"),
    ({"train.lr": NAN}, "train.lr", "finite, positive learning rate"),
    ({"train.lr": 0.0}, "train.lr", "finite, positive learning rate"),
    ({"train.lr_decay": 0.0}, "train.lr_decay", "such as 0.95"),
    ({"train.lr_decay": 1.5}, "train.lr_decay", "such as 0.95"),
    ({"train.lr_decay": NAN}, "train.lr_decay", "such as 0.95"),
    ({"train.alpha": NAN}, "train.alpha", "2**-6"),
    ({"train.weight_decay": -1e-6}, "train.weight_decay", "0 or more"),
    ({"train.weight_decay": INF}, "train.weight_decay", "0 or more"),
    ({"train.weight_decay": NAN}, "train.weight_decay", "0 or more"),
    ({"train.batch_size": 0}, "train.batch_size", "at least 1"),
    ({"train.epochs": -2}, "train.epochs", "at least 1"),
    ({"hardware.clock_mhz": 7}, "hardware.clock_mhz", "from 16 to 275 MHz"),
    ({"hardware.clock_mhz": 276}, "hardware.clock_mhz", "from 16 to 275 MHz"),
    ({"hardware.clock_mhz": NAN}, "hardware.clock_mhz", "or 12 MHz (no PLL)"),
    ({"hardware.board": "ulx3s-85f", "hardware.clock_mhz": 900}, "hardware.clock_mhz", "from 3.125 to 800 MHz"),
    # within the ECP5's range, but 48 MHz / CLKI_DIV (PFD >= 3.125 MHz) * CLKFB_DIV misses it by 2.9 %
    ({"hardware.board": "orangecrab-25f", "model.layers": (64, 16, 10), "hardware.clock_mhz": 10},
     "hardware.clock_mhz", "or 48 MHz (no PLL)"),
])
def test_range_checks_name_field_and_fix(changes, field, fix):
    with pytest.raises(ConfigError) as info:
        _bad(**changes)()
    assert info.value.field == field
    assert fix in str(info.value) and "Fix:" in str(info.value) and "\n" not in str(info.value)


def test_clock_within_the_pll_or_the_oscillator():
    ice = default_config("icebreaker")
    for mhz in (12, 16, 48, 100, 275):            # 12: the oscillator itself, no PLL
        assert ice.replace(**{"hardware.clock_mhz": mhz}).clock_mhz == mhz
    ulx = default_config("ulx3s-85f")
    for mhz in (3.125, 25, 50, 800):
        assert ulx.replace(**{"hardware.clock_mhz": mhz}).clock_mhz == mhz
    none = ice.replace(**{"hardware.board": "none"})
    assert none.replace(**{"hardware.clock_mhz": 7}).hardware.clock_mhz == 7
    for bad in (0, -1, NAN, INF):
        with pytest.raises(ConfigError, match="hardware.clock_mhz"):
            none.replace(**{"hardware.clock_mhz": bad})


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_default_clock_is_made(name):
    """Every board's default clock is one its PLL makes (validation would refuse it)."""
    b = BOARDS[name]
    lo, hi = b.clock_range_mhz
    assert lo <= b.clock_mhz <= hi and board_makes_clock(b, b.clock_mhz)


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "--config" and "not UTF-8" in str(info.value) and "offset 11" in str(info.value)
    assert "save the file as UTF-8" in str(info.value) and "\n" not in str(info.value)


def test_name_must_be_a_string():
    with pytest.raises(ConfigError, match="'name'.*not a string"):
        Config.from_dict({"name": 3})


# -- TOML round trip (tomli_w) ----------------------------------------------------------

@pytest.mark.parametrize("name", ['my "quoted" net', "it's", "back\\slash", "tab\tand\nnewline", "caf\u00e9 \u2713",
                                  "# not a comment", "[hardware]", 'a = "b"', "'''", ""])
def test_toml_round_trip_awkward_strings(tmp_path, name):
    cfg = default_config("icebreaker").replace(name=name, **{"train.lr": 1e-5, "train.lr_decay": 0.95,
                                                              "hardware.clock_mhz": 16.5})
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    again = load_config(path)
    assert again == cfg and again.name == name


# -- the configuration hash -------------------------------------------------------------

def _all_fields():
    return {f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def test_every_field_is_hashed_or_not_by_decision():
    """A new field must be put in HASHED_FIELDS or UNHASHED_FIELDS."""
    assert not set(HASHED_FIELDS) & set(UNHASHED_FIELDS)
    assert set(HASHED_FIELDS) | set(UNHASHED_FIELDS) == _all_fields()


def test_hash_ignores_name_and_comments(tmp_path):
    cfg = default_config("icebreaker")
    assert config_hash(cfg.replace(name="another name")) == config_hash(cfg)
    path = tmp_path / "renamed.toml"
    path.write_text("# a comment\n" + cfg.to_toml().replace('name = "icebreaker"', 'name = "x" # another'))
    again = load_config(path)
    assert again.name == "x" and config_hash(again) == config_hash(cfg) and config_diff(again, cfg) == []


#: A change of every field, each a valid configuration when made alone to the icebreaker default.
FIELD_CHANGES = {
    "model.dataset": {"model.dataset": "mnist", "model.layers": (784, 32, 10), "arith.acc_width": 42},
    "model.conv": {"model.conv": True, "model.dataset": "mnist", "model.layers": (784, 128, 10),
                   "arith.acc_width": 42, "hardware.board": "none"},
    "model.inputs": {"model.inputs": "pm1"},
    "model.label_column": {"model.label_column": "class"},
    "model.test_file": {"model.dataset": "train.csv", "model.test_file": "test.csv"},
    "model.test_fraction": {"model.test_fraction": 0.25},
    "train.setting": {"train.setting": "paper"},
    "train.epochs": {"train.epochs": 3},
    "train.batch_size": {"train.batch_size": 8},
    "train.lr": {"train.lr": 1e-3},
    "train.lr_decay": {"train.lr_decay": 0.5},
    "train.optimizer": {"train.optimizer": "adam"},
    "train.directions": {"train.directions": "gaussian"},
    "train.feedback_update": {"train.feedback_update": "adam"},
    "train.alpha": {"train.alpha": 0.5},
    "train.batchnorm": {"train.batchnorm": True, "train.batch_size": 8},
    "train.weight_decay": {"train.weight_decay": 1e-3},
    "train.init": {"train.init": "zero"},
    "hardware.clock_mhz": {"hardware.clock_mhz": 24.0},
    "hardware.baud": {"hardware.baud": 115200},
    "model.layers": {"model.layers": (64, 16, 10)},
    "model.algorithm": {"model.algorithm": "dfa"},
    "model.seed": {"model.seed": 1},
    "arith.act": {"arith.act": Fixed(16, 10), "model.inputs": "pm1"},
    "arith.err": {"arith.err": Fixed(16, 12)},
    "arith.weight": {"arith.weight": Fixed(16, 11)},
    "arith.feedback": {"arith.feedback": Fixed(16, 11)},
    "arith.acc_width": {"arith.acc_width": 41},
    "arith.lr_shift": {"arith.lr_shift": 7},
    "arith.alpha_shift": {"arith.alpha_shift": 7},
    "arith.rounding": {"arith.rounding": "stochastic"},
    "arith.exp_frac": {"arith.exp_frac": 4},
    "arith.exp_range": {"arith.exp_range": 10},
    "arith.exp_bits": {"arith.exp_bits": 14},
    "arith.lfsr_width": {"arith.lfsr_width": 24},
    "hardware.board": {"hardware.board": "upduino-v3"},
    "hardware.pes": {"hardware.pes": (2, 1)},
    "hardware.stream": {"hardware.stream": (False, False)},
    "hardware.share_multiplier": {"hardware.share_multiplier": False},
    "hardware.dataset_store": {"hardware.dataset_store": True},
}


def test_field_changes_cover_every_field():
    assert set(FIELD_CHANGES) == _all_fields()


@pytest.mark.parametrize("key", sorted(FIELD_CHANGES))
def test_hash_covers_exactly_the_hashed_fields(key):
    """A change of a hashed field changes the hash and config_diff names that field
    alone; a change of any other field leaves both alone."""
    cfg = default_config("icebreaker")
    other = cfg.replace(**FIELD_CHANGES[key])
    hashed = [k for k in FIELD_CHANGES[key] if k in HASHED_FIELDS]
    if key == "hardware.stream":         # (False, False): what () means, so the same processor ...
        assert config_hash(other.replace(**{"hardware.stream": ()})) == config_hash(other)
        hashed = [key]                   # ... but not the default's (False, True)
    diff = config_diff(cfg, other)
    layout = ["store"] if key == "hardware.dataset_store" else []     # the store's layout comes with it
    assert [d.split(":")[0] for d in diff] == [k for k in HASHED_FIELDS if k in hashed] + layout
    assert (config_hash(other) != config_hash(cfg)) == bool(hashed)
    for d in diff:
        k = d.split(":")[0]
        assert repr(hashed_values(cfg).get(k)) in d and repr(hashed_values(other).get(k)) in d and " != " in d


def test_unhashed_fields_leave_the_verilog_alone():
    """The fields the hash leaves out do not change the processor's Verilog (nor its
    INFO hash constant): a small processor, all of them changed at once."""
    base = Config(name="a", model=ModelConfig(layers=(64, 4, 10)),
                  hardware=HardwareConfig(board="icebreaker", pes=(1, 1)))
    other = base.replace(name="b", **{"model.inputs": "standardize", "model.test_fraction": 0.3,
                                      "arith.acc_width": 48, "train.epochs": 1, "hardware.clock_mhz": 24.0,
                                      "hardware.baud": 9600})
    assert config_hash(base) == config_hash(other) and config_diff(base, other) == []
    assert processor_verilog(base) == processor_verilog(other)


# -- the banking rule --------------------------------------------------------------------

@pytest.mark.parametrize("n_out, n_in, pes", [(6, 3, 3), (10, 4, 1), (8, 5, 2), (32, 64, 4)])
def test_banking_rule(n_out, n_in, pes):
    """split_banks puts W[i, j] where bank_address says, and every bank holds
    bank_depth words."""
    W = torch.arange(n_out * n_in).reshape(n_out, n_in)
    banks = split_banks(W, pes)
    assert len(banks) == pes
    for bank in banks:
        assert bank.numel() == bank_depth(n_out, n_in, pes)
    for i in range(n_out):
        for j in range(n_in):
            pe, addr = bank_address(i, j, n_in, pes)
            assert pe == i % pes
            assert banks[pe].reshape(-1)[addr] == W[i, j]
    rows = W.tolist()                                  # lists of rows split the same way
    assert [sum(b, []) for b in split_banks(rows, pes)] == [b.reshape(-1).tolist() for b in banks]


#: A change of each hashed field on the small processor below (hardware.board: another
#: family; two boards of one family build the same processor for different pins).
HASHED_CHANGES = {
    "model.layers": {"model.layers": (64, 2, 10)},
    "model.algorithm": {"model.algorithm": "dfa"},
    "model.seed": {"model.seed": 1},
    "arith.act": {"arith.act": Fixed(16, 10)},
    "arith.err": {"arith.err": Fixed(16, 12)},
    "arith.weight": {"arith.weight": Fixed(16, 11)},
    "arith.feedback": {"arith.feedback": Fixed(16, 11)},
    "arith.lr_shift": {"arith.lr_shift": 7},
    "arith.alpha_shift": {"arith.alpha_shift": 7},
    "arith.exp_frac": {"arith.exp_frac": 4},
    "arith.exp_range": {"arith.exp_range": 10},
    "arith.exp_bits": {"arith.exp_bits": 14},
    "arith.lfsr_width": {"arith.lfsr_width": 24},
    "hardware.board": {"hardware.board": "ulx3s-85f"},
    "hardware.pes": {"hardware.pes": (2, 1)},
    "hardware.stream": {"hardware.stream": (False, True)},
    "hardware.share_multiplier": {"hardware.share_multiplier": True},
    "hardware.dataset_store": {"hardware.dataset_store": True},
}


@pytest.mark.slow
def test_the_store_layout_is_hashed_with_a_store():
    """With a dataset store, model.dataset and model.inputs reach the processor through the
    store's layout (code bits, table rows) and the hash covers them; without one, they do not."""
    base = Config(name="a", model=ModelConfig(layers=(64, 4, 10)),
                  hardware=HardwareConfig(board="icebreaker", pes=(1, 1), dataset_store=True))
    for changes in ({"model.inputs": "standardize"}, {"model.dataset": "wine.npz"}):
        other = base.replace(**changes)
        diff = config_diff(base, other)
        assert config_hash(other) != config_hash(base) and [d.split(":")[0] for d in diff] == ["store"], changes
        plain = base.replace(**{"hardware.dataset_store": False})
        assert config_hash(plain.replace(**changes)) == config_hash(plain)


def test_hashed_fields_change_the_verilog(monkeypatch):
    """Each hashed field changes the processor's Verilog or its memory images even with
    the INFO hash constant held fixed (arith.rounding: the processor has only "nearest")."""
    monkeypatch.setattr(hdl.host, "config_hash", lambda cfg: 0)
    assert set(HASHED_CHANGES) == set(HASHED_FIELDS) - {"arith.rounding"}
    base = Config(name="a", model=ModelConfig(layers=(64, 4, 10)),
                  hardware=HardwareConfig(board="icebreaker", pes=(1, 1)))
    text = processor_verilog(base)
    for key, changes in HASHED_CHANGES.items():
        assert processor_verilog(base.replace(**changes)) != text, key


def test_made_clock_is_the_oscillator_or_the_pll_output():
    ice = BOARDS["icebreaker"]
    assert made_clock_hz(ice, ice.osc_mhz) == ice.osc_mhz * 1e6
    assert made_clock_hz(ice, 30.0) == pll_for("ice40", ice.osc_mhz * 1e6, 30e6).f_out
    assert made_clock_hz(ice, 30.0) != ice.osc_mhz * 1e6
