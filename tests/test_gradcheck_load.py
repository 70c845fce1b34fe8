"""gradcheck's loading side on files as people leave them: Python 2 methods beside the checked one,
notebooks in nbformat 3 and 4, the user's own exception and line, and objects built by their constructor.

Every file is written to tmp_path and checked through ``isolate.run_file``, the child process's whole job.
"""

import json

import pytest

from mlpnn_jax.gradcheck.isolate import Request, run_file

# A two-layer class (tanh, softmax, cross-entropy mean) whose training method is Python 2.
PY2_CLASS = '''import numpy as np


class Net(object):
    """Two layers, tanh then softmax."""

    def __init__(self, n_in, n_hidden, n_out):
        self.W1 = np.random.randn(n_in, n_hidden) * 0.1
        self.b1 = np.zeros(n_hidden)
        self.W2 = np.random.randn(n_hidden, n_out) * 0.1
        self.b2 = np.zeros(n_out)

    def gradients(self, X, y):
        n = X.shape[0]
        H = np.tanh(X.dot(self.W1) + self.b1)
        Z = H.dot(self.W2) + self.b2
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        P[np.arange(n), y] -= 1
        dZ = P / n
        dH = dZ.dot(self.W2.T) * (1 - H ** 2)
        return {"W1": X.T.dot(dH), "b1": dH.sum(axis=0), "W2": H.T.dot(dZ), "b2": dZ.sum(axis=0)}

    def logged(self, X, y):
        self.log("gradients")
        return self.gradients(X, y)

    def train(self, X, y, epochs):
        for i in xrange(epochs):
            g = self.gradients(X, y)
            print "epoch", i

    def log(self, text):
        print text


def report(net):
    print "W1", net.W1


print "done"
'''
TRAIN_LINE = PY2_CLASS.splitlines().index("    def train(self, X, y, epochs):") + 1
LOG_LINE = PY2_CLASS.splitlines().index("    def log(self, text):") + 1


def check(tmp_path, name, text, target, **flags):
    path = tmp_path / name
    path.write_text(text)
    return run_file(Request(target=f"{path}:{target}", **flags))


def test_a_class_with_python_2_in_another_method_is_judged(tmp_path):
    outcome = check(tmp_path, "net.py", PY2_CLASS, "Net.gradients")
    assert outcome.code == 0, outcome.error + outcome.report
    assert "from the constructor of Net" in outcome.report.splitlines()[0]
    assert f"Net.train (line {TRAIN_LINE}) is not valid Python 3: SyntaxError" in outcome.report
    buggy = PY2_CLASS.replace(" * (1 - H ** 2)", "")  # the tanh derivative left out
    outcome = check(tmp_path, "net_buggy.py", buggy, "Net.gradients")
    assert outcome.code == 1, outcome.error + outcome.report
    assert "[activation]" in outcome.report


def test_a_python_2_method_the_checked_code_calls_raises_naming_it(tmp_path):
    outcome = check(tmp_path, "net.py", PY2_CLASS, "Net.logged")
    assert outcome.code == 2
    assert f"Net.log (line {LOG_LINE}) is not valid Python 3: SyntaxError" in outcome.error
    assert "and the checked code calls it" in outcome.error


def test_the_checked_method_in_python_2_is_a_load_error(tmp_path):
    outcome = check(tmp_path, "net.py", PY2_CLASS, "Net.train")
    assert outcome.code == 2
    assert outcome.error.startswith(f"net.py: Net.train (line {TRAIN_LINE}) is not valid Python 3")
    assert "'print \"epoch\", i'" in outcome.error  # the offending line, not the def


def test_a_python_2_module_function_is_a_stub_that_names_itself(tmp_path):
    text = "def helper(x):\n    print x\n\n\ndef backprop(params, X, Y):\n    helper(X)\n    return params\n"
    outcome = check(tmp_path, "bp.py", text, "backprop")
    assert outcome.code == 2
    assert "helper (line 1) is not valid Python 3" in outcome.error
    assert "at bp.py, line 6: `helper(X)`" in outcome.error  # the user's line that called it


def _notebook(cells, nbformat):
    """A notebook of code cells in nbformat 4 (cells[].source) or 3 (worksheets[].cells[].input)."""
    if nbformat == 4:
        code = [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []} for c in cells]
        return {"cells": code, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    code = [{"cell_type": "code", "input": c, "language": "python", "outputs": []} for c in cells]
    return {"worksheets": [{"cells": code}], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}


NOTEBOOK_CELLS = [
    ["import numpy as np"],
    [
        "def init(n_in, n_hidden, n_out):\n",
        "    return {'W1': np.ones((n_in, n_hidden)) * 0.1,\n",
        "            'W2': np.ones((n_hidden, n_out)) * 0.1}",
    ],
    "def backprop(params, X, Y):\n"
    "    n = len(X)\n"
    "    A1 = np.tanh(X @ params['W1'])\n"
    "    Z = A1 @ params['W2']\n"
    "    P = np.exp(Z - Z.max(1, keepdims=True))\n"
    "    P /= P.sum(1, keepdims=True)\n"
    "    d2 = (P - np.eye(P.shape[1])[Y]) / n\n"
    "    d1 = d2 @ params['W2'].T * (1 - A1**2)\n"
    "    return {'W1': X.T @ d1, 'W2': A1.T @ d2}\n",
    ["print 'trained'"],
]


@pytest.mark.parametrize("nbformat", [3, 4])
def test_notebooks_in_nbformat_3_and_4(tmp_path, nbformat):
    text = json.dumps(_notebook(NOTEBOOK_CELLS, nbformat))
    outcome = check(tmp_path, "nb.ipynb", text, "backprop", init="init")
    assert outcome.code == 0, outcome.error + outcome.report
    assert "params are the dict [W1 (5, 4), W2 (4, 3)] from init" in outcome.report
    assert "cell 4, line 1: not valid Python 3" in outcome.report


@pytest.mark.parametrize("nbformat", [3, 4])
def test_a_notebooks_traceback_shows_the_cells_code(tmp_path, nbformat):
    cells = [*NOTEBOOK_CELLS[:2], NOTEBOOK_CELLS[2].replace("X @ params['W1']", "X @ params['W1'].T")]
    outcome = check(tmp_path, "nb.ipynb", json.dumps(_notebook(cells, nbformat)), "backprop", init="init")
    assert outcome.code == 2
    assert "at nb.ipynb, cell 3, line 3: `A1 = np.tanh(X @ params['W1'].T)`" in outcome.error
    assert 'nb.ipynb[cell 3]", line 3, in backprop' in outcome.traceback
    assert "A1 = np.tanh(X @ params['W1'].T)" in outcome.traceback and '"cells"' not in outcome.traceback


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[1, 2]", "not a notebook (expected nbformat 3 or 4"),
        ('{"cells": [{"cell_type": "code", "source": 3}]}', "not a readable notebook"),
        ('{"cells": [', "not a readable notebook"),
    ],
)
def test_a_file_that_is_no_notebook_is_one_line(tmp_path, text, error):
    outcome = check(tmp_path, "nb.ipynb", text, "backprop")
    assert outcome.code == 2 and error in outcome.error and "\n" not in outcome.error


# The class's forward pass adds a bias of the wrong shape (one entry short).
CLASSES = """import numpy as np


class Net:
    def __init__(self, n_in, n_hidden, n_out):
        self.W1 = np.random.randn(n_in, n_hidden)
        self.b1 = np.zeros(n_hidden)
        self.W2 = np.random.randn(n_hidden, n_out)
        self.b2 = np.zeros(n_out)

    def forward(self, X):
        self.X = X
        self.H = np.tanh(X @ self.W1 + self.b1)
        Z = self.H @ self.W2 + self.b2[:-1]
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        self.P = P / P.sum(axis=1, keepdims=True)
        return self.P

    def backward(self, y):
        n = len(y)
        dZ = self.P.copy()
        dZ[np.arange(n), y] -= 1
        dZ /= n
        dH = dZ @ self.W2.T * (1 - self.H**2)
        return {"W1": self.X.T @ dH, "b1": dH.sum(0), "W2": self.H.T @ dZ, "b2": dZ.sum(0)}


class Fixed:
    def __init__(self):
        self.W1 = np.random.randn(2, 3)
        self.W2 = np.random.randn(3, 1)

    def backprop(self, X, y):
        return {"W1": X.T @ np.tanh(X @ self.W1), "W2": self.W2}


class Needs:
    def __init__(self, data, config):
        self.data = data["X"]

    def backprop(self, params, X, y):
        return params


class Stateless:
    def __init__(self):
        self.act = np.tanh

    def backprop(self, params, X, Y):
        n = len(X)
        A1 = self.act(X @ params["W1"] + params["b1"])
        Z = A1 @ params["W2"] + params["b2"]
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        d2 = (P - np.eye(P.shape[1])[Y]) / n
        d1 = d2 @ params["W2"].T * (1 - A1**2)
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": A1.T @ d2, "b2": d2.sum(0)}
"""


def test_a_crashing_forward_is_the_users_exception_at_the_users_line(tmp_path):
    outcome = check(tmp_path, "net.py", CLASSES, "Net.backward", forward="forward")
    assert outcome.code == 2
    assert outcome.error.startswith("Net.backward(y) raised ValueError: operands could not be broadcast")
    assert "at net.py, line 14: `Z = self.H @ self.W2 + self.b2[:-1]`" in outcome.error
    assert 'net.py", line 14, in forward' in outcome.traceback


def test_a_method_is_called_on_an_instance_its_constructor_made(tmp_path):
    outcome = check(tmp_path, "net.py", CLASSES, "Stateless.backprop")  # no stand-in self (a dict)
    assert outcome.code == 0, outcome.error + outcome.report
    assert outcome.report.startswith("called Stateless.backprop(params, X, Y) on whole batches")


def test_a_class_the_checker_cannot_build_is_one_line_naming_its_constructor(tmp_path):
    outcome = check(tmp_path, "net.py", CLASSES, "Needs.backprop")
    assert outcome.code == 2 and "\n" not in outcome.error
    assert outcome.error.startswith(
        "cannot build the Needs to call Needs.backprop on from its constructor Needs(data, config)"
    )
    assert "pass --setup 'net = Needs(...)'" in outcome.error and "'dict' object" not in outcome.error


def test_fixed_sizes_in_the_constructor_are_the_problems_sizes(tmp_path):
    # Fixed() builds 2-3-1 whatever it is asked: the problems take its sizes, and its made-up
    # gradients are judged wrong (not refused)
    outcome = check(tmp_path, "net.py", CLASSES, "Fixed.backprop")
    assert outcome.code == 1, outcome.error
    first = outcome.report.splitlines()[0]
    assert (
        "[self.W1 (2, 3), self.W2 (3, 1)] from the constructor of Fixed (sizes 2-3-1, as it builds them)"
        in first
    )


WRONG_BIAS = """import numpy as np


class Net:
    def __init__(self, n_in, n_hidden, n_out):
        self.W1, self.b1 = np.zeros((n_in, n_hidden)), np.zeros(n_hidden + 1)
        self.W2, self.b2 = np.zeros((n_hidden, n_out)), np.zeros(n_out)

    def forward(self, X):
        self.h = np.tanh(X @ self.W1 + self.b1)
        return self.h @ self.W2 + self.b2

    def backward(self, X, y):
        return {}
"""


def test_a_forward_pass_that_crashes_is_reported_as_the_users_exception(tmp_path):
    # b1 has one entry too many: the user's own exception and line, and the array the checker could
    # not read named, not a stand-in error
    outcome = check(tmp_path, "net.py", WRONG_BIAS, "Net.backward", forward="forward")
    assert outcome.code == 2 and "\n" not in outcome.error
    assert outcome.error.startswith("Net.backward(X, y) raised ValueError: operands could not be broadcast")
    assert "at net.py, line 10: `self.h = np.tanh(X @ self.W1 + self.b1)`" in outcome.error
    assert "built [self.W1 (5, 4), self.b1 (5,), self.W2 (4, 3), self.b2 (3,)] for layer sizes [5, 4, 3]" in (
        outcome.error
    )
    assert "File " in outcome.traceback and "net.py" in outcome.traceback


# Sizes as keywords with defaults beside a list of hidden sizes, and float32 unless told otherwise.
SIZED_BY_KEYWORD = """import numpy as np


class DeepNet(object):
    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, reg=0.0, weight_scale=1e-2,
                 dtype=np.float32):
        self.reg, self.dtype, self.num_layers = reg, dtype, 1 + len(hidden_dims)
        dims = [input_dim, *hidden_dims, num_classes]
        self.params = {}
        for i in range(self.num_layers):
            W = weight_scale * np.random.randn(dims[i], dims[i + 1])
            self.params["W%d" % (i + 1)] = W.astype(dtype)
            self.params["b%d" % (i + 1)] = np.zeros(dims[i + 1], dtype=dtype)

    def loss(self, X, y=None):
        hs, h, L = [X.astype(self.dtype)], X.astype(self.dtype), self.num_layers
        for i in range(1, L):
            h = np.maximum(0, h.dot(self.params["W%d" % i]) + self.params["b%d" % i])
            hs.append(h)
        scores = h.dot(self.params["W%d" % L]) + self.params["b%d" % L]
        if y is None:
            return scores
        n = X.shape[0]
        P = np.exp(scores - scores.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        loss = -np.log(P[np.arange(n), y]).mean()
        d = P.copy()
        d[np.arange(n), y] -= 1
        d /= n
        grads = {}
        for i in range(L, 0, -1):
            grads["W%d" % i] = hs[i - 1].T.dot(d) + self.reg * self.params["W%d" % i]
            grads["b%d" % i] = d.sum(axis=0)
            d = d.dot(self.params["W%d" % i].T) * (hs[i - 1] > 0)
        return loss, grads
"""


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        ((), 0, "Its loss matches 2 weight layers, relu hidden, softmax output, cross-entropy"),
        ((" * (hs[i - 1] > 0)", ""), 1, "[activation]"),  # the ReLU's derivative left out
    ],
)
def test_sizes_named_as_keywords_with_defaults_and_a_dtype(tmp_path, change, code, text):
    outcome = check(tmp_path, "deep.py", SIZED_BY_KEYWORD.replace(*change or ("", "")), "DeepNet.loss")
    assert outcome.code == code, outcome.error + outcome.report
    assert "[self.params['W1'] (5, 4), self.params['b1'] (4,)" in outcome.report.splitlines()[0]
    assert text in outcome.report


# Data passed to the constructor: it is built from each problem's data, or by a function of the user's.
DATA_IN_CONSTRUCTOR = """import numpy as np


class NeuralNetwork:
    def __init__(self, x, y):
        self.input, self.y = x, y
        self.weights1 = np.random.rand(x.shape[1], 4)
        self.weights2 = np.random.rand(4, 3)

    def gradients(self, X, Y):
        n = len(X)
        A1 = np.tanh(X @ self.weights1)
        Z = A1 @ self.weights2
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        d2 = (P - np.eye(P.shape[1])[Y]) / n
        d1 = d2 @ self.weights2.T * (1 - A1**2)
        return [X.T @ d1, A1.T @ d2]


def make(sizes):
    net = NeuralNetwork(np.zeros((1, sizes[0])), None)
    net.weights1, net.weights2 = np.zeros((sizes[0], sizes[1])), np.zeros((sizes[1], sizes[2]))
    return net
"""


def test_a_constructor_that_takes_the_data_is_given_the_problems_or_built_by_init(tmp_path):
    outcome = check(tmp_path, "nn.py", DATA_IN_CONSTRUCTOR, "NeuralNetwork.gradients")
    assert outcome.code == 0, outcome.error + outcome.report
    first = outcome.report.splitlines()[0]
    assert "from the constructor of NeuralNetwork (sizes 5-4-3, as it builds them), given the data" in first
    outcome = check(tmp_path, "nn.py", DATA_IN_CONSTRUCTOR, "NeuralNetwork.gradients", init="make")
    assert outcome.code == 0, outcome.error + outcome.report
    assert (
        "params are the attributes [self.weights1 (5, 4), self.weights2 (4, 3)] from make" in outcome.report
    )
