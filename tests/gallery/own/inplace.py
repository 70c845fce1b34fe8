"""A class whose backward pass updates its weights in place (weights (out, in), biases (out, 1))."""

import numpy as np


class Net:
    def __init__(self, n_in, n_hidden, n_out, learning_rate):
        self.W1 = np.random.randn(n_hidden, n_in)
        self.b1 = np.zeros((n_hidden, 1))
        self.W2 = np.random.randn(n_out, n_hidden)
        self.b2 = np.zeros((n_out, 1))
        self.lr = learning_rate

    def forward(self, X):
        self.X = X
        self.A1 = 1 / (1 + np.exp(-(self.W1 @ X + self.b1)))
        self.A2 = 1 / (1 + np.exp(-(self.W2 @ self.A1 + self.b2)))
        return self.A2

    def backward(self, Y):
        m = Y.shape[1]
        dZ2 = (self.A2 - Y) * self.A2 * (1 - self.A2) / m
        dZ1 = self.W2.T @ dZ2 * self.A1 * (1 - self.A1)
        self.W2 -= self.lr * dZ2 @ self.A1.T
        self.b2 -= self.lr * dZ2.sum(axis=1, keepdims=True)
        self.W1 -= self.lr * dZ1 @ self.X.T
        self.b1 -= self.lr * dZ1.sum(axis=1, keepdims=True)
