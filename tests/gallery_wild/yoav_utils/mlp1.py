import numpy as np

from utils import softmax

STUDENT = {"name": "YOUR NAME", "ID": "YOUR ID NUMBER"}


def classifier_output(x, params):
    W, b, U, b_tag = params
    h = np.tanh(np.dot(x, W) + b)
    probs = softmax(np.dot(h, U) + b_tag)
    return probs


def predict(x, params):
    return np.argmax(classifier_output(x, params))


def loss_and_gradients(x, y, params):
    """
    params: a list of the form [W, b, U, b_tag]

    returns:
        loss,[gW, gb, gU, gb_tag]

    loss: scalar
    gW: matrix, gradients of W
    gb: vector, gradients of b
    gU: matrix, gradients of U
    gb_tag: vector, gradients of b_tag
    """
    W, b, U, b_tag = params

    # forward
    h = np.tanh(np.dot(x, W) + b)
    y_hat = softmax(np.dot(h, U) + b_tag)
    loss = -np.log(y_hat[y])

    # backward
    y_vec = np.zeros(y_hat.shape)
    y_vec[y] = 1
    dz = y_hat - y_vec
    gU = np.outer(h, dz)
    gb_tag = dz
    dh = np.dot(U, dz) * (1 - h**2)
    gW = np.outer(x, dh)
    gb = dh
    return loss, [gW, gb, gU, gb_tag]


def create_classifier(in_dim, hid_dim, out_dim):
    """
    returns the parameters for a multi-layer perceptron,
    with input dimension in_dim, hidden dimension hid_dim
    and output dimension out_dim.

    return:
    a flat list of 4 elements, W, b, U, b_tag.
    """
    eps = np.sqrt(6) / np.sqrt(in_dim + hid_dim)
    W = np.random.uniform(-eps, eps, (in_dim, hid_dim))
    b = np.zeros(hid_dim)
    eps = np.sqrt(6) / np.sqrt(hid_dim + out_dim)
    U = np.random.uniform(-eps, eps, (hid_dim, out_dim))
    b_tag = np.zeros(out_dim)
    return [W, b, U, b_tag]


if __name__ == "__main__":
    # Sanity checks. If these fail, your gradient calculation is definitely wrong.
    # If they pass, it is likely, but not certainly, correct.
    from grad_check import gradient_check

    W, b, U, b_tag = create_classifier(3, 4, 6)

    def _loss_and_W_grad(W):
        global b, U, b_tag
        loss, grads = loss_and_gradients([1, 2, 3], 0, [W, b, U, b_tag])
        return loss, grads[0]

    def _loss_and_b_grad(b):
        global W, U, b_tag
        loss, grads = loss_and_gradients([1, 2, 3], 0, [W, b, U, b_tag])
        return loss, grads[1]

    def _loss_and_U_grad(U):
        global W, b, b_tag
        loss, grads = loss_and_gradients([1, 2, 3], 0, [W, b, U, b_tag])
        return loss, grads[2]

    def _loss_and_b_tag_grad(b_tag):
        global W, b, U
        loss, grads = loss_and_gradients([1, 2, 3], 0, [W, b, U, b_tag])
        return loss, grads[3]

    for _ in range(10):
        W = np.random.randn(W.shape[0], W.shape[1])
        b = np.random.randn(b.shape[0])
        U = np.random.randn(U.shape[0], U.shape[1])
        b_tag = np.random.randn(b_tag.shape[0])
        gradient_check(_loss_and_W_grad, W)
        gradient_check(_loss_and_b_grad, b)
        gradient_check(_loss_and_U_grad, U)
        gradient_check(_loss_and_b_tag_grad, b_tag)
