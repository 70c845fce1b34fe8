"""The reference the user's gradients are judged against: which network the code computes (``choose``),
on problems drawn for it, with its expected gradients and its own check (``build``: a ``Basis``).

Where the code exposes its loss (returned with the gradients) the candidates are the networks whose
loss agrees with it on every test problem (an L2 term is fitted: a lambda consistent across problems,
or proportional to 1/n); where it exposes its outputs (``--forward``), those whose outputs agree.
Among them, one whose gradients the user's match is the reference (the code is right); otherwise the
first (the flags', or the notebook's, network first). Where nothing is exposed the candidates are the
networks the flags allow, and a gradient that differs from one by exactly c W is L2 regularisation.
Where the loss is exposed but no candidate computes it, the reference is finite differences of the
user's own loss.

The user's code is run once per problem and its results parsed once (``Convention.run``); the
expected gradients are those the problems were conditioned with, computed again only for another net
(an L2 term, or a net the redrawn problems' results chose).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlpnn_jax.gradcheck import compare, models
from mlpnn_jax.gradcheck.errors import GradcheckUsageError, usage_error
from mlpnn_jax.gradcheck.problems import FD_PROBLEM
from mlpnn_jax.gradcheck.problems import make as draw
from mlpnn_jax.gradcheck.report import RTOL, Finding
from mlpnn_jax.gradcheck.runner import invoke

LOSS_RTOL = 1e-9  # two float64 evaluations of the same loss agree to rounding (~1e-15 relative)
OUTPUT_RTOL = 1e-8
FD_STEP = 1e-6  # centred differences: truncation ~ h^2 f''' ~ 1e-12, roundoff ~ u |f| / h ~ 1e-10
FD_RTOL, FD_ATOL = 1e-6, 1e-9  # the reference's own check, as tests/test_gradients.py
FD_SAMPLE = 200  # entries of a leaf differenced in the reference's own check, at most
FD_USER_MAX = 5000  # parameters, where the reference is differences of the user's own loss
USER_FD_RTOL = 1e-5  # a user's loss differentiated numerically: a looser rule for the gradients


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


def choose(problems, results, cands):
    """The Reference for the user's results ({problem name: result.Result}), or None where the
    outputs are exposed and match no candidate."""
    got = {p.name: results[p.name].grads for p in problems}
    losses = {p.name: results[p.name].loss for p in problems}
    outputs = {p.name: results[p.name].outputs for p in problems}
    losses = None if any(v is None for v in losses.values()) else losses
    outputs = None if any(v is None for v in outputs.values()) else outputs
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


# ------------------------------------------------------------ the Basis: problems, results, expected


@dataclasses.dataclass(frozen=True)
class Basis:
    """What the user's results are judged against, and the results themselves.

    ``problems``: the test problems (the saturated one left out where the reference is finite
    differences); ``results``: {problem name: result.Result}, each parsed once; ``ref``: the
    Reference; ``expected``: {problem name: {canonical name: float64 array}}; ``self_check``: the
    reference checked against differences (a dict, as the Report's ``reference_check``).
    """

    problems: list
    results: dict
    ref: Reference
    expected: dict
    self_check: dict

    @property
    def rtol(self):
        """The comparisons' relative tolerance: jax.grad's, or finite differences' (looser)."""
        return RTOL if self.ref.nets is not None else USER_FD_RTOL


def build(conv, seed, cands, soft, binary=False):
    """The Basis for the user's code run under ``conv``: the problems drawn (again for the reference
    network, where two float64 references disagree), the results, the Reference, its gradients."""
    L, bias, fixed = conv.layout.num_layers, conv.layout.bias, conv.layout.sizes
    probs, _ = draw(seed, L, bias, cands[0], soft, condition=False, binary=binary, fixed=fixed)
    results = fit_step(probs, run_all(conv, probs), cands)
    ref, conditioned = _chosen(conv, probs, results, cands), None
    if ref.nets is not None:
        net = dataclasses.replace(ref.net, l2=0.0)
        again, drawn = draw(seed, L, bias, net, soft, binary=binary, fixed=fixed)
        conditioned = (net, drawn)
        if any(a.redrawn != b.redrawn for a, b in zip(again, probs, strict=True)):
            probs, results = again, fit_step(again, run_all(conv, again), cands)
            ref = _chosen(conv, probs, results, cands)
    if ref.nets is None:  # differences of the user's own loss: where units saturate it may be log(0)
        _small_enough(conv, probs[0])
        probs = [p for p in probs if p.regime != "saturated"]
        expected = {p.name: fd_user(conv, p, FD_STEP) for p in probs}
    else:
        expected = {p.name: _expected(ref.nets[p.name], p, conditioned) for p in probs}
    results = {p.name: results[p.name] for p in probs}
    return Basis(probs, results, ref, expected, self_check(ref, probs, expected, conv))


def _small_enough(conv, p):
    """Raise where the net has too many parameters to difference the user's loss entry by entry."""
    entries = sum(v.size for v in p.params.values())
    if entries > FD_USER_MAX:
        raise GradcheckUsageError(
            f"the loss of {conv.target.name} matches no candidate network, and its {entries} parameters "
            f"are too many to difference that loss (at most {FD_USER_MAX}): pass --loss, --activation and "
            "--output to name the network it computes"
        )


def fit_step(probs, results, cands):
    """The results, their gradients divided by the step eta where an in-place update's step is unknown
    (``Result.unrated``): one eta > 0 for every parameter and problem, the least-squares fit of the
    changes to the first candidate's gradients, on the one of the problems that suits it best (where a
    candidate's gradients match the changes divided by its eta on every problem, that candidate's).
    The fit cannot tell a gradient off by one common factor from the step; the report says so."""
    if not any(r.unrated for r in results.values()):
        return results
    fits = [fit for c in cands if (fit := _step_for(c, probs, results)) is not None]
    if not fits:
        return results
    eta = next((eta for eta, matched in fits if matched), fits[0][0])
    note = Finding(
        "in_place",
        f"the inferred step: eta = {eta:.6g} (a gradient off by one common factor on every parameter "
        "cannot be told from the step)",
        level="note",
    )
    return {
        name: dataclasses.replace(
            r,
            grads={k: None if g is None else g / eta for k, g in r.grads.items()},
            findings=(*r.findings, note),
        )
        for name, r in results.items()
    }


def _step_for(net, probs, results):
    """(eta, whether net's gradients then match on every problem) for one candidate, or None."""
    p = next(q for q in probs if q.name == FD_PROBLEM)
    got = results[p.name].grads
    if any(v is None for v in got.values()):
        return None
    with np.errstate(all="ignore"):
        expected = models.backprop(net, p.params, p.X, p.Y)
        d = np.concatenate([got[k].ravel() for k in got])
        g = np.concatenate([expected[k].ravel() for k in got])
        eta = abs(float(d @ g) / float(g @ g)) if float(g @ g) > 0 else 0.0
        if not np.isfinite(eta) or eta == 0.0:
            return None
        matched = all(
            results[q.name].grads[k] is not None and compare.matches(results[q.name].grads[k] / eta, e[k])
            for q in probs
            if q.regime == "small"
            for e in [models.backprop(net, q.params, q.X, q.Y)]
            for k in results[q.name].grads
        )
    return eta, matched


def run_all(conv, probs):
    """{problem name: result.Result} of the user's code on each problem; its exceptions, one line."""
    results = {}
    for p in reversed(probs):  # the largest first, as the old checker did (its errors are the clearest)
        try:
            results[p.name] = conv.run(p)
        except (Exception, SystemExit) as e:
            raise usage_error(conv, p, e) from e
    return results


def _chosen(conv, probs, results, cands):
    ref = choose(probs, results, cands)
    if ref is None:
        raise GradcheckUsageError(
            f"the outputs of {conv.target.forward_name} match no candidate network (pass --activation "
            "and --output, or check the forward pass)"
        )
    return ref


def _expected(net, p, conditioned):
    """jax.grad of net's loss on p: the gradients the problems were conditioned with, where the net is
    the one they were drawn for (the same program on the same arrays), else computed for it."""
    if conditioned is not None and conditioned[0] == net:
        return conditioned[1][p.name]
    return models.gradients(net, p.params, p.X, p.Y)


def central_diff(loss, params, h, entries=None):
    """{k: d loss / d params[k]} by centred differences with step h, entry by entry (float64); with
    ``entries`` ({k: [index, ...]}), only at those (NaN elsewhere)."""
    out = {}
    for k, v in params.items():
        g = np.full(v.shape, np.nan)
        for idx in np.ndindex(v.shape) if entries is None else entries[k]:
            plus, minus = v.copy(), v.copy()
            plus[idx] += h
            minus[idx] -= h
            g[idx] = (loss({**params, k: plus}) - loss({**params, k: minus})) / (2 * h)
        out[k] = g
    return out


def sample_entries(params, seed=0):
    """{k: indices}: every entry of a leaf of at most FD_SAMPLE, else FD_SAMPLE drawn at random (CS231n's
    sparse gradient check): a large net's every entry is judged against jax.grad, a sample of them by
    differences."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in params.items():
        every = list(np.ndindex(v.shape))
        picks = (
            rng.choice(len(every), FD_SAMPLE, replace=False) if len(every) > FD_SAMPLE else range(len(every))
        )
        out[k] = [every[i] for i in sorted(picks)]
    return out


def fd_user(conv, p, h):
    """Centred differences of the user's own loss (mean over per-example calls), float64. Only the
    loss is read: the gradients these calls return are not parsed."""
    return central_diff(lambda params: invoke(conv, p, params).mean_loss(), p.params, h)


def self_check(ref, probs, expected, conv):
    """The reference checked itself: jax.grad against differences of the numpy loss; or, for the
    user's own loss, differences at two steps against each other."""
    p = next(q for q in probs if q.name == FD_PROBLEM)
    if ref.nets is None:
        other = fd_user(conv, p, 10 * FD_STEP)
        what, method = f"centred differences (step {FD_STEP:g}) of your loss", f"step {10 * FD_STEP:g}"
    else:
        net, entries = ref.nets[p.name], sample_entries(p.params)
        loss = lambda params: models.loss_value(net, params, p.X, p.Y)  # noqa: E731
        other = central_diff(loss, p.params, FD_STEP, entries)
        what = "jax.grad"
        method = f"centred finite differences (step {FD_STEP:g}) of the numpy reference loss"
        if any(len(entries[k]) < v.size for k, v in p.params.items()):
            method += f" at {FD_SAMPLE} random entries of each larger parameter"
    worst, ok = 0.0, True
    for k, e in expected[p.name].items():
        err = float(np.nanmax(np.abs(other[k] - e)))
        scale = max(float(np.abs(e).max()), float(np.nanmax(np.abs(other[k]))))
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
