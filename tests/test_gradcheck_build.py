"""How gradcheck builds the object a method is checked on, as its author did: the file's own top-level
statements (never those that load, train or plot), ``--setup``, a constructor that takes the data, sizes
the constructor fixes (then every problem takes them), and an in-place update whose step is unknown
(inferred, and reported). Each runs ``isolate.run_file`` on a small file written here."""

import numpy as np
import pytest

from mlpnn_jax.gradcheck.isolate import Request, run_file

LAYERS = """import numpy as np


class Dense:
    def __init__(self, n_in, n_out):
        self.W, self.b = np.random.randn(n_in, n_out), np.zeros(n_out)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad, lr):
        dW, db, back = self.x.T @ grad, grad.sum(0), grad @ self.W.T
        self.W -= lr * dW
        self.b -= lr * db
        return back


class Tanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad, lr):
        return grad * ({derivative})


class Net:
    def __init__(self):
        self.layers = []

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

    def train(self, X, y):
        raise RuntimeError("training ran")

"""
ASSEMBLED = """
net = Net()
net.add(Dense(6, 5))
net.add(Tanh())
net.add(Dense(5, 3))
X = np.loadtxt("missing.csv")
net.train(X, X)
"""


def check(tmp_path, text, target, **flags):
    path = tmp_path / "net.py"
    path.write_text(text)
    return run_file(Request(target=f"{path}:{target}", **flags))


@pytest.mark.parametrize(("derivative", "code"), [("1 - self.out ** 2", 0), ("1 - self.out", 1)])
def test_layers_added_by_the_files_statements_are_checked_without_its_training(tmp_path, derivative, code):
    text = LAYERS.format(derivative=derivative) + ASSEMBLED
    outcome = check(tmp_path, text, "Net.backward", forward="forward")
    assert outcome.code == code, outcome.error + outcome.report
    first = outcome.report.splitlines()[0]
    assert (
        "built as the file builds it (line 49: net = Net(); net.add(Dense(6, 5)); net.add(Tanh()); " in first
    )
    assert "(sizes 6-5-3, as it builds them)" in first
    assert "'X = np.loadtxt(\"missing.csv\")'" in outcome.report and "'net.train(X, X)'" in outcome.report


def test_setup_builds_what_the_file_builds_only_inside_a_function(tmp_path):
    text = LAYERS.format(derivative="1 - self.out ** 2") + "\n\ndef main():\n    net = Net()\n"
    outcome = check(tmp_path, text, "Net.backward", forward="forward")
    assert outcome.code == 2 and "\n" not in outcome.error
    assert "Net() builds an instance that holds no parameter arrays" in outcome.error
    assert "pass --setup 'net = Net(); net.add(...)'" in outcome.error
    setup = "net = Net(); net.add(Dense(7, 4)); net.add(Tanh()); net.add(Dense(4, 2))"
    outcome = check(tmp_path, text, "Net.backward", forward="forward", setup=setup)
    assert outcome.code == 0, outcome.error + outcome.report
    assert f"built by --setup: {setup} (sizes 7-4-2, as it builds them)" in outcome.report.splitlines()[0]


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("net = Net(", "--setup is not valid Python: '(' was never closed (line 1)"),
        ("net = Net(); net.add(Dense(6))", "--setup raised TypeError: Dense.__init__() missing 1 required"),
    ],
)
def test_a_setup_that_does_not_parse_or_raises_is_one_line(tmp_path, setup, error):
    text = LAYERS.format(derivative="1 - self.out ** 2")
    outcome = check(tmp_path, text, "Net.backward", forward="forward", setup=setup)
    assert outcome.code == 2 and outcome.error.startswith(error), outcome.error


UNKNOWN_STEP = """import numpy as np


class Net:
    def __init__(self):
        self.W1 = np.random.randn(784, 6) * 0.01
        self.W2 = np.random.randn(6, 10) * 0.01
        self.alpha0, self.t = 0.37, 0

    def forward(self, X):
        self.h = np.tanh(X @ self.W1)
        z = self.h @ self.W2
        e = np.exp(z - z.max(1, keepdims=True))
        self.p = e / e.sum(1, keepdims=True)
        return self.p

    def step(self, X, y):
        step = self.alpha0 / (1 + self.t)
        d2 = (self.p - np.eye(10)[y]) / len(X)
        d1 = d2 @ self.W2.T * {derivative}
        self.W2 -= step * self.h.T @ d2
        self.W1 -= step * X.T @ d1
        self.t += 1
"""


@pytest.mark.parametrize(("derivative", "code"), [("(1 - self.h ** 2)", 0), ("(1 - self.h)", 1)])
def test_fixed_sizes_and_an_unknown_step_are_read_off_the_object(tmp_path, derivative, code):
    outcome = check(tmp_path, UNKNOWN_STEP.format(derivative=derivative), "Net.step", forward="forward")
    assert outcome.code == code, outcome.error + outcome.report
    assert "(sizes 784-6-10, as it builds them)" in outcome.report.splitlines()[0]
    assert "D=784 H=6   K=10" in outcome.report
    if code == 0:
        assert "the inferred step: eta = 0.37 " in outcome.report
        assert "at 200 random entries of each larger parameter" in outcome.report  # W1: 4704 entries


def test_the_problems_sizes_avoid_the_users_fixed_ones():
    from mlpnn_jax.gradcheck import problems

    assert problems.free_n(32, (784, 32, 10)) == 33 and problems.free_n(7, (7, 8, 3)) == 9
    assert problems.free_n(1, (784, 1, 1)) == 1  # one example is always n = 1


def test_the_small_regime_scales_a_large_fan_in_only():
    from mlpnn_jax.gradcheck import models, problems

    net = models.Net()
    small, _ = problems.make(0, 2, True, net, condition=False)
    big, _ = problems.make(0, 2, True, net, condition=False, fixed=(784, 6, 10))
    assert small[1].sizes == (5, 4, 3) and big[1].sizes == (784, 6, 10)
    assert 0.3 < np.std(small[1].params["W1"]) < 0.7  # 0.5 N(0, 1), as before
    assert 0.05 < np.std(big[1].params["W1"]) < 0.1  # 0.5 sqrt(16 / 784) = 0.071
