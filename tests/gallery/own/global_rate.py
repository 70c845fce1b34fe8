"""A class whose backprop updates its weights in place with a module-level learning rate."""

import numpy as np

LEARNING_RATE = 0.3


class Net:
    def __init__(self, sizes):
        self.W = [np.random.randn(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]
        self.b = [np.zeros(b) for b in sizes[1:]]

    def predict(self, X):
        self.A1 = np.tanh(X @ self.W[0] + self.b[0])
        Z = self.A1 @ self.W[1] + self.b[1]
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        self.P = E / E.sum(axis=1, keepdims=True)
        return self.P

    def backprop(self, X, Y):
        n = len(X)
        d2 = (self.P - Y) / n
        d1 = d2 @ self.W[1].T * (1 - self.A1**2)
        self.W[1] -= LEARNING_RATE * self.A1.T @ d2
        self.b[1] -= LEARNING_RATE * d2.sum(0)
        self.W[0] -= LEARNING_RATE * X.T @ d1
        self.b[0] -= LEARNING_RATE * d1.sum(0)
