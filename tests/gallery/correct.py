"""Correct backprops, each written a different way: every one must pass ``check_backprop``."""

import numpy as np
from gallery_common import forward, softmax, targets


def backprop(params, X, Y):
    """The notebook's bp_cross_entropy for the MEAN loss (ce and kl have the same gradient)."""
    n = X.shape[0]
    _, A1, _, A2 = forward(params, X)
    dZ2 = A2 - targets(Y, A2.shape[1])
    dW2 = (1 / n) * np.dot(A1.T, dZ2)
    db2 = (1 / n) * np.sum(dZ2, axis=0)
    dZ1 = np.dot(dZ2, params["W2"].T) * (1 - np.power(A1, 2))
    dW1 = (1 / n) * np.dot(X.T, dZ1)
    db1 = (1 / n) * np.sum(dZ1, axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def backprop_softmax_jacobian(params, X, Y):
    """Cross-entropy through dL/dp = -t / p and the explicit softmax Jacobian; tanh' = 1 / cosh^2."""
    n = X.shape[0]
    Z1, A1, _, P = forward(params, X)
    K = P.shape[1]
    dP = -targets(Y, K) / P / n
    J = P[:, :, None] * (np.eye(K)[None, :, :] - P[:, None, :])  # J[i, k, j] = dp_k / dz_j
    dZ2 = np.einsum("ik,ikj->ij", dP, J)
    dZ1 = (dZ2 @ params["W2"].T) / np.cosh(Z1) ** 2
    return {
        "W2": np.einsum("ih,ik->hk", A1, dZ2),
        "b2": dZ2.sum(axis=0),
        "W1": np.einsum("id,ih->dh", X, dZ1),
        "b1": dZ1.sum(axis=0),
    }


def backprop_per_sample(params, X, Y):
    """One sample at a time, accumulating (another summation order), then dividing by n."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    T = targets(Y, W2.shape[1])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    for x, t in zip(X[::-1], T[::-1], strict=True):
        a1 = np.tanh(x @ W1 + b1)
        z2 = a1 @ W2 + b2
        p = np.exp(z2 - z2.max())
        p /= p.sum()
        dz2 = p - t
        grads["W2"] += np.outer(a1, dz2)
        grads["b2"] += dz2
        dz1 = (W2 @ dz2) * (1 - a1 * a1)
        grads["W1"] += np.outer(x, dz1)
        grads["b1"] += dz1
    return {k: g / len(X) for k, g in grads.items()}


def backprop_jax(params, X, Y):
    """The notebook's formulas in jax.numpy: returns jax arrays (float64 when JAX's x64 is on)."""
    import jax
    import jax.numpy as jnp

    n = X.shape[0]
    A1 = jnp.tanh(X @ params["W1"] + params["b1"])
    P = jax.nn.softmax(A1 @ params["W2"] + params["b2"])
    T = jnp.asarray(targets(Y, P.shape[1]))
    dZ2 = (P - T) / n
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def _backward(params, X, A1, dZ2):
    """The layers' gradients from the error at the logits of the mean loss."""
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def mse(params, X, Y):
    """Squared error on the probabilities: dL/dp = 2 (p - t) through the softmax Jacobian."""
    n = X.shape[0]
    _, A1, _, P = forward(params, X)
    G = 2 * (P - targets(Y, P.shape[1]))
    J = np.einsum("ik,kj->ikj", P, np.eye(P.shape[1])) - np.einsum("ik,ij->ikj", P, P)
    dZ2 = np.einsum("ik,ikj->ij", G, J) / n
    return _backward(params, X, A1, dZ2)


def smooth_ce(params, X, Y, label_smoothing=0.1):
    """Label smoothing eps = 0.1: cross-entropy against (1 - eps) t + eps / K."""
    n = X.shape[0]
    _, A1, _, P = forward(params, X)
    K = P.shape[1]
    T = (1 - label_smoothing) * targets(Y, K) + label_smoothing / K
    return _backward(params, X, A1, (P - T) / n)


def focal(params, X, Y, gamma=2.0):
    """Focal loss -sum_k t_k (1 - p_k)^gamma log p_k, by the chain rule through log p and 1 - p."""
    n = X.shape[0]
    _, A1, Z2, _ = forward(params, X)
    logP = Z2 - Z2.max(1, keepdims=True)
    logP -= np.log(np.exp(logP).sum(1, keepdims=True))
    P = np.exp(logP)
    Q = -np.expm1(logP)  # 1 - p
    T = targets(Y, P.shape[1])
    # dL/dlogp_k = -t_k q^gamma + t_k gamma q^(gamma-1) p_k log p_k  (dq/dlogp = -p)
    dlogP = -T * Q**gamma + T * gamma * Q ** (gamma - 1) * P * logP
    # log p_k = z_k - logsumexp(z): dL/dz_j = dlogP_j - p_j sum_k dlogP_k
    dZ2 = (dlogP - P * dlogP.sum(1, keepdims=True)) / n
    return _backward(params, X, A1, dZ2)


def hinge(params, X, Y, margin=1.0):
    """Weston-Watkins multi-class hinge on the logits, loop by loop."""
    n = X.shape[0]
    _, A1, Z2, _ = forward(params, X)
    T = targets(Y, Z2.shape[1])
    dZ2 = np.zeros_like(Z2)
    for i in range(n):
        for k in np.flatnonzero(T[i]):
            for j in range(Z2.shape[1]):
                if j != k and Z2[i, j] - Z2[i, k] + margin > 0:
                    dZ2[i, j] += T[i, k]
                    dZ2[i, k] -= T[i, k]
    return _backward(params, X, A1, dZ2 / n)


def backprop_lists(params, X, Y):
    """Right values, returned as nested lists (reported as a note, not an error)."""
    return {k: v.tolist() for k, v in backprop(params, X, Y).items()}


def backprop_mutating(params, X, Y):
    """Right gradients, but it scales X in place (reported as a note)."""
    grads = backprop(params, X, Y)
    X *= 0.5
    return grads


def backprop_warning(params, X, Y):
    """Right gradients, after a harmless division by zero (a RuntimeWarning: a note)."""
    np.log(np.zeros(1))
    return backprop(params, X, Y)


def unused_softmax_check(Z):  # a helper, not a backprop
    return softmax(Z)
