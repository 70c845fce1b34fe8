"""The mlpnn-jax command: parse, call the library, print (train, reproduce, evaluate, gradcheck).

Exit codes: 0 success, 1 a failed run (divergence, gradcheck mismatch), 2 a usage error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlpnn_jax import options
from mlpnn_jax.console import INTERRUPTED, StopOnSigint, progress, say
from mlpnn_jax.devices import SetupError, setup_jax
from mlpnn_jax.options import UsageError, flag

USAGE_ERROR = 2


# ---------------------------------------------------------------- train


def _train_config(args):
    """(TrainConfig, TrainRun, resume path or None, epochs already done) of the command line."""
    from mlpnn_jax.config import TrainConfig
    from mlpnn_jax.runs import TrainRun

    given = options.given_options(args)
    if not args.resume:
        return TrainConfig(**given), TrainRun.claim(args.out, args.overwrite), None, 0
    run = TrainRun(args.resume)
    given = [
        *map(flag, given),
        *(["--out"] if args.out else []),
        *(["--overwrite"] if args.overwrite else []),
    ]
    if given:
        raise UsageError(
            f"--resume continues {run.path} in place with its own config; drop {', '.join(given)}"
        )
    meta = run.meta()
    config = TrainConfig.from_json(meta["config"])
    if len(meta["history"]) >= config.epochs:
        raise UsageError(f"--resume: {run.path} already finished its {config.epochs} epochs")
    return config, run, run.checkpoint, len(meta["history"])


def cmd_train(args):
    from mlpnn_jax import trainer as T

    config, run, resume_from, done = _train_config(args)
    jax = setup_jax(**options.platform_options(args), x64=config.dtype == "float64")
    lead = jax.process_index() == 0  # only process 0 prints and writes
    if lead:
        from mlpnn_jax import plots

        plots.preload()
        run.create()
    bar = progress(config.epochs, "train", done) if lead else None
    if lead:
        where = f"{len(jax.devices())} {jax.devices()[0].platform} device(s)"
        say(bar, f"training {config.hidden} {config.loss} on {where}; run: {run.path}")

    def on_epoch(record, result):
        if lead:
            run.save_epoch(config, result)
            _epoch_line(bar, record)
        return sigint.requested

    try:
        started = time.perf_counter()  # "elapsed" includes loading the data set
        data, params, resume = T.load_data(config, resume_from)
        with StopOnSigint() as sigint:
            result = T.train(config, data, params=params, resume=resume, on_epoch=on_epoch, started=started)
    except T.DivergenceError as e:
        good = e.last_good
        kept = f"; the checkpoint of epoch {good.epochs_run} is kept in {run.path}" if good else ""
        print(f"mlpnn-jax train: diverged at {e.describe(flag)}{kept}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if lead:
        _finish_train(result, data, run)
        if sigint.requested:
            print(f"interrupted after epoch {result.epochs_run}; resume: mlpnn-jax train --resume {run.path}")
    return INTERRUPTED if sigint.requested else 0


def _epoch_line(bar, record):
    say(
        bar,
        f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  test loss"
        f" {record['test_loss']:.4f}  test acc {100 * record['test_accuracy']:.2f}%"
        f"  {record['seconds']:.2f} s",
    )
    if bar is not None:
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", acc=f"{100 * record['test_accuracy']:.2f}%")
        bar.update(1)


def _finish_train(result, data, run):
    """Writes the figures and the confusion matrix, and prints the summary."""
    from mlpnn_jax import metrics
    from mlpnn_jax.runs import RUN_FILES

    hist, c = result.history, result.config
    cm, acc = metrics.evaluate(result.params, data[2], data[3], c.activation, c.precision)
    run.write_figures(result, cm, acc)
    best = max(hist, key=lambda h: h["test_accuracy"])
    print(
        f"test accuracy {100 * acc:.2f}% after {result.epochs_run} epochs ({hist[-1]['elapsed']:.1f} s);"
        f" best {100 * best['test_accuracy']:.2f}% at epoch {best['epoch']}"
    )
    reached = next((h for h in hist if h["test_accuracy"] >= (c.target_accuracy or 2)), None)
    if reached is not None:
        print(
            f"reached {100 * c.target_accuracy:.1f}% at epoch {reached['epoch']}"
            f" after {reached['elapsed']:.1f} s"
        )
    print(f"wrote {run.path}/: {' '.join(RUN_FILES)}")


# ---------------------------------------------------------------- evaluate


def cmd_evaluate(args):
    from mlpnn_jax import checkpoint
    from mlpnn_jax.config import TrainConfig

    params, _, meta = checkpoint.load(Path(args.run_dir) / checkpoint.CHECKPOINT)
    config = TrainConfig.from_json(meta["config"])
    setup_jax(**options.platform_options(args), x64=config.dtype == "float64")
    from mlpnn_jax import metrics
    from mlpnn_jax.data import load_mnist
    from mlpnn_jax.trainer import fold_input_stats

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
    cm, acc = metrics.evaluate(params, x_test, y_test, config.activation, config.precision)
    print("Confusion matrix:\n%s" % cm)  # noqa: UP031
    print(f"Accuracy={acc}")
    return 0


# ---------------------------------------------------------------- reproduce


def cmd_reproduce(args):
    options.check_reproduce_options(args)
    from mlpnn_jax import runs

    run_dir = runs.claim_reproduction(args.out, args.overwrite)
    setup_jax(**options.platform_options(args), x64=args.dtype == "float64")
    import reference
    from mlpnn_jax.data import load_mnist

    data = load_mnist(args.data_dir, dtype=args.dtype)
    test_set = data[2:]  # reference.evaluate below needs the test set on the host
    if args.engine == "jax":  # one copy on the device for both runs, none left behind on the host
        import jax.numpy as jnp

        data = tuple(jnp.asarray(a) for a in data)
    runs.make_dir(run_dir)
    networks = reference.notebook_networks(in_dim=data[0].shape[1], n_neuron=args.hidden)
    print(
        f"the notebook's experiment: {data[0].shape[1]}-{args.hidden}-10 tanh, full-batch GD, lr 0.1,"
        f" {args.epochs} epochs, {args.engine} engine, {args.dtype}; run: {run_dir}"
    )
    with StopOnSigint() as sigint:
        for loss, network in zip(("ce", "kl"), networks, strict=True):
            if args.loss not in (loss, "both"):
                continue
            print(f"== {'cross-entropy' if loss == 'ce' else 'KL divergence'} ==", flush=True)
            net, train, test = _reproduce_one(args, loss, network, data, sigint)
            runs.write_reproduction(run_dir, loss, train, test)
            cm, acc = reference.evaluate(net, *test_set)  # prints as the notebook did
            runs.write_confusion(run_dir / f"{loss}_confusion", cm, acc)
            if sigint.requested:
                print(f"interrupted after epoch {len(train)}; wrote {run_dir}")
                return INTERRUPTED
    print(f"wrote {run_dir}/")
    return 0


def _reproduce_one(args, loss, network, data, sigint):
    """Runs one of the notebook's two trainings: (trained reference.MLPNN, train losses, test losses)."""
    from mlpnn_jax.reproduce import run_engine

    bar = progress(args.epochs, loss)

    def on_chunk(first, train, test):
        for epoch, value in enumerate(train, first):
            if args.print_every and epoch % args.print_every == 0:
                say(bar, "[epoch %d] loss: %.4f" % (epoch, value))  # noqa: UP031 - the notebook's line
        if bar is not None:
            bar.update(len(train))
        return sigint.requested

    # Ctrl-C and the progress bar act between chunks: every epoch of the slow numpy engine
    chunk = 1 if args.engine == "numpy" else args.print_every or min(args.epochs, 100)
    try:
        return run_engine(
            args.engine,
            network,
            data,
            loss,
            args.epochs,
            dtype=args.dtype,
            precision=args.precision,
            chunk=chunk,
            on_chunk=on_chunk,
        )
    finally:
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------- gradcheck


def cmd_gradcheck(args):
    from mlpnn_jax.gradcheck import run_gradcheck

    options = {k: v for k in ("label_smoothing", "gamma", "margin") if (v := getattr(args, k)) is not None}
    return run_gradcheck(
        args.target,
        loss=args.loss,
        soft_targets=args.soft_targets,
        as_json=args.json,
        seed=args.seed,
        **options,
    )


def _add_gradcheck_parser(sub):
    p = sub.add_parser(
        "gradcheck",
        help="check a hand-written backprop against jax.grad",
        description="Checks a hand-written numpy backprop against jax.grad on problems built to expose bugs.",
    )
    p.add_argument("target", metavar="FILE.py:FUNCTION")
    p.add_argument("--loss", default="ce", help="ce, kl, mse, smooth_ce, focal or hinge")
    p.add_argument("--soft-targets", action="store_true", help="pass target distributions (n, K)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the test problems")
    p.add_argument("--label-smoothing", type=float, help="smooth_ce's eps (0.1)")
    p.add_argument("--gamma", type=float, help="focal's gamma (2.0)")
    p.add_argument("--margin", type=float, help="hinge's margin (1.0)")
    p.set_defaults(func=cmd_gradcheck)


# ---------------------------------------------------------------- main


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mlpnn-jax", description="A backprop MLP for MNIST: the notebook's, validated and fast."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    options.add_train_parser(sub, cmd_train)
    options.add_reproduce_parser(sub, cmd_reproduce)
    options.add_evaluate_parser(sub, cmd_evaluate)
    _add_gradcheck_parser(sub)
    return parser


def main(argv=None):
    """The console script's entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from mlpnn_jax.checkpoint import CheckpointError
    from mlpnn_jax.config import ConfigError
    from mlpnn_jax.data import DataError
    from mlpnn_jax.runs import RunError

    try:
        return args.func(args)
    except ConfigError as e:
        print(f"mlpnn-jax {args.command}: error: {e.describe(flag)}", file=sys.stderr)
        return USAGE_ERROR
    except (UsageError, SetupError, RunError, DataError, CheckpointError) as e:
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
