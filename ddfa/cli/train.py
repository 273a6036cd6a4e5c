"""``ddfa train``: train a golden model (float or fixed-point) and write its results.

Examples
--------
::

    ddfa train --algo ddfa --dataset mnist --arch 2x800 --setting paper --epochs 3 \\
        --json results/mnist-2x800-ddfa-s0.json
    ddfa train --config examples/config.toml --model fixed --json out/fixed.json
    ddfa train --board icebreaker --model fixed --on-chip --epochs 10

The JSON holds ``test_accuracy`` (0..1), ``history`` (per epoch: ``epoch``,
``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``,
``alignment_deg``), ``samples_per_s`` (training throughput; test evaluation and
alignment probes excluded), ``alignment_deg`` (per hidden layer, mean over the last
epoch), ``config`` (``Config.to_dict()``), ``algo``, ``dataset``, ``arch``, ``setting``,
``seed``, ``model`` and ``command``.

``--on-chip`` (with ``--model fixed``) trains as a board with a dataset store does
(``golden.onchip``): the data set as integer pixel codes in the store's layout, every
input read through the store's input table, epochs in the chip's keyed order; the JSON
adds ``on_chip``, ``store_words`` and ``test_correct``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import shlex
import sys
import time

import torch

from golden.diverge import TrainingDiverged
from golden.onchip import require_store, train_onchip

from . import add_config_args, config_from_args, nonnegative_int, positive_int
from ..config import Config, ConfigError
from ..data import load_config_coded, load_config_dataset
from .output import check_output_file, write_json
from .progress import add_progress_args, wants_progress

__all__ = ["add_arguments", "run", "arch_name", "run_training"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, training=True)
    p.add_argument("--model", choices=["float", "fixed"], default="float",
                   help="golden model: float (default) or fixed (bit-exact with the hardware)")
    p.add_argument("--on-chip", action="store_true",
                   help="with --model fixed: train from the board's dataset store as the chip does "
                        "(its layout, input table and epoch order)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    p.add_argument("--align-every", type=nonnegative_int, default=None, metavar="K",
                   help="probe the gradient alignment every K-th step (0: never; "
                        "default: about 100 probes per epoch)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: torch's choice)")
    add_progress_args(p)


def arch_name(cfg: Config) -> str:
    """``conv``, ``2x800`` (equal hidden layers) or ``784-128-10``."""
    if cfg.model.conv:
        return "conv"
    hidden = cfg.model.hidden
    if hidden and len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    return "-".join(map(str, cfg.model.layers))


def _fixed_trainer():
    try:
        from golden.fixed import train_fixed
    except ImportError as exc:
        raise ConfigError("--model", f"the fixed-point golden model is not available ({exc})",
                          "use --model float until golden/fixed.py provides train_fixed") from None
    return train_fixed


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def run_training(cfg: Config, model: str = "float", data_dir=None, progress: bool = True,
                 align_every: int | None = None, log=None, on_chip: bool = False) -> dict:
    """Train ``cfg`` with the chosen golden model; the JSON-ready result dict. With
    ``on_chip`` (fixed-point only), from the dataset store (:func:`golden.onchip.train_onchip`)."""
    if on_chip and model != "fixed":
        raise ConfigError("--on-chip", "only the fixed-point model trains from the dataset store",
                          "add --model fixed")
    if on_chip:
        require_store(cfg)
        result = train_onchip(cfg, load_config_coded(cfg, data_dir), progress=progress, log=log)
    elif model == "fixed":
        dataset = load_config_dataset(cfg, data_dir)
        train_fixed = _fixed_trainer()
        extra = {k: v for k, v in (("align_every", align_every), ("log", log))
                 if k in inspect.signature(train_fixed).parameters}
        result = dict(train_fixed(cfg, dataset, progress=progress, **extra))
    else:
        from golden.float_model import train_float
        dataset = load_config_dataset(cfg, data_dir)
        result = train_float(cfg, dataset, progress=progress, align_every=align_every, log=log)
    result.update(config=cfg.to_dict(), algo=cfg.model.algorithm, dataset=cfg.model.dataset,
                  arch=arch_name(cfg), setting=cfg.train.setting, seed=cfg.model.seed,
                  batchnorm=cfg.train.batchnorm, model=model,
                  batch_size=cfg.batch_size, optimizer=cfg.optimizer, lr=cfg.lr,
                  directions=cfg.directions, feedback_update=cfg.feedback_update, alpha=cfg.alpha,
                  host=platform.node())
    result.setdefault("torch_threads", torch.get_num_threads())
    return _json_safe(result)


def run(args: argparse.Namespace) -> int:
    """``ddfa train``. With ``--json``, the path is checked before training starts; a run
    stopped by Ctrl-C or by divergence still writes what it did (``interrupted`` or
    ``diverged`` true, ``history`` of the completed epochs) before the error."""
    cfg = config_from_args(args, software_only=True)
    if args.json:
        check_output_file(args.json, "--json")
    args.progress = wants_progress(args.progress)
    if args.threads:
        torch.set_num_threads(args.threads)
    history: list[dict] = []

    def log(entry):
        history.append(entry)
        if not args.progress:
            return
        align = ", ".join("-" if a is None else f"{a:.1f}" for a in entry["alignment_deg"])
        print(f"epoch {entry['epoch']}: train loss {entry['train_loss']:.4f} "
              f"acc {entry['train_accuracy']:.4f}, test acc {entry['test_accuracy']:.4f}, "
              f"alignment [{align}] deg", file=sys.stderr)

    t0 = time.time()
    command = "ddfa " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else None

    def partial(**why) -> str:
        """Write the completed epochs of a run that did not finish, where ``--json`` was
        asked for; the words that say where."""
        if not args.json:
            return f"{len(history)} of {cfg.train.epochs} epochs done"
        r = dict(why, test_accuracy=None, history=history, epochs_done=len(history),
                 epochs_asked=cfg.train.epochs, config=cfg.to_dict(), algo=cfg.model.algorithm,
                 dataset=cfg.model.dataset, arch=arch_name(cfg), setting=cfg.train.setting, seed=cfg.model.seed,
                 model=args.model, wall_seconds=round(time.time() - t0, 2), command=command)
        write_json(args.json, _json_safe(r))
        return f"{len(history)} of {cfg.train.epochs} epochs done, partial result in {args.json}"

    try:
        result = run_training(cfg, args.model, getattr(args, "data_dir", None), args.progress,
                              args.align_every, log, on_chip=args.on_chip)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(partial(interrupted=True)) from None
    except TrainingDiverged as exc:
        exc.args = (f"{exc} ({partial(diverged=True, error=str(exc))})",)
        raise
    if command:
        result["command"] = command
    result["wall_seconds"] = round(time.time() - t0, 2)
    align = ", ".join("-" if a is None else f"{a:.1f}" for a in result.get("alignment_deg") or [])
    where = " on-chip" if result.get("on_chip") else ""
    print(f"{result['algo']} {result['dataset']} {result['arch']} ({result['setting']}, seed {result['seed']}"
          f"{where}): "
          f"test accuracy {100 * result['test_accuracy']:.2f}%, {result.get('samples_per_s')} samples/s, "
          f"alignment [{align}] deg")
    if args.json:
        write_json(args.json, result)
    return 0
