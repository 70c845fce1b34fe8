"""The mlpnn-jax command: a thin layer over the library (train, reproduce, evaluate, gradcheck).

Progress bars, printing, plots and files live here; the computations live in the library.
Exit codes: 0 success, 1 a failed run (divergence, gradcheck mismatch), 2 a usage error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import sys
from pathlib import Path

USAGE_ERROR, INTERRUPTED = 2, 130


class UsageError(Exception):
    """A user's mistake: printed as one line, exit code 2."""


def _run_dir(out, kind):
    """The output directory: ``out``, or runs/KIND-YYYYmmdd-HHMMSS."""
    if out is None:
        out = Path("runs") / f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    return out


def _setup_jax(args, x64=False):
    """Platform, 64-bit mode and (multi-host) distributed set-up, before JAX touches a device."""
    if getattr(args, "deterministic", False):  # read when the backend starts, so set it first
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true"
        ).strip()
    import jax

    if getattr(args, "platform", None):
        jax.config.update("jax_platforms", {"gpu": "cuda"}.get(args.platform, args.platform))
    if x64:
        jax.config.update("jax_enable_x64", True)
    if getattr(args, "coordinator", None) or getattr(args, "num_processes", None):
        if not (args.coordinator and args.num_processes and args.process_id is not None):
            raise UsageError("--coordinator, --num-processes and --process-id go together")
        if args.platform in (None, "cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    elif getattr(args, "distributed", False):
        jax.distributed.initialize()  # the cluster's auto-detection (SLURM, TPU pods, ...)
    try:
        jax.devices()
    except RuntimeError as e:
        raise UsageError(
            f"--platform {args.platform}: no such backend here ({str(e).splitlines()[0]})"
        ) from None
    return jax


def _progress(total, desc, initial=0):
    """A tqdm bar on a terminal; None (plain lines instead) when output goes to a file or pipe."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", dynamic_ncols=True, leave=True)


def _say(bar, line):
    if bar is not None:
        bar.write(line)
    else:
        print(line, flush=True)


class _StopOnSigint:
    """The first Ctrl-C asks training to stop after the current epoch; a second one aborts."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        def handler(signum, frame):
            self.requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("\nCtrl-C: stopping after this epoch (press again to abort)", file=sys.stderr, flush=True)

        self._old = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)


# ---------------------------------------------------------------- train


TRAIN_OPTIONS = {
    # option: (type, help); defaults come from TrainConfig
    "loss": (str, "ce, kl, mse, smooth_ce, focal or hinge"),
    "label_smoothing": (float, "train on smoothed soft targets (with kl: KL to them)"),
    "focal_gamma": (float, "focal loss gamma"),
    "hinge_margin": (float, "hinge loss margin"),
    "optimizer": (str, "sgd, momentum, adam or adamw"),
    "lr": (float, "peak learning rate"),
    "momentum": (float, "momentum coefficient"),
    "weight_decay": (float, "adamw weight decay"),
    "schedule": (str, "constant, cosine or onecycle"),
    "warmup": (float, "fraction of the steps spent warming up"),
    "batch_size": (int, "minibatch size"),
    "epochs": (int, "number of epochs"),
    "activation": (str, "tanh or relu"),
    "init": (str, "glorot, lecun or notebook"),
    "dtype": (str, "float32 or float64"),
    "compute_dtype": (str, "bfloat16: bf16 compute with float32 master weights"),
    "precision": (str, "matmul precision: default, high or highest"),
    "seed": (int, "random seed"),
    "target_accuracy": (float, "stop when test accuracy first reaches this"),
    "data_dir": (str, "a directory of MNIST-format IDX files (default: the bundled MNIST)"),
}


def _add_train_parser(sub):
    from mlpnn_jax.trainer import TrainConfig

    p = sub.add_parser("train", help="minibatch training with optax", description="Minibatch training.")
    defaults = TrainConfig()
    for name, (typ, help_) in TRAIN_OPTIONS.items():
        default = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None, help=f"{help_} ({default})")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden sizes; several: deeper (1000)")
    p.add_argument(
        "--no-standardize", dest="standardize", action="store_false", default=None, help="raw pixels"
    )
    p.add_argument("--out", help="run directory (default runs/train-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out if there is one")
    _add_platform_options(p, multihost=True)
    p.set_defaults(func=cmd_train)


def _add_platform_options(p, multihost=False):
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


def _train_config(args):
    """The TrainConfig of the options given on the command line (the rest: defaults)."""
    from mlpnn_jax.trainer import TrainConfig

    given = {k: getattr(args, k) for k in [*TRAIN_OPTIONS, "hidden", "standardize"]}
    given = {k: v for k, v in given.items() if v is not None}
    if "data_dir" in given:
        if not Path(given["data_dir"]).is_dir():
            raise UsageError(f"--data-dir: {given['data_dir']} is not a directory")
        given["data_dir"] = str(
            Path(given["data_dir"]).resolve()
        )  # so evaluate and resume work from anywhere
    return TrainConfig(**given), given


RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "checkpoint.npz",
    "loss_curves.png",
    "accuracy_curve.png",
    "confusion.png",
    "confusion.txt",
)


def _make_dir(run_dir, option="--out"):
    """Creates ``run_dir`` (an empty directory harms nothing), or says in one line why it cannot."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option}: cannot create {run_dir}: {e.strerror}") from None


def cmd_train(args):
    from mlpnn_jax import checkpoint
    from mlpnn_jax.trainer import TrainConfig

    if args.resume:
        run_dir = Path(args.resume)
        _, given = _train_config(args)
        given = [*given, *(["out"] if args.out else []), *(["overwrite"] if args.overwrite else [])]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(f"--resume continues {run_dir} in place with its own config; drop {flags}")
        config = TrainConfig.from_json(checkpoint.load(run_dir / checkpoint.CHECKPOINT)[2]["config"])
    else:
        config, _ = _train_config(args)
        run_dir = _run_dir(args.out, "train")
        if (run_dir / checkpoint.CHECKPOINT).exists() and not args.overwrite:
            raise UsageError(
                f"--out: {run_dir} already holds a run; --resume it, --overwrite it, or pick another"
            )
    jax = _setup_jax(args, x64=config.dtype == "float64")
    from mlpnn_jax import trainer as T
    from mlpnn_jax.data import load_mnist

    lead = jax.process_index() == 0  # only process 0 prints and writes
    if lead:
        from mlpnn_jax import plots

        plots.preload()
        _make_dir(run_dir)
    data = T.Background(load_mnist, config.data_dir, dtype=config.dtype)  # overlaps the compiles
    resume = None
    if args.resume:
        resume = T.load_resume(run_dir / checkpoint.CHECKPOINT, config)
        if len(resume["history"]) >= config.epochs:
            raise UsageError(f"--resume: {run_dir} already finished its {config.epochs} epochs")
    n_dev = len(jax.devices())
    bar = _progress(config.epochs, "train", len(resume["history"]) if resume else 0) if lead else None
    if lead:
        platform = jax.devices()[0].platform
        _say(bar, f"training {config.hidden} {config.loss} on {n_dev} {platform} device(s); run: {run_dir}")

    def save(result):
        if result.epochs_run == 1:  # the new run's first good epoch: only now replace an old run's files
            for name in RUN_FILES:
                (run_dir / name).unlink(missing_ok=True)
            checkpoint.write_json(run_dir / "config.json", config.to_json())
        meta = {
            "config": config.to_json(),
            "epoch": result.epochs_run,
            "history": result.history,
            "input_stats": list(result.input_stats),
        }
        checkpoint.save(run_dir / checkpoint.CHECKPOINT, result.train_params, result.opt_state, meta)
        checkpoint.write_text(
            run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in result.history)
        )

    def on_epoch(record, result):
        if lead:
            save(result)
            _say(
                bar,
                f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  test loss"
                f" {record['test_loss']:.4f}  test acc {100 * record['test_accuracy']:.2f}%"
                f"  {record['seconds']:.2f} s",
            )
            if bar is not None:
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}", acc=f"{100 * record['test_accuracy']:.2f}%"
                )
                bar.update(1)
        return sigint.requested

    try:
        with _StopOnSigint() as sigint:
            result = T.train(config, data, resume=resume, on_epoch=on_epoch)
    except T.DivergenceError as e:
        good = e.last_good
        kept = f"; the checkpoint of epoch {good.epochs_run} is kept in {run_dir}" if good else ""
        print(f"mlpnn-jax train: diverged at {e}{kept}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if lead:
        _finish_train(result, data.result(), run_dir)
    if sigint.requested:
        if lead:
            print(f"interrupted after epoch {result.epochs_run}; resume: mlpnn-jax train --resume {run_dir}")
        return INTERRUPTED
    return 0


def _finish_train(result, data, run_dir):
    """Prints the summary and writes the curves and the confusion matrix."""
    from mlpnn_jax import plots

    hist = result.history
    best = max(hist, key=lambda h: h["test_accuracy"])
    reached = next((h for h in hist if h["test_accuracy"] >= (result.config.target_accuracy or 2)), None)
    c = result.config
    cm, acc = _confusion(result.params, data[2], data[3], c.activation, c.precision)
    _write_confusion(run_dir / "confusion", cm, acc)
    plots.loss_curves(
        run_dir / "loss_curves.png",
        [h["train_loss"] for h in hist],
        [h["test_loss"] for h in hist],
        f"{result.config.loss} loss (mean)"
        + (
            f"; train: smoothed targets (eps {result.config.label_smoothing})"
            if result.config.label_smoothing
            else ""
        ),
    )
    plots.accuracy_curve(run_dir / "accuracy_curve.png", hist)
    print(
        f"test accuracy {100 * acc:.2f}% after {result.epochs_run} epochs ({hist[-1]['elapsed']:.1f} s);"
        f" best {100 * best['test_accuracy']:.2f}% at epoch {best['epoch']}"
    )
    if reached is not None:
        print(
            f"reached {100 * result.config.target_accuracy:.1f}% at epoch {reached['epoch']}"
            f" after {reached['elapsed']:.1f} s"
        )
    print(
        f"wrote {run_dir}/: config.json metrics.jsonl checkpoint.npz loss_curves.png accuracy_curve.png"
        " confusion.png confusion.txt"
    )


def _confusion(params, x, y, activation, precision="default"):
    """(confusion matrix (10, 10), accuracy) of params on raw inputs x (m, D), labels y (m,)."""
    from mlpnn_jax.trainer import confusion_matrix, predict

    cm = confusion_matrix(y, predict(params, x, activation, precision))
    return cm, float(cm.trace() / cm.sum())


def _write_confusion(stem, cm, acc):
    from mlpnn_jax import checkpoint, plots

    text = "Confusion matrix:\n%s\nAccuracy=%s\n" % (cm, acc)  # noqa: UP031 - the notebook's format
    checkpoint.write_text(stem.with_suffix(".txt"), text)
    plots.confusion(stem.with_suffix(".png"), cm, f"Confusion matrix (accuracy {100 * acc:.2f}%)")


# ---------------------------------------------------------------- evaluate


def cmd_evaluate(args):
    from mlpnn_jax import checkpoint
    from mlpnn_jax.trainer import TrainConfig, fold_input_stats

    path = Path(args.run_dir) / checkpoint.CHECKPOINT
    params, _, meta = checkpoint.load(path)
    config = TrainConfig.from_json(meta["config"])
    _setup_jax(args, x64=config.dtype == "float64")
    from mlpnn_jax.data import load_mnist

    data_dir = args.data_dir if args.data_dir is not None else config.data_dir
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: {data_dir} is not a directory")
    _, _, x_test, y_test = load_mnist(data_dir, dtype=config.dtype)
    if x_test.shape[1] != params["W1"].shape[0]:
        raise UsageError(
            f"--data-dir: its images have {x_test.shape[1]} pixels; the model takes {params['W1'].shape[0]}"
        )
    if x_test.shape[0] == 0:
        raise UsageError(f"--data-dir: the test set of {data_dir or 'the bundled MNIST'} is empty")
    params = fold_input_stats(params, meta["input_stats"])
    cm, acc = _confusion(params, x_test, y_test, config.activation, config.precision)
    print("Confusion matrix:\n%s" % cm)  # noqa: UP031
    print(f"Accuracy={acc}")
    return 0


# ---------------------------------------------------------------- reproduce


def cmd_reproduce(args):
    if args.engine == "numpy" and args.dtype != "float64":
        raise UsageError("--dtype: the numpy engine runs the notebook in float64 only")
    if args.epochs < 1:
        raise UsageError(f"--epochs: expected a positive integer, got {args.epochs}")
    if args.print_every < 0:
        raise UsageError(f"--print-every: expected 0 (never) or a positive integer, got {args.print_every}")
    if args.hidden < 1:
        raise UsageError(f"--hidden: expected a positive number of hidden units, got {args.hidden}")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir: {args.data_dir} is not a directory")
    run_dir = _run_dir(args.out, "reproduce")
    if any((run_dir / f"{loss}_losses.csv").exists() for loss in ("ce", "kl")) and not args.overwrite:
        raise UsageError(f"--out: {run_dir} already holds a reproduction; --overwrite it or pick another")
    _setup_jax(args, x64=args.dtype == "float64")
    import reference
    from mlpnn_jax.data import load_mnist

    data = load_mnist(args.data_dir, dtype=args.dtype)
    test_set = data[2:]  # evaluate() below needs the test set on the host
    if args.engine == "jax":  # one copy on the device for both runs, none left behind on the host
        import jax.numpy as jnp

        data = tuple(jnp.asarray(a) for a in data)
    _make_dir(run_dir)
    inits = dict(
        zip(
            ("ce", "kl"),
            reference.notebook_networks(in_dim=data[0].shape[1], n_neuron=args.hidden),
            strict=True,
        )
    )
    losses = ["ce", "kl"] if args.loss == "both" else [args.loss]
    print(
        f"the notebook's experiment: {data[0].shape[1]}-{args.hidden}-10 tanh, full-batch GD, lr 0.1,"
        f" {args.epochs} epochs, {args.engine} engine, {args.dtype}; run: {run_dir}"
    )
    with _StopOnSigint() as sigint:
        for loss in losses:
            print(f"== {'cross-entropy' if loss == 'ce' else 'KL divergence'} ==", flush=True)
            train, test, net = _reproduce_one(args, loss, inits[loss], data, sigint)
            _write_reproduction(run_dir, loss, train, test)
            cm, acc = reference.evaluate(net, *test_set)  # prints as the notebook did
            _write_confusion(run_dir / f"{loss}_confusion", cm, acc)
            if sigint.requested:
                print(f"interrupted after epoch {len(train)}; wrote {run_dir}")
                return INTERRUPTED
    print(f"wrote {run_dir}/")
    return 0


def _reproduce_one(args, loss, network, data, sigint):
    """Runs one of the notebook's two trainings; returns (train losses, test losses, trained MLPNN)."""
    import numpy as np

    import reference

    bar = _progress(args.epochs, loss)

    def report(first, train, test):
        for i, value in enumerate(train):
            epoch = first + i
            if args.print_every and epoch % args.print_every == 0:
                _say(bar, "[epoch %d] loss: %.4f" % (epoch, value))  # noqa: UP031 - the notebook's line
        if bar is not None:
            bar.update(len(train))
        return sigint.requested

    if args.engine == "numpy":
        train, test = [], []

        def per_epoch(epoch, tr, te):
            train.append(tr)
            test.append(te)
            if report(epoch, [tr], [te]):
                raise StopIteration

        with contextlib.suppress(StopIteration):  # raised by per_epoch on Ctrl-C to end the loop
            reference.run_notebook(
                network, *data, loss=loss, epochs=args.epochs, print_every=0, progress=per_epoch
            )
        net = network
    else:
        import jax

        from mlpnn_jax.reproduce import run_notebook

        params = jax.tree.map(lambda a: a.astype(args.dtype), network.params)
        chunk = args.print_every or min(args.epochs, 100)  # Ctrl-C and the progress bar act between chunks
        with jax.default_matmul_precision(args.precision):
            params, train, test = run_notebook(params, data, loss, args.epochs, chunk=chunk, on_chunk=report)
        net = reference.MLPNN.from_params(jax.tree.map(np.asarray, params))
    if bar is not None:
        bar.close()
    return np.asarray(train), np.asarray(test), net


def _write_reproduction(run_dir, loss, train, test):
    from mlpnn_jax import checkpoint, plots

    pairs = zip(train.tolist(), test.tolist(), strict=True)
    rows = "".join(f"{i},{tr!r},{te!r}\n" for i, (tr, te) in enumerate(pairs, 1))
    checkpoint.write_text(run_dir / f"{loss}_losses.csv", "epoch,train_loss,test_loss\n" + rows)
    ylabel = "cross-entropy (sum)" if loss == "ce" else "KL as printed: -KL (sum)"
    plots.loss_curves(run_dir / f"{loss}_loss_curves.png", train, test, ylabel)


# ---------------------------------------------------------------- gradcheck


def run_gradcheck(target, *, out=None, err=None, timeout=60.0, **request):
    """``mlpnn-jax gradcheck PATH:NAME``: check in a child process, print; returns the exit code.

    ``request`` holds the fields of ``gradcheck.isolate.Request`` (loss, forward, init, as_json...).
    The report (table or JSON) goes to ``out``; whatever the user's code printed, and for exit 2 the
    user's traceback and one ``error:`` line, go to ``err``. Exit 0 when everything matches, 1 when
    anything does not, 2 when the check could not run (bad PATH:NAME, the code raised, hung or exited).
    """
    from mlpnn_jax.gradcheck.isolate import Request, run_isolated
    from mlpnn_jax.gradcheck.load import LoadError, precheck

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        precheck(target)  # a missing file or function: no child process needed to say so
    except LoadError as e:
        err.write(f"error: {e}\n")
        return 2
    options = {
        k: request.pop(k) for k in ("label_smoothing", "gamma", "margin") if request.get(k) is not None
    }
    request = {k: v for k, v in request.items() if k not in ("label_smoothing", "gamma", "margin")}
    outcome, chatter = run_isolated(Request(target=target, options=options, **request), timeout)
    err.write(chatter)
    if outcome.code == 2:
        err.write(outcome.traceback)
        err.write(f"error: {outcome.error}\n")
        return 2
    out.write(outcome.report)
    return outcome.code


def cmd_gradcheck(args):
    """The gradcheck subcommand (see ``add_gradcheck_parser``)."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive; got {args.timeout:g}")
    keys = ("loss", "forward", "init", "activation", "output", "l2", "soft_targets", "seed")
    request = {k: getattr(args, k) for k in keys}
    options = {k: v for k in ("label_smoothing", "gamma", "margin") if (v := getattr(args, k)) is not None}
    return run_gradcheck(args.target, as_json=args.json, timeout=args.timeout, **request, **options)


def add_gradcheck_parser(sub):
    """The gradcheck subcommand's arguments."""
    from mlpnn_jax.gradcheck import LOSS_NAMES

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
        help="FILE.py:function, FILE.py:Class.method or NOTEBOOK.ipynb:function",
    )
    p.add_argument(
        "--forward", metavar="NAME", help="the forward function (or method) whose result the backprop takes"
    )
    p.add_argument("--init", metavar="NAME", help="the function that makes the params from the layer sizes")
    p.add_argument(
        "--loss",
        choices=LOSS_NAMES,
        help="the loss (default: inferred; the notebook's ce when nothing is exposed)",
    )
    p.add_argument(
        "--activation",
        choices=["tanh", "relu", "sigmoid", "leaky_relu", "identity"],
        help="hidden activation",
    )
    p.add_argument("--output", choices=["softmax", "sigmoid"], help="the output layer")
    p.add_argument("--l2", type=float, help="the L2 coefficient lambda (the loss adds lambda/2 sum W**2)")
    p.add_argument("--soft-targets", action="store_true", help="pass target distributions (n, K)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the test problems")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds the check may take (default 60)")
    p.add_argument("--label-smoothing", type=float, help="smooth_ce's eps (0.1)")
    p.add_argument("--gamma", type=float, help="focal's gamma (2.0)")
    p.add_argument("--margin", type=float, help="hinge's margin (1.0)")
    p.set_defaults(func=cmd_gradcheck)
    return p


# ---------------------------------------------------------------- main


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mlpnn-jax", description="A backprop MLP for MNIST: the notebook's, validated and fast."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)

    p = sub.add_parser("reproduce", help="the notebook's full-batch experiment", description=__doc__)
    p.add_argument("--loss", choices=["ce", "kl", "both"], default="both")
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--engine", choices=["jax", "numpy"], default="jax")
    p.add_argument(
        "--precision",
        choices=["default", "high", "highest"],
        default="highest",
        help="JAX matmul precision (highest: no TF32/bf16 passes on GPU/TPU)",
    )
    p.add_argument("--print-every", type=int, default=200)
    p.add_argument("--hidden", type=int, default=1000, help="hidden units (the notebook: 1000)")
    p.add_argument("--data-dir", help="a directory of MNIST-format IDX files (default: the bundled MNIST)")
    p.add_argument("--out", help="output directory (default runs/reproduce-TIMESTAMP)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the reproduction in --out if there is one"
    )
    _add_platform_options(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("evaluate", help="confusion matrix and accuracy of a trained run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data-dir", help="evaluate on this MNIST-format set's test split")
    _add_platform_options(p)
    p.set_defaults(func=cmd_evaluate)

    add_gradcheck_parser(sub)
    return parser


def main(argv=None):
    """The console script's entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from mlpnn_jax.checkpoint import CheckpointError
    from mlpnn_jax.data import DataError
    from mlpnn_jax.trainer import ConfigError

    try:
        return args.func(args)
    except (UsageError, ConfigError, DataError, CheckpointError) as e:
        print(f"mlpnn-jax {args.command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"mlpnn-jax {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
