"""Performance figures of a simulated run: cycles per sample, MAC utilisation, phases.

Useful multiplications of one training step (``docs/ARITHMETIC.md`` section 5), with
``n_l`` the layer sizes and ``H`` the hidden layers:

* forward, primal ``a_l = W_l y_{l-1}``: ``sum_l n_l n_{l-1}``;
* forward, tangent ``t_l = W_l d_{l-1}``: ``sum_{l>=2} n_l n_{l-1}`` (``d_0 = 0``);
* error: the softmax normalisation, ``n_L``;
* feedback ``g_l = B_l e``: ``sum_{l in H} n_l n_L`` (the moving average of ``B`` is
  shift-and-add, no multiplier);
* update ``delta_l y_{l-1}^T``: ``sum_l n_l n_{l-1}`` (the bias update is a shift).

``mac_utilization = useful / (multipliers x cycles_per_sample)``, with the processor's
multipliers (``Config.multipliers_needed``: ``P_l`` primal and, from layer 2, ``P_l``
tangent per layer, one per feedback unit, one in the output unit; with
``hardware.share_multiplier`` one serves the output layer's tangent, the softmax and layer
1's feedback unit);
``ideal_cycles_per_sample = ceil(useful / multipliers)``.
"""

from __future__ import annotations

import math

from ddfa.config import Config
from hdl.cycles import step_cycles

__all__ = ["useful_macs", "figures"]


def useful_macs(cfg: Config) -> dict[str, int]:
    n, L = cfg.model.layers, cfg.model.n_layers
    primal = sum(n[l] * n[l - 1] for l in range(1, L + 1))
    tangent = sum(n[l] * n[l - 1] for l in range(2, L + 1))
    feedback = sum(n[l] * n[-1] for l in range(1, L))
    return {"forward_primal": primal, "forward_tangent": tangent, "error_softmax": n[-1],
            "feedback": feedback, "update": primal,
            "total": 2 * primal + tangent + n[-1] + feedback}


def _multiplier_groups(cfg: Config) -> list[tuple[str, int, int]]:
    """(name, multipliers, useful MACs per step) of every group of multipliers."""
    n, P, L = cfg.model.layers, cfg.hardware.pes, cfg.model.n_layers
    out = []
    for l in range(1, L + 1):
        w = n[l] * n[l - 1]
        out.append((f"layer{l}_primal (forward + update)", P[l - 1], 2 * w))
        if l >= 2:
            out.append((f"layer{l}_tangent", P[l - 1], w))
    for l in range(1, L):
        out.append((f"feedback{l}", 1, n[l] * n[-1]))
    out.append(("output_softmax", 1, n[-1]))
    units = cfg.shared_multiplier_units            # hardware.share_multiplier: one multiplier
    if units:
        names = {"tangent": f"layer{L}_tangent", "softmax": "output_softmax", "feedback": "feedback1"}
        shared = [g for g in out if g[0] in {names[u] for u in units}]
        out = [g for g in out if g not in shared]
        out.append(("shared (" + " + ".join(g[0] for g in shared) + ")", 1, sum(g[2] for g in shared)))
    return out


def figures(cfg: Config, result: dict) -> dict:
    """The performance part of the ``ddfa simulate`` JSON, from the measured cycles in
    ``result`` (the bench's STATUS counters) and the configuration."""
    macs = useful_macs(cfg)
    mults = cfg.multipliers_needed
    ideal = math.ceil(macs["total"] / mults)
    model = step_cycles(cfg)
    cps = result.get("cycles_per_sample")
    out: dict = {"useful_macs_per_sample": macs, "multipliers": mults, "ideal_cycles_per_sample": ideal,
                 "model_cycles_per_sample": model["total"]}
    if not cps:
        out.update(cycles_per_sample=None, mac_utilization=None, phase_cycles=None)
        return out
    st = result["status_cycles"]
    measured_err = result.get("status_cycles", {}).get("error")
    err = measured_err if measured_err is not None else model["softmax"]
    fwd = st["forward"]
    upd = st["total"] - fwd - err
    phases = {"forward": fwd, "error": err, "update": upd}
    phase_util = {
        "forward": (macs["forward_primal"] + macs["forward_tangent"]) / (mults * fwd),
        "error": macs["error_softmax"] / (mults * err) if err else None,
        "update": (macs["feedback"] + macs["update"]) / (mults * upd) if upd > 0 else None,
    }
    out.update({
        "cycles_per_sample": cps,
        "mac_utilization": round(macs["total"] / (mults * cps), 4),
        "phase_cycles": phases,
        "phase_cycles_source": {"forward": "measured (STATUS)", "update": "measured (STATUS)",
                                "error": "measured (STATUS)" if measured_err is not None
                                else "hdl.cycles.step_cycles (softmax; checked in tests/test_hdl_top.py)"},
        "phase_mac_utilization": {k: (round(v, 4) if v is not None else None) for k, v in phase_util.items()},
        "multiplier_utilization": {name: round(u / (k * cps), 4) for name, k, u in _multiplier_groups(cfg)},
        "cycles_match_model": cps == model["total"],
    })
    return out
