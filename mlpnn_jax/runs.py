"""Run directories: where a run's files go, when an existing run may be replaced, and writing them.

A train run directory holds ``RUN_FILES``; a reproduction holds ``{ce,kl}_losses.csv`` and its figures.
An existing run is replaced only with ``overwrite``, and a train run's old files only once the new run
has a good first epoch (``TrainRun.save_epoch``). Every file is written atomically.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from mlpnn_jax import checkpoint

RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "checkpoint.npz",
    "loss_curves.png",
    "accuracy_curve.png",
    "confusion.png",
    "confusion.txt",
)
REPRODUCTION_LOSSES = ("ce", "kl")


class RunError(ValueError):
    """A run directory that cannot be used: one line naming the option (``--out``) and why."""


def run_dir(out, kind):
    """The output directory: ``out``, or runs/KIND-YYYYmmdd-HHMMSS; refuses a path that is a file."""
    if out is None:
        out = Path("runs") / f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out: {out} exists and is not a directory")
    return out


def make_dir(path, option="--out"):
    """Creates ``path`` (an empty directory harms nothing), or says in one line why it cannot."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"{option}: cannot create {path}: {e.strerror}") from None


class TrainRun:
    """The directory of one train run.

    Args:
        path: the directory (``claim`` or ``existing`` make one).
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def claim(cls, out, overwrite=False):
        """A new run in ``out`` (default runs/train-TIMESTAMP); one already there needs ``overwrite``."""
        run = cls(run_dir(out, "train"))
        if run.checkpoint.exists() and not overwrite:
            raise RunError(
                f"--out: {run.path} already holds a run; --resume it, --overwrite it, or pick another"
            )
        return run

    def meta(self):
        """The meta dict of the run's checkpoint (config, epoch, history, ...); CheckpointError if none."""
        return checkpoint.load(self.checkpoint)[2]

    @property
    def checkpoint(self):
        return self.path / checkpoint.CHECKPOINT

    def create(self):
        """Creates the directory (nothing in it is touched yet)."""
        make_dir(self.path)

    def save_epoch(self, config, result):
        """Writes the checkpoint and metrics.jsonl of ``result`` (a TrainResult).

        The first epoch of a new run is the moment an old run's files in the directory are replaced.
        """
        if result.epochs_run == 1:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            checkpoint.write_json(self.path / "config.json", config.to_json())
        meta = {
            "config": config.to_json(),
            "epoch": result.epochs_run,
            "history": result.history,
            "input_stats": list(result.input_stats),
        }
        checkpoint.save(self.checkpoint, result.train_params, result.opt_state, meta)
        rows = "".join(json.dumps(h) + "\n" for h in result.history)
        checkpoint.write_text(self.path / "metrics.jsonl", rows)

    def write_figures(self, result, cm, acc):
        """The loss and accuracy curves of ``result``, and the confusion matrix ``cm`` with its accuracy."""
        from mlpnn_jax import plots

        hist, c = result.history, result.config
        ylabel = f"{c.loss} loss (mean)"
        if c.label_smoothing:
            ylabel += f"; train: smoothed targets (eps {c.label_smoothing})"
        train, test = [h["train_loss"] for h in hist], [h["test_loss"] for h in hist]
        plots.loss_curves(self.path / "loss_curves.png", train, test, ylabel)
        plots.accuracy_curve(self.path / "accuracy_curve.png", hist)
        write_confusion(self.path / "confusion", cm, acc)


def claim_reproduction(out, overwrite=False):
    """The directory of a new reproduction (default runs/reproduce-TIMESTAMP); one there needs overwrite."""
    path = run_dir(out, "reproduce")
    if any((path / f"{loss}_losses.csv").exists() for loss in REPRODUCTION_LOSSES) and not overwrite:
        raise RunError(f"--out: {path} already holds a reproduction; --overwrite it or pick another")
    return path


def write_reproduction(path, loss, train, test):
    """{loss}_losses.csv and {loss}_loss_curves.png of the loss curves train, test (epochs,)."""
    from mlpnn_jax import plots

    pairs = zip(train.tolist(), test.tolist(), strict=True)
    rows = "".join(f"{i},{tr!r},{te!r}\n" for i, (tr, te) in enumerate(pairs, 1))
    checkpoint.write_text(path / f"{loss}_losses.csv", "epoch,train_loss,test_loss\n" + rows)
    ylabel = "cross-entropy (sum)" if loss == "ce" else "KL as printed: -KL (sum)"
    plots.loss_curves(path / f"{loss}_loss_curves.png", train, test, ylabel)


def write_confusion(stem, cm, acc):
    """STEM.txt in the notebook's format and STEM.png of a confusion matrix (K, K) and its accuracy."""
    from mlpnn_jax import plots

    text = "Confusion matrix:\n%s\nAccuracy=%s\n" % (cm, acc)  # noqa: UP031 - the notebook's format
    checkpoint.write_text(stem.with_suffix(".txt"), text)
    plots.confusion(stem.with_suffix(".png"), cm, f"Confusion matrix (accuracy {100 * acc:.2f}%)")
