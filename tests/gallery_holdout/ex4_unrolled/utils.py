import sys

import numpy as np
from matplotlib import pyplot

sys.path.append("..")
from submission import SubmissionBase


def displayData(X, example_width=None, figsize=(10, 10)):
    """Show the rows of X as a grid of square grey images."""
    if X.ndim == 1:
        X = X[None]
    m, n = X.shape
    example_width = example_width or int(np.round(np.sqrt(n)))
    example_height = n // example_width
    display_rows = int(np.floor(np.sqrt(m)))
    display_cols = int(np.ceil(m / display_rows))
    fig, ax_array = pyplot.subplots(display_rows, display_cols, figsize=figsize)
    fig.subplots_adjust(wspace=0.025, hspace=0.025)
    ax_array = [ax_array] if m == 1 else ax_array.ravel()
    for i, ax in enumerate(ax_array):
        ax.imshow(X[i].reshape(example_width, example_height, order="F"), cmap="Greys", extent=[0, 1, 0, 1])
        ax.axis("off")


def sigmoid(z):
    """Computes the sigmoid of z."""
    return 1.0 / (1.0 + np.exp(-z))


def predict(Theta1, Theta2, X):
    """Predicted label of each row of X for a trained network."""
    if X.ndim == 1:
        X = X[None]
    m = X.shape[0]
    h1 = sigmoid(np.dot(np.concatenate([np.ones((m, 1)), X], axis=1), Theta1.T))
    h2 = sigmoid(np.dot(np.concatenate([np.ones((m, 1)), h1], axis=1), Theta2.T))
    return np.argmax(h2, axis=1)


def debugInitializeWeights(fan_out, fan_in):
    """Deterministic weights (fan_out, 1 + fan_in) from a sine, for the gradient check."""
    W = np.sin(np.arange(1, 1 + (1 + fan_in) * fan_out)) / 10.0
    W = W.reshape(fan_out, 1 + fan_in, order="F")
    return W


def computeNumericalGradient(J, theta, e=1e-4):
    """Centred differences of the cost J at theta, one entry at a time."""
    numgrad = np.zeros(theta.shape)
    perturb = np.diag(e * np.ones(theta.shape))
    for i in range(theta.size):
        loss1, _ = J(theta - perturb[:, i])
        loss2, _ = J(theta + perturb[:, i])
        numgrad[i] = (loss2 - loss1) / (2 * e)
    return numgrad


def checkNNGradients(nnCostFunction, lambda_=0):
    """Compare nnCostFunction's gradient with finite differences on a tiny network."""
    input_layer_size = 3
    hidden_layer_size = 5
    num_labels = 3
    m = 5

    Theta1 = debugInitializeWeights(hidden_layer_size, input_layer_size)
    Theta2 = debugInitializeWeights(num_labels, hidden_layer_size)
    X = debugInitializeWeights(m, input_layer_size - 1)
    y = np.arange(1, 1 + m) % num_labels

    nn_params = np.concatenate([Theta1.ravel(), Theta2.ravel()])

    def costFunc(p):
        return nnCostFunction(p, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_)

    cost, grad = costFunc(nn_params)
    numgrad = computeNumericalGradient(costFunc, nn_params)

    print(np.stack([numgrad, grad], axis=1))
    diff = np.linalg.norm(numgrad - grad) / np.linalg.norm(numgrad + grad)
    print("Relative Difference: %g" % diff)


class Grader(SubmissionBase):
    X = np.reshape(3 * np.sin(np.arange(1, 31)), (3, 10), order="F")
    y = np.arange(1, 4) % 3

    def __init__(self):
        part_names = ["Feedforward and Cost Function", "Regularized Cost Function", "Sigmoid Gradient"]
        super().__init__("neural-network-learning", part_names)
