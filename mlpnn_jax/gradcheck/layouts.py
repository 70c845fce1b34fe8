"""Where the user keeps the parameters: the container, the names, the order and each array's layout.

A ``Layout`` maps each of the user's arrays (a ``Slot``: a path into their container) to a canonical
parameter (``W1, b1, ..., WL, bL``: weights (in, out), biases (out,)). It is read off what the user's
init function or class constructor returns (shapes identify every array, since the test problems'
sizes all differ), or guessed from how the checked function's source indexes its params argument.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
from collections.abc import Callable

import numpy as np

BIAS_FORMS = ("flat", "row", "col")  # (H,), (1, H), (H, 1)
_MAX_DEPTH = 4


@dataclasses.dataclass(frozen=True)
class Slot:
    """One array of the user's params: its label, canonical name, path, and layout."""

    label: str
    canon: str
    path: tuple
    transpose: bool = False
    bias_form: str = "flat"
    augmented: bool = False  # a part of an array whose last column (transpose: (out, in + 1)) or last row
    # ((in + 1, out)) is the bias, for an input augmented with a 1

    @property
    def is_weight(self):
        return self.canon[0] == "W"

    def _part(self):
        """The index of this slot's part of an augmented array."""
        line = slice(None, -1) if self.is_weight else -1
        return (slice(None), line) if self.transpose else (line, slice(None))

    def read(self, obj):
        """This slot's array in ``obj`` (its part, for an augmented one)."""
        arr = get(obj, self.path)
        return np.asarray(arr)[self._part()] if self.augmented else arr

    def write(self, obj, value):
        """``obj`` with this slot's array (or part) set to ``value`` (in the user's layout)."""
        if not self.augmented:
            return put(obj, self.path, value)
        whole = np.array(get(obj, self.path), dtype=np.float64)
        whole[self._part()] = value
        return put(obj, self.path, whole)

    def user_shape(self, sizes):
        i = int(self.canon[1:])
        if self.is_weight:
            shape = (sizes[i - 1], sizes[i])
            return shape[::-1] if self.transpose else shape
        return {"flat": (sizes[i],), "row": (1, sizes[i]), "col": (sizes[i], 1)}[self.bias_form]

    def to_user(self, value):
        value = value.T if self.transpose else value
        if not self.is_weight:
            value = value.reshape({"flat": (-1,), "row": (1, -1), "col": (-1, 1)}[self.bias_form])
        return np.array(value, dtype=np.float64)

    def to_canon(self, arr):
        return np.ravel(arr) if not self.is_weight else (arr.T if self.transpose else arr)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The user's params container: its slots, how to make a fresh one, and where it came from."""

    slots: tuple
    kind: str  # "dict", "list", "tuple", "attributes"
    make: Callable  # sizes -> a fresh container (or instance) in this layout
    source: str
    num_layers: int
    bias: bool
    sizes: tuple | None = None  # (D, H1, ..., K) where the user's code fixes them: every problem has them
    takes_data: bool = False  # make(sizes, X, Y): the constructor takes the data (then D is the data's)

    def build(self, params, sizes, data=()):
        """A fresh container holding the canonical ``params`` in the user's layout; ``data``: (X, Y) in
        the call's forms, for a constructor that takes them."""
        obj = self.make(sizes, *data) if self.takes_data else self.make(sizes)
        for slot in self.slots:
            obj = slot.write(obj, slot.to_user(params[slot.canon]))
        return obj

    def describe(self, sizes):
        items = ", ".join(f"{s.label} {tuple(s.user_shape(sizes))}" for s in self.slots)
        kinds = {"dict": "the dict", "list": "the list", "tuple": "the tuple", "args": "the arguments"}
        what = kinds.get(self.kind, "the attributes")
        fixed = f" (sizes {'-'.join(map(str, self.sizes))}, as it builds them)" if self.sizes else ""
        fixed += ", given the data" if self.takes_data else ""
        return f"params are {what} [{items}]" + (f" {self.source}" if self.source else "") + fixed


def put(obj, path, value):
    """``obj`` with the leaf at ``path`` replaced (dicts and lists copied, tuples rebuilt, objects set)."""
    if not path:
        return value
    kind, key = path[0]
    if kind == "rows":  # a list of dicts each holding one row under key: [{"weights": [...]}, ...]
        return [{**d, key: [float(v) for v in row]} for d, row in zip(obj, value, strict=True)]
    if kind == "attr":
        setattr(obj, key, put(getattr(obj, key), path[1:], value))
        return obj
    if isinstance(obj, tuple):
        items = list(obj)
        items[key] = put(items[key], path[1:], value)
        return type(obj)(items) if type(obj) is tuple else type(obj)(*items)
    new = dict(obj) if isinstance(obj, dict) else list(obj)
    new[key] = put(obj[key], path[1:], value)
    return new


def get(obj, path):
    for kind, key in path:
        if kind == "rows":
            return np.array([d[key] for d in obj], dtype=np.float64)
        obj = getattr(obj, key) if kind == "attr" else obj[key]
    return obj


def _rows_key(obj):
    """The key under which every dict of a list holds a list of numbers of one length (a layer of
    neurons: [{"weights": [w..., bias]}, ...]), or None."""
    if not (isinstance(obj, list) and obj and all(isinstance(d, dict) for d in obj)):
        return None
    for key, first in obj[0].items():
        rows = [d.get(key) for d in obj]
        if all(isinstance(r, list) and r and len(r) == len(first) for r in rows) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for r in rows for v in r
        ):
            return key
    return None


def leaves(obj, path=(), depth=0):
    """(path, array) for every numeric array inside dicts, lists, tuples and plain objects."""
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f" and obj.ndim in (1, 2):
        yield path, obj
    elif depth >= _MAX_DEPTH:
        return
    elif (key := _rows_key(obj)) is not None:
        yield (*path, ("rows", key)), get(obj, (("rows", key),))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, (*path, ("key", k)), depth + 1)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, ("idx", i)), depth + 1)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
        for k, v in vars(obj).items():
            yield from leaves(v, (*path, ("attr", k)), depth + 1)


def label(path, root="params"):
    text = "self" if path and path[0][0] == "attr" else root
    for kind, key in path:
        text += f".{key}" if kind == "attr" else f"[j][{key!r}]" if kind == "rows" else f"[{key!r}]"
    return text


def identify(shape, sizes):
    """(canonical name, transpose, bias form) of an array of this shape, or None."""
    for i in range(1, len(sizes)):
        a, b = sizes[i - 1], sizes[i]
        if shape == (a, b):
            return f"W{i}", False, "flat"
        if shape == (b, a):
            return f"W{i}", True, "flat"
        for form in BIAS_FORMS:
            if shape == {"flat": (b,), "row": (1, b), "col": (b, 1)}[form]:
                return f"b{i}", False, form
    return None


def from_object(obj, sizes, make, source, names=None):
    """The Layout of a container (or instance) built for ``sizes``; None unless it holds every weight."""
    slots, seen = [], set()
    for path, arr in param_leaves(obj):
        found = identify(arr.shape, sizes)
        if found is None or found[0] in seen:
            continue
        seen.add(found[0])
        name = _name(path, names, len(slots))
        slots.append(Slot(name, found[0], path, found[1], found[2]))
    L = len(sizes) - 1
    weights = {f"W{i}" for i in range(1, L + 1)}
    biases = {f"b{i}" for i in range(1, L + 1)}
    if not weights <= seen or (seen & biases and not biases <= seen):
        return None
    transposes = {s.transpose for s in slots if s.is_weight}
    if len(transposes) > 1:
        return None
    kind = "attributes" if slots[0].path[0][0] == "attr" else type(obj).__name__
    kind = kind if kind in ("dict", "list", "tuple", "attributes") else "attributes"
    return Layout(tuple(slots), kind, make, source, L, biases <= seen)


_NOT_PARAMS = re.compile(
    r"^(x|xs?_\w*|inputs?|data|y|ys?_\w*|targets?|labels?|outputs?|out|y_?hat|a\d*|z\d*|"
    r"activations?|cache|deltas?|errors?|d(w|b|z|a|x|h)\w*|d_\w*|derivatives?|grads?\w*|m_\w*|velocity\w*)$",
    re.I,
)


def param_leaves(obj):
    """``leaves(obj)`` without the arrays whose names say they are no parameters (``self.input``,
    ``self.activations[1]``, ``self.dW``)."""
    return [
        (p, a)
        for p, a in leaves(obj)
        if not any(_NOT_PARAMS.match(str(key)) for kind, key in p if kind != "idx")
    ]


def fixed_from_object(obj, make, source, names=None):
    """The Layout of a container whose sizes its maker fixes (``Net()`` building 784-300-10), read off
    its arrays: weight matrices chained (in, out) or all (out, in) in the order they are held, then a
    bias per layer (the first array left of its size); or chained with one more input each, the
    bias as their last column or row (an input augmented with a 1). None unless the chain holds every
    matrix and the sizes all differ."""
    arrays = param_leaves(obj)
    matrices = sum(a.ndim == 2 and 1 not in a.shape for _, a in arrays)
    for augmented, transpose in itertools.product((False, True), (False, True)):
        chain = _chain(arrays, transpose, augmented)
        if len(chain) < max(2, matrices):
            continue
        sizes = (chain[0][1][0] - augmented, *(io[1] for _, io in chain))
        if len(set(sizes)) < len(sizes):  # 784-10-10: shapes could not tell the layers apart
            continue
        slots = [Slot(_name(p, names, i), f"W{i}", p, transpose) for i, (p, _) in enumerate(chain, 1)]
        if augmented:
            slots = _augmented(slots)
        else:
            slots += _biases(obj, arrays, sizes, {p for p, _ in chain}, names, len(slots))
        L, nb = len(chain), len(slots) - len(chain)
        if nb not in (0, L):
            continue
        kind = "attributes" if chain[0][0][0][0] == "attr" else type(obj).__name__
        kind = kind if kind in ("dict", "list", "tuple", "attributes") else "attributes"
        return Layout(tuple(slots), kind, make, source, L, nb == L, sizes)
    return None


def _chain(arrays, transpose, augmented):
    """[(path, (in, out))] of the 2-d arrays, in order, each taking the last one's outputs (plus 1)."""
    chain = []
    for path, a in arrays:
        io = a.shape[::-1] if transpose else a.shape
        if a.ndim == 2 and (not chain or chain[-1][1][1] + augmented == io[0]):
            chain.append((path, io))
    return chain


def _augmented(weights):
    """Each augmented array's two slots: its weights, then its last column (or row), the bias."""
    out = []
    for w in weights:
        rows = w.path[-1][0] == "rows"  # neuron j's list: its weights, then its bias
        part = "[:-1]" if rows or not w.transpose else "[:, :-1]"
        bias = "[-1]" if rows or not w.transpose else "[:, -1]"
        out.append(dataclasses.replace(w, label=w.label + part, augmented=True))
        out.append(dataclasses.replace(w, label=w.label + bias, canon="b" + w.canon[1:], augmented=True))
    return out


def _biases(obj, arrays, sizes, used, names, first):
    """A bias slot per layer where an unused array has its size ((H,), (1, H) or (H, 1))."""
    slots, used = [], set(used)
    for i, size in enumerate(sizes[1:], 1):
        forms = {(size,): "flat", (1, size): "row", (size, 1): "col"}
        path = next((p for p, a in arrays if p not in used and a.shape in forms), None)
        if path is not None:
            used.add(path)
            form = forms[get(obj, path).shape]
            slots.append(Slot(_name(path, names, first + len(slots)), f"b{i}", path, False, form))
    return slots


def _name(path, names, index):
    if names and len(path) == 1 and path[0][0] == "idx" and path[0][1] < len(names):
        return names[path[0][1]]
    if len(path) == 1 and path[0][0] == "key":
        return str(path[0][1])
    if len(path) == 1 and path[0][0] == "attr":
        return f"self.{path[0][1]}"
    return label(path)


def canonical(num_layers=2, bias=True):
    """Today's convention: the dict {W1 (D, H), b1 (H,), W2 (H, K), b2 (K,)}."""
    names = [f"{p}{i}" for i in range(1, num_layers + 1) for p in ("W", "b") if bias or p == "W"]
    slots = tuple(Slot(n, n, (("key", n),)) for n in names)
    return Layout(slots, "dict", lambda sizes: dict.fromkeys(names), "", num_layers, bias)


# --------------------------------------------------------------------------- guesses from the source


def source_guesses(fn_source, arg):
    """Layouts guessed from how the source indexes (``arg["W1"]``) or unpacks (``W, b = arg``) ``arg``."""
    if not fn_source or not arg:
        return []
    tree = ast.parse(fn_source)
    keys, unpacked = [], None
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == arg:
            s = node.slice
            if isinstance(s, ast.Constant) and isinstance(s.value, str) and s.value not in keys:
                keys.append(s.value)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id == arg:
            target = node.targets[0]
            if isinstance(target, ast.Tuple | ast.List) and all(isinstance(e, ast.Name) for e in target.elts):
                unpacked = [e.id for e in target.elts]
    out = []
    if unpacked:
        out += _guess(unpacked, "list", f"(unpacked in the source as {', '.join(unpacked)})")
    elif keys:
        out += _guess(keys, "dict", "(as the source indexes them)")
    return out


_PARAM_ARG = re.compile(r"^(w|W|b|B|U|V)(\d*|_\w+)$|^(weights?|bias(es)?)_?\d*$")


def argument_guesses(fns, method):
    """Layouts for params passed as separate arguments (``backward(X, y, W1, b1, W2, b2)``), named as
    the checked function and the forward function name them."""
    import inspect

    names = []
    for fn in fns:
        if fn is None:
            continue
        args = list(inspect.signature(fn).parameters)[1 if method else 0 :]
        names += [a for a in args if _PARAM_ARG.match(a) and a not in names]
    return _guess(names, "args", "(passed as separate arguments)") if len(names) >= 2 else []


def _natural(names):
    """Names in layer order: by their number when every one has one (W2 after W1), else as given."""
    numbers = [re.search(r"\d+", n) for n in names]
    return sorted(names, key=lambda n: int(re.search(r"\d+", n).group())) if all(numbers) else names


def _guess(names, kind, source):
    """Layouts for names in source order: weights are the names not starting with b."""
    weights = _natural([n for n in names if not n.lower().startswith("b")])
    biases = _natural([n for n in names if n.lower().startswith("b")])
    if not weights or (biases and len(biases) != len(weights)):
        return []
    canon = {}
    for i, n in enumerate(weights, 1):
        canon[n] = f"W{i}"
    for i, n in enumerate(biases, 1):
        canon[n] = f"b{i}"
    out = []
    for transpose, form in itertools.product((False, True), BIAS_FORMS if biases else ("flat",)):
        slots = []
        for j, n in enumerate(names):
            path = (("idx", j),) if kind == "list" else (("key", n),)  # "args": a dict of them
            slots.append(Slot(n, canon[n], path, transpose, form))

        def make(sizes, names=tuple(names), kind=kind):
            return [None] * len(names) if kind == "list" else dict.fromkeys(names)

        if kind == "args":  # separate arguments: gradients are usually returned layer by layer
            slots.sort(key=lambda s: (int(s.canon[1:]), s.canon[0] == "b"))
        out.append(Layout(tuple(slots), kind, make, source, len(weights), bool(biases)))
    return out
