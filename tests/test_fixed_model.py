"""The fixed-point golden model (golden/fixed.py): initial state, the training step, the
memory images and the state hash, and a float implementation of the hardware setting
that it must track to 1e-6 when the formats are wide."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ddfa.config import ConfigError, Fixed, default_config
from ddfa.data import Dataset, load_dataset
from golden.arith import Lfsr, quantize
from golden.fixed import FixedModel, train_fixed

I64 = torch.int64
ICE = default_config("icebreaker")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def train_steps(model: FixedModel, ds: Dataset, n: int, start: int = 0) -> list[dict]:
    x = model.quantize_input(ds.x_train[start:start + n])
    return [model.step(x[k], int(ds.y_train[start + k])) for k in range(n)]


# --------------------------------------------------------------------------------------
# Initial state (ARITHMETIC.md section 6)
# --------------------------------------------------------------------------------------

def test_initial_state_shapes_and_formats():
    m = FixedModel(ICE)
    n = ICE.model.layers
    assert [tuple(W.shape) for W in m.W] == [(n[l], n[l - 1]) for l in range(1, len(n))]
    assert [tuple(B.shape) for B in m.B] == [(32, 10)]
    assert all(W.dtype == I64 for W in m.W + m.b + m.B)
    assert not m.B[0].any()                                       # DDFA: B = 0
    assert [s.state for s in m.lfsr] == [ICE.direction_seed(1)]
    assert m.steps == 0
    for l, W in enumerate(m.W, start=1):                          # U(+-1/sqrt(fan_in)), quantised
        bound = ICE.arith.weight.scale / math.sqrt(n[l - 1])
        assert W.abs().max() <= bound + 1 and W.abs().max() > 0.8 * bound


@pytest.mark.parametrize("algo", ["ddfa", "dfa"])
def test_initial_state_is_the_float_models_quantised(algo):
    float_model = pytest.importorskip("golden.float_model")
    cfg = ICE.replace(**{"model.algorithm": algo})
    fixed, flt = FixedModel(cfg), float_model.FloatModel(cfg)
    ar = cfg.arith
    for l, layer in enumerate(flt.layers):
        assert torch.equal(fixed.W[l], quantize(layer.W, ar.weight))
        assert torch.equal(fixed.b[l], quantize(layer.b, ar.weight))
    for l, layer in enumerate(flt.layers[:-1]):
        assert torch.equal(fixed.B[l], quantize(layer.B, ar.feedback))


def test_dfa_feedback_is_kaiming_uniform_and_fixed(digits):
    cfg = ICE.replace(**{"model.algorithm": "dfa"})
    m = FixedModel(cfg)
    B0 = m.B[0].clone()
    bound = math.sqrt(6 / 32) * cfg.arith.feedback.scale
    assert B0.abs().max() <= bound + 1 and B0.abs().max() > 0.9 * bound
    train_steps(m, digits, 20)
    assert torch.equal(m.B[0], B0)                               # random DFA: no update of B
    m2 = FixedModel(ICE)
    train_steps(m2, digits, 20)
    assert m2.B[0].any()                                         # DDFA learns B


# --------------------------------------------------------------------------------------
# Configurations the fixed-point model refuses
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"model.algorithm": "dkp"}, "model.algorithm"),
    ({"hardware.board": "none", "model.dataset": "mnist", "model.layers": (784, 128, 10), "model.conv": True,
      "arith.acc_width": 48},
     "model.conv"),
    ({"train.batch_size": 64}, "train.batch_size"),
    ({"train.setting": "paper"}, "train.batch_size"),
    ({"train.optimizer": "adam"}, "train.optimizer"),
    ({"train.directions": "gaussian"}, "train.directions"),
    ({"train.feedback_update": "adam"}, "train.feedback_update"),
    ({"train.batchnorm": True}, "train.batchnorm"),
    ({"train.init": "zero"}, "train.init"),
    ({"train.lr": 0.01}, "train.lr"),
    ({"train.alpha": 0.1}, "train.alpha"),
    ({"train.lr_decay": 0.95}, "train.lr_decay"),
])
def test_fixed_model_refuses_what_the_processor_does_not_run(changes, field):
    cfg = ICE.replace(**changes)
    with pytest.raises(ConfigError) as info:
        FixedModel(cfg)
    assert info.value.field == field
    assert "Fix:" in str(info.value) and info.value.fix


def test_matching_explicit_rates_are_accepted():
    FixedModel(ICE.replace(**{"train.lr": 2.0 ** -ICE.arith.lr_shift, "train.alpha": 2.0 ** -ICE.arith.alpha_shift,
                              "train.optimizer": "sgd", "train.batch_size": 1}))


# --------------------------------------------------------------------------------------
# The step and inference
# --------------------------------------------------------------------------------------

def test_step_intermediates(digits):
    m = FixedModel(ICE)
    ar = ICE.arith
    out = train_steps(m, digits, 3)[-1]
    for key in ("x", "v1", "a1", "y1", "t1", "d1", "g1", "delta1", "a2", "y2", "t2", "d2", "delta2", "p", "e"):
        assert key in out, key
        assert out[key].dtype == I64
    assert not out["t1"].any() and torch.equal(out["d1"], out["v1"])       # d_1 = v_1
    assert torch.equal(out["y1"], out["a1"].clamp(min=0))
    assert torch.equal(out["y2"], out["a2"]) and torch.equal(out["d2"], out["t2"])
    assert torch.equal(out["delta2"], out["e"])
    assert torch.equal(out["delta1"], torch.where(out["a1"] > 0, out["g1"], 0))
    assert set(out["v1"].abs().tolist()) == {ar.act.one}
    assert m.steps == 3
    for key, fmt in (("a1", ar.act), ("d1", ar.act), ("p", ar.err), ("e", ar.err), ("g1", ar.err)):
        assert fmt.min <= int(out[key].min()) and int(out[key].max()) <= fmt.max


def test_directions_come_from_the_contract_lfsr(digits):
    m = FixedModel(ICE)
    ref = Lfsr(ICE.arith.lfsr_width, ICE.direction_seed(1))
    for out in train_steps(m, digits, 40):
        bits = ref.bits(32)
        assert out["v1"].tolist() == [ICE.arith.act.one * (1 - 2 * b) for b in bits]
    assert m.lfsr[0].state == ref.state


def test_predict_changes_nothing_and_matches_the_step(digits):
    m = FixedModel(ICE)
    train_steps(m, digits, 30)
    h = m.state_hash()
    x = m.quantize_input(digits.x_test[:200])
    batch = m.predict_batch(x).tolist()
    assert [m.predict(x[k]) for k in range(200)] == batch
    assert m.state_hash() == h and m.steps == 30
    xt = m.quantize_input(digits.x_train[30:40])
    for k in range(10):
        logits = m.logits(xt[k:k + 1])[0]
        out = m.step(xt[k], int(digits.y_train[30 + k]))
        assert torch.equal(out["y2"], logits)                   # the step's forward = inference


def test_predict_ties_go_to_the_lowest_index():
    m = FixedModel(ICE)
    for W in m.W:
        W.zero_()
    for b in m.b:
        b.zero_()
    m.b[-1][[3, 7]] = 100
    x = torch.zeros(64, dtype=I64)
    assert m.predict(x) == 3 and m.predict_batch(x[None])[0] == 3


def test_two_hidden_layers_and_stochastic_rounding_run(digits):
    cfg = ICE.replace(**{"hardware.board": "none", "model.layers": (64, 24, 16, 10), "arith.rounding": "stochastic"})
    m = FixedModel(cfg)
    outs = train_steps(m, digits, 10)
    assert "t2" in outs[-1] and outs[-1]["t2"].any()             # tangent MACs from layer 2 on
    assert m.B[0].any() and m.B[1].any()
    # words drawn per step: W, b, then B (DDFA hidden layers), one per rounded term
    assert m._words(1) == 24 * 65 + 24 * 10 and m._words(3) == 10 * 17
    a, b = FixedModel(cfg), FixedModel(cfg)
    train_steps(a, digits, 10)
    train_steps(b, digits, 10)
    assert a.state_hash() == b.state_hash() == m.state_hash()
    c = FixedModel(cfg.replace(**{"arith.rounding": "nearest"}))
    train_steps(c, digits, 10)
    assert c.state_hash() != m.state_hash()


def test_stochastic_rounding_moves_where_nearest_cannot(digits):
    """With 8-bit weights every update term of this step is below half an LSB: nearest
    rounding leaves W unchanged, stochastic rounding moves it (and unbiasedly so)."""
    base = ICE.replace(**{"arith.weight": Fixed(8, 6), "arith.lr_shift": 8})
    near, sto = FixedModel(base), FixedModel(base.replace(**{"arith.rounding": "stochastic"}))
    W0 = near.W[0].clone()
    train_steps(near, digits, 5)
    train_steps(sto, digits, 5)
    assert torch.equal(near.W[0], W0)
    assert not torch.equal(sto.W[0], W0)


# --------------------------------------------------------------------------------------
# Memory images and the state hash (ARITHMETIC.md section 7)
# --------------------------------------------------------------------------------------

#: sha256 of the initial state of the icebreaker default and after 25 digits steps.
#: They pin the contract (initialisation, arithmetic, LFSR, image format): change them
#: only with a deliberate change of docs/ARITHMETIC.md, and say so in the commit.
PINNED_INITIAL = "9bf82a6c43ceb18acf117272cf63b5811c523f66b7d8df81a978c27c7838e7e5"
PINNED_25 = "0b33e0443969b52682c28e1d56dbef02626700d601dbabe0cfa38a6cef4806d2"


def test_state_hash_pinned(digits):
    m = FixedModel(ICE)
    assert m.state_hash() == PINNED_INITIAL
    train_steps(m, digits, 25)
    assert m.state_hash() == PINNED_25


def test_state_hash_is_deterministic_and_sensitive(digits):
    a, b = FixedModel(ICE), FixedModel(ICE)
    assert a.state_hash() == b.state_hash()
    train_steps(a, digits, 15)
    train_steps(b, digits, 15)
    assert a.state_hash() == b.state_hash()
    h = a.state_hash()
    a.W[0][0, 0] += 1
    assert a.state_hash() != h
    a.W[0][0, 0] -= 1
    a.lfsr[0].state = a.lfsr[0].state ^ 1 or 2
    assert a.state_hash() != h


@pytest.mark.parametrize("cfg", [
    ICE,
    ICE.replace(**{"model.algorithm": "dfa"}),
    ICE.replace(**{"hardware.board": "none", "model.layers": (64, 12, 8, 10), "arith.rounding": "stochastic"}),
], ids=["icebreaker", "dfa", "none-stochastic"])
def test_images_round_trip(tmp_path, digits, cfg):
    m = FixedModel(cfg)
    train_steps(m, digits, 12)
    manifest = m.export_images(tmp_path)
    assert manifest["state_hash"] == m.state_hash()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["step"] == 12 and on_disk["format"] == "ddfa-memory-images/1"
    assert [e["name"] for e in on_disk["memories"]] == list(cfg.memory_words)
    for e in on_disk["memories"]:
        words, width = cfg.memory_words[e["name"]]
        assert (e["words"], e["width"]) == (words, width)
        lines = (tmp_path / e["file"]).read_text().splitlines()
        assert len(lines) == words and all(len(s) == (width + 3) // 4 for s in lines)
        assert ("banks" in e) == (cfg.has_board and e["name"].startswith("W"))
    back = FixedModel.from_images(cfg, tmp_path)
    assert back.memory_words() == m.memory_words()
    assert back.state_hash() == m.state_hash() and back.steps == 12
    train_steps(m, digits, 6, start=12)
    train_steps(back, digits, 6, start=12)
    assert back.state_hash() == m.state_hash()


def test_images_hex_is_twos_complement_and_banked(tmp_path):
    m = FixedModel(ICE)
    m.W[0][1, 2] = -1
    m.W[0][5, 0] = ICE.arith.weight.min
    m.export_images(tmp_path)
    lines = (tmp_path / "W1.hex").read_text().splitlines()
    assert lines[1 * 64 + 2] == "ffff" and lines[5 * 64] == "8000"
    P = ICE.hardware.pes[0]
    bank = (tmp_path / f"W1_pe{5 % P}.hex").read_text().splitlines()
    assert bank[(5 // P) * 64 + 0] == "8000"                    # row i in PE i mod P at (i div P)*n + j


def test_images_are_checked_on_import(tmp_path):
    m = FixedModel(ICE)
    m.export_images(tmp_path)
    bank = tmp_path / "W1_pe1.hex"
    lines = bank.read_text().splitlines()
    lines[0] = format((int(lines[0], 16) + 1) & 0xFFFF, "04x")
    bank.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="PE bank 1 of W1"):
        FixedModel.from_images(ICE, tmp_path)
    other = ICE.replace(**{"hardware.board": "none", "model.layers": (64, 16, 10), "hardware.pes": (4, 1)})
    with pytest.raises(ValueError, match="W1 is 2048 words"):
        FixedModel.from_images(other, tmp_path)


def test_memory_words_for_the_bench():
    m = FixedModel(ICE)
    words = m.memory_words()
    assert list(words) == list(ICE.memory_words)
    assert all(len(words[k]) == n for k, (n, _) in ICE.memory_words.items())
    assert words["W1"][:64] == m.W[0][0].tolist()


# --------------------------------------------------------------------------------------
# Wide formats: the fixed-point model tracks a float implementation of the hardware setting
# --------------------------------------------------------------------------------------

WIDE = ICE.replace(**{
    "hardware.board": "none", "model.layers": (64, 16, 12, 10),
    "arith.act": Fixed(28, 20), "arith.err": Fixed(28, 24), "arith.weight": Fixed(28, 22),
    "arith.feedback": Fixed(28, 22), "arith.acc_width": 64, "arith.lr_shift": 4, "arith.alpha_shift": 2,
    "arith.exp_frac": 8, "arith.exp_range": 16, "arith.exp_bits": 24})


class FloatHardwareStep:
    """The hardware setting in float64, written from the paper (eqs. 1, 6, 12, 17, 2-4):
    batch of one, SGD with eta = 2^-lr_shift, Rademacher v from the same LFSR bits,
    B by the moving average with alpha = 2^-alpha_shift. The softmax is the output
    unit's function in float: exp of z rounded to 2^-exp_frac (the table index), zero
    beyond the table."""

    def __init__(self, model: FixedModel):
        cfg, ar = model.cfg, model.cfg.arith
        self.cfg, self.ar = cfg, ar
        self.W = [W.double() / ar.weight.scale for W in model.W]
        self.b = [b.double() / ar.weight.scale for b in model.b]
        self.B = [B.double() / ar.feedback.scale for B in model.B]
        self.lfsr = [Lfsr(ar.lfsr_width, cfg.direction_seed(l)) for l in range(1, cfg.model.n_layers)]
        self.eta, self.alpha = 2.0 ** -ar.lr_shift, 2.0 ** -ar.alpha_shift

    def softmax(self, y):
        ar = self.ar
        k = torch.round(-(y - y.max()) * 2 ** ar.exp_frac)
        E = torch.where(k < ar.exp_entries, torch.exp(-k / 2 ** ar.exp_frac), torch.zeros_like(k))
        return E / E.sum()

    def step(self, x, label):
        L = len(self.W)
        v = [torch.tensor([1.0 - 2 * b for b in lf.bits(self.B[l].shape[0])], dtype=torch.float64)
             for l, lf in enumerate(self.lfsr)]
        ys, As, d = [x], [], None
        for l in range(L):
            a = self.W[l] @ ys[-1] + self.b[l]                                   # eq. 1
            t = self.W[l] @ d if d is not None else torch.zeros_like(a)
            if l < L - 1:
                ys.append(a.clamp(min=0))
                d = (a > 0).double() * t + v[l]                                  # eq. 12
            else:
                ys.append(a)
                d = t
            As.append(a)
        p = self.softmax(ys[-1])
        e = p.clone()
        e[label] -= 1.0
        deltas = []
        for l in range(L - 1):
            g = self.B[l] @ e                                                    # eq. 6
            self.B[l] = self.B[l] + self.alpha * (torch.outer(v[l], d) - self.B[l])   # eq. 17
            deltas.append((As[l] > 0).double() * g)
        deltas.append(e)
        for l in range(L):                                                       # eqs. 2-4
            self.W[l] = self.W[l] - self.eta * torch.outer(deltas[l], ys[l])
            self.b[l] = self.b[l] - self.eta * deltas[l]
        return {"a": As, "p": p}


def test_wide_formats_track_the_float_hardware_setting(digits):
    ar = WIDE.arith
    fixed = FixedModel(WIDE)
    flt = FloatHardwareStep(fixed)
    x_q = fixed.quantize_input(digits.x_train[:8])
    worst = 0.0
    for k in range(8):
        label = int(digits.y_train[k])
        out = fixed.step(x_q[k], label)
        ref = flt.step(x_q[k].double() / ar.act.scale, label)
        assert torch.allclose(out["p"].double() / ar.err.scale, ref["p"], atol=1e-6, rtol=0)
        for l in range(3):
            assert torch.allclose(out[f"a{l + 1}"].double() / ar.act.scale, ref["a"][l], atol=1e-5, rtol=0)
        for l in range(3):
            for got, want, fmt in ((fixed.W[l], flt.W[l], ar.weight), (fixed.b[l], flt.b[l], ar.weight)):
                err = float((got.double() / fmt.scale - want).abs().max())
                worst = max(worst, err)
        for l in range(2):
            worst = max(worst, float((fixed.B[l].double() / ar.feedback.scale - flt.B[l]).abs().max()))
    assert worst < 1e-6, worst
    # and the step did move the parameters far more than that
    assert float((fixed.W[0].double() / ar.weight.scale - FixedModel(WIDE).W[0].double() / ar.weight.scale)
                 .abs().max()) > 1e-3
    assert float(fixed.B[0].abs().max()) / ar.feedback.scale > 1e-2


def test_wide_formats_fit_int64():
    """The widest accumulator the config allows (64 bits) is what int64 holds; the
    worst-case sum of the WIDE config's forward MAC stays exact."""
    ar = WIDE.arith
    n = 64
    W = torch.full((1, n), ar.weight.min, dtype=I64)
    y = torch.full((n,), ar.act.min, dtype=I64)
    acc = W @ y + (torch.tensor([ar.weight.min]) << ar.act.frac)
    assert int(acc[0]) == n * ar.weight.min * ar.act.min + (ar.weight.min << ar.act.frac)
    assert WIDE.acc_width_needed(n) <= 64


# --------------------------------------------------------------------------------------
# train_fixed
# --------------------------------------------------------------------------------------

def test_train_fixed_schema_and_determinism(digits):
    small = Dataset("digits", digits.x_train[:300], digits.y_train[:300], digits.x_test[:100], digits.y_test[:100])
    cfg = ICE.replace(**{"train.epochs": 2})
    r1 = train_fixed(cfg, small, progress=False)
    r2 = train_fixed(cfg, small, progress=False, align_every=0)
    for key in ("test_accuracy", "history", "samples_per_s", "alignment_deg", "state_hash", "config", "algo",
                "dataset", "arch", "seed"):
        assert key in r1, key
    assert r1["state_hash"] == r2["state_hash"]                 # probes change nothing
    assert 0.0 <= r1["test_accuracy"] <= 1.0 and r1["test_accuracy"] > 0.5
    assert [h["epoch"] for h in r1["history"]] == [1, 2]
    for h in r1["history"]:
        assert {"train_accuracy", "test_accuracy", "train_loss", "test_loss", "alignment_deg"} <= set(h)
    assert len(r1["alignment_deg"]) == 1 and 0 < r1["alignment_deg"][0] < 90
    assert r2["alignment_deg"] == []
    assert r1["config"] == cfg.to_dict() and r1["arch"] == "64-32-10"
    json.dumps(r1)


def test_cli_trains_the_fixed_model(tmp_path, monkeypatch, digits):
    """``ddfa train --model fixed`` calls train_fixed and writes its schema."""
    from ddfa.cli import main
    monkeypatch.setattr("ddfa.cli.train.load_config_dataset", lambda cfg, data_dir=None: Dataset(
        "digits", digits.x_train[:200], digits.y_train[:200], digits.x_test[:50], digits.y_test[:50]))
    out = tmp_path / "r.json"
    assert main(["train", "--board", "icebreaker", "--model", "fixed", "--epochs", "1", "--no-progress",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["model"] == "fixed" and len(r["state_hash"]) == 64 and r["history"][0]["epoch"] == 1
    assert main(["train", "--board", "icebreaker", "--model", "fixed", "--algo", "dkp", "--no-progress"]) == 2
