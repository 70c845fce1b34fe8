"""The command line's flags: generated from TrainConfig's fields for train, declared for the others."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

PLATFORM_OPTIONS = ("platform", "deterministic", "coordinator", "num_processes", "process_id", "distributed")


class UsageError(Exception):
    """A user's mistake: printed as one line, exit code 2."""


def flag(field):
    """The flag of a TrainConfig field: ``lr`` -> ``--lr``, ``batch_size`` -> ``--batch-size``."""
    from mlpnn_jax.config import TrainConfig

    if field not in {f.name for f in dataclasses.fields(TrainConfig)}:
        return field  # not an option (e.g. "config")
    return "--" + field.replace("_", "-")


def _value(value):
    """A field's value as --help writes it: ``1000 500``, ``on``, ``0.1``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _shown(default):
    """`` (default: X)`` for --help; nothing for None (the field's help says what None means)."""
    return "" if default is None else f" (default: {_value(default)})"


def add_config_options(p):
    """One flag per TrainConfig field, generated from its declaration (type, choices, default, help).

    Every flag defaults to None, "not given", so that the config's own defaults apply and --resume can
    tell which options were given.
    """
    from mlpnn_jax.config import TrainConfig, field_type

    for f in dataclasses.fields(TrainConfig):
        meta, typ = f.metadata, field_type(f.name)
        help_ = meta["help"] + _shown(f.default)
        if typ is bool:
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_)
            continue
        choices = meta["choices"]  # shown, and checked by the config: its one-line error names the option
        metavar = "{" + ",".join(choices) + "}" if choices else None
        nargs = "+" if isinstance(f.default, tuple) else None
        p.add_argument(flag(f.name), type=typ, nargs=nargs, metavar=metavar, default=None, help=help_)


def given_options(args):
    """The TrainConfig fields given on the command line; directories checked and made absolute."""
    from mlpnn_jax.config import TrainConfig

    given = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name)
        if value is not None and f.metadata["directory"]:
            if not Path(value).is_dir():
                raise UsageError(f"{flag(f.name)}: {value} is not a directory")
            value = str(Path(value).resolve())  # so evaluate and resume work from anywhere
        if value is not None:
            given[f.name] = value
    return given


# reproduce option: (its check, what it expects)
REPRODUCE_CHECKS = {
    "epochs": (lambda v: v >= 1, "a positive integer"),
    "print_every": (lambda v: v >= 0, "0 (never) or a positive integer"),
    "hidden": (lambda v: v >= 1, "a positive number of hidden units"),
}


def check_reproduce_options(args):
    """Raises UsageError for a reproduce option that cannot work."""
    if args.engine == "numpy" and args.dtype != "float64":
        raise UsageError("--dtype: the numpy engine runs the notebook in float64 only")
    for name, (check, expected) in REPRODUCE_CHECKS.items():
        if not check(getattr(args, name)):
            raise UsageError(f"--{name.replace('_', '-')}: expected {expected}, got {getattr(args, name)}")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir: {args.data_dir} is not a directory")


def platform_options(args):
    """The set-up options of ``devices.setup_jax`` that the command line gave (its platform flags)."""
    return {k: getattr(args, k) for k in PLATFORM_OPTIONS if hasattr(args, k)}


def add_platform_options(p, multihost=False):
    p.add_argument("--platform", choices=["cpu", "gpu", "tpu"], help="default: what JAX finds")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="GPU: deterministic XLA ops (--xla_gpu_deterministic_ops): bit-identical reruns, slower",
    )
    if multihost:
        p.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: process 0's address")
        p.add_argument("--num-processes", type=int, help="multi-host: number of processes")
        p.add_argument("--process-id", type=int, help="multi-host: this process's index")
        p.add_argument(
            "--distributed", action="store_true", help="multi-host with the cluster's auto-detection"
        )


def presets_epilog():
    """The presets and their values, as the flags that give them, for ``train --help``."""
    from mlpnn_jax.config import PRESETS

    width = max(map(len, PRESETS))
    rows = [
        f"  {name:<{width}}  "
        + (" ".join(f"{flag(k)} {_value(v)}" for k, v in values.items()) or "the defaults above")
        for name, values in PRESETS.items()
    ]
    return "\n".join(["presets (--preset NAME: these values for the options not given):", *rows])


def add_train_parser(sub, func):
    p = sub.add_parser(
        "train",
        help="minibatch training with optax",
        description="Minibatch training of an MLP on MNIST, into a run directory (see --out).",
        epilog=presets_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p)
    p.add_argument(
        "--config",
        metavar="PATH",
        help="train a run's recipe again: its config.json; the options given here still win",
    )
    p.add_argument("--out", help="run directory (default runs/train-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out if there is one")
    add_platform_options(p, multihost=True)
    p.set_defaults(func=func)


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each option's default, where it has one (not None or off)."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def add_reproduce_parser(sub, func):
    p = sub.add_parser(
        "reproduce",
        formatter_class=_DefaultsShown,
        help="the notebook's full-batch experiment",
        description="The notebook's experiment: its initial weights, full-batch gradient descent with lr 0.1,"
        " its printed lines, then the confusion matrix and the accuracy; writes the loss curves.",
    )
    p.add_argument("--loss", choices=["ce", "kl", "both"], default="both", help="which of the two trainings")
    p.add_argument("--epochs", type=int, default=2000, help="full-batch epochs")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="the arrays' dtype")
    p.add_argument("--engine", choices=["jax", "numpy"], default="jax", help="jax, or the numpy notebook")
    p.add_argument(
        "--precision",
        choices=["default", "high", "highest"],
        default="highest",
        help="JAX matmul precision (highest: no TF32/bf16 passes on GPU/TPU)",
    )
    p.add_argument("--print-every", type=int, default=200, help="print the loss every N epochs (0: never)")
    p.add_argument("--hidden", type=int, default=1000, help="hidden units (the notebook: 1000)")
    p.add_argument("--data-dir", help="a directory of MNIST-format IDX files (default: the bundled MNIST)")
    p.add_argument("--out", help="output directory (default runs/reproduce-TIMESTAMP)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the reproduction in --out if there is one"
    )
    add_platform_options(p)
    p.set_defaults(func=func)


def add_evaluate_parser(sub, func):
    p = sub.add_parser(
        "evaluate",
        help="accuracy, loss, confusion matrix and per-class scores of a run",
        description="Reloads a train run's checkpoint or a reproduce run's params and prints the test set's"
        " accuracy, mean loss, labelled confusion matrix and per-class precision, recall and F1.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a train or reproduce run directory")
    p.add_argument("--data-dir", help="evaluate on this MNIST-format set's test split (default: the run's)")
    p.add_argument("--loss", choices=["ce", "kl"], help="a reproduce run's network (needed when it has both)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_platform_options(p)
    p.set_defaults(func=func)


def add_report_parser(sub, func):
    p = sub.add_parser(
        "report",
        help="write a run's report.html again",
        description="Rebuilds RUN_DIR/report.html from the files of a train or reproduce run.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_platform_options(p)
    p.set_defaults(func=func)


def add_gradcheck_parser(sub, func):
    """The gradcheck subcommand's arguments."""
    p = sub.add_parser(
        "gradcheck",
        help="check a hand-written backprop against jax.grad",
        description="Check a hand-written backprop (a function or Class.method in a .py file or a "
        "notebook) against "
        "jax.grad: the calling convention and the network are inferred; the flags override what cannot be.",
    )
    p.add_argument(
        "target",
        metavar="PATH:NAME",
        nargs="+",
        help="FILE.py:function, FILE.py:Class.method or NOTEBOOK.ipynb:function; several, a directory "
        "(its files that define NAME) or a quoted glob check a class of files",
    )
    p.add_argument(
        "--forward", metavar="NAME", help="the forward function (or method) whose result the backprop takes"
    )
    p.add_argument("--init", metavar="NAME", help="the function that makes the params from the layer sizes")
    p.add_argument(
        "--setup",
        metavar="CODE",
        help="Python statements run in the file's namespace before the check (e.g. 'net = Net(); "
        "net.add(Dense(5, 4))'); an instance of the checked method's class they bind is the one checked",
    )
    p.add_argument("--soft-targets", action="store_true", help="pass target distributions (n, K)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the test problems")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds the check may take (default 60)")
    p.add_argument(
        "--memory-limit",
        type=float,
        metavar="GB",
        help="memory the checked code may use (default 4, at most what is free)",
    )
    add_class_options(p)
    add_network_options(p)
    p.set_defaults(func=func)
    return p


def add_network_options(p):
    """gradcheck's options that name the network where the code does not expose it."""
    from mlpnn_jax.gradcheck.names import ACTIVATION_NAMES, LOSS_NAMES

    p.add_argument(
        "--loss",
        choices=LOSS_NAMES,
        help="the loss (default: inferred; the notebook's ce when nothing is exposed)",
    )
    p.add_argument("--activation", choices=ACTIVATION_NAMES, help="hidden activation")
    p.add_argument("--output", choices=["softmax", "sigmoid"], help="the output layer")
    p.add_argument("--l2", type=float, help="the L2 coefficient lambda (the loss adds lambda/2 sum W**2)")
    p.add_argument("--label-smoothing", type=float, help="smooth_ce's eps (0.1)")
    p.add_argument("--gamma", type=float, help="focal's gamma (2.0)")
    p.add_argument("--margin", type=float, help="hinge's margin (1.0)")


def add_class_options(p):
    """gradcheck's options for its page, and for a class of files."""
    p.add_argument("--html", metavar="FILE", help="also write the check's page (one check)")
    p.add_argument(
        "--summary",
        metavar="FILE",
        help="several files: write a .json or .csv summary, and one page per file in FILE's stem-pages/",
    )
    p.add_argument(
        "--jobs", type=int, help="several files: at most this many at once (default: one per core)"
    )


def check_gradcheck_options(args, one):
    """Raises UsageError for a gradcheck option that cannot work: ``one`` check, or a class of files."""
    from mlpnn_jax.gradcheck import classroom

    if one and args.jobs is not None:
        raise UsageError("--jobs: checks several files at once; give several targets, a directory or a glob")
    if one and args.html is not None and not Path(args.html).parent.is_dir():
        raise UsageError(f"--html: {Path(args.html).parent} is not a directory")
    if one:
        return
    for name, given in (("--json", args.json), ("--html", args.html is not None)):
        if given:
            raise UsageError(f"{name} is for one check; with several files use --summary FILE.json")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1; got {args.jobs}")
    if args.summary is not None:
        classroom.check_summary_path(args.summary)
