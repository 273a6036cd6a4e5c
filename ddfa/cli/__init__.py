"""The ``ddfa`` command line.

Every subcommand that takes a configuration accepts ``--board NAME`` (an embedded
default) or ``--config FILE`` (a TOML file with the same schema, see
``examples/config.toml``); :func:`config_from_args` is the one place that turns options
into a validated :class:`~ddfa.config.Config`. With neither, a ``--dataset`` picks the
embedded default made for it (:data:`DATASET_DEFAULTS`).

What a user can get wrong is one line ``ddfa COMMAND: error: ...`` and exit status 2:
options that argparse refuses (counts below 1 are refused by the ``type=`` functions
here), and every :data:`USER_ERRORS` a command raises. Ctrl-C is one line and status 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib

from golden.diverge import TrainingDiverged

from ..config import (DATASET_SHAPES, DATASETS, INPUT_SCALINGS, ConfigError, ModelConfig, dataset_is_file, load_config,
                      parse_arch)
from ..config.schema import coerce
from ..data import DataError, load_config_dataset, load_dataset
from .output import OutputError

__all__ = ["main", "add_config_args", "config_from_args", "UsageError", "positive_int", "nonnegative_int",
           "positive_float", "count_or_all", "DATASET_DEFAULTS", "check_data"]

#: The embedded default made for each data set: what ``--dataset`` alone trains with.
DATASET_DEFAULTS = {"digits": "icebreaker", "mnist": "ulx3s-85f", "fashion-mnist": "ulx3s-85f"}


class UsageError(ValueError):
    """A command line that argparse refuses (one line, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: :class:`UsageError` instead of usage text and
    ``sys.exit``, so that :func:`main` prints ``ddfa COMMAND: error: ...``."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message}")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """``type=`` for counts of at least 1 (steps, samples, epochs, threads, batch size)."""
    n = _int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1; give a count of 1 or more")
    return n


def nonnegative_int(text: str) -> int:
    """``type=`` for counts of at least 0."""
    n = _int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative; give a count of 0 or more")
    return n


def positive_float(text: str) -> float:
    """``type=`` for a finite number above 0 (epochs as a fraction, seconds)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (x > 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0")
    return x


def count_or_all(text: str) -> int | str:
    """``type=`` for ``--test``: a count of 0 or more, or ``all``."""
    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a count nor all; write e.g. 360 or all") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative; give a count of 0 or more, or all")
    return n


def add_config_args(p: argparse.ArgumentParser, training: bool = False) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--board", help="embedded default: icebreaker or ulx3s-85f")
    g.add_argument("--config", help="TOML configuration file (see examples/config.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one configuration field, e.g. --set arith.lr_shift=8 (repeatable)")
    if training:
        p.add_argument("--algo", choices=["bp", "dfa", "dkp", "ddfa"])
        p.add_argument("--dataset", metavar="NAME|PATH",
                       help=f"{', '.join(DATASETS)}, or your own: a .npz or .csv file or a folder of IDX files "
                            "(docs/YOUR-DATA.md)")
        p.add_argument("--label-column", metavar="NAME", help="a CSV data set's label column (default: label)")
        p.add_argument("--test-file", metavar="PATH", help="a CSV data set's test samples (a second CSV file)")
        p.add_argument("--test-fraction", type=float, metavar="F",
                       help="without --test-file: the fraction of a CSV data set drawn as its test set (default 0.2)")
        p.add_argument("--arch", help="2x800, 784-800-800-10 or conv")
        p.add_argument("--inputs", choices=INPUT_SCALINGS,
                       help="input scaling: pm1 = [-1, 1] (the paper's), standardize = per-pixel training mean/std")
        p.add_argument("--bn", action="store_true", default=None, help="BatchNorm before each hidden ReLU")
        p.add_argument("--setting", choices=["paper", "hardware"])
        p.add_argument("--epochs", type=positive_int)
        p.add_argument("--batch-size", type=positive_int)
        p.add_argument("--lr", type=float)
        p.add_argument("--seed", type=int)
        p.add_argument("--optimizer", choices=["adam", "sgd"])
        p.add_argument("--directions", choices=["gaussian", "rademacher"])
        p.add_argument("--feedback-update", choices=["adam", "ema"])
        p.add_argument("--alpha", type=float, help="feedback learning rate (eq. 17/19)")
        p.add_argument("--init", choices=["default", "zero"])
    p.add_argument("--data-dir", help="directory of IDX files (else $DDFA_DATA_DIR)")


def config_from_args(args: argparse.Namespace, software_only: bool = False):
    """The validated configuration named by ``--board``/``--config`` plus overrides.

    With neither, ``--dataset D`` starts from ``DATASET_DEFAULTS[D]`` (said on stderr),
    anything else from ``icebreaker``.

    With ``software_only`` (the golden models), a change of data set or architecture
    drops the board (``hardware.board = "none"``) so that any size can be trained.
    """
    board, path = getattr(args, "board", None), getattr(args, "config", None)
    dataset = getattr(args, "dataset", None)
    if board is None and path is None and dataset is not None:
        if dataset in DATASET_DEFAULTS:
            board = DATASET_DEFAULTS[dataset]
            made_for = f"made for {default_dataset(board)}"
        else:
            board = "icebreaker"
            made_for = f"with layers sized for {dataset}"
        print(f"ddfa {getattr(args, 'command', '')}: no --board/--config: the {board} defaults, {made_for}",
              file=sys.stderr)
    cfg = load_config(path, board)
    changes: dict = {}
    opt = lambda name: getattr(args, name, None)
    overrides: dict = {}
    for item in getattr(args, "set", []) or []:
        if "=" not in item:
            raise ConfigError("--set", f"{item!r} has no '='", "write --set section.field=value")
        k, v = item.split("=", 1)
        overrides[k.strip()] = _parse_value(v.strip())
    for name, key in (("label_column", "model.label_column"), ("test_file", "model.test_file"),
                      ("test_fraction", "model.test_fraction")):
        if opt(name) is not None:
            changes[key] = getattr(args, name)
    if opt("dataset"):
        changes["model.dataset"] = args.dataset
    if opt("arch") or opt("dataset"):
        dataset = opt("dataset") or cfg.model.dataset
        n_in, n_out = _dataset_shape(cfg.replace(**{**changes, **overrides}) if dataset_is_file(dataset)
                                     else cfg, dataset)
        if opt("arch"):
            layers, conv = parse_arch(args.arch, n_in, n_out)
        else:
            layers, conv = (n_in,) + cfg.model.layers[1:-1] + (n_out,), False
        changes["model.layers"] = layers
        changes["model.conv"] = conv
    for name, key in (("algo", "model.algorithm"), ("seed", "model.seed"), ("inputs", "model.inputs"),
                      ("setting", "train.setting"),
                      ("epochs", "train.epochs"), ("batch_size", "train.batch_size"), ("lr", "train.lr"),
                      ("optimizer", "train.optimizer"), ("directions", "train.directions"),
                      ("feedback_update", "train.feedback_update"), ("alpha", "train.alpha"),
                      ("bn", "train.batchnorm"), ("init", "train.init")):
        if opt(name) is not None:
            changes[key] = getattr(args, name)
    changes.update(overrides)
    if "model.layers" in changes:                 # --set model.layers=13-16-3 is text until coerced
        changes["model.layers"] = coerce(ModelConfig, "layers", changes["model.layers"], "model.layers")
    if software_only and (("model.layers" in changes and changes["model.layers"] != cfg.model.layers)
                          or changes.get("model.conv")):
        changes["hardware.board"] = "none"
        fan_in = max(changes["model.layers"])
        changes.setdefault("arith.acc_width", max(cfg.arith.acc_width, cfg.acc_width_needed(fan_in)))
    return cfg.replace(**changes) if changes else cfg


def _dataset_shape(cfg, dataset: str) -> tuple[int, int]:
    """Inputs and classes of ``dataset``: a built-in set's, or read from its file (with
    ``cfg``'s label column and test split)."""
    if not dataset_is_file(dataset):
        if dataset not in DATASET_SHAPES:
            raise ConfigError("--dataset", f"unknown data set {dataset!r}",
                              f"use one of {', '.join(DATASETS)}, or the path of a .npz or .csv file or of a "
                              "folder of IDX files (with a slash: ./my-idx)")
        return DATASET_SHAPES[dataset]
    m = cfg.model
    data = load_dataset(dataset, label_column=m.label_column, test_file=m.test_file, test_fraction=m.test_fraction)
    return data.n_inputs, data.n_classes


def check_data(cfg, data_dir: str | None = None) -> None:
    """A data set file that ``cfg`` names is read and checked against ``model.layers``
    (:func:`ddfa.data.load_config_dataset`) before a command does any work; the
    built-in sets' shapes are checked with the configuration."""
    if dataset_is_file(cfg.model.dataset):
        load_config_dataset(cfg, data_dir)


def default_dataset(board: str) -> str:
    """The data set the embedded default ``board`` is made for."""
    return load_config(None, board).model.dataset


def _parse_value(v: str):
    try:
        return tomllib.loads(f"v = {v}")["v"]
    except tomllib.TOMLDecodeError:
        return v


# Subcommands live in modules of their own; each exposes add_arguments(p) and run(args).
COMMANDS = {
    "train": ("ddfa.cli.train", "train a golden model (float or fixed-point)"),
    "report": ("ddfa.cli.report", "render results JSON files as a table and plots"),
    "demo": ("ddfa.cli.demo", "the whole flow on the embedded default: generate, train in RTL simulation, build, summary"),
    "generate": ("ddfa.cli.generate", "write the processor's Verilog, memory images and report"),
    "build": ("ddfa.cli.build", "build the processor's bitstream for a board (open toolchain)"),
    "board": ("ddfa.cli.board", "the supported boards; talk to a programmed board over its UART"),
    "simulate": ("ddfa.cli.simulate", "run the processor's Verilog in RTL simulation against the golden model"),
    "sweep": ("ddfa.cli.sweep", "run a grid of train, simulate or build jobs on Dask workers; one table of results"),
}


#: What a user can cause: a one-line error and exit status 2, never a traceback.
USER_ERRORS = (ConfigError, DataError, OutputError, TrainingDiverged)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ddfa", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``ddfa`` command; its exit status. A mistake the user can make (a bad
    option, configuration, data file or output path, a diverging run) is one line
    ``ddfa COMMAND: error: ...`` on stderr and status 2; Ctrl-C is one line and 130; an
    internal error keeps its traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:                  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print(f"ddfa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"ddfa {args.command}: interrupted" + (f" ({exc})" if str(exc) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
