"""The fixed-point golden model: the exact arithmetic of the DDFA processor.

:class:`FixedModel` holds what the processor holds -- the memories ``W_l``, ``b_l``,
``B_l`` (int64 tensors of stored integers), the direction LFSRs and the step counter --
and :meth:`FixedModel.step` runs one training step (``docs/ARITHMETIC.md`` section 5)
by calling the block functions of :mod:`golden.arith` in the order the hardware does:

1. directions ``v_l`` (one LFSR per hidden layer, section 4.1);
2. layer engine, ``l = 1..L``: ``a_l, y_l, t_l, d_l`` (eqs. 1 and 12);
3. output unit: ``p = softmax(y_L)``, ``e = p - onehot`` (eq. 3);
4. feedback units, all hidden layers at once: ``g_l = B_l e`` (eq. 6), the moving
   average of ``B_l`` (eq. 17), ``delta_l = relu'(a_l) * g_l``; ``delta_L = e``;
5. weight updates ``W_l -= eta delta_l y_{l-1}^T``, ``b_l -= eta delta_l`` (eqs. 2-4).

Backpropagation (``model.algorithm = "bp"``, section 11) is the same step without
directions, tangents and feedback matrices: step 4 is the backward pass ``delta_l =
relu'(a_l) * (W_{l+1}^T delta_{l+1})`` (eq. 5, :func:`golden.arith.backward_unit`) with
the weights of before this step's update. The processor does not run it: this is the
contract a backpropagation processor is to be built bit-exact against.

The cocotb benches compare :meth:`FixedModel.memory_words` with the hardware's memories
after every step, and load and dump the hardware's state as the ``$readmemh`` images of
:meth:`FixedModel.export_images` (section 7).

:func:`train_fixed` is ``ddfa train --model fixed``: the same result schema as the float
model's :func:`golden.float_model.train_float`, on the same sample order
(:func:`golden.order.epoch_orders`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ddfa.config import Config, ConfigError, split_banks

from .alignment import angle_deg
from .diverge import check_divergence
from .arith import (backward_unit, directions, exp_table, feedback_unit, layer_forward, narrow, output_unit,
                    quantize, weight_update)
from .order import derived_seed, epoch_orders
from .streams import LfsrStream, Xorshift32Stream, sr_seed

__all__ = ["FixedModel", "train_fixed", "softmax_error_bound", "IMAGE_FORMAT", "FIXED_ALGORITHMS"]

I64 = torch.int64

#: The algorithms this model runs: the processor's (``ddfa.config.PROCESSOR_ALGORITHMS``)
#: and backpropagation, whose fixed-point rule (``docs/ARITHMETIC.md`` section 11) no
#: processor implements yet.
FIXED_ALGORITHMS = ("ddfa", "dfa", "bp")

#: ``manifest.json`` ``format`` field of the memory images (section 7).
IMAGE_FORMAT = "ddfa-memory-images/1"


def _check_hardware_form(cfg: Config) -> None:
    """The fixed-point model runs the processor's setting (and backpropagation in it,
    ``docs/ARITHMETIC.md`` section 11): refuse settings it does not have."""
    m = cfg.model
    if m.algorithm not in FIXED_ALGORITHMS:
        raise ConfigError("model.algorithm", f"the fixed-point model runs {', '.join(FIXED_ALGORITHMS)}, "
                          f"not {m.algorithm!r}",
                          "use --algo ddfa, dfa or bp, or train the float model (--model float)")
    if m.conv:
        raise ConfigError("model.conv", "the fixed-point model runs fully-connected networks only",
                          "use an arch such as 784-128-10, or the float model for the CNN")
    a = cfg.arith
    checks = [
        ("train.batch_size", cfg.batch_size == 1, f"batch size {cfg.batch_size}",
         "the processor trains on one sample at a time: use batch size 1"),
        ("train.optimizer", cfg.optimizer == "sgd", f"optimizer {cfg.optimizer!r}",
         "the processor does plain SGD: use --optimizer sgd (or --setting hardware)"),
        ("train.directions", cfg.directions == "rademacher", f"directions {cfg.directions!r}",
         "the processor draws Rademacher directions: use --directions rademacher"),
        ("train.feedback_update", m.algorithm != "ddfa" or cfg.feedback_update == "ema",
         f"feedback update {cfg.feedback_update!r}", "the processor runs eq. 17: use --feedback-update ema"),
        ("train.batchnorm", not cfg.train.batchnorm, "BatchNorm", "the processor has no BatchNorm: drop --bn"),
        ("train.init", cfg.train.init == "default", f"init {cfg.train.init!r}",
         "the fixed-point model starts from PyTorch's default initialisation: use --init default"),
        ("train.lr", cfg.lr == 2.0 ** -a.lr_shift, f"lr = {cfg.lr}",
         f"the processor's rate is 2**-arith.lr_shift = {2.0 ** -a.lr_shift}: set arith.lr_shift, not train.lr"),
        ("train.alpha", m.algorithm != "ddfa" or cfg.alpha == 2.0 ** -a.alpha_shift, f"alpha = {cfg.alpha}",
         f"the processor's rate is 2**-arith.alpha_shift = {2.0 ** -a.alpha_shift}: set arith.alpha_shift"),
        ("train.lr_decay", cfg.lr_decay == 1.0, f"lr_decay = {cfg.lr_decay}",
         "the processor's rate is a constant shift: use lr_decay 1.0 (--setting hardware)"),
    ]
    for fld, ok, what, fix in checks:
        if not ok:
            raise ConfigError(fld, f"{what} is not what the fixed-point model runs", fix)


def _uniform(shape, bound: float, g: torch.Generator) -> torch.Tensor:
    """``U(-bound, bound)`` in float32 as ``docs/ARITHMETIC.md`` 4.3 defines it: the float
    model's ``uniform_(-bound, bound)`` draw, rounded once on every CPU.

    ``uniform_(0, 1)`` gives ``x = m 2^-24`` exactly (one generator word per element, as
    ``uniform_(-bound, bound)`` takes), and ``(hi - lo) (x - 1/2)`` is exact in float64,
    so one rounding to float32 gives the contract's value. PyTorch's own kernel for the
    symmetric range rounds once with AVX2/AVX512 and twice in its generic build."""
    hi = float(torch.tensor(bound, dtype=torch.float32))
    x = torch.empty(shape).uniform_(0.0, 1.0, generator=g).double()
    v = ((x - 0.5) * (2.0 * hi)).float()
    return torch.where(v == hi, torch.tensor(-hi, dtype=torch.float32), v)


def softmax_error_bound(cfg: Config) -> float:
    """Largest possible ``|p_o - softmax(y_L)_o|`` of the output unit, in units of 1.0
    (``docs/ARITHMETIC.md`` section 5.3, "Accuracy of the softmax").

    With ``h = 2^-(exp_frac+1)`` (index rounding), ``eta = max(2^-(exp_bits+1),
    exp(-exp_range + h))`` (table rounding or a dropped entry, relative to the
    maximum's entry 1.0) and ``n = n_L``::

        |p_o - q_o| <= (1/4) * 2 sinh(h) / (exp(-h) - n eta) + (n + 1) eta + 1.5 * 2^-err.frac
    """
    a = cfg.arith
    n = cfg.model.n_outputs
    h = 2.0 ** -(a.exp_frac + 1)
    eta = max(2.0 ** -(a.exp_bits + 1), math.exp(-a.exp_range + h))
    return 0.25 * 2 * math.sinh(h) / (math.exp(-h) - n * eta) + (n + 1) * eta + 1.5 * 2.0 ** -a.err.frac


class FixedModel:
    """The processor's state and its training step, bit for bit.

    Parameters
    ----------
    cfg : Config
        The validated configuration; ``model.algorithm`` must be ``ddfa``, ``dfa`` or
        ``bp`` (anything else raises :class:`~ddfa.config.ConfigError` naming the field).

    Attributes
    ----------
    W, b : list of torch.Tensor
        ``W[l-1]`` is ``W_l`` (``n_l x n_{l-1}``, weight format), ``b[l-1]`` is ``b_l``.
    B : list of torch.Tensor
        ``B[l-1]`` is ``B_l`` (``n_l x n_L``, feedback format) of hidden layer ``l``;
        empty for backpropagation.
    lfsr : list of LfsrStream
        ``lfsr[l-1]``: direction generator of hidden layer ``l``; empty for
        backpropagation, which draws no directions.
    xorshift : list of Xorshift32Stream
        ``xorshift[l-1]``: stochastic-rounding stream of layer ``l`` (only with
        ``arith.rounding = "stochastic"``; empty otherwise).
    steps : int
        Training steps done.

    Notes
    -----
    Initial state (``docs/ARITHMETIC.md`` section 6): the float model's initialisation,
    quantised. ``W_l`` and ``b_l`` are PyTorch's default ``nn.Linear`` distribution,
    ``U(+-1/sqrt(n_{l-1}))``, drawn as float32 with ``uniform_`` from one
    ``torch.Generator`` seeded with ``derived_seed(model.seed, "init")``, layer by layer,
    W then b; DDFA: ``B_l = 0``; random DFA: ``B_l ~ U(+-sqrt(6 / n_l))`` from a
    generator seeded with ``derived_seed(model.seed, "feedback")``, hidden layers in
    order; backpropagation: no ``B``. Then ``quantize`` to the weight and feedback formats.
    """

    def __init__(self, cfg: Config):
        _check_hardware_form(cfg)
        self.cfg = cfg
        self.ar = cfg.arith
        self.sizes = cfg.model.layers
        self.L = cfg.model.n_layers
        self.ddfa = cfg.model.algorithm == "ddfa"
        self.bp = cfg.model.algorithm == "bp"
        self.stochastic = self.ar.rounding == "stochastic"
        ar, n = self.ar, self.sizes
        g = torch.Generator().manual_seed(derived_seed(cfg.model.seed, "init"))
        self.W, self.b = [], []
        for l in range(1, self.L + 1):
            bound = 1.0 / math.sqrt(n[l - 1])
            W = _uniform((n[l], n[l - 1]), bound, g)
            b = _uniform((n[l],), bound, g)
            self.W.append(quantize(W, ar.weight))
            self.b.append(quantize(b, ar.weight))
        # DDFA and DFA: feedback matrices and direction generators of the hidden layers;
        # backpropagation has neither.
        hidden = range(1, self.L) if not self.bp else range(0)
        gB = torch.Generator().manual_seed(derived_seed(cfg.model.seed, "feedback"))
        self.B = []
        for l in hidden:
            if self.ddfa:
                self.B.append(torch.zeros(n[l], n[-1], dtype=I64))
            else:
                self.B.append(quantize(_uniform((n[l], n[-1]), math.sqrt(6.0 / n[l]), gB), ar.feedback))
        self.lfsr = [LfsrStream(ar.lfsr_width, cfg.direction_seed(l)) for l in hidden]
        self.xorshift = ([Xorshift32Stream(sr_seed(cfg.direction_seed(l))) for l in range(1, self.L + 1)]
                         if self.stochastic else [])
        self.steps = 0

    # -- inputs and inference ----------------------------------------------------------

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Float inputs (one sample or a batch, in [-1, 1]) to the act format (section 2)."""
        return quantize(x, self.ar.act)

    def logits(self, x_q: torch.Tensor) -> torch.Tensor:
        """``y_L`` (act format) of a batch ``(N, n_0)`` of quantised inputs: step 2 of
        section 5 without tangents and directions, row by row the same integers as
        :func:`golden.arith.layer_forward`. Changes no state."""
        ar, y = self.ar, x_q
        for l in range(self.L):
            a = narrow(y @ self.W[l].T + (self.b[l] << ar.act.frac), ar.weight.frac, ar.act)  # eq. 1
            y = a if l == self.L - 1 else a.clamp(min=0)
        return y

    def predict_batch(self, x_q: torch.Tensor) -> torch.Tensor:
        """Classes of a batch of quantised inputs: ``argmax_o y_L,o``, lowest index on ties."""
        return self.logits(x_q).argmax(dim=1)

    def predict(self, x_q: torch.Tensor) -> int:
        """The class of one quantised input (section 5, "Inference"); no state changes,
        no LFSR draws. Uses :func:`golden.arith.layer_forward` itself."""
        y = x_q
        for l in range(self.L):
            out = l == self.L - 1
            v = None if out else torch.zeros(self.sizes[l + 1], dtype=I64)
            _, y, _, _ = layer_forward(self.ar, self.W[l], self.b[l], y, None, v, out)
        return int(y.argmax())

    # -- one training step -------------------------------------------------------------

    def step(self, x_q: torch.Tensor, label: int) -> dict[str, torch.Tensor]:
        """One training step (section 5): updates every memory, the LFSRs, the counter.

        Parameters
        ----------
        x_q : torch.Tensor
            One quantised input ``(n_0,)``, act format (:meth:`quantize_input`).
        label : int
            Its class.

        Returns
        -------
        dict
            The intermediates, stored integers in their formats: ``x``; per hidden layer
            ``l``: ``v<l>``, ``a<l>``, ``y<l>``, ``t<l>``, ``d<l>``, ``g<l>``,
            ``delta<l>``; for the output layer ``L``: ``a<L>``, ``y<L>``, ``t<L>``,
            ``d<L>``, ``delta<L>`` (``= e``); and ``p``, ``e``. Backpropagation
            (section 11) has no ``v``, ``t``, ``d``, and its ``g<l>`` is
            ``W_{l+1}^T delta_{l+1}`` narrowed to the err format.
        """
        ar, L, bp = self.ar, self.L, self.bp
        out: dict[str, torch.Tensor] = {"x": x_q}
        # 1. Directions, one LFSR per hidden layer (section 4.1); none for backpropagation.
        v = [directions(lf, self.sizes[l], ar.act) for l, lf in enumerate(self.lfsr, start=1)]
        # 2. Layer engine, l = 1..L (eq. 1 primal, eq. 12 tangent; d_0 = 0).
        y_prev, d_prev = x_q, None
        ys, as_ = [x_q], []
        for l in range(1, L + 1):
            last = l == L
            vl = None if last or bp else v[l - 1]
            a, y, t, d = layer_forward(ar, self.W[l - 1], self.b[l - 1], y_prev, d_prev, vl, last, tangent=not bp)
            if vl is not None:
                out[f"v{l}"] = vl
            out[f"a{l}"], out[f"y{l}"] = a, y
            if not bp:
                out[f"t{l}"], out[f"d{l}"] = t, d
            ys.append(y)
            as_.append(a)
            y_prev, d_prev = y, d
        d_L = d_prev
        # 3. Output/error unit: e = softmax(y_L) - onehot (dL/dy_L, eq. 3).
        p, e = output_unit(ar, y_prev, label)
        out["p"], out["e"] = p, e
        rand = [x.words(self._words(l)) for l, x in enumerate(self.xorshift, start=1)] if self.stochastic else None
        deltas, B_new = [e], []                                  # delta_L = e
        if bp:
            # 4. Backward pass, l = L-1..1 (eq. 5), through W_{l+1} as it was before step 5.
            for l in range(L - 1, 0, -1):
                g, delta = backward_unit(ar, self.W[l], deltas[0], as_[l - 1])
                out[f"g{l}"], out[f"delta{l}"] = g, delta
                deltas.insert(0, delta)
        else:
            # 4. Feedback units, every hidden layer on the same bus beats (eq. 6, eq. 17).
            for l in range(1, L):
                rB = None
                if rand is not None and self.ddfa:
                    nW = self.sizes[l] * (self.sizes[l - 1] + 1)
                    rB = torch.from_numpy(rand[l - 1][nW:]).view(self.sizes[l], self.sizes[-1])
                g, B = feedback_unit(ar, self.B[l - 1], e, v[l - 1], d_L, update=self.ddfa, rand_B=rB)
                delta = torch.where(as_[l - 1] > 0, g, 0)        # delta_l = relu'(a_l) g_l (eq. 4, 6)
                out[f"g{l}"], out[f"delta{l}"] = g, delta
                deltas.insert(l - 1, delta)
                B_new.append(B)
        out[f"delta{L}"] = e
        # 5. Weight updates, every layer at once (eqs. 2-4), from steps 2-4 only.
        for l in range(1, L + 1):
            rW = rb = None
            if rand is not None:
                n_o, n_i = self.sizes[l], self.sizes[l - 1]
                r = torch.from_numpy(rand[l - 1])
                rW, rb = r[:n_o * n_i].view(n_o, n_i), r[n_o * n_i:n_o * (n_i + 1)]
            self.W[l - 1], self.b[l - 1] = weight_update(ar, self.W[l - 1], self.b[l - 1], deltas[l - 1],
                                                         ys[l - 1], rW, rb)
        self.B = B_new
        self.steps += 1
        return out

    def train_step(self, x_q: np.ndarray, label: int) -> np.ndarray:
        """The training step of :meth:`step`, computed with numpy on the same memories:
        the same integers, several times faster (numpy's per-operation overhead is a
        third of torch's, and this path does fewer, in-place operations). It returns
        only ``y_L``, and updates ``W``, ``b``, ``B`` in place (the tensors share memory
        with the numpy arrays used here); :meth:`step` replaces them instead.

        :meth:`step` is the reference: it calls the block functions of
        :mod:`golden.arith` one by one. This is the same sequence written out with
        formulas that give the same integers:

        * ``round_shift(x, s)`` as ``(x + (x >> s & 1) + half - 1) >> s`` (ties to
          even; ``r + q[0] > half`` <=> ``x + q[0] + half - 1 >= (q + 1) 2^s``);
        * saturation as an in-place clamp;
        * ``round_shift(v_i d_o, s)`` as ``v_i round_shift(d_o, s)`` (``v_i = +-1``,
          and rounding ties to even is odd-symmetric);
        * weight-update rows with ``delta_i = 0`` skipped: their update term is
          ``round(0) = 0`` (also stochastically: ``(0 + (r mod 2^s)) >> s = 0``), and
          the stored words are already in range.

        * backpropagation's ``W_{l+1}^T delta_{l+1}`` as ``delta_{l+1} @ W_{l+1}`` (the
          same sum), before the in-place updates of step 5.

        ``tests/test_fixed_fast.py`` runs both side by side, for DDFA and DFA, nearest
        and stochastic rounding, one to three hidden layers and random formats, and
        demands equal memories, LFSR states and outputs after every step;
        ``tests/test_fixed_bp.py`` does the same for backpropagation.
        """
        P = self._fast_plan()
        L, n, bp = self.L, self.sizes, self.bp
        W, b, B = self._numpy_state()
        sgn = [1 - 2 * lf.bits_array(n[l]) for l, lf in enumerate(self.lfsr, start=1)]  # 5.1, v / act.one
        y, d = x_q, None
        ys, pos = [x_q], []
        for l in range(L):                                                   # 5.2, eqs. 1, 12
            a = W[l] @ y
            a += b[l] << P.act_frac
            a = _clamp(_rs(a, P.wt_frac), P.act_lo, P.act_hi)
            if l == L - 1:
                y = a
                if not bp:
                    t = (np.zeros_like(a) if d is None
                         else _clamp(_rs(W[l] @ d, P.wt_frac), P.act_lo, P.act_hi))
                    d = t
            else:
                p = a > 0
                pos.append(p)
                y = a * p
                if bp:                                                       # no tangent path
                    pass
                elif d is None:
                    d = _clamp(sgn[l] * P.act_one, P.act_lo, P.act_hi)
                else:
                    t = _clamp(_rs(W[l] @ d, P.wt_frac), P.act_lo, P.act_hi)
                    t *= p
                    t += sgn[l] * P.act_one
                    d = _clamp(t, P.act_lo, P.act_hi)
            ys.append(y)
        k = _rs(y.max() - y, P.k_shift)                                      # 5.3, softmax
        np.minimum(k, P.exp_entries, out=k)
        E = P.table[k]                                                       # entry exp_entries is 0
        r = P.softmax_num // int(E.sum())
        E *= r
        e = _rs(E, P.exp_bits)
        e[label] -= P.err_one                                                # e = p - onehot
        rand = [x.words(self._words(l)) for l, x in enumerate(self.xorshift, start=1)] if self.stochastic else None
        deltas = [e]                                                         # delta_L = e
        if bp:
            for l in range(L - 2, -1, -1):                                   # 11, eq. 5
                g = _clamp(_rs(deltas[0] @ W[l + 1], P.wt_frac), P.err_lo, P.err_hi)
                g *= pos[l]
                deltas.insert(0, g)
        else:
            for l in range(L - 1):                                           # 5.4, eqs. 6, 17
                g = _clamp(_rs(B[l] @ e, P.fb_frac), P.err_lo, P.err_hi)
                if self.ddfa:
                    vd = sgn[l][:, None] * _rs(d, P.vd_shift)
                    vd -= B[l]
                    if rand is None:
                        step = _rs(vd, P.alpha_shift)
                    else:
                        nW = n[l + 1] * (n[l] + 1)
                        step = _rss(vd, P.alpha_shift, rand[l][nW:].reshape(B[l].shape))
                    B[l] += step
                    _clamp(B[l], P.fb_lo, P.fb_hi)
                g *= pos[l]
                deltas.insert(l, g)
        for l in range(L):                                                   # 5.5, eqs. 2-4
            delta = deltas[l]
            rows = np.flatnonzero(delta)
            if rows.size == 0:
                continue
            dense = rows.size == delta.size
            dr = delta if dense else delta[rows]
            prod = np.multiply.outer(dr, ys[l])
            if rand is None:
                dW, db = _rs(prod, P.s_W), _rs(dr, P.s_b)
            else:
                m = n[l + 1] * n[l]
                rW = rand[l][:m].reshape(n[l + 1], n[l])
                rb = rand[l][m:m + n[l + 1]]
                dW = _rss(prod, P.s_W, rW if dense else rW[rows])
                db = _rss(dr, P.s_b, rb if dense else rb[rows])
            if dense:
                W[l] -= dW
                _clamp(W[l], P.wt_lo, P.wt_hi)
                b[l] -= db
                _clamp(b[l], P.wt_lo, P.wt_hi)
            else:
                W[l][rows] = _clamp(W[l][rows] - dW, P.wt_lo, P.wt_hi)
                b[l][rows] = _clamp(b[l][rows] - db, P.wt_lo, P.wt_hi)
        self.steps += 1
        return y

    def _fast_plan(self) -> SimpleNamespace:
        """The constants of :meth:`train_step` (python ints, the exp table as numpy with
        a trailing 0 for ``k >= exp_entries``), computed once per model."""
        P = self.__dict__.get("_plan")
        if P is None:
            ar = self.ar
            act, err, wt, fb = ar.act, ar.err, ar.weight, ar.feedback
            P = SimpleNamespace(
                act_frac=act.frac, act_one=act.one, act_lo=act.min, act_hi=act.max,
                wt_frac=wt.frac, wt_lo=wt.min, wt_hi=wt.max, fb_frac=fb.frac, fb_lo=fb.min, fb_hi=fb.max,
                err_one=err.one, err_lo=err.min, err_hi=err.max,
                k_shift=act.frac - ar.exp_frac, exp_entries=ar.exp_entries, exp_bits=ar.exp_bits,
                table=np.append(exp_table(ar).numpy(), 0).astype(np.int64),
                softmax_num=1 << (ar.exp_bits + err.frac), vd_shift=act.frac - fb.frac,
                alpha_shift=ar.alpha_shift, s_W=ar.weight_update_shift, s_b=ar.bias_update_shift)
            self._plan = P
        return P

    def _numpy_state(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``W``, ``b``, ``B`` as numpy arrays sharing memory with the tensors (cached
        while the tensors are the same objects; :meth:`step` and users may replace them)."""
        key = tuple(map(id, self.W + self.b + self.B))
        cache = self.__dict__.get("_np")
        if cache is None or cache[0] != key:
            for ts in (self.W, self.b, self.B):
                for i, t in enumerate(ts):
                    if not t.is_contiguous() or t.dtype != I64:
                        ts[i] = t.to(I64).contiguous()
            key = tuple(map(id, self.W + self.b + self.B))
            cache = (key, [w.numpy() for w in self.W], [x.numpy() for x in self.b], [x.numpy() for x in self.B],
                     self.W + self.b + self.B)
            self._np = cache
        return cache[1], cache[2], cache[3]

    def _words(self, l: int) -> int:
        """Stochastic-rounding words layer ``l`` draws per step (section 4.2): one per
        rounded update term, W row-major, then b, then (DDFA hidden layers) B row-major."""
        n = self.sizes
        words = n[l] * (n[l - 1] + 1)
        if self.ddfa and l < self.L:
            words += n[l] * n[-1]
        return words

    # -- the memories (section 7) ------------------------------------------------------

    def memory_tensors(self) -> dict[str, torch.Tensor]:
        """Every learned memory as its logical (unbanked) tensor, in
        ``cfg.memory_words`` order: ``W1, b1, B1, W2, b2, ...`` (no ``B`` for
        backpropagation)."""
        mem = {}
        for l in range(1, self.L + 1):
            mem[f"W{l}"] = self.W[l - 1]
            mem[f"b{l}"] = self.b[l - 1]
            if l <= len(self.B):
                mem[f"B{l}"] = self.B[l - 1]
        return mem

    def memory_words(self) -> dict[str, list[int]]:
        """Every learned memory as a list of stored (signed) integers in address order
        (``W`` and ``B`` row-major): what the cocotb bench compares word for word."""
        return {k: t.reshape(-1).tolist() for k, t in self.memory_tensors().items()}

    def banks(self, l: int) -> list[torch.Tensor]:
        """The PE banks of ``W_l`` (section 7; :func:`ddfa.config.split_banks`): PE ``p``
        holds rows ``i`` with ``i mod P_l = p``, bank address ``(i div P_l) * n_{l-1} + j``."""
        return split_banks(self.W[l - 1], self.cfg.hardware.pes[l - 1])

    def random_states(self) -> dict:
        """The generator states: ``lfsr`` per hidden layer and, with stochastic rounding,
        ``xorshift`` per layer (JSON object keys are layer numbers as strings)."""
        st = {"lfsr": {str(l): s.state for l, s in enumerate(self.lfsr, start=1)}}
        if self.stochastic:
            st["xorshift"] = {str(l): x.state for l, x in enumerate(self.xorshift, start=1)}
        return st

    def _hash_header(self, rs: dict | None = None) -> dict:
        return {"memories": [[k, w, b] for k, (w, b) in self.cfg.memory_words.items()],
                "step": self.steps, **(rs if rs is not None else self.random_states())}

    def state_hash(self) -> str:
        """sha256 of the state (section 7): the canonical JSON of the hash header
        (``memories`` as ``[name, words, width]``, ``step``, ``lfsr``, ``xorshift``),
        a newline, then every logical image's text in ``cfg.memory_words`` order.
        Backpropagation: ``W`` and ``b`` only, ``lfsr`` empty (section 11)."""
        h = hashlib.sha256()
        h.update(_canonical(self._hash_header()).encode() + b"\n")
        widths = self.cfg.memory_words
        for name, t in self.memory_tensors().items():
            h.update(_hex_text(t, widths[name][1]).encode())
        return h.hexdigest()

    def export_images(self, directory: str | Path) -> dict:
        """Write the memory images (``$readmemh`` hex files) and ``manifest.json``.

        One file per memory, ``<name>.hex``, logical (unbanked) layout; with a board,
        also the PE banks of each ``W<l>``, ``W<l>_pe<p>.hex``. Returns the manifest.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        widths = self.cfg.memory_words
        rs = self.random_states()
        memories = []
        for name, t in self.memory_tensors().items():
            words, width = widths[name]
            (d / f"{name}.hex").write_text(_hex_text(t, width))
            entry = {"name": name, "words": words, "width": width, "file": f"{name}.hex"}
            if name.startswith("W") and self.cfg.has_board:
                l = int(name[1:])
                entry["banks"] = []
                for p, bank in enumerate(self.banks(l)):
                    fname = f"{name}_pe{p}.hex"
                    (d / fname).write_text(_hex_text(bank, width))
                    entry["banks"].append({"pe": p, "words": bank.numel(), "file": fname})
            memories.append(entry)
        manifest = {"format": IMAGE_FORMAT, "config": self.cfg.name, "step": self.steps, **rs,
                    "memories": memories, "state_hash": self.state_hash()}
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return manifest

    @classmethod
    def from_images(cls, cfg: Config, directory: str | Path) -> "FixedModel":
        """The model whose state is the images in ``directory`` (as written by
        :meth:`export_images`, or dumped by the processor). Checks every memory's name,
        size and width against ``cfg``, and the banks against the logical images."""
        d = Path(directory)
        manifest = json.loads((d / "manifest.json").read_text())
        if manifest.get("format") != IMAGE_FORMAT:
            raise ValueError(f"{d / 'manifest.json'}: format {manifest.get('format')!r}, expected {IMAGE_FORMAT!r}")
        model = cls(cfg)
        expect = cfg.memory_words
        got = {m["name"]: m for m in manifest["memories"]}
        if set(got) != set(expect):
            raise ValueError(f"{d}: memories {sorted(got)} do not match the configuration's {sorted(expect)}")
        tensors = model.memory_tensors()
        for name, (words, width) in expect.items():
            m = got[name]
            if (m["words"], m["width"]) != (words, width):
                raise ValueError(f"{d}: {name} is {m['words']} words of {m['width']} bits, the configuration "
                                 f"has {words} of {width}")
            values = _read_hex(d / m["file"], width, words)
            t = torch.tensor(values, dtype=I64).view_as(tensors[name])
            kind, l = name[0], int(name[1:])
            {"W": model.W, "b": model.b, "B": model.B}[kind][l - 1] = t
            for bank in m.get("banks", []):
                want = split_banks(t, cfg.hardware.pes[l - 1])[bank["pe"]].reshape(-1).tolist()
                if _read_hex(d / bank["file"], width, bank["words"]) != want:
                    raise ValueError(f"{d / bank['file']}: PE bank {bank['pe']} of {name} disagrees with {m['file']}")
        for l, s in manifest["lfsr"].items():
            model.lfsr[int(l) - 1].state = int(s)
        for l, s in manifest.get("xorshift", {}).items():
            if model.stochastic:
                model.xorshift[int(l) - 1].state = int(s)
        model.steps = int(manifest["step"])
        return model


def _rs(x: np.ndarray, s: int) -> np.ndarray:
    """:func:`golden.arith.round_shift` on numpy int64 (nearest, ties to even), as
    ``(x + q[0] + half - 1) >> s`` with ``q = x >> s``: adds one to ``q`` exactly when
    ``r + q[0] > half``. A new array."""
    if s <= 0:
        return x << (-s)
    q = x >> s
    q &= 1
    q += x
    q += (1 << (s - 1)) - 1
    q >>= s
    return q


def _rss(x: np.ndarray, s: int, r: np.ndarray) -> np.ndarray:
    """:func:`golden.arith.round_shift_stochastic` on numpy int64."""
    if s <= 0:
        return x << (-s)
    return (x + (r & ((1 << s) - 1))) >> s


def _clamp(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """:func:`golden.arith.saturate` on numpy int64, in place (returns ``x``)."""
    np.maximum(x, lo, out=x)
    np.minimum(x, hi, out=x)
    return x


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _hex_text(t: torch.Tensor, width: int) -> str:
    """``$readmemh`` text: two's complement, ``ceil(width/4)`` lower-case digits per word,
    one word per line, a newline after each."""
    mask = (1 << width) - 1
    digits = (width + 3) // 4
    fmt = f"0{digits}x"
    return "".join(format(v & mask, fmt) + "\n" for v in t.reshape(-1).tolist())


def _read_hex(path: Path, width: int, words: int) -> list[int]:
    lines = [s.split("//")[0].strip() for s in path.read_text().splitlines()]
    lines = [s for s in lines if s]
    if len(lines) != words:
        raise ValueError(f"{path}: {len(lines)} words, expected {words}")
    sign = 1 << (width - 1)
    out = []
    for s in lines:
        u = int(s, 16)
        if u >> width:
            raise ValueError(f"{path}: word {s!r} is wider than {width} bits")
        out.append(u - (1 << width) if u & sign else u)
    return out


# --------------------------------------------------------------------------------------
# Training: the same schema as golden.float_model.train_float
# --------------------------------------------------------------------------------------

def _bp_angles(model: FixedModel, Ws: list[torch.Tensor], bs: list[torch.Tensor],
               out: dict[str, torch.Tensor], label: int) -> list[float]:
    """Paper eq. 20 per hidden layer: the angle between the fixed-point update
    direction ``delta_l y_{l-1}^T`` of this step and the float backpropagation gradient
    at the same (fixed-point) weights ``Ws, bs`` and input."""
    ar, L = model.ar, model.L
    sw, sa, se = 2.0 ** -ar.weight.frac, 2.0 ** -ar.act.frac, 2.0 ** -ar.err.frac
    W = [w.double() * sw for w in Ws]
    y = [out["x"].double() * sa]
    a = []
    for l in range(L):
        a.append(W[l] @ y[-1] + bs[l].double() * sw)
        y.append(a[-1] if l == L - 1 else a[-1].clamp(min=0))
    delta = torch.softmax(a[-1], 0)
    delta[label] -= 1.0
    angles = [0.0] * (L - 1)
    for l in range(L - 1, 0, -1):                      # eq. 5, the exact chain
        delta = (a[l - 1] > 0).double() * (W[l].T @ delta)
        approx = out[f"delta{l}"].double() * se
        y_prev = out["x"] if l == 1 else out[f"y{l - 1}"]
        angles[l - 1] = angle_deg(torch.outer(delta, y[l - 1]), torch.outer(approx, y_prev.double() * sa))
    return angles


def train_fixed(cfg: Config, dataset, progress: bool = True, align_every: int | None = None,
                log=None, return_model: bool = False):
    """Train the fixed-point golden model; the result dict of ``ddfa train --model fixed``.

    Parameters
    ----------
    cfg : Config
        The validated configuration (``ddfa``, ``dfa`` or ``bp``, the hardware setting).
    dataset : ddfa.data.Dataset
        Training and test tensors (float, in [-1, 1]); quantised to the act format here.
    progress : bool
        Show a tqdm progress bar.
    align_every : int, optional
        Probe the gradient alignment (paper eq. 20) every k-th step, 0: never; default
        about 100 probes per epoch, as the float model.
    log : callable, optional
        Called with each epoch's history entry.
    return_model : bool
        Return ``(result, model)``.

    Returns
    -------
    dict
        ``test_accuracy`` (0..1), ``history`` (per epoch: ``epoch`` from 1,
        ``train_loss`` and ``train_accuracy`` of the online predictions made during the
        epoch's training steps, before each update, ``test_loss``, ``test_accuracy``,
        ``alignment_deg`` per hidden layer, ``lr``, ``train_seconds``),
        ``samples_per_s`` (training steps only: no evaluation, no alignment probe
        steps), ``alignment_deg`` (per hidden layer, mean over the last epoch),
        ``align_every``, ``train_seconds``, ``state_hash``, ``config``
        (``cfg.to_dict()``), ``model`` (``"fixed"``), ``algo``, ``dataset``, ``arch``,
        ``seed``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)       # one sample at a time: threads only add contention
    try:
        return _train_fixed(cfg, dataset, progress, align_every, log, return_model)
    finally:
        torch.set_num_threads(threads)


def _train_fixed(cfg, dataset, progress, align_every, log, return_model):
    import torch.nn.functional as F
    from tqdm import tqdm

    model = FixedModel(cfg)
    ar, L = cfg.arith, model.L
    scale = 2.0 ** -ar.act.frac
    x_train = model.quantize_input(dataset.x_train)
    x_np = x_train.numpy()
    y_train = dataset.y_train
    x_test = model.quantize_input(dataset.x_test)
    n = x_train.shape[0]
    if align_every is None:
        align_every = max(1, math.ceil(n / 100))
    history, total_time, probe_samples = [], 0.0, 0
    orders = epoch_orders(n, cfg.model.seed)
    bar = tqdm(total=cfg.train.epochs * n, unit="sample", unit_scale=True, disable=not progress,
               desc=f"fixed {cfg.model.algorithm} {cfg.model.dataset}", leave=False)
    key = f"y{L}"
    for epoch in range(cfg.train.epochs):
        order = next(orders)
        ys = y_train[order]
        xs, labels = x_np[order.numpy()], ys.tolist()
        logits = []
        angles, probe_time = [], 0.0
        start = time.perf_counter()
        fast = model.train_step                                # = model.step, in numpy (tested equal)
        with torch.inference_mode():
            for k in range(n):
                if align_every and k % align_every == 0 and L > 1:
                    t0 = time.perf_counter()                   # probe steps are not timed
                    Ws, bs = list(model.W), list(model.b)      # the step replaces, never mutates
                    o = model.step(torch.from_numpy(xs[k]), labels[k])
                    angles.append(_bp_angles(model, Ws, bs, o, labels[k]))
                    probe_time += time.perf_counter() - t0
                    probe_samples += 1
                    logits.append(o[key].numpy())
                else:
                    logits.append(fast(xs[k], labels[k]))
                if k % 256 == 255 or k == n - 1:
                    recent = logits[-(k % 256 + 1):]
                    check_divergence(torch.from_numpy(np.stack(recent)) * scale, ys[k + 1 - len(recent):k + 1],
                                     epoch=epoch + 1, sample=k + 1, lr=2.0 ** -ar.lr_shift, history=history,
                                     fix=f"raise arith.lr_shift, e.g. --set arith.lr_shift={ar.lr_shift + 2}")
                if k % 256 == 255:
                    bar.update(256)
        elapsed = time.perf_counter() - start - probe_time
        bar.update(n % 256)
        total_time += elapsed
        lf = torch.from_numpy(np.stack(logits)).double() * scale
        test_logits = model.logits(x_test).double() * scale
        entry = dict(epoch=epoch + 1,
                     train_loss=round(float(F.cross_entropy(lf, ys)), 6),
                     train_accuracy=round(float((lf.argmax(1) == ys).double().mean()), 6),
                     test_loss=round(float(F.cross_entropy(test_logits, dataset.y_test)), 6),
                     test_accuracy=round(float((test_logits.argmax(1) == dataset.y_test).double().mean()), 6),
                     alignment_deg=_nanmean(angles), lr=2.0 ** -ar.lr_shift,
                     train_seconds=round(elapsed, 3))
        history.append(entry)
        if log is not None:
            log(entry)
        bar.set_postfix(test_acc=f"{entry['test_accuracy']:.4f}")
    bar.close()
    result = dict(model="fixed", algo=cfg.model.algorithm, dataset=cfg.model.dataset,
                  arch="-".join(map(str, cfg.model.layers)), seed=cfg.model.seed,
                  test_accuracy=history[-1]["test_accuracy"], history=history,
                  samples_per_s=round((cfg.train.epochs * n - probe_samples) / total_time, 1) if total_time > 0 else None,
                  alignment_deg=history[-1]["alignment_deg"], align_every=align_every,
                  train_seconds=round(total_time, 3), rounding=ar.rounding,
                  state_hash=model.state_hash(), config=cfg.to_dict())
    return (result, model) if return_model else result


def _nanmean(values: list[list[float]]) -> list[float | None]:
    if not values:
        return []
    t = torch.tensor(values, dtype=torch.float64)
    return [None if math.isnan(x) else round(float(x), 4) for x in t.nanmean(0)]
