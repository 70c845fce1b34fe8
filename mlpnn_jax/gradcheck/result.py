"""What the user's code returned on one problem, parsed once: the canonical ``Result``.

``parse`` reads the raw calls (``runner.Calls``) under their ``Convention``: the gradients by canonical
name (``W1``, ``b1``, ...) as float64 arrays in the canonical layout, averaged over per-example calls;
per name the shape and dtype as returned and a status; the findings met while reading; the loss and
the outputs. Nothing downstream reads the user's return value again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from mlpnn_jax.gradcheck import compare
from mlpnn_jax.gradcheck.report import Finding

_PREFIXES = ("grad_", "grad", "nabla_", "delta_", "d_", "d", "g_", "g")
USABLE = ("ok", "dtype")  # the statuses whose gradient is compared (float32: compared, and noted)


class Updated(dict):
    """Gradients read off an in-place update: (params before - after) / learning rate; ``rated``:
    False where the code's rate could not be set (then they are eta times the gradients, for an eta
    ``reference.fit_step`` infers)."""

    def __init__(self, rated=True):
        super().__init__()
        self.rated = rated


@dataclasses.dataclass(frozen=True)
class Result:
    """One run of the user's code on a problem, parsed once.

    ``grads``: {canonical name: float64 array in the canonical layout, or None where unusable};
    ``shapes``, ``dtypes``: per canonical name, as returned (None where not an array); ``status``: per
    canonical name, "ok", "dtype" (float32 or less), "missing", "type", "shape", "transposed" or
    "nonfinite"; ``findings``: what reading it found, then the run's notes; ``loss`` (float) and
    ``outputs`` ((n, K) array): None where the code does not expose them; ``misshapen``: {canonical
    name: the wrong-shaped array as returned}, for the shape findings' value hints (``findings_against``);
    ``unrated``: the gradients are an in-place update's changes at a step the checker could not set.
    """

    grads: dict
    shapes: dict
    dtypes: dict
    status: dict
    findings: tuple
    loss: float | None
    outputs: np.ndarray | None
    misshapen: dict
    unrated: bool = False

    def findings_against(self, conv, problem, expected):
        """The findings, a wrong shape's reworded with the expected gradients ({canonical: array})
        known: whether its transpose, its sum over the batch or its squeeze would match."""
        by_label = {s.label: s for s in conv.layout.slots}
        out = []
        for f in self.findings:
            slot = by_label.get(f.params[0]) if f.code in ("shape", "transposed") and f.params else None
            if slot is not None and slot.canon in self.misshapen:
                ref = slot.to_user(expected[slot.canon])
                code, message = compare.shape_finding(
                    slot.label, self.misshapen[slot.canon], problem, ref, _role(slot, problem)
                )
                f = dataclasses.replace(f, code=code, message=message)
            out.append(f)
        return out


@dataclasses.dataclass
class _Tally:
    """The running sums and per-name facts while the calls are read."""

    sums: dict
    shapes: dict
    dtypes: dict
    status: dict
    findings: list = dataclasses.field(default_factory=list)
    misshapen: dict = dataclasses.field(default_factory=dict)

    def note(self, found):
        self.findings += [f for f in found if f not in self.findings]

    def take(self, slot, value, problem):
        """Read one returned gradient of ``slot`` into the tally: its sum, shape, dtype and status."""
        arr, code, notes, read = _leaf(slot, value, problem)
        self.note(notes)
        k = slot.canon
        if read is not None:
            self.shapes[k], self.dtypes[k] = tuple(read.shape), str(read.dtype)
        if code in ("shape", "transposed"):
            self.misshapen[k] = read
        if arr is None:
            self.status[k] = code
            return
        if code == "dtype":
            self.status[k] = "dtype"
        self.sums[k] = arr if self.sums[k] is None else self.sums[k] + arr


def parse(calls, conv, problem):
    """The Result of ``calls`` (a runner.Calls) made under ``conv`` on ``problem``."""
    names = [s.canon for s in conv.layout.slots]
    tally = _Tally(
        dict.fromkeys(names), dict.fromkeys(names), dict.fromkeys(names), dict.fromkeys(names, "ok")
    )
    for returned in calls.returned:
        found, trouble = slot_values(returned, conv, problem.sizes)
        tally.note(trouble)
        for s in conv.layout.slots:
            if tally.status[s.canon] not in USABLE:
                continue
            if s.label not in found:
                missing = any(f.code == "missing_key" for f in trouble)
                tally.status[s.canon] = "missing" if missing else "type"
                continue
            tally.take(s, found[s.label], problem)
    count = len(calls.returned)
    grads = {
        k: None if tally.status[k] not in USABLE or v is None else v / count for k, v in tally.sums.items()
    }
    findings = (*tally.findings, *calls.notes)
    return Result(
        grads,
        tally.shapes,
        tally.dtypes,
        tally.status,
        findings,
        calls.mean_loss(),
        calls.all_outputs(),
        tally.misshapen,
        any(isinstance(r, Updated) and not r.rated for r in calls.returned),
    )


def _role(slot, problem):
    """ "first" or "last" for the first or last weight matrix (the shape hints' input/activation)."""
    if slot.canon == "W1":
        return "first"
    return "last" if slot.is_weight and slot.canon == f"W{len(problem.sizes) - 1}" else None


def _leaf(slot, value, problem):
    """(canonical float64 array or None, status, findings, the array as read or None) for one returned
    gradient. A wrong shape's finding names the shapes only: its value hints wait for the expected
    gradients."""
    arr, notes = compare.as_array(slot.label, value)
    if arr is None:
        return None, "type", notes, None
    if arr.shape != tuple(slot.user_shape(problem.sizes)):
        blank = np.full(slot.to_user(problem.params[slot.canon]).shape, np.nan)
        code, msg = compare.shape_finding(slot.label, arr, problem, blank, _role(slot, problem))
        return None, code, [*notes, Finding(code, msg, (slot.label,))], arr
    arr64 = arr.astype(np.float64)
    bad = compare.nonfinite(slot.label, arr64)
    if bad is not None:
        return None, "nonfinite", [*notes, bad], arr
    code = "dtype" if arr.dtype.kind == "f" and arr.dtype.itemsize < 8 else "ok"
    return slot.to_canon(arr64), code, notes, arr


# ------------------------------------------------------------- which returned value is which slot


def slot_values(grads, conv, sizes):
    """({label: value} for the gradients found, findings) from the returned gradients."""
    layout, labels = conv.layout, [s.label for s in conv.layout.slots]
    want = "a dict with keys " + ", ".join(labels)
    if isinstance(grads, Updated):
        return dict(grads), []
    if isinstance(grads, Mapping):
        if layout.kind not in ("dict", "attributes") and not conv.strict_keys:
            return {}, [
                Finding("type", f"returned {compare.describe_value(grads)} where a list of gradients belongs")
            ]
        return _by_key(grads, conv)
    if layout.kind == "dict" and (conv.strict_keys or not isinstance(grads, list | tuple)):
        hint = " (a missing `return`?)" if grads is None else ""
        return {}, [Finding("type", f"returned {compare.describe_value(grads)}{hint} instead of {want}")]
    if not isinstance(grads, list | tuple):
        hint = " (a missing `return`?)" if grads is None else ""
        what = f"{len(labels)} gradients ({', '.join(labels)})"
        return {}, [Finding("type", f"returned {compare.describe_value(grads)}{hint} instead of {what}")]
    return _by_position(grads, conv, sizes)


def _key_for(key, labels, strict):
    s = str(key)
    if s in labels:
        return s
    if strict:
        return None
    for prefix in _PREFIXES:
        if s.lower().startswith(prefix) and s[len(prefix) :] in labels:
            return s[len(prefix) :]
    return next((lab for lab in labels if lab.lower() == s.lower().lstrip("d")), None)


def _by_key(grads, conv):
    slots = conv.layout.slots
    names = {s.label: (str(s.path[-1][1]) if s.path[-1][0] in ("key", "attr") else s.label) for s in slots}
    inverse = {v: k for k, v in names.items()}
    try:
        keys = list(grads.keys())
    except Exception as e:
        return {}, [Finding("type", f"could not read the returned mapping's keys: {e!r}")]
    found, extra = {}, []
    for k in keys:
        hit = _key_for(k, list(inverse), conv.strict_keys)
        if hit is None or inverse[hit] in found:
            extra.append(k)
        else:
            found[inverse[hit]] = grads[k]
    missing = [lab for lab in names if lab not in found]
    findings = _key_findings(missing, extra, keys, list(names))
    if not conv.strict_keys and not missing:  # e.g. dA1, dZ2 returned alongside: not an error here
        also = f"also returned {', '.join(repr(k) for k in extra)}: not parameters, ignored"
        findings = [
            Finding("extra_key", also, level="note") if f.code == "extra_key" else f for f in findings
        ]
    return found, findings


def _key_findings(missing, extra, keys, names):
    findings = []
    hints = {repr(k): _key_for(k, names, strict=False) for k in extra}
    renames = [f"{k} for {h!r}" for k, h in hints.items() if h in missing]
    if missing:
        returned = ", ".join(repr(k) for k in keys) or "none"
        msg = f"no gradient for {', '.join(missing)} (keys returned: {returned})"
        if renames:
            msg += f"; name the keys as params names them: {', '.join(renames)}?"
        findings.append(Finding("missing_key", msg, tuple(missing)))
    if extra:
        unexpected = ", ".join(repr(k) for k in extra)
        msg = f"unexpected key(s) {unexpected}: the result should have exactly {', '.join(names)}"
        if renames:
            msg += f" ({', '.join(renames)}?)"
        findings.append(Finding("extra_key", msg))
    return findings


def _flatten(obj):
    if isinstance(obj, list | tuple) and not (obj and all(isinstance(v, int | float) for v in obj)):
        return [leaf for v in obj for leaf in _flatten(v)]
    return [obj]


def _by_position(grads, conv, sizes):
    slots = conv.layout.slots
    flat = _flatten(grads)
    if len(flat) != len(slots):
        what = f"{len(slots)} gradients ({', '.join(s.label for s in slots)})"
        return {}, [Finding("type", f"returned {len(flat)} values where {what} belong")]
    order = list(range(len(slots)))
    shapes = [getattr(v, "shape", None) for v in flat]
    by_shape = {}
    for j, shape in enumerate(shapes):
        for i, s in enumerate(slots):
            if shape is not None and shape == tuple(s.user_shape(sizes)) and i not in by_shape.values():
                by_shape[j] = i
                break
    if len(by_shape) == len(slots) and any(by_shape[j] != j for j in by_shape):
        order = [by_shape[j] for j in range(len(flat))]
    return {slots[i].label: flat[j] for j, i in enumerate(order)}, []
