"""``docs/ARITHMETIC.md`` reimplemented from the page alone, compared word for word with
the golden model.

Everything computed here follows the document's rules in plain Python and numpy: the
input scaling and quantisation (section 8), the host generators (4.3: MT19937, derived
seeds, the uniform draw, the permutation), the initial state (section 6), the sample
order (section 9), the direction LFSRs (4.1), the stochastic-rounding streams (4.2) and
the training step (section 5). No arithmetic comes from ``golden/``:
:class:`golden.fixed.FixedModel`, :func:`golden.order.epoch_orders` and
:func:`ddfa.data.load_dataset` are only what the results are compared with, and
``ddfa.config`` supplies the configuration values. The raw pixels come from
scikit-learn (digits) and the IDX files (MNIST), as section 8 names them.

Compared: the quantised inputs of the whole digits and MNIST sets; the initial
``W``, ``b``, ``B`` and generator states of both embedded defaults, DDFA and random DFA;
three epochs' orders; and every stored word (``W``, ``b``, ``B``, LFSR and xorshift
states, the step counter) and every intermediate (``v, a, y, t, d, p, e, g, delta``)
after each of the first training steps of the icebreaker default on digits (DDFA,
random DFA, stochastic rounding) and of the ulx3s-85f default on MNIST.

The MNIST files are looked for in ``$DDFA_DATA_DIR/mnist`` (default ``../shared/data``
beside the checkout), as in ``tests/test_data.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ddfa.config import LFSR_TAPS, Config, Fixed, default_config
from ddfa.data import load_dataset
from golden.fixed import FixedModel
from golden.order import epoch_orders

SHARED = Path(os.environ.get("DDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))

M32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------
# 4.3 Host generators
# --------------------------------------------------------------------------------------

class Mt19937:
    """MT19937 as section 4.3 states it (``torch.Generator`` on the CPU)."""

    def __init__(self, seed: int):
        st = [seed % 2**32]
        for j in range(1, 624):
            st.append((1812433253 * (st[-1] ^ (st[-1] >> 30)) + j) % 2**32)
        self.st, self.pos = st, 624

    def _regenerate(self) -> None:
        st = self.st
        for k in range(624):
            y = (st[k] & 0x80000000) | (st[(k + 1) % 624] & 0x7FFFFFFF)
            st[k] = st[(k + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self.pos = 0

    def u32(self) -> int:
        if self.pos == 624:
            self._regenerate()
        y = self.st[self.pos]
        self.pos += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y

    def words(self, n: int) -> np.ndarray:
        return np.array([self.u32() for _ in range(n)], dtype=np.int64)


def derived_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def uniform(g: Mt19937, count: int, c: float) -> np.ndarray:
    """``count`` float32 draws of ``U(-c, c)``: ``fl32(x (hi - lo) + lo)`` rounded once,
    computed as the exact float64 product ``(hi - lo) (m - 2^23) 2^-24`` (4.3)."""
    hi, lo = np.float32(c), np.float32(-c)
    span = np.float64(hi) - np.float64(lo)                 # exact: 2 hi
    m = g.words(count) & 0xFFFFFF
    v = (span * (m - 2**23).astype(np.float64) * 2.0**-24).astype(np.float32)
    return np.where(v == hi, lo, v)


def randperm(g: Mt19937, n: int) -> np.ndarray:
    r = list(range(n))
    for i in range(n - 1):
        z = g.u32() % (n - i)
        r[i], r[i + z] = r[i + z], r[i]
    return np.array(r, dtype=np.int64)


def direction_seed(seed: int, layer: int, width: int) -> int:
    s = (0x9E3779B9 * (seed + 1) + 0x7F4A7C15 * layer) % 2**width
    return s or 1


#: The taps table of section 4.1, as printed there.
DOC_TAPS = {
    8: (8, 6, 5, 4), 9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1),
    14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4), 17: (17, 14), 18: (18, 11), 19: (19, 6, 2, 1),
    20: (20, 17), 24: (24, 23, 22, 17), 31: (31, 28), 32: (32, 22, 2, 1),
}


class Galois:
    """The direction LFSR of 4.1."""

    def __init__(self, width: int, seed: int):
        self.mask = sum(1 << (t - 1) for t in DOC_TAPS[width])
        self.s = seed

    def step(self) -> int:
        bit = self.s & 1
        self.s >>= 1
        if bit:
            self.s ^= self.mask
        return bit


class Xorshift32:
    """The stochastic-rounding stream of 4.2."""

    def __init__(self, seed: int):
        self.x = seed

    def words(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        x = self.x
        for i in range(n):
            x ^= (x << 13) & M32
            x ^= x >> 17
            x ^= (x << 5) & M32
            out[i] = x
        self.x = x
        return out


# --------------------------------------------------------------------------------------
# Section 2: rounding and saturation; section 8: inputs
# --------------------------------------------------------------------------------------

def sat(x, f: Fixed):
    return np.clip(x, -(1 << (f.width - 1)), (1 << (f.width - 1)) - 1)


def round_shift(x, s: int):
    """Nearest, ties to even; a negative ``s`` shifts left."""
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    q = x >> s
    r = x & ((1 << s) - 1)
    half = 1 << (s - 1)
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def round_shift_stochastic(x, s: int, r):
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    return (x + (r & ((1 << s) - 1))) >> s


def narrow(x, s: int, f: Fixed):
    return sat(round_shift(x, s), f)


def quantize(v: np.ndarray, f: Fixed) -> np.ndarray:
    """``sat(round_half_even(v * 2^frac))`` of float32 values (product exact in float64)."""
    return sat(np.round(v.astype(np.float64) * 2.0**f.frac), f).astype(np.int64)


def pm1(pixels: np.ndarray, p_max: float) -> np.ndarray:
    return pixels.astype(np.float32) * np.float32(2 / p_max) - np.float32(1)


def standardize(x_train: np.ndarray, x_test: np.ndarray, ddof: int = 0):
    x = x_train.astype(np.float64)
    mu = x.mean(0)
    s = np.maximum(np.sqrt(((x - mu) ** 2).sum(0) / (len(x) - ddof)), 0.5)
    f = lambda t: ((t.astype(np.float64) - mu) / s).astype(np.float32)   # noqa: E731
    return f(x_train), f(x_test)


def digits_raw():
    d = load_digits()
    perm = np.random.RandomState(0).permutation(1797)
    test, train = perm[:360], perm[360:]
    return d.data[train], d.target[train], d.data[test], d.target[test]


def idx_raw(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims[0], -1)


def mnist_raw():
    d = SHARED / "mnist"
    f = lambda name: next(p for p in (d / name, d / (name + ".gz")) if p.is_file())   # noqa: E731
    return (idx_raw(f("train-images-idx3-ubyte")), idx_raw(f("train-labels-idx1-ubyte")).ravel(),
            idx_raw(f("t10k-images-idx3-ubyte")), idx_raw(f("t10k-labels-idx1-ubyte")).ravel())


def contract_inputs(cfg: Config):
    """Section 8: the quantised training and test sets and their labels. ``pm1`` is a
    function of the pixel alone, so it is evaluated once per pixel value and looked up."""
    if cfg.model.dataset == "digits":
        xtr, ytr, xte, yte = digits_raw()
        p_max = 16
    else:
        xtr, ytr, xte, yte = mnist_raw()
        p_max = 255
    if cfg.model.inputs == "standardize":
        xtr, xte = standardize(pm1(xtr, p_max), pm1(xte, p_max))
        xtr, xte = quantize(xtr, cfg.arith.act), quantize(xte, cfg.arith.act)
    else:
        table = quantize(pm1(np.arange(p_max + 1), p_max), cfg.arith.act)
        xtr, xte = table[xtr.astype(np.intp)], table[xte.astype(np.intp)]
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# --------------------------------------------------------------------------------------
# Sections 5 and 6: the model
# --------------------------------------------------------------------------------------

class Contract:
    """The processor's state and training step as ARITHMETIC.md states them."""

    def __init__(self, cfg: Config):
        m, ar = cfg.model, cfg.arith
        self.ar, self.n, self.L = ar, m.layers, len(m.layers) - 1
        self.ddfa = m.algorithm == "ddfa"
        self.stochastic = ar.rounding == "stochastic"
        n, L = self.n, self.L
        g = Mt19937(derived_seed(m.seed, "init"))            # section 6
        self.W, self.b = [], []
        for l in range(1, L + 1):
            c = 1.0 / math.sqrt(n[l - 1])
            self.W.append(quantize(uniform(g, n[l] * n[l - 1], c), ar.weight).reshape(n[l], n[l - 1]))
            self.b.append(quantize(uniform(g, n[l], c), ar.weight))
        gB = Mt19937(derived_seed(m.seed, "feedback"))
        self.B = []
        for l in range(1, L):
            if self.ddfa:
                self.B.append(np.zeros((n[l], n[L]), dtype=np.int64))
            else:
                v = uniform(gB, n[l] * n[L], math.sqrt(6.0 / n[l]))
                self.B.append(quantize(v, ar.feedback).reshape(n[l], n[L]))
        self.lfsr = [Galois(ar.lfsr_width, direction_seed(m.seed, l, ar.lfsr_width)) for l in range(1, L)]
        self.xorshift = []
        if self.stochastic:
            for l in range(1, L + 1):
                self.xorshift.append(Xorshift32(((direction_seed(m.seed, l, ar.lfsr_width) ^ 0x5BD1E995) & M32) or 1))
        self.steps = 0
        entries = ar.exp_range << ar.exp_frac
        self.T = np.array([round(2**ar.exp_bits * math.exp(-k / 2**ar.exp_frac)) for k in range(entries)],
                          dtype=np.int64)

    def step(self, x: np.ndarray, label: int) -> dict:
        """One training step; returns the intermediates by the golden model's names."""
        ar, n, L = self.ar, self.n, self.L
        out = {"x": x}
        one_act, one_err = 1 << ar.act.frac, 1 << ar.err.frac
        # 5.1 directions
        v = [np.array([-one_act if lf.step() else one_act for _ in range(n[l])], dtype=np.int64)
             for l, lf in enumerate(self.lfsr, start=1)]
        # 5.2 forward
        ys, as_, d = [x], [], None
        for l in range(1, L + 1):
            W, b = self.W[l - 1], self.b[l - 1]
            a = narrow(W @ ys[-1] + (b << ar.act.frac), ar.weight.frac, ar.act)
            t = np.zeros_like(a) if l == 1 else narrow(W @ d, ar.weight.frac, ar.act)
            if l < L:
                y = np.maximum(a, 0)
                d = sat(np.where(a > 0, t, 0) + v[l - 1], ar.act)
            else:
                y, d = a, t
            ys.append(y)
            as_.append(a)
            out.update({f"a{l}": a, f"y{l}": y, f"t{l}": t, f"d{l}": d})
            if l < L:
                out[f"v{l}"] = v[l - 1]
        y_L, d_L = ys[-1], d
        # 5.3 output unit
        z = y_L - y_L.max()
        k = round_shift(-z, ar.act.frac - ar.exp_frac)
        E = np.where(k < len(self.T), self.T[np.minimum(k, len(self.T) - 1)], 0)
        S = int(E.sum())
        r = (1 << (ar.exp_bits + ar.err.frac)) // S
        p = round_shift(E * r, ar.exp_bits)
        e = p - one_err * (np.arange(n[L]) == label)
        out.update(p=p, e=e)
        # 4.2 stochastic-rounding words: W row-major, b, then B (DDFA hidden layers)
        words = []
        for l, xs in enumerate(self.xorshift, start=1):
            cnt = n[l] * n[l - 1] + n[l] + (n[l] * n[L] if self.ddfa and l < L else 0)
            words.append(xs.words(cnt))
        # 5.4 feedback units (B of before the update)
        deltas, B_new = [], []
        for l in range(1, L):
            B = self.B[l - 1]
            g = narrow(B @ e, ar.feedback.frac, ar.err)
            if self.ddfa:
                sign = np.where(v[l - 1] < 0, -1, 1)
                vd = round_shift(sign[:, None] * d_L[None, :], ar.act.frac - ar.feedback.frac)
                if self.stochastic:
                    rB = words[l - 1][n[l] * (n[l - 1] + 1):].reshape(B.shape)
                    B = sat(B + round_shift_stochastic(vd - B, ar.alpha_shift, rB), ar.feedback)
                else:
                    B = sat(B + round_shift(vd - B, ar.alpha_shift), ar.feedback)
            B_new.append(B)
            deltas.append(np.where(as_[l - 1] > 0, g, 0))
            out[f"g{l}"], out[f"delta{l}"] = g, deltas[-1]
        deltas.append(e)
        out[f"delta{L}"] = e
        # 5.5 weight updates
        s_W = ar.err.frac + ar.act.frac + ar.lr_shift - ar.weight.frac
        s_b = ar.err.frac + ar.lr_shift - ar.weight.frac
        for l in range(1, L + 1):
            delta, y_prev = deltas[l - 1], ys[l - 1]
            prod = delta[:, None] * y_prev[None, :]
            if self.stochastic:
                nW = n[l] * n[l - 1]
                rW, rb = words[l - 1][:nW].reshape(prod.shape), words[l - 1][nW:nW + n[l]]
                dW, db = round_shift_stochastic(prod, s_W, rW), round_shift_stochastic(delta, s_b, rb)
            else:
                dW, db = round_shift(prod, s_W), round_shift(delta, s_b)
            self.W[l - 1] = sat(self.W[l - 1] - dW, ar.weight)
            self.b[l - 1] = sat(self.b[l - 1] - db, ar.weight)
        self.B = B_new
        self.steps += 1
        return out

    def state(self) -> dict:
        st = {"step": self.steps, "lfsr": [lf.s for lf in self.lfsr], "xorshift": [x.x for x in self.xorshift]}
        for l in range(1, self.L + 1):
            st[f"W{l}"] = self.W[l - 1].reshape(-1).tolist()
            st[f"b{l}"] = self.b[l - 1].tolist()
            if l < self.L:
                st[f"B{l}"] = self.B[l - 1].reshape(-1).tolist()
        return st


def golden_state(model: FixedModel) -> dict:
    st = {"step": model.steps, "lfsr": [lf.state for lf in model.lfsr],
          "xorshift": [x.state for x in model.xorshift]}
    st.update(model.memory_words())
    return st


def assert_same_state(mine: dict, golden: dict, when: str) -> None:
    assert mine.keys() == golden.keys(), when
    for key in mine:
        if mine[key] != golden[key]:
            a, b = np.array(mine[key]), np.array(golden[key])
            bad = np.flatnonzero(a != b) if a.shape == b.shape else []
            raise AssertionError(f"{when}: {key} differs ({len(bad)} words, first at {list(bad[:5])}: "
                                 f"contract {a.ravel()[bad[:5]].tolist()}, golden {b.ravel()[bad[:5]].tolist()})")


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

def _config(board: str, **changes) -> Config:
    cfg = default_config(board)
    return cfg.replace(**changes) if changes else cfg


VARIANTS = {
    "icebreaker": ("icebreaker", {}),
    "icebreaker-dfa": ("icebreaker", {"model.algorithm": "dfa"}),
    "icebreaker-stochastic": ("icebreaker", {"arith.rounding": "stochastic", "hardware.board": "none"}),
    "ulx3s-85f": ("ulx3s-85f", {}),
    "ulx3s-85f-dfa": ("ulx3s-85f", {"model.algorithm": "dfa"}),
}

_INPUTS: dict = {}


def inputs(cfg: Config):
    """The contract's quantised inputs of ``cfg``'s data set (computed once), and the
    golden pipeline's: ``golden(split, rows)`` quantises those rows of ``load_dataset``'s
    ``x_train`` or ``x_test`` with :meth:`FixedModel.quantize_input`."""
    key = (cfg.model.dataset, cfg.model.inputs, cfg.arith.act)
    if key not in _INPUTS:
        _INPUTS[key] = contract_inputs(cfg)
    ds = load_dataset(cfg.model.dataset, data_dir=SHARED if cfg.model.dataset != "digits" else None,
                      inputs=cfg.model.inputs)
    model = FixedModel(cfg)

    def golden(split: str, rows=slice(None)) -> np.ndarray:
        return model.quantize_input(getattr(ds, f"x_{split}")[rows]).numpy()

    return _INPUTS[key], golden, (ds.y_train.numpy(), ds.y_test.numpy())


def assert_same_inputs(cfg: Config, chunk: int = 10000) -> None:
    (xtr, ytr, xte, yte), golden, (gytr, gyte) = inputs(cfg)
    assert np.array_equal(ytr, gytr) and np.array_equal(yte, gyte), "labels"
    for split, x in (("train", xtr), ("test", xte)):
        for i in range(0, len(x), chunk):
            g = golden(split, slice(i, i + chunk))
            assert np.array_equal(x[i:i + chunk], g), f"{cfg.model.dataset} {cfg.arith.act} x_{split}[{i}:]"
        assert len(golden(split, slice(len(x), None))) == 0


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

def test_stated_constants():
    """The reference values and tables the document prints."""
    assert Mt19937(5489).u32() == 3499211612
    assert Xorshift32(2463534242).words(1)[0] == 723471715
    assert DOC_TAPS == LFSR_TAPS
    assert Galois(32, 1).mask == 0x80200003
    assert derived_seed(0, "init") == 0x63E1A981777FB7AF and derived_seed(0, "init") % 2**32 == 2004858799
    assert derived_seed(0, "feedback") == 0x6FCC1B538AEDCBDE
    for board in ("icebreaker", "ulx3s-85f"):
        cfg = default_config(board)
        assert [direction_seed(0, l, 32) for l in (1, 2)] == [495056334, 2630644195]
        assert [cfg.direction_seed(l) for l in (1, 2)] == [495056334, 2630644195]
        ar = cfg.arith
        assert (ar.exp_frac, ar.exp_range, ar.exp_bits, ar.lfsr_width) == (5, 12, 15, 32)
        T = Contract(cfg).T
        assert len(T) == 384 and T[0] == 32768 and T[354] == 1 and not T[355:].any()
    assert default_config("icebreaker").softmax_fold and not default_config("ulx3s-85f").softmax_fold


def test_lfsr_output_recurrence():
    """4.1's equivalent description: o_k = seed_k XOR (XOR over taps t <= k of o_(k-t))."""
    for width in (8, 17, 32):
        seed = direction_seed(7, 1, width)
        lf = Galois(width, seed)
        out = [lf.step() for _ in range(300)]
        for k in range(300):
            o = (seed >> k) & 1 if k < width else 0
            for t in DOC_TAPS[width]:
                if t <= k:
                    o ^= out[k - t]
            assert out[k] == o, (width, k)


def test_digits_inputs():
    """Section 8: every quantised digits input, both splits, both scalings."""
    for act in (Fixed(16, 9), Fixed(18, 10)):
        for scaling in ("standardize", "pm1"):
            assert_same_inputs(_config("icebreaker", **{"model.inputs": scaling, "arith.act": act,
                                                        "arith.acc_width": 48, "hardware.board": "none"}))
    # the population deviation matters: the sample deviation changes 6,962 of 91,968 words
    xtr, _, xte, _ = digits_raw()
    pop = quantize(standardize(pm1(xtr, 16), pm1(xte, 16))[0], Fixed(16, 9))
    smp = quantize(standardize(pm1(xtr, 16), pm1(xte, 16), ddof=1)[0], Fixed(16, 9))
    assert (pop != smp).sum() == 6962 and pop.size == 91968


def test_mnist_inputs():
    """Section 8: every quantised MNIST input of the ulx3s-85f default (pm1, Q8.10)."""
    assert_same_inputs(default_config("ulx3s-85f"))


def test_epoch_orders():
    """Section 9 and 4.3: three epochs of digits, one of MNIST, on one generator."""
    for n, epochs in ((1437, 3), (60000, 1)):
        g = Mt19937(0)
        orders = epoch_orders(n, 0)
        for e in range(epochs):
            assert np.array_equal(randperm(g, n), next(orders).numpy()), (n, e)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_initial_state(variant):
    """Section 6: every initial word and generator state."""
    board, changes = VARIANTS[variant]
    cfg = _config(board, **changes)
    when = f"{variant}, initial state"
    assert_same_state(Contract(cfg).state(), golden_state(FixedModel(cfg)), when)


@pytest.mark.parametrize("variant, steps", [("icebreaker", 50), ("icebreaker-dfa", 20),
                                            ("icebreaker-stochastic", 20), ("ulx3s-85f", 20)])
def test_training_steps(variant, steps):
    """Sections 5 and 9: every stored word after each of the first training steps, each
    side on its own inputs, order and initial state."""
    board, changes = VARIANTS[variant]
    cfg = _config(board, **changes)
    (x_mine, y_mine, _, _), golden_x, (y_gold, _) = inputs(cfg)
    mine, golden = Contract(cfg), FixedModel(cfg)
    order_mine = randperm(Mt19937(cfg.model.seed), len(x_mine))
    order_gold = next(epoch_orders(len(y_gold), cfg.model.seed)).numpy()
    x_gold = golden_x("train", torch.from_numpy(order_gold[:steps]))
    with torch.inference_mode():
        for i in range(steps):
            out_mine = mine.step(x_mine[order_mine[i]], int(y_mine[order_mine[i]]))
            out_gold = golden.step(torch.from_numpy(x_gold[i]), int(y_gold[order_gold[i]]))
            # the intermediates too: the sign convention of v, for one, is invisible in
            # the stored words (flipping every v_i flips d_L, and vd = sign(v) d_L stays)
            assert_same_state({k: t.tolist() for k, t in out_mine.items()},
                              {k: t.tolist() for k, t in out_gold.items()}, f"{variant}, step {i + 1}")
            assert_same_state(mine.state(), golden_state(golden), f"{variant}, after step {i + 1}")
