"""Calling conventions: probe how the user's function takes its arguments, and call it that way.

A ``Convention`` is a Layout (the params container) plus how the checked function is called: which
argument is the data, the labels, the params or the forward pass's result; whole batches or one
example at a time (then the results are averaged); X as rows (n, D) or columns (D, n); labels as
integers or one-hot rows or columns. ``probe`` tries the plausible conventions on one test problem and
keeps the first whose gradients (or loss, or outputs) agree with some candidate network; failing that,
the one whose gradients have the most right shapes.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np

from mlpnn_jax.gradcheck import models

ROLE_NAMES = {
    "X": {
        "x",
        "xs",
        "inputs",
        "input",
        "data",
        "features",
        "a",
        "a0",
        "sample",
        "example",
        "img",
        "image",
        "x_batch",
        "x_train",
        "inp",
        "in_",
        "activation",
        "batch_x",
        "row",
    },
    "Y": {
        "y",
        "ys",
        "labels",
        "label",
        "target",
        "targets",
        "t",
        "y_true",
        "y_batch",
        "y_train",
        "desired",
        "expected",
        "truth",
        "y_hat_true",
        "batch_y",
        "onehot",
        "one_hot",
    },
    "P": {
        "params",
        "parameters",
        "param",
        "network",
        "net",
        "model",
        "weights",
        "theta",
        "nn",
        "w",
        "parameter",
        "p",
        "layers",
    },
    "C": {
        "cache",
        "caches",
        "forward_res",
        "forward_result",
        "fwd",
        "activations",
        "outputs",
        "output",
        "out",
        "forward_cache",
        "res",
        "result",
        "memory",
        "cached",
        "forward",
        "a2",
        "y_hat",
        "yhat",
        "y_pred",
        "pred",
        "preds",
        "probs",
        "scores",
        "h",
        "al",
        "a_l",
        "a_last",
        "last_activation",
    },
    "G": {  # the loss's gradient with respect to the forward's output, sent back through the layers
        "grad",
        "gradient",
        "grad_output",
        "grad_out",
        "output_grad",
        "out_grad",
        "grad_y",
        "dout",
        "d_out",
        "dy",
        "dl_dy",
        "dldy",
        "upstream",
        "delta",
        "top_diff",
    },
}
ERROR_NAMES = {"error", "err", "errors", "output_error", "error_signal", "out_error", "e_out"}
RATE_NAMES = ("lr", "learning_rate", "eta", "step_size", "learningrate", "lrate", "l_rate", "rate")
REG_PREFIXES = ("reg", "lambd", "lam", "l2", "weight_decay", "alpha_reg")
SPLIT_KEYS = ("loss", "cost", "l", "j")


@dataclasses.dataclass(frozen=True)
class Call:
    """How one function is called: a role per argument, and the data's forms."""

    names: tuple  # the argument names (without self)
    roles: tuple  # "X", "Y", "P", "C", "G" (the upstream gradient), "E" (the error signal: the
    # upstream gradient times Target.error_sign, ``error = target - output``), "R" (a learning rate), "0" (a
    # regularisation knob: 0.0) or "S:label" (one of the params)
    per_example: bool
    x_form: str  # batch: "rows", "cols"; per example: "vec", "col", "row"
    y_form: str  # batch: "int", "rows", "cols"; per example: "int", "vec", "col"
    cache: int | None = None  # the forward's result passed whole, or this item of it ("all": item i
    # to the i-th of several such arguments)


@dataclasses.dataclass(frozen=True)
class Target:
    """What is checked: a function, or a method of a class (made afresh for each call)."""

    name: str
    fn: object  # the function, or the class's plain function for a method
    cls: object = None
    forward: object = None  # the forward function (or method), if given
    forward_name: str = ""
    own_loss: object = None  # the file's own loss function (or method) beside it, if any
    own_loss_name: str = ""
    update: object = None  # the file's own update (gradient_descent(lr), update_weights(net, row, lr))
    update_name: str = ""
    error_sign: int = -1  # an error-signal argument ("E") is this times dL/d(output): error = target - output

    def is_method(self):
        return self.cls is not None


def arguments(fn, method):
    """(name, has_default) of fn's arguments, without self for a method."""
    params = list(inspect.signature(fn).parameters.values())
    if method and params:
        params = params[1:]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [(p.name, p.default is not inspect.Parameter.empty) for p in params if p.kind in kinds]


def assign_roles(args, has_forward, wants_params, slots=()):
    """A role per argument from its name; None when required arguments cannot all be given one.

    An argument named as one of the params (``slots``: W1, b1...) gets that array ("S:W1")."""
    roles, used = [], set()
    for name, default in args:
        low = name.lower().lstrip("_")
        if name in slots:
            roles.append(f"S:{name}")
            continue
        role = next((r for r, names in ROLE_NAMES.items() if low in names and r not in used), None)
        role = "E" if role is None and low in ERROR_NAMES and "E" not in used else role
        if role is None and low in RATE_NAMES:
            role = "R"
        if role is None and low.startswith(REG_PREFIXES):
            if default:
                break  # its own default (regularisation on or off, as the author left it)
            role = "0"
        if role is None and default:
            break  # the rest keep their defaults
        if role is None and has_forward:
            role = "C"  # a part of the forward's result (Z1, A1, ...)
        if role is None:
            free = [r for r in ("X", "Y", "P", "C") if r not in used]
            free = [r for r in free if (r != "C" or has_forward) and (r != "P" or wants_params)]
            if not free:
                return None
            role = free[0]
        if role in ("C", "G", "E") and not has_forward:
            return None
        roles.append(role)
        if role not in ("0", "C", "R"):  # several arguments may take parts of the forward's result
            used.add(role)
    if "P" in used and not wants_params:
        return None
    return tuple(roles)


def calls(target, wants_params, prefer_cols, slots=()):
    """The Calls to try for the target, most plausible first."""
    fn = target.fn
    args = arguments(fn, target.is_method())
    roles = assign_roles(args, target.forward is not None, wants_params, slots)
    if roles is None:
        return []
    names = tuple(a for a, _ in args[: len(roles)])
    xname = names[roles.index("X")] if "X" in roles else ""
    per_first = xname in ("x", "a", "sample", "example", "img", "image", "inp", "input", "row")
    out = []
    for per in (per_first, not per_first):
        xs = (
            ("col", "vec", "row", "vecy")
            if per and prefer_cols
            else ("vec", "col", "row", "vecy")
            if per
            else None
        )
        xs = xs or (("cols", "rows") if prefer_cols else ("rows", "cols"))
        for xf in xs:
            ys = (
                ("int", "vec", "col")
                if per
                else ("int", "cols", "rows")
                if xf == "cols"
                else ("int", "rows", "cols")
            )
            if per and xf == "col":
                ys = ("col", "int", "vec")
            out += [Call(names, roles, per, xf, yf) for yf in ys]
    return out


def x_value(call, X, label=None):
    """X in the call's form; "vecy": one example's x with its label last (a data set's row)."""
    if call.x_form == "vecy":
        return np.append(X, float(np.argmax(label)) if np.ndim(label) else float(label))
    return {"rows": X, "cols": X.T, "vec": X, "col": X[:, None], "row": X[None, :]}[call.x_form]


def y_value(call, Y, K):
    if Y.ndim == 2 or call.y_form != "int":
        T = models.targets(Y, K) if Y.ndim < 2 or Y.shape[-1] != K else Y
        return {"int": T, "rows": T, "cols": T.T, "vec": T, "col": T[:, None]}[call.y_form]
    return int(Y) if call.per_example else Y


def split_result(result):
    """(loss or None, gradients) of what the function returned."""
    if isinstance(result, tuple | list) and len(result) == 2:
        a, b = result
        if is_scalar(a) and not is_scalar(b):
            return _float(a), b
        if is_scalar(b) and not is_scalar(a):
            return _float(b), a
    if isinstance(result, dict):
        keys = [k for k in result if isinstance(k, str) and k.lower() in SPLIT_KEYS and is_scalar(result[k])]
        if keys:
            return _float(result[keys[0]]), {k: v for k, v in result.items() if k != keys[0]}
    return None, result


def loss_of(v):
    """The float of a loss (a number, or an array of one number), else None."""
    return _float(v) if is_scalar(v) else None


def is_scalar(v):
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, int | float | np.floating | np.integer):
        return True
    size = getattr(v, "size", None)  # a 0-d array, or a (1, 1) one from np.dot: a loss all the same
    return size == 1 and getattr(getattr(v, "dtype", None), "kind", "") in "fiu"


def _float(v):
    return float(np.asarray(v, dtype=np.float64).reshape(()))


def find_outputs(obj, n, K, per_example):
    """An (n, K) array (rows or columns, or one example's (K,), (K, 1), (1, K)) inside obj, or None."""
    from mlpnn_jax.gradcheck.layouts import leaves

    wanted = (
        [((K,), False), ((K, 1), True), ((1, K), False)] if per_example else [((n, K), False), ((K, n), True)]
    )
    if isinstance(obj, list) and obj and all(isinstance(v, int | float) for v in obj):
        obj = np.asarray(obj, dtype=np.float64)  # a plain-Python network's outputs
    items = [obj] if isinstance(obj, np.ndarray) else [a for _, a in leaves(obj)]
    for arr in items:
        if not isinstance(arr, np.ndarray):
            continue
        for shape, transposed in wanted:
            if arr.shape == shape:
                a = np.asarray(arr, np.float64)
                return (a.T if transposed else a).reshape(-1, K)
    return None


def quiet_call(fn, *args):
    """fn(*args) with warnings recorded: (result, [warning messages]), less JAX's of a damaged cache entry
    (a JAX target's own programs), which are mended instead (``devices.mended``)."""
    from mlpnn_jax.devices import mended

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [w for w in caught if not mended(w.message)]
