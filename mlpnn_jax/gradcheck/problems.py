"""The test problems: n, D, H, K all different, so that every shape and every probe is unambiguous.

- ``n1-small``: one sample, small weights (unsaturated units);
- ``n7-small``: n = 7 (odd), the same sizes: a transpose or a sum over the wrong axis changes a shape;
- ``n32-saturated``: n = 32, larger sizes, the notebook's unscaled N(0, 1) first layer and U[0, 1)
  biases, the last layer three times N(0, 1): saturated hidden units and outputs.

Deeper networks take one more hidden size per layer from ``_HIDDEN``, all distinct from D, K and n.
A draw is redrawn (from the same seeded stream) when it sits within ``KINK_MIN`` of a kink (ReLU,
hinge), or when two float64 references (jax.grad and the numpy backprop) disagree by more than
``COND_RTOL``: there the gradient is rounding noise and no tolerance could judge it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlpnn_jax.gradcheck import compare, models

SPECS = (("n1-small", 1, "small"), ("n7-small", 7, "small"), ("n32-saturated", 32, "saturated"))
FD_PROBLEM = "n7-small"
_SIZES = {"small": (5, (4, 6, 8, 9), 3), "saturated": (12, (9, 11, 13, 14), 10)}  # D, hidden, K
REGIMES = {
    "small": "small weights (0.5 N(0,1), x sqrt(16 / fan-in) past 16; biases 0.1 N(0,1)): unsaturated",
    "saturated": "the notebook's N(0,1) first layer and U[0,1) biases, last layer 3 N(0,1): saturated",
}
KINK_MIN = 1e-4
COND_RTOL = 1e-10
MAX_DRAWS = 100
SATURATED_LAST = 3.0
SMALL_FAN_IN = 16  # the drawn sizes' small fan-ins are at most 9: their weights are 0.5 N(0, 1) as before


@dataclasses.dataclass(frozen=True)
class Problem:
    """One test problem: canonical float64 params, X (n, D), Y (n,) labels or (n, K) distributions."""

    name: str
    n: int
    sizes: tuple
    regime: str
    params: dict
    X: np.ndarray
    Y: np.ndarray
    redrawn: int = 0

    @property
    def D(self):
        return self.sizes[0]

    @property
    def K(self):
        return self.sizes[-1]

    def letters(self):
        """{size: letter}: D, H (or H1, H2, ...), K, and n when n > 1."""
        hidden = self.sizes[1:-1]
        names = {self.D: "D"} if self.K == 1 else {self.D: "D", self.K: "K"}  # one output unit: 1
        for i, h in enumerate(hidden, 1):
            names[h] = "H" if len(hidden) == 1 else f"H{i}"
        if self.n > 1:
            names[self.n] = "n"
        return names

    def sym(self, shape):
        """A shape in letters, e.g. (D, H)."""
        names = self.letters()
        parts = [names.get(d, str(d)) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def describe(self):
        hidden = self.sizes[1:-1]
        names = ["H"] if len(hidden) == 1 else [f"H{i}" for i in range(1, len(hidden) + 1)]
        sizes = dict(zip(["D", *names, "K"], self.sizes, strict=True))
        return {
            "name": self.name,
            "n": self.n,
            **sizes,
            "regime": REGIMES[self.regime],
            "redrawn": self.redrawn,
        }


def sizes_for(regime, num_layers, binary=False, fixed=None):
    """(D, H1, ..., K) for a network with ``num_layers`` weight layers (K = 1 when ``binary``), or the
    sizes the user's code fixes (``fixed``: every problem has them)."""
    if fixed is not None:
        return tuple(fixed)
    D, hidden, K = _SIZES[regime]
    return (D, *hidden[: num_layers - 1], 1 if binary else K)


def free_n(n, sizes):
    """n, or the next count that is none of the sizes (a user's fixed 784-32-10: n = 33), so that the
    batch axis stays unambiguous; one example is always n = 1."""
    while n > 1 and n in sizes:
        n += 1
    return n


def _draw(rng, n, sizes, regime, bias, soft):
    params, L = {}, len(sizes) - 1
    for i in range(1, L + 1):
        shape = (sizes[i - 1], sizes[i])
        if regime == "small":  # a fan-in past SMALL_FAN_IN (a user's fixed 784 inputs) is scaled down
            params[f"W{i}"] = 0.5 * min(1.0, (SMALL_FAN_IN / shape[0]) ** 0.5) * rng.standard_normal(shape)
            b = 0.1 * rng.standard_normal(sizes[i])
        else:
            params[f"W{i}"] = (SATURATED_LAST if i == L and L > 1 else 1.0) * rng.standard_normal(shape)
            b = rng.random(sizes[i])
        if bias:
            params[f"b{i}"] = b
    X = rng.random((n, sizes[0]))  # pixel-like inputs in [0, 1)
    K = sizes[-1]
    if K == 1:  # one sigmoid unit: 0/1 targets
        return params, X, rng.integers(0, 2, n)
    Y = rng.dirichlet(np.full(K, 0.5), n) if soft else rng.integers(0, K, n)
    return params, X, Y


def make(seed, num_layers, bias, net, soft=False, condition=True, binary=False, fixed=None):
    """The problems for ``net`` (a models.Net), and their expected gradients (jax.grad, float64).

    With ``condition=False`` only the kinks are avoided (no jax.grad: nothing compiled), and the
    expected gradients are the numpy backprop's. ``binary``: one output unit (K = 1), 0/1 labels.
    ``fixed``: the sizes the user's code fixes, for every problem.
    """
    problems, expected = [], {}
    for index, (name, n, regime) in enumerate(SPECS):
        rng = np.random.default_rng([seed, index])
        sizes = sizes_for(regime, num_layers, binary, fixed)
        n = free_n(n, sizes)
        best = None
        for attempt in range(MAX_DRAWS):
            params, X, Y = _draw(rng, n, sizes, regime, bias, soft)
            if models.kink_distance(net, params, X, Y) < KINK_MIN:
                continue
            problem = Problem(name, n, sizes, regime, params, X, Y, attempt)
            if not condition:
                best = (0.0, problem, models.backprop(net, params, X, Y))
                break
            e = models.gradients(net, params, X, Y)
            with np.errstate(all="ignore"):
                m = models.backprop(net, params, X, Y)
                disagreement = max(float(compare.entry_errors(m[k], e[k]).max()) for k in params)
            if best is None or disagreement < best[0]:
                best = (disagreement, problem, e)
            if disagreement <= COND_RTOL:
                break
        if best is None:
            raise RuntimeError(f"could not draw problem {name} away from the loss's kinks")
        problems.append(best[1])
        expected[name] = best[2]
    return problems, expected
