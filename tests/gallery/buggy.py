"""Backprops with one deliberate bug each: every one must fail ``check_backprop`` with its diagnosis."""

import numpy as np
from gallery_common import correct_grads as _correct
from gallery_common import forward, targets
from gallery_common import pieces as _grads


def sum_instead_of_mean(params, X, Y):
    _, A1, _, P = forward(params, X)
    dZ2 = P - targets(Y, P.shape[1])  # no / n
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def sign_flip(params, X, Y):
    _, A1, dZ2, _ = _grads(params, X, Y)
    dZ2 = -dZ2  # t - p
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def transposed_dW1(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": dZ1.T @ X, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def missing_key(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2}


def extra_key(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0), "dZ2": dZ2}


def renamed_keys(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"dW1": X.T @ dZ1, "db1": dZ1.sum(0), "dW2": A1.T @ dZ2, "db2": dZ2.sum(0)}


def no_tanh_derivative(params, X, Y):
    _, A1, dZ2, _ = _grads(params, X, Y)
    dZ1 = dZ2 @ params["W2"].T  # forgot * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def a1_as_derivative(params, X, Y):
    _, A1, dZ2, _ = _grads(params, X, Y)
    dZ1 = (dZ2 @ params["W2"].T) * A1  # A1 where 1 - A1**2 belongs
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def only_first_sample(params, X, Y):
    return _correct(params, X[:1], Y[:1])


def dropped_last_sample(params, X, Y):
    n = X.shape[0]
    _, A1, _, P = forward(params, X)
    dZ2 = (P - targets(Y, P.shape[1]))[:-1] / n  # off by one: the last sample is left out
    A1, X = A1[:-1], X[:-1]
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def dropped_last_sample_mean(params, X, Y):
    n = X.shape[0]
    _, A1, _, P = forward(params, X)
    dZ2 = (P - targets(Y, P.shape[1]))[:-1] / (n - 1)  # the mean of all but the last: 0/0 when n = 1
    A1, X = A1[:-1], X[:-1]
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def first_label_for_all(params, X, Y):
    n = X.shape[0]
    _, A1, _, P = forward(params, X)
    dZ2 = (P - targets(Y, P.shape[1])[0]) / n  # broadcasts the first sample's target to every row
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def zero_output_bias(params, X, Y):
    grads = _correct(params, X, Y)
    grads["b2"] = np.zeros_like(params["b2"])
    return grads


def one_entry_off(params, X, Y):
    grads = _correct(params, X, Y)
    grads["W1"][1, 2] *= 1 + 1e-4  # one part in 10^4, in one entry
    return grads


def returns_nan(params, X, Y):
    grads = _correct(params, X, Y)
    grads["b1"] = grads["b1"] * np.nan
    return grads


def bias_not_summed(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1, "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def bias_wrong_axis(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=1), "W2": A1.T @ dZ2, "b2": dZ2.sum(0)}


def bias_keepdims(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0, keepdims=True)}


def w2_updated_first(params, X, Y):
    """The notebook's layer-by-layer update, inside the gradient: W2 moves before dZ1 is formed."""
    _, A1, dZ2, _ = _grads(params, X, Y)
    dW2 = A1.T @ dZ2
    params["W2"] -= 0.1 * dW2
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": dW2, "b2": dZ2.sum(0)}


def layer2_preactivation(params, X, Y):
    Z1, _, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": Z1.T @ dZ2, "b2": dZ2.sum(0)}


def w2_from_inputs(params, X, Y):
    _, _, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": X.T @ dZ2, "b2": dZ2.sum(0)}


def layer2_bias_summed(params, X, Y):
    _, A1, dZ2, dZ1 = _grads(params, X, Y)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ dZ2, "b2": dZ2.sum(0) * X.shape[0]}


def float32_result(params, X, Y):
    return {k: v.astype(np.float32) for k, v in _correct(params, X, Y).items()}


def scrambled(params, X, Y):
    """Every gradient perturbed in no simple way."""
    grads = _correct(params, X, Y)
    return {k: v + 1e-3 * np.sin(np.arange(v.size).reshape(v.shape)) for k, v in grads.items()}
