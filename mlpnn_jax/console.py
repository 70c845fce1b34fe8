"""The console script ``mlpnn-jax`` and ``python -m mlpnn_jax``: the signals first, then the command."""

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
    sys.exit(code)
