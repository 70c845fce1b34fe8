"""From the per-problem comparisons to the Report's diagnoses: findings merged, rules run, verdict."""

from __future__ import annotations

import numpy as np

from mlpnn_jax.gradcheck import rules
from mlpnn_jax.gradcheck.report import Diagnosis, fmt


def where(names, order):
    if len(names) == len(order):
        return ""
    return f" [on {', '.join(sorted(names, key=order.index))}]"


def merge_findings(findings, order, labels):
    """One error diagnosis per code (messages joined, parameters united), then the notes."""
    merged, notes = {}, {}
    for (code, params, level, _), (message, on) in findings.items():
        if level == "error":
            entry = merged.setdefault(code, ([], []))
            entry[0].append(message + where(on, order))
            entry[1].extend(params)
        else:
            notes.setdefault(code, []).append((message + where(on, order), params))
    out = [Diagnosis(code, "; ".join(m), _ordered(ps, labels)) for code, (m, ps) in merged.items()]
    return out, notes


def _ordered(params, labels):
    names = list(labels.values())
    return tuple(p for p in names if p in params)


_NOTE_PREFIX = {
    "warning": "the function warned: ",
    "saturation": "NaN or inf only where the units saturate (your arithmetic overflows there, e.g. exp "
    "without subtracting the max, or 1 / (1 - a); the formulas are judged on the other problems): ",
}


def note_diagnoses(notes, labels):
    out = []
    for code, items in notes.items():
        shown = "; ".join(m for m, _ in items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        prefix = _NOTE_PREFIX.get(code, "")
        params = _ordered([k for _, ps in items for k in ps], labels)
        out.append(Diagnosis(code, f"{prefix}{shown}{more}", params, "note"))
    return out


def narrow(problems, cmp, dtypes, status, labels):
    """The float32 diagnosis (or None) and the parameters that agree to float32 precision."""
    errs, types, on = {}, set(), set()
    for k in labels:
        hits = [p for p in problems if status[p.name][k] == "dtype"]
        if hits:
            errs[k] = max(cmp[p.name][k]["max_rel_err"] for p in hits)
            types.update(dtypes[p.name][k] for p in hits)
            on.update(p.name for p in hits)
    if not errs:
        return None, set()
    worst = max(errs.values())
    f32 = {k for k, e in errs.items() if e <= 1e-4}
    verdict = (
        f"apart from that they agree to {fmt(worst)} relative, about float32 rounding: the formulas "
        "look right"
        if len(f32) == len(errs)
        else f"and they are off by up to {fmt(worst)} relative, more than float32 rounding explains"
    )
    names = [labels[k] for k in errs]
    text = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    message = (
        f"{text}: {'/'.join(sorted(types))}, whose rounding (6e-8 relative per operation) this float64 "
        "check cannot "
        f"tell apart from a bug; compute in float64 ({verdict})"
        + where(sorted(on), [p.name for p in problems])
    )
    return Diagnosis("dtype", message, tuple(names)), f32


def run_rules(ctx, todo):
    out = []
    with np.errstate(all="ignore"):
        for rule in rules.RULES:
            if not todo:
                break
            if rule.needs_net and ctx.net is None:
                continue
            out += rule.find(ctx, todo)
    return out


def layer_message(ctx, failing, unexplained):
    keys = ctx.keys
    right = [k for k in keys if k not in failing]
    wrong = [k for k in keys if k in failing]
    head = (
        f"{ctx.names(wrong)} {rules.verb(len(wrong))} wrong, {ctx.names(right)} "
        f"{rules.verb(len(right))} right"
        if right
        else ""
    )
    if set(keys) != {"W1", "b1", "W2", "b2"}:
        return _deep_layer_message(ctx, failing, head) if right else None
    L = ctx.label
    table = {
        frozenset(
            {"W1", "b1"}
        ): f"{head}: the error is in the backward pass through the hidden layer (the activation's "
        "derivative, or dA1 = dZ2 @ W2.T), since dZ2 itself is right",
        frozenset({"W1"}): f"{head}: dZ1 is right ({L('b1')} is), so the mistake is in dW1 = X.T @ dZ1 / n",
        frozenset(
            {"b1"}
        ): f"{head}: dZ1 is right ({L('W1')} is), so the mistake is in db1 = dZ1.sum(axis=0) / n",
        frozenset({"W2", "b2"}): _output_message(head),
        frozenset({"W2"}): _output_message(head),
        frozenset({"b2"}): _output_message(head),
        frozenset(
            {"W1", "W2"}
        ): f"{head}: the errors dZ are right (the biases are); the mistake is in the products with the "
        "layer inputs (X.T @ dZ1, A1.T @ dZ2)",
        frozenset(
            {"b1", "b2"}
        ): f"{head}: the errors dZ are right (the weights are); the mistake is in the biases' sums over "
        "the batch",
    }
    if set(failing) == set(keys) and unexplained == failing:
        return (
            "every parameter is wrong: the mistake is probably where the backward pass starts, in dZ2 = "
            "dL/dZ2 (the "
            "loss's gradient with respect to the logits), and propagates to every layer"
        )
    return table.get(frozenset(failing))


def _output_message(head):
    return (
        f"{head}: since W1 and b1 are right, the error dZ2 sent back to the hidden layer is right; the "
        "mistake is in "
        "the output layer's own gradients (dW2 = A1.T @ dZ2 / n, db2 = dZ2.sum(axis=0) / n)"
    )


def _deep_layer_message(ctx, failing, head):
    layers_wrong = sorted({int(k[1:]) for k in failing})
    which = ", ".join(map(str, layers_wrong))
    return f"{head}: the wrong gradients are in layer{'s' if len(layers_wrong) > 1 else ''} {which} (1 "
    "= the input layer)"
