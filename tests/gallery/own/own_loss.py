"""A loss no candidate network has: checked against finite differences of the loss itself."""

import numpy as np


def init(n_in, n_h, n_out):
    return {
        "W1": np.zeros((n_in, n_h)),
        "b1": np.zeros(n_h),
        "W2": np.zeros((n_h, n_out)),
        "b2": np.zeros(n_out),
    }


def loss_grad(p, X, y):
    """A loss no candidate has (log-cosh on the logits), its gradient right."""
    n, K = X.shape[0], p["W2"].shape[1]
    T = np.eye(K)[y]
    A1 = np.tanh(X @ p["W1"] + p["b1"])
    Z = A1 @ p["W2"] + p["b2"]
    loss = np.mean(np.sum(np.log(np.cosh(Z - T)), axis=1))
    dZ = np.tanh(Z - T) / n
    d1 = dZ @ p["W2"].T * (1 - A1**2)
    return loss, {"W1": X.T @ d1, "b1": d1.sum(0), "W2": A1.T @ dZ, "b2": dZ.sum(0)}


def loss_grad_buggy(p, X, y):
    loss, g = loss_grad(p, X, y)
    g["b1"] = g["b1"] * 2
    return loss, g
