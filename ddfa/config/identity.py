"""What identifies a processor: the configuration hash and the fields it covers.

The hash covers exactly the fields that shape the generated processor and the initial
contents of its memories (:data:`HASHED_FIELDS`): a change to any of them changes the
Verilog of :func:`hdl.verilog.processor_verilog` or its memory images, a change to any
other (:data:`UNHASHED_FIELDS`) changes neither. The board's INFO reply returns the
hash (``docs/HOST-PROTOCOL.md``); :func:`config_diff` says which hashed fields two
configurations disagree on.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .schema import Fixed

if TYPE_CHECKING:
    from .core import Config

__all__ = ["HASHED_FIELDS", "UNHASHED_FIELDS", "hashed_values", "config_hash", "config_diff"]

#: The fields the hash covers, ``section.field``.
HASHED_FIELDS = (
    "model.layers",               # every memory's size, every counter
    "model.algorithm",            # DFA's random B or DDFA's zero B and its update
    "model.seed",                 # the initial W, b (and B) images, the direction LFSR seeds
    "arith.act", "arith.err", "arith.weight", "arith.feedback",
    "arith.lr_shift", "arith.alpha_shift",
    "arith.rounding",             # the images' stochastic-rounding generator states (golden model only)
    "arith.exp_frac", "arith.exp_range", "arith.exp_bits",     # the softmax table
    "arith.lfsr_width",
    # The device: multiplier width, block RAM slicing and read registers, by family (two
    # boards of one family build the same processor, for the pins of different bitstreams).
    "hardware.board",
    "hardware.pes", "hardware.stream", "hardware.share_multiplier",
    # The dataset store and the epoch runner; with them, the store's layout is hashed as
    # well (``store``: its code bits and table rows, from model.dataset and model.inputs).
    "hardware.dataset_store",
)

#: The fields the hash leaves out: none reaches the processor's Verilog or its images.
UNHASHED_FIELDS = (
    # Only through model.layers (MNIST and Fashion-MNIST build the same), and, with a
    # dataset store, through the store's layout (hashed as ``store``).
    "model.dataset", "model.inputs",
    "model.label_column", "model.test_file", "model.test_fraction",   # which samples the host sends
    "model.conv",                 # software models only (a board refuses it)
    # A bound, validated to hold every sum: each accumulator is as wide as its own sum
    # (hdl/layer.py, hdl/feedback.py), and the golden model's sums are exact.
    "arith.acc_width",
    # The float model's training; the fixed-point model and the processor refuse any
    # value of these that is not theirs (golden.fixed), so none changes a processor.
    "train.setting", "train.epochs", "train.batch_size", "train.lr", "train.lr_decay", "train.optimizer",
    "train.directions", "train.feedback_update", "train.alpha", "train.batchnorm", "train.weight_decay",
    "train.init",
    # The board top's clock and UART divisor (boards/), not the processor.
    "hardware.clock_mhz", "hardware.baud",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Fixed):
        return {"width": value.width, "frac": value.frac}
    if isinstance(value, tuple):
        return list(value)
    return value


def hashed_values(cfg: Config) -> dict[str, Any]:
    """``section.field`` -> value of every field of :data:`HASHED_FIELDS`, as JSON values.
    ``hardware.stream`` is given per layer (an empty list: no layer streams), so equal
    processors give equal values."""
    out = {}
    for key in HASHED_FIELDS:
        sec, fld = key.split(".")
        out[key] = _plain(getattr(getattr(cfg, sec), fld))
    st = cfg.hardware.stream
    out["hardware.stream"] = list(st) if st else [False] * cfg.model.n_layers
    store = cfg.chip_store
    if store is not None:
        out["store"] = {"code_bits": store.code_bits, "table_rows": store.table_rows,
                        "capacity_words": store.capacity_words}
    return out


def config_hash(cfg: Config) -> int:
    """32 bits that identify the processor of ``cfg``: the first four bytes
    (little-endian) of the sha256 of the canonical JSON (sorted keys, no spaces) of
    :func:`hashed_values`. INFO returns them. The name, the comments and every field of
    :data:`UNHASHED_FIELDS` leave it unchanged."""
    text = json.dumps(hashed_values(cfg), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def config_diff(a: Config, b: Config) -> list[str]:
    """The hashed fields on which ``a`` and ``b`` differ, each as
    ``"section.field: <a's value> != <b's value>"`` (empty when their hashes agree by
    construction), in :data:`HASHED_FIELDS` order: for mismatch messages."""
    va, vb = hashed_values(a), hashed_values(b)
    keys = list(HASHED_FIELDS) + sorted((va.keys() | vb.keys()) - set(HASHED_FIELDS))
    return [f"{k}: {va.get(k)!r} != {vb.get(k)!r}" for k in keys if va.get(k) != vb.get(k)]
