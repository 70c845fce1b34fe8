"""Check a hand-written backprop against ``jax.grad``: ``check_backprop`` and ``mlpnn-jax gradcheck``.

One module per job: ``load`` (the user's code, read with ``ast``), ``conventions`` and ``layouts`` and
``probe`` (how the code is called), ``runner`` (calling it), ``problems`` (the test problems),
``models`` (candidate networks), ``identify`` (which one the code computes), ``compare``, ``rules``
(the table of every code), ``patterns`` (its finders of wrong values) and ``diagnose`` (findings to
diagnoses), ``report``, ``isolate`` (a child process for the CLI).
"""

from mlpnn_jax.gradcheck.check import LOSS_NAMES, check_backprop
from mlpnn_jax.gradcheck.load import LoadError
from mlpnn_jax.gradcheck.probe import GradcheckUsageError
from mlpnn_jax.gradcheck.report import Diagnosis, ParamCheck, Report
from mlpnn_jax.gradcheck.rules import CODES

__all__ = [
    "CODES",
    "LOSS_NAMES",
    "Diagnosis",
    "GradcheckUsageError",
    "LoadError",
    "ParamCheck",
    "Report",
    "check_backprop",
    "check_file",
]


def __getattr__(name):
    # check_file lives in isolate, which the CLI's child runs as ``python -m``: importing it with the
    # package would make runpy warn that it was imported before it ran
    if name != "check_file":
        raise AttributeError(f"module 'mlpnn_jax.gradcheck' has no attribute {name!r}")
    from mlpnn_jax.gradcheck.isolate import check_file

    return check_file
