"""Comparing a returned gradient with the expected one: the per-entry rule, shapes, types, summaries."""

from __future__ import annotations

import math
import warnings

import numpy as np

from mlpnn_jax.gradcheck.report import FLOOR, RTOL, Finding, ParamCheck

FIT_RTOL = 1e-6  # the same rule, looser, for the diagnoses' exact-pattern matches


def entry_errors(got, expected, floor=FLOOR):
    """Per-entry |got - expected| / max(|got|, |expected|, floor * scale) (zeros when all are zero)."""
    a, b = np.abs(got), np.abs(expected)
    scale = max(float(a.max(initial=0.0)), float(b.max(initial=0.0)))
    if scale == 0.0:
        return np.zeros(got.shape)
    denom = np.maximum(np.maximum(a, b), floor * scale)
    err = np.abs(got - expected) / denom
    return np.where(np.isnan(err), np.inf, err)


def matches(got, candidate, rtol=FIT_RTOL):
    return got.shape == candidate.shape and float(entry_errors(got, candidate).max(initial=0.0)) <= rtol


def fit_l2(got, ref, params, keys=None):
    """The c >= 0 with got = ref + c W on every weight of ``keys`` (default: ref's) and got = ref on
    every bias, fitted by least squares (c = d.W / W.W over the weights), or None when there is none."""
    keys = list(ref) if keys is None else keys
    weights = [k for k in keys if k[0] == "W"]
    W = np.concatenate([params[k].ravel() for k in weights])
    d = np.concatenate([(got[k] - ref[k]).ravel() for k in weights])
    c = float(d @ W) / float(W @ W)
    c = 0.0 if abs(c) < 1e-12 else c  # rounding, not a lambda
    if c < 0 or not all(matches(got[k], ref[k] + c * params[k] * (k[0] == "W")) for k in keys):
        return None
    return c


def compare(got, expected, rtol=RTOL):
    """max abs / rel errors, the worst entry under the pass rule, and whether every entry passes."""
    with np.errstate(all="ignore"):
        diff = np.abs(got - expected)
        scale = max(float(np.abs(got).max(initial=0.0)), float(np.abs(expected).max(initial=0.0)))
        entry = entry_errors(got, expected)
    worst = np.unravel_index(int(np.argmax(entry)), entry.shape) if entry.size else ()
    max_abs = float(diff.max(initial=0.0))
    return {
        "max_abs_err": max_abs,
        "max_rel_err": (max_abs / scale if scale > 0 else 0.0) if np.isfinite(scale) else math.inf,
        "max_entry_rel_err": float(entry.max(initial=0.0)),
        "worst_index": tuple(int(i) for i in worst),
        "bad": entry > rtol,
        "entries": entry,
        "ok": bool(float(entry.max(initial=0.0)) <= rtol),
    }


def a_(word):
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def describe_value(v):
    """A value in a few words: 'None', 'a list of 4 items', 'an ndarray of shape (3,)'."""
    if v is None:
        return "None"
    name = type(v).__name__
    if isinstance(v, str | bytes):
        text = repr(v)
        return f"{a_(name)} {text[:40] + '...' if len(text) > 40 else text}"
    if isinstance(v, list | tuple):
        return f"{a_(name)} of {len(v)} items"
    shape = getattr(v, "shape", None)
    if isinstance(shape, tuple):
        return f"{a_(name)} of shape {shape}"
    return a_(name)


def as_array(name, value):
    """(float array or None, [Finding]) for one returned gradient."""
    if isinstance(value, str | bytes) or value is None:
        return None, [Finding("type", f"{name} is {describe_value(value)}, not a numeric array", (name,))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        message = f"{name} ({describe_value(value)}) is not an array: {type(e).__name__}: {e}"
        return None, [Finding("type", message, (name,))]
    if arr.dtype.kind not in "fiu":
        message = f"{name} ({describe_value(value)}) has dtype {arr.dtype}, not a real number type"
        return None, [Finding("type", message, (name,))]
    notes = []
    if isinstance(value, list | tuple):
        message = f"{name} is a {type(value).__name__}, not a numpy array; compared as np.asarray({name})"
        notes.append(Finding("not_array", message, (name,), "note"))
    return arr, notes


def nonfinite(name, arr64):
    """The Finding for NaN or inf entries, or None."""
    bad = ~np.isfinite(arr64)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    counts = f"{int(np.isnan(arr64).sum())} NaN and {int(np.isinf(arr64).sum())} inf"
    return Finding(
        "nonfinite", f"{name} has {counts} entries of {arr64.size} (the first at {list(first)})", (name,)
    )


def shape_finding(name, got, problem, expected, role=None):
    """(code, message) for a gradient whose shape is wrong; ``expected`` in the user's layout.

    ``role`` is "first" or "last" for the first or last weight matrix (for the input/activation hints).
    """
    exp = expected.shape
    g_sym, e_sym = problem.sym(got.shape), problem.sym(exp)
    head = f"{name} has shape {g_sym} = {tuple(got.shape)}, expected {e_sym} = {tuple(exp)}"
    if got.ndim == 2 and got.shape == exp[::-1] and got.shape != exp:
        same = matches(got.T.astype(np.float64), expected, RTOL)
        tail = (
            "; its transpose matches the expected gradient" if same else "; even transposed it does not match"
        )
        return (
            "transposed",
            f"{name} is transposed: its shape is {g_sym} = {tuple(got.shape)}, expected {e_sym} = "
            f"{tuple(exp)}{tail}",
        )
    return "shape", head + _shape_hint(got, problem, expected, role)


def _shape_hint(got, problem, expected, role):
    exp, n, hints = expected.shape, problem.n, []
    sizes = problem.sizes
    if got.ndim == len(exp) + 1 and got.shape[0] == n and got.shape[1:] == exp and n > 1:
        hints.append("the batch axis n was not reduced (sum over axis 0, divided by n)")
        if matches(got.sum(0), expected):
            hints.append("its sum over axis 0 matches")
        elif matches(got.mean(0), expected):
            hints.append("its mean over axis 0 matches (the per-sample rows were not divided by n)")
    elif len(exp) == 1 and got.shape == (n,) and n > 1:
        hints.append("reduced over the wrong axis (axis=1 where the batch is axis 0?)")
    elif got.size == expected.size and got.shape != exp:
        if got.squeeze().shape == tuple(d for d in exp if d != 1) and matches(got.reshape(exp), expected):
            hints.append("an extra axis of length 1 (keepdims=True?); its values match once squeezed")
        else:
            hints.append("the same number of entries, arranged differently")
    elif got.ndim == 0:
        hints.append("a single number where an array belongs")
    elif role == "last" and len(sizes) == 3 and sorted(got.shape) == sorted((sizes[0], sizes[-1])):
        hints.append("the shape of X.T @ dZ2: the network's input X where the hidden activation A1 belongs?")
    elif role == "first" and len(sizes) == 3 and got.shape == (sizes[1], sizes[1]):
        hints.append("the shape of A1.T @ dZ1: the hidden activation A1 where the input X belongs?")
    return ": " + "; ".join(hints) if hints else ""


def _rounded(x):
    """An entry's error to 3 digits for the JSON report; None where it is not finite."""
    return float(f"{x:.3g}") if math.isfinite(x) else None


_STATUS_ORDER = (
    "missing",
    "type",
    "transposed",
    "shape",
    "nonfinite",
    "mismatch",
    "dtype",
    "saturated",
    "ok",
)


def param_check(name, problems, cmp, shapes, dtypes, status, slot):
    """The ParamCheck of one parameter from its per-problem comparisons; ``slot`` (a layouts.Slot) gives
    its shape and puts the per-entry errors in the user's layout."""
    per, worst_status, errs, worst, got_syms = [], "ok", [], None, []
    for p in problems:
        c, st, shape = cmp[p.name][name], status[p.name][name], shapes[p.name][name]
        if c is not None and not c["ok"] and st == "ok":
            st = "mismatch"
        if _STATUS_ORDER.index(st) < _STATUS_ORDER.index(worst_status):
            worst_status = st
        if shape is not None:
            got_syms.append((p.n > 1, p.sym(shape)))
        if c is not None:
            if not errs or c["max_entry_rel_err"] > max(e[2] for e in errs):
                worst = (p.name, c["worst_index"])
            errs.append((c["max_abs_err"], c["max_rel_err"], c["max_entry_rel_err"]))
        per.append(_problem_entry(p, c, st, shape, dtypes[p.name][name], slot))
    big = problems[-1]
    return ParamCheck(
        name=name,
        expected_shape=big.sym(slot.user_shape(big.sizes)),
        got_shape=None if worst_status == "missing" else _got_symbol(got_syms),
        status=worst_status,
        max_abs_err=max(e[0] for e in errs) if errs else None,
        max_rel_err=max(e[1] for e in errs) if errs else None,
        max_entry_rel_err=max(e[2] for e in errs) if errs else None,
        worst=worst,
        per_problem=tuple(per),
    )


def _problem_entry(p, c, st, shape, dtype, slot):
    """One problem's entry of a ParamCheck's ``per_problem`` (``c``: its comparison, or None)."""
    entry = {
        "problem": p.name,
        "status": st,
        "expected_shape": list(slot.user_shape(p.sizes)),
        "got_shape": None if shape is None else list(shape),
        "dtype": dtype,
        "ok": False,
    }
    if c is not None:
        entry.update({k: c[k] for k in ("max_abs_err", "max_rel_err", "max_entry_rel_err")})
        entry.update(worst_index=list(c["worst_index"]), ok=c["ok"] and st == "ok")
        entry["entry_errors"] = np.vectorize(_rounded, otypes=[object])(slot.to_user(c["entries"])).tolist()
    return entry


def _got_symbol(got_syms):
    """The returned shapes in letters ("(n, K) / ..."), or None: n1-small cannot tell n from 1, so its
    shapes show only alone."""
    uniq = list(dict.fromkeys(s for big, s in got_syms if big or not any(b for b, _ in got_syms)))
    return " / ".join(uniq) if uniq else None
