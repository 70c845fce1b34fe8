"""Per-example losses of logits; the caller reduces (as optax's losses do).

Each loss takes ``logits (..., K)`` and ``targets``, either integer labels ``(...)`` or target
distributions ``(..., K)``, and returns ``(...)``. Probabilities come from ``jax.nn.log_softmax``,
never from ``log(softmax(.))``, so no loss overflows or takes the log of 0.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from mlpnn_jax.names import DEFAULT_OPTIONS, LOSS_NAMES


def as_targets(targets, num_classes, dtype):
    """Integer labels (...) -> one-hot (..., K); distributions (..., K) pass through, cast to dtype."""
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        return jax.nn.one_hot(targets, num_classes, dtype=dtype)
    return targets.astype(dtype)


def cross_entropy(logits, targets):
    """-<t, log softmax(z)>."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(as_targets(targets, logits.shape[-1], logp.dtype) * logp, axis=-1)


def kl_divergence(logits, targets):
    """KL(t || softmax(z)) = <t, log t - log softmax(z)>, with 0 log 0 = 0 (xlogy)."""
    logp = jax.nn.log_softmax(logits)
    t = as_targets(targets, logits.shape[-1], logp.dtype)
    return jnp.sum(xlogy(t, t) - t * logp, axis=-1)


def smooth_cross_entropy(logits, targets, label_smoothing=DEFAULT_OPTIONS["label_smoothing"]):
    """Cross-entropy against (1 - eps) t + eps / K."""
    k = logits.shape[-1]
    t = as_targets(targets, k, logits.dtype)
    return cross_entropy(logits, (1 - label_smoothing) * t + label_smoothing / k)


def mse(logits, targets):
    """sum_k (softmax(z)_k - t_k)^2, the squared error on the probabilities (the Brier score)."""
    p = jax.nn.softmax(logits)
    return jnp.sum((p - as_targets(targets, logits.shape[-1], p.dtype)) ** 2, axis=-1)


def focal(logits, targets, gamma=DEFAULT_OPTIONS["gamma"]):
    """-sum_k t_k (1 - p_k)^gamma log p_k (Lin et al., 2017); gamma = 0 is cross-entropy."""
    logp = jax.nn.log_softmax(logits)
    q = -jnp.expm1(logp)  # 1 - p, exact when p is near 1
    t = as_targets(targets, logits.shape[-1], logp.dtype)
    # q**gamma has an infinite derivative at q = 0 for gamma < 1, times log p = 0 there: NaN. Where p is
    # exactly 1 the term is 0 for gamma > 0 (and log p = 0 for gamma = 0), so give it a constant there.
    pos = q > 0
    weight = jnp.where(pos, jnp.where(pos, q, 1.0) ** gamma, jnp.where(gamma == 0, 1.0, 0.0))
    return -jnp.sum(t * weight * logp, axis=-1)


def hinge(logits, targets, margin=DEFAULT_OPTIONS["margin"]):
    """sum_k t_k sum_{j != k} max(0, z_j - z_k + margin): the multi-class SVM loss, on the logits."""
    k = logits.shape[-1]
    t = as_targets(targets, k, logits.dtype)
    m = logits[..., None, :] - logits[..., :, None] + margin  # m[..., k, j] = z_j - z_k + margin
    m = jnp.where(jnp.eye(k, dtype=bool), 0.0, m)
    return jnp.sum(t[..., :, None] * jax.nn.relu(m), axis=(-2, -1))


LOSSES = dict(
    zip(LOSS_NAMES, (cross_entropy, kl_divergence, mse, smooth_cross_entropy, focal, hinge), strict=True)
)


def loss_options(name):
    """The keyword options the loss called ``name`` takes (a tuple, in signature order)."""
    return tuple(inspect.signature(LOSSES[name]).parameters)[2:]


def get_loss(name, **options):
    """The per-example loss ``fn(logits, targets) -> (...)`` called ``name``, with its options bound.

    Args:
        name: one of ``LOSSES`` ("ce", "kl", "mse", "smooth_ce", "focal", "hinge").
        **options: label_smoothing (smooth_ce), gamma (focal), margin (hinge).
    """
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}")
    known = loss_options(name)
    for option in options:
        if option not in known:
            takes = f"takes {', '.join(known)}" if known else "takes no options"
            raise ValueError(f"unknown option {option!r} for loss {name!r} ({name} {takes})")
    return functools.partial(LOSSES[name], **options) if options else LOSSES[name]


def notebook_loss(logits, labels, kind="ce"):
    """The loss the notebook printed: a SUM over samples of clipped probabilities (a scalar).

    Its network clipped softmax outputs at 1e-8 before the loss, so a sample whose true class has
    probability below 1e-8 contributes at most -log(1e-8) = 18.42 however wrong it is. "kl" is the
    value the notebook printed for KL: sum_k y_k log(p_k / y_k) = -KL, negative, which for one-hot
    targets is minus the clipped cross-entropy.

    Args:
        logits: (n, K).  labels: (n,) integers.  kind: "ce" or "kl".
    """
    p = jnp.clip(jax.nn.softmax(logits), 1e-8, None)
    ce = -jnp.sum(jnp.log(jnp.take_along_axis(p, labels[:, None], axis=1)))
    return ce if kind == "ce" else -ce
