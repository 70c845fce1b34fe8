"""A small multi-label classifier from scratch.

Sigmoid hidden layer, one sigmoid output per label, binary cross-entropy averaged over every
(example, label) pair. Targets are 0/1 matrices of shape (n_samples, n_labels).
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def init_params(n_features, n_hidden, n_outputs, seed=0):
    rng = np.random.RandomState(seed)
    return {
        "W_hidden": rng.normal(0.0, 0.1, size=(n_features, n_hidden)),
        "b_hidden": np.zeros(n_hidden),
        "W_out": rng.normal(0.0, 0.1, size=(n_hidden, n_outputs)),
        "b_out": np.zeros(n_outputs),
    }


def forward(params, X):
    h = sigmoid(X @ params["W_hidden"] + params["b_hidden"])
    y_hat = sigmoid(h @ params["W_out"] + params["b_out"])
    return h, y_hat


def forward_backward(params, X, y):
    """Return the mean binary cross-entropy and its gradient with respect to every parameter."""
    h, y_hat = forward(params, X)
    cost = -np.mean(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))

    # dL/dz for a sigmoid output with cross-entropy is simply (y_hat - y)
    d_out = (y_hat - y) / y.size
    grads = {}
    grads["W_out"] = h.T @ d_out
    grads["b_out"] = d_out.sum(axis=0)
    d_hidden = (d_out @ params["W_out"].T) * h * (1 - h)
    grads["W_hidden"] = X.T @ d_hidden
    grads["b_hidden"] = d_hidden.sum(axis=0)
    return cost, grads


def train(X, y, n_hidden=16, lr=1.0, epochs=2000):
    params = init_params(X.shape[1], n_hidden, y.shape[1])
    for epoch in range(epochs):
        cost, grads = forward_backward(params, X, y)
        for name in params:
            params[name] -= lr * grads[name]
        if epoch % 500 == 0:
            print(f"epoch {epoch:5d}  bce {cost:.4f}")
    return params


if __name__ == "__main__":
    rng = np.random.RandomState(1)
    X = rng.randn(200, 6)
    y = np.stack([X[:, 0] > 0, X[:, 1] * X[:, 2] > 0, X.sum(axis=1) > 1], axis=1).astype(float)
    params = train(X, y)
    _, y_hat = forward(params, X)
    print("label accuracy:", np.mean((y_hat > 0.5) == y))
