"""From the loaded user code to what ``check_backprop`` needs: the Target and the params' Layouts.

The layouts come from an init function (``--init``, or a function of the file whose name says it
makes parameters), or from the class's constructor, each called with the test problems' layer sizes
in whatever form its signature asks for: a list ``[D, H, K]``, the sizes as arguments, or keywords
named like ``input_size``, ``hidden_size``, ``output_size``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re

import numpy as np

from mlpnn_jax.gradcheck import conventions, layouts, problems, statements
from mlpnn_jax.gradcheck.conventions import RATE_NAMES

# A whole name: the stem, then at most a layer number or a word for a size ("dtype" is no D, "keep" no K).
_SIZE_SUFFIX = r"(_layer)?(_?\d+|s|_sizes?|_dims?|_units|_nodes|_neurons)?$"
_SIZE_NAMES = {
    role: re.compile(stems + _SIZE_SUFFIX)
    for role, stems in {
        "D": r"^(in|inp|input|n_x|nx|n_in|n_input|num_inputs?|d|n_features|dim_in)",
        "H": r"^(h|hid|hidden|n_h|nh|n_hidden|num_hidden)",
        "K": r"^(out|output|n_y|ny|n_out|n_output|num_outputs?|k|(num|n)_(classes|labels)|classes|dim_out)",
    }.items()
}
_LIST_NAMES = re.compile(
    r"^(sizes|layers|layer_sizes|dims|layer_dims|layers_dims|shape|architecture|topology|nodes|units|neurons)"
)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_INIT_NAMES = re.compile(r"(init|create|param|build|make)", re.I)


def _forms(fn, sizes):
    """(args, kwargs) to call an init with these sizes, most plausible first."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    pos = [p for p in params if p.kind in kinds]
    required = [p for p in pos if p.default is inspect.Parameter.empty]
    rates = [p for p in required if p.name.lower() in RATE_NAMES]  # a learning rate the maker wants
    tail = [0.1] * len(rates) if required[len(required) - len(rates) :] == rates else None
    required = [p for p in required if p not in rates]
    D, hidden, K = sizes[0], list(sizes[1:-1]), sizes[-1]
    out = []
    if tail is not None and (
        len(required) == 1 or (required and _LIST_NAMES.match(required[0].name.lower()))
    ):
        out.append(([list(sizes), *tail], {}))
    if tail is not None and len(required) == len(sizes):
        out.append(([*sizes, *tail], {}))
    kw, hidden_left, named = {p.name: 0.1 for p in rates}, list(hidden), set()
    for p in pos:
        low = p.name.lower()
        role = next((r for r, pattern in _SIZE_NAMES.items() if pattern.match(low)), None)
        named.add(role)
        if role in ("D", "K"):
            kw[p.name] = D if role == "D" else K
        elif role == "H" and low.endswith("s"):
            kw[p.name], hidden_left = list(hidden), []
        elif role == "H":
            kw[p.name] = hidden_left.pop(0) if hidden_left else None
    complete = not hidden_left and all(v is not None for v in kw.values())
    if kw and complete and all(p.name in kw for p in required):  # first where D and K are named, as in
        out.insert(0 if {"D", "K"} <= named else len(out), ([], kw))  # Net(hidden_dims, input_dim=3072)
    return [(args, {**_float64(params), **kwargs}) for args, kwargs in out]


def _float64(params):
    """dtype=float64 for a maker that takes a dtype (CS231n's nets default to float32): checks are float64."""
    takes = any(p.name == "dtype" and p.default is not p.empty for p in params)
    return {"dtype": np.float64} if takes else {}


def init_names(source):
    """The names in ``return [W, b, U, b_tag]`` (directly or through a variable), or None."""
    if not source:
        return None
    tree = ast.parse(source)
    lists = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.List | ast.Tuple)
            and len(node.targets) == 1
        ):
            t = node.targets[0]
            if isinstance(t, ast.Name) and all(isinstance(e, ast.Name) for e in node.value.elts):
                lists[t.id] = [e.id for e in node.value.elts]
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            v = node.value
            if (
                isinstance(v, ast.List | ast.Tuple)
                and v.elts
                and all(isinstance(e, ast.Name) for e in v.elts)
            ):
                return [e.id for e in v.elts]
            if isinstance(v, ast.Name) and v.id in lists:
                return lists[v.id]
    return None


def layouts_from(maker, name, source):
    """The Layouts a maker (init function or class) yields for 2, 3, 1 or 4 weight layers; failing
    those, the layout of what it builds with sizes of its own (``Net()``, ``Net(hidden=4)`` making
    784-4-10), whose sizes every problem then takes."""
    found, errors, built = [], [], []
    for L in (2, 3, 1, 4):
        sizes = problems.sizes_for("small", L)
        for args, kwargs in _forms(maker, sizes):
            try:
                obj = maker(*args, **kwargs)
            except Exception as e:
                errors.append(e)
                continue
            make = _maker(maker, args, kwargs, sizes)
            layout = layouts.from_object(obj, sizes, make, f"from {name}", init_names(source))
            if layout is not None:
                return [layout], errors
            built.append((obj, make, False))
    built += _built_with_data(maker, errors)
    if not _forms(maker, problems.sizes_for("small", 2)) and not built:
        defaults = _float64(_parameters(maker))
        try:  # no sizes to pass: its defaults
            built.append((maker(**defaults), lambda sizes: maker(**defaults), False))
        except Exception as e:
            errors.append(e)
    for obj, make, takes_data in built:
        layout = layouts.fixed_from_object(obj, make, f"from {name}", init_names(source))
        if layout is not None:
            found.append(dataclasses.replace(layout, takes_data=takes_data))
            break
    return found, errors


def layouts_built(module, cls):
    """The Layouts of the cls the file's own top-level statements build (``nn = Net(); nn.add(...)``)."""
    found = statements.from_file(module, cls.__name__)
    if found is None:
        return []
    build, text = found
    try:
        build()
    except Exception:  # the statements need what the file loads or computes at run time: not these
        return []
    return layouts_of((build, f"built as the file builds it ({text})"))


def holds_nothing(target):
    """Whether the target's class, built as ``instance_maker`` builds it, holds no float arrays while
    neither the method nor the forward takes params (then nothing can be checked)."""
    make, _ = instance_maker(target.cls, problems.sizes_for("small", 2))
    if make is None or any(True for _ in layouts.leaves(make(problems.sizes_for("small", 2)))):
        return False
    names = conventions.ROLE_NAMES["P"]
    fns = [f for f in (target.fn, target.forward) if f is not None]
    takes = any(a.lower() in names for f in fns for a, _ in conventions.arguments(f, True))
    return not takes and not layouts.argument_guesses(fns, True)  # nor W1, b1, ... as arguments


def layouts_of(built):
    """The Layouts of what ``(build, how)`` builds (an instance, made afresh by ``build()``)."""
    build, how = built
    layout = layouts.fixed_from_object(build(), lambda sizes: build(), how)
    return [] if layout is None else [layout]


def error_sign(module, fn):
    """-1 where the file computes the checked function's error-signal argument as ``error = target -
    output`` (or says nothing), +1 where as ``output - target``: its sign, as the author's own loop
    makes it."""
    args = {a for a, _ in conventions.arguments(fn, False) if a.lower() in conventions.ERROR_NAMES}
    for c in module.chunks:
        for node in ast.walk(c.node) if c.node is not None else ():
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id in args for t in node.targets)
                and isinstance(node.value, ast.BinOp)
                and isinstance(node.value.op, ast.Sub)
            ):
                first = ast.unparse(node.value.left).lower()
                return -1 if re.search(r"targ|expect|desired|label|\by\b|truth", first) else 1
    return -1


def _built_with_data(maker, errors):
    """[(what the maker builds from a small problem's data, (sizes, X, Y) -> a fresh one, True)] for
    a constructor whose required arguments are the data (``NeuralNetwork(x, y)``), else []."""
    required = [p for p in _parameters(maker) if p.default is p.empty and p.kind in _POSITIONAL]
    roles = [next((r for r in "XY" if p.name.lower() in conventions.ROLE_NAMES[r]), None) for p in required]
    if "X" not in roles or None in roles or len(set(roles)) < len(roles):
        return []
    rng = np.random.default_rng(0)
    X, labels = rng.random((7, 5)), rng.integers(0, 3, 7)

    def make(sizes, X, Y):
        return maker(*[X if r == "X" else Y for r in roles])

    for Y in (labels, np.eye(3)[labels], labels[:, None] % 2):
        try:
            return [(make((), X, Y), make, True)]
        except Exception as e:  # this form of labels does not fit the constructor: the next one
            errors.append(e)
    return []


def _parameters(fn):
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def instance_maker(cls, sizes):
    """(sizes -> a fresh instance of cls, errors): its constructor called in the first form its
    signature allows that constructs (the layer sizes by name or position, else no arguments);
    (None, errors) when none does."""
    errors = []
    for args, kwargs in [*_forms(cls, sizes), ([], {})]:
        try:
            cls(*args, **kwargs)
        except Exception as e:  # this form does not fit the constructor: the next one
            errors.append(e)
            continue
        return _maker(cls, args, kwargs, sizes), errors
    return None, errors


def signature(cls):
    """'Net(n_in, n_hidden, n_out=10)', or the bare name where Python cannot say."""
    try:
        return f"{cls.__name__}{inspect.signature(cls)}"
    except (TypeError, ValueError):
        return cls.__name__


def _maker(maker, args, kwargs, sizes):
    """sizes -> a fresh container, calling the maker in the form that worked for ``sizes``."""

    def make(new):
        swap = dict(zip(sizes, new, strict=True))

        def sub(v):
            if isinstance(v, list):
                return [swap.get(x, x) for x in v]
            return swap.get(v, v) if isinstance(v, int) else v

        return maker(*[sub(v) for v in args], **{k: sub(v) for k, v in kwargs.items()})

    return make


def target_for(obj, name, module, forward=None, forward_name=""):
    """A Target for a loaded function or Class.method (``obj`` is the function itself) of the
    ``load.Module``, with the file's own loss beside it."""
    cls = None
    if "." in name:
        cls_name, _ = name.split(".", 1)
        cls = obj.__globals__.get(cls_name) if hasattr(obj, "__globals__") else None
    loss_name, loss = own_function(module, name, cls, _OWN_LOSS)
    update_name, update = own_function(module, name, cls, _OWN_UPDATE)
    sign = error_sign(module, obj)
    return conventions.Target(
        name, obj, cls, forward, forward_name, loss, loss_name, update, update_name, sign
    )


_OWN_LOSS = re.compile(
    r"^(loss|cost|j|compute_?(loss|cost)|cost_?function|loss_?function|calc(ulate)?_?(loss|cost)|"
    r"get_?(loss|cost)|objective|cross_?entropy(_loss)?|total_?(loss|cost))$",
    re.I,
)


_OWN_UPDATE = re.compile(
    r"^(gradient_?descent|update(_?(weights|params|parameters|network))?|step|apply_?gradients?|sgd|"
    r"optimi[sz]e|learn|descend)$",
    re.I,
)


def own_function(module, name, cls, pattern):
    """(its name, the function) of the file's own loss (``_OWN_LOSS``: ``loss``, ``costFunction``...)
    or update (``_OWN_UPDATE``: ``gradient_descent``, ``update_weights``...) beside the checked
    function: a function, or for a method a method of its class; ("", None) if none."""
    if cls is not None:
        own = name.split(".")[1]
        found = [k for k, v in vars(cls).items() if pattern.match(k) and callable(v) and k != own]
        return (f"{cls.__name__}.{found[0]}", getattr(cls, found[0])) if found else ("", None)
    found = [
        k
        for k, c in module.defs.items()
        if k != name and isinstance(c.node, ast.FunctionDef) and pattern.match(k) and module.need(k)
    ]
    return (found[0], module.namespace[found[0]]) if found else ("", None)


def auto_inits(module, exclude):
    """Functions of the file whose names say they make parameters (tried when --init is not given)."""
    out = []
    for name, chunk in module.defs.items():
        if name in exclude or not isinstance(chunk.node, ast.FunctionDef) or not _INIT_NAMES.search(name):
            continue
        if module.need(name):
            out.append(name)
    return out
