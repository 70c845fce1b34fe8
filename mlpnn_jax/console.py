"""The console script ``mlpnn-jax`` and ``python -m mlpnn_jax``: the signals first, then the command."""

import os
import sys

from mlpnn_jax.terminal import KeepGoingOutput, Signals


def entry():
    """``mlpnn-jax`` and ``python -m mlpnn_jax``: signals answered from the first line, a closed stdout
    survived. (The package's ``__init__`` imports nothing heavy, so this runs within milliseconds.)"""
    signals = Signals().install()
    sys.stdout = KeepGoingOutput(sys.stdout)
    from mlpnn_jax.cli import main

    code = main(signals=signals)
    sys.stdout.flush()
    sys.stderr.flush()
    # Every file the command wrote is closed and synced, its lock released: what is left is the teardown
    # of JAX's runtime and of the interpreter (~0.3 s after a train run), which writes nothing.
    os._exit(code)
