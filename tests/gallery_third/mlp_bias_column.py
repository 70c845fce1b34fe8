# 784-300-10 MLP for MNIST, online (one image at a time) gradient descent.
# The bias of each layer is the last column of its weight matrix: every input
# vector gets a constant 1 appended before it is multiplied.
import numpy as np

N_IN, N_HID, N_OUT = 784, 300, 10


def add_bias(v):
    return np.append(v, 1.0)


def softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


class MLP:
    def __init__(self, eta0=0.1, decay=1e-4, seed=0):
        rng = np.random.RandomState(seed)
        # W1: (300, 785), W2: (10, 301), last column = bias
        self.W1 = rng.uniform(-0.05, 0.05, size=(N_HID, N_IN + 1))
        self.W2 = rng.uniform(-0.05, 0.05, size=(N_OUT, N_HID + 1))
        self.eta0 = eta0
        self.decay = decay
        self.iteration = 0

    def forward(self, x):
        self.x1 = add_bias(x)                    # (785,)
        self.h = np.tanh(self.W1 @ self.x1)      # (300,)
        self.h1 = add_bias(self.h)               # (301,)
        self.p = softmax(self.W2 @ self.h1)      # (10,)
        return self.p

    def train_step(self, x, t):
        """x: (784,) pixels in [0,1], t: (10,) one-hot. Cross-entropy loss."""
        p = self.forward(x)
        d_out = p - t                                   # dE/da2 for softmax + CE
        grad_W2 = np.outer(d_out, self.h1)
        d_hid = (self.W2[:, :-1].T @ d_out) * (1.0 - self.h ** 2)  # drop bias column
        grad_W1 = np.outer(d_hid, self.x1)

        eta = self.eta0 / (1.0 + self.decay * self.iteration)
        self.W2 -= eta * grad_W2
        self.W1 -= eta * grad_W1
        self.iteration += 1
        return -np.log(p[np.argmax(t)] + 1e-12)

    def predict(self, x):
        return np.argmax(self.forward(x))


net = MLP()
data = np.load("mnist.npz")
x_train, y_train = data["x_train"].reshape(-1, 784) / 255.0, data["y_train"]
x_test, y_test = data["x_test"].reshape(-1, 784) / 255.0, data["y_test"]
T = np.eye(N_OUT)

for epoch in range(5):
    order = np.random.permutation(len(x_train))
    loss = 0.0
    for i in order:
        loss += net.train_step(x_train[i], T[y_train[i]])
    acc = np.mean([net.predict(x) == y for x, y in zip(x_test, y_test)])
    print("epoch", epoch, "loss", loss / len(x_train), "test acc", acc, "eta", net.eta0 / (1 + net.decay * net.iteration))
