"""Which network the user's code computes: the reference its gradients are judged against.

Where the code exposes its loss (returned with the gradients) the candidates are the networks whose
loss agrees with it on every test problem (an L2 term is fitted: a lambda consistent across problems,
or proportional to 1/n); where it exposes its outputs (``--forward``), those whose outputs agree.
Among them, one whose gradients the user's match is the reference (the code is right); otherwise the
first (the flags', or the notebook's, network first). Where nothing is exposed the candidates are the
networks the flags allow, and a gradient that differs from one by exactly c W is L2 regularisation.
Where the loss is exposed but no candidate computes it, the reference is finite differences of the
user's own loss.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlpnn_jax.gradcheck import compare, models

LOSS_RTOL = 1e-9  # two float64 evaluations of the same loss agree to rounding (~1e-15 relative)
OUTPUT_RTOL = 1e-8


@dataclasses.dataclass(frozen=True)
class Reference:
    """The reference: a net per problem (None: finite differences of the user's loss), and why."""

    nets: dict  # problem name -> models.Net, or None
    how: str
    matched: bool  # the user's gradients already matched it (numpy screening)
    exposed: str  # "loss", "outputs" or "nothing"
    note: str = ""

    @property
    def net(self):
        return None if self.nets is None else next(iter(self.nets.values()))


def _sumsq(params):
    return sum(float((v**2).sum()) for k, v in params.items() if k[0] == "W")


def loss_lambdas(net, problems, losses):
    """{problem: lambda} making net's loss equal the user's on every problem, or None."""
    lams = {}
    for p in problems:
        mine = models.loss_value(net, p.params, p.X, p.Y)
        diff = losses[p.name] - mine
        if abs(diff) <= LOSS_RTOL * max(1.0, abs(mine)):
            lams[p.name] = 0.0
        else:
            lams[p.name] = 2 * diff / _sumsq(p.params)
    values = list(lams.values())
    if all(v == 0.0 for v in values):
        return lams
    if any(v <= 0 for v in values):
        return None
    same = all(abs(v - values[0]) <= 1e-6 * values[0] for v in values)
    scaled = [lams[p.name] * p.n for p in problems]
    per_n = all(abs(v - scaled[0]) <= 1e-6 * scaled[0] for v in scaled)
    return lams if same or per_n else None


def outputs_match(net, problems, outputs):
    for p in problems:
        o = outputs[p.name]
        if p.regime == "saturated" and not np.isfinite(o).all():
            continue
        probs = models.outputs(net, p.params, p.X)
        logits = models.forward(net, p.params, p.X)[0][-1]
        if not any(o.shape == r.shape and compare.matches(o, r, OUTPUT_RTOL) for r in (probs, logits)):
            return False
    return True


def grads_l2(net, problems, got):
    """{problem: c} with got = backprop(net) + c W on weights (c may be 0), or None."""
    cs = {}
    for p in problems:
        g = got[p.name]
        if any(v is None for v in g.values()):
            if p.regime == "saturated":
                continue  # the user's arithmetic may overflow there (a note, not a verdict)
            return None
        c = compare.fit_l2(g, models.backprop(net, p.params, p.X, p.Y), p.params)
        if c is None:
            return None
        cs[p.name] = c
    return cs


def _with_l2(net, lams):
    return {name: dataclasses.replace(net, l2=float(lam)) for name, lam in lams.items()}


def identify(problems, got, losses, outputs, cands):
    """The Reference for the user's gradients ``got``; ``losses``/``outputs`` None when not exposed."""
    with np.errstate(all="ignore"):
        if losses is not None:
            return _by_loss(problems, got, losses, cands)
        if outputs is not None:
            keep = [c for c in cands if outputs_match(c, problems, outputs)]
            if not keep:
                return None
            return _pick(problems, got, keep, "outputs", "its forward pass's outputs match")
        keep = [c for c in cands if c.reduction == "mean"] or cands
        return _pick(problems, got, keep, "nothing", "neither its loss nor its outputs are exposed: assumed")


def _by_loss(problems, got, losses, cands):
    how, keep = "its loss matches", _loss_matches(problems, problems, losses, cands)
    if not keep:  # a loss clipped where the softmax saturates (log(max(p, eps))) still names its network
        small = [p for p in problems if p.regime == "small"]
        keep = _loss_matches(small, problems, losses, cands)
        how = (
            "its loss matches on the unsaturated problems (not on the saturated one: clipped probabilities?)"
        )
    if not keep:
        return Reference(None, "its loss matches no candidate network", False, "loss")
    for nets in keep:
        if all(grads_l2(nets[p.name], [p], got) in ({p.name: 0.0}, {}) for p in problems):
            return Reference(nets, how, True, "loss")
    return Reference(keep[0], how, False, "loss")


def _loss_matches(matched, problems, losses, cands):
    """{problem: net with its lambda} for each candidate whose loss equals the user's on ``matched``
    (lambda carried to the other problems: the same, or the same times n)."""
    keep = []
    for c in cands:
        lams = loss_lambdas(c, matched, losses)
        if lams is None:
            continue
        values = list(lams.values())
        same = all(abs(v - values[0]) <= 1e-6 * abs(values[0]) for v in values)
        ref = matched[0]
        for p in problems:
            if p.name not in lams:
                lams[p.name] = values[0] if same else lams[ref.name] * ref.n / p.n
        keep.append(_with_l2(c, lams))
    return keep


def _pick(problems, got, keep, exposed, how):
    for c in keep:
        cs = grads_l2(c, problems, got)
        if cs is None:
            continue
        if all(v == 0.0 for v in cs.values()):
            return Reference(dict.fromkeys([p.name for p in problems], c), how, True, exposed)
        if exposed in ("nothing", "outputs"):
            lam = sorted({f"{v:.6g}" for v in cs.values()})
            note = f"the gradients include L2 regularisation with lambda = {' / '.join(lam)} (its loss "
            note += "is not exposed to confirm it)"
            return Reference(_with_l2(c, cs), how, True, exposed, note)
    return Reference(dict.fromkeys([p.name for p in problems], keep[0]), how, False, exposed)
