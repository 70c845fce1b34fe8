"""The mlpnn-jax command: parse, call the library, print (train, reproduce, evaluate, report, gradcheck).

Exit codes: 0 success, 1 a failed run (divergence, a file that could not be written, gradcheck mismatch),
2 a usage error, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mlpnn_jax import __version__, options
from mlpnn_jax.devices import SetupError, cache_dir, setup_jax
from mlpnn_jax.lock import RunError, RunWriteError
from mlpnn_jax.options import UsageError, flag
from mlpnn_jax.terminal import FAILED, USAGE_ERROR, Signals, progress, say

# ---------------------------------------------------------------- train


def _train_config(args):
    """(TrainConfig, the checkpoint to resume as ``checkpoint.read`` returned it or None, epochs already
    done) of the command line; the checkpoint is read here, once."""
    from mlpnn_jax.config import TrainConfig

    given = options.given_options(args)
    if not args.resume:
        if args.config is None:
            return TrainConfig.from_preset(**given), None, 0
        return TrainConfig.from_json({**_saved_config(args.config, given), **given}), None, 0
    given = [
        *map(flag, given),
        *(["--config"] if args.config else []),
        *(["--out"] if args.out else []),
        *(["--overwrite"] if args.overwrite else []),
    ]
    if given:
        raise UsageError(
            f"--resume continues {args.resume} in place with its own config; drop {', '.join(given)}"
        )
    from mlpnn_jax import checkpoint, runs

    path = runs.recover(args.resume) / checkpoint.CHECKPOINT  # a swap cut short: the run put back
    saved = checkpoint.read(path, parse_config=TrainConfig.from_json)
    config = TrainConfig.from_json(saved.meta["config"])
    if len(saved.meta["history"]) >= config.epochs:
        raise UsageError(f"--resume: {args.resume} already finished its {config.epochs} epochs")
    return config, saved, len(saved.meta["history"])


def _saved_config(path, given):
    """The dict of a run's config.json for ``--config``; the options ``given`` will replace its values."""
    if "preset" in given:
        raise UsageError("--preset: --config gives every option already; give the options themselves")
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(
            f"--config: {path} is not a readable config.json ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(saved, dict):
        raise UsageError(f"--config: {path} is not a run's config.json (expected a JSON object)")
    return saved


def _start_jax(args, x64):
    """JAX as the command line asks, compiled programs kept in the user's cache folder; the jax module."""
    return setup_jax(**options.platform_options(args), x64=x64, cache=cache_dir())


def cmd_train(args, signals):
    from mlpnn_jax.data import load_pixels_async

    config, resume_from, done = _train_config(args)
    pixels = load_pixels_async(config.data_dir)  # while JAX imports: this far, nothing imported it
    jax = _start_jax(args, x64=config.dtype == "float64")
    from mlpnn_jax.runs import TrainRun

    run = None
    if jax.process_index() == 0:  # only process 0 writes: it claims the run directory, before any data
        run = TrainRun.resume(args.resume) if args.resume else TrainRun.claim(args.out, args.overwrite)
    try:
        return _train(jax, signals, config, run, (resume_from, pixels), done)
    except RunWriteError as e:
        kept = "its last complete checkpoint is kept" if run.run.published else "the old run is unchanged"
        print(f"mlpnn-jax train: error: {e}; {kept} in {run.path}", file=sys.stderr)
        return FAILED
    finally:
        if run is not None:
            run.close()


def _train(jax, signals, config, run, start, done):
    """Trains from ``start`` (the checkpoint to resume or None, the data set's Future); ``run`` is None
    on every process but the one that prints and writes."""
    from mlpnn_jax import trainer as T

    lead = run is not None
    bar = progress(config.epochs, "train", done) if lead else None
    if lead:
        where = f"{len(jax.devices())} {jax.devices()[0].platform} device(s)"
        say(bar, f"{_recipe(config)} on {where}; run: {run.path}")

    def on_epoch(record, result):
        if lead:
            run.save_epoch(config, result)
            _epoch_line(bar, record)
        return signals.requested is not None

    try:
        started = time.perf_counter()  # "elapsed" includes loading the data set
        data, params, resume = T.load_data(config, *start)
        signals.graceful("stopping after this epoch")  # start-up is over: the first signal now stops
        result = T.train(config, data, params=params, resume=resume, on_epoch=on_epoch, started=started)
    except T.DivergenceError as e:
        good = e.last_good
        kept = f"; the checkpoint of epoch {good.epochs_run} is kept in {run.path}" if good and lead else ""
        print(f"mlpnn-jax train: diverged at {e.describe(flag)}{kept}", file=sys.stderr)
        return FAILED
    finally:
        if bar is not None:
            bar.close()
    if lead:
        from mlpnn_jax.data import scale_pixels

        test_set = scale_pixels(data[2], config.dtype), data[3]  # the device scaled them a batch at a time
        classified = _finish_train(result, test_set, run)
        _write_report(run.run.dir, test_set, classified)
        if signals.requested is not None:
            print(f"interrupted after epoch {result.epochs_run}; resume: mlpnn-jax train --resume {run.path}")
    return signals.exit_code if signals.requested is not None else 0


def _recipe(config):
    """The console's first words: the net and the recipe's main levers."""
    return (
        f"training hidden {' '.join(map(str, config.hidden))} {config.activation}, {config.loss} loss,"
        f" {config.optimizer} lr {config.lr:g} {config.schedule} schedule, {config.epochs} epochs"
    )


def _epoch_line(bar, record):
    say(
        bar,
        f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  test loss"
        f" {record['test_loss']:.4f}  test acc {100 * record['test_accuracy']:.2f}%"
        + (f"  val acc {100 * record['validation_accuracy']:.2f}%" if "validation_accuracy" in record else "")
        + f"  {record['seconds']:.2f} s",
    )
    if bar is not None:
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", acc=f"{100 * record['test_accuracy']:.2f}%")
        bar.update(1)


def _finish_train(result, test_set, run):
    """Writes the figures and the confusion matrix, and prints the summary; returns the final params'
    ``metrics.classify`` of the test set (x (m, D) in [0, 1], y (m,)), for the report: the last epoch's,
    else (no epoch ran) a pass of its own."""
    from mlpnn_jax import metrics
    from mlpnn_jax.runs import RUN_FILES
    from mlpnn_jax.trainer import best_epoch, chosen_accuracy, reached_epoch

    hist, c = result.history, result.config
    classified = result.test_outputs
    if classified is None:
        classified = metrics.classify(result.params, test_set[0], c.activation, c.precision)
    cm = metrics.confusion_matrix(test_set[1], classified[1])
    acc = metrics.accuracy(cm)
    run.write_figures(result, cm, acc)
    key, best, reached = chosen_accuracy(c), best_epoch(c, hist), reached_epoch(c, hist)
    split = key.split("_")[0]  # the set every choice was made on: validation, when the run held one out
    print(
        f"test accuracy {100 * acc:.2f}% after {result.epochs_run} epochs ({hist[-1]['elapsed']:.1f} s);"
        f" best {split} {100 * best[key]:.2f}% at epoch {best['epoch']}"
    )
    if reached is not None:
        print(
            f"reached {split} {100 * c.target_accuracy:.1f}% at epoch {reached['epoch']}"
            f" after {reached['elapsed']:.1f} s"
        )
    print(f"wrote {run.path}/: {' '.join(RUN_FILES)}")
    return classified


# ---------------------------------------------------------------- evaluate


def cmd_evaluate(args, signals):
    from mlpnn_jax import checkpoint, evaluation, runs

    model = evaluation.read_run(runs.recover(args.run_dir), args.loss)  # a swap cut short: the run put back
    _start_jax(args, x64=model.dtype == "float64")
    from mlpnn_jax.data import load_mnist

    data_dir = args.data_dir if args.data_dir is not None else model.data_dir
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: {data_dir} is not a directory")
    _, _, x_test, y_test = load_mnist(data_dir, dtype=model.dtype)
    if x_test.shape[0] == 0:
        raise UsageError(f"--data-dir: the test set of {data_dir or 'the bundled MNIST'} is empty")
    params = evaluation.run_params(model)
    checkpoint.check_input_dim(model.path, params, x_test.shape[1])
    scores = evaluation.score(model, params, x_test, y_test)
    print(json.dumps(scores) if args.json else evaluation.to_text(scores))
    return 0


# ---------------------------------------------------------------- reproduce


def cmd_reproduce(args, signals):
    options.check_reproduce_options(args)
    from mlpnn_jax import runs

    run = runs.claim_reproduction(args.out, args.overwrite)
    try:
        return _reproduce(args, signals, run)
    except runs.RunWriteError as e:
        print(f"mlpnn-jax reproduce: error: {e}", file=sys.stderr)
        return FAILED
    finally:
        run.close()


def _reproduce(args, signals, run):
    from mlpnn_jax import runs

    _start_jax(args, x64=args.dtype == "float64")
    from mlpnn_jax import plots

    plots.preload()  # matplotlib imports while the experiment runs: a stopped run's figures come sooner
    import reference
    from mlpnn_jax.data import load_mnist

    data = load_mnist(args.data_dir, dtype=args.dtype)
    test_set = data[2:]  # reference.evaluate below needs the test set on the host
    if args.engine == "jax":  # one copy on the device for both runs, none left behind on the host
        import jax.numpy as jnp

        data = tuple(jnp.asarray(a) for a in data)
    networks = reference.notebook_networks(in_dim=data[0].shape[1], n_neuron=args.hidden)
    print(
        f"the notebook's experiment: {data[0].shape[1]}-{args.hidden}-10 tanh, full-batch GD, lr 0.1,"
        f" {args.epochs} epochs, {args.engine} engine, {args.dtype}; run: {run.path}"
    )
    from mlpnn_jax import report

    report.start_reproduction(run.dir, vars(args))
    signals.graceful("stopping after these epochs")
    for loss, network in zip(("ce", "kl"), networks, strict=True):
        if args.loss not in (loss, "both"):
            continue
        print(f"== {'cross-entropy' if loss == 'ce' else 'KL divergence'} ==", flush=True)
        start = time.perf_counter()
        net, train, test = _reproduce_one(args, loss, network, data, signals)
        seconds = time.perf_counter() - start
        runs.write_reproduction(run.dir, loss, train, test)
        cm, acc = reference.evaluate(net, *test_set)  # prints as the notebook did
        runs.write_confusion(run.dir / f"{loss}_confusion", cm, acc)
        report.save_reproduction(run.dir, loss, net.params, seconds, len(train))
        _write_report(run.dir, test_set)
        run.publish()
        if signals.requested is not None:
            print(f"interrupted after epoch {len(train)}; wrote {run.path}")
            return signals.exit_code
    print(f"wrote {run.path}/")
    return 0


PLAIN_PROGRESS_SECONDS = 10.0  # without a terminal (no bar), a progress line at least this often


def _reproduce_one(args, loss, network, data, signals):
    """Runs one of the notebook's two trainings: (trained reference.MLPNN, train losses, test losses)."""
    from mlpnn_jax.reproduce import run_engine

    bar = progress(args.epochs, loss)
    # Ctrl-C and the progress bar act between chunks of at most half a second (and at most 100 epochs):
    # every epoch of the slow numpy engine
    chunk = 1 if args.engine == "numpy" else 100
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
            on_chunk=_on_chunk(args, loss, bar, signals),
            chunk_seconds=0.5,
        )
    finally:
        if bar is not None:
            bar.close()


def _on_chunk(args, loss, bar, signals):
    """The reproduce run's ``on_chunk``: the notebook's lines, the bar or plain progress lines, Ctrl-C."""
    from mlpnn_jax.reproduce import printed

    clock = {"start": time.perf_counter(), "line": time.perf_counter()}

    def on_chunk(first, train, test):
        stop = signals.requested is not None
        done = first + len(train) - 1
        for epoch, value in enumerate(train, first):  # the last epoch run is printed too
            if printed(epoch, done if stop else args.epochs, args.print_every):
                say(bar, "[epoch %d] loss: %.4f" % (epoch, value))  # noqa: UP031 - the notebook's line
        if bar is not None:
            bar.update(len(train))
        elif time.perf_counter() - clock["line"] >= PLAIN_PROGRESS_SECONDS:
            _progress_line(clock, loss, done, args.epochs)
        return stop

    return on_chunk


def _progress_line(clock, loss, done, epochs):
    """A plain progress line on stderr (stdout holds the notebook's lines), for output that is no terminal."""
    now = time.perf_counter()
    print(f"{loss}: epoch {done}/{epochs}, {now - clock['start']:.0f} s", file=sys.stderr, flush=True)
    clock["line"] = now


# ---------------------------------------------------------------- report


def _write_report(run_dir, test_set=None, classified=None):
    """Writes run_dir/report.html, recording this machine for it (``report.write_report``'s arguments)."""
    from mlpnn_jax import report
    from mlpnn_jax.runs import write_guard

    machine = report.machine_info()
    write_guard(run_dir / report.REPORT, lambda: report.write_report(run_dir, machine, test_set, classified))


def cmd_report(args, signals):
    from mlpnn_jax import report

    # 64-bit JAX keeps a float64 run's params float64; float32 params stay float32
    _start_jax(args, x64=True)
    print(f"wrote {report.write_report(args.run_dir)}")
    return 0


# ---------------------------------------------------------------- gradcheck


def cmd_gradcheck(args, signals):
    """The gradcheck subcommand: gradcheck.command's, imported only when it runs."""
    from mlpnn_jax.gradcheck import command

    return command.cmd_gradcheck(args, signals)


# ---------------------------------------------------------------- main


COMMANDS = {  # name: (the function adding its parser, the function running it)
    "train": (options.add_train_parser, cmd_train),
    "reproduce": (options.add_reproduce_parser, cmd_reproduce),
    "evaluate": (options.add_evaluate_parser, cmd_evaluate),
    "report": (options.add_report_parser, cmd_report),
    "gradcheck": (options.add_gradcheck_parser, cmd_gradcheck),
}
# commands parsed by a parser of their own, without the others: train's flags are generated from
# TrainConfig, whose module imports JAX, and gradcheck's parent process needs neither JAX nor numpy
ALONE = ("gradcheck",)


def build_parser(commands=tuple(COMMANDS)):
    """The command line's parser, with the subcommands ``commands`` (default all)."""
    parser = argparse.ArgumentParser(
        prog="mlpnn-jax", description="A backprop MLP for MNIST: the notebook's, validated and fast."
    )
    parser.add_argument("--version", action="version", version=f"mlpnn-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in commands:
        add, func = COMMANDS[name]
        add(sub, func)
    return parser


def main(argv=None, signals=None):
    """The command's entry point (``console.entry`` is the console script's); returns the exit code.

    Args:
        argv: the arguments (default sys.argv[1:]).
        signals: the installed ``terminal.Signals`` (default: installed here, restored on return).
    """
    own = signals is None
    signals = Signals().install() if own else signals
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[:1] if argv and argv[0] in ALONE else tuple(COMMANDS))
    try:
        return _main(parser.parse_args(argv), signals)
    finally:
        if own:
            signals.restore()


def _imported(*names):
    """The error classes ("module.Class") of the modules this command imported: one of a module never
    imported cannot have been raised, and importing them all here would start numpy and JAX in
    gradcheck's parent, which only starts the check's child and prints."""
    found = []
    for name in names:
        module, cls = name.split(".")
        if f"mlpnn_jax.{module}" in sys.modules:
            found.append(getattr(sys.modules[f"mlpnn_jax.{module}"], cls))
    return tuple(found)


ONE_LINE_ERRORS = (
    "checkpoint.CheckpointError",
    "data.DataError",
    "evaluation.EvaluationError",
    "report.ReportError",
)


def _main(args, signals):
    signals.command = f"mlpnn-jax {args.command}"
    try:
        return args.func(args, signals)
    except _imported("config.ConfigError") as e:
        print(f"mlpnn-jax {args.command}: error: {e.describe(flag)}", file=sys.stderr)
        return USAGE_ERROR
    except (UsageError, SetupError, RunError, *_imported(*ONE_LINE_ERRORS)) as e:
        print(f"mlpnn-jax {args.command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except RunWriteError as e:  # e.g. a full disk while claiming the directory
        print(f"mlpnn-jax {args.command}: error: {e}", file=sys.stderr)
        return FAILED
    except BrokenPipeError:  # stdout closed where no terminal.KeepGoingOutput guards it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except Exception as e:
        if "RESOURCE_EXHAUSTED" not in str(e) or type(e).__name__ not in (
            "JaxRuntimeError",
            "XlaRuntimeError",
        ):
            raise
        first = str(e).splitlines()[0]  # the allocation XLA could not make, with its size
        print(
            f"mlpnn-jax {args.command}: error: out of memory: {first}; use fewer --hidden units or a smaller"
            " --batch-size",
            file=sys.stderr,
        )
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
