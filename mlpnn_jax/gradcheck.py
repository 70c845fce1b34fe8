"""Check a hand-written backprop against ``jax.grad``: ``check_backprop`` and ``mlpnn-jax gradcheck``.

The user's ``fn(params, X, Y)`` returns the gradients of the MEAN loss over the batch as a dict
``{"W1": (D, H), "b1": (H,), "W2": (H, K), "b2": (K,)}`` (the notebook's convention). It is run on a
few fixed problems chosen to expose the usual bugs, and every returned entry is compared with
``jax.grad`` of ``mlpnn_jax.model.mean_loss``, computed in float64 under ``jax.enable_x64(True)``
(a context manager, so the check works whether or not the caller turned on 64-bit JAX):

- ``n1-small``: n = 1, D = 5, H = 4, K = 3, small weights (unsaturated tanh and softmax);
- ``n7-small``: n = 7 (odd), same sizes: D, H, K and n all differ, so a transpose changes the shape;
- ``n32-saturated``: n = 32, D = 12, H = 9, K = 10, the notebook's unscaled N(0, 1) first layer and
  U[0, 1) biases, W2 three times N(0, 1): saturated tanh units and a saturated softmax (the true
  class often has p < 1e-8), without pushing the gradients into rounding noise.

Labels are random; with ``soft_targets`` they are Dirichlet(0.5) distributions. For "hinge" a problem
is redrawn while any |z_j - z_k + margin| (k a target class) is below 1e-4, far from the kinks.
Each run also checks the reference itself: ``jax.grad`` against centred finite differences (step
1e-6) of the numpy reference loss (``reference.loss_value``) on ``n7-small``; the Report says so.

Tolerance. An entry passes when |got - expected| <= RTOL * max(|got|, |expected|, FLOOR * s), with
RTOL = 1e-7, FLOOR = 1e-6 and s the largest |entry| of that parameter on that problem (got or
expected). float64 rounds at u = 1.1e-16. Every entry here is a sum over at most 32 samples of
products of a few factors, so two correct implementations that sum in different orders (or go
through the explicit softmax Jacobian, or 1/cosh^2 for tanh') differ by a few u * sqrt(terms) * s:
measured, at most 2.4e-14 * s and 9e-11 relative per entry (under the rule above) over the correct
gallery (tests/gallery/correct.py: 13 implementation/loss/target combinations x 300 seeds). RTOL
leaves 1000 times that, and FLOOR keeps entries that cancel to almost nothing (whose relative error
means nothing) from failing a right answer. It catches one entry off by one part in 10^4 whenever
that entry is at least 1e-9 * s (1e-4 |e| > RTOL max(|e|, FLOOR s) <=> |e| > 1e-9 s); smaller entries
are far below any effect on training. A per-parameter rule (max|a - b| / s <= tol, the measure of
tests/test_gradients.py, reported as ``max_rel_err``) could not promise this: an entry at 1e-3 * s
off by 1e-4 moves that measure by only 1e-7.

Where the gradient itself is rounding noise, no tolerance works: the squared error of a softmax
saturated on every sample cancels to ~1e-7, and correct implementations then differ by 1e-8 relative.
So a problem is redrawn (from the same seeded stream) when jax.grad and the numpy
``reference.manual_gradients`` disagree by more than COND_RTOL = 1e-10 under the rule above (about
1 draw in 300 of the saturated problem; the JSON report's ``redrawn`` counts them). float32 results are
reported as such (code "dtype"): their rounding, 6e-8 relative per operation, is beyond what a float64
check can tell apart from a bug; the message says whether they agree to float32 precision.

Diagnoses carry a machine-readable ``code`` (see ``CODES``) and a message; notes (level "note")
inform without failing the check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import math
import sys
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "CODES",
    "Diagnosis",
    "GradcheckUsageError",
    "ParamCheck",
    "Report",
    "check_backprop",
    "run_gradcheck",
]

PARAM_NAMES = ("W1", "b1", "W2", "b2")
LOSS_NAMES = ("ce", "kl", "mse", "smooth_ce", "focal", "hinge")  # = mlpnn_jax.losses.LOSSES
LOSS_OPTIONS = ("label_smoothing", "gamma", "margin")

RTOL = 1e-7  # per entry, relative ...
FLOOR = 1e-6  # ... to at least this fraction of the parameter's largest entry
FIT_RTOL = 1e-6  # the same rule, looser, for the diagnoses' exact-pattern matches
FD_STEP = 1e-6  # centred differences: truncation ~ h^2 f''' ~ 1e-12, roundoff ~ u |f| / h ~ 1e-10
FD_RTOL, FD_ATOL = 1e-6, 1e-9  # as tests/test_gradients.py
HINGE_MIN_MARGIN = 1e-4
_SATURATED_W2 = 3.0  # the scale of W2 on the saturated problem
COND_RTOL = 1e-10  # two float64 references must agree this well on a problem
_MAX_DRAWS = 100

CODES = {
    # the result's structure
    "type": "the function did not return a dict, or a value is not a numeric array",
    "missing_key": "a parameter has no gradient in the result",
    "extra_key": "the result has a key that is not a parameter",
    "shape": "a gradient has the wrong shape",
    "transposed": "a gradient has the transposed shape",
    "nonfinite": "a gradient has NaN or inf entries",
    "dtype": "a gradient is float32 (or narrower): compute in float64",
    # the values
    "wrong_loss": "the gradients are those of another loss",
    "sign": "a gradient has the wrong sign",
    "scale": "a gradient is off by a constant factor (e.g. n: a sum instead of a mean)",
    "zero": "a gradient is all zeros",
    "subset_of_samples": "a gradient uses only some samples of the batch",
    "batch": "right for one sample, wrong for a batch (the samples are combined wrongly)",
    "activation": "the hidden layer uses the wrong activation derivative",
    "early_update": "W2 was updated before the error was sent back through it",
    "layer_input": "W2's gradient uses the pre-activation Z1 where A1 belongs",
    "few_entries": "only a few entries are wrong",
    "layer": "the wrong gradients are confined to one layer (which, and what it implies)",
    "mismatch": "a gradient is wrong in no recognised pattern",
    "reference": "the reference jax.grad failed its finite-difference check (a bug in the checker)",
    # notes (never fail the check)
    "not_array": "a gradient is a list or tuple rather than an array (note)",
    "mutation": "the function modified its inputs in place (note)",
    "warning": "the function raised warnings (note)",
}

_SPECS = (  # name, n, D, H, K, regime
    ("n1-small", 1, 5, 4, 3, "small"),
    ("n7-small", 7, 5, 4, 3, "small"),
    ("n32-saturated", 32, 12, 9, 10, "saturated"),
)
_FD_PROBLEM = "n7-small"
_EXPECTED_SYM = {"W1": "(D, H)", "b1": "(H,)", "W2": "(H, K)", "b2": "(K,)"}
_REGIMES = {
    "small": "small weights (0.5 N(0,1), biases 0.1 N(0,1)): unsaturated",
    "saturated": "the notebook's N(0,1) W1 and U[0,1) biases, W2 = 3 N(0,1): saturated",
}


class GradcheckUsageError(ValueError):
    """The check could not run: a bad argument, or the user's function raised.

    ``formatted_traceback`` holds the user's traceback (a str) when their code raised, else None.
    """

    def __init__(self, message, formatted_traceback=None):
        super().__init__(message)
        self.formatted_traceback = formatted_traceback


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """One finding: ``code`` (a key of ``CODES``), a human ``message``, the parameters it concerns,
    and ``level``: "error" (the check fails) or "note"."""

    code: str
    message: str
    params: tuple[str, ...] = ()
    level: str = "error"

    def to_json(self):
        return {"code": self.code, "level": self.level, "params": list(self.params), "message": self.message}


@dataclasses.dataclass(frozen=True)
class ParamCheck:
    """The comparison for one parameter over all problems (worst case over problems).

    ``max_rel_err`` is max|got - expected| / max(max|got|, max|expected|) over the parameter (the
    measure of tests/test_gradients.py); ``max_entry_rel_err`` is the worst entry under the pass rule
    |got - expected| / max(|got|, |expected|, FLOOR * that scale), which must be <= RTOL. ``worst`` is
    (problem name, index) of that entry. Errors are None where nothing could be compared.
    """

    name: str
    expected_shape: str
    got_shape: str | None
    status: str
    max_abs_err: float | None
    max_rel_err: float | None
    max_entry_rel_err: float | None
    worst: tuple[str, tuple[int, ...]] | None
    per_problem: tuple[dict, ...]

    @property
    def ok(self):
        return self.status == "ok"

    def to_json(self):
        return {
            "ok": self.ok,
            "status": self.status,
            "expected_shape": self.expected_shape,
            "got_shape": self.got_shape,
            "max_abs_err": _json_float(self.max_abs_err),
            "max_rel_err": _json_float(self.max_rel_err),
            "max_entry_rel_err": _json_float(self.max_entry_rel_err),
            "worst": None if self.worst is None else {"problem": self.worst[0], "index": list(self.worst[1])},
            "problems": [_jsonable(p) for p in self.per_problem],
        }


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``check_backprop`` found. ``ok``; ``params`` (name -> ParamCheck); ``diagnoses``;
    ``codes`` (the error-level diagnosis codes); ``to_table()``; ``to_json()``; ``str()`` = the table."""

    function: str
    loss: str
    options: dict
    soft_targets: bool
    seed: int
    problems: tuple[dict, ...]
    params: dict
    diagnoses: tuple[Diagnosis, ...]
    reference_check: dict

    @property
    def ok(self):
        return (
            all(p.ok for p in self.params.values())
            and not any(d.level == "error" for d in self.diagnoses)
            and bool(self.reference_check["ok"])
        )

    @property
    def codes(self):
        """The codes of the error-level diagnoses (a frozenset)."""
        return frozenset(d.code for d in self.diagnoses if d.level == "error")

    def to_json(self):
        return {
            "ok": self.ok,
            "function": self.function,
            "loss": self.loss,
            "options": dict(self.options),
            "soft_targets": self.soft_targets,
            "seed": self.seed,
            "tolerance": {
                "rtol": RTOL,
                "floor": FLOOR,
                "rule": "|got - expected| <= rtol * max(|got|, |expected|, floor * max|parameter|)",
            },
            "problems": [_jsonable(p) for p in self.problems],
            "params": {k: v.to_json() for k, v in self.params.items()},
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "reference_check": _jsonable(self.reference_check),
        }

    def to_table(self):
        opts = "".join(f", {k}={v}" for k, v in self.options.items())
        targets = "target distributions" if self.soft_targets else "integer labels"
        verdict = "OK" if self.ok else "FAILED"
        lines = [
            f"gradcheck {self.function}: loss {self.loss!r}{opts}, {targets}, seed {self.seed}: {verdict}",
            "",
            "problems:",
        ]
        for p in self.problems:
            redrawn = f" (redrawn {p['redrawn']}x)" if p["redrawn"] else ""
            lines.append(
                f"  {p['name']:<14} n={p['n']:<3} D={p['D']:<3} H={p['H']:<3} K={p['K']:<3} "
                f"{p['regime']}{redrawn}"
            )
        header = (
            "param",
            "expected",
            "got",
            "max abs err",
            "max rel err",
            "entry rel err",
            "worst entry",
            "result",
        )
        rows = [header]
        for c in self.params.values():
            worst = "-" if c.worst is None else f"{c.worst[0]} {list(c.worst[1])}"
            rows.append(
                (
                    c.name,
                    c.expected_shape,
                    c.got_shape or "-",
                    _fmt(c.max_abs_err),
                    _fmt(c.max_rel_err),
                    _fmt(c.max_entry_rel_err),
                    worst,
                    "ok" if c.ok else f"FAIL ({c.status})",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines.append("")
        for r in rows:
            lines.append("  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip())
        errors = [d for d in self.diagnoses if d.level == "error"]
        notes = [d for d in self.diagnoses if d.level != "error"]
        for title, group in (("diagnoses:", errors), ("notes:", notes)):
            if group:
                lines += ["", title]
                lines += [f"  [{d.code}] {d.message}" for d in group]
        r = self.reference_check
        lines += [
            "",
            f"reference: jax.grad {'matches' if r['ok'] else 'DOES NOT match'} centred finite differences "
            f"(step {FD_STEP:g}) of the numpy reference loss on {r['problem']}: max rel err "
            f"{_fmt(r['max_rel_err'])} (tolerance {FD_RTOL:g})",
            f"tolerance: each entry within {RTOL:g} relative, entries below {FLOOR:g} x their "
            f"parameter's largest judged against {FLOOR:g} x it",
        ]
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


# --------------------------------------------------------------------------------------- problems


@dataclasses.dataclass(frozen=True)
class _Problem:
    name: str
    n: int
    D: int
    H: int
    K: int
    regime: str
    params: dict
    X: np.ndarray
    Y: np.ndarray
    redrawn: int = 0

    def describe(self):
        return {
            "name": self.name,
            "n": self.n,
            "D": self.D,
            "H": self.H,
            "K": self.K,
            "regime": _REGIMES[self.regime],
            "redrawn": self.redrawn,
        }

    def sym(self, shape):
        """A shape in the letters n, D, H, K (all different here, and n > 1 apart from n1-small)."""
        names = {self.D: "D", self.H: "H", self.K: "K"}
        if self.n > 1:
            names[self.n] = "n"
        parts = [names.get(d, str(d)) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _hinge_min_margin(params, X, T, margin):
    Z = np.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    K = Z.shape[1]
    M = np.abs(Z[:, None, :] - Z[:, :, None] + margin)  # [n, k, j]: z_j - z_k + margin
    M[:, np.arange(K), np.arange(K)] = np.inf
    return M[T > 0].min()


def _draw(rng, n, D, H, K, regime, soft):
    if regime == "small":
        params = {
            "W1": 0.5 * rng.standard_normal((D, H)),
            "b1": 0.1 * rng.standard_normal(H),
            "W2": 0.5 * rng.standard_normal((H, K)),
            "b2": 0.1 * rng.standard_normal(K),
        }
    else:
        params = {
            "W1": rng.standard_normal((D, H)),
            "b1": rng.random(H),
            "W2": _SATURATED_W2 * rng.standard_normal((H, K)),
            "b2": rng.random(K),
        }
    X = rng.random((n, D))  # pixel-like inputs in [0, 1)
    Y = rng.dirichlet(np.full(K, 0.5), n) if soft else rng.integers(0, K, n)
    return params, X, Y


def _make_problems(seed, loss, soft, options):
    """The problems and their expected gradients (jax.grad, float64).

    A draw is rejected (and redrawn from the same stream) when it sits within HINGE_MIN_MARGIN of a
    hinge kink, or when two float64 implementations of the gradient (jax.grad and the numpy
    reference.manual_gradients) disagree by more than COND_RTOL under the pass rule: there the
    gradient is dominated by rounding (e.g. the squared error of a softmax saturated on every
    sample, whose gradient cancels to ~1e-7), and two correct implementations could differ by more
    than the tolerance.
    """
    from reference import manual_gradients

    problems, expected = [], {}
    for index, (name, n, D, H, K, regime) in enumerate(_SPECS):
        rng = np.random.default_rng([seed, index])
        best = None
        for attempt in range(_MAX_DRAWS):
            params, X, Y = _draw(rng, n, D, H, K, regime, soft)
            if loss == "hinge":
                T = Y if soft else np.eye(K)[Y]
                if _hinge_min_margin(params, X, T, options.get("margin", 1.0)) < HINGE_MIN_MARGIN:
                    continue
            problem = _Problem(name, n, D, H, K, regime, params, X, Y, attempt)
            e = _expected_gradients(problem, loss, options)
            with np.errstate(all="ignore"):
                m = manual_gradients(params, X, Y, loss, **options)
                disagreement = max(float(_entry_errors(m[k], e[k]).max()) for k in PARAM_NAMES)
            if best is None or disagreement < best[0]:
                best = (disagreement, problem, e)
            if disagreement <= COND_RTOL:
                break
        if best is None:  # pragma: no cover - within 1e-4 of a hinge kink every time
            raise RuntimeError(f"could not draw a hinge problem away from its kinks ({name})")
        problems.append(best[1])
        expected[name] = best[2]
    return problems, expected


# ------------------------------------------------------------------------------- the references


def _x64():
    """A context with 64-bit JAX on, restoring the caller's setting after (jax.enable_x64 since
    jax 0.8; jax.experimental.enable_x64 before)."""
    import jax

    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:  # pragma: no cover - older jax
        from jax.experimental import enable_x64 as ctx
    return ctx(True)


def _expected_gradients(problem, loss, options):
    """jax.grad of the mean loss, float64 whatever the caller's x64 setting."""
    from mlpnn_jax.model import gradients

    with _x64():
        g = gradients(problem.params, problem.X, problem.Y, loss, **options)
        return {k: np.asarray(g[k], dtype=np.float64) for k in PARAM_NAMES}


@functools.cache
def _per_sample_fn():
    import jax

    from mlpnn_jax.model import mean_loss

    def per_sample(params, x, y, loss, options):
        def one(xi, yi):
            return jax.grad(mean_loss)(params, xi[None], yi[None], loss, **options)

        return jax.vmap(one)(x, y)

    return jax.jit(per_sample, static_argnames=("loss",))


def _per_sample_gradients(problem, loss, options):
    """Each sample's own gradient (its loss alone), leading axis n: the mean over it is the gradient."""
    with _x64():
        g = _per_sample_fn()(problem.params, problem.X, problem.Y, loss, dict(options))
        return {k: np.asarray(g[k], dtype=np.float64) for k in PARAM_NAMES}


def _reference_check(problem, expected, loss, options):
    """jax.grad against centred finite differences of the numpy reference loss."""
    from reference import loss_value

    def f(params):
        return loss_value(params, problem.X, problem.Y, loss, **options)

    worst, ok = 0.0, True
    for key in PARAM_NAMES:
        value = problem.params[key]
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[idx] += FD_STEP
            minus[idx] -= FD_STEP
            fd[idx] = (f({**problem.params, key: plus}) - f({**problem.params, key: minus})) / (2 * FD_STEP)
        e = expected[key]
        err = float(np.abs(fd - e).max())
        scale = max(float(np.abs(e).max()), float(np.abs(fd).max()))
        worst = max(worst, err / scale if scale > 0 else 0.0)
        ok = ok and err <= FD_RTOL * float(np.abs(e).max()) + FD_ATOL
    return {
        "ok": bool(ok),
        "problem": problem.name,
        "method": f"centred differences, step {FD_STEP:g}, of reference.loss_value (numpy, float64)",
        "max_rel_err": worst,
        "tolerance": FD_RTOL,
    }


def _intermediates(problem, loss, options):
    """The forward pass and the error at the logits of the MEAN loss (numpy), for the diagnoses."""
    from reference import LOSSES, as_targets

    p = problem.params
    Z1 = problem.X @ p["W1"] + p["b1"]
    A1 = np.tanh(Z1)
    Z2 = A1 @ p["W2"] + p["b2"]
    dZ2 = LOSSES[loss](Z2, as_targets(problem.Y, problem.K), **options)[1] / problem.n
    return {"X": problem.X, "Z1": Z1, "A1": A1, "dZ2": dZ2, "dA1": dZ2 @ p["W2"].T}


# ------------------------------------------------------------------------------------ comparison


def _entry_errors(got, expected, floor=FLOOR):
    """Per-entry |got - expected| / max(|got|, |expected|, floor * scale) (zeros when all are zero)."""
    a, b = np.abs(got), np.abs(expected)
    scale = max(float(a.max(initial=0.0)), float(b.max(initial=0.0)))
    if scale == 0.0:
        return np.zeros(got.shape)
    denom = np.maximum(np.maximum(a, b), floor * scale)
    err = np.abs(got - expected) / denom
    return np.where(np.isnan(err), np.inf, err)


def _matches(got, candidate, rtol=FIT_RTOL):
    return got.shape == candidate.shape and float(_entry_errors(got, candidate).max(initial=0.0)) <= rtol


def _compare(got, expected):
    diff = np.abs(got - expected)
    scale = max(float(np.abs(got).max(initial=0.0)), float(np.abs(expected).max(initial=0.0)))
    entry = _entry_errors(got, expected)
    worst = np.unravel_index(int(np.argmax(entry)), entry.shape) if entry.size else ()
    max_abs = float(diff.max(initial=0.0))
    return {
        "max_abs_err": max_abs,
        "max_rel_err": (max_abs / scale if scale > 0 else 0.0) if np.isfinite(scale) else math.inf,
        "max_entry_rel_err": float(entry.max(initial=0.0)),
        "worst_index": tuple(int(i) for i in worst),
        "bad": entry > RTOL,
        "ok": bool(float(entry.max(initial=0.0)) <= RTOL),
    }


# -------------------------------------------------------------------------------- the user's run


def _user_traceback(exc, skip_frames=1):
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _fn_name(fn):
    if isinstance(fn, functools.partial):
        return _fn_name(fn.func)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _call_user(fn, problem):
    """Run fn on copies of the problem; returns (result, notes) or raises GradcheckUsageError."""
    params = {k: v.copy() for k, v in problem.params.items()}
    X, Y = problem.X.copy(), problem.Y.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(params, X, Y)
        except (Exception, SystemExit) as e:
            where = f"problem {problem.name}: n={problem.n}, D={problem.D}, H={problem.H}, K={problem.K}"
            raise GradcheckUsageError(
                f"{_fn_name(fn)}(params, X, Y) raised {type(e).__name__}: {e} (on {where})",
                _user_traceback(e),
            ) from e
    notes = []
    for w in caught:
        where = f" ({Path(w.filename).name}:{w.lineno})" if w.filename else ""
        notes.append(("warning", (), f"{w.category.__name__}: {w.message}{where}"))
    changed = []
    for k in PARAM_NAMES:
        try:
            same = isinstance(params.get(k), np.ndarray) and np.array_equal(params[k], problem.params[k])
        except Exception:
            same = False
        if not same:
            changed.append(f"params[{k!r}]")
    if not (isinstance(X, np.ndarray) and np.array_equal(X, problem.X)):
        changed.append("X")
    if not (isinstance(Y, np.ndarray) and np.array_equal(Y, problem.Y)):
        changed.append("Y")
    if changed:
        notes.append(
            (
                "mutation",
                (),
                f"the function modified {', '.join(changed)} in place; the check passes copies, so the "
                "result is unaffected, but in a training loop this silently changes the caller's arrays",
            )
        )
    return result, notes


def _a(word):
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _describe_value(v):
    if v is None:
        return "None"
    name = type(v).__name__
    if isinstance(v, str | bytes):
        text = repr(v)
        return f"{_a(name)} {text[:40] + '...' if len(text) > 40 else text}"
    if isinstance(v, list | tuple):
        return f"{_a(name)} of {len(v)} items"
    try:
        shape = getattr(v, "shape", None)
        shape = None if shape is None else tuple(shape)
    except Exception:
        shape = None
    if shape is not None:
        return f"{_a(name)} of shape {shape}"
    return _a(name)


def _key_hint(key):
    """'dW1' -> 'W1' and the like; None if no parameter name is close."""
    s = str(key)
    for prefix in ("grad_", "grad", "d_", "d"):
        if s.lower().startswith(prefix) and len(s) > len(prefix):
            s2 = s[len(prefix) :]
            for name in PARAM_NAMES:
                if s2.lower() == name.lower():
                    return name
    for name in PARAM_NAMES:
        if s.lower() == name.lower() or s.strip() == name:
            return name
    return None


def _shape_finding(name, got, problem, expected):
    """(code, message) for a gradient whose shape is wrong."""
    exp = expected.shape
    g_sym, e_sym = problem.sym(got.shape), problem.sym(exp)
    head = f"{name} has shape {g_sym} = {tuple(got.shape)}, expected {e_sym} = {tuple(exp)}"
    if got.ndim == 2 and got.shape == exp[::-1]:
        tail = (
            "; its transpose matches the expected gradient"
            if _matches(got.T.astype(np.float64), expected, RTOL)
            else "; even transposed it does not match"
        )
        return "transposed", f"{name} is transposed: its shape is {head[len(name) + 11 :]}{tail}"
    hints = []
    n = problem.n
    if got.ndim == len(exp) + 1 and got.shape[0] == n and got.shape[1:] == exp and n > 1:
        hints.append("the batch axis n was not reduced (sum over axis 0, divided by n)")
        if _matches(got.sum(0), expected):
            hints.append("its sum over axis 0 matches")
        elif _matches(got.mean(0), expected):
            hints.append("its mean over axis 0 matches (the per-sample rows were not divided by n)")
    elif len(exp) == 1 and got.shape == (n,) and n > 1:
        hints.append("reduced over the wrong axis (axis=1 where the batch is axis 0?)")
    elif got.size == expected.size and got.shape != exp:
        if got.squeeze().shape == exp and _matches(got.reshape(exp), expected):
            hints.append("an extra axis of length 1 (keepdims=True?); its values match once squeezed")
        else:
            hints.append("the same number of entries, arranged differently")
    elif got.ndim == 0:
        hints.append("a single number where an array belongs")
    elif name == "W2" and got.shape == (problem.D, problem.K):
        hints.append("the shape of X.T @ dZ2: the network's input X where the hidden activation A1 belongs?")
    elif name == "W1" and got.shape == (problem.H, problem.H):
        hints.append("the shape of A1.T @ dZ1: the hidden activation A1 where the input X belongs?")
    return "shape", head + (": " + "; ".join(hints) if hints else "")


def _normalise(result, problem, expected):
    """The result as {name: float64 array or None}, the returned shapes, and the findings."""
    leaves = dict.fromkeys(PARAM_NAMES)
    shapes, dtypes = dict.fromkeys(PARAM_NAMES), dict.fromkeys(PARAM_NAMES)
    status = dict.fromkeys(PARAM_NAMES, "ok")
    findings = []  # (code, params, message, level)
    if not isinstance(result, Mapping):
        what = _describe_value(result)
        hint = " (a missing `return`?)" if result is None else ""
        findings.append(
            ("type", (), f"returned {what}{hint} instead of a dict with keys W1, b1, W2, b2", "error")
        )
        return leaves, shapes, dtypes, dict.fromkeys(PARAM_NAMES, "type"), findings
    try:
        keys = list(result.keys())
    except Exception as e:  # a Mapping that cannot list its keys
        findings.append(("type", (), f"could not read the returned mapping's keys: {e!r}", "error"))
        return leaves, shapes, dtypes, dict.fromkeys(PARAM_NAMES, "type"), findings
    missing = [k for k in PARAM_NAMES if k not in keys]
    extra = [k for k in keys if k not in PARAM_NAMES]
    hints = {repr(k): _key_hint(k) for k in extra}
    renames = [f"{k} for {h!r}" for k, h in hints.items() if h in missing]
    if missing:
        returned = ", ".join(repr(k) for k in keys) or "none"
        msg = f"no gradient for {', '.join(missing)} (keys returned: {returned})"
        if renames:
            msg += f"; name the keys as params names them: {', '.join(renames)}?"
        findings.append(("missing_key", tuple(missing), msg, "error"))
        for k in missing:
            status[k] = "missing"
    if extra:
        unexpected = ", ".join(repr(k) for k in extra)
        msg = f"unexpected key(s) {unexpected}: the result should have exactly W1, b1, W2, b2"
        if renames:
            msg += f" ({', '.join(renames)}?)"
        findings.append(("extra_key", (), msg, "error"))
    for name in PARAM_NAMES:
        if name not in keys:
            continue
        try:
            value = result[name]
        except Exception as e:
            findings.append(("type", (name,), f"reading {name} from the result raised {e!r}", "error"))
            status[name] = "type"
            continue
        if isinstance(value, str | bytes) or value is None:
            findings.append(
                ("type", (name,), f"{name} is {_describe_value(value)}, not a numeric array", "error")
            )
            status[name] = "type"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = np.asarray(value)
        except Exception as e:
            findings.append(
                (
                    "type",
                    (name,),
                    f"{name} ({_describe_value(value)}) is not an array: {type(e).__name__}: {e}",
                    "error",
                )
            )
            status[name] = "type"
            continue
        if arr.dtype.kind not in "fiu":
            findings.append(
                (
                    "type",
                    (name,),
                    f"{name} ({_describe_value(value)}) has dtype {arr.dtype}, not a real number type",
                    "error",
                )
            )
            status[name] = "type"
            continue
        if isinstance(value, list | tuple):
            findings.append(
                (
                    "not_array",
                    (name,),
                    f"{name} is a {type(value).__name__}, not a numpy array; compared as np.asarray({name})",
                    "note",
                )
            )
        shapes[name], dtypes[name] = tuple(arr.shape), str(arr.dtype)
        if arr.shape != expected[name].shape:
            code, msg = _shape_finding(name, arr, problem, expected[name])
            findings.append((code, (name,), msg, "error"))
            status[name] = code
            continue
        arr64 = arr.astype(np.float64)
        if not np.isfinite(arr64).all():
            bad = ~np.isfinite(arr64)
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            counts = f"{int(np.isnan(arr64).sum())} NaN and {int(np.isinf(arr64).sum())} inf"
            findings.append(
                (
                    "nonfinite",
                    (name,),
                    f"{name} has {counts} entries of {arr.size} (the first at {list(first)})",
                    "error",
                )
            )
            status[name] = "nonfinite"
            continue
        if arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
            status[name] = "dtype"
        leaves[name] = arr64
    return leaves, shapes, dtypes, status, findings


# -------------------------------------------------------------------------------------- diagnoses


def _ordered(params):
    return tuple(p for p in PARAM_NAMES if p in params)


def _names(params):
    params = [p for p in PARAM_NAMES if p in params]
    return params[0] if len(params) == 1 else ", ".join(params[:-1]) + " and " + params[-1]


def _verb(params):
    return "is" if len(params) == 1 else "are"


_SCALE_FORMS = (  # label, factor(problem), what it suggests
    ("n", lambda p: p.n, "off by a factor of n, the batch size", "a sum over the batch instead of a mean?"),
    ("1/n", lambda p: 1 / p.n, "off by a factor of 1/n", "divided by the batch size twice?"),
    (
        "n/(n-1)",
        lambda p: p.n / (p.n - 1) if p.n > 1 else None,
        "off by a factor of n/(n-1)",
        "divided by n - 1 instead of n?",
    ),
    (
        "K",
        lambda p: p.K,
        "off by a factor of K, the number of classes",
        "a sum over the classes where there should be none?",
    ),
    ("1/K", lambda p: 1 / p.K, "off by a factor of 1/K", "a mean over the classes instead of a sum?"),
    (
        "1/(nK)",
        lambda p: 1 / (p.n * p.K),
        "off by a factor of 1/(n K)",
        "a mean over all n x K entries instead of over the samples?",
    ),
    ("2", lambda p: 2.0, "off by a factor of 2", "the 2 from differentiating a square, twice or not at all?"),
    ("1/2", lambda p: 0.5, "off by a factor of 1/2", "a stray 1/2 (the 2 from differentiating a square)?"),
)


class _Analysis:
    """The numeric diagnoses, over the leaves compared on each problem."""

    def __init__(self, problems, expected, got, cmp, loss, options):
        self.problems, self.expected, self.got, self.cmp = problems, expected, got, cmp
        self.loss, self.options = loss, options
        self.out = []  # (code, params, message)
        self._inter = {}
        self._per_sample = {}

    def compared(self, name):
        return [p for p in self.problems if self.cmp[p.name].get(name) is not None]

    def failing(self, name):
        return [p for p in self.compared(name) if not self.cmp[p.name][name]["ok"]]

    def inter(self, p):
        if p.name not in self._inter:
            self._inter[p.name] = _intermediates(p, self.loss, self.options)
        return self._inter[p.name]

    def per_sample(self, p):
        if p.name not in self._per_sample:
            self._per_sample[p.name] = _per_sample_gradients(p, self.loss, self.options)
        return self._per_sample[p.name]

    def add(self, code, params, message):
        self.out.append((code, tuple(params), message))

    # ---- the checks, each removing what it explains from `todo`

    def wrong_loss(self, todo):
        from reference import manual_gradients

        leaves = [k for k in PARAM_NAMES if self.compared(k)]
        for alt in LOSS_NAMES:
            if alt == self.loss:
                continue
            differs, same = False, True
            for p in self.problems:
                g = manual_gradients(p.params, p.X, p.Y, alt)
                for k in leaves:
                    if self.got[p.name][k] is None:
                        continue
                    same = same and _matches(self.got[p.name][k], g[k])
                    differs = differs or not _matches(self.expected[p.name][k], g[k])
            if same and differs:
                self.add(
                    "wrong_loss", leaves, f"these are the gradients of the {alt!r} loss, not of {self.loss!r}"
                )
                todo.clear()
                return

    def scale(self, todo):
        groups = {}
        for k in sorted(todo, key=PARAM_NAMES.index):
            factors = {}
            for p in self.compared(k):
                g, e = self.got[p.name][k], self.expected[p.name][k]
                if self.cmp[p.name][k]["ok"]:
                    factors[p.name] = 1.0
                    continue
                if not np.any(g):
                    factors[p.name] = 0.0
                    continue
                ee = float(np.vdot(e, e))
                c = float(np.vdot(g, e)) / ee if ee > 0 else math.nan
                if not (math.isfinite(c) and c != 0 and _matches(g, c * e)):
                    break
                factors[p.name] = c
            else:
                key = self._classify(factors)
                if key is not None:
                    groups.setdefault(key, []).append(k)
        for key, ks in groups.items():
            kind, message = key
            self.add(kind, ks, f"{_names(ks)}: {message}")
            if kind == "scale" and "wrong sign" in message:
                self.add("sign", ks, f"{_names(ks)}: the wrong sign (minus a multiple of the gradient)")
            todo.difference_update(ks)

    def _classify(self, factors):
        """(code, message) for per-problem factors {problem: c}, or None."""
        byname = {p.name: p for p in self.problems}
        bad = {n: c for n, c in factors.items() if not _close(c, 1.0)}
        right = [n for n in factors if n not in bad]
        right_txt = f"; right on {', '.join(right)}" if right else ""
        if bad and all(c == 0.0 for c in bad.values()):
            return "zero", f"all zeros (on {', '.join(bad)}{right_txt})"
        if any(c == 0.0 for c in bad.values()):
            return None
        if all(_close(c, -1.0) for c in bad.values()) and not right:
            return (
                "sign",
                "the wrong sign (minus the gradient: t - p where p - t belongs, or gradient ascent?)",
            )
        for sign, signed in ((1.0, ""), (-1.0, "minus ")):
            for _label, f, what, why in _SCALE_FORMS:
                values = {n: f(byname[n]) for n in factors}
                if any(v is None for v in values.values()):
                    continue
                if all(_close(factors[n], sign * v) for n, v in values.items()):
                    vals = ", ".join(f"{_g(values[n])} on {n}" for n in bad)
                    extra = " and the wrong sign" if sign < 0 else ""
                    return "scale", f"{signed}{what}{extra} ({vals}{right_txt}): {why}"
        cs = list(bad.values())
        if not right and all(_close(c, cs[0]) for c in cs):
            extra = " and the wrong sign" if cs[0] < 0 else ""
            return "scale", f"off by a constant factor of {_g(abs(cs[0]))}{extra} on every problem"
        vals = ", ".join(f"{_g(c)} on {n}" for n, c in bad.items())
        return (
            "scale",
            f"a multiple of the right gradient, by a factor that changes between problems "
            f"({vals}{right_txt})",
        )

    def subset(self, todo):
        ks = [k for k in PARAM_NAMES if k in todo]
        if not ks:
            return
        descriptions, any_subset, uneven = [], False, False
        right = []
        for p in self.problems:
            if not all(self.got[p.name][k] is not None for k in ks):
                continue  # reported as a structural problem there
            if all(self.cmp[p.name][k]["ok"] for k in ks):
                right.append(p.name)
                continue
            G = self.per_sample(p)
            A = np.concatenate([G[k].reshape(p.n, -1) for k in ks], axis=1).T  # (P, n)
            y = np.concatenate([self.got[p.name][k].ravel() for k in ks])
            if A.shape[0] < p.n + 2:
                return
            w, _, rank, _ = np.linalg.lstsq(A, y, rcond=None)
            if rank < p.n:
                return
            desc = self._weights(p, w, A, y, ks)
            if desc is None:
                return
            text, is_subset, is_uneven = desc
            any_subset |= is_subset
            uneven |= is_uneven
            descriptions.append(f"on {p.name} {text}")
        if not descriptions or not (any_subset or uneven):
            return
        tail = f"; right on {', '.join(right)}" if right else ""
        if any_subset:
            self.add(
                "subset_of_samples",
                ks,
                f"{_names(ks)} {_verb(ks)} the gradient of only part of the batch: "
                f"{'; '.join(descriptions)}{tail}",
            )
        else:
            self.add(
                "batch", ks, f"{_names(ks)} weight the samples unevenly: {'; '.join(descriptions)}{tail}"
            )
        todo.difference_update(ks)

    def _weights(self, p, w, A, y, ks):
        """Describe per-sample weights w that reproduce y = A w; None if no exact description."""
        n = p.n
        wmax = float(np.abs(w).max(initial=0.0))
        used = np.abs(w) > 1e-3 * wmax if wmax > 0 else np.zeros(n, bool)
        S = [int(i) for i in np.flatnonzero(used)]
        expected = np.concatenate([self.expected[p.name][k].ravel() for k in ks])
        if not np.any(y):
            return "no sample at all (all zeros)", True, False
        # exact candidates: a common weight on the samples used
        own = "that sample's own gradient" if len(S) == 1 else f"averaged over the {len(S)} used"
        for v, how in (
            (1 / n, f"divided by the whole batch's n = {n}"),
            (1 / max(len(S), 1), own),
            (1.0, "summed, not divided by n"),
        ):
            snapped = np.where(used, v, 0.0)
            if _matches(y, A @ snapped):
                if len(S) == n:
                    return None  # a pure scale: handled by `scale`
                return f"{_which(S, n)}, {how}", True, False
        if _matches(y, A @ w) and not _matches(y, expected):
            if len(S) < n:
                return f"{_which(S, n)}, weighted unevenly ({_wtxt(w)})", True, True
            return (
                f"every sample, weighted unevenly ({_wtxt(w)}; 1/n = {_g(1 / n)} each is right)",
                False,
                True,
            )
        return None

    def hidden_layer(self, todo):
        ks = [k for k in ("W1", "b1") if k in todo]
        if not ks:
            return
        probs = [p for p in self.problems if all(self.got[p.name][k] is not None for k in ks)]
        if not probs:
            return
        for label, deriv, why in _ACTIVATION_DERIVATIVES:
            verdicts = [self._hidden_matches(p, ks, deriv) for p in probs]
            if True in verdicts and False not in verdicts:
                self.add(
                    "activation",
                    ks,
                    f"{_names(ks)} match a backprop whose tanh derivative was {label} instead of "
                    f"1 - A1**2 {why}",
                )
                todo.difference_update(ks)
                return
        rates = []
        for p in probs:
            it = self.inter(p)
            deriv = 1 - it["A1"] ** 2
            dW2 = self.expected[p.name]["W2"]
            F = (it["dZ2"] @ dW2.T) * deriv  # the change of dZ1 per unit of learning rate
            Fs = {"W1": it["X"].T @ F, "b1": F.sum(0)}
            e = np.concatenate([self.expected[p.name][k].ravel() for k in ks])
            f = np.concatenate([Fs[k].ravel() for k in ks])
            g = np.concatenate([self.got[p.name][k].ravel() for k in ks])
            ff = float(f @ f)
            if ff == 0:
                return
            c = float((e - g) @ f) / ff
            if not (c != 0 and _matches(g, e - c * f)):
                break
            rates.append(c)
        else:
            if rates and all(_close(c, rates[0]) for c in rates):
                self.add(
                    "early_update",
                    ks,
                    f"{_names(ks)} match a backprop that sent the error back through "
                    f"W2 - {_g(rates[0])} * dW2, W2 after its update (learning rate {_g(rates[0])}): "
                    "compute every gradient before updating any weight",
                )
                todo.difference_update(ks)

    def _hidden_matches(self, p, ks, deriv):
        it = self.inter(p)
        dZ1 = it["dA1"] * deriv(it["A1"], it["Z1"])
        hyp = {"W1": it["X"].T @ dZ1, "b1": dZ1.sum(0)}
        if all(_matches(self.expected[p.name][k], hyp[k]) for k in ks):
            return None  # this problem cannot tell the hypothesis from the right derivative
        return all(_matches(self.got[p.name][k], hyp[k]) for k in ks)

    def output_layer(self, todo):
        if "W2" not in todo:
            return
        probs = self.compared("W2")
        if probs and all(
            _matches(self.got[p.name]["W2"], self.inter(p)["Z1"].T @ self.inter(p)["dZ2"]) for p in probs
        ):
            self.add(
                "layer_input",
                ["W2"],
                "W2 matches Z1.T @ dZ2 / n: the pre-activation Z1 where the layer's input "
                "A1 = tanh(Z1) belongs",
            )
            todo.discard("W2")

    def few_entries(self, todo):
        for k in [k for k in PARAM_NAMES if k in todo]:
            found = {}  # index -> [(problem, relative error)]
            failing = self.failing(k)
            for p in failing:
                c = self.cmp[p.name][k]
                bad = np.argwhere(c["bad"])
                if len(bad) > 3 or 3 * len(bad) > c["bad"].size:
                    break
                e, g = self.expected[p.name][k], self.got[p.name][k]
                for idx in map(tuple, bad):
                    rel = abs(g[idx] - e[idx]) / max(abs(e[idx]), abs(g[idx]))
                    found.setdefault(tuple(map(int, idx)), []).append(f"{_fmt(rel)} on {p.name}")
            else:
                if failing:
                    which = "entry" if len(found) == 1 else "entries"
                    parts = [f"{list(idx)} (relative error {', '.join(v)})" for idx, v in found.items()]
                    self.add(
                        "few_entries",
                        [k],
                        f"only {which} {'; '.join(parts)} of {k} {_verb(list(found))} wrong, the rest match",
                    )
                    todo.discard(k)


_ACTIVATION_DERIVATIVES = (  # what was used for tanh'(Z1), as a function of (A1, Z1); why
    ("1 (none at all)", lambda A, Z: np.ones_like(A), "(dZ1 = dA1: multiply by 1 - A1**2)"),
    ("A1", lambda A, Z: A, "(A1 where 1 - A1**2 belongs)"),
    ("1 - A1", lambda A, Z: 1 - A, "(the square is missing)"),
    ("1 + A1**2", lambda A, Z: 1 + A**2, "(a sign slip)"),
    ("1 - Z1**2", lambda A, Z: 1 - Z**2, "(the pre-activation Z1 where A1 = tanh(Z1) belongs)"),
    ("1 - tanh(A1)**2", lambda A, Z: 1 - np.tanh(A) ** 2, "(tanh applied to A1 again)"),
    ("A1 (1 - A1)", lambda A, Z: A * (1 - A), "(the sigmoid's derivative)"),
    ("(Z1 > 0)", lambda A, Z: (Z > 0).astype(float), "(the ReLU's derivative)"),
    ("(1 - A1**2)**2", lambda A, Z: (1 - A**2) ** 2, "(applied twice)"),
    ("A1**2", lambda A, Z: A**2, "(the 1 - is missing)"),
)


def _close(a, b, rtol=1e-6):
    return a is not None and b is not None and abs(a - b) <= rtol * max(abs(a), abs(b))


def _g(x):
    return f"{x:.6g}"


def _fmt(x):
    if x is None:
        return "-"
    return f"{x:.1e}"


def _wtxt(w):
    shown = ", ".join(_g(float(v)) for v in w[:8])
    return f"weights {shown}{', ...' if len(w) > 8 else ''}"


def _which(S, n):
    """The samples S of 0..n-1 in words."""
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
    if len(missing) <= len(S):
        return f"{len(S)} of the {n} samples (missing {missing})"
    return f"only samples {S} of {n}"


def _json_float(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _json_float(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ------------------------------------------------------------------------------------ the checker


def check_backprop(fn, loss="ce", soft_targets=False, seed=0, **loss_options):
    """Check a hand-written backprop ``fn(params, X, Y) -> grads`` against ``jax.grad``.

    Args:
        fn: called as ``fn(params, X, Y)`` with COPIES of a params dict (``W1 (D, H)``, ``b1 (H,)``,
            ``W2 (H, K)``, ``b2 (K,)``, float64 numpy arrays), ``X (n, D)`` float64 and integer labels
            ``Y (n,)`` (target distributions ``(n, K)`` with ``soft_targets``); it must return the
            gradients of the MEAN loss over the batch as a dict with the same keys and shapes.
        loss: "ce", "kl", "mse", "smooth_ce", "focal" or "hinge" (the network's tanh hidden layer).
        soft_targets: pass Dirichlet-distributed target rows instead of labels.
        seed: the problems' random seed (a non-negative int).
        **loss_options: label_smoothing (smooth_ce), gamma (focal), margin (hinge).
    Returns:
        A ``Report``: ``.ok``, per-parameter errors, diagnoses with codes (``CODES``), ``.to_table()``,
        ``.to_json()``. Whatever ``fn`` returns is reported, never raised.
    Raises:
        GradcheckUsageError: a bad argument, or ``fn`` raised (``.formatted_traceback`` has its traceback).
    """
    if not callable(fn):
        raise GradcheckUsageError(f"the function to check is not callable: {fn!r}")
    if loss not in LOSS_NAMES:
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
    options = {k: float(v) for k, v in loss_options.items()}

    problems, expected = _make_problems(seed, loss, bool(soft_targets), options)
    fd_problem = next(p for p in problems if p.name == _FD_PROBLEM)
    ref = _reference_check(fd_problem, expected[fd_problem.name], loss, options)

    got, cmp, shapes, dtypes, status = {}, {}, {}, {}, {}
    findings = {}  # (code, params, level, message for notes) -> [message, problems]
    for p in reversed(problems):  # the largest first: its messages are kept (n, D, H, K all differ)
        result, call_notes = _call_user(fn, p)
        with np.errstate(all="ignore"):
            leaves, sh, dt, st, found = _normalise(result, p, expected[p.name])
            cmp[p.name] = {
                k: None if leaves[k] is None else _compare(leaves[k], expected[p.name][k])
                for k in PARAM_NAMES
            }
        got[p.name], shapes[p.name], dtypes[p.name], status[p.name] = leaves, sh, dt, st
        for code, params, message, level in found:
            key = (code, params, level, message if level == "note" else None)
            findings.setdefault(key, [message, []])[1].append(p.name)
        for code, params, message in call_notes:
            findings.setdefault((code, params, "note", message), [message, []])[1].append(p.name)
    problems_in_order = [p.name for p in problems]

    diagnoses = []
    merged = {}  # one diagnosis per code: its messages joined, its parameters united
    for (code, params, level, _), (message, where) in findings.items():
        if level == "error":
            entry = merged.setdefault(code, ([], []))
            entry[0].append(message + _where(where, problems_in_order))
            entry[1].extend(params)
    for code, (messages, params) in merged.items():
        diagnoses.append(Diagnosis(code, "; ".join(messages), _ordered(params)))

    # float32 (or narrower) results: say how well they agree
    f32, narrow_errs, narrow_types, narrow_where = set(), {}, set(), set()
    for k in PARAM_NAMES:
        narrow = [p for p in problems if status[p.name][k] == "dtype"]
        if narrow:
            narrow_errs[k] = max(cmp[p.name][k]["max_rel_err"] for p in narrow)
            narrow_types.update(dtypes[p.name][k] for p in narrow)
            narrow_where.update(p.name for p in narrow)
    if narrow_errs:
        ks = list(narrow_errs)
        worst = max(narrow_errs.values())
        f32 = {k for k, e in narrow_errs.items() if e <= 1e-4}
        verdict = (
            f"apart from that they agree to {_fmt(worst)} relative, about float32 rounding: the formulas "
            "look right"
            if len(f32) == len(ks)
            else f"and they are off by up to {_fmt(worst)} relative, more than float32 rounding explains"
        )
        diagnoses.append(
            Diagnosis(
                "dtype",
                f"{_names(ks)}: {'/'.join(sorted(narrow_types))}, whose rounding (6e-8 relative per "
                f"operation) this float64 check cannot tell apart from a bug; compute in float64 ({verdict})"
                + _where(sorted(narrow_where), problems_in_order),
                tuple(ks),
            )
        )

    analysis = _Analysis(problems, expected, got, cmp, loss, options)
    todo = {k for k in PARAM_NAMES if analysis.failing(k)} - f32
    structural = any(d.level == "error" for d in diagnoses)
    steps = (
        analysis.wrong_loss,
        analysis.scale,
        analysis.subset,
        analysis.hidden_layer,
        analysis.output_layer,
        analysis.few_entries,
    )
    for step in steps:
        if not todo:
            break
        # best effort: the verdict does not depend on any diagnosis
        with np.errstate(all="ignore"), contextlib.suppress(Exception):
            step(todo)
    failing = {k for k in PARAM_NAMES if analysis.failing(k)}
    all_compared = all(got[p.name][k] is not None for p in problems for k in PARAM_NAMES)
    if failing and all_compared and not structural:
        layer = _layer_message(failing, todo)
        if layer:
            analysis.add("layer", sorted(failing, key=PARAM_NAMES.index), layer)
    n1 = problems[0]
    if todo and all(cmp[n1.name][k] is not None and cmp[n1.name][k]["ok"] for k in PARAM_NAMES):
        analysis.add(
            "batch",
            sorted(todo, key=PARAM_NAMES.index),
            f"right on {n1.name} (one sample) but wrong on larger batches: the mistake is in how the samples "
            "are combined (a sum or mean over the wrong axis, indexing, or broadcasting over the batch)",
        )
    mentioned = {k for _, params, _ in analysis.out for k in params} | f32
    for k in sorted(failing - mentioned, key=PARAM_NAMES.index):
        worst = max(analysis.failing(k), key=lambda p: cmp[p.name][k]["max_entry_rel_err"])
        c = cmp[worst.name][k]
        analysis.add(
            "mismatch",
            [k],
            f"{k} differs from the expected gradient (worst entry {list(c['worst_index'])} on {worst.name}, "
            f"relative error {_fmt(c['max_entry_rel_err'])}); no simple pattern (scale, sign, subset of "
            "samples, activation derivative) explains it",
        )
    diagnoses += [Diagnosis(code, message, params) for code, params, message in analysis.out]
    if not ref["ok"]:
        diagnoses.append(
            Diagnosis(
                "reference",
                f"the checker's own reference (jax.grad) disagrees with finite differences on "
                f"{ref['problem']} (max rel err {_fmt(ref['max_rel_err'])}): a bug in mlpnn_jax, "
                "please report it",
            )
        )
    notes = {}  # code -> [(message, params)], in order
    for (code, params, level, _), (message, where) in findings.items():
        if level == "note":
            notes.setdefault(code, []).append((message + _where(where, problems_in_order), params))
    for code, items in notes.items():
        shown = "; ".join(m for m, _ in items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        prefix = "the function warned: " if code == "warning" else ""
        params = _ordered([k for _, ps in items for k in ps])
        diagnoses.append(Diagnosis(code, f"{prefix}{shown}{more}", params, "note"))

    checks = {}
    for k in PARAM_NAMES:
        checks[k] = _param_check(k, problems, cmp, shapes, dtypes, status)
    return Report(
        function=_fn_name(fn),
        loss=loss,
        options=options,
        soft_targets=bool(soft_targets),
        seed=seed,
        problems=tuple(p.describe() for p in problems),
        params=checks,
        diagnoses=tuple(diagnoses),
        reference_check=ref,
    )


def _where(names, order):
    if len(names) == len(order):
        return ""
    names = sorted(names, key=order.index)
    return f" [on {', '.join(names)}]"


def _layer_message(failing, unexplained):
    right = [k for k in PARAM_NAMES if k not in failing]
    wrong = [k for k in PARAM_NAMES if k in failing]
    head = f"{_names(wrong)} {_verb(wrong)} wrong, {_names(right)} {_verb(right)} right" if right else ""
    if failing == {"W1", "b1"}:
        return (
            f"{head}: the error is in the backward pass through the hidden layer (the tanh derivative "
            "1 - A1**2, or dA1 = dZ2 @ W2.T), since dZ2 itself is right"
        )
    if failing == {"W1"}:
        return f"{head}: dZ1 is right (b1 is), so the mistake is in dW1 = X.T @ dZ1 / n"
    if failing == {"b1"}:
        return f"{head}: dZ1 is right (W1 is), so the mistake is in db1 = dZ1.sum(axis=0) / n"
    if failing <= {"W2", "b2"}:
        return (
            f"{head}: since W1 and b1 are right, the error dZ2 sent back to the hidden layer is right; the "
            "mistake is in the output layer's own gradients (dW2 = A1.T @ dZ2 / n, db2 = dZ2.sum(axis=0) / n)"
        )
    if failing == {"W1", "W2"}:
        return (
            f"{head}: the errors dZ are right (the biases are); the mistake is in the products with "
            "the layer inputs (X.T @ dZ1, A1.T @ dZ2)"
        )
    if failing == {"b1", "b2"}:
        return (
            f"{head}: the errors dZ are right (the weights are); the mistake is in the biases' sums "
            "over the batch"
        )
    if failing == set(PARAM_NAMES) and unexplained == failing:
        return (
            "every parameter is wrong: the mistake is probably where the backward pass starts, in "
            "dZ2 = dL/dZ2 (the loss's gradient with respect to the logits), and propagates to every layer"
        )
    return None


def _param_check(name, problems, cmp, shapes, dtypes, status):
    order = ["missing", "type", "transposed", "shape", "nonfinite", "mismatch", "dtype", "ok"]
    per, worst_status = [], "ok"
    abs_errs, rel_errs, entry_errs = [], [], []
    worst = None
    got_syms = []
    for p in problems:
        c = cmp[p.name][name]
        st = status[p.name][name]
        if c is not None and not c["ok"] and st == "ok":
            st = "mismatch"
        if order.index(st) < order.index(worst_status):
            worst_status = st
        shape = shapes[p.name][name]
        if shape is not None:
            got_syms.append((p.n > 1, p.sym(shape)))
        entry = {
            "problem": p.name,
            "status": st,
            "expected_shape": list(p.params[name].shape),
            "got_shape": None if shape is None else list(shape),
            "dtype": dtypes[p.name][name],
        }
        if c is not None:
            entry.update(
                max_abs_err=c["max_abs_err"],
                max_rel_err=c["max_rel_err"],
                max_entry_rel_err=c["max_entry_rel_err"],
                worst_index=list(c["worst_index"]),
                ok=c["ok"] and st == "ok",
            )
            abs_errs.append(c["max_abs_err"])
            rel_errs.append(c["max_rel_err"])
            if not entry_errs or c["max_entry_rel_err"] > max(entry_errs):
                worst = (p.name, c["worst_index"])
            entry_errs.append(c["max_entry_rel_err"])
        else:
            entry["ok"] = False
        per.append(entry)
    if worst_status == "missing":
        got_sym = None
    else:
        # n1-small cannot tell n from 1: its shapes show only when no other problem has one
        uniq = list(dict.fromkeys(sym for big, sym in got_syms if big or not any(b for b, _ in got_syms)))
        got_sym = " / ".join(uniq) if uniq else None
    return ParamCheck(
        name=name,
        expected_shape=_EXPECTED_SYM[name],
        got_shape=got_sym,
        status=worst_status,
        max_abs_err=max(abs_errs) if abs_errs else None,
        max_rel_err=max(rel_errs) if rel_errs else None,
        max_entry_rel_err=max(entry_errs) if entry_errs else None,
        worst=worst,
        per_problem=tuple(per),
    )


# ------------------------------------------------------------------------------------------- CLI


def _load_target(target, err):
    """(function, None) or (None, error message) for "FILE.py:FUNCTION"; prints import tracebacks."""
    if ":" not in target:
        return None, f"expected FILE.py:FUNCTION; got {target!r}"
    file, func = target.rsplit(":", 1)
    if not file or not func:
        return None, f"expected FILE.py:FUNCTION; got {target!r}"
    if not func.replace(".", "_").isidentifier():
        return None, f"{func!r} is not a function name (expected FILE.py:FUNCTION)"
    path = Path(file).expanduser()
    if path.suffix != ".py":
        return None, f"{file}: not a .py file (expected FILE.py:FUNCTION)"
    if not path.is_file():
        return None, f"{file}: no such file"
    path = path.resolve()
    name = f"_mlpnn_gradcheck_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return None, f"{file}: cannot be loaded as a module"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        err.write(_import_traceback(e, path))
        return None, f"importing {file} raised {type(e).__name__}: {e}"
    finally:
        sys.modules.pop(name, None)
    obj = module
    for part in func.split("."):
        if not hasattr(obj, part):
            defined = sorted(
                k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == name
            )
            known = f" (functions defined there: {', '.join(defined)})" if defined else ""
            return None, f"{file} has no function {func!r}{known}"
        obj = getattr(obj, part)
    if not callable(obj):
        return None, f"{file}:{func} is {_describe_value(obj)}, not a function"
    return obj, None


def _import_traceback(exc, path):
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_gradcheck(
    target, loss="ce", soft_targets=False, as_json=False, seed=0, out=None, err=None, **loss_options
):
    """``mlpnn-jax gradcheck FILE.py:FUNCTION``: load, check, print; returns the exit code.

    Prints the Report's table (JSON with ``as_json``) to ``out`` (default sys.stdout). Returns 0 when
    everything matches, 1 when anything does not, 2 for a usage error (bad FILE:FUNCTION, no such file
    or function, the file or the function raised: its traceback, then one ``error:`` line, go to
    ``err``, default sys.stderr).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    directory = None
    if ":" in target:
        directory = str(Path(target.rsplit(":", 1)[0]).expanduser().resolve().parent)
    added = directory is not None and directory not in sys.path
    if added:
        sys.path.insert(0, directory)  # so the file's own imports (its neighbours) work
    # with --json, whatever the file prints goes to err, keeping out parseable
    quiet = contextlib.redirect_stdout(err) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            fn, problem = _load_target(target, err)
            if problem is not None:
                err.write(f"error: {problem}\n")
                return 2
            try:
                report = check_backprop(fn, loss=loss, soft_targets=soft_targets, seed=seed, **loss_options)
            except GradcheckUsageError as e:
                if e.formatted_traceback:
                    err.write(e.formatted_traceback)
                err.write(f"error: {e}\n")
                return 2
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    else:
        out.write(report.to_table() + "\n")
    return 0 if report.ok else 1
