"""The float golden model: BP, random DFA, DKP and Directional DFA (Bacho & Chu).

Notation follows the paper (equation numbers in the comments) and its hardware form in
``docs/ARITHMETIC.md``. For layer ``l = 1..L`` and a mini-batch of ``N`` samples, one row per
sample::

    a_l = W_l u_{l-1} + b_l           (1)  u_{l-1}: y_{l-1}, max-pooled/flattened (CNN)
    y_l = relu(a_l)   hidden,  y_L = a_L  (linear output)
    t_l = W_l d_{l-1}                      tangent: directional derivative of a_l
    d_l = relu'(a_l) * t_l + v_l     (12)  hidden layers;  d_L = t_L;  d_0 = 0
    e   = (softmax(y_L) - onehot) / N      dL/dy_L of the mean cross-entropy
    g_l = B_l e                       (6)  error projected to hidden layer l (DFA family)
    g_l = W_{l+1}^T delta_{l+1}       (5)  (backpropagation)
    delta_l = relu'(a_l) * g_l        (4)  delta_L = e
    grad W_l = delta_l u_{l-1}^T      (2)  grad b_l = delta_l

The feedback matrices ``B_l`` (``n_l x n_L``) of the hidden layers:

* ``dfa``: fixed, PyTorch's Kaiming-uniform, ``U(-sqrt(6/n_l), sqrt(6/n_l))``
  (as the authors' code, which stores ``B_l^T`` and lets ``kaiming_uniform_`` see a
  fan-in of ``n_l``).
* ``ddfa``: initialised to 0 and learned from the directional derivatives: the batch
  mean of ``v_l d_L^T`` estimates ``E[dy_L/dy_l]`` (eqs. 13-16); either the moving
  average of eq. 17, ``B <- B + alpha (v d_L^T - B)`` (``feedback_update = "ema"``), or
  Adam on the feedback gradient ``B - v d_L^T`` of eq. 18-19 (``"adam"``).
* ``dkp``: Direct Kolen-Pollack (Webster et al. 2020), as the paper's authors implement
  it (their ``DFATrainingHook``): ``B_l^T`` is treated as a direct connection from
  ``y_l`` to the output and gets that connection's gradient,
  ``grad B_l = sum_n y_l e^T`` (``= y_l e^T`` for one sample), plus weight decay
  (``cfg.weight_decay``, 1e-6) on ``B`` and on the forward parameters. Adam with rate
  ``alpha`` (paper setting) or plain SGD with rate ``alpha`` (``feedback_update = "ema"``,
  where a moving average has no meaning for DKP).

Tangents are explicit matrix products: the primal and the tangent rows go through one
matmul (or one convolution), ``cat([u, d]) @ W^T``; there is no autograd hook and no
forward-mode AD. All updates are manual, under ``torch.no_grad``. BP uses the same code
with the exact backward chain of eq. 5 (checked against autograd in the tests).

BatchNorm (``cfg.train.batchnorm``) sits between ``a_l`` and the ReLU of each hidden layer,
in training mode with batch statistics (as ``nn.BatchNorm1d/2d``). Because the statistics
depend on the whole batch, the tangent goes through the exact JVP of batch
normalisation (including the change of the batch mean and variance):
``t_hat = gamma * ((t - mean t) - x_hat * mean(x_hat t)) / s``. The coupling it adds
between samples has zero mean, since ``E[v_n v_m^T] = 0`` for ``n != m``, so the estimate
of eq. 16 still converges to the expected Jacobian of the batch-normalised network,
the Jacobian that BP uses. The weight gradient goes back through BN's exact VJP.

The CNN (``cfg.model.conv``) is the paper's 15C5-P2-40C5-P2-128-10 (Sec. IV-A): two
5x5 convolutions with 2x2 max-pooling and a hidden layer of 128. The directions ``v``,
the feedback projection ``g = B e`` and the DDFA estimate live on each convolution's
feature maps after the ReLU and before the pooling (where the authors put their hook);
the tangent of a max-pool is the tangent at the arg-max. (The authors' MNIST code has no
pooling after its first convolution, so its hidden layer sees 40x10x10 = 4000 inputs; this
model follows the paper's text, 40x4x4 = 640.)

Measuring, not training: :meth:`FloatModel.alignment` (eq. 20) compares each hidden
layer's weight gradient with the exact BP gradient of the same batch on the same
parameters, computed from the same forward pass; ``train_float`` does it on every k-th
step (:func:`default_align_every`) and excludes its time from ``samples_per_s``.
"""

from __future__ import annotations

import math
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from ddfa.config import Config, ConfigError

from .alignment import angle_deg
from .diverge import check_divergence
from .order import derived_seed, epoch_orders

__all__ = ["FloatModel", "train_float", "epoch_order", "Directions", "BatchNorm",
           "FusedAdam", "default_align_every"]

from .order import epoch_order  # noqa: E402  (re-exported: both models use it)

Tensor = torch.Tensor

#: Adam of the paper (Sec. IV-A): betas 0.9/0.999, eps 1e-8.
ADAM = dict(betas=(0.9, 0.999), eps=1e-8)


# --------------------------------------------------------------------------------------
# Batch normalisation with explicit JVP and VJP
# --------------------------------------------------------------------------------------

class BatchNorm:
    """Batch normalisation of a hidden pre-activation, as ``nn.BatchNorm1d/2d``.

    ``a_hat = gamma * (a - mu) / s + beta`` with ``s = sqrt(var + eps)``; batch statistics
    in training, running statistics (momentum 0.1, unbiased variance) in evaluation.

    Parameters
    ----------
    n : int
        Features (or channels for a convolution).
    conv : bool
        Normalise per channel over (batch, height, width) instead of per feature.
    """

    eps = 1e-5
    momentum = 0.1

    def __init__(self, n: int, conv: bool = False):
        self.gamma = torch.ones(n)
        self.beta = torch.zeros(n)
        self.running_mean = torch.zeros(n)
        self.running_var = torch.ones(n)
        self.dims = (0, 2, 3) if conv else (0,)
        self.shape = (1, n, 1, 1) if conv else (1, n)

    def forward(self, a: Tensor, train: bool) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``a_hat`` and the cache ``(x_hat, s)`` for :meth:`jvp` and :meth:`vjp`."""
        if train:
            mu = a.mean(self.dims, keepdim=True)
            var = a.var(self.dims, unbiased=False, keepdim=True)
            m = a.numel() // a.shape[1]
            self.running_mean.lerp_(mu.reshape(-1), self.momentum)
            self.running_var.lerp_(var.reshape(-1) * (m / max(m - 1, 1)), self.momentum)
        else:
            mu = self.running_mean.view(self.shape)
            var = self.running_var.view(self.shape)
        s = (var + self.eps).sqrt()
        x_hat = (a - mu) / s
        return x_hat * self.gamma.view(self.shape) + self.beta.view(self.shape), (x_hat, s)

    def jvp(self, t: Tensor, cache: tuple[Tensor, Tensor]) -> Tensor:
        """Tangent of ``a_hat`` for a tangent ``t`` of ``a`` (batch statistics)."""
        x_hat, s = cache
        t_c = t - t.mean(self.dims, keepdim=True)
        return (t_c - x_hat * (x_hat * t).mean(self.dims, keepdim=True)) * (self.gamma.view(self.shape) / s)

    def vjp(self, g: Tensor, cache: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(dL/da, dL/dgamma, dL/dbeta)`` for ``g = dL/da_hat``."""
        x_hat, s = cache
        dgamma = (g * x_hat).sum(self.dims)
        dbeta = g.sum(self.dims)
        gx = g * (self.gamma.view(self.shape) / s)
        da = gx - gx.mean(self.dims, keepdim=True) - x_hat * (gx * x_hat).mean(self.dims, keepdim=True)
        return da, dgamma, dbeta


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------

@dataclass
class Layer:
    """One layer ``l``: weights ``W_l``, bias ``b_l`` and, for hidden layers of the DFA
    family, the feedback matrix ``B_l`` (``n_l x n_L``, ``n_l`` the flattened outputs).
    """

    kind: str                       # "fc" or "conv"
    W: Tensor                       # (n_l, n_{l-1}) or (C_out, C_in, k, k)
    b: Tensor                       # (n_l,) or (C_out,)
    hidden: bool
    pool: bool = False              # 2x2 max-pool of y_l before the next layer (CNN)
    flatten: bool = False           # flatten the input (first fully-connected after a conv)
    bn: BatchNorm | None = None
    B: Tensor | None = None
    out_shape: tuple[int, ...] = ()  # shape of y_l for one sample
    WT: Tensor | None = field(default=None, repr=False)  # view W^T, reused (fc)

    def __post_init__(self):
        if self.kind == "fc":
            self.WT = self.W.T

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    def linear(self, u: Tensor) -> Tensor:
        """``W u`` for every row of ``u`` (no bias)."""
        if self.kind == "fc":
            return u @ self.WT
        return F.conv2d(u, self.W)

    def add_bias(self, a: Tensor) -> Tensor:
        return a.add_(self.b if self.kind == "fc" else self.b.view(1, -1, 1, 1))

    def weight_grad(self, delta: Tensor, u: Tensor) -> Tensor:
        """``sum_n delta_n u_n^T`` (eq. 2 and 4), the gradient of ``W`` for errors ``delta``."""
        if self.kind == "fc":
            return delta.T @ u
        return conv2d_weight(u, self.W.shape, delta)

    def bias_grad(self, delta: Tensor) -> Tensor:
        if self.kind == "conv":
            return delta.sum((0, 2, 3))
        return delta[0] if delta.shape[0] == 1 else delta.sum(0)

    def input_grad(self, delta: Tensor, u_shape: torch.Size) -> Tensor:
        """``W^T delta``: the error at this layer's input (backpropagation, eq. 5)."""
        if self.kind == "fc":
            return delta @ self.W
        return conv2d_input(u_shape, self.W, delta)


@dataclass
class Record:
    """What the forward pass of one layer leaves for the learning rules."""

    u: Tensor                        # input u_{l-1}
    a: Tensor                        # pre-activation (after BN when BN is on)
    y: Tensor                        # output y_l (before pooling)
    mask: Tensor | None = None       # relu'(a_l), hidden layers
    d: Tensor | None = None          # tangent of y_l (DDFA), before pooling
    v: Tensor | None = None          # direction of this layer (DDFA)
    bn: tuple | None = None          # BatchNorm cache
    u_shape: torch.Size | None = None  # shape of u before flattening
    pool_idx: Tensor | None = None   # arg-max of the 2x2 pooling


@dataclass
class Forward:
    records: list[Record]
    v_all: Tensor | None = None      # the directions of all hidden layers, side by side

    @property
    def y_L(self) -> Tensor:
        return self.records[-1].y

    @property
    def d_L(self) -> Tensor | None:
        return self.records[-1].d


# --------------------------------------------------------------------------------------
# Directions v
# --------------------------------------------------------------------------------------

class _Inline:
    """Runs a submitted call when its result is asked for (no background thread)."""

    def submit(self, fn, *args):
        return _Deferred(fn, args)


class _Deferred:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


class Directions:
    """Random directions ``v_l`` with ``E[v v^T] = I``, one per hidden neuron and sample.

    ``"gaussian"``: ``N(0, 1)`` (the paper); ``"rademacher"``: +1/-1 with equal
    probability (the hardware). One generator fills blocks of ``block`` samples, one block
    ahead, in a background thread, so that drawing costs a training step nothing but a
    slice: the generator runs in parallel with the MACs, as the hardware's per-layer
    PRNGs do. The stream does not depend on timing: blocks are generated one after the
    other, in order, from the one generator. A draw that does not fit in what is left of
    the current block takes the next block (a draw larger than a block gets a block of
    its own size, generated after the pending one).
    """

    _SHIFTS = torch.arange(8, dtype=torch.uint8)

    def __init__(self, shapes: list[tuple[int, ...]], kind: str, generator: torch.Generator,
                 block: int = 2048, prefetch: bool = True):
        if kind not in ("gaussian", "rademacher"):
            raise ConfigError("train.directions", f"unknown choice {kind!r}", "use gaussian or rademacher")
        self.shapes, self.kind, self.g, self.block = shapes, kind, generator, block
        self.buffer: Tensor | None = None
        self.pos = 0
        if prefetch:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddfa-directions")
            weakref.finalize(self, self._worker.shutdown, wait=False)
        else:
            self._worker = _Inline()
        self._pending = self._worker.submit(self._generate, block)

    def _generate(self, rows: int) -> Tensor:
        """One block: each layer's ``(rows, n_l)`` drawn in turn, side by side in one
        ``(rows, sum n_l)`` matrix (so that all layers' feedback targets take one matmul)."""
        parts = []
        for shape in self.shapes:
            size = (rows, math.prod(shape))
            parts.append(torch.randn(size, generator=self.g) if self.kind == "gaussian" else self._rademacher(size))
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def _rademacher(self, size) -> Tensor:
        """+1/-1 from the bits of uniform random bytes (bit k of byte j is element
        8j + k): ten times faster than ``bernoulli_``."""
        total = math.prod(size)
        octets = torch.randint(0, 256, ((total + 7) // 8,), generator=self.g, dtype=torch.uint8)
        bits = (octets.unsqueeze(1) >> self._SHIFTS) & 1
        return bits.view(-1)[:total].view(size).to(torch.float32).mul_(2).sub_(1)

    def _next_block(self, n: int) -> None:
        block = self._pending.result()
        if block.shape[0] < n:
            block = self._generate(n)
        self.buffer, self.pos = block, 0
        self._pending = self._worker.submit(self._generate, self.block)

    def draw_stacked(self, n: int) -> Tensor:
        """Directions for ``n`` samples, all hidden layers side by side: ``(n, sum n_l)``."""
        if self.buffer is None or self.pos + n > self.buffer.shape[0]:
            self._next_block(n)
        p = self.pos
        self.pos += n
        return self.buffer[p:p + n]

    def split(self, v_all: Tensor) -> list[Tensor]:
        """Per-layer views ``(n, *shape_l)`` of a stacked draw."""
        out, off = [], 0
        for shape in self.shapes:
            k = math.prod(shape)
            out.append(v_all[:, off:off + k].view((v_all.shape[0],) + tuple(shape)))
            off += k
        return out

    def draw(self, n: int) -> list[Tensor]:
        """Directions for ``n`` samples: one tensor ``(n, *shape_l)`` per hidden layer."""
        return self.split(self.draw_stacked(n))


# --------------------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------------------

class FusedAdam:
    """Adam (paper Sec. IV-A; eq. 19 for the learned feedback) by torch's fused CPU kernel.

    The same kernel (``torch._fused_adam_``), arguments and state as
    ``torch.optim.Adam(groups, fused=True)``, so the same numbers bit for bit
    (``tests/test_float_model.py::test_fused_adam_matches_torch_optim``), called directly:
    the optimiser's per-step bookkeeping (state look-ups, regrouping by device, hooks)
    cost about 0.1 ms per parameter group and step, a few per cent of a batch-64 step.

    Parameters
    ----------
    groups : list of dict
        ``{"params": [...], "lr": float, "name": str}``; each group's ``lr`` may be changed
        between steps (as ``torch.optim`` param groups).
    weight_decay, betas, eps
        As ``torch.optim.Adam``.
    """

    def __init__(self, groups: list[dict], weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.param_groups = []
        for g in groups:
            params = list(g["params"])
            self.param_groups.append(dict(
                g, params=params,
                exp_avg=[torch.zeros_like(p, memory_format=torch.preserve_format) for p in params],
                exp_avg_sq=[torch.zeros_like(p, memory_format=torch.preserve_format) for p in params],
                steps=[torch.zeros((), dtype=torch.float32) for _ in params]))

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every parameter whose ``.grad`` is set (others are skipped,
        their moments and step counts untouched, as in ``torch.optim.Adam``)."""
        for g in self.param_groups:
            params, m, v, steps = g["params"], g["exp_avg"], g["exp_avg_sq"], g["steps"]
            grads = [p.grad for p in params]
            if any(gr is None for gr in grads):
                keep = [i for i, gr in enumerate(grads) if gr is not None]
                if not keep:
                    continue
                params, grads = [params[i] for i in keep], [grads[i] for i in keep]
                m, v, steps = [m[i] for i in keep], [v[i] for i in keep], [steps[i] for i in keep]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, m, v, [], steps, amsgrad=False, lr=g["lr"],
                               beta1=self.beta1, beta2=self.beta2, weight_decay=self.weight_decay,
                               eps=self.eps, maximize=False, grad_scale=None, found_inf=None)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------

def _uniform(shape, bound: float, g: torch.Generator) -> Tensor:
    return torch.empty(shape).uniform_(-bound, bound, generator=g)


class FloatModel:
    """A network and its learning rule, built from a validated :class:`Config`.

    Parameters
    ----------
    cfg : Config
        ``model.layers``/``model.conv`` give the network, ``model.algorithm`` the rule
        (``bp``, ``dfa``, ``dkp``, ``ddfa``), the ``train`` properties of ``cfg``
        (``cfg.lr``, ``cfg.optimizer``, ``cfg.directions``, ``cfg.feedback_update``,
        ``cfg.alpha``, ``cfg.weight_decay``) the optimisation.
    layers : tuple of int, optional
        Fully-connected layer sizes (input first) instead of ``cfg.model.layers``: tiny
        networks for tests and tools that no data set matches.

    Notes
    -----
    Random streams (see :mod:`golden.order`): initial weights from
    ``derived_seed(seed, "init")``, DFA's fixed feedback from ``"feedback"``, the
    directions from ``"directions"``.
    """

    def __init__(self, cfg: Config, layers: tuple[int, ...] | None = None):
        self.cfg = cfg
        self.sizes = tuple(layers) if layers is not None else cfg.model.layers
        self.algorithm = cfg.model.algorithm
        if cfg.train.batchnorm and cfg.batch_size < 2:
            raise ConfigError("train.batchnorm", "batch normalisation needs batches of 2 or more",
                              "use --batch-size 2 or more, or train without --bn")
        seed = cfg.model.seed
        self.g_init = torch.Generator().manual_seed(derived_seed(seed, "init"))
        self.g_feedback = torch.Generator().manual_seed(derived_seed(seed, "feedback"))
        self.layers = self._build()
        self.n_out = self.sizes[-1]
        self.lr = cfg.lr
        self.alpha = cfg.alpha
        self.weight_decay = cfg.weight_decay
        self.directions = None
        self.probe_seconds = 0.0          # wall time spent measuring alignment (not training)
        self.probe_cpu_seconds = 0.0      # and its CPU time
        if self.algorithm == "ddfa" and self.hidden:    # no hidden layer: the delta rule, as BP
            self.directions = Directions([l.out_shape for l in self.hidden],
                                         cfg.directions,
                                         torch.Generator().manual_seed(derived_seed(seed, "directions")))
        self._make_optimizers()

    # -- construction ------------------------------------------------------------------

    @property
    def hidden(self) -> list[Layer]:
        return [l for l in self.layers if l.hidden]

    def _build(self) -> list[Layer]:
        cfg = self.cfg
        bn = cfg.train.batchnorm
        L = self.sizes
        if cfg.model.conv:
            # 15C5-P2-40C5-P2-128-10 on 28x28 inputs: 28 -> 24 -> 12 -> 8 -> 4.
            specs = [("conv", (15, 1, 5, 5), (15, 24, 24), True, False),
                     ("conv", (40, 15, 5, 5), (40, 8, 8), True, False),
                     ("fc", (L[1], 40 * 4 * 4), (L[1],), False, True),
                     ("fc", (L[-1], L[1]), (L[-1],), False, False)]
        else:
            specs = [("fc", (L[l], L[l - 1]), (L[l],), False, False) for l in range(1, len(L))]
        layers = []
        for i, (kind, wshape, out_shape, pool, flatten) in enumerate(specs):
            hidden = i < len(specs) - 1
            W, b = self._init_forward(wshape)
            layer = Layer(kind, W, b, hidden, pool=pool, flatten=flatten, out_shape=out_shape,
                          bn=BatchNorm(wshape[0], conv=kind == "conv") if (bn and hidden) else None)
            layers.append(layer)
        # All hidden layers' feedback matrices are row blocks (views) of one stacked matrix
        # B_all (sum n_l x n_L): one matmul projects e to every hidden layer at once, as
        # the broadcast error bus does in the hardware.
        self.B_all = None
        if self.cfg.model.algorithm in ("dfa", "dkp", "ddfa"):
            n_L = L[-1]
            self.B_all = torch.zeros(sum(l.n_out for l in layers[:-1]), n_L)
            off = 0
            for layer in layers[:-1]:
                layer.B = self.B_all[off:off + layer.n_out]
                off += layer.n_out
                if self.cfg.model.algorithm == "dfa":
                    bound = math.sqrt(6.0 / layer.n_out)
                    layer.B.uniform_(-bound, bound, generator=self.g_feedback)
        return layers

    def _init_forward(self, wshape) -> tuple[Tensor, Tensor]:
        """PyTorch's default (``nn.Linear``/``nn.Conv2d``): ``U(+-1/sqrt(fan_in))`` for W
        and b; ``init = "zero"``: both 0, as the paper's text says for random DFA."""
        if self.cfg.train.init == "zero":
            return torch.zeros(wshape), torch.zeros(wshape[0])
        fan_in = math.prod(wshape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        return _uniform(wshape, bound, self.g_init), _uniform((wshape[0],), bound, self.g_init)

    def forward_params(self) -> list[Tensor]:
        ps = []
        for l in self.layers:
            ps += [l.W, l.b]
            if l.bn is not None:
                ps += [l.bn.gamma, l.bn.beta]
        return ps

    def feedback_params(self) -> list[Tensor]:
        return [self.B_all] if self.algorithm in ("dkp", "ddfa") else []

    def _make_optimizers(self) -> None:
        """One Adam (fused) for whatever Adam updates: the forward parameters (paper
        setting, rate ``eta``) and the learned feedback (eq. 19, rate ``alpha``), as two
        parameter groups of one optimiser so that a step costs one call."""
        groups = []
        self.adam_forward = self.cfg.optimizer == "adam"
        self.adam_feedback = bool(self.feedback_params()) and self.cfg.feedback_update == "adam"
        if self.adam_forward:
            groups.append({"params": self.forward_params(), "lr": self.lr, "name": "forward"})
        if self.adam_feedback:
            groups.append({"params": self.feedback_params(), "lr": self.alpha, "name": "feedback"})
        self.adam = FusedAdam(groups, weight_decay=self.weight_decay, **ADAM) if groups else None

    def set_lr(self, lr: float) -> None:
        """Forward learning rate (the per-epoch decay changes it; ``alpha`` never decays)."""
        self.lr = lr
        if self.adam is not None:
            for group in self.adam.param_groups:
                if group["name"] == "forward":
                    group["lr"] = lr

    # -- forward pass: eq. 1 and eq. 12 ------------------------------------------------

    @torch.no_grad()
    def forward(self, x: Tensor, v: list[Tensor] | None = None, train: bool = True,
                tangents: bool | None = None) -> Forward:
        """Primal (eq. 1) and, for DDFA, tangent (eq. 12) forward pass.

        Parameters
        ----------
        x : Tensor
            Inputs ``(N, n_0)``.
        v : list of Tensor, optional
            Directions per hidden layer ``(N, *shape_l)``; drawn when omitted.
        train : bool
            Batch statistics for BatchNorm (and running-statistics updates).
        tangents : bool, optional
            Compute ``t`` and ``d``; default: for DDFA in training.
        """
        if tangents is None:
            tangents = train and self.directions is not None
        N = x.shape[0]
        v_all = None
        if tangents and v is None:
            v_all = self.directions.draw_stacked(N)
            v = self.directions.split(v_all)
        u, du = (x.view(N, 1, 28, 28) if self.cfg.model.conv else x), None   # y_0 = x, d_0 = 0
        records, k = [], 0
        for layer in self.layers:
            u_shape = u.shape
            if layer.flatten:
                u = u.flatten(1)
                du = du.flatten(1) if du is not None else None
            if du is None:                     # d_{l-1} = 0: no tangent MACs (d_1 = v_1)
                a, t = layer.add_bias(layer.linear(u)), None
            else:                              # one matmul for [a; t] = W [y, d]
                z = layer.linear(torch.cat([u, du]))
                a, t = layer.add_bias(z[:N]), z[N:]
            rec = Record(u=u, a=a, y=a, u_shape=u_shape)
            if layer.hidden:
                if layer.bn is not None:
                    rec.a, rec.bn = layer.bn.forward(a, train)
                    if t is not None:
                        t = layer.bn.jvp(t, rec.bn)
                rec.y = torch.relu(rec.a)                     # y_l = relu(a_l)
                rec.mask = torch.sign(rec.y)                  # relu'(a_l): 1 where a_l > 0, else 0
                if tangents:
                    rec.v = v[k]
                    rec.d = rec.v if t is None else torch.addcmul(rec.v, rec.mask, t)  # eq. 12
                    k += 1
                u, du = rec.y, rec.d
                if layer.pool:
                    u, rec.pool_idx = F.max_pool2d(rec.y, 2, return_indices=True)
                    if du is not None:                        # tangent of max-pool
                        du = du.flatten(2).gather(2, rec.pool_idx.flatten(2)).view_as(u)
            else:
                rec.d = t                                     # d_L = t_L
            records.append(rec)
        return Forward(records, v_all)

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 2000) -> Tensor:
        """Logits ``y_L`` in evaluation mode (BatchNorm running statistics)."""
        return torch.cat([self.forward(xb, train=False, tangents=False).y_L for xb in x.split(batch)])

    # -- errors ------------------------------------------------------------------------

    @staticmethod
    def output_error(y_L: Tensor, onehot: Tensor) -> Tensor:
        """``e = (softmax(y_L) - onehot) / N``: dL/dy_L of the mean cross-entropy."""
        e = torch.softmax(y_L, 1).sub_(onehot)
        return e if y_L.shape[0] == 1 else e.div_(float(y_L.shape[0]))

    def _local_delta(self, layer: Layer, rec: Record, g: Tensor) -> tuple[Tensor, tuple | None]:
        """From the error ``g`` at ``y_l`` to ``delta_l`` at ``a_l`` (eq. 4), through the
        ReLU and, when present, BatchNorm's VJP. Returns ``(delta, (dgamma, dbeta))``."""
        delta = g * rec.mask
        if layer.bn is None:
            return delta, None
        delta, dgamma, dbeta = layer.bn.vjp(delta, rec.bn)
        return delta, (dgamma, dbeta)

    def bp_deltas(self, fwd: Forward, e: Tensor) -> list[tuple[Tensor, tuple | None]]:
        """The exact errors of backpropagation, eq. 5, for every layer (``delta_L = e``)."""
        out = [(e, None)]
        delta = e
        for i in range(len(self.layers) - 2, -1, -1):
            layer, rec, above = self.layers[i], fwd.records[i], self.layers[i + 1]
            g = above.input_grad(delta, fwd.records[i + 1].u.shape)       # W_{l+1}^T delta_{l+1}
            if above.flatten:
                g = g.view(fwd.records[i + 1].u_shape)
            if layer.pool:                                                # to the arg-max
                g = F.max_unpool2d(g, rec.pool_idx, 2, output_size=rec.y.shape[-2:])
            delta, bn_grads = self._local_delta(layer, rec, g)
            out.append((delta, bn_grads))
        return out[::-1]

    def dfa_deltas(self, fwd: Forward, e: Tensor) -> list[tuple[Tensor, tuple | None]]:
        """DFA-family errors: ``g_l = B_l e`` (eq. 6) then eq. 4; ``delta_L = e``. One
        matmul projects ``e`` to all hidden layers (``B_all e``)."""
        g_all, out, off = e @ self.B_all.T, [], 0
        for layer, rec in zip(self.hidden, fwd.records):
            g = g_all[:, off:off + layer.n_out].view_as(rec.y)
            off += layer.n_out
            out.append(self._local_delta(layer, rec, g))
        out.append((e, None))
        return out

    def deltas(self, fwd: Forward, e: Tensor):
        return self.bp_deltas(fwd, e) if self.algorithm == "bp" else self.dfa_deltas(fwd, e)

    # -- feedback learning -------------------------------------------------------------

    def feedback_target(self, fwd: Forward) -> Tensor:
        """DDFA: the batch mean of ``v_l d_L^T``, the estimate of ``E[dy_L/dy_l]`` of
        eqs. 14-16, for all hidden layers at once (rows as in ``B_all``)."""
        d_L = fwd.d_L
        N = d_L.shape[0]
        v_all = fwd.v_all
        if v_all is None:
            v_all = torch.cat([rec.v.reshape(N, -1) for rec in fwd.records[:-1]], 1)
        # (d_L^T v)^T rather than v^T d_L: the same products summed over the batch, four
        # times faster for 1600 x 64 x 10 on one thread (the latter takes a slow GEMM path).
        # With N > 1 the sums round in another order (differences ~1e-6 relative); with
        # N = 1 there is no sum and the result is bit-identical.
        target = (d_L.T @ v_all).T
        return target if N == 1 else target.div_(float(N))

    def feedback_targets(self, fwd: Forward) -> list[Tensor]:
        """:meth:`feedback_target` split per hidden layer, each ``(n_l, n_L)``."""
        return list(self.feedback_target(fwd).split([l.n_out for l in self.hidden]))

    def feedback_grad(self, fwd: Forward, e: Tensor) -> Tensor:
        """The gradient ``B_all`` descends: DDFA ``B - mean(v d_L^T)`` (eq. 18); DKP
        ``sum_n y_l e^T`` per layer (``e`` already carries the 1/N)."""
        if self.algorithm == "ddfa":
            return self.B_all - self.feedback_target(fwd)
        N = e.shape[0]
        return torch.cat([rec.y.reshape(N, -1).T @ e for rec in fwd.records[:-1]])

    @torch.no_grad()
    def update_feedback(self, fwd: Forward, e: Tensor) -> None:
        """Apply the feedback rule: eq. 17 (moving average), DKP's SGD step, or, for Adam
        (eq. 19), set ``B.grad`` for the optimiser step of :meth:`train_step`."""
        if self.algorithm == "ddfa" and self.cfg.feedback_update == "ema":
            self.B_all.lerp_(self.feedback_target(fwd), self.alpha)  # B += alpha (v d^T - B), eq. 17
            return
        grad = self.feedback_grad(fwd, e)
        if self.adam_feedback:                                       # eq. 19: Adam, stepped by train_step
            self.B_all.grad = grad
        else:                                                        # DKP, plain SGD
            if self.weight_decay:
                grad = grad.add_(self.B_all, alpha=self.weight_decay)
            self.B_all.sub_(grad, alpha=self.alpha)

    # -- forward-weight updates ----------------------------------------------------------

    @torch.no_grad()
    def update_weights(self, fwd: Forward, deltas) -> None:
        """``W_l -= eta delta_l u_{l-1}^T``, ``b_l -= eta delta_l`` (SGD, fused), or the
        gradients for Adam (stepped by :meth:`train_step`)."""
        if self.adam_forward:
            for layer, rec, (delta, bn_grads) in zip(self.layers, fwd.records, deltas):
                layer.W.grad = layer.weight_grad(delta, rec.u)
                layer.b.grad = layer.bias_grad(delta)
                if bn_grads is not None:
                    layer.bn.gamma.grad, layer.bn.beta.grad = bn_grads
            return
        lr, wd = self.lr, self.weight_decay
        for layer, rec, (delta, bn_grads) in zip(self.layers, fwd.records, deltas):
            if wd:
                for p in (layer.W, layer.b):
                    p.mul_(1.0 - lr * wd)
            if layer.kind == "fc":
                layer.W.addmm_(delta.T, rec.u, alpha=-lr)
            else:
                layer.W.sub_(layer.weight_grad(delta, rec.u), alpha=lr)
            layer.b.sub_(layer.bias_grad(delta), alpha=lr)
            if bn_grads is not None:
                layer.bn.gamma.sub_(bn_grads[0], alpha=lr)
                layer.bn.beta.sub_(bn_grads[1], alpha=lr)

    # -- one training step ---------------------------------------------------------------

    @torch.no_grad()
    def train_step(self, x: Tensor, onehot: Tensor, v: list[Tensor] | None = None,
                   probe: bool = False) -> tuple[Tensor, list[float] | None]:
        """One step on a mini-batch: forward, errors, feedback and weight updates.

        Parameters
        ----------
        x : Tensor
            Inputs ``(N, n_0)``.
        onehot : Tensor
            One-hot labels ``(N, n_L)``.
        v : list of Tensor, optional
            DDFA directions (drawn when omitted).
        probe : bool
            Also measure the gradient alignment (eq. 20) of every hidden layer against
            the exact BP gradient of this batch on the same parameters.

        Returns
        -------
        logits : Tensor
            ``y_L`` of the batch (before the update).
        angles : list of float or None
            Alignment per hidden layer in degrees, when ``probe``.
        """
        fwd = self.forward(x, v)
        e = self.output_error(fwd.y_L, onehot)
        deltas = self.deltas(fwd, e)
        angles = None
        if probe:
            t0, c0 = time.perf_counter(), time.process_time()
            angles = self.alignment(fwd, e, deltas)
            self.probe_seconds += time.perf_counter() - t0
            self.probe_cpu_seconds += time.process_time() - c0
        if self.algorithm in ("dkp", "ddfa") and self.hidden:
            self.update_feedback(fwd, e)
        self.update_weights(fwd, deltas)
        if self.adam is not None:
            self.adam.step()
        return fwd.y_L, angles

    def alignment(self, fwd: Forward, e: Tensor, deltas) -> list[float]:
        """Eq. 20 per hidden layer: approximate vs. exact BP weight gradient."""
        true = deltas if self.algorithm == "bp" else self.bp_deltas(fwd, e)
        return [angle_deg(layer.weight_grad(t[0], rec.u), layer.weight_grad(d[0], rec.u))
                for layer, rec, t, d in zip(self.hidden, fwd.records, true, deltas)]


# --------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------

def default_align_every(steps_per_epoch: int) -> int:
    """Alignment is probed on every k-th step: k = ceil(steps per epoch / 100), about
    100 probes per epoch whatever the batch size."""
    return max(1, math.ceil(steps_per_epoch / 100))


def _nanmean(values: list[list[float]]) -> list[float | None]:
    if not values:
        return []
    t = torch.tensor(values, dtype=torch.float64)
    m = t.nanmean(0)
    return [None if math.isnan(x) else round(float(x), 4) for x in m]


def evaluate(model: FloatModel, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) in evaluation mode."""
    logits = model.predict(x)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def train_float(cfg: Config, dataset, progress: bool = True, align_every: int | None = None,
                log=None, return_model: bool = False, threads: int | None = None):
    """Train the float golden model; the result dict of ``ddfa train --json``.

    Parameters
    ----------
    cfg : Config
        The validated configuration.
    dataset : ddfa.data.Dataset
        Training and test tensors.
    progress : bool
        Show a tqdm progress bar.
    align_every : int, optional
        Probe the alignment every k-th step (0: never); default
        :func:`default_align_every`.
    log : callable, optional
        Called with each epoch's history entry.
    return_model : bool
        Return ``(result, model)`` instead of ``result``.
    threads : int, optional
        torch CPU threads while training (restored afterwards). Default: 1 for a batch
        of one, whose small matrix-vector products lose more to thread synchronisation
        (badly so when other processes share the cores) than they gain; otherwise
        torch's setting.

    Returns
    -------
    dict
        ``test_accuracy``, ``history`` (per epoch ``epoch``, ``train_loss``,
        ``train_accuracy``, ``test_accuracy``, ``test_loss``, ``alignment_deg``, ``lr``),
        ``samples_per_s`` (training steps only: the time of test evaluation and of the
        alignment measurements is excluded), ``samples_per_cpu_s`` (the same per second of
        the process's CPU time, all its threads counted: less sensitive to other jobs on a
        shared machine),
        ``alignment_deg`` (per hidden layer, mean over the last epoch), ``train_seconds``.
    """
    saved_threads = torch.get_num_threads()
    if threads is None and cfg.batch_size == 1:
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(cfg, dataset, progress, align_every, log, return_model)
    finally:
        torch.set_num_threads(saved_threads)


def _train(cfg, dataset, progress, align_every, log, return_model):
    from tqdm import tqdm

    model = FloatModel(cfg)
    x_train, y_train = dataset.x_train, dataset.y_train
    n, bs = x_train.shape[0], cfg.batch_size
    steps = math.ceil(n / bs)
    if align_every is None:
        align_every = default_align_every(steps)
    eye = torch.eye(cfg.model.n_outputs)
    history, total_samples, total_time, total_cpu = [], 0, 0.0, 0.0
    orders = epoch_orders(n, cfg.model.seed)
    bar = tqdm(total=cfg.train.epochs * n, unit="sample", unit_scale=True, disable=not progress,
               desc=f"{cfg.model.algorithm} {cfg.model.dataset}", leave=False)
    for epoch in range(cfg.train.epochs):
        model.set_lr(cfg.lr * cfg.lr_decay ** epoch)
        order = next(orders)
        xs, ys = x_train[order], y_train[order]
        onehots = eye[ys]
        logits_all = torch.empty(n, cfg.model.n_outputs)
        angles, trained = [], 0
        model.probe_seconds = model.probe_cpu_seconds = 0.0
        start, cpu_start, shown, checked = time.perf_counter(), time.process_time(), 0, 0
        diverge = dict(epoch=epoch + 1, lr=model.lr, history=history,
                       fix=f"lower the learning rate, e.g. --lr {model.lr / 4:.3g}")
        for k in range(steps):
            lo, hi = k * bs, min(n, (k + 1) * bs)
            if cfg.train.batchnorm and hi - lo < 2:
                logits_all[lo:hi] = model.predict(xs[lo:hi])     # BN cannot train on one sample
                continue
            probe = align_every > 0 and k % align_every == 0
            logits, a = model.train_step(xs[lo:hi], onehots[lo:hi], probe=probe)
            logits_all[lo:hi] = logits
            trained += hi - lo
            if probe:
                angles.append(a)
            if hi - checked >= 64 or hi == n:
                check_divergence(logits_all[checked:hi], ys[checked:hi], sample=hi, **diverge)
                checked = hi
            if k % 64 == 63:
                bar.update(hi - shown)
                shown = hi
        elapsed = time.perf_counter() - start - model.probe_seconds
        total_cpu += time.process_time() - cpu_start - model.probe_cpu_seconds
        bar.update(n - shown)
        total_time += elapsed
        total_samples += trained
        train_loss = float(F.cross_entropy(logits_all, ys))
        train_acc = float((logits_all.argmax(1) == ys).float().mean())
        test_loss, test_acc = evaluate(model, dataset.x_test, dataset.y_test)
        entry = dict(epoch=epoch + 1, train_loss=round(train_loss, 6), train_accuracy=round(train_acc, 6),
                     test_loss=round(test_loss, 6), test_accuracy=round(test_acc, 6),
                     alignment_deg=_nanmean(angles), lr=model.lr, train_seconds=round(elapsed, 3))
        history.append(entry)
        if log is not None:
            log(entry)
        bar.set_postfix(test_acc=f"{test_acc:.4f}")
    bar.close()
    result = dict(test_accuracy=history[-1]["test_accuracy"], history=history,
                  samples_per_s=round(total_samples / total_time, 1) if total_time > 0 else None,
                  samples_per_cpu_s=round(total_samples / total_cpu, 1) if total_cpu > 0 else None,
                  alignment_deg=history[-1]["alignment_deg"], align_every=align_every,
                  train_seconds=round(total_time, 3), torch_threads=torch.get_num_threads())
    return (result, model) if return_model else result
