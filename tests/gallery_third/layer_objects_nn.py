# A tiny "framework" written from scratch: every layer knows how to do its own
# forward and backward pass, and Dense layers update themselves during backward.
import numpy as np


class Layer:
    def __init__(self):
        self.input = None
        self.output = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad, lr):
        raise NotImplementedError


class Dense(Layer):
    def __init__(self, input_size, output_size):
        super().__init__()
        # He initialisation because we use ReLU
        self.weights = np.random.randn(input_size, output_size) * np.sqrt(2.0 / input_size)
        self.bias = np.zeros((1, output_size))

    def forward(self, x):
        self.input = x
        self.output = np.dot(x, self.weights) + self.bias
        return self.output

    def backward(self, grad, lr):
        # grad = dE/dY, shape (batch, output_size)
        weights_grad = np.dot(self.input.T, grad)
        bias_grad = np.sum(grad, axis=0, keepdims=True)
        input_grad = np.dot(grad, self.weights.T)  # use the OLD weights
        self.weights -= lr * weights_grad
        self.bias -= lr * bias_grad
        return input_grad


class ReLU(Layer):
    def forward(self, x):
        self.input = x
        self.output = np.maximum(0, x)
        return self.output

    def backward(self, grad, lr):
        return grad * (self.input > 0)


class Softmax(Layer):
    def forward(self, x):
        e = np.exp(x - np.max(x, axis=1, keepdims=True))
        self.output = e / np.sum(e, axis=1, keepdims=True)
        return self.output

    def backward(self, grad, lr):
        # Jacobian of softmax times grad, done row by row without building the matrix
        s = self.output
        return s * (grad - np.sum(grad * s, axis=1, keepdims=True))


def cross_entropy(y_true, y_pred):
    # y_true one-hot (batch, classes), y_pred probabilities; mean over the batch
    return -np.mean(np.sum(y_true * np.log(y_pred + 1e-12), axis=1))


def cross_entropy_prime(y_true, y_pred):
    return -y_true / (y_pred + 1e-12) / y_true.shape[0]


class NeuralNetwork:
    def __init__(self):
        self.layers = []

    def add(self, layer):
        self.layers.append(layer)

    def predict(self, x):
        out = x
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def backward(self, grad, lr):
        for layer in reversed(self.layers):
            grad = layer.backward(grad, lr)
        return grad

    def fit(self, x_train, y_train, epochs=10, lr=0.1, batch_size=64):
        n = x_train.shape[0]
        for epoch in range(epochs):
            perm = np.random.permutation(n)
            err = 0
            for start in range(0, n, batch_size):
                idx = perm[start:start + batch_size]
                xb, yb = x_train[idx], y_train[idx]
                out = self.predict(xb)
                err += cross_entropy(yb, out) * len(idx)
                self.backward(cross_entropy_prime(yb, out), lr)
            print("epoch %d/%d   error=%f" % (epoch + 1, epochs, err / n))


nn = NeuralNetwork()
nn.add(Dense(784, 128))
nn.add(ReLU())
nn.add(Dense(128, 64))
nn.add(ReLU())
nn.add(Dense(64, 10))
nn.add(Softmax())

# MNIST in csv form (label, 784 pixels), one image per row
train = np.loadtxt("data/mnist_train.csv", delimiter=",", skiprows=1)
y = np.eye(10)[train[:, 0].astype(int)]
X = train[:, 1:] / 255.0

nn.fit(X, y, epochs=20, lr=0.1)

test = np.loadtxt("data/mnist_test.csv", delimiter=",", skiprows=1)
pred = np.argmax(nn.predict(test[:, 1:] / 255.0), axis=1)
print("test accuracy:", np.mean(pred == test[:, 0]))
