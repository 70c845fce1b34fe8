# Neural network from scratch with numpy: layers as objects, Keras-style model.add()
# Every layer has forward(x) and backward(grad, lr): backward gets dLoss/dOutput,
# updates the layer's own parameters and returns dLoss/dInput for the layer before.
import numpy as np


class Dense:
    def __init__(self, n_in, n_out):
        # He initialisation
        self.W = np.random.randn(n_in, n_out) * np.sqrt(2.0 / n_in)
        self.b = np.zeros(n_out)

    def forward(self, x):
        self.x = x  # (batch, n_in)
        return x @ self.W + self.b

    def backward(self, grad, lr):
        # grad: (batch, n_out), already divided by the batch size by the loss
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        grad_input = grad @ self.W.T  # before the update!
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return grad_input


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad, lr):
        return grad * self.mask


class Tanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad, lr):
        return grad * (1 - self.out ** 2)


class SoftmaxCrossEntropy:
    """Softmax + mean cross-entropy over the batch; y holds integer labels."""

    def forward(self, logits, y):
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        self.probs = exp / exp.sum(axis=1, keepdims=True)
        self.y = y
        n = logits.shape[0]
        return -np.log(self.probs[np.arange(n), y]).mean()

    def backward(self):
        n = self.probs.shape[0]
        grad = self.probs.copy()
        grad[np.arange(n), self.y] -= 1
        return grad / n


class NeuralNetwork:
    def __init__(self):
        self.layers = []
        self.loss_fn = SoftmaxCrossEntropy()

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

    def predict(self, x):
        return np.argmax(self.forward(x), axis=1)

    def train(self, X, y, epochs=10, lr=0.1, batch_size=64):
        n = X.shape[0]
        for epoch in range(epochs):
            perm = np.random.permutation(n)
            total = 0.0
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                logits = self.forward(X[idx])
                total += self.loss_fn.forward(logits, y[idx]) * len(idx)
                self.backward(self.loss_fn.backward(), lr)
            acc = np.mean(self.predict(X) == y)
            print(f"epoch {epoch + 1}: loss {total / n:.4f}, train acc {acc:.4f}")


nn = NeuralNetwork()
nn.add(Dense(784, 128))
nn.add(ReLU())
nn.add(Dense(128, 10))

# Kaggle's mnist_train.csv: label, then 784 pixels per row
data = np.loadtxt("mnist_train.csv", delimiter=",", skiprows=1)
y_train = data[:, 0].astype(int)
X_train = data[:, 1:] / 255.0

nn.train(X_train, y_train, epochs=5, lr=0.1)

test = np.loadtxt("mnist_test.csv", delimiter=",", skiprows=1)
print("test accuracy:", np.mean(nn.predict(test[:, 1:] / 255.0) == test[:, 0]))
