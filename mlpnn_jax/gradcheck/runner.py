"""Running the user's code under a Convention: the raw ``Calls`` of one run, which ``result.parse``
reads (``Convention.run`` does both: the user's code in, one canonical ``result.Result`` out)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from mlpnn_jax.gradcheck import compare, conventions, models, result
from mlpnn_jax.gradcheck.report import Finding

RATE = 1.0  # the learning rate the checker passes (or sets): an in-place update is - RATE * gradient


@dataclasses.dataclass(frozen=True)
class Convention:
    """The adapter to the user's code: what is called, how its params are laid out and how it is called;
    ``run(problem)`` is the one canonical ``result.Result`` of a run on a problem."""

    target: object  # conventions.Target
    layout: object  # layouts.Layout
    call: object  # conventions.Call
    fcall: object = None  # the forward function's Call
    strict_keys: bool = False  # today's dict convention: keys exactly W1, b1, ...
    make_self: object = None  # sizes -> the instance a method is called on, where the params are not
    # its attributes (made by the class's constructor: never a stand-in)
    heads: tuple = ()  # the candidate networks an upstream gradient ("G") is made for
    lcall: object = None  # the Call of the file's own loss (target.own_loss), where it runs
    ucall: object = None  # the Call of the file's own update (target.update), where the backprop stores
    # its gradients for it (self.derivatives, neuron["delta"]) instead of returning or applying them

    def describe(self, problem):
        c, t = self.call, self.target
        args = ", ".join(c.names)
        how = f"once per example and averaged over {problem.n}" if c.per_example else "on whole batches"
        data = {
            "rows": "X as rows (n, D)",
            "cols": "X as columns (D, n)",
            "vec": "x a vector (D,)",
            "col": "x a column (D, 1)",
            "row": "x a row (1, D)",
            "vecy": "x a vector (D + 1,) with its label last",
        }[c.x_form]
        labels = {
            "int": "integer labels",
            "rows": "one-hot rows",
            "cols": "one-hot columns",
            "vec": "a one-hot vector (K,)",
            "col": "a one-hot column (K, 1)",
        }[c.y_form]
        if problem.K == 1:  # one sigmoid output: the labels are the 0/1 targets
            labels = {"int": "0/1 labels (n,)", "rows": "0/1 labels (n, 1)", "cols": "0/1 labels (1, n)"}
            labels = labels.get(c.y_form, "a 0/1 label")
        fwd = f", after {t.forward_name}" if t.forward is not None else ""
        if "G" in c.roles:
            grad = c.names[c.roles.index("G")]
            fwd += f" with {grad} = the loss's gradient with respect to its output"
        if "E" in c.roles:
            sign = "target - output" if t.error_sign < 0 else "output - target"
            fwd += f" with {c.names[c.roles.index('E')]} = {sign}, as the file computes it"
        if self.ucall is not None:
            fwd += f", then {t.update_name}({', '.join(self.ucall.names)}) to apply what it stores"
        if self.lcall is not None:
            fwd += f", its loss from {t.own_loss_name}({', '.join(self.lcall.names)})"
        text = f"called {t.name}({args}) {how}{fwd}, {data}, {labels}"
        return text + "; " + self.layout.describe(problem.sizes)

    def run(self, problem):
        """The user's code run on the problem and its return value parsed: a ``result.Result``.
        The user's exceptions propagate."""
        return result.parse(invoke(self, problem), self, problem)


@dataclasses.dataclass
class Calls:
    """The raw record of one run on a problem, per call of the user's code (one, or one per example):
    what it returned as gradients, its loss and outputs (None where not exposed); and the run's notes."""

    returned: list
    losses: list
    outputs: list
    notes: list

    def mean_loss(self):
        """The loss averaged over the calls, or None where a call exposes none."""
        return None if any(v is None for v in self.losses) else float(np.mean(self.losses))

    def all_outputs(self):
        """The calls' outputs stacked ((n, K)), or None where a call exposes none."""
        return None if any(o is None for o in self.outputs) else np.concatenate(self.outputs, axis=0)


def _args(call, roles_values, conv=None, obj=None):
    slots = {s.label: s for s in conv.layout.slots} if conv is not None else {}
    return [slots[r[2:]].read(obj) if r.startswith("S:") else roles_values[r] for r in call.roles]


_IN_PLACE = (
    "the code updates the params in place instead of returning gradients: its gradients are read as "
    f"(params before - after) / learning rate, with the learning rate set to {RATE:g}"
)


_UNRATED = (
    "the code updates the params in place instead of returning gradients, at a step the checker cannot "
    "set (no learning rate named lr or learning_rate): its gradients are read as (params before - after) "
    "/ eta, with one eta for every parameter and problem inferred from the changes"
)


class Unsupplied(ValueError):
    """An argument the checker cannot make (the upstream gradient of an output it does not know)."""


def _set_rates(obj):
    """Set the instance's learning-rate attributes to 1 (so that an in-place update is - gradient)."""
    names = [k for k in vars(obj) if k.lower() in conventions.RATE_NAMES] if hasattr(obj, "__dict__") else []
    for k in names:
        setattr(obj, k, RATE)
    return names


def _set_global_rates(fn):
    """Set the module-level learning rates the function reads (LEARNING_RATE, lr...) to 1."""
    code, names = getattr(fn, "__code__", None), []
    if code is not None:
        names = [k for k in code.co_names if k.lower() in conventions.RATE_NAMES and k in fn.__globals__]
        for k in names:
            fn.__globals__[k] = RATE
    return names


def _updated(conv, obj, params, rated):
    """The gradients of a call that updated the params in place (W -= RATE * dW), or None."""
    grads = result.Updated(rated)
    for slot in conv.layout.slots:
        before = slot.to_user(params[slot.canon])
        try:
            now = np.asarray(slot.read(obj), dtype=np.float64)
        except (KeyError, IndexError, AttributeError, TypeError, ValueError):
            return None
        if now.shape != before.shape:
            return None
        grads[slot.label] = (before - now) / RATE
    return grads if any(np.any(g) for g in grads.values()) else None


def _lead(conv, obj, sizes):
    """[the instance a method is called on], or [] for a function."""
    return [obj if conv.make_self is None else conv.make_self(sizes)] if conv.target.is_method() else []


def own_loss(conv, params, x, y, sizes):
    """The file's own loss on a fresh copy of the params (so that nothing the check calls sees its
    side effects), or None where the Convention has none."""
    if conv.lcall is None:
        return None
    obj = conv.layout.build(params, sizes, (x.copy(), np.copy(y)))
    values = {"X": x.copy(), "Y": np.copy(y), "P": obj, "0": 0.0, "R": RATE}
    raw, _ = conventions.quiet_call(
        conv.target.own_loss, *_lead(conv, obj, sizes), *_args(conv.lcall, values, conv, obj)
    )
    return conventions.loss_of(raw)


def _call_once(conv, params, x, y, sizes, canon):
    """One call of the user's code: (its raw return value, the forward's, the params object, warnings).
    ``canon`` is (X rows, one-hot T rows) of what x and y hold, for an upstream gradient."""
    obj = conv.layout.build(params, sizes, (x.copy(), np.copy(y)))
    t = conv.target
    lead = _lead(conv, obj, sizes)
    rated = (_set_rates(lead[0]) if lead else []) + _set_global_rates(t.fn)
    values = {"X": x, "Y": y, "P": obj, "0": 0.0, "R": RATE}
    fwd = None
    if t.forward is not None:
        fwd, _ = conventions.quiet_call(t.forward, *lead, *_args(conv.fcall, values, conv, obj))
        fwd = _stored_output(lead) if fwd is None else fwd
        values["C"] = fwd if conv.call.cache in (None, "all") else _item(fwd, conv.call.cache)
        if "G" in conv.call.roles:
            values["G"] = upstream(conv, fwd, params, *canon)
        if "E" in conv.call.roles:
            values["E"] = t.error_sign * upstream(conv, fwd, params, *canon)
    args = _args(conv.call, values, conv, obj)
    if conv.call.cache == "all":
        spots = [i for i, r in enumerate(conv.call.roles) if r == "C"]
        for j, i in enumerate(spots):
            args[i] = _item(fwd, j)
    raw, caught = conventions.quiet_call(t.fn, *lead, *args)
    returned = conventions.split_result(raw)[1]
    if conventions.is_scalar(raw):  # a training step that returns its loss: (loss, its update)
        raw, returned = (conventions.loss_of(raw), None), None
    rated = rated or "R" in conv.call.roles
    if returned is None and conv.ucall is not None and _updated(conv, obj, params, True) is None:
        _, more = conventions.quiet_call(t.update, *lead, *_args(conv.ucall, values, conv, obj))
        caught, rated = [*caught, *more], rated or "R" in conv.ucall.roles
    if returned is None or isinstance(returned, np.ndarray):  # nothing, or the input's gradient
        grads = _updated(conv, obj, params, bool(rated))
        if grads is not None:
            loss = conventions.split_result(raw)[0]
            raw = grads if loss is None else (loss, grads)
    return raw, fwd, obj, caught


_OUTPUT_NAMES = re.compile(
    r"^_?(output|out|y_?hat|y_?pred|pred(iction)?s?|probs?|probabilities|a_?out)$", re.I
)


def _stored_output(lead):
    """What a forward pass that returns nothing stored as its output (``self.output``), or None."""
    found = (
        [v for k, v in vars(lead[0]).items() if _OUTPUT_NAMES.match(k)]
        if lead and hasattr(lead[0], "__dict__")
        else []
    )
    return found[0] if found and isinstance(found[0], np.ndarray) else None


def upstream(conv, fwd, params, X, T):
    """dL/d(the forward's output) in its layout, for the first candidate network whose logits or
    outputs that output is: per example (the checker averages the calls), or reduced over the batch.

    Raises Unsupplied when the output is no candidate's (then the gradient cannot be known)."""
    out = fwd if isinstance(fwd, np.ndarray) else None
    seen = None if out is None else conventions.find_outputs(out, len(X), T.shape[1], conv.call.per_example)
    for net in conv.heads if seen is not None else ():
        with np.errstate(all="ignore"):
            Z = models.forward(net, params, X)[0][-1]
            A = models.outputs(net, params, X)
            factor = 1.0 if conv.call.per_example else models.batch_factor(net, len(X))
            dZ = models.head_loss(net, Z, T)[1] * factor
            if compare.matches(seen, Z, 1e-8):
                G = dZ
            elif compare.matches(seen, A, 1e-8):  # through the output's own Jacobian, which the code applies
                G = dZ / A if net.head == "softmax" else dZ / (A * (1 - A))
            else:
                continue
        flip = out.ndim == 2 and out.shape != G.shape and out.shape == G.T.shape and len(X) > 1
        return G.T if flip else G.reshape(out.shape)
    what = compare.describe_value(fwd)
    role = "G" if "G" in conv.call.roles else "E"
    raise Unsupplied(
        f"{conv.target.name} takes {conv.call.names[conv.call.roles.index(role)]}, the loss's gradient "
        f"with respect to the output of {conv.target.forward_name}, but that output ({what}) is neither "
        "the logits nor the outputs of any candidate network, so the checker cannot make it (is the "
        "forward pass right?)"
    )


def _item(raw, index):
    if not isinstance(raw, tuple | list) or len(raw) <= index:
        raise TypeError(
            f"the forward pass returned {compare.describe_value(raw)}, not a tuple with item {index}"
        )
    return raw[index]


def invoke(conv, problem, params=None):
    """The Calls of the user's code on the problem (its params, or ``params``); user exceptions propagate."""
    params = problem.params if params is None else params
    K, c = problem.K, conv.call
    X = conventions.x_value(c, problem.X) if not c.per_example else problem.X
    out = Calls([], [], [], [])
    items = [(problem.X[i], i) for i in range(problem.n)] if c.per_example else [(None, None)]
    for xi, i in items:
        x = conventions.x_value(c, xi, problem.Y[i]) if c.per_example else X.copy()
        y = conventions.y_value(c, problem.Y[i] if c.per_example else problem.Y, K)
        x0, y0 = np.copy(x), np.copy(y)
        rows = slice(None) if i is None else slice(i, i + 1)
        canon = (problem.X[rows], models.targets(problem.Y, K)[rows])
        own = own_loss(conv, params, x, y, problem.sizes)
        raw, fwd, obj, caught = _call_once(conv, params, x, y, problem.sizes, canon)
        loss, grads = conventions.split_result(raw)
        loss = _forward_loss(fwd) if loss is None else loss
        loss = own if loss is None else loss
        note = Finding("in_place", _IN_PLACE if getattr(grads, "rated", True) else _UNRATED, level="note")
        if isinstance(grads, result.Updated) and note not in out.notes:
            out.notes.append(note)
        out.returned.append(grads)
        out.losses.append(loss)
        source = fwd if fwd is not None else None
        out.outputs.append(
            None if source is None else conventions.find_outputs(source, problem.n, K, c.per_example)
        )
        out.notes += [_warning(w) for w in caught]
        out.notes += _mutations(conv, obj, params, problem.sizes, (x, x0, "X"), (y, y0, "Y"))
    return _zero_updates(conv, params, out)


def _zero_updates(conv, params, out):
    """The Calls, where some calls updated the params in place and others changed nothing (every unit
    saturated: a zero gradient), with those read as zero gradients too."""
    updates = [r for r in out.returned if isinstance(r, result.Updated)]
    if updates:
        zero = result.Updated(updates[0].rated)
        zero.update({s.label: np.zeros(s.to_user(params[s.canon]).shape) for s in conv.layout.slots})
        out.returned = [zero if r is None else r for r in out.returned]
    return out


def _forward_loss(fwd):
    """The loss a forward pass returns beside its cache (``cost, cache``), or None. Only a true scalar:
    a (1, 1) output array (one example, one unit) is not a loss."""
    if not isinstance(fwd, tuple | list) or len(fwd) != 2:
        return None
    loss, _ = conventions.split_result(fwd)
    scalar = loss is not None and any(_zero_dim(v) for v in fwd)
    return loss if scalar else None


def _zero_dim(v):
    """A Python or numpy number, or a 0-d array (np.ndim would choke on a ragged cache)."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int | float | np.number) or (isinstance(v, np.ndarray) and v.ndim == 0)


def _warning(w):
    from pathlib import Path

    where = f" ({Path(w.filename).name}:{w.lineno})" if w.filename else ""
    return Finding("warning", f"{w.category.__name__}: {w.message}{where}", level="note")


def _mutations(conv, obj, params, sizes, *data):
    changed = []
    for slot in conv.layout.slots:
        try:
            now = slot.read(obj)
            same = isinstance(now, np.ndarray) and np.array_equal(now, slot.to_user(params[slot.canon]))
        except (KeyError, IndexError, AttributeError, TypeError):
            same = False
        if not same:
            changed.append(f"params[{slot.label!r}]" if conv.layout.kind == "dict" else slot.label)
    for now, before, name in data:
        if not (isinstance(now, np.ndarray | int) and np.array_equal(now, before)):
            changed.append(name)
    if not changed or conv.target.is_method():
        return []
    message = (
        f"the function modified {', '.join(changed)} in place; the check passes copies, so the result is "
        "unaffected, but in a training loop this silently changes the caller's arrays"
    )
    return [Finding("mutation", message, level="note")]
