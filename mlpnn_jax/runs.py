"""Run directories: claimed by one process at a time, no user's file touched, never a half-replaced run.

A run directory holds only files mlpnn-jax writes, plus ``.mlpnn-jax``: the lock file, which marks the
directory as a run's and names the process that holds it (its pid and host). ``claim`` takes the lock
(``flock``: the kernel drops it when the holder dies, so a killed run's lock is free at once) before any
data is loaded or anything compiled, and so finds out at once that a directory is in use, not writable,
or holds files mlpnn-jax did not write.

``--overwrite`` never deletes the old run first: the new run is built in a hidden sibling directory,
``.NAME.mlpnn-jax-new.PID``, and swapped in by ``publish`` once it holds a complete first epoch. On Linux the
swap is one atomic ``renameat2(RENAME_EXCHANGE)``, so at every instant NAME holds one complete run; where
the file system cannot exchange, it is two renames (NAME -> ``.NAME.mlpnn-jax-old.PID``, new -> NAME), and a
process killed between them leaves NAME missing for the next ``claim`` or ``recover`` to put back. Leftover
siblings and temporary files of killed runs are removed by the next claim.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from pathlib import Path

from mlpnn_jax import checkpoint
from mlpnn_jax.checkpoint import CHECKPOINT
from mlpnn_jax.data import path_kind
from mlpnn_jax.lock import LOCK, Lock, RunError, RunWriteError, lock_is_free

RUN_FILES = TRAIN_FILES = (
    "config.json",
    "metrics.jsonl",
    CHECKPOINT,
    "loss_curves.svg",
    "accuracy_curve.svg",
    "confusion.svg",
    "confusion.txt",
    "machine.json",
    "report.html",
)
REPRODUCE_FILES = (
    *(
        f"{loss}_{suffix}"
        for loss in ("ce", "kl")
        for suffix in ("losses.csv", "loss_curves.png", "confusion.png", "confusion.txt", "params.npz")
    ),
    "reproduce.json",
    "machine.json",
    "report.html",
)
LEGACY_FILES = ("loss_curves.png", "accuracy_curve.png", "confusion.png")  # train's figures before SVG
KNOWN_FILES = frozenset((LOCK, *TRAIN_FILES, *REPRODUCE_FILES, *LEGACY_FILES))
_SIBLING = ".{name}.mlpnn-jax-{tag}.{pid}"


def _is_temp(name):
    """A temporary file of ``checkpoint.atomic_write`` (``.NAME.XXXXXXXX.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _holds_run(path):
    return (path / CHECKPOINT).is_file() or any((path / f"{k}_losses.csv").is_file() for k in ("ce", "kl"))


def _siblings(path):
    """The hidden new/old siblings of run ``path`` left by ``--overwrite`` runs: [(tag, Path)]."""
    prefix = f".{path.name}.mlpnn-jax-"
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        tag = p.name[len(prefix) :].split(".", 1)[0] if p.name.startswith(prefix) else None
        if tag in ("new", "old") and p.is_dir():
            found.append((tag, p))
    return found


def recover(path):
    """Puts back a run whose two-rename swap was cut short and removes dead runs' siblings.

    Safe at any time: siblings whose lock a live process holds are left alone. Returns ``path``.
    """
    path = Path(os.path.realpath(path))  # a symlink's run: its siblings are beside the target
    leftovers = [(tag, p) for tag, p in _siblings(path) if lock_is_free(p)]
    if not path.exists():
        # killed between the two renames: the new run is complete (it is renamed only after its first
        # good epoch); the old one is the fallback
        for want in ("new", "old"):
            done = next((p for tag, p in leftovers if tag == want and _holds_run(p)), None)
            if done is not None:
                # FileNotFoundError: another process recovered it first; other errors (a read-only file
                # system): left as it is, for a later command that can write
                with contextlib.suppress(OSError):
                    os.rename(done, path)
                leftovers = [(t, p) for t, p in leftovers if p != done]
                break
    for _, p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    if path.is_dir() and lock_is_free(path):  # a killed run's temporary files: no writer is left
        for p in path.glob(".*.tmp"):
            with contextlib.suppress(OSError):  # leftovers only: a read-only file system keeps them
                p.unlink()
    return path


def _check_contents(path, option, remove_temps=False):
    """Refuses a directory holding anything mlpnn-jax did not write; removes dead runs' temporary files."""
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if n not in KNOWN_FILES and not _is_temp(n)]
    foreign += [n for n in names if n in KNOWN_FILES and not (path / n).is_file()]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunError(
            f"{option}: {path} holds files mlpnn-jax did not write ({shown});"
            " move them or pick another directory"
        )
    ours = [n for n in names if n in KNOWN_FILES and n != LOCK]
    if ours and LOCK not in names and not _holds_run(path):
        raise RunError(
            f"{option}: {path} holds {', '.join(ours)} but no mlpnn-jax run; they are not mlpnn-jax's:"
            " move them or pick another directory"
        )
    for n in names if remove_temps else ():
        if _is_temp(n):
            (path / n).unlink(missing_ok=True)


class RunDir:
    """A claimed run directory. Write into ``dir``; ``publish`` once a complete first result is there.

    Attributes:
        path: the run directory the user named.
        dir: where the run's files go now: ``path``, or the hidden sibling an ``--overwrite`` run builds in
            until ``publish`` swaps it in.
    """

    def __init__(self, path, option, kind, overwrite=False, resume=False):
        self.path, self.option, self.kind = path, option, kind
        self._made = [p for p in (path, *path.parents) if not os.path.lexists(p)]  # deepest first
        self._locks = []
        self._staging = None
        self.published = True
        try:
            self._claim(overwrite, resume)
        except BaseException:
            self.close()
            raise

    def _claim(self, overwrite, resume):
        path, option = self.path, self.option
        _check_path(path, option)
        try:
            if not resume:
                path.parent.mkdir(parents=True, exist_ok=True)
            recover(path)
            if resume and not path.is_dir():
                raise RunError(f"{path / CHECKPOINT}: no checkpoint there")
            path.mkdir(exist_ok=True)
        except OSError as e:
            raise RunError(f"{option}: cannot create {path}: {e.strerror}") from None
        _check_contents(path, option)  # before the lock file is made: it marks a directory as a run's
        self._locks.append(Lock(path, option, self.kind))  # also proves the directory writable
        _check_contents(path, option, remove_temps=True)
        if resume:
            if not (path / CHECKPOINT).is_file():
                raise RunError(f"{path / CHECKPOINT}: no checkpoint there")
            return
        if _holds_run(path):
            if not overwrite:
                what = "run" if (path / CHECKPOINT).is_file() else "reproduction"
                hint = "--resume it, --overwrite it" if what == "run" else "--overwrite it"
                raise RunError(f"{option}: {path} already holds a {what}; {hint}, or pick another")
            self._stage()
        else:  # nothing of value here (an empty directory, or a run killed before its first epoch)
            for name in KNOWN_FILES - {LOCK}:
                (path / name).unlink(missing_ok=True)

    def _stage(self):
        staging = self.path.parent / _SIBLING.format(name=self.path.name, tag="new", pid=os.getpid())
        try:
            staging.mkdir()
        except OSError as e:
            raise RunError(
                f"{self.option}: --overwrite builds the new run beside {self.path} before swapping it in,"
                f" but cannot create {staging}: {e.strerror}"
            ) from None
        self._staging = staging
        self._locks.append(Lock(staging, self.option, self.kind))
        self.published = False

    @property
    def dir(self):
        return self.path if self.published else self._staging

    def publish(self):
        """Swaps the new run in for the old one (``--overwrite``); a no-op once done or when not staging."""
        if self.published:
            return
        try:
            if not checkpoint.exchange_dirs(self._staging, self.path):
                old = self.path.parent / _SIBLING.format(name=self.path.name, tag="old", pid=os.getpid())
                os.rename(self.path, old)  # a kill here leaves NAME missing: recover() puts new there
                try:
                    os.rename(self._staging, self.path)
                except OSError:
                    os.rename(old, self.path)
                    raise
                self._staging = old
            checkpoint.fsync_dir(self.path.parent)
        except OSError as e:
            raise RunWriteError(e.errno, f"cannot swap the new run into {self.path}: {e.strerror}") from None
        self.published = True
        old_lock = self._locks.pop(0)  # the old run's lock now lives at the staging name
        shutil.rmtree(self._staging, ignore_errors=True)
        old_lock.release()
        self._staging = None

    def close(self):
        """Releases the lock; an unpublished new run is removed, leaving the old run as it was, and a run
        that never wrote a file (a failed start) leaves nothing: no lock file, no directory it made."""
        if not self.published and self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        unused = self._locks and _names(self.path) == [LOCK]
        if unused:  # unlinked while still locked: a second process finds it locked or gone
            (self.path / LOCK).unlink(missing_ok=True)
        for lock in self._locks:
            lock.release()
        self._locks = []
        for made in self._made if unused else ():
            try:
                made.rmdir()
            except OSError:  # another process's files came in meanwhile: theirs to keep
                break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _names(path):
    try:
        return [p.name for p in path.iterdir() if not _is_temp(p.name)]
    except OSError:
        return None


def _check_path(path, option):
    """Refuses, in one line saying what is there, a path that is not a directory or is under a file."""
    kind = path_kind(path)
    if kind not in (None, "a directory"):
        raise RunError(f"{option}: {path} is {kind}, not a directory")
    blocking = next((p for p in path.parents if path_kind(p) is not None), None)
    above = path_kind(blocking) if kind is None and blocking is not None else "a directory"
    if above != "a directory":
        raise RunError(f"{option}: cannot create {path}: {blocking} is {above}, not a directory")


def _follow(path, option):
    """The directory a symlink ``path`` names (the link itself is left as it is); a dangling one: RunError."""
    if not path.is_symlink():
        return path
    if not path.exists():
        raise RunError(f"{option}: {path} is {path_kind(path)}; create it or point the link elsewhere")
    return Path(os.path.realpath(path))


def claim(out, kind, *, overwrite=False, resume=False, option="--out"):
    """Claims the run directory ``out`` for this process.

    Args:
        out: the directory (created if missing, with its parents); None: runs/KIND-YYYYmmdd-HHMMSS.
        kind: "train" or "reproduce" (recorded in the lock file).
        overwrite: replace a run already there (built beside it, swapped in by ``publish``).
        resume: continue the run there in place.
        option: the command-line option named in messages.
    Returns:
        A RunDir (a context manager: leaving it releases the lock).
    Raises:
        RunError: an empty path, a directory in use by another process (named by pid and host), not
            writable, holding files mlpnn-jax did not write, or holding a run without ``overwrite``.
        RunWriteError: the lock file could not be written (e.g. a full disk).
    """
    if out is None and not resume:
        out = Path("runs") / f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if out is None or str(out).strip() == "":
        raise RunError(f"{option}: an empty path (an unset shell variable?); name a directory")
    return RunDir(_follow(Path(out).absolute(), option), option, kind, overwrite, resume)


def write_guard(path, write):
    """Calls ``write()``; an OSError (a full disk ...) becomes a one-line RunWriteError naming ``path``."""
    try:
        return write()
    except OSError as e:
        raise RunWriteError(e.errno, f"cannot write {path}: {e.strerror or e}") from None


class TrainRun:
    """The directory of one train run, claimed (see ``claim``) until ``close``.

    Args:
        run: the claimed RunDir.
    """

    def __init__(self, run):
        self.run = run

    @classmethod
    def claim(cls, out, overwrite=False):
        """A new run in ``out`` (default runs/train-TIMESTAMP); one already there needs ``overwrite``."""
        return cls(claim(out, "train", overwrite=overwrite))

    @classmethod
    def resume(cls, path):
        """The run in ``path``, claimed to continue it in place."""
        return cls(claim(path, "train", resume=True, option="--resume"))

    @property
    def path(self):
        return self.run.path

    @property
    def checkpoint(self):
        return self.run.dir / CHECKPOINT

    def meta(self, parse_config=None):
        """The validated meta dict of the run's checkpoint (config, epoch, history, ...)."""
        return checkpoint.load(self.checkpoint, parse_config=parse_config)[2]

    def save_epoch(self, config, result):
        """Writes the checkpoint and metrics.jsonl of ``result`` (a TrainResult), atomically.

        An ``--overwrite`` run is swapped in for the old one as soon as its first epoch's files are written.
        """
        d = self.run.dir
        if result.epochs_run == 1 or not (d / "config.json").exists():
            write_guard(d / "config.json", lambda: checkpoint.write_json(d / "config.json", config.to_json()))
        meta = {
            "config": config.to_json(),
            "epoch": result.epochs_run,
            "history": result.history,
            "input_stats": list(result.input_stats),
        }
        write_guard(
            d / CHECKPOINT,
            lambda: checkpoint.save(d / CHECKPOINT, result.train_params, result.opt_state, meta),
        )
        rows = "".join(json.dumps(h) + "\n" for h in result.history)
        write_guard(d / "metrics.jsonl", lambda: checkpoint.write_text(d / "metrics.jsonl", rows))
        self.run.publish()

    def write_figures(self, result, cm, acc):
        """loss_curves.svg and accuracy_curve.svg of ``result`` (the report's charts); confusion.txt (the
        notebook's format) and confusion.svg of the confusion matrix ``cm`` (K, K) with its accuracy."""
        from mlpnn_jax import charts, report

        curves = report.learning_curves(result.config, result.history)
        figures = {f"{name}.svg": curves[name] for name in ("loss_curves", "accuracy_curve")}
        figures["confusion.txt"] = confusion_text(cm, acc)
        figures["confusion.svg"] = charts.confusion_chart(cm, confusion_title(acc))
        for name, text in figures.items():
            path = self.run.dir / name
            write_guard(path, lambda path=path, text=text: checkpoint.write_text(path, text))
        for path in (self.run.dir / name for name in LEGACY_FILES):  # a resumed older run's PNGs, now stale
            write_guard(path, lambda path=path: path.unlink(missing_ok=True))

    def close(self):
        self.run.close()


def claim_reproduction(out, overwrite=False):
    """The claimed RunDir of a new reproduction (default runs/reproduce-TIMESTAMP)."""
    return claim(out, "reproduce", overwrite=overwrite)


def write_reproduction(path, loss, train, test):
    """{loss}_losses.csv and {loss}_loss_curves.png of the loss curves train, test (epochs,)."""
    from mlpnn_jax import plots

    pairs = zip(train.tolist(), test.tolist(), strict=True)
    rows = "".join(f"{i},{tr!r},{te!r}\n" for i, (tr, te) in enumerate(pairs, 1))
    csv = path / f"{loss}_losses.csv"
    write_guard(csv, lambda: checkpoint.write_text(csv, "epoch,train_loss,test_loss\n" + rows))
    ylabel = "cross-entropy (sum)" if loss == "ce" else "KL as printed: -KL (sum)"
    png = path / f"{loss}_loss_curves.png"
    write_guard(png, lambda: plots.loss_curves(png, train, test, ylabel))


def confusion_text(cm, acc):
    """A confusion matrix (K, K) and its accuracy as the notebook printed them."""
    return "Confusion matrix:\n%s\nAccuracy=%s\n" % (cm, acc)  # noqa: UP031 - the notebook's format


def confusion_title(acc):
    """The title of a confusion matrix's figure, with its accuracy (a fraction)."""
    return f"Confusion matrix (accuracy {100 * acc:.2f}%)"


def write_confusion(stem, cm, acc):
    """STEM.txt in the notebook's format and STEM.png of a confusion matrix (K, K) and its accuracy."""
    from mlpnn_jax import plots

    txt, png = stem.with_suffix(".txt"), stem.with_suffix(".png")
    write_guard(txt, lambda: checkpoint.write_text(txt, confusion_text(cm, acc)))
    write_guard(png, lambda: plots.confusion(png, cm, confusion_title(acc)))
