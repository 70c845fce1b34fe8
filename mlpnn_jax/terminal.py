"""The terminal side of a run: progress bars or plain lines, signals (Ctrl-C, SIGTERM), a closed stdout.

Imported by ``cli`` and by the console script (``console.entry``), which imports ``cli``: no cycle.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def progress(total, desc, initial=0, unit="epoch"):
    """A tqdm bar on a terminal; None (plain lines instead) when output goes to a file or pipe."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=True)


def say(bar, line):
    """Prints ``line`` above the progress bar ``bar``, or as a plain line when there is none."""
    if bar is not None:
        bar.write(line)
    else:
        print(line, flush=True)


FAILED, USAGE_ERROR = 1, 2  # a failed run (or a gradcheck mismatch); a user's mistake
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
    The signals are acted on by a watcher thread woken through ``signal.set_wakeup_fd``, not by a Python
    handler, which would wait until the main thread leaves whatever C call it is in (an XLA compile, a
    long computation, an import). Files are safe at any instant: every file is written atomically, and a
    killed run's leftovers are removed by the next command.
    """

    def __init__(self, command="mlpnn-jax"):
        self.command = command
        self.requested = None  # the signal number of the first signal once graceful
        self._graceful = False
        self._message = "stopping"
        self._old = {}
        self._lock = threading.Lock()
        self._pipe = None

    @property
    def exit_code(self):
        return _EXIT_CODES.get(self.requested, INTERRUPTED)

    def install(self):
        """Installs the handling; returns self. A no-op off the main thread (signals go to the main one)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        for signum in _EXIT_CODES:  # a Python-level handler is what makes C write to the wakeup fd
            self._old[signum] = signal.signal(signum, _ignore)
        self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(r,), name="signals", daemon=True).start()
        return self

    def restore(self):
        """Puts the previous handlers back (for ``main`` called inside another program, e.g. tests)."""
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old = {}
        os.close(self._pipe[1])  # the watcher's read returns b"": it ends and closes its end
        self._pipe = None

    def graceful(self, message="stopping after this epoch"):
        """From now on the first signal asks the run to stop (``requested``) with ``message``."""
        self._graceful, self._message = True, message

    def _watch(self, r):
        while data := os.read(r, 64):
            for signum in data:
                if signum in _EXIT_CODES:
                    self._handle(signum)
        os.close(r)

    def _handle(self, signum):
        with self._lock:
            if self._graceful and self.requested is None:
                self.requested = signum
                _write(sys.stderr, f"\n{_NAMES[signum]}: {self._message} (press Ctrl-C again to abort)\n")
                return
        what = "aborted" if self.requested is not None else "interrupted"
        # stdout is not flushed here: its lines are flushed as printed, and a flush could block on a full
        # pipe while the main thread holds the stream's lock
        _write(sys.stderr, f"\n{self.command}: {what}\n")
        os._exit(_EXIT_CODES.get(signum, INTERRUPTED))


def _ignore(signum, frame):
    """The Python-level handler: nothing; the watcher thread acts on the signal."""


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
