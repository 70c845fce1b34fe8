"""The rule table: every code a check can report, what it means, and what finds it, in the order run.

A ``Rule``'s ``stage`` says where its code comes from: "result" (reading what the code returned:
``result.parse`` and ``compare``, then the saturation and float32 rules here), "pattern" (a
finder in ``patterns``, run on the still unexplained wrong parameters, needing the reference network
unless ``needs_net`` is False), "summary" (what the patterns left: the layers, the batch, a plain
mismatch), "reference" (the reference's own check, in ``reference``) and "note" (never fails the check).
Rules without a ``find`` are emitted by the one ``found_by`` names. ``run`` applies the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from mlpnn_jax.gradcheck import models, patterns
from mlpnn_jax.gradcheck.compare import matches
from mlpnn_jax.gradcheck.report import Finding, fmt


@dataclasses.dataclass(frozen=True)
class Rule:
    code: str
    explains: str
    stage: str
    find: Callable | None = None  # (Context, todo) -> [Finding]
    needs_net: bool = True
    found_by: str = ""


class Context:
    """What the rules look at: problems, expected and returned gradients (canonical keys), the
    comparisons, the net, the parameters' labels; per problem the statuses and dtypes, and the
    findings of reading the results (``findings``), which the saturation rule reclassifies."""

    def __init__(self, problems, expected, got, cmp, net, labels, status=None, dtypes=None, findings=()):
        self.problems, self.expected, self.got, self.cmp = problems, expected, got, cmp
        self.net, self.labels = net, labels
        self.keys = list(labels)
        none = {p.name: dict.fromkeys(labels) for p in problems}
        self.status = status or {p.name: dict.fromkeys(labels, "ok") for p in problems}
        self.dtypes = dtypes or none
        self.findings = list(findings)
        self.found = []  # what the rules found so far, in table order
        self._cache = {}

    def label(self, k):
        return self.labels[k]

    def names(self, ks):
        ks = [self.label(k) for k in self.keys if k in ks]
        return ks[0] if len(ks) == 1 else ", ".join(ks[:-1]) + " and " + ks[-1]

    def finding(self, code, ks, message):
        """An error Finding about the canonical parameters ks."""
        return Finding(code, message, tuple(self.label(k) for k in ks))

    def compared(self, k):
        return [p for p in self.problems if self.cmp[p.name].get(k) is not None]

    def failing(self, k):
        return [p for p in self.compared(k) if not self.cmp[p.name][k]["ok"]]

    def cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def candidate(self, p, tag, **kw):
        """models.backprop of the net on p with a variation (memoised by tag)."""
        return self.cached((p.name, tag), lambda: models.backprop(self.net, p.params, p.X, p.Y, **kw))

    def matches_on(self, ks, cand, probs=None):
        """True when cand (problem -> dict) matches got for ks on every problem where it differs from
        the expected gradient, and there is at least one; None when it never differs."""
        verdicts = []
        for p in probs or self.problems:
            if any(self.got[p.name].get(k) is None for k in ks):
                continue
            c = cand(p)
            if c is None:
                return False
            if all(matches(self.expected[p.name][k], c[k]) for k in ks):
                continue
            verdicts.append(all(matches(self.got[p.name][k], c[k]) for k in ks))
        return all(verdicts) if verdicts else None


def run(ctx):
    """Apply the table to ctx: the Findings of its rules, in table order (``ctx.status`` and
    ``ctx.findings`` reclassified where only the saturated units overflow)."""
    todo = {k for k in ctx.keys if ctx.failing(k)}
    with np.errstate(all="ignore"):
        for rule in RULES:
            if rule.find is None or (rule.needs_net and ctx.net is None):
                continue
            if rule.stage == "pattern" and not todo:
                continue
            ctx.found += rule.find(ctx, todo)
    return ctx.found


# ------------------------------------------------------------------- the result's rules, run here


def saturation(ctx, todo):
    """NaN or inf only where the units saturate is a note: the user's arithmetic overflows there
    (exp without the max subtracted, 1 / (1 - a)), which finite differences of their own loss
    would not call wrong; the unsaturated problems still judge the formulas."""
    for p in [p for p in ctx.problems if p.regime == "saturated"]:
        others = [q for q in ctx.problems if q is not p]
        status = ctx.status[p.name]
        moved = {
            k
            for k, v in status.items()
            if v == "nonfinite" and all(ctx.status[q.name][k] != v for q in others)
        }
        ctx.status[p.name] = {k: "saturated" if k in moved else v for k, v in status.items()}
        names = {ctx.label(k) for k in moved}
        ctx.findings = [
            dataclasses.replace(f, code="saturation", level="note")
            if f.code == "nonfinite" and f.params[0] in names and f.problems == (p.name,)
            else f
            for f in ctx.findings
        ]
    return []


def narrow(ctx, todo):
    """Float32 (or narrower) gradients: one finding, and those that agree to float32 precision are
    taken out of ``todo`` (the formulas look right)."""
    errs, types, on = {}, set(), set()
    for k in ctx.keys:
        hits = [p for p in ctx.problems if ctx.status[p.name][k] == "dtype"]
        if hits:
            errs[k] = max(ctx.cmp[p.name][k]["max_rel_err"] for p in hits)
            types.update(ctx.dtypes[p.name][k] for p in hits)
            on.update(p.name for p in hits)
    if not errs:
        return []
    worst = max(errs.values())
    f32 = {k for k, e in errs.items() if e <= 1e-4}
    todo.difference_update(f32)
    verdict = (
        f"apart from that they agree to {fmt(worst)} relative, about float32 rounding: the formulas "
        "look right"
        if len(f32) == len(errs)
        else f"and they are off by up to {fmt(worst)} relative, more than float32 rounding explains"
    )
    message = (
        f"{ctx.names(errs)}: {'/'.join(sorted(types))}, whose rounding (6e-8 relative per operation) this "
        f"float64 check cannot tell apart from a bug; compute in float64 ({verdict})"
        + where(sorted(on), [p.name for p in ctx.problems])
    )
    return [ctx.finding("dtype", list(errs), message)]


def where(names, order):
    """' [on n1-small, n7-small]', or '' when on every problem."""
    if len(names) == len(order):
        return ""
    return f" [on {', '.join(sorted(names, key=order.index))}]"


# ------------------------------------------------------------------------- the summary's rules


def layer(ctx, todo):
    """The wrong gradients confined to some layers (what that implies), where the results were read
    without error and every parameter compared."""
    failing = {k for k in ctx.keys if ctx.failing(k)}
    compared = all(ctx.got[p.name][k] is not None for p in ctx.problems for k in ctx.keys)
    errors = any(f.level == "error" for f in ctx.findings) or any(f.code == "dtype" for f in ctx.found)
    if not failing or not compared or errors or (failing == set(ctx.keys) and todo != failing):
        return []
    message = _layer_message(ctx, failing, todo)
    return [ctx.finding("layer", sorted(failing, key=ctx.keys.index), message)] if message else []


def batch(ctx, todo):
    """Right on the one-sample problem, wrong on the batches."""
    n1 = ctx.problems[0]
    if not todo or not all(ctx.cmp[n1.name][k] is not None and ctx.cmp[n1.name][k]["ok"] for k in ctx.keys):
        return []
    message = (
        f"right on {n1.name} (one sample) but wrong on larger batches: the mistake is in how the samples "
        "are combined (a sum or mean over the wrong axis, indexing, or broadcasting over the batch)"
    )
    return [ctx.finding("batch", sorted(todo, key=ctx.keys.index), message)]


def mismatch(ctx, todo):
    """What no pattern, layer or batch finding explains."""
    mentioned = {
        k for f in ctx.found if f.code in ("layer", "batch") for k in ctx.keys if ctx.label(k) in f.params
    }
    out = []
    for k in sorted(todo - mentioned, key=ctx.keys.index):
        worst = max(ctx.failing(k), key=lambda p: ctx.cmp[p.name][k]["max_entry_rel_err"])
        c = ctx.cmp[worst.name][k]
        message = (
            f"{ctx.label(k)} differs from the expected gradient (worst entry {list(c['worst_index'])} on "
            f"{worst.name}, relative error {c['max_entry_rel_err']:.1e}); no simple pattern (scale, sign, "
            "subset of samples, activation derivative) explains it"
        )
        out.append(ctx.finding("mismatch", [k], message))
    return out


_TWO_LAYERS = {  # the wrong parameters of a 2-layer network -> what that implies (after "head: ")
    frozenset({"W1", "b1"}): "the error is in the backward pass through the hidden layer (the activation's "
    "derivative, or dA1 = dZ2 @ W2.T), since dZ2 itself is right",
    frozenset({"W1"}): "dZ1 is right ({b1} is), so the mistake is in dW1 = X.T @ dZ1 / n",
    frozenset({"b1"}): "dZ1 is right ({W1} is), so the mistake is in db1 = dZ1.sum(axis=0) / n",
    frozenset({"W1", "W2"}): "the errors dZ are right (the biases are); the mistake is in the products with "
    "the layer inputs (X.T @ dZ1, A1.T @ dZ2)",
    frozenset({"b1", "b2"}): "the errors dZ are right (the weights are); the mistake is in the biases' sums "
    "over the batch",
    **dict.fromkeys(
        (frozenset({"W2", "b2"}), frozenset({"W2"}), frozenset({"b2"})),
        "since W1 and b1 are right, the error dZ2 sent back to the hidden layer is right; the mistake is "
        "in the output layer's own gradients (dW2 = A1.T @ dZ2 / n, db2 = dZ2.sum(axis=0) / n)",
    ),
}
_ALL_WRONG = (
    "every parameter is wrong: the mistake is probably where the backward pass starts, in dZ2 = dL/dZ2 "
    "(the loss's gradient with respect to the logits), and propagates to every layer"
)


def _layer_message(ctx, failing, unexplained):
    right = [k for k in ctx.keys if k not in failing]
    wrong = [k for k in ctx.keys if k in failing]
    head = (
        f"{ctx.names(wrong)} {patterns.verb(len(wrong))} wrong, {ctx.names(right)} "
        f"{patterns.verb(len(right))} right"
        if right
        else ""
    )
    if set(ctx.keys) != {"W1", "b1", "W2", "b2"}:
        if not right:
            return None
        wrong_layers = sorted({int(k[1:]) for k in failing})
        which = ", ".join(map(str, wrong_layers))
        plural = "s" if len(wrong_layers) > 1 else ""
        return f"{head}: the wrong gradients are in layer{plural} {which} (1 = the input layer)"
    if set(failing) == set(ctx.keys) and unexplained == failing:
        return _ALL_WRONG
    implied = _TWO_LAYERS.get(frozenset(failing))
    return None if implied is None else f"{head}: " + implied.format(**ctx.labels)


_READ = "result.parse"
RULES = (
    # the result's structure
    Rule(
        "type",
        "the function did not return gradients, or a value is not a numeric array",
        "result",
        found_by=_READ,
    ),
    Rule("missing_key", "a parameter has no gradient in the result", "result", found_by=_READ),
    Rule("extra_key", "the result has a key that is not a parameter", "result", found_by=_READ),
    Rule("shape", "a gradient has the wrong shape", "result", found_by="compare.shape_finding"),
    Rule("transposed", "a gradient has the transposed shape", "result", found_by="compare.shape_finding"),
    Rule("nonfinite", "a gradient has NaN or inf entries", "result", found_by="compare.nonfinite"),
    Rule(
        "saturation",
        "a gradient is NaN or inf only where the units saturate: the code overflows there (note)",
        "result",
        saturation,
        needs_net=False,
    ),
    Rule(
        "dtype", "a gradient is float32 (or narrower): compute in float64", "result", narrow, needs_net=False
    ),
    # the values
    Rule("wrong_loss", "the gradients are those of another loss", "pattern", patterns.wrong_loss),
    Rule(
        "l2",
        "the gradient includes L2 regularisation that the loss does not (or with another lambda)",
        "pattern",
        patterns.l2,
        needs_net=False,
    ),
    Rule(
        "scale",
        "a gradient is off by a constant factor (e.g. n: a sum instead of a mean)",
        "pattern",
        patterns.scale,
        needs_net=False,
    ),
    Rule("sign", "a gradient has the wrong sign", "pattern", found_by="patterns.scale"),
    Rule("zero", "a gradient is all zeros", "pattern", found_by="patterns.scale"),
    Rule("subset_of_samples", "a gradient uses only some samples of the batch", "pattern", patterns.subset),
    Rule("activation", "a hidden layer uses the wrong activation derivative", "pattern", patterns.activation),
    Rule(
        "early_update",
        "a weight was updated before the error was sent back through it",
        "pattern",
        patterns.early_update,
    ),
    Rule(
        "layer_input",
        "a weight's gradient uses the pre-activation where the activation belongs",
        "pattern",
        patterns.layer_input,
    ),
    Rule("few_entries", "only a few entries are wrong", "pattern", patterns.few_entries, needs_net=False),
    # what the patterns left
    Rule(
        "layer",
        "the wrong gradients are confined to some layers (which, and what it implies)",
        "summary",
        layer,
        needs_net=False,
    ),
    Rule(
        "batch",
        "right for one sample, wrong for a batch (the samples are combined wrongly)",
        "summary",
        batch,
        needs_net=False,
        found_by="also patterns.subset (samples weighted unevenly)",
    ),
    Rule("mismatch", "a gradient is wrong in no recognised pattern", "summary", mismatch, needs_net=False),
    Rule(
        "reference",
        "the reference failed its finite-difference check (a bug in the checker)",
        "reference",
        found_by="reference.self_check",
    ),
    # notes (never fail the check)
    Rule("skipped", "parts of the file the checker did not load (note)", "note", found_by="check"),
    Rule(
        "l2_note",
        "the gradient includes L2 regularisation, as the loss does (note)",
        "note",
        found_by="reference.choose",
    ),
    Rule(
        "in_place",
        "the code updates the params in place; the gradients are read off the update (note)",
        "note",
        found_by="runner.invoke",
    ),
    Rule(
        "not_array",
        "a gradient is a list or tuple rather than an array (note)",
        "note",
        found_by="compare.as_array",
    ),
    Rule("mutation", "the function modified its inputs in place (note)", "note", found_by="runner.invoke"),
    Rule("warning", "the function raised warnings (note)", "note", found_by="runner.invoke"),
)
CODES = {r.code: r.explains for r in RULES}
