"""Per-example backprop with list params from an init function and a helper from a sibling module
(utils.py reads data when imported), as course solutions are written."""

import numpy as np
from utils import softmax

STUDENT = "Ada"


def create_classifier(in_dim, hid_dim, out_dim):
    W = np.random.randn(in_dim, hid_dim)
    b = np.zeros(hid_dim)
    U = np.random.randn(hid_dim, out_dim)
    b_tag = np.zeros(out_dim)
    return [W, b, U, b_tag]


def loss_and_gradients(x, y, params):
    W, b, U, b_tag = params
    h = np.tanh(x.dot(W) + b)
    p = softmax(h.dot(U) + b_tag)
    loss = -np.log(p[y])
    dz = p.copy()
    dz[y] -= 1
    gU = np.outer(h, dz)
    gb_tag = dz
    dh = U.dot(dz) * (1 - h**2)
    return loss, [np.outer(x, dh), dh, gU, gb_tag]


def loss_and_gradients_buggy(x, y, params):
    """The hidden layer's error skips the tanh derivative."""
    W, b, U, b_tag = params
    h = np.tanh(x.dot(W) + b)
    p = softmax(h.dot(U) + b_tag)
    dz = p.copy()
    dz[y] -= 1
    dh = U.dot(dz)
    return -np.log(p[y]), [np.outer(x, dh), dh, np.outer(h, dz), dz]


TRAIN = np.loadtxt("train.csv")  # the author's data: never loaded by the checker
