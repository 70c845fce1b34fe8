from builtins import range
from builtins import object
import numpy as np

from ..layers import *
from ..layer_utils import *


class FullyConnectedNet(object):
    """
    A fully-connected neural network with an arbitrary number of hidden layers,
    ReLU nonlinearities, and a softmax loss function. For a network with L layers,
    the architecture will be

    {affine - relu} x (L - 1) - affine - softmax

    Learnable parameters are stored in the self.params dictionary and will be
    learned using the Solver class.
    """

    def __init__(
        self,
        hidden_dims,
        input_dim=3 * 32 * 32,
        num_classes=10,
        reg=0.0,
        weight_scale=1e-2,
        dtype=np.float32,
    ):
        """
        Initialize a new FullyConnectedNet.

        Inputs:
        - hidden_dims: A list of integers giving the size of each hidden layer.
        - input_dim: An integer giving the size of the input.
        - num_classes: An integer giving the number of classes to classify.
        - reg: Scalar giving L2 regularization strength.
        - weight_scale: Scalar giving the standard deviation for random
          initialization of the weights.
        - dtype: A numpy datatype object; all computations will be performed using
          this datatype. float32 is faster but less accurate, so you should use
          float64 for numeric gradient checking.
        """
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params = {}

        ############################################################################
        # Weights of layer i are stored in W{i} with shape (in, out), biases in    #
        # b{i} with shape (out,), initialized to zero.                             #
        ############################################################################
        dims = [input_dim] + list(hidden_dims) + [num_classes]
        for i in range(self.num_layers):
            self.params["W%d" % (i + 1)] = weight_scale * np.random.randn(dims[i], dims[i + 1])
            self.params["b%d" % (i + 1)] = np.zeros(dims[i + 1])

        # Cast all parameters to the correct datatype
        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X, y=None):
        """
        Compute loss and gradient for the fully-connected net.

        Inputs:
        - X: Array of input data of shape (N, d_1, ..., d_k)
        - y: Array of labels, of shape (N,). y[i] gives the label for X[i].

        Returns:
        If y is None, then run a test-time forward pass of the model and return:
        - scores: Array of shape (N, C) giving classification scores, where
          scores[i, c] is the classification score for X[i] and class c.

        If y is not None, then run a training-time forward and backward pass and
        return a tuple of:
        - loss: Scalar value giving the loss
        - grads: Dictionary with the same keys as self.params, mapping parameter
          names to gradients of the loss with respect to those parameters.
        """
        X = X.astype(self.dtype)
        scores = None
        caches = []
        out = X
        for i in range(self.num_layers - 1):
            W, b = self.params["W%d" % (i + 1)], self.params["b%d" % (i + 1)]
            out, cache = affine_relu_forward(out, W, b)
            caches.append(cache)
        W, b = self.params["W%d" % self.num_layers], self.params["b%d" % self.num_layers]
        scores, cache = affine_forward(out, W, b)
        caches.append(cache)

        # If test mode return early
        if y is None:
            return scores

        loss, grads = 0.0, {}
        ############################################################################
        # Softmax data loss plus L2 regularization 0.5 * reg * sum(W * W) for     #
        # every weight matrix, so that the gradient of the penalty is reg * W.     #
        ############################################################################
        loss, dscores = softmax_loss(scores, y)
        for i in range(self.num_layers):
            W = self.params["W%d" % (i + 1)]
            loss += 0.5 * self.reg * np.sum(W * W)

        L = self.num_layers
        dout, dw, db = affine_backward(dscores, caches[L - 1])
        grads["W%d" % L] = dw + self.reg * self.params["W%d" % L]
        grads["b%d" % L] = db
        for i in reversed(range(L - 1)):
            fc_cache, relu_cache = caches[i]
            dout, dw, db = affine_backward(dout, fc_cache)
            grads["W%d" % (i + 1)] = dw + self.reg * self.params["W%d" % (i + 1)]
            grads["b%d" % (i + 1)] = db

        return loss, grads


if __name__ == "__main__":
    # Sanity check on a small slice of CIFAR-10 (run from the assignment root)
    data = np.load("cifar10_dev.npz")
    X_train, y_train = data["X_train"], data["y_train"]
    model = FullyConnectedNet([100, 100], weight_scale=5e-2, dtype=np.float64)
    loss, grads = model.loss(X_train[:50], y_train[:50])
    print("Initial loss: ", loss)
