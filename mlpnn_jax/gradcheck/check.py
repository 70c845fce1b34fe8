"""``check_backprop``: find the convention, identify the network, compare, diagnose, report."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlpnn_jax.gradcheck import compare, conventions, diagnose, identify, layouts, models, problems, rules
from mlpnn_jax.gradcheck.names import LOSS_NAMES
from mlpnn_jax.gradcheck.probe import GradcheckUsageError, find, usage_error
from mlpnn_jax.gradcheck.report import RTOL, Diagnosis, Report
from mlpnn_jax.gradcheck.rules import CODES
from mlpnn_jax.gradcheck.runner import invoke, mean_loss, mean_outputs, read_gradients

LOSS_OPTIONS = ("label_smoothing", "gamma", "margin")
FD_STEP = 1e-6  # centred differences: truncation ~ h^2 f''' ~ 1e-12, roundoff ~ u |f| / h ~ 1e-10
FD_RTOL, FD_ATOL = 1e-6, 1e-9  # the reference's own check, as tests/test_gradients.py
USER_FD_RTOL = 1e-5  # a user's loss differentiated numerically: a looser rule for the gradients


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


def _run_all(conv, probs):
    runs = {}
    for p in reversed(probs):  # the largest first, as the old checker did (its errors are the clearest)
        try:
            runs[p.name] = invoke(conv, p)
        except (Exception, SystemExit) as e:
            raise usage_error(conv, p, e) from e
    return runs


def _expected(ref, probs, conv):
    if ref.nets is None:
        return {p.name: fd_user(conv, p, FD_STEP) for p in probs}
    return {p.name: models.gradients(ref.nets[p.name], p.params, p.X, p.Y) for p in probs}


def central_diff(loss, params, h):
    """{k: d loss / d params[k]} by centred differences with step h, entry by entry (float64)."""
    out = {}
    for k, v in params.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            plus, minus = v.copy(), v.copy()
            plus[idx] += h
            minus[idx] -= h
            g[idx] = (loss({**params, k: plus}) - loss({**params, k: minus})) / (2 * h)
        out[k] = g
    return out


def fd_user(conv, p, h):
    """Centred differences of the user's own loss (mean over per-example calls), float64."""
    return central_diff(lambda params: mean_loss(invoke(conv, p, params)), p.params, h)


def reference_check(ref, probs, expected, conv):
    """The reference checked itself: jax.grad against differences of the numpy loss; or, for the
    user's own loss, differences at two steps against each other."""
    p = next(q for q in probs if q.name == problems.FD_PROBLEM)
    if ref.nets is None:
        other = fd_user(conv, p, 10 * FD_STEP)
        what, method = f"centred differences (step {FD_STEP:g}) of your loss", f"step {10 * FD_STEP:g}"
    else:
        net = ref.nets[p.name]
        other = central_diff(lambda params: models.loss_value(net, params, p.X, p.Y), p.params, FD_STEP)
        what, method = (
            "jax.grad",
            f"centred finite differences (step {FD_STEP:g}) of the numpy reference loss",
        )
    worst, ok = 0.0, True
    for k, e in expected[p.name].items():
        err = float(np.abs(other[k] - e).max())
        scale = max(float(np.abs(e).max()), float(np.abs(other[k]).max()))
        worst = max(worst, err / scale if scale > 0 else 0.0)
        ok = ok and err <= FD_RTOL * float(np.abs(e).max()) + FD_ATOL * (100 if ref.nets is None else 1)
    return {
        "ok": bool(ok),
        "problem": p.name,
        "what": what,
        "method": method,
        "max_rel_err": worst,
        "tolerance": FD_RTOL,
        "rtol": USER_FD_RTOL if ref.nets is None else RTOL,
    }


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
        GradcheckUsageError: a bad argument, or the user's code raised (with its traceback).
    """
    _validate(fn, loss, loss_options, seed, activation, output)
    options = tuple(sorted((k, float(v)) for k, v in loss_options.items()))
    hints = Hints(loss, activation, output, l2, options)
    target = _target(fn, forward)
    cands = hints.candidates()
    tried, strict = _layouts(target, params, source, forward_source)
    conv, probs, runs, ref = _convention(target, tried, strict, cands, seed, bool(soft_targets))
    if ref.nets is None:  # differences of the user's own loss: where units saturate it may be log(0)
        probs = [p for p in probs if p.regime != "saturated"]
    expected = _expected(ref, probs, conv)
    return _report(conv, probs, runs, ref, expected, hints, seed, bool(soft_targets), skipped, conv.layout)


def _convention(target, tried, strict, cands, seed, soft):
    """(Convention, problems, runs, Reference). When the user's code raises on K > 1 outputs (e.g. it
    asserts A2.shape == (1, m)), everything is tried again with one sigmoid output unit (K = 1, 0/1
    labels); if that raises too, the first error is the one reported."""
    try:
        conv = find(target, tried, cands, soft, strict_first=strict)
        return (conv, *_identified(conv, seed, cands, soft))
    except GradcheckUsageError as e:
        binary = [c for c in cands if c.head == "sigmoid"]
        if e.formatted_traceback is None or soft or not binary:
            raise
        first = e
    try:
        conv = find(target, tried, binary, soft, strict_first=strict, binary=True)
        return (conv, *_identified(conv, seed, binary, soft, binary=True))
    except GradcheckUsageError as e:
        message = f"{first} (tried again with one sigmoid output, K = 1: {e})"
        raise GradcheckUsageError(message, first.formatted_traceback) from e


def _identified(conv, seed, cands, soft, binary=False):
    """The problems, the user's runs on them and the Reference; the problems are drawn again for the
    reference network (redrawn where two float64 references disagree), and the code rerun if any moved."""
    L, bias = conv.layout.num_layers, conv.layout.bias
    probs, _ = problems.make(seed, L, bias, cands[0], soft, condition=False, binary=binary)
    runs = _run_all(conv, probs)
    ref = _reference(conv, probs, runs, cands)
    if ref.nets is not None:
        again, _ = problems.make(seed, L, bias, dataclasses.replace(ref.net, l2=0.0), soft, binary=binary)
        if any(a.redrawn != b.redrawn for a, b in zip(again, probs, strict=True)):
            probs, runs = again, _run_all(conv, again)
            ref = _reference(conv, probs, runs, cands)
    return probs, runs, ref


def _reference(conv, probs, runs, cands):
    got = {p.name: read_gradients(runs[p.name], conv, p)[0] for p in probs}
    losses = {p.name: mean_loss(runs[p.name]) for p in probs}
    outputs = {p.name: mean_outputs(runs[p.name]) for p in probs}
    losses = None if any(v is None for v in losses.values()) else losses
    outputs = None if any(v is None for v in outputs.values()) else outputs
    ref = identify.identify(probs, got, losses, outputs, cands)
    if ref is None:
        raise GradcheckUsageError(
            f"the outputs of {conv.target.forward_name} match no candidate network (pass --activation "
            "and --output, "
            "or check the forward pass)"
        )
    return ref


def _compared(conv, probs, runs, expected, rtol, keys):
    """Per problem: canonical gradients, comparisons, shapes, dtypes, statuses; and the findings of
    reading the results, gathered over the problems."""
    got, cmp, shapes, dtypes, status, found = {}, {}, {}, {}, {}, {}
    for p in reversed(probs):  # the largest first: its messages are kept (n, D, H, K all differ)
        leaves, shapes[p.name], dtypes[p.name], status[p.name], found[p.name] = read_gradients(
            runs[p.name], conv, p, expected[p.name]
        )
        found[p.name] = found[p.name] + runs[p.name].notes
        with np.errstate(all="ignore"):
            cmp[p.name] = {
                k: None if leaves[k] is None else compare.compare(leaves[k], expected[p.name][k], rtol)
                for k in keys
            }
        got[p.name] = leaves
    return got, cmp, shapes, dtypes, status, diagnose.gather(found)


def _diagnoses(ctx):
    """The Report's error and note diagnoses: the results' findings merged, then the rules'."""
    found = rules.run(ctx)
    errors, notes = diagnose.merge_findings(ctx.findings, [p.name for p in ctx.problems], ctx.labels)
    errors += [Diagnosis(f.code, f.message, f.params) for f in found]
    return errors, notes


def _report(conv, probs, runs, ref, expected, hints, seed, soft, skipped, layout):
    labels = {
        s.canon: s.label for s in sorted(layout.slots, key=lambda s: (int(s.canon[1:]), s.canon[0] == "b"))
    }
    keys = list(labels)
    rtol = RTOL if ref.nets is not None else USER_FD_RTOL
    got, cmp, shapes, dtypes, status, findings = _compared(conv, probs, runs, expected, rtol, keys)
    ctx = rules.Context(probs, expected, got, cmp, ref.net, labels, status, dtypes, findings)
    errors, notes = _diagnoses(ctx)
    status = ctx.status  # where only the saturated units overflow, "saturated"
    check = reference_check(ref, probs, expected, conv)
    if not check["ok"]:
        errors.append(
            Diagnosis(
                "reference",
                f"the reference ({check['what']}) disagrees with {check['method']} on "
                f"{check['problem']} (max rel err {check['max_rel_err']:.1e}): a bug in mlpnn_jax, "
                "please report it"
                if ref.nets is not None
                else f"your loss is not smooth enough here for finite differences (steps {FD_STEP:g} "
                f"and {10 * FD_STEP:g} disagree by {check['max_rel_err']:.1e}): pass "
                "--activation/--output/--loss so that a reference network can be used",
            )
        )
    extra = [Diagnosis("l2_note", ref.note, (), "note")] if ref.note else []
    if skipped:
        extra.append(Diagnosis("skipped", "not loaded from your file: " + "; ".join(skipped), (), "note"))
    by_slot = {s.canon: s for s in layout.slots}
    checks = {}
    for k in keys:
        pc = compare.param_check(k, probs, cmp, shapes, dtypes, status, by_slot[k])
        checks[labels[k]] = dataclasses.replace(pc, name=labels[k])
    net = ref.net
    return Report(
        function=conv.target.name,
        loss=net.loss if net is not None else (hints.loss or "your own"),
        options=dict(hints.options),
        soft_targets=soft,
        seed=seed,
        problems=tuple(p.describe() for p in probs),
        params=checks,
        diagnoses=tuple(errors + extra + diagnose.note_diagnoses(notes, labels)),
        reference_check=check,
        inferred=_sentences(conv, probs, ref),
        network=_network(ref, layout),
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
