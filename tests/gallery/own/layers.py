"""Layer objects: each layer's backward returns the input gradient and updates its own weights in place.

``NeuralNetwork`` is right; ``BuggyNetwork`` forgets the tanh derivative (dZ = dA); ``TemperedNetwork``
returns its logits halved, which no candidate network computes, so the gradient it takes is unknown.
"""

import numpy as np


class Dense:
    def __init__(self, n_in, n_out):
        self.W = 0.1 * np.random.randn(n_in, n_out)
        self.b = np.zeros(n_out)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad, lr):
        dW = self.x.T @ grad
        db = grad.sum(axis=0)
        dx = grad @ self.W.T
        self.W -= lr * dW
        self.b -= lr * db
        return dx


class Tanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad, lr):
        return grad * (1 - self.out**2)


class Identity(Tanh):
    def backward(self, grad, lr):
        return grad


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad, lr):
        return grad * self.mask


class NeuralNetwork:
    def __init__(self):
        self.layers = []

    def add(self, layer):
        self.layers.append(layer)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad, lr):
        for layer in reversed(self.layers):
            grad = layer.backward(grad, lr)
        return grad


class BuggyNetwork(NeuralNetwork):
    def backward(self, grad, lr):
        for layer in reversed(self.layers):
            if isinstance(layer, Tanh):
                layer = Identity()
            grad = layer.backward(grad, lr)
        return grad


class TemperedNetwork(NeuralNetwork):
    def forward(self, x):
        return NeuralNetwork.forward(self, x) / 2

    def backward(self, grad, lr):
        return NeuralNetwork.backward(self, grad / 2, lr)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def build(n_in, n_hidden, n_out, net=None):
    net = NeuralNetwork() if net is None else net
    net.add(Dense(n_in, n_hidden))
    net.add(Tanh())
    net.add(Dense(n_hidden, n_out))
    return net


if __name__ == "__main__":
    X = np.random.rand(64, 4)
    y = np.random.randint(0, 3, 64)
    net = build(4, 8, 3)
    for _ in range(100):
        p = softmax(net.forward(X))
        grad = p.copy()
        grad[np.arange(len(y)), y] -= 1
        net.backward(grad / len(y), 0.1)
