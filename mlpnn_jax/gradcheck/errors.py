"""The errors that stop a check before it has a report: ``GradcheckUsageError`` (a bad argument, or
code the checker cannot call) and ``UserCodeError`` (the user's code raised: with its traceback)."""

from __future__ import annotations

import linecache
import sysconfig
import traceback
from pathlib import Path

from mlpnn_jax.gradcheck import discover, layouts, runner, source

_HERE = Path(__file__).resolve().parent
_LIBRARIES = tuple(sorted({sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}))


class GradcheckUsageError(ValueError):
    """The check could not run: a bad argument, or code the checker cannot call (one line).

    ``formatted_traceback`` is None here; a ``UserCodeError`` holds the user's traceback.
    """

    formatted_traceback = None


class UserCodeError(GradcheckUsageError):
    """The check could not run because the user's code raised: ``formatted_traceback`` (a str) is
    its traceback from the first frame outside the checker. A GradcheckUsageError, as it always was."""

    def __init__(self, message, formatted_traceback):
        super().__init__(message)
        self.formatted_traceback = formatted_traceback


def user_traceback(exc):
    """The traceback from the first frame outside the checker."""
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().parent == _HERE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def user_line(exc):
    """'net.py, line 12: `Z = X @ W + b`' for the innermost frame of the user's code that raised, or ''."""
    tb, line = exc.__traceback__, ""
    while tb is not None:
        filename, lineno = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        path = Path(filename).resolve()
        if path.parent != _HERE and not str(path).startswith(_LIBRARIES):
            code = linecache.getline(filename, lineno).strip()
            line = source.where(filename, lineno) + (f": `{code}`" if code else "")
        tb = tb.tb_next
    return line


def usage_error(conv, problem, exc):
    """The one-line error for ``exc``, raised when ``conv`` was run on ``problem``: a UserCodeError
    with the user's traceback, or a GradcheckUsageError where it is the checker's own limit."""
    if isinstance(exc, runner.Unsupplied):  # the checker's limit, not the user's code raising
        return GradcheckUsageError(str(exc))
    args = ", ".join(conv.call.names)
    where = f"problem {problem.name}: n={problem.n}, " + ", ".join(
        f"{k}={v}" for k, v in problem.describe().items() if k in ("D", "H", "K") or k.startswith("H")
    )
    line = user_line(exc)
    at = f" at {line}" if line else ""
    return UserCodeError(
        f"{conv.target.name}({args}) raised {type(exc).__name__}: {str(exc).strip()}{at} (on {where})"
        + _unreadable_arrays(conv, problem.sizes),
        user_traceback(exc),
    )


def _unreadable_arrays(conv, sizes):
    """Why a method may fail on the checker's problems: its constructor, given these layer sizes, builds
    arrays the checker could not read as a network of them (an array of a wrong shape?)."""
    if conv.make_self is None:
        return ""
    try:
        made = conv.make_self(sizes)
    except Exception:  # the user's constructor: it built for the probe's sizes, not for these
        return ""
    arrays = [f"{layouts.label(path)} {arr.shape}" for path, arr in layouts.leaves(made)]
    if not arrays:
        return ""
    net = "-".join(map(str, sizes))
    return (
        f"; {discover.signature(type(made))} built [{', '.join(arrays)}] for layer sizes {list(sizes)}, "
        f"which the checker could not read as the weights and biases of a {net} network (an array of a wrong "
        f"shape?); or pass --init FUNCTION, a function of yours that takes the layer sizes and returns a "
        f"{type(made).__name__}"
    )
