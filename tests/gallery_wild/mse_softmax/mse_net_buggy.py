# Softmax network trained with the mean squared error instead of cross-entropy,
# to compare the two losses. Parameters are kept in a list [W1, b1, W2, b2].
import numpy as np


def init_network(n_in, n_hidden, n_out):
    W1 = np.random.randn(n_in, n_hidden) * np.sqrt(2.0 / n_in)
    b1 = np.zeros(n_hidden)
    W2 = np.random.randn(n_hidden, n_out) * np.sqrt(1.0 / n_hidden)
    b2 = np.zeros(n_out)
    return [W1, b1, W2, b2]


def relu(z):
    return np.maximum(z, 0)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    W1, b1, W2, b2 = params
    return softmax(relu(X @ W1 + b1) @ W2 + b2)


def mse_loss(probs, Y):
    # mean over the samples AND the classes
    return np.mean((probs - Y) ** 2)


def gradients(params, X, Y):
    """Gradients of mse_loss(forward(params, X), Y), returned in the same order as params."""
    W1, b1, W2, b2 = params
    n, k = Y.shape

    z1 = X @ W1 + b1
    h = relu(z1)
    p = softmax(h @ W2 + b2)

    dp = 2 * (p - Y) / (n * k)
    dz2 = dp  # softmax and loss derivative combined

    dW2 = h.T @ dz2
    db2 = dz2.sum(axis=0)
    dz1 = (dz2 @ W2.T) * (z1 > 0)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)
    return [dW1, db1, dW2, db2]


def sgd(params, X, Y, lr=2.0, steps=3000):
    for step in range(steps):
        grads = gradients(params, X, Y)
        params = [p - lr * g for p, g in zip(params, grads)]
        if step % 500 == 0:
            print("step", step, "mse", mse_loss(forward(params, X), Y))
    return params


if __name__ == "__main__":
    np.random.seed(0)
    X = np.random.randn(300, 2)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    Y = np.eye(3)[y]
    params = sgd(init_network(2, 16, 3), X, Y)
    print("accuracy", np.mean(forward(params, X).argmax(axis=1) == y))
