"""A batch backprop returning (loss, grads) with L2 regularisation, right and wrong."""

import numpy as np


def init(n_in, n_hidden, n_out):
    return {
        "W1": np.zeros((n_in, n_hidden)),
        "b1": np.zeros(n_hidden),
        "W2": np.zeros((n_hidden, n_out)),
        "b2": np.zeros(n_out),
    }


def _grads(p, X, y, reg, loss_reg, grad_reg, mean=True):
    n = X.shape[0]
    H = np.maximum(0, X @ p["W1"] + p["b1"])
    S = H @ p["W2"] + p["b2"]
    S = S - S.max(axis=1, keepdims=True)
    P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
    loss = -np.log(P[np.arange(n), y]).mean() + loss_reg * reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    dS = P.copy()
    dS[np.arange(n), y] -= 1
    dS /= n if mean else 1
    dH = dS @ p["W2"].T * (H > 0)
    g = {"W1": X.T @ dH, "b1": dH.sum(0), "W2": H.T @ dS, "b2": dS.sum(0)}
    g["W1"] += grad_reg * reg * p["W1"]
    g["W2"] += grad_reg * reg * p["W2"]
    return loss, g


def loss_right(params, X, y, reg=0.05):
    return _grads(params, X, y, reg, 1.0, 2.0)


def loss_missing_l2(params, X, y, reg=0.05):
    """The gradient has the L2 term, the returned loss does not."""
    return _grads(params, X, y, reg, 0.0, 2.0)


def loss_sum(params, X, y, reg=0.05):
    """A sum over the batch where the loss is a mean."""
    return _grads(params, X, y, reg, 1.0, 2.0, mean=False)


def grads_only(params, X, y, reg=0.05):
    """Only the gradients (with L2): the loss is not exposed."""
    return _grads(params, X, y, reg, 1.0, 2.0)[1]
