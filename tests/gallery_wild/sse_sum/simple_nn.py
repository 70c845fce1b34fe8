import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class SimpleNN:
    """input -> tanh hidden -> sigmoid outputs, trained on the sum of squared errors.

    Weight matrices are stored (n_out, n_in), like the textbook notation z = W a + b,
    but the samples are the rows of X.
    """

    def __init__(self, n_in, n_hidden, n_out):
        self.W1 = np.random.uniform(-1, 1, (n_hidden, n_in)) / np.sqrt(n_in)
        self.b1 = np.zeros(n_hidden)
        self.W2 = np.random.uniform(-1, 1, (n_out, n_hidden)) / np.sqrt(n_hidden)
        self.b2 = np.zeros(n_out)

    def predict(self, X):
        A1 = np.tanh(X @ self.W1.T + self.b1)
        return sigmoid(A1 @ self.W2.T + self.b2)

    def loss_and_grads(self, X, T):
        """Loss = sum over outputs of (a - t)^2, averaged over the samples; and its gradients."""
        n = X.shape[0]
        A1 = np.tanh(X @ self.W1.T + self.b1)
        A2 = sigmoid(A1 @ self.W2.T + self.b2)
        err = A2 - T
        loss = np.sum(err**2) / n

        dZ2 = 2 * err * A2 * (1 - A2) / n
        dW2 = dZ2.T @ A1
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ self.W2) * (1 - A1**2)
        dW1 = dZ1.T @ X
        db1 = dZ1.sum(axis=0)
        return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def fit(self, X, T, lr=0.5, epochs=2000, verbose=True):
        for epoch in range(epochs):
            loss, grads = self.loss_and_grads(X, T)
            for name, g in grads.items():
                setattr(self, name, getattr(self, name) - lr * g)
            if verbose and epoch % 400 == 0:
                print(epoch, loss)
        return self


if __name__ == "__main__":
    np.random.seed(3)
    X = np.random.uniform(-1, 1, (200, 3))
    T = np.stack([(X[:, 0] * X[:, 1] > 0), (X[:, 2] > 0.2)], axis=1).astype(float)
    net = SimpleNN(3, 8, 2).fit(X, T)
    print("final loss", net.loss_and_grads(X, T)[0])
