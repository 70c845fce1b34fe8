import numpy as np

from loglinear import softmax

STUDENT = {"name": "Noa Levi", "ID": "000000000"}


def forward(x, params):
    """Pre-activations and activations of every layer, for the backward pass."""
    zs = []
    hs = [x]
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        z = np.dot(h, W) + b
        zs.append(z)
        if i < n_layers - 1:
            h = np.tanh(z)
            hs.append(h)
    return zs, hs


def classifier_output(x, params):
    zs, hs = forward(x, params)
    probs = softmax(zs[-1])
    return probs


def predict(x, params):
    return np.argmax(classifier_output(x, params))


def loss_and_gradients(x, y, params):
    """
    params: a list as created by create_classifier(...)

    returns:
        loss,[gW1, gb1, gW2, gb2, ...]

    loss: scalar
    gW1: matrix, gradients of W1
    gb1: vector, gradients of b1
    gW2: matrix, gradients of W2
    gb2: vector, gradients of b2
    ...

    (of course, if we request a linear classifier (ie, params is of length 2),
    you should not have gW2 and gb2.)
    """
    zs, hs = forward(x, params)
    probs = softmax(zs[-1])
    loss = -np.log(probs[y])

    delta = probs.copy()
    delta[y] -= 1  # dloss/dz of the last layer

    grads = []
    for i in reversed(range(len(params) // 2)):
        gW = np.outer(zs[i - 1] if i > 0 else x, delta)
        gb = delta
        grads.insert(0, gb)
        grads.insert(0, gW)
        if i > 0:
            delta = np.dot(params[2 * i], delta) * (1 - np.tanh(zs[i - 1]) ** 2)

    return loss, grads


def create_classifier(dims):
    """
    returns the parameters for a multi-layer perceptron with an arbitrary number
    of hidden layers.
    dims is a list of length at least 2, where the first item is the input
    dimension, the last item is the output dimension, and the ones in between
    are the hidden layers.
    For example, for:
        dims = [300, 20, 30, 40, 5]
    We will have input of 300 dimension, a hidden layer of 20 dimension, passed
    to a layer of 30 dimensions, passed to learn of 40 dimensions, and finally
    an output of 5 dimensions.

    Assume a tanh activation function between all the layers.

    return:
    a flat list of parameters where the first two elements are the W and b from input
    to first layer, then the second two are the matrix and vector from first to
    second layer, and so on.
    """
    params = []
    for in_dim, out_dim in zip(dims, dims[1:]):
        eps = np.sqrt(6.0 / (in_dim + out_dim))  # Glorot
        W = np.random.uniform(-eps, eps, (in_dim, out_dim))
        b = np.random.uniform(-eps, eps, out_dim)
        params.append(W)
        params.append(b)
    return params


if __name__ == "__main__":
    from grad_check import gradient_check

    dims = [20, 30, 40, 10]
    params = create_classifier(dims)

    def _loss_and_p_grad(p, i):
        params[i] = p
        loss, grads = loss_and_gradients(np.random.randn(dims[0]), 0, params)
        return loss, grads[i]

    for i in range(len(params)):
        gradient_check(lambda p, i=i: _loss_and_p_grad(p, i), params[i])
