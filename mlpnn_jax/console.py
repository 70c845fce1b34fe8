"""The terminal side of a run: progress bars or plain lines, signals (Ctrl-C, SIGTERM), a closed stdout."""

from __future__ import annotations

import os
import signal
import sys


def progress(total, desc, initial=0):
    """A tqdm bar on a terminal; None (plain lines instead) when output goes to a file or pipe."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", dynamic_ncols=True, leave=True)


def say(bar, line):
    """Prints ``line`` above the progress bar ``bar``, or as a plain line when there is none."""
    if bar is not None:
        bar.write(line)
    else:
        print(line, flush=True)


INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C (SIGINT)
TERMINATED = 143  # the exit code of a run stopped by SIGTERM (a scheduler's stop): 128 + 15
_EXIT_CODES = {signal.SIGINT: INTERRUPTED, signal.SIGTERM: TERMINATED}
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Signals:
    """SIGINT (Ctrl-C) and SIGTERM for a command, from its first line to its end.

    Until ``graceful()`` (start-up: imports, data loading, compiling) either signal exits at once, quietly,
    with 130 (SIGINT) or 143 (SIGTERM). Once a run is under way the first signal sets ``requested`` (the
    run stops after its current epoch or chunk and writes its files), and a second one exits at once with
    the same code. An immediate exit is ``os._exit`` after flushing the output: nothing is raised inside
    XLA, and no interpreter shutdown runs while XLA's threads are still busy (the cause of the segfaults).
    Files are safe at any instant: every file is written atomically, and a killed run's leftovers are
    removed by the next command.
    """

    def __init__(self, command="mlpnn-jax"):
        self.command = command
        self.requested = None  # the signal number of the first signal once graceful
        self._graceful = False
        self._old = {}

    @property
    def exit_code(self):
        return _EXIT_CODES.get(self.requested, INTERRUPTED)

    def install(self):
        for signum in _EXIT_CODES:
            self._old[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self):
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old = {}

    def graceful(self, message="stopping after this epoch"):
        """From now on the first signal asks the run to stop (``requested``) with ``message``."""
        self._graceful, self._message = True, message

    def _handle(self, signum, frame):
        if self._graceful and self.requested is None:
            self.requested = signum
            _write(sys.stderr, f"\n{_NAMES[signum]}: {self._message} (press Ctrl-C again to abort)\n")
            return
        what = "aborted" if self.requested is not None else "interrupted"
        _write(sys.stdout, "")
        _write(sys.stderr, f"\n{self.command}: {what}\n")
        os._exit(_EXIT_CODES.get(signum, INTERRUPTED))


def _write(stream, text):
    """Writes and flushes ``text``; a closed stream (a pipe whose reader left) is skipped."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # EPIPE, or a closed file: there is no one to tell
        pass


class KeepGoingOutput:
    """Wraps sys.stdout so that a closed pipe (``mlpnn-jax train | head -1``) does not stop the run.

    On the first EPIPE the stream's file descriptor is pointed at /dev/null, and the run goes on writing
    its files; everything else passes through.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def entry():
    """``mlpnn-jax`` and ``python -m mlpnn_jax``: signals answered from the first line, a closed stdout
    survived. (The package's ``__init__`` imports nothing heavy, so this runs within milliseconds.)"""
    signals = Signals().install()
    sys.stdout = KeepGoingOutput(sys.stdout)
    from mlpnn_jax.cli import main

    code = main(signals=signals)
    sys.stdout.flush()
    sys.exit(code)
