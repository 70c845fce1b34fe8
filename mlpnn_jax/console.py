"""The terminal side of a run: progress bars or plain lines, and Ctrl-C."""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C


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


class StopOnSigint:
    """The first Ctrl-C asks a run to stop after the current epoch (``requested``); a second one aborts."""

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
