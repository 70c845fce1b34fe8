"""What both gallery truth tests share: the problem sizes, centred differences of an author's own loss,
and the error measure. The ground truth of every gallery label is that finite-difference gradient."""

import numpy as np

N, D, H, K = 7, 5, 4, 3  # all different, so no transpose or mix-up goes unnoticed
STEP = 1e-6
AGREE, DISAGREE = 1e-7, 1e-3


def finite_differences(loss, params):
    """Centred differences of ``loss()`` in every entry of every array in ``params`` (mutated in place)."""
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            p[idx] = orig + STEP
            up = loss()
            p[idx] = orig - STEP
            down = loss()
            p[idx] = orig
            g[idx] = (up - down) / (2 * STEP)
        grads.append(g)
    return grads


def relative_error(got, expected):
    """Largest entry-wise error over all parameters, relative to the largest expected entry."""
    scale = max(np.max(np.abs(e)) for e in expected)
    assert scale > 1e-4, "a degenerate problem: the gradient is almost zero"
    worst = 0.0
    for g, e in zip(got, expected, strict=True):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != e.shape:
            return np.inf
        worst = max(worst, np.max(np.abs(g - e)) / scale)
    return worst


def labels(rng, n=N, k=K):
    """Integer labels with every class present, so that no output unit's gradient is trivially zero."""
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    return rng.permutation(y)
