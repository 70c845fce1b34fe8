"""Ground truth for tests/gallery_third: every label proved without the gradcheck tool.

Each case has a hand-written adapter that builds the author's network with the author's own constructor
(small sizes where the sizes are arguments; the fixed 784-300-10, 2-3-1 and 3-3-3-2 where the author fixes
them), calls the author's own gradient code, and compares it with centred finite differences (float64) of
the author's OWN loss: the cost function the file defines (``loss``, ``costFunction``,
``SoftmaxCrossEntropy.forward``, ``MLP.loss``), or, where the file defines none, the loss its comments
name (book: sum((y - output)^2); neurons and errsignal: the per-example 1/2 ||expected - output||^2).
Where the author's gradient code does not return gradients but updates the weights in place, the gradient
is (before - after) / step, with the author's own step (book: 1, no learning rate; biascol: the decayed
eta0 / (1 + t * decay) at the iteration counter t the call starts from); errsignal's ``self.derivatives``
hold MINUS the gradient (its caller passes error = target - output and ``gradient_descent`` adds them).

Loading without running top-level code: the CS231n package and the errsignal module are imported (their
demos sit under ``__main__``; the package under a unique name, so its relative imports resolve and
nothing clashes with another gallery's cs231n); the sequential, book, neurons and biascol files, whose
top-level code builds, loads data that is not here and trains, have only their definitions extracted with
``ast``; the notebooks' code cells are read from their JSON (nbformat 4 ``cells``/``source``, nbformat 3
``worksheets``/``input``), without IPython magics, and their Python 2 ``print x`` statements (the one
Python 2 construct they use, inside the class of py2_version.ipynb too) are rewritten as calls before
the definitions are extracted.

Tolerance (fd_truth.AGREE, DISAGREE): losses here are O(1) and smooth at the drawn points, so a centred
difference with h = 1e-6 has truncation error ~h^2 |f'''| ~ 1e-12 and rounding error ~eps |f| / h ~
1e-10; a gradient read off an in-place update adds eps |W| / step ~ 1e-14. A correct gradient must agree
to 1e-7 relative to the largest gradient entry (the correct files measure 2e-10 to 2e-9), a buggy one
must be off by more than 1e-3 relative (they measure 0.3 to 6), so no label sits near a threshold. The
784-300-10 network's W1 (235,500 entries) is differenced at 300 sampled entries, its W2 in full. ReLU
kinks: the problems are drawn so that no pre-activation is within 1e-3 of zero (asserted), far beyond h.
"""

import ast
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from fd_truth import (
    AGREE,
    DISAGREE,
    STEP,
    D,
    H,
    K,
    N,
    definitions,
    finite_differences,
    labels,
    relative_error,
)

GALLERY = Path(__file__).resolve().parent / "gallery_third"
MANIFEST = json.loads((GALLERY / "MANIFEST.json").read_text())
H2 = 6  # second hidden layer of the CS231n network
PY2_PRINT = re.compile(r"^(\s*)print\s+([^\s(=].*)$", re.M)


# ---------------------------------------------------------------------------------------------------
# loading


def load_module(relpath):
    """Import a gallery file as a fresh module (its ``__main__`` demo does not run)."""
    path = GALLERY / relpath
    name = "gallery_third_" + relpath.replace("/", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_cs231n(relpath):
    """Import ``cs231n.classifiers.<file>`` from the gallery's package, the package under a unique name."""
    package_dir = GALLERY / "fcnet" / "cs231n"
    name = "gallery_third_cs231n"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    sub = Path(relpath).relative_to("fcnet/cs231n").with_suffix("").as_posix().replace("/", ".")
    return importlib.import_module(f"{name}.{sub}")


def file_definitions(relpath, wanted):
    return definitions([(GALLERY / relpath).read_text()], wanted)


def notebook_cells(relpath):
    """A notebook's code cells (nbformat 4 or 3) as Python 3 text: no magics, print statements as calls."""
    nb = json.loads((GALLERY / relpath).read_text())
    if nb["nbformat"] >= 4:
        cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    else:
        cells = [
            "".join(c["input"]) for ws in nb["worksheets"] for c in ws["cells"] if c["cell_type"] == "code"
        ]
    cells = ["".join(l for l in c.splitlines(True) if not l.lstrip().startswith(("%", "!"))) for c in cells]
    return [PY2_PRINT.sub(r"\1print(\2)", c) for c in cells]


def one_hot(y, k=K):
    return np.eye(k)[y]


def away_from_kinks(*pre_activations):
    for z in pre_activations:
        assert np.min(np.abs(z)) > 1e-3, "a ReLU pre-activation too close to its kink: pick another seed"


def randomise(rng, arrays, scale=1.0):
    """Overwrite the author's initial values in place (their init draws from a global RNG)."""
    for a in arrays:
        a[...] = scale * rng.standard_normal(a.shape)


def step_gradients(params, update, step):
    """(before - after) / step of the arrays ``update()`` changes in place; the arrays are then restored."""
    before = [p.copy() for p in params]
    update()
    grads = [(b - p) / step for b, p in zip(before, params, strict=True)]
    for p, b in zip(params, before, strict=True):
        p[...] = b
    return grads


# ---------------------------------------------------------------------------------------------------
# adapters: each returns (params, loss, grads) where ``loss()`` reads the arrays in ``params`` and
# ``grads`` is the author's gradient of that same loss, in the same order


def adapt_fcnet(relpath, reg=None):
    mod = load_cs231n(relpath)
    rng = np.random.default_rng(11)
    kwargs = {} if reg is None else {"reg": reg}  # None: the author's default, as a user would run it
    net = mod.FullyConnectedNet([H, H2], input_dim=D, num_classes=K, dtype=np.float64, **kwargs)
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    params = [net.params[k] for k in names]
    randomise(rng, params, 0.5)
    X, y = rng.standard_normal((N, D)), labels(rng)
    z1 = X @ net.params["W1"] + net.params["b1"]
    away_from_kinks(z1, np.maximum(z1, 0) @ net.params["W2"] + net.params["b2"])
    _, grads = net.loss(X, y)
    return params, lambda: net.loss(X, y)[0], [grads[k] for k in names]


def adapt_sequential(relpath, hidden="ReLU"):
    src = file_definitions(relpath, ["Dense", "ReLU", "Tanh", "SoftmaxCrossEntropy", "NeuralNetwork"])
    rng = np.random.default_rng(12)
    nn = src.NeuralNetwork()  # as the file's top level builds it, at small sizes
    first, second = src.Dense(D, H), src.Dense(H, K)
    nn.add(first)
    nn.add(getattr(src, hidden)())
    nn.add(second)
    params = [first.W, first.b, second.W, second.b]
    randomise(rng, params)
    X, y = rng.standard_normal((N, D)), labels(rng)
    away_from_kinks(X @ first.W + first.b)
    loss_fn, lr = src.SoftmaxCrossEntropy(), 0.1

    def train_step():
        loss_fn.forward(nn.forward(X), y)
        nn.backward(loss_fn.backward(), lr)

    grads = step_gradients(params, train_step, lr)
    return params, lambda: loss_fn.forward(nn.forward(X), y), grads


def adapt_book(relpath):
    src = file_definitions(relpath, ["NeuralNetwork", "sigmoid", "sigmoid_derivative"])
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((N, D)), (rng.random((N, 1)) < 0.5).astype(float)
    nn = src.NeuralNetwork(X, y)
    params = [nn.weights1, nn.weights2]
    randomise(rng, params)

    def train_step():
        nn.feedforward()
        nn.backprop()  # weights += d_weights, no learning rate: the step is 1

    def loss():
        nn.feedforward()
        return np.sum((nn.y - nn.output) ** 2)

    return params, loss, step_gradients(params, train_step, 1.0)


def adapt_neurons(relpath):
    wanted = ["initialize_network", "forward_propagate", "backward_propagate_error", "update_weights"]
    src = file_definitions(relpath, [*wanted, "activate", "transfer", "transfer_derivative"])
    rng = np.random.default_rng(14)
    network = src.initialize_network(D, H, K)
    params = [np.array([neuron["weights"] for neuron in layer]) for layer in network]  # (out, in + 1)
    randomise(rng, params)
    rows = [
        [float(v) for v in x] + [int(c)]
        for x, c in zip(rng.standard_normal((N, D)), labels(rng), strict=True)
    ]
    l_rate = 0.1

    def sync():
        for layer, weights in zip(network, params, strict=True):
            for neuron, w in zip(layer, weights, strict=True):
                neuron["weights"] = [float(v) for v in w]

    def expected(row):
        return [1.0 if j == row[-1] else 0.0 for j in range(K)]

    grads = [np.zeros_like(p) for p in params]
    for row in rows:  # the gradient of the sum over rows, each from the same weights
        sync()
        src.forward_propagate(network, row)
        src.backward_propagate_error(network, expected(row))
        src.update_weights(network, row, l_rate)
        after = [np.array([neuron["weights"] for neuron in layer]) for layer in network]
        grads = [g + (p - a) / l_rate for g, p, a in zip(grads, params, after, strict=True)]

    def loss():
        sync()
        total = 0.0
        for row in rows:
            outputs = src.forward_propagate(network, row)
            total += 0.5 * sum((e - o) ** 2 for e, o in zip(expected(row), outputs, strict=True))
        return total

    return params, loss, grads


def adapt_biascol(relpath):
    src = file_definitions(relpath, ["MLP", "softmax"])
    rng = np.random.default_rng(15)
    net = src.MLP()  # sizes fixed: 784-300-10, W1 (300, 785), W2 (10, 301)
    net.W1[...] = rng.standard_normal(net.W1.shape) / np.sqrt(net.W1.shape[1])
    net.W2[...] = rng.standard_normal(net.W2.shape)
    x, label = rng.random(784), 3
    net.t = 7  # a few steps in, so that the decay matters
    eta = net.eta0 / (1 + net.t * net.decay)
    params = [net.W1, net.W2]
    grads = step_gradients(params, lambda: net.train_step(x, label), eta)
    assert net.t == 8
    return params, lambda: net.loss(x, label), grads


def adapt_errsignal(relpath, sizes=None):
    mod = load_module(relpath)
    rng = np.random.default_rng(16)
    net = mod.MLP() if sizes is None else mod.MLP(*sizes)  # the defaults: 3 inputs, [3, 3], 2 outputs
    randomise(rng, net.weights)
    x, target = rng.standard_normal(net.num_inputs), rng.random(net.num_outputs)
    output = net.forward_propagate(x)
    net.back_propagate(target - output)  # the caller's error signal, as train() passes it
    grads = [-d for d in net.derivatives]  # derivatives hold minus the gradient; gradient_descent adds

    def loss():
        return 0.5 * np.sum((target - net.forward_propagate(x)) ** 2)

    return net.weights, loss, grads


def adapt_videonb(relpath):
    src = definitions(notebook_cells(relpath), ["Neural_Network", "X", "y"])  # the author's own data
    rng = np.random.default_rng(17)
    nn = src.Neural_Network()  # sizes fixed: W1 (2, 3), W2 (3, 1)
    randomise(rng, [nn.W1, nn.W2])
    dJdW1, dJdW2 = nn.costFunctionPrime(src.X, src.y)
    return [nn.W1, nn.W2], lambda: float(np.sum(nn.costFunction(src.X, src.y))), [dJdW1, dJdW2]


def adapt_nb3(relpath):
    src = definitions(notebook_cells(relpath), ["sigmoid", "init_params", "forward", "loss", "backprop"])
    rng = np.random.default_rng(18)
    params = src.init_params(D, H, K)
    names = ["W1", "b1", "W2", "b2"]
    randomise(rng, [params[k] for k in names])
    X, y = rng.standard_normal((N, D)), labels(rng)
    grads = src.backprop(params, X, y)
    return [params[k] for k in names], lambda: src.loss(params, X, y), [grads[k] for k in names]


ADAPTERS = {
    "fcnet/cs231n/classifiers/fc_net.py": adapt_fcnet,
    "fcnet/cs231n/classifiers/fc_net_buggy.py": adapt_fcnet,
    "sequential/mnist_layers.py": adapt_sequential,
    "sequential/mnist_layers_buggy.py": adapt_sequential,
    "book/simple_nn.py": adapt_book,
    "book/simple_nn_buggy.py": adapt_book,
    "neurons/backprop_seeds.py": adapt_neurons,
    "neurons/backprop_seeds_buggy.py": adapt_neurons,
    "biascol/mlp_sgd.py": adapt_biascol,
    "biascol/mlp_sgd_buggy.py": adapt_biascol,
    "errsignal/mlp.py": adapt_errsignal,
    "errsignal/mlp_buggy.py": adapt_errsignal,
    "videonb/part4_backpropagation.ipynb": adapt_videonb,
    "videonb/part4_backpropagation_buggy.ipynb": adapt_videonb,
    "videonb/py2_version.ipynb": adapt_videonb,
    "nb3/iris_two_layer.ipynb": adapt_nb3,
    "nb3/iris_two_layer_buggy.ipynb": adapt_nb3,
}
SAMPLED = {"biascol/mlp_sgd.py", "biascol/mlp_sgd_buggy.py"}
SUPPORT = {"fcnet/cs231n/__init__.py", "fcnet/cs231n/classifiers/__init__.py"}
SUPPORT |= {"fcnet/cs231n/layers.py", "fcnet/cs231n/layer_utils.py"}  # the package the nets import


def sampled_differences(loss, params, rng, samples=300, in_full=5000):
    """Centred differences at ``samples`` random entries of each array; all entries up to ``in_full``."""
    picks, diffs = [], []
    for p in params:
        flat = np.arange(p.size) if p.size <= in_full else rng.choice(p.size, samples, replace=False)
        idxs = [np.unravel_index(i, p.shape) for i in flat]
        g = np.zeros(len(idxs))
        for n, idx in enumerate(idxs):
            orig = p[idx]
            p[idx] = orig + STEP
            up = loss()
            p[idx] = orig - STEP
            down = loss()
            p[idx] = orig
            g[n] = (up - down) / (2 * STEP)
        picks.append(tuple(np.array(axis) for axis in zip(*idxs, strict=True)))
        diffs.append(g)
    return picks, diffs


def measured_error(relpath):
    params, loss, grads = ADAPTERS[relpath](relpath)
    if relpath not in SAMPLED:
        return relative_error(grads, finite_differences(loss, params))
    picks, expected = sampled_differences(loss, params, np.random.default_rng(0))
    if any(np.shape(g) != p.shape for g, p in zip(grads, params, strict=True)):
        return np.inf
    return relative_error([np.asarray(g)[pick] for g, pick in zip(grads, picks, strict=True)], expected)


def test_manifest_lists_every_gallery_file_once():
    paths = [c["path"] for c in MANIFEST]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(ADAPTERS)
    on_disk = {p.relative_to(GALLERY).as_posix() for p in GALLERY.rglob("*") if p.suffix in (".py", ".ipynb")}
    assert on_disk == set(paths) | SUPPORT
    for case in MANIFEST:
        assert (GALLERY / case["path"]).is_file()
        assert case["expected_exit"] in (0, 1)
        assert bool(case.get("bug")) == (case["expected_exit"] == 1)
        assert case["convention"]
        assert set(case["flags"][::2]) <= {"--forward", "--init", "--loss"}, case["flags"]
        loss_flag = case["flags"][case["flags"].index("--loss") + 1] if "--loss" in case["flags"] else None
        assert loss_flag in (None, "ce", "mse", "bce", "se")


def test_every_family_has_a_correct_file_and_a_buggy_twin():
    by_path = {c["path"]: c["expected_exit"] for c in MANIFEST}
    for path, exit_code in by_path.items():
        if exit_code == 1:
            assert by_path[path.replace("_buggy", "")] == 0


def test_the_surroundings_are_as_wild_as_claimed():
    """What a tool must load without running: data files that are not here, Python 2, nbformat 3."""
    for relpath, data in [
        ("sequential/mnist_layers.py", "mnist_train.csv"),
        ("neurons/backprop_seeds.py", "seeds_dataset.csv"),
        ("biascol/mlp_sgd.py", "mnist.pkl.gz"),
        ("fcnet/cs231n/classifiers/fc_net.py", "cifar10_dev.npz"),
        ("nb3/iris_two_layer.ipynb", "iris.csv"),
    ]:
        assert data in (GALLERY / relpath).read_text()
        assert not (GALLERY / relpath).with_name(data).exists() and not Path(data).exists()
    for relpath in ["sequential/mnist_layers.py", "neurons/backprop_seeds.py", "biascol/mlp_sgd.py"]:
        top = ast.parse((GALLERY / relpath).read_text()).body
        assert any(isinstance(n, ast.Expr) for n in top), f"{relpath}: no top-level training call"
        assert not any(isinstance(n, ast.If) for n in top), f"{relpath}: its demo should be unguarded"
    book_top = ast.parse((GALLERY / "book/simple_nn.py").read_text()).body
    assert any(isinstance(n, ast.For) for n in book_top)  # the 1500 iterations, unguarded and cheap
    py2 = json.loads((GALLERY / "videonb/py2_version.ipynb").read_text())
    sources = ["".join(c["source"]) for c in py2["cells"] if c["cell_type"] == "code"]
    class_cell = next(s for s in sources if "class Neural_Network" in s)
    with pytest.raises(SyntaxError):
        ast.parse(class_cell)  # a print statement in summary(), a method other than costFunctionPrime
    assert sum('print "' in s or "print dJdW1" in s for s in sources if s != class_cell) >= 2
    assert sources[0].startswith("%matplotlib inline")
    nb3 = json.loads((GALLERY / "nb3/iris_two_layer.ipynb").read_text())
    assert nb3["nbformat"] == 3 and "cells" not in nb3
    code = [c for c in nb3["worksheets"][0]["cells"] if c["cell_type"] == "code"]
    assert code and all(c["language"] == "python" and "input" in c for c in code)


@pytest.mark.parametrize("case", MANIFEST, ids=[c["path"] for c in MANIFEST])
def test_label_is_the_truth(case):
    err = measured_error(case["path"])
    if case["expected_exit"] == 0:
        assert err < AGREE, f"labelled correct, but off by {err:.3g} relative"
    else:
        assert err > DISAGREE, f"labelled buggy, but agrees to {err:.3g} relative"


@pytest.mark.parametrize(
    ("adapter", "relpath", "knob"),
    [
        (adapt_fcnet, "fcnet/cs231n/classifiers/fc_net.py", {"reg": 0.3}),
        (adapt_sequential, "sequential/mnist_layers.py", {"hidden": "Tanh"}),
        (adapt_errsignal, "errsignal/mlp.py", {"sizes": (2, [5], 1)}),  # the file's own demo network
    ],
)
def test_correct_files_stay_right_elsewhere(adapter, relpath, knob):
    """The correct files stay exactly right with L2 on, the other hidden activation, other sizes."""
    params, loss, grads = adapter(relpath, **knob)
    assert relative_error(grads, finite_differences(loss, params)) < AGREE


@pytest.mark.parametrize(
    ("adapter", "relpath", "knob"),
    [
        (adapt_fcnet, "fcnet/cs231n/classifiers/fc_net_buggy.py", {"reg": 0.3}),
        (adapt_sequential, "sequential/mnist_layers_buggy.py", {"hidden": "Tanh"}),
        (adapt_errsignal, "errsignal/mlp_buggy.py", {"sizes": (3, [5, 4], 2)}),
    ],
)
def test_buggy_files_stay_wrong_elsewhere(adapter, relpath, knob):
    params, loss, grads = adapter(relpath, **knob)
    assert relative_error(grads, finite_differences(loss, params)) > DISAGREE
