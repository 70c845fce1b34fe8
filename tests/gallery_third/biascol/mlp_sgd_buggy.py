"""784-300-10 MLP for MNIST, trained one example at a time (online SGD).

The biases live in the weight matrices: every input vector gets a constant 1
appended, so W1 is 300 x (784 + 1) and W2 is 10 x (300 + 1); the last column
of each matrix is the bias. tanh hidden layer, softmax output, cross-entropy
loss -log p[label]. The learning rate decays as eta0 / (1 + t * decay).
"""
import gzip
import pickle

import numpy as np


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


class MLP:
    def __init__(self):
        self.n_in, self.n_hidden, self.n_out = 784, 300, 10
        self.W1 = np.random.uniform(-1, 1, (self.n_hidden, self.n_in + 1)) / np.sqrt(self.n_in)
        self.W2 = np.random.uniform(-1, 1, (self.n_out, self.n_hidden + 1)) / np.sqrt(self.n_hidden)
        self.eta0 = 0.05
        self.decay = 1e-4
        self.t = 0

    def forward(self, x):
        """Class probabilities for one image x of shape (784,)."""
        self.x1 = np.append(x, 1)
        self.h = np.tanh(self.W1 @ self.x1)
        self.h1 = np.append(self.h, 1)
        self.p = softmax(self.W2 @ self.h1)
        return self.p

    def loss(self, x, label):
        return -np.log(self.forward(x)[label])

    def train_step(self, x, label):
        p = self.forward(x)
        y = np.zeros(self.n_out)
        y[label] = 1
        # output layer: d loss / d (W2 h1) = p - y
        delta2 = p - y
        dW2 = np.outer(delta2, self.h1)
        # hidden layer: leave out the bias column of W2, it is not connected to W1
        back = self.W2.T @ delta2
        delta1 = back[1:] * (1 - self.h ** 2)
        dW1 = np.outer(delta1, self.x1)
        eta = self.eta0 / (1 + self.t * self.decay)
        self.W2 -= eta * dW2
        self.W1 -= eta * dW1
        self.t += 1
        return -np.log(p[label])

    def predict(self, x):
        return np.argmax(self.forward(x))


with gzip.open("mnist.pkl.gz", "rb") as f:
    train_set, valid_set, test_set = pickle.load(f, encoding="latin1")

net = MLP()
for epoch in range(10):
    order = np.random.permutation(len(train_set[0]))
    total = 0.0
    for i in order:
        total += net.train_step(train_set[0][i], train_set[1][i])
    errors = sum(net.predict(x) != t for x, t in zip(*valid_set))
    print("epoch %d  loss %.4f  valid error %.2f%%" % (epoch, total / len(order), 100.0 * errors / len(valid_set[0])))
