"""The patterns a wrong gradient can match exactly, each a finder of the rule table (``rules.RULES``).

Each ``find(ctx, todo)`` returns ``Finding`` s for the still unexplained parameters ``todo`` (canonical
names, a set it removes the explained ones from), built from candidate gradients: another loss's, a
multiple of the right one, one with L2, with a subset of the samples, with another activation
derivative, and so on. No exception is swallowed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlpnn_jax.gradcheck import models
from mlpnn_jax.gradcheck.compare import fit_l2, matches
from mlpnn_jax.gradcheck.report import fmt


def verb(n):
    """'is' or 'are' for n things."""
    return "is" if n == 1 else "are"


def wrong_loss(ctx, todo):
    leaves = [k for k in ctx.keys if ctx.compared(k)]
    for head, loss in (pair for fam in models.LOSS_FAMILIES.values() for pair in fam):
        if (head, loss) == (ctx.net.head, ctx.net.loss) or (loss == "kl" and ctx.net.loss == "ce"):
            continue
        alt = dataclasses.replace(ctx.net, head=head, loss=loss, options=())
        cand = lambda p, alt=alt: models.backprop(alt, p.params, p.X, p.Y)  # noqa: E731
        if ctx.matches_on(leaves, cand) and _all_match(ctx, leaves, cand):
            what = loss if head == "softmax" else f"{loss} (sigmoid outputs)"
            todo.clear()
            text = f"these are the gradients of the {what!r} loss, not of {ctx.net.loss!r}"
            return [ctx.finding("wrong_loss", leaves, text)]
    return []


def _all_match(ctx, ks, cand):
    return all(
        matches(ctx.got[p.name][k], cand(p)[k])
        for p in ctx.problems
        for k in ks
        if ctx.got[p.name].get(k) is not None
    )


def l2(ctx, todo):
    """Every weight's gradient is the reference's plus c W (one c per problem); biases right."""
    weights = [k for k in ctx.keys if k[0] == "W"]
    if not set(weights) <= todo or any(k in todo for k in ctx.keys if k[0] == "b"):
        return []
    cs = {}
    for p in ctx.problems:
        if any(ctx.got[p.name].get(k) is None for k in weights):
            return []
        c = fit_l2(ctx.got[p.name], ctx.expected[p.name], p.params, weights)
        if not c:  # None (no fit) or 0 (no L2 at all)
            return []
        cs[p.name] = c
    todo.difference_update(weights)
    vals = sorted(set(f"{c:.6g}" for c in cs.values()))
    lam = vals[0] if len(vals) == 1 else " / ".join(f"{c:.6g} on {n}" for n, c in cs.items())
    text = (
        f"{ctx.names(weights)} include L2 regularisation with lambda = {lam} (the gradient of "
        f"lambda/2 sum W**2 added), which the reference loss does not include"
    )
    return [ctx.finding("l2", weights, text)]


_SCALE_FORMS = (  # factor(problem), what, why
    (lambda p: p.n, "off by a factor of n, the batch size", "a sum over the batch instead of a mean?"),
    (lambda p: 1 / p.n, "off by a factor of 1/n", "divided by the batch size twice?"),
    (
        lambda p: p.n / (p.n - 1) if p.n > 1 else None,
        "off by a factor of n/(n-1)",
        "divided by n - 1 instead of n?",
    ),
    (
        lambda p: p.K,
        "off by a factor of K, the number of classes",
        "a sum over the classes where there should be none?",
    ),
    (lambda p: 1 / p.K, "off by a factor of 1/K", "a mean over the classes instead of a sum?"),
    (
        lambda p: 1 / (p.n * p.K),
        "off by a factor of 1/(n K)",
        "a mean over all n x K entries instead of over the samples?",
    ),
    (lambda p: 2.0, "off by a factor of 2", "the 2 from differentiating a square, twice or not at all?"),
    (lambda p: 0.5, "off by a factor of 1/2", "a stray 1/2 (the 2 from differentiating a square)?"),
)


def scale(ctx, todo):
    groups = {}
    for k in [k for k in ctx.keys if k in todo]:
        factors = _factors(ctx, k)
        if factors is not None:
            found = _classify(ctx, factors)
            if found is not None:
                groups.setdefault(found, []).append(k)
    out = []
    for (code, message), ks in groups.items():
        out.append(ctx.finding(code, ks, f"{ctx.names(ks)}: {message}"))
        if code == "scale" and "wrong sign" in message:
            text = f"{ctx.names(ks)}: the wrong sign (minus a multiple of the gradient)"
            out.append(ctx.finding("sign", ks, text))
        todo.difference_update(ks)
    return out


def _factors(ctx, k):
    factors = {}
    for p in ctx.compared(k):
        g, e = ctx.got[p.name][k], ctx.expected[p.name][k]
        if ctx.cmp[p.name][k]["ok"]:
            factors[p.name] = 1.0
            continue
        if not np.any(g):
            factors[p.name] = 0.0
            continue
        ee = float(np.vdot(e, e))
        c = float(np.vdot(g, e)) / ee if ee > 0 else math.nan
        if not (math.isfinite(c) and c != 0 and matches(g, c * e)):
            return None
        factors[p.name] = c
    return factors


def _close(a, b, rtol=1e-6):
    return a is not None and b is not None and abs(a - b) <= rtol * max(abs(a), abs(b))


def _classify(ctx, factors):
    byname = {p.name: p for p in ctx.problems}
    bad = {n: c for n, c in factors.items() if not _close(c, 1.0)}
    right = [n for n in factors if n not in bad]
    right_txt = f"; right on {', '.join(right)}" if right else ""
    if bad and all(c == 0.0 for c in bad.values()):
        return "zero", f"all zeros (on {', '.join(bad)}{right_txt})"
    if not bad or any(c == 0.0 for c in bad.values()):
        return None
    if all(_close(c, -1.0) for c in bad.values()) and not right:
        return "sign", "the wrong sign (minus the gradient: t - p where p - t belongs, or gradient ascent?)"
    for sign, signed in ((1.0, ""), (-1.0, "minus ")):
        for f, what, why in _SCALE_FORMS:
            values = {n: f(byname[n]) for n in factors}
            if any(v is None for v in values.values()):
                continue
            if all(_close(factors[n], sign * v) for n, v in values.items()):
                vals = ", ".join(f"{values[n]:.6g} on {n}" for n in bad)
                extra = " and the wrong sign" if sign < 0 else ""
                return "scale", f"{signed}{what}{extra} ({vals}{right_txt}): {why}"
    cs = list(bad.values())
    if not right and all(_close(c, cs[0]) for c in cs):
        extra = " and the wrong sign" if cs[0] < 0 else ""
        return "scale", f"off by a constant factor of {abs(cs[0]):.6g}{extra} on every problem"
    vals = ", ".join(f"{c:.6g} on {n}" for n, c in bad.items())
    return (
        "scale",
        f"a multiple of the right gradient, by a factor that changes between problems ({vals}{right_txt})",
    )


def subset(ctx, todo):
    ks = [k for k in ctx.keys if k in todo]
    if not ks:
        return []
    descriptions, any_subset, uneven, right = [], False, False, []
    for p in ctx.problems:
        if not all(ctx.got[p.name][k] is not None for k in ks):
            continue
        if all(ctx.cmp[p.name][k]["ok"] for k in ks):
            right.append(p.name)
            continue
        G = ctx.cached(("per", p.name), lambda p=p: models.per_sample_gradients(ctx.net, p.params, p.X, p.Y))
        A = np.concatenate([G[k].reshape(p.n, -1) for k in ks], axis=1).T  # (P, n)
        y = np.concatenate([ctx.got[p.name][k].ravel() for k in ks])
        if A.shape[0] < p.n + 2:
            return []
        w, _, rank, _ = np.linalg.lstsq(A, y, rcond=None)
        desc = _weights(ctx, p, w, A, y, ks) if rank >= p.n else None
        if desc is None:
            return []
        descriptions.append(f"on {p.name} {desc[0]}")
        any_subset, uneven = any_subset or desc[1], uneven or desc[2]
    if not descriptions or not (any_subset or uneven):
        return []
    tail = f"; right on {', '.join(right)}" if right else ""
    todo.difference_update(ks)
    if any_subset:
        head = f"{ctx.names(ks)} {verb(len(ks))} the gradient of only part of the batch: "
        return [ctx.finding("subset_of_samples", ks, head + "; ".join(descriptions) + tail)]
    text = f"{ctx.names(ks)} weight the samples unevenly: {'; '.join(descriptions)}{tail}"
    return [ctx.finding("batch", ks, text)]


def _weights(ctx, p, w, A, y, ks):
    """(text, is a subset, is uneven) for per-sample weights w with y = A w; None if not exact."""
    n = p.n
    wmax = float(np.abs(w).max(initial=0.0))
    used = np.abs(w) > 1e-3 * wmax if wmax > 0 else np.zeros(n, bool)
    S = [int(i) for i in np.flatnonzero(used)]
    expected = np.concatenate([ctx.expected[p.name][k].ravel() for k in ks])
    if not np.any(y):
        return "no sample at all (all zeros)", True, False
    own = "that sample's own gradient" if len(S) == 1 else f"averaged over the {len(S)} used"
    base = 1 / n if ctx.net.reduction == "mean" else 1.0
    for v, how in (
        (base, f"divided by the whole batch's n = {n}"),
        (1 / max(len(S), 1), own),
        (1.0, "summed, not divided by n"),
    ):
        if matches(y, A @ np.where(used, v, 0.0)):
            return None if len(S) == n else (f"{_which(S, n)}, {how}", True, False)
    if matches(y, A @ w) and not matches(y, expected):
        shown = "weights " + ", ".join(f"{float(v):.6g}" for v in w[:8]) + (", ..." if len(w) > 8 else "")
        if len(S) < n:
            return f"{_which(S, n)}, weighted unevenly ({shown})", True, True
        return f"every sample, weighted unevenly ({shown}; 1/n = {1 / n:.6g} each is right)", False, True
    return None


def _which(S, n):
    if not S:
        return "no sample at all"
    if S == [0]:
        return "only the first sample (index 0)"
    if [n - 1] == S:
        return f"only the last sample (index {n - 1})"
    if list(range(n - 1)) == S:
        return f"all but the last sample (index {n - 1} is dropped)"
    if list(range(1, n)) == S:
        return "all but the first sample (index 0 is dropped)"
    if list(range(len(S))) == S:
        return f"only the first {len(S)} samples"
    if list(range(n - len(S), n)) == S:
        return f"only the last {len(S)} samples"
    missing = sorted(set(range(n)) - set(S))
    return (
        f"{len(S)} of the {n} samples (missing {missing})"
        if len(missing) <= len(S)
        else f"only samples {S} of {n}"
    )


DERIVATIVES = (  # (what was used, function of (A, Z), why)
    ("1 (none at all)", lambda A, Z: np.ones_like(A), "(dZ = dA: multiply by the derivative)"),
    ("A1", lambda A, Z: A, "(A1 where 1 - A1**2 belongs)"),
    ("1 - A1", lambda A, Z: 1 - A, "(the square is missing)"),
    ("1 + A1**2", lambda A, Z: 1 + A**2, "(a sign slip)"),
    ("1 - Z1**2", lambda A, Z: 1 - Z**2, "(the pre-activation Z1 where A1 = tanh(Z1) belongs)"),
    ("1 - tanh(A1)**2", lambda A, Z: 1 - np.tanh(A) ** 2, "(tanh applied to A1 again)"),
    ("A1 (1 - A1)", lambda A, Z: A * (1 - A), "(the sigmoid's derivative)"),
    ("(Z1 > 0)", lambda A, Z: (Z > 0).astype(float), "(the ReLU's derivative)"),
    ("(1 - A1**2)**2", lambda A, Z: (1 - A**2) ** 2, "(applied twice)"),
    ("A1**2", lambda A, Z: A**2, "(the 1 - is missing)"),
    (
        "the sigmoid's derivative of A1",
        lambda A, Z: models._sigmoid(A) * (1 - models._sigmoid(A)),
        "(sigmoid applied to A1 again)",
    ),
    ("Z1 (1 - Z1)", lambda A, Z: Z * (1 - Z), "(the pre-activation Z1 where A1 = sigmoid(Z1) belongs)"),
    ("(A1 > 0)", lambda A, Z: (A > 0).astype(float), "(from A1: right for ReLU)"),
)
_RIGHT = {"tanh": "1 - A1**2", "sigmoid": "A1 (1 - A1)", "relu": "(Z1 > 0)", "identity": "1 (none at all)"}


def activation(ctx, todo):
    hidden = [k for k in ctx.keys if k in todo and int(k[1:]) < _L(ctx)]
    if not hidden or len(hidden) != len([k for k in ctx.keys if k in todo and int(k[1:]) < _L(ctx)]):
        return []
    right = _RIGHT.get(ctx.net.activation, "its derivative")
    for what, deriv, why in DERIVATIVES:
        if what == right:
            continue
        tag = ("deriv", what)
        cand = lambda p, d=deriv, t=tag: ctx.candidate(p, t, derivative=d)  # noqa: E731
        if ctx.matches_on(hidden, cand):
            todo.difference_update(hidden)
            act = ctx.net.activation
            text = (
                f"{ctx.names(hidden)} match a backprop whose {act} derivative was {what} instead of {right} "
            )
            text += why
            return [ctx.finding("activation", hidden, text)]
    return []


def _L(ctx):
    return models.layers(ctx.problems[0].params)


def early_update(ctx, todo):
    L = _L(ctx)
    ks = [k for k in (f"W{L - 1}", f"b{L - 1}") if k in todo and k in ctx.keys]
    if L < 2 or not ks:
        return []
    rates = []
    for p in [p for p in ctx.problems if all(ctx.got[p.name][k] is not None for k in ks)]:
        unit = {**p.params, f"W{L}": p.params[f"W{L}"] - ctx.expected[p.name][f"W{L}"]}
        moved = ctx.candidate(p, "unit", weights=unit)  # the hidden gradients after a unit-rate update
        f = np.concatenate([(moved[k] - ctx.expected[p.name][k]).ravel() for k in ks])
        e = np.concatenate([ctx.expected[p.name][k].ravel() for k in ks])
        g = np.concatenate([ctx.got[p.name][k].ravel() for k in ks])
        ff = float(f @ f)
        c = float((g - e) @ f) / ff if ff > 0 else 0.0
        if not (c != 0 and matches(g, e + c * f)):
            return []
        rates.append(c)
    if not rates or not all(_close(c, rates[0]) for c in rates):
        return []
    todo.difference_update(ks)
    w = ctx.label(f"W{L}")
    text = (
        f"{ctx.names(ks)} match a backprop that sent the error back through {w} - {rates[0]:.6g} * d{w}, "
        f"{w} after its update (learning rate {rates[0]:.6g}): compute every gradient before updating "
        "any weight"
    )
    return [ctx.finding("early_update", ks, text)]


def layer_input(ctx, todo):
    """The last weight's gradient taken with the pre-activation Z where the activation A belongs."""
    L = _L(ctx)
    k = f"W{L}"
    if k not in todo or L < 2:
        return []

    def cand(p):
        Zs, _ = models.forward(ctx.net, p.params, p.X)
        dZ = models.head_loss(ctx.net, Zs[-1], models.targets(p.Y, p.K))[1]
        return Zs[-2].T @ dZ * (1 / p.n if ctx.net.reduction == "mean" else 1.0)

    probs = ctx.compared(k)
    if not probs or not all(matches(ctx.got[p.name][k], cand(p)) for p in probs):
        return []
    todo.discard(k)
    act = ctx.net.activation
    text = (
        f"{ctx.label(k)} matches Z{L - 1}.T @ dZ{L} / n: the pre-activation Z{L - 1} where the layer's input "
        f"A{L - 1} = {act}(Z{L - 1}) belongs"
    )
    return [ctx.finding("layer_input", [k], text)]


def few_entries(ctx, todo):
    out = []
    for k in [k for k in ctx.keys if k in todo]:
        found, failing = {}, ctx.failing(k)
        for p in failing:
            c = ctx.cmp[p.name][k]
            bad = np.argwhere(c["bad"])
            if len(bad) > 3 or 3 * len(bad) > c["bad"].size:
                break
            e, g = ctx.expected[p.name][k], ctx.got[p.name][k]
            for idx in map(tuple, bad):
                rel = abs(g[idx] - e[idx]) / max(abs(e[idx]), abs(g[idx]))
                found.setdefault(tuple(map(int, idx)), []).append(f"{fmt(rel)} on {p.name}")
        else:
            if failing:
                which = "entry" if len(found) == 1 else "entries"
                parts = [f"{list(idx)} (relative error {', '.join(v)})" for idx, v in found.items()]
                text = (
                    f"only {which} {'; '.join(parts)} of {ctx.label(k)} {verb(len(found))} wrong, "
                    "the rest match"
                )
                out.append(ctx.finding("few_entries", [k], text))
                todo.discard(k)
    return out
