"""The MLP: one params pytree {"W1": (D, H1), "b1": (H1,), ..., "WL": (H_{L-1}, K), "bL": (K,)}.

Layers compute ``x @ W + b``; hidden layers apply tanh (the notebook's) or relu; the model returns logits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlpnn_jax.losses import get_loss
from mlpnn_jax.names import ACTIVATION_NAMES, INITS

ACTIVATIONS = dict(zip(ACTIVATION_NAMES, (jnp.tanh, jax.nn.relu), strict=True))


def num_layers(params):
    """L for a params dict with keys W1, b1, ..., WL, bL."""
    return len(params) // 2


def init_params(key, sizes, scheme="glorot", dtype=jnp.float32):
    """Fresh params for an MLP with layer sizes ``sizes``.

    Args:
        key: a ``jax.random`` key, or an int seed. "notebook" uses it as the seed of numpy's RandomState.
        sizes: (D, H1, ..., K), e.g. (784, 1000, 10).
        scheme: "glorot" (Glorot normal weights), "lecun" (LeCun normal), or "notebook": the notebook's
            unscaled draws, bit for bit: per neuron randn(fan_in, 1) then rand() for its bias, layer by
            layer, from ``np.random.RandomState(seed)`` (seed 1 gives the notebook's CE network).
        dtype: the params' dtype.
    Returns:
        The params dict; biases are zero except under "notebook" (U[0, 1)).
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {scheme!r}")
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"layer sizes must be at least two positive integers; got {tuple(sizes)}")
    if scheme == "notebook":
        seed = int(key) if isinstance(key, int) else int(jax.random.randint(key, (), 0, 2**31 - 1))
        return jax.tree.map(lambda a: jnp.asarray(a, dtype), notebook_draws(sizes, seed))
    sizes, dtype = tuple(int(n) for n in sizes), jnp.dtype(dtype)
    if isinstance(key, int) and 0 <= key < 2**32:  # the key made inside: one program, not three, to compile
        return _seeded_init(np.uint32(key), sizes, scheme, dtype)
    if isinstance(key, int):
        key = jax.random.key(key)
    return _random_init(key, sizes, scheme, dtype)


# A truncated normal on [-2, 2] has std 0.8796; dividing by it gives the target std (as jax.nn.initializers).
_TRUNCATED_STD = 0.87962566103423978


@functools.partial(jax.jit, static_argnames=("sizes", "scheme", "dtype"))
def _seeded_init(seed, sizes, scheme, dtype):
    """``_random_init`` of ``jax.random.key(seed)`` (seed: a uint32 scalar; the same key bit for bit)."""
    return _draw(jax.random.key(seed), sizes, scheme, dtype)


@functools.partial(jax.jit, static_argnames=("sizes", "scheme", "dtype"))
def _random_init(key, sizes, scheme, dtype):
    """``_draw`` of a jax.random key."""
    return _draw(key, sizes, scheme, dtype)


def _draw(key, sizes, scheme, dtype):
    """Glorot or LeCun normal weights (truncated at 2 std, as jax.nn.initializers) and zero biases.

    All weights come from one flat draw, scaled per layer: the same distribution as drawing each layer
    alone, but one random-number kernel to compile instead of one per shape (0.1 s, not 0.6 s, on a CPU).
    """
    shapes = [(sizes[i - 1], sizes[i]) for i in range(1, len(sizes))]
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (sum(a * b for a, b in shapes),), dtype)
    params, start = {}, 0
    for i, (fan_in, fan_out) in enumerate(shapes, start=1):
        variance = 2.0 / (fan_in + fan_out) if scheme == "glorot" else 1.0 / fan_in
        w = flat[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        params[f"W{i}"] = w * jnp.asarray(variance**0.5 / _TRUNCATED_STD, dtype)
        params[f"b{i}"] = jnp.zeros((fan_out,), dtype)
        start += fan_in * fan_out
    return params


def notebook_draws(sizes, seed):
    """The notebook's Perceptron draws for layer sizes ``sizes`` (numpy float64 params dict)."""
    rng = np.random.RandomState(seed)
    params = {}
    for i in range(1, len(sizes)):
        cols, bias = [], []
        for _ in range(sizes[i]):  # one Perceptron at a time: its weights, then its bias
            cols.append(rng.randn(sizes[i - 1], 1))
            bias.append(rng.rand())
        params[f"W{i}"], params[f"b{i}"] = np.hstack(cols), np.array(bias)
    return params


def apply(params, x, activation="tanh", dropout=None):
    """The MLP's logits.

    Args:
        params: {"W1": (D, H1), "b1": (H1,), ..., "WL": (H_{L-1}, K), "bL": (K,)}.
        x: (n, D) inputs (or (D,) for one).
        activation: "tanh" or "relu", for the hidden layers.
        dropout: None, or (key, input rate, hidden rate): inverted dropout for training (each input and
            each hidden unit kept with probability 1 - rate, and scaled by 1 / (1 - rate)).
    Returns:
        logits (n, K).
    """
    act = ACTIVATIONS[activation]
    L = num_layers(params)
    key, rates = (None, ()) if dropout is None else (dropout[0], dropout[1:])
    for i in range(1, L):
        if rates:
            x = _drop(jax.random.fold_in(key, i), x, rates[i > 1])
        x = act(x @ params[f"W{i}"] + params[f"b{i}"])
    if rates:
        x = _drop(jax.random.fold_in(key, L), x, rates[L > 1])
    return x @ params[f"W{L}"] + params[f"b{L}"]


def _drop(key, x, rate):
    """Inverted dropout: each entry kept with probability 1 - rate and scaled by 1 / (1 - rate)."""
    if not rate:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


def mean_loss(params, x, y, loss="ce", activation="tanh", **options):
    """The mean over the batch of a per-example loss of ``apply(params, x)`` (a scalar)."""
    return jnp.mean(get_loss(loss, **options)(apply(params, x, activation), y))


@functools.partial(jax.jit, static_argnames=("loss", "activation"))
def _gradients(params, x, y, loss, activation, options):
    return jax.grad(mean_loss)(params, x, y, loss, activation, **options)


def gradients(params, x, y, loss="ce", activation="tanh", **options):
    """``jax.grad`` of the mean loss: the gradients ``reference.manual_gradients`` computes by hand.

    Args:
        params: the params dict (float32 or float64 arrays).
        x: (n, D).  y: (n,) integer labels or (n, K) target distributions.
        loss: "ce", "kl", "mse", "smooth_ce", "focal" or "hinge".  activation: "tanh" or "relu".
        **options: label_smoothing, gamma, margin.
    Returns:
        A dict with the keys and shapes of ``params``.
    """
    get_loss(loss)  # a clear error for an unknown name, before tracing
    return _gradients(params, x, y, loss, activation, options)
