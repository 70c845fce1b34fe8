"""Hand-derived losses and backprop (numpy, float64): the specification ``jax.grad`` is tested against.

Every loss is a per-example function of the logits ``Z (n, K)`` and targets ``T (n, K)`` (a probability
distribution per row; integer labels become one-hot rows). Each comes with its gradient with respect to
the logits, derived by hand in its docstring; ``manual_gradients`` backpropagates that through the
network exactly as the notebook's ``bp_cross_entropy`` did, for the MEAN loss over the batch.

Notation: p = softmax(z), log p = log_softmax(z), t the target row, <a, b> = sum_k a_k b_k. The softmax
Jacobian is dp_k/dz_j = p_k (delta_kj - p_j), so for any g = dL/dp: dL/dz = p * g - p <p, g>.
"""

from __future__ import annotations

import numpy as np

DEFAULT_OPTIONS = {"label_smoothing": 0.1, "gamma": 2.0, "margin": 1.0}


def log_softmax(Z):
    """Numerically stable log-softmax of Z (n, K) -> (n, K)."""
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


def as_targets(Y, num_classes):
    """Integer labels (n,) -> one-hot (n, K) float64; distributions (n, K) pass through as float64."""
    Y = np.asarray(Y)
    if Y.ndim == 1:
        T = np.zeros((Y.shape[0], num_classes))
        T[np.arange(Y.shape[0]), Y] = 1.0
        return T
    return Y.astype(np.float64)


def _xlogx(T):
    """t log t with 0 log 0 = 0, elementwise, without warnings."""
    return T * np.log(np.where(T > 0, T, 1.0))


def ce(Z, T, **_):
    """Cross-entropy L = -<t, log p>.  dL/dz = p - t."""
    logp = log_softmax(Z)
    return -(T * logp).sum(1), np.exp(logp) - T


def kl(Z, T, **_):
    """KL divergence L = <t, log t - log p> = CE - H(t).  dL/dz = p - t (H(t) does not depend on z)."""
    logp = log_softmax(Z)
    return (_xlogx(T) - T * logp).sum(1), np.exp(logp) - T


def smooth_ce(Z, T, label_smoothing=DEFAULT_OPTIONS["label_smoothing"], **_):
    """Label-smoothed cross-entropy: CE against t' = (1 - eps) t + eps / K.  dL/dz = p - t'."""
    return ce(Z, (1 - label_smoothing) * T + label_smoothing / T.shape[1])


def mse(Z, T, **_):
    """Squared error on the probabilities L = sum_k (p_k - t_k)^2.

    g = dL/dp = 2 (p - t), so dL/dz = p * g - p <p, g>.
    """
    p = np.exp(log_softmax(Z))
    g = 2 * (p - T)
    return ((p - T) ** 2).sum(1), p * g - p * (p * g).sum(1, keepdims=True)


def focal(Z, T, gamma=DEFAULT_OPTIONS["gamma"], **_):
    """Focal loss L = -sum_k t_k (1 - p_k)^gamma log p_k (Lin et al. 2017); gamma = 0 is CE.

    dL/dp_k = t_k [gamma (1 - p_k)^(gamma - 1) log p_k - (1 - p_k)^gamma / p_k]. Multiplying by p_k
    before it can overflow: h_k = p_k dL/dp_k = t_k [gamma (1 - p_k)^(gamma - 1) p_k log p_k
    - (1 - p_k)^gamma], and dL/dz = h - p sum_k h_k.
    """
    logp = log_softmax(Z)
    p = np.exp(logp)
    q = -np.expm1(logp)  # 1 - p without cancellation when p is near 1
    # where q = 0, p log p = 0 too; the guard keeps q^(gamma - 1) finite for gamma < 1
    h = T * (gamma * np.where(q > 0, q, 1.0) ** (gamma - 1) * p * logp - q**gamma)
    return -(T * q**gamma * logp).sum(1), h - p * h.sum(1, keepdims=True)


def hinge(Z, T, margin=DEFAULT_OPTIONS["margin"], **_):
    """Multi-class hinge (Weston-Watkins, CS231n's SVM) on the logits, averaged over the target:

    L = sum_k t_k sum_{j != k} max(0, z_j - z_k + margin); for a one-hot t this is the usual SVM loss.
    With the indicator a_kj = [j != k and z_j - z_k + margin > 0]:
    dL/dz_j = sum_k t_k a_kj - t_j sum_i a_ji. It is not differentiable where a margin is exactly 0.
    """
    M = Z[:, None, :] - Z[:, :, None] + margin  # M[n, k, j] = z_j - z_k + margin
    K = Z.shape[1]
    M[:, np.arange(K), np.arange(K)] = 0.0
    A = (M > 0).astype(Z.dtype)
    loss = (T[:, :, None] * np.maximum(M, 0)).sum((1, 2))
    dZ = np.einsum("nk,nkj->nj", T, A) - T * A.sum(2)
    return loss, dZ


LOSSES = {"ce": ce, "kl": kl, "mse": mse, "smooth_ce": smooth_ce, "focal": focal, "hinge": hinge}


def _layers(params):
    """The number of layers of a params dict with keys W1, b1, ..., WL, bL."""
    L = len(params) // 2
    if sorted(params) != sorted(k for i in range(1, L + 1) for k in (f"W{i}", f"b{i}")):
        raise ValueError(f"params must have keys W1, b1, ..., WL, bL; got {sorted(params)}")
    return L


def forward(params, X, activation="tanh"):
    """Forward pass keeping the activations.

    Args:
        params: {"W1": (D, H1), "b1": (H1,), ..., "WL": (H_{L-1}, K), "bL": (K,)}.
        X: (n, D).  activation: "tanh" (the notebook's) or "relu", for the hidden layers.
    Returns:
        (logits Z (n, K), hidden activations [A0 = X, A1 (n, H1), ...]).
    """
    L = _layers(params)
    A = [np.asarray(X, dtype=np.float64)]
    for i in range(1, L):
        Zi = A[-1] @ params[f"W{i}"] + params[f"b{i}"]
        A.append(np.tanh(Zi) if activation == "tanh" else np.maximum(Zi, 0))
    return A[-1] @ params[f"W{L}"] + params[f"b{L}"], A


def loss_value(params, X, Y, loss="ce", activation="tanh", **options):
    """The mean loss over the batch (a float), from the same forward pass as ``manual_gradients``."""
    Z, _ = forward(params, X, activation)
    return float(LOSSES[loss](Z, as_targets(Y, Z.shape[1]), **options)[0].mean())


def manual_gradients(params, X, Y, loss="ce", activation="tanh", **options):
    """The notebook's hand-written backprop, returning the gradients of the MEAN loss.

    For "ce" and "kl" this is exactly ``bp_cross_entropy``'s arithmetic: dZ2 = A2 - T, then
    dW2 = A1^T dZ2 / n, db2 = sum dZ2 / n, dZ1 = (dZ2 W2^T) * (1 - A1^2), dW1 = X^T dZ1 / n,
    db1 = sum dZ1 / n. Other losses change only dZ2 (see their docstrings); deeper nets repeat the
    hidden-layer step.

    Args:
        params: {"W1": (D, H), "b1": (H,), "W2": (H, K), "b2": (K,)} (deeper: W3, b3, ...), float64.
        X: (n, D) inputs.
        Y: (n,) integer labels, or (n, K) target distributions.
        loss: a key of ``LOSSES``.  activation: "tanh" or "relu".
        **options: label_smoothing, gamma, margin (see ``DEFAULT_OPTIONS``).
    Returns:
        A dict with the keys and shapes of ``params``: the gradients of the mean loss.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}; got {loss!r}")
    L = _layers(params)
    Z, A = forward(params, X, activation)
    n = Z.shape[0]
    dZ = LOSSES[loss](Z, as_targets(Y, Z.shape[1]), **options)[1]
    grads = {}
    for i in range(L, 0, -1):
        grads[f"W{i}"] = (1 / n) * np.dot(A[i - 1].T, dZ)
        grads[f"b{i}"] = (1 / n) * np.sum(dZ, axis=0)
        if i > 1:
            dA = np.dot(dZ, params[f"W{i}"].T)
            dZ = dA * (1 - A[i - 1] ** 2) if activation == "tanh" else dA * (A[i - 1] > 0)
    return grads
