"""Check a hand-written backprop against ``jax.grad``: ``check_backprop`` and ``mlpnn-jax gradcheck``.

One module per job: ``load`` (the user's code, read with ``ast``), ``conventions`` and ``layouts`` and
``probe`` (how the code is called), ``runner`` (calling it), ``result`` (what it returned, parsed
once), ``problems`` (the test problems), ``models`` (candidate networks), ``reference`` (which one the
code computes, and its expected gradients), ``compare``, ``rules`` (the table of every code),
``patterns`` (its finders of wrong values) and ``diagnose`` (findings to diagnoses), ``report``,
``errors`` (a bad argument; the user's code raised), ``isolate`` (a child process for the CLI).

The names below are imported on first use, not with the package: the CLI's parent process imports
``gradcheck.command`` and ``gradcheck.isolate`` only to start the child and print, and an eager
import here would start numpy and JAX there too (and ``isolate``, which the child runs as
``python -m``, would be imported before it ran: runpy's RuntimeWarning).
"""

import importlib

# name: the module of this package that defines it
_EXPORTS = {
    "CODES": "rules",
    "LOSS_NAMES": "check",
    "Diagnosis": "report",
    "GradcheckUsageError": "errors",
    "LoadError": "load",
    "ParamCheck": "report",
    "Report": "report",
    "UserCodeError": "errors",
    "check_backprop": "check",
    "check_file": "isolate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlpnn_jax.gradcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mlpnn_jax.gradcheck.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
