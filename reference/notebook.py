"""The notebook's code, made exact and importable (numpy only).

Cells 4-13 of ../shared/seed/mlpnn-notebook.md, in order, with three additions: the random stream is
an argument (so that importing this module never touches ``np.random``'s global state), the KL loss
no longer warns on the zeros of its one-hot targets (its values are unchanged), and the training loop
of cells 9 and 13 is a function, ``run_notebook``.

Shapes: n samples, D = 784 inputs, H hidden units (1000 in the notebook), K = 10 classes.
"""

from __future__ import annotations

import numpy as np

NOTEBOOK_SEED = 1  # cell 1: np.random.seed(1)
NOTEBOOK_HIDDEN = 1000
NOTEBOOK_LR = 1e-1
NOTEBOOK_EPOCHS = 2000
CLIP = 1e-8  # MLPNN.__call__ clips its output probabilities at 1e-8 before any loss sees them


class Perceptron:
    """One neuron: a column of weights drawn N(0, 1) and a bias drawn U[0, 1) (cell 4).

    Args:
        dim: number of inputs.
        activation: elementwise function applied to ``Z``, or None.
        rng: the random stream; ``np.random`` (the global one) as in the notebook, or a RandomState.
    """

    def __init__(self, dim, activation, rng=np.random):
        self.act = activation
        self.w = rng.randn(dim, 1)  # (dim, 1), unscaled N(0, 1)
        self.b = rng.rand()  # float, U[0, 1)

    def __call__(self, x):
        """x (n, dim) -> Z (n, 1), and act(Z) (n, 1) when the neuron has an activation."""
        Z = np.dot(x, self.w) + self.b
        if self.act:
            return Z, self.act(Z)
        return Z


def softmax(X):
    """Row-wise softmax of X (n, K) -> (n, K), without max-subtraction, as in cell 5."""
    X_exp = np.exp(X)
    return X_exp / np.sum(X_exp, axis=1, keepdims=True)


class MLPNN:
    """784 -> n_neuron tanh -> 10 softmax, built from Perceptrons, then vectorized (cell 6).

    Attributes after construction: W1 (in_dim, n_neuron), b1 (n_neuron,), W2 (n_neuron, out_dim),
    b2 (out_dim,), and ``cache`` holding Z1, A1 (n, n_neuron) and Z2, A2 (n, out_dim) of the last call.
    """

    def __init__(self, in_dim, out_dim, n_neuron, rng=np.random):
        self.layer1 = [Perceptron(in_dim, activation=np.tanh, rng=rng) for _ in range(n_neuron)]
        self.layer2 = [Perceptron(n_neuron, activation=softmax, rng=rng) for _ in range(out_dim)]
        self._vectorize()
        self.cache = dict()

    def __call__(self, x, requires_cache=True):
        """x (n, in_dim) -> class probabilities (n, out_dim), clipped below at 1e-8."""
        Z1 = np.dot(x, self.W1) + self.b1
        A1 = self._activate(Z1, layer_idx=1)
        Z2 = np.dot(A1, self.W2) + self.b2
        A2 = self._activate(Z2, layer_idx=2)
        if requires_cache:
            self.cache.update(Z1=Z1, A1=A1, Z2=Z2, A2=A2)
        return A2.clip(min=CLIP, max=None)  # the cache keeps the unclipped A2

    def _vectorize(self):
        self.W1 = np.hstack([n.w for n in self.layer1])
        self.b1 = np.array([n.b for n in self.layer1])
        self.W2 = np.hstack([n.w for n in self.layer2])
        self.b2 = np.array([n.b for n in self.layer2])
        self.act1 = [n.act for n in self.layer1]
        if all(a == self.act1[0] for a in self.act1):
            self.act1 = self.act1[0]
        self.act2 = [n.act for n in self.layer2]
        if all(a == self.act2[0] for a in self.act2):
            self.act2 = self.act2[0]
        del self.layer1, self.layer2

    def _activate(self, feat, layer_idx):
        act = self.act1 if layer_idx == 1 else self.act2
        if callable(act):
            return act(feat)
        for i in range(feat.shape[1]):
            feat[:, i] = act[i](feat[:, i])
        return feat

    @property
    def params(self):
        """The weights as the project's params dict (copies)."""
        return {k: getattr(self, k).copy() for k in ("W1", "b1", "W2", "b2")}

    @classmethod
    def from_params(cls, params):
        """An MLPNN (tanh, softmax) holding copies of ``params`` instead of fresh draws."""
        net = cls.__new__(cls)
        for k in ("W1", "b1", "W2", "b2"):
            setattr(net, k, np.array(params[k], dtype=np.float64))
        net.act1, net.act2, net.cache = np.tanh, softmax, dict()
        return net


def to_one_hot(Y, num_classes=10):
    """Integer labels Y (n,) -> one-hot float64 (n, num_classes) (cell 7, not shown in the notebook)."""
    Y = np.asarray(Y)
    out = np.zeros((Y.shape[0], num_classes))
    out[np.arange(Y.shape[0]), Y] = 1.0
    return out


def compute_loss_ce(output, Y):
    """Cross-entropy as the notebook printed it: the SUM over samples of -sum_k y_k log(output_k).

    Args:
        output: (n, 10) probabilities, already clipped at 1e-8 by ``MLPNN.__call__``.
        Y: (n,) integer labels.
    Returns:
        A float: the summed loss.
    """
    return -np.sum(np.multiply(to_one_hot(Y, output.shape[1]), np.log(output)))


def compute_loss_kl(output, Y):
    """The KL "loss" exactly as the notebook computed it: sum y (log output - log y), so it is -KL(y||output).

    The only change from cell 11: ``output / y`` divides by the zeros of the one-hot targets, whose results
    ``np.where`` then discards, so the warnings are silenced; the values are the notebook's, bit for bit.

    Args:
        output: (n, 10) probabilities, clipped at 1e-8.
        Y: (n,) integer labels.
    Returns:
        A float, negative: the summed -KL.
    """
    y = to_one_hot(Y, output.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(y != 0, np.multiply(y, np.log(output / y)), 0))


def bp_cross_entropy(network, X, Y, lr):
    """One full-batch gradient-descent step from the cache of the last forward pass (cell 8).

    Args:
        network: an MLPNN whose ``cache`` holds A1 (n, H) and A2 (n, 10) for X.
        X: (n, 784) inputs.  Y: (n,) integer labels.  lr: the learning rate.
    """
    n = X.shape[0]
    A1, A2 = network.cache["A1"], network.cache["A2"]
    dZ2 = A2 - to_one_hot(Y, A2.shape[1])
    dW2 = (1 / n) * np.dot(A1.T, dZ2)
    db2 = (1 / n) * np.sum(dZ2, axis=0)
    dZ1 = np.multiply(np.dot(dZ2, network.W2.T), 1 - np.power(A1, 2))
    dW1 = (1 / n) * np.dot(X.T, dZ1)
    db1 = (1 / n) * np.sum(dZ1, axis=0)
    network.W2 -= lr * dW2
    network.b2 -= lr * db2
    network.W1 -= lr * dW1
    network.b1 -= lr * db1


# Cell 12: "since both losses have the same derivative w.r.t. y hat".
bp_kl = bp_cross_entropy

LOSSES = {"ce": (compute_loss_ce, bp_cross_entropy), "kl": (compute_loss_kl, bp_kl)}


def evaluate(network, X, Y, file=None):
    """Prints the confusion matrix and the accuracy as cell 10 did.

    Args:
        network: an MLPNN.  X: (n, 784).  Y: (n,) integer labels.  file: where to print (stdout).
    Returns:
        (confusion matrix (10, 10) int, accuracy float), which the notebook only printed.
    """
    from sklearn import metrics  # the notebook's cell 1 import, here where it is used: it costs ~1 s

    pred = np.argmax(network(X), axis=1).reshape(-1)
    cm = metrics.confusion_matrix(Y, pred)
    acc = metrics.accuracy_score(Y, pred)
    print("Confusion matrix:\n%s" % cm, file=file)
    print(f"Accuracy={acc}", file=file)
    return cm, acc


def notebook_networks(in_dim=784, out_dim=10, n_neuron=NOTEBOOK_HIDDEN, seed=NOTEBOOK_SEED):
    """The notebook's two networks, drawn from one stream: the cross-entropy one, then the KL one."""
    rng = np.random.RandomState(seed)  # the same stream as np.random.seed(seed) then np.random.*
    net_ce = MLPNN(in_dim, out_dim, n_neuron, rng=rng)
    net_kl = MLPNN(in_dim, out_dim, n_neuron, rng=rng)
    return net_ce, net_kl


def notebook_init(in_dim=784, out_dim=10, n_neuron=NOTEBOOK_HIDDEN, seed=NOTEBOOK_SEED):
    """The notebook's initial weights for its two runs, drawn exactly as it drew them.

    ``np.random.seed(1)``; each Perceptron draws ``randn(dim, 1)`` then ``rand()``, layer 1 then layer 2,
    the cross-entropy network first and the KL network second, from one stream.

    Returns:
        (params_ce, params_kl), each {"W1": (in_dim, n_neuron), "b1": (n_neuron,),
        "W2": (n_neuron, out_dim), "b2": (out_dim,)}, float64.
    """
    net_ce, net_kl = notebook_networks(in_dim, out_dim, n_neuron, seed)
    return net_ce.params, net_kl.params


def run_notebook(
    network,
    train_img,
    train_label,
    test_img,
    test_label,
    loss="ce",
    epochs=NOTEBOOK_EPOCHS,
    lr=NOTEBOOK_LR,
    print_every=200,
    file=None,
    progress=None,
):
    """The training loop of cells 9 and 13: full-batch gradient descent, losses recorded every epoch.

    Args:
        network: an MLPNN, updated in place.
        train_img: (n, 784) float64.  train_label: (n,) integer labels.  Likewise test_img, test_label.
        loss: "ce" or "kl".  epochs, lr: as the notebook (2000, 0.1).
        print_every: print ``[epoch N] loss: X`` every this many epochs (0: never).
        file: where to print.  progress: an optional callable ``progress(epoch, train_loss, test_loss)``.
    Returns:
        (training_loss, testing_loss): lists of floats, one per epoch. The train loss is measured before
        that epoch's update, the test loss after it.
    """
    compute_loss, backprop = LOSSES[loss]
    training_loss, testing_loss = [], []
    for epoch in range(1, epochs + 1):
        out = network(train_img)
        loss_value = compute_loss(out, train_label)
        training_loss.append(loss_value)
        backprop(network, train_img, train_label, lr)
        if print_every and epoch % print_every == 0:
            print("[epoch %d] loss: %.4f" % (epoch, loss_value), file=file)
        out = network(test_img, requires_cache=False)
        testing_loss.append(compute_loss(out, test_label))
        if progress is not None:
            progress(epoch, training_loss[-1], testing_loss[-1])
    return training_loss, testing_loss
