"""Finding the calling convention: try the plausible ones on a test problem, keep the one that fits.

A convention fits when the user's gradients, loss or outputs on the probe problem agree with those of
some candidate network (numpy, float64); the conventions are tried in order of plausibility (the
argument names, the weights' orientation), and the first that fits is kept. When none fits (buggy
code), the one whose gradients have the most right shapes is kept, and when none runs at all, the
most plausible one's exception is the error.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlpnn_jax.gradcheck import compare, conventions, discover, models, problems, runner
from mlpnn_jax.gradcheck.errors import GradcheckUsageError, usage_error
from mlpnn_jax.gradcheck.result import USABLE


@dataclasses.dataclass
class _Screen:
    problem: object
    grads: list  # [(net, {canon: grad})]
    losses: list  # [(net, loss)]
    outputs: list  # [(net, probs, logits)]


def _screen(layout, cands, soft, binary=False):
    rng = np.random.default_rng([12345, layout.num_layers])
    sizes = problems.sizes_for("small", layout.num_layers, binary, layout.sizes)
    n = problems.free_n(7, sizes)
    params, X, Y = problems._draw(rng, n, sizes, "small", layout.bias, soft)
    p = problems.Problem("probe", n, sizes, "small", params, X, Y)
    with np.errstate(all="ignore"):
        grads = [(c, models.backprop(c, params, X, Y)) for c in cands]
        losses = [(c, models.loss_value(c, params, X, Y)) for c in cands]
        outs = [(c, models.outputs(c, params, X), models.forward(c, params, X)[0][-1]) for c in cands]
    return _Screen(p, grads, losses, outs)


def _fits(screen, leaves, loss):
    """Whether the user's gradients (up to L2) or loss on the probe agree with some candidate's."""
    if loss is not None and any(abs(loss - v) <= 1e-9 * max(1.0, abs(v)) for _, v in screen.losses):
        return True
    if any(v is None for v in leaves.values()):
        return False
    return any(compare.fit_l2(leaves, g, screen.problem.params) is not None for _, g in screen.grads)


def _outputs_fit(screen, outputs):
    """Whether the forward pass's outputs are some candidate's (they do not depend on the labels)."""
    return outputs is not None and any(
        outputs.shape == a.shape and (compare.matches(outputs, a, 1e-8) or compare.matches(outputs, z, 1e-8))
        for _, a, z in screen.outputs
    )


def _distance(screen, leaves):
    """How far the gradients are from the nearest candidate's (a tie-breaker among misfits)."""
    known = [k for k, v in leaves.items() if v is not None]
    if not known:
        return np.inf
    with np.errstate(all="ignore"):
        return min(
            float(np.mean([np.abs(leaves[k] - g[k]).max() / (np.abs(g[k]).max() + 1e-300) for k in known]))
            for _, g in screen.grads
        )


def _score(screen, res, conv, preferred):
    """(fits, outputs fit, right shapes, in the preferred mode, -distance) for the Result ``res`` on
    the probe problem: the best is the largest."""
    if _fits(screen, res.grads, res.loss):
        return (1, 1, len(res.status), 1, 0.0)
    shapes = sum(s in USABLE for s in res.status.values())
    dist = _distance(screen, res.grads)
    outputs = int(_outputs_fit(screen, res.outputs))
    return (
        0,
        outputs,
        shapes,
        int(conv.call.per_example == preferred),
        -dist if np.isfinite(dist) else -np.inf,
    )


def _self_maker(target, layout):
    """sizes -> the instance to call a method on, where the params are not its attributes: made by
    its class's constructor (GradcheckUsageError, one line, when it cannot be)."""
    if not target.is_method() or layout.kind == "attributes":
        return None
    sizes = problems.sizes_for("small", layout.num_layers, fixed=layout.sizes)
    make, errors = discover.instance_maker(target.cls, sizes)
    if make is not None:
        return make
    why = f": it raised {type(errors[0]).__name__}: {errors[0]}" if errors else ""
    raise _unbuildable(target, sizes, why)


def _unbuildable(target, sizes, why):
    """The one-line error for a class the checker cannot make an instance of."""
    name, signature = target.cls.__name__, discover.signature(target.cls)
    return GradcheckUsageError(
        f"cannot build the {name} to call {target.name} on from its constructor {signature} (tried "
        f"with layer sizes such as {list(sizes)} and with no arguments){why}; pass --setup 'net = "
        f"{name}(...)' with the statements that build one, or --init FUNCTION, a function of yours that "
        f"takes the layer sizes and returns a {name}"
    )


def _conventions(target, layout, strict, cands):
    make_self = _self_maker(target, layout)
    prefer_cols = any(s.transpose or s.bias_form == "col" for s in layout.slots)
    wants = not (target.is_method() and layout.kind == "attributes") and layout.kind != "args"
    slots = {s.label for s in layout.slots}
    fcalls = [None]
    if target.forward is not None:
        fargs = conventions.arguments(target.forward, target.is_method())
        froles = conventions.assign_roles(fargs, False, wants, slots)
        if froles is None:
            return []
        fcalls = [(fargs, froles)]
    uroles = None
    if target.update is not None:
        uargs = conventions.arguments(target.update, target.is_method())
        uroles = conventions.assign_roles(uargs, False, wants, slots)
    out = []
    for call in conventions.calls(target, wants, prefer_cols, slots):
        fcall = ucall = None
        if fcalls[0] is not None:
            fargs, froles = fcalls[0]
            fcall = conventions.Call(
                tuple(a for a, _ in fargs[: len(froles)]), froles, call.per_example, call.x_form, call.y_form
            )
        if uroles is not None:
            names = tuple(a for a, _ in uargs[: len(uroles)])
            ucall = conventions.Call(names, uroles, call.per_example, call.x_form, call.y_form)
        several = call.roles.count("C") > 1
        for cache in ("all",) if several else (None, 1, 0) if "C" in call.roles else (None,):
            c = dataclasses.replace(call, cache=cache)
            conv = runner.Convention(target, layout, c, fcall, strict, make_self, tuple(cands))
            out.append(conv)
            if ucall is not None:  # then the file's own update, for a backprop that stores its gradients
                out.append(dataclasses.replace(conv, ucall=ucall))
    return out


def find(target, layouts, cands, soft, strict_first=False, binary=False):
    """The Convention to use, with the file's own loss where it runs (GradcheckUsageError when
    nothing runs)."""
    conv, problem = _find(target, layouts, cands, soft, strict_first, binary)
    return _with_own_loss(conv, problem)


def _with_own_loss(conv, problem):
    """conv, calling the file's own loss too where it takes arguments the checker can give, in the
    same forms, and returns a number on the probe problem (a loss of another convention is no loss)."""
    fn = conv.target.own_loss
    if fn is None:
        return conv
    wants = not (conv.target.is_method() and conv.layout.kind == "attributes") and conv.layout.kind != "args"
    args = conventions.arguments(fn, conv.target.is_method())
    roles = conventions.assign_roles(args, False, wants, {s.label for s in conv.layout.slots})
    if roles is None:
        return conv
    names = tuple(a for a, _ in args[: len(roles)])
    lcall = dataclasses.replace(conv.call, names=names, roles=roles, cache=None)
    with_loss = dataclasses.replace(conv, lcall=lcall)
    try:
        res = with_loss.run(problem)
    except (Exception, SystemExit):  # a loss that does not take these arguments: not the loss
        return conv
    return with_loss if res.loss is not None and np.isfinite(res.loss) else conv


def _find(target, layouts, cands, soft, strict_first, binary):
    """(the Convention to use, its probe problem)."""
    best, first_error = None, None
    for index, layout in enumerate(layouts):
        strict = strict_first and index == 0
        screen = _screen(layout, cands, soft, binary)
        convs = _conventions(target, layout, strict, cands)
        preferred, settled = (convs[0].call.per_example if convs else None), False
        for conv in convs:
            if settled and conv.call.per_example != preferred:
                break  # the preferred mode runs with the right shapes: the other would hide batch bugs
            try:
                res = conv.run(screen.problem)
            except (Exception, SystemExit) as e:  # a convention that does not fit: the next one
                first_error = first_error or (conv, e)
                continue
            if strict:
                return conv, screen.problem
            score = _score(screen, res, conv, preferred)
            if score[0]:
                return conv, screen.problem
            settled = settled or (conv.call.per_example == preferred and score[2] == len(layout.slots))
            if best is None or score > best[0]:
                best = (score, conv, screen.problem)
    if best is not None:
        return best[1], best[2]
    if first_error is None:
        raise _no_roles(target)
    conv, e = first_error
    p = _screen(conv.layout, cands[:1], soft, binary).problem
    raise usage_error(conv, p, e) from e


def _no_roles(target):
    """The error for a function whose arguments cannot all be given something to pass."""
    names = ", ".join(a for a, _ in conventions.arguments(target.fn, target.is_method()))
    return GradcheckUsageError(
        f"cannot call {target.name}({names}): the checker passes only the data (X), the labels (y), the "
        "params (a dict, list or object of arrays), the forward pass's result (and, with --forward, the "
        "loss's gradient with respect to its output to an argument named grad, dout or delta) and 0 to a "
        "regularisation knob, and cannot tell which argument is which here (layer sizes as arguments, or "
        f"params unrolled into one vector, are not supported): write a wrapper `def backprop(params, X, y)` "
        f"that calls {target.name} and returns its gradients per parameter, and check that"
    )
