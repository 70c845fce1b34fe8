"""Candidate networks: what a user's backprop may compute, in numpy (to screen) and JAX (the reference).

A ``Net`` names the hidden activation, the output head and its loss, the batch reduction and an L2
coefficient; the layers (and whether there are biases) come from the params dict, whose keys are
``W1, b1, ..., WL, bL`` (``bI`` absent without biases), weights (in, out), biases (out,), computing
``x @ W + b``. L2 adds ``l2 / 2 * sum ||W||^2`` (weights only) to the loss, ``l2 * W`` to its gradient.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlpnn_jax.gradcheck.names import ACTIVATION_NAMES, LOSS_FAMILIES
from mlpnn_jax.losses import LOSSES as SOFTMAX_LOSSES

LEAK = 0.01
_DESCRIBE_LOSS = {
    "ce": "cross-entropy",
    "kl": "KL divergence",
    "mse": "squared error of the probabilities sum_k (p_k - t_k)^2",
    "mse_half": "squared error of the probabilities 1/2 sum_k (p_k - t_k)^2",
    "mse_mean": "squared error of the probabilities averaged over the classes",
    "smooth_ce": "label-smoothed cross-entropy",
    "focal": "focal loss",
    "hinge": "multi-class hinge loss",
    "se_sum": "squared error sum_k (a_k - t_k)^2",
    "se_half": "squared error 1/2 sum_k (a_k - t_k)^2",
    "se_mean": "squared error averaged over the outputs",
    "bce": "binary cross-entropy summed over the outputs",
    "bce_mean": "binary cross-entropy averaged over the outputs",
}


@dataclasses.dataclass(frozen=True)
class Net:
    """One candidate network (hashable: a static argument of the jitted reference)."""

    activation: str = "tanh"
    head: str = "softmax"
    loss: str = "ce"
    options: tuple = ()
    reduction: str = "mean"
    l2: float = 0.0

    def describe(self, layers=None):
        """In words, e.g. '2 weight layers, tanh hidden, softmax output, cross-entropy (mean)'."""
        opts = "".join(f", {k} = {v:g}" for k, v in self.options)
        where = f"{layers} weight layer{'s' if layers != 1 else ''}, " if layers else ""
        hidden = f"{self.activation} hidden, " if layers != 1 else ""
        l2 = f", L2 lambda = {self.l2:.6g}" if self.l2 else ""
        return (
            f"{where}{hidden}{self.head} output, {_DESCRIBE_LOSS[self.loss]}{opts} "
            f"({self.reduction} over the batch){l2}"
        )


def layers(params):
    """The number of weight layers of a canonical params dict."""
    return sum(1 for k in params if k.startswith("W"))


def candidates(families=None, activations=None, options=()):
    """Every Net allowed by ``families`` (keys of LOSS_FAMILIES) and ``activations`` (None: all)."""
    pairs = []
    for fam in families or LOSS_FAMILIES:
        pairs += [p for p in LOSS_FAMILIES[fam] if p not in pairs]
    opts = dict(options)
    out = []
    for act in activations or ACTIVATION_NAMES:
        for head, loss in pairs:
            keep = {k: v for k, v in opts.items() if head == "softmax" and _takes(loss, k)}
            for red in ("mean", "sum"):
                out.append(Net(act, head, loss, tuple(sorted(keep.items())), red))
    return out


def _takes(loss, option):
    from mlpnn_jax.losses import loss_options

    return option in loss_options(_base(loss))


# ------------------------------------------------------------------------------------------ numpy


def _sigmoid(Z):
    return 0.5 * (1 + np.tanh(0.5 * Z))


_NP_ACT = {
    "tanh": (np.tanh, lambda A, Z: 1 - A**2),
    "relu": (lambda Z: np.maximum(Z, 0.0), lambda A, Z: (Z > 0).astype(float)),
    "sigmoid": (_sigmoid, lambda A, Z: A * (1 - A)),
    "leaky_relu": (lambda Z: np.where(Z > 0, Z, LEAK * Z), lambda A, Z: np.where(Z > 0, 1.0, LEAK)),
    "identity": (lambda Z: Z, lambda A, Z: np.ones_like(Z)),
}


def targets(Y, K):
    """Integer labels (n,) -> one-hot rows (n, K); distributions (n, K) pass through (float64).

    With K = 1 (one sigmoid unit) the labels are the 0/1 targets themselves: (n,) -> (n, 1)."""
    Y = np.asarray(Y)
    if K == 1 and Y.ndim <= 1:
        return Y.astype(np.float64)[..., None]
    return np.eye(K)[Y] if Y.ndim <= 1 and Y.dtype.kind in "iu" else Y.astype(np.float64)


def forward(net, params, X):
    """(pre-activations [Z1, ..., ZL], activations [A0 = X, A1, ..., A_{L-1}]) in numpy."""
    act = _NP_ACT[net.activation][0]
    Zs, As = [], [np.asarray(X, np.float64)]
    L = layers(params)
    for i in range(1, L + 1):
        Z = As[-1] @ params[f"W{i}"] + params.get(f"b{i}", 0.0)
        Zs.append(Z)
        if i < L:
            As.append(act(Z))
    return Zs, As


def outputs(net, params, X):
    """The network's outputs: softmax or sigmoid probabilities (n, K)."""
    Z = forward(net, params, X)[0][-1]
    if net.head == "sigmoid":
        return _sigmoid(Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def head_loss(net, Z, T):
    """(per-example loss (n,), its gradient with respect to the logits Z (n, K)) in numpy."""
    scale = _scale(net.loss, Z.shape[1])
    if net.head == "softmax":
        from reference import LOSSES

        value, dZ = LOSSES[_base(net.loss)](Z, T, **dict(net.options))
        return scale * value, scale * dZ
    A = _sigmoid(Z)
    if net.loss.startswith("bce"):
        return scale * (np.logaddexp(0.0, Z) - T * Z).sum(1), scale * (A - T)
    return scale * ((A - T) ** 2).sum(1), 2 * scale * (A - T) * A * (1 - A)


def _base(loss):
    """The project's loss a scaled variant is written from ("mse_half" -> "mse")."""
    return "mse" if loss.startswith("mse") else loss


def _scale(loss, K):
    """The factor of a variant: 1/2 for "*_half", 1/K for "*_mean", else 1."""
    return 0.5 if loss.endswith("_half") else 1.0 / K if loss.endswith("_mean") else 1.0


def batch_factor(net, n):
    """The batch reduction's factor: 1/n for a mean, 1 for a sum."""
    return 1.0 / n if net.reduction == "mean" else 1.0


def loss_value(net, params, X, Y):
    """The user-facing loss: reduced over the batch, plus the L2 term (a float)."""
    Zs, _ = forward(net, params, X)
    value = head_loss(net, Zs[-1], targets(Y, Zs[-1].shape[1]))[0].sum() * batch_factor(net, len(X))
    return float(value + 0.5 * net.l2 * sum(float((v**2).sum()) for k, v in params.items() if k[0] == "W"))


def backprop(net, params, X, Y, derivative=None, weights=None):
    """Hand-written backprop in numpy (the second float64 reference, and the rules' variants).

    ``derivative(A, Z)`` replaces the hidden activation's derivative; ``weights`` replaces the
    weights the error is sent back through (e.g. updated too early).
    """
    Zs, As = forward(net, params, X)
    deriv = derivative or _NP_ACT[net.activation][1]
    back = weights or params
    dZ = head_loss(net, Zs[-1], targets(Y, Zs[-1].shape[1]))[1] * batch_factor(net, len(X))
    grads = {}
    for i in range(len(Zs), 0, -1):
        grads[f"W{i}"] = As[i - 1].T @ dZ + net.l2 * params[f"W{i}"]
        if f"b{i}" in params:
            grads[f"b{i}"] = dZ.sum(0)
        if i > 1:
            dZ = (dZ @ back[f"W{i}"].T) * deriv(As[i - 1], Zs[i - 2])
    return {k: grads[k] for k in params}


def kink_distance(net, params, X, Y):
    """How close the problem sits to a kink of the loss (ReLU at 0, hinge margins); inf if none."""
    Zs, _ = forward(net, params, X)
    dist = np.inf
    if net.activation in ("relu", "leaky_relu") and len(Zs) > 1:
        dist = min(float(np.abs(Z).min()) for Z in Zs[:-1])
    if net.loss == "hinge":
        Z, T = Zs[-1], targets(Y, Zs[-1].shape[1])
        K = Z.shape[1]
        M = np.abs(Z[:, None, :] - Z[:, :, None] + dict(net.options).get("margin", 1.0))
        M[:, np.arange(K), np.arange(K)] = np.inf
        dist = min(dist, float(M[T > 0].min()))
    return dist


# -------------------------------------------------------------------------------------------- jax


def _jax_loss(params, X, Y, net):
    act = {
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "sigmoid": jax.nn.sigmoid,
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, LEAK),
        "identity": lambda z: z,
    }[net.activation]
    L = layers(params)
    a = X
    for i in range(1, L + 1):
        z = a @ params[f"W{i}"] + params.get(f"b{i}", 0.0)
        a = act(z) if i < L else z
    scale = _scale(net.loss, a.shape[-1])
    if net.head == "softmax":
        per = scale * SOFTMAX_LOSSES[_base(net.loss)](a, Y, **dict(net.options))
    else:
        t = Y if Y.ndim == 2 else (Y[:, None] if a.shape[-1] == 1 else jax.nn.one_hot(Y, a.shape[-1]))
        t = t.astype(a.dtype)
        s = jax.nn.sigmoid(a)
        if net.loss.startswith("bce"):
            per = scale * jnp.sum(jax.nn.softplus(a) - t * a, axis=-1)
        else:
            per = scale * jnp.sum((s - t) ** 2, axis=-1)
    total = jnp.mean(per) if net.reduction == "mean" else jnp.sum(per)
    l2 = sum(jnp.sum(v**2) for k, v in params.items() if k[0] == "W")
    return total + 0.5 * net.l2 * l2


@functools.cache
def _transforms():
    """jax.grad of the loss and its per-sample vmap, jitted (the net is static)."""
    grad = jax.grad(_jax_loss)

    def per(params, X, Y, net):
        return jax.vmap(lambda x, y: grad(params, x[None], y[None], net))(X, Y)

    return jax.jit(grad, static_argnames=("net",)), jax.jit(per, static_argnames=("net",))


def _x64():
    return jax.enable_x64(True)


def gradients(net, params, X, Y):
    """jax.grad of the net's loss in float64, whatever the caller's x64 setting (numpy dict)."""
    with _x64():
        g = _transforms()[0](params, X, Y, net=net)
        return {k: np.asarray(g[k], dtype=np.float64) for k in params}


def per_sample_gradients(net, params, X, Y):
    """Each sample's gradient of its own loss (without L2), leading axis n: the rules' basis."""
    net = dataclasses.replace(net, l2=0.0, reduction="sum")
    with _x64():
        g = _transforms()[1](params, X, Y, net=net)
        return {k: np.asarray(g[k], dtype=np.float64) for k in params}
