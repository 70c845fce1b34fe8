"""``check_backprop``: one check as a few steps, each taking one value and handing one on.

the user's code -> the adapter (``probe.find``: a ``runner.Convention``, whose ``run(problem)`` is one
``result.Result``, parsed once) -> the basis (``reference.build``: the problems, the results, the
reference network and its expected gradients) -> the comparisons -> the diagnoses (``rules``,
``diagnose``) -> the ``Report``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlpnn_jax.gradcheck import compare, conventions, diagnose, layouts, models, problems, reference, rules
from mlpnn_jax.gradcheck.errors import GradcheckUsageError, UserCodeError
from mlpnn_jax.gradcheck.names import LOSS_NAMES, LOSS_OPTIONS
from mlpnn_jax.gradcheck.probe import find
from mlpnn_jax.gradcheck.reference import FD_STEP
from mlpnn_jax.gradcheck.report import Diagnosis, Report
from mlpnn_jax.gradcheck.rules import CODES


@dataclasses.dataclass(frozen=True)
class Hints:
    """What the caller says about the code (None: infer it)."""

    loss: str | None = None
    activation: str | None = None
    output: str | None = None
    l2: float | None = None
    options: tuple = ()

    def candidates(self):
        fams = [self.loss] if self.loss else None
        acts = [self.activation] if self.activation else None
        cands = models.candidates(fams, acts, self.options)
        if self.output:
            cands = [c for c in cands if c.head == self.output]
        if self.l2 is not None:
            cands = [dataclasses.replace(c, l2=self.l2) for c in cands]
        if not cands:
            raise GradcheckUsageError(f"no network has output {self.output!r} with loss {self.loss!r}")
        return cands


def _validate(fn, loss, loss_options, seed, activation, output):
    if not callable(fn) and not isinstance(fn, conventions.Target):
        raise GradcheckUsageError(f"the function to check is not callable: {fn!r}")
    if loss is not None and loss not in LOSS_NAMES:
        raise GradcheckUsageError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {loss!r}")
    unknown = sorted(set(loss_options) - set(LOSS_OPTIONS))
    if unknown:
        raise GradcheckUsageError(
            f"unknown loss option(s) {', '.join(unknown)}; known: {', '.join(LOSS_OPTIONS)}"
        )
    for k, v in loss_options.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise GradcheckUsageError(f"{k} must be a finite number; got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GradcheckUsageError(f"seed must be a non-negative int; got {seed!r}")
    if activation is not None and activation not in models.ACTIVATION_NAMES:
        raise GradcheckUsageError(
            f"activation must be one of {', '.join(models.ACTIVATION_NAMES)}; got {activation!r}"
        )
    if output is not None and output not in ("softmax", "sigmoid"):
        raise GradcheckUsageError(f"output must be softmax or sigmoid; got {output!r}")


def _target(fn, forward):
    if isinstance(fn, conventions.Target):
        return fn
    name = fn_name(fn)
    return conventions.Target(name, fn, forward=forward, forward_name=fn_name(forward) if forward else "")


def fn_name(fn):
    import functools

    if isinstance(fn, functools.partial):
        return fn_name(fn.func)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _params_arg(fn, method):
    """The name of fn's argument that holds the params (``parameters``...), or None."""
    names = conventions.ROLE_NAMES["P"]
    return next((a for a, _ in conventions.arguments(fn, method) if a.lower().lstrip("_") in names), None)


def _layouts(target, make_params, source, forward_source=None):
    """The layouts to try, most trusted first, and whether the first is today's strict convention."""
    if make_params is not None:
        return list(make_params), False
    found = [layouts.canonical()]
    found += layouts.source_guesses(source, _params_arg(target.fn, target.is_method()))
    if target.forward is not None:  # the forward reads them (parameters["W3"]) where the backward does not
        farg = _params_arg(target.forward, target.is_method())
        found += layouts.source_guesses(forward_source, farg)
    found += layouts.argument_guesses([target.fn, target.forward], target.is_method())
    return found, True


def check_backprop(
    fn,
    loss=None,
    soft_targets=False,
    seed=0,
    *,
    forward=None,
    params=None,
    source=None,
    forward_source=None,
    activation=None,
    output=None,
    l2=None,
    skipped=(),
    **loss_options,
):
    """Check a hand-written backprop against ``jax.grad`` (float64), inferring how it is called.

    Args:
        fn: the backprop: a function (or a ``conventions.Target`` for a class's method). Today's
            convention ``fn(params, X, Y) -> {"W1", "b1", "W2", "b2"}`` is tried first; otherwise the
            convention is probed (per example or batch, X rows or columns, labels integer or one-hot,
            params as laid out by ``params``, returns grads, ``(loss, grads)`` or ``(nabla_b, nabla_w)``).
        loss: a loss family ("ce", "kl", "mse", "smooth_ce", "focal", "hinge", "bce", "se") or None
            (infer; the notebook's "ce" when nothing is exposed).
        soft_targets: pass target distributions (n, K) instead of labels.
        seed: the problems' random seed (a non-negative int).
        forward: the user's forward function, whose result the backprop takes (or that stores it).
        params: candidate ``layouts.Layout`` s of the user's params (from an init function or class).
        source: the checked function's source, to guess its params' names when ``params`` is None.
        forward_source: the forward function's source (the same use).
        activation, output, l2: name the network where the code does not expose it.
        skipped: what the loader left out of the user's file (reported as a note).
        **loss_options: label_smoothing (smooth_ce), gamma (focal), margin (hinge).
    Returns:
        A ``Report``. Whatever ``fn`` returns is reported, never raised.
    Raises:
        GradcheckUsageError: a bad argument; its UserCodeError where the user's code raised.
    """
    _validate(fn, loss, loss_options, seed, activation, output)
    options = tuple(sorted((k, float(v)) for k, v in loss_options.items()))
    hints, soft = Hints(loss, activation, output, l2, options), bool(soft_targets)
    target, cands = _target(fn, forward), hints.candidates()
    tried, strict = _layouts(target, params, source, forward_source)
    conv, basis = _adapted(target, tried, strict, cands, seed, soft)
    labels = _labels(conv.layout)
    compared = _compare(conv, basis, list(labels))
    diagnoses, status = _diagnoses(basis, compared, labels, skipped)
    checks = _param_checks(conv.layout, basis.problems, compared, status, labels)
    return _report(conv, basis, hints, seed, soft, checks, diagnoses)


def _adapted(target, tried, strict, cands, seed, soft):
    """(the Convention, its Basis). When the user's code raises on K > 1 outputs (e.g. it asserts
    A2.shape == (1, m)), everything is tried again with one sigmoid output unit (K = 1, 0/1 labels);
    if that raises too, the first error is the one reported."""
    try:
        conv = find(target, tried, cands, soft, strict_first=strict)
        return conv, reference.build(conv, seed, cands, soft)
    except UserCodeError as e:
        binary = [c for c in cands if c.head == "sigmoid"]
        if soft or not binary:
            raise
        first = e
    try:
        conv = find(target, tried, binary, soft, strict_first=strict, binary=True)
        return conv, reference.build(conv, seed, binary, soft, binary=True)
    except GradcheckUsageError as e:
        message = f"{first} (tried again with one sigmoid output, K = 1: {e})"
        raise UserCodeError(message, first.formatted_traceback) from e


def _labels(layout):
    """{canonical name: the user's label}, layer by layer (W1, b1, W2, ...)."""
    slots = sorted(layout.slots, key=lambda s: (int(s.canon[1:]), s.canon[0] == "b"))
    return {s.canon: s.label for s in slots}


@dataclasses.dataclass(frozen=True)
class Comparisons:
    """Per problem ({name: {canonical name: ...}}): the user's gradients, their comparisons with the
    expected ones, shapes, dtypes and statuses; the results' findings, gathered over the problems."""

    got: dict
    cmp: dict
    shapes: dict
    dtypes: dict
    status: dict
    findings: list


def _compare(conv, basis, keys):
    """The Comparisons of the basis's results with its expected gradients."""
    got, cmp, shapes, dtypes, status, found = {}, {}, {}, {}, {}, {}
    for p in reversed(basis.problems):  # the largest first: its messages are kept (n, D, H, K all differ)
        r, expected = basis.results[p.name], basis.expected[p.name]
        got[p.name], shapes[p.name], dtypes[p.name] = dict(r.grads), r.shapes, r.dtypes
        status[p.name] = dict(r.status)  # the rules may reclassify (saturated): the Result stays as read
        found[p.name] = r.findings_against(conv, p, expected)
        with np.errstate(all="ignore"):
            cmp[p.name] = {
                k: None if r.grads[k] is None else compare.compare(r.grads[k], expected[k], basis.rtol)
                for k in keys
            }
    return Comparisons(got, cmp, shapes, dtypes, status, diagnose.gather(found))


def _diagnoses(basis, compared, labels, skipped):
    """(every Diagnosis: the errors, then the notes; the statuses as the rules leave them)."""
    ref = basis.ref
    ctx = rules.Context(
        basis.problems,
        basis.expected,
        compared.got,
        compared.cmp,
        ref.net,
        labels,
        compared.status,
        compared.dtypes,
        compared.findings,
    )
    found = rules.run(ctx)
    errors, notes = diagnose.merge_findings(ctx.findings, [p.name for p in ctx.problems], ctx.labels)
    errors += [Diagnosis(f.code, f.message, f.params) for f in found]
    errors += _self_check_errors(basis)
    extra = [Diagnosis("l2_note", ref.note, (), "note")] if ref.note else []
    if skipped:
        extra.append(Diagnosis("skipped", "not loaded from your file: " + "; ".join(skipped), (), "note"))
    return tuple(errors + extra + diagnose.note_diagnoses(notes, labels)), ctx.status


def _self_check_errors(basis):
    """The error where the reference disagrees with differences (its own check), else none."""
    check = basis.self_check
    if check["ok"]:
        return []
    if basis.ref.nets is not None:
        message = (
            f"the reference ({check['what']}) disagrees with {check['method']} on {check['problem']} "
            f"(max rel err {check['max_rel_err']:.1e}): a bug in mlpnn_jax, please report it"
        )
    else:
        message = (
            f"your loss is not smooth enough here for finite differences (steps {FD_STEP:g} and "
            f"{10 * FD_STEP:g} disagree by {check['max_rel_err']:.1e}): pass --activation/--output/--loss "
            "so that a reference network can be used"
        )
    return [Diagnosis("reference", message)]


def _param_checks(layout, probs, compared, status, labels):
    """{label: ParamCheck} in layer order."""
    by_slot = {s.canon: s for s in layout.slots}
    checks = {}
    for k, label in labels.items():
        pc = compare.param_check(k, probs, compared.cmp, compared.shapes, compared.dtypes, status, by_slot[k])
        checks[label] = dataclasses.replace(pc, name=label)
    return checks


def _report(conv, basis, hints, seed, soft, checks, diagnoses):
    ref = basis.ref
    return Report(
        function=conv.target.name,
        loss=ref.net.loss if ref.net is not None else (hints.loss or "your own"),
        options=dict(hints.options),
        soft_targets=soft,
        seed=seed,
        problems=tuple(p.describe() for p in basis.problems),
        params=checks,
        diagnoses=diagnoses,
        reference_check=basis.self_check,
        inferred=_sentences(conv, basis.problems, ref),
        network=_network(ref, conv.layout),
        convention=_convention_json(conv, ref),
    )


def _network(ref, layout):
    if ref.nets is None:
        return "none of the candidate networks computes your loss: checked against centred differences of it"
    lams = sorted({f"{n.l2:.6g}" for n in ref.nets.values()})
    net = dataclasses.replace(ref.net, l2=0.0).describe(layout.num_layers)
    return (
        net
        + (f", L2 lambda = {' / '.join(lams)}" if lams != ["0"] else "")
        + ("" if layout.bias else ", no biases")
    )


def _sentences(conv, probs, ref):
    p = next(q for q in probs if q.name == problems.FD_PROBLEM)
    first = conv.describe(p) + "."
    if ref.nets is None:
        return (
            first,
            "Its loss matches none of the candidate networks, so its gradients are checked against "
            "centred finite differences of that loss (on the unsaturated problems).",
        )
    verdict = "its gradients match it" if ref.matched else "it is the reference"
    how = {
        "loss": "Its loss matches",
        "outputs": f"The outputs of {conv.target.forward_name} match",
        "nothing": "Neither its loss nor its outputs are exposed: checked as",
    }[ref.exposed]
    return (first, f"{how} {_network(ref, conv.layout)}; {verdict}.")


def _convention_json(conv, ref):
    c = conv.call
    return {
        "call": f"{conv.target.name}({', '.join(c.names)})",
        "roles": dict(zip(c.names, c.roles, strict=True)),
        "per_example": c.per_example,
        "x": c.x_form,
        "y": c.y_form,
        "params": {
            s.label: {"as": s.canon, "transposed": s.transpose, "bias": s.bias_form}
            for s in conv.layout.slots
        },
        "params_from": conv.layout.source,
        "forward": conv.target.forward_name or None,
        "exposed": ref.exposed,
        "reference": "finite differences of your loss" if ref.nets is None else "jax.grad",
        "net": None if ref.net is None else dataclasses.asdict(ref.net),
    }


__all__ = ["CODES", "GradcheckUsageError", "Hints", "check_backprop"]
