"""The cycle budget of one training step, computed from the configuration.

:func:`step_cycles` is the processor's timing, cycle for cycle, as a small recurrence
over the blocks' schedules (``docs/ARCHITECTURE.md``, "Cycle budget"); the top-level
simulation (``tests/test_hdl_top.py``) checks it against the cycle counters of the
sequencer exactly. Cycles count from the sequencer's start strobe (cycle 0).

Layer engine ``l`` (``n_in = n_{l-1}``, ``P`` PEs, ``R = n_l / P`` row groups):

* **Forward.** The engine registers the strobe, then its PE pipeline issues one column
  a cycle (read, operand registers, product register, accumulate): group ``r``'s sums
  move from the accumulators to the hold register at
  ``L_r = n_in + 5 + x + r * (max(n_in, P) + 1)`` (after the strobe; ``x`` is
  :func:`hdl.layer.weight_stages`, the extra register stage between the banks and the
  operand registers: 1 on the ECP5, 0 on the iCE40):
  the cycle they move, the accumulators are cleared and the next group's first product
  waits, and it waits longer when the serial activation stage (``P`` rows, one a cycle)
  has not emptied the hold register (``n_in < P``). The first hidden layer's activation
  also waits for the directions (``n_draw + 1`` cycles). The activation stage has three
  steps (bias added, narrowed, written), so the engine is idle ``P + 3`` cycles after
  its last group moved to the hold register: for ``n_in >= P`` (and ``P > 1``) simply
  ``D_l = R * (n_in + 1) + P + 7 + x``. With ``P = 1`` the activation stage takes the
  accumulators' row directly (no hold register): ``D_l = R * (n_in + 1) + 7 + x``.
  The layers run one after the other: ``forward = sum_l D_l``.
* **Streaming layer** (``hardware.stream``; one PE). It starts with the layer below
  (one forward stage, ``cfg.forward_stages``) and issues column ``j``'s ``n_l`` rows one
  a cycle from the cycle after ``y_{l-1,j}`` is written; its activation stage starts
  ``4 + x`` cycles after the last issue (``5`` on the iCE40, whose row sums are in
  block RAM: row 0 is read first). A stage lasts as long as its slowest engine:
  ``forward = sum over stages of max D_l``.
* **Output unit.** After the last output beat, the softmax takes
  ``OutputUnit.cycles() - 2 n_L`` cycles before the first error-bus beat; then the
  ``n_L`` beats go out back to back (every consumer is always ready).
* **Feedback unit** (hidden layer ``l``). ``g_i`` is ready ``n_L + (i+1) n_L + 3`` cycles
  after the first bus beat (``FeedbackUnit.cycles()``), one row every ``n_L`` cycles,
  later when the engine has not taken ``g_{i-1}`` (the unit then waits).
* **Weight update.** Engine ``l`` (from the cycle after its registered ``upd``
  strobe) collects ``P`` deltas, then runs a row group of
  ``n_in`` read-modify-write cycles while the next ``P`` are collected:
  ``I_r = max(X_{(r+1)P-1} + 1, I_{r-1} + n_in)`` (``X_i``: the cycle ``delta_i`` is
  taken; the first delta of group ``r + 1`` is taken at ``I_r + 1 + x`` at the earliest,
  once group ``r``'s deltas are latched), and is idle at ``I_{R-1} + n_in + 5 + x`` (the
  last word of ``W`` is written ``5 + x`` cycles after its column is issued: read,
  [stage 1X,] operands, product and rounded term, word read again and saturated,
  write). The output layer takes ``e_o`` from its FIFO two cycles after the bus beat.
* **Done** when everything is idle: ``update`` = the slowest of the layers (plus the
  shared softmax and bus), not their sum.
"""

from __future__ import annotations

from ddfa.config import Config

__all__ = ["step_cycles", "forward_cycles", "stage_cycles", "infer_cycles"]


def _engine_forward(n_in: int, P: int, R: int, v_ready: int = 0, xs: int = 0) -> tuple[int, list[int]]:
    """Cycles from an engine's ``fwd`` strobe to ``busy`` low, and the cycle each row
    ``i`` is written (stage A2, two cycles after the activation stage takes it).
    ``v_ready``: the cycle (after the strobe) from which ``v_valid`` is high.

    ``F_r``: the cycle from which the accumulators hold group ``r``; ``L_r``: the cycle
    the hold register takes it (once the activation stage has emptied it); ``S_r``: the
    first of the ``P`` cycles in which the activation stage takes its rows. The next
    group's first product waits until the accumulators are free again (cleared as their
    group moves on), so group ``r`` ends ``n_in + 1`` cycles after ``L_{r-1}``. With one
    PE there is no hold register: the activation stage takes the row from the
    accumulators (``L_r = S_r``). ``xs``: the extra pipeline stages between the banks
    and the operand registers (:func:`hdl.layer.weight_stages`).
    """
    F = n_in + 5 + xs
    if P == 1:                       # no hold register: the activation takes the row at once
        S = max(F, v_ready)
        L = S
    else:
        L = F
        S = max(L + 1, v_ready)
    written = [S + p + 2 for p in range(P)]
    for _ in range(R - 1):
        F = L + 1 + n_in
        if P == 1:
            S = max(F, v_ready)
            L = S
        else:
            L = max(F, S + P)
            S = max(L + 1, v_ready)
        written += [S + p + 2 for p in range(P)]
    return S + P + 2, written


def _engine_stream(n_out: int, below: list[int], v_ready: int = 0, xs: int = 0,
                   bram_sums: bool = False) -> tuple[int, list[int]]:
    """The same for a streaming engine (one PE), started with the layer below, whose
    rows are written at the cycles ``below``. Column ``j``'s ``n_out`` rows are issued
    one a cycle, from the cycle after ``y_{l-1,j}`` is written (and after the previous
    column, and from cycle 2: the registered strobe starts the issue counters). The last
    product is added at stage 3 (``3 + x`` cycles after its issue); the activation stage
    then takes the ``n_out`` rows one a cycle from the next cycle on (a cycle later with
    the sums in block RAM, ``bram_sums``: row 0 is read first)."""
    end = 1
    for w in below:
        end = max(end + 1, w + 1) + n_out - 1
    A = max(end + 4 + xs + bram_sums, v_ready)
    return A + n_out + 2, [A + i + 2 for i in range(n_out)]


def forward_cycles(cfg: Config, train: bool = True) -> list[int]:
    """``D_l`` for ``l = 1..L``: each engine's forward cycles, from its stage's strobe
    (``cfg.forward_stages``: a streaming layer starts with the layer below)."""
    n, pes, L = cfg.model.layers, cfg.hardware.pes, cfg.model.n_layers
    n_draw = max(cfg.model.hidden, default=0)
    xs = _weight_stages(cfg)
    first_stage = cfg.forward_stages[0]
    out, written = [], []
    for l in range(1, L + 1):
        # The directions are drawn from the step's start: the first stage waits for them.
        v_ready = n_draw + 1 if (train and l < L and l in first_stage) else 0
        if cfg.streams(l):
            D, written = _engine_stream(n[l], written, v_ready, xs, bram_sums=not cfg.lut_ram)
        else:
            D, written = _engine_forward(n[l - 1], pes[l - 1], n[l] // pes[l - 1], v_ready, xs)
        out.append(D)
    return out


def stage_cycles(cfg: Config, train: bool = True) -> list[int]:
    """Each forward stage's cycles: its slowest engine's (the sequencer starts the next
    stage in the cycle the last engine of this one goes idle)."""
    D = forward_cycles(cfg, train)
    return [max(D[l - 1] for l in stage) for stage in cfg.forward_stages]


def infer_cycles(cfg: Config) -> int:
    """Cycles of an inference, from the start strobe to ``done``: the forward pass, then
    one cycle for the output unit's argmax strobe."""
    return sum(stage_cycles(cfg, train=False)) + 1


def _weight_stages(cfg: Config) -> int:
    from .layer import weight_stages
    return weight_stages(cfg)


def _output_unit_cycles(cfg: Config) -> int:
    from .output import OutputUnit
    unit = OutputUnit(cfg)
    unit._MustUse__silence = True            # built only to ask its cycle count
    return unit.cycles(True)


def _feedback_cycles(cfg: Config, layer: int) -> int:
    from .feedback import FeedbackUnit
    unit = FeedbackUnit(cfg, layer)
    unit._MustUse__silence = True
    return unit.cycles()


def step_cycles(cfg: Config) -> dict:
    """The cycles of one training step, per phase.

    Returns
    -------
    dict
        ``forward`` (start strobe to the end of the output layer's forward pass),
        ``update`` (from then to ``done``: softmax, error bus, feedback units and weight
        updates), ``total`` (their sum; what STATUS reports as the last step's cycles),
        ``forward_layers`` (``D_l`` per layer), ``update_layers`` (per layer, from the
        end of the forward pass to that layer's engine and feedback unit being idle),
        ``softmax`` (end of forward to the first error-bus beat), ``draw`` (direction
        bits drawn, in parallel with the forward pass).
    """
    n, pes, L = cfg.model.layers, cfg.hardware.pes, cfg.model.n_layers
    nL = n[-1]
    fwd = forward_cycles(cfg)
    U = sum(stage_cycles(cfg))                # the upd strobes (relative cycle 0 = start)
    B0 = U + _output_unit_cycles(cfg) - 2 * nL  # first error-bus beat
    bus = [B0 + o for o in range(nL)]
    ou_idle = B0 + nL
    xs = _weight_stages(cfg)
    upd_layers = {}
    for l in range(1, L + 1):
        n_in, P = n[l - 1], pes[l - 1]
        R = n[l] // P
        hidden = l < L
        if hidden:
            fb = _feedback_cycles(cfg, l)
            V = B0 + fb - (n[l] - 1) * nL - 1        # g_0 valid
            step = nL
        else:
            V = bus[0] + 2                           # e_0 out of the FIFO
            step = 1
        X_prev, I_prev = None, U + 2 - n_in          # so that I_0 >= U + 2
        X = []
        for r in range(R):
            for p in range(P):
                i = r * P + p
                if hidden and i > 0:
                    V = max(V + step, X_prev + 1)
                elif i > 0:
                    V = max(bus[i] + 2, X_prev + 1)
                x = V
                if p == 0 and r > 0:
                    x = max(x, I_prev + 1 + xs)      # the delta registers are free again
                X.append(x)
                X_prev = x
            I_prev = max(X_prev + 1, I_prev + n_in)
        engine_idle = I_prev + n_in + 5 + xs
        fb_idle = X[-1] + 1 if hidden else 0
        upd_layers[l] = max(engine_idle, fb_idle) - U
    done = max([ou_idle] + [U + c for c in upd_layers.values()])
    return {
        "forward": U,
        "update": done - U,
        "total": done,
        "forward_layers": {l: d for l, d in enumerate(fwd, start=1)},
        "update_layers": upd_layers,
        "softmax": B0 - U,
        "draw": max(cfg.model.hidden, default=0),
    }


def cycle_counter_width(cfg: Config) -> int:
    """Bits of the sequencer's per-step cycle counters: at least 16, and enough for four
    times the longest step or inference (the STATUS reply zero-extends them to
    ``COUNTER_WIDTH`` bits)."""
    return max(16, (4 * max(step_cycles(cfg)["total"], infer_cycles(cfg))).bit_length())
