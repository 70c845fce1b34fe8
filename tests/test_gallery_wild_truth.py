"""Ground truth for tests/gallery_wild: every label proved without the gradcheck tool.

Each case has a hand-written adapter that calls the author's own function on a small random float64
problem (n, D, H, K all different) and compares its gradient with centred finite differences of the
author's OWN forward loss (the loss the function returns, or the cost function the file defines). Correct
cases must agree, buggy ones must disagree clearly. The files are loaded without running their top-level
code: plain modules by import (their demos sit under ``__main__``), the notebook and the Python 2 file by
extracting the definitions they need with ``ast``, the module whose sibling ``utils.py`` reads data at
import time with ``utils`` replaced by a module holding only utils.py's own ``softmax`` definition.

Tolerance: losses here are O(1) and smooth at the drawn points, so a centred difference with step
h = 1e-6 has truncation error ~h^2 |f'''| ~ 1e-12 and rounding error ~eps |f| / h ~ 1e-10. A correct
gradient must agree to 1e-7 relative to the largest gradient entry: the correct files measure 4e-10 to
2e-9, 50x or more below it. A buggy one must be off by more than 1e-3 relative (they measure 5e-3, the
leaky slope 0.01 left out, to 5), so no label sits near the threshold. ReLU kinks: the problems are drawn
so that no pre-activation is within 1e-3 of zero (asserted), far beyond h.
"""

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fd_truth import AGREE, DISAGREE, D, H, K, N, definitions, finite_differences, labels, relative_error

GALLERY = Path(__file__).resolve().parent / "gallery_wild"
MANIFEST = json.loads((GALLERY / "MANIFEST.json").read_text())
H2 = 6  # second hidden layer of the three-layer network


def load_module(relpath):
    """Import a gallery file as a fresh module (its ``__main__`` demo does not run)."""
    path = GALLERY / relpath
    name = "gallery_wild_" + relpath.replace("/", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def top_level_blocks(text):
    """Split a Python file that need not parse as a whole into its top-level statements' text."""
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        starts_new = line[:1] not in ("", " ", "\t", "\n", "#", ")", "]", "}")
        if starts_new and current:
            blocks.append("".join(current))
            current = []
        current.append(line)
    blocks.append("".join(current))
    return blocks


def notebook_cells(relpath):
    """A notebook's code cells as text, without IPython magics (%) and shell lines (!)."""
    nb = json.loads((GALLERY / relpath).read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return ["".join(l for l in c.splitlines(True) if not l.lstrip().startswith(("%", "!"))) for c in cells]


def one_hot(y, k=K):
    return np.eye(k)[y]


def away_from_kinks(*pre_activations):
    for z in pre_activations:
        assert np.min(np.abs(z)) > 1e-3, "a ReLU pre-activation too close to its kink: pick another seed"


# ---------------------------------------------------------------------------------------------------
# adapters: each returns (params, loss, grads) where ``loss()`` reads the arrays in ``params`` and
# ``grads`` is the author's gradient of that same loss, in the same order


def randomise(rng, arrays, scale=1.0):
    """Overwrite the author's initial values in place (their init draws from numpy's global RNG)."""
    for a in arrays:
        a[...] = scale * rng.standard_normal(a.shape)


def adapt_cs231n(relpath, reg=None):
    mod = load_module(relpath)
    rng = np.random.default_rng(1)
    net = mod.TwoLayerNet(D, H, K)
    names = ["W1", "b1", "W2", "b2"]
    params = [net.params[k] for k in names]
    randomise(rng, params, 0.5)
    X, y = rng.standard_normal((N, D)), labels(rng)
    away_from_kinks(X @ net.params["W1"] + net.params["b1"])
    kwargs = {} if reg is None else {"reg": reg}  # None: the author's default, as a user would run it
    _, grads = net.loss(X, y, **kwargs)
    return params, lambda: net.loss(X, y, **kwargs)[0], [grads[k] for k in names]


def adapt_textbook(relpath):
    mod = load_module(relpath)
    rng = np.random.default_rng(2)
    net = mod.Network([D, H, K])
    randomise(rng, [*net.weights, *net.biases])
    xs = [rng.standard_normal((D, 1)) for _ in range(N)]
    ys = [mod.vectorized_result(j, K) for j in labels(rng)]
    nabla_b = [np.zeros(b.shape) for b in net.biases]
    nabla_w = [np.zeros(w.shape) for w in net.weights]
    for x, t in zip(xs, ys, strict=True):  # averaged over the batch, as update_mini_batch does
        db, dw = net.backprop(x, t)
        nabla_b = [a + b / N for a, b in zip(nabla_b, db, strict=True)]
        nabla_w = [a + b / N for a, b in zip(nabla_w, dw, strict=True)]

    def loss():
        return sum(mod.quadratic_cost(net.feedforward(x), t) for x, t in zip(xs, ys, strict=True)) / N

    return [*net.weights, *net.biases], loss, [*nabla_w, *nabla_b]


def adapt_notebook(relpath):
    nb = definitions(
        notebook_cells(relpath),
        ["forward", "backward", "cross_entropy", "relu", "relu_derivative", "softmax"],
    )
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal(s) / np.sqrt(s[0]) for s in [(D, H), (H, H2), (H2, K)]]
    X, Y = rng.standard_normal((N, D)), one_hot(labels(rng))
    activations = nb.forward(X, weights)
    away_from_kinks(X @ weights[0], activations[1] @ weights[1])
    grads = nb.backward(activations, Y, weights)
    return weights, lambda: nb.cross_entropy(nb.forward(X, weights)[-1], Y), grads


def adapt_utils_sibling(relpath, monkeypatch):
    """utils.py reads its data files when imported: import the module against utils' own softmax only."""
    utils_source = (GALLERY / relpath).with_name("utils.py").read_text()
    stub = types.ModuleType("utils")
    stub.softmax = definitions([utils_source], ["softmax"]).softmax
    monkeypatch.setitem(sys.modules, "utils", stub)
    mod = load_module(relpath)
    rng = np.random.default_rng(4)
    params = mod.create_classifier(D, H, K)
    randomise(rng, params)
    xs, ys = rng.standard_normal((N, D)), labels(rng)
    grads = [np.zeros_like(p) for p in params]
    for x, y in zip(xs, ys, strict=True):  # per example; the training loop averages
        _, g = mod.loss_and_gradients(x, y, params)
        grads = [a + b / N for a, b in zip(grads, g, strict=True)]
    return (
        params,
        lambda: np.mean([mod.loss_and_gradients(x, y, params)[0] for x, y in zip(xs, ys, strict=True)]),
        grads,
    )


def adapt_colmajor(relpath, lambda_regul=None):
    src = definitions(
        [(GALLERY / relpath).read_text()],
        ["initializing_parameters", "softmax", "forward_propagation", "compute_cost", "back_propagation"],
    )
    rng = np.random.default_rng(5)
    parameters = src.initializing_parameters(D, H, K)
    names = ["w1", "B1", "w2", "B2"]
    randomise(rng, [parameters[k] for k in names])
    X, Y = rng.standard_normal((D, N)), one_hot(labels(rng)).T  # columns are examples
    kwargs = {} if lambda_regul is None else {"lambda_regul": lambda_regul}
    _, cache = src.forward_propagation(X, parameters)
    grads = src.back_propagation(X, Y, parameters, cache, **kwargs)

    def loss():
        return src.compute_cost(src.forward_propagation(X, parameters)[0], Y, parameters, **kwargs)

    return [parameters[k] for k in names], loss, [grads["d" + k] for k in names]


def adapt_py2(relpath):
    blocks = top_level_blocks((GALLERY / relpath).read_text())
    src = definitions(blocks, ["init_model", "forward", "calculate_loss", "backprop", "reg_lambda"])
    rng = np.random.default_rng(6)
    model = src.init_model(D, H, K)
    names = ["W1", "b1", "W2", "b2"]
    randomise(rng, [model[k] for k in names])
    X, y = rng.standard_normal((N, D)), labels(rng)
    grads = src.backprop(model, X, y)
    return [model[k] for k in names], lambda: src.calculate_loss(model, X, y), [grads[k] for k in names]


def adapt_bce(relpath):
    mod = load_module(relpath)
    rng = np.random.default_rng(7)
    params = mod.init_params(D, H, K)
    names = ["W_hidden", "b_hidden", "W_out", "b_out"]
    randomise(rng, [params[k] for k in names])
    X = rng.standard_normal((N, D))
    y = (rng.random((N, K)) < 0.5).astype(float)  # multi-label 0/1 targets
    _, grads = mod.forward_backward(params, X, y)
    return (
        [params[k] for k in names],
        lambda: mod.forward_backward(params, X, y)[0],
        [grads[k] for k in names],
    )


def adapt_leaky_class(relpath):
    mod = load_module(relpath)
    rng = np.random.default_rng(8)
    net = mod.MLP(D, H, K)
    params = [net.weights_input_hidden, net.bias_hidden, net.weights_hidden_output, net.bias_output]
    randomise(rng, params)
    X, Y = rng.standard_normal((N, D)), one_hot(labels(rng))
    output = net.forward_pass(X)
    away_from_kinks(net.hidden_input)
    assert np.any(net.hidden_input < 0), "no negative pre-activation: the leaky slope would go untested"
    grads = net.backward_pass(Y, output)
    return params, lambda: net.compute_loss(Y, net.forward_pass(X)), list(grads)


def adapt_mse_softmax(relpath):
    mod = load_module(relpath)
    rng = np.random.default_rng(9)
    params = mod.init_network(D, H, K)
    randomise(rng, params)
    X, Y = rng.standard_normal((N, D)), one_hot(labels(rng))
    away_from_kinks(X @ params[0] + params[1])
    return params, lambda: mod.mse_loss(mod.forward(params, X), Y), mod.gradients(params, X, Y)


def adapt_sse_sum(relpath):
    mod = load_module(relpath)
    rng = np.random.default_rng(10)
    net = mod.SimpleNN(D, H, K)
    names = ["W1", "b1", "W2", "b2"]
    randomise(rng, [getattr(net, k) for k in names])
    X, T = rng.standard_normal((N, D)), one_hot(labels(rng))
    _, grads = net.loss_and_grads(X, T)
    return [getattr(net, k) for k in names], lambda: net.loss_and_grads(X, T)[0], [grads[k] for k in names]


ADAPTERS = {
    "cs231n/neural_net.py": adapt_cs231n,
    "cs231n/neural_net_buggy.py": adapt_cs231n,
    "textbook/network.py": adapt_textbook,
    "textbook/network_buggy.py": adapt_textbook,
    "notebook/mlp_3layer_no_bias.ipynb": adapt_notebook,
    "notebook/mlp_3layer_no_bias_buggy.ipynb": adapt_notebook,
    "yoav_utils/mlp1.py": adapt_utils_sibling,
    "yoav_utils/mlp1_buggy.py": adapt_utils_sibling,
    "colmajor/digits_nn.py": adapt_colmajor,
    "colmajor/digits_nn_buggy.py": adapt_colmajor,
    "py2/nn_from_scratch.py": adapt_py2,
    "py2/nn_from_scratch_buggy.py": adapt_py2,
    "bce/multilabel_mlp.py": adapt_bce,
    "bce/multilabel_mlp_buggy.py": adapt_bce,
    "leaky_class/mlp_class.py": adapt_leaky_class,
    "leaky_class/mlp_class_buggy.py": adapt_leaky_class,
    "mse_softmax/mse_net.py": adapt_mse_softmax,
    "mse_softmax/mse_net_buggy.py": adapt_mse_softmax,
    "sse_sum/simple_nn.py": adapt_sse_sum,
    "sse_sum/simple_nn_buggy.py": adapt_sse_sum,
}


def test_manifest_lists_every_gallery_file_once():
    paths = [c["path"] for c in MANIFEST]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(ADAPTERS)
    for case in MANIFEST:
        assert (GALLERY / case["path"]).is_file()
        assert case["expected_exit"] in (0, 1)
        assert bool(case.get("bug")) == (case["expected_exit"] == 1)
        assert case["convention"]
        assert set(case["flags"][::2]) <= {"--forward", "--init", "--loss"}, case["flags"]


def test_the_surroundings_are_as_wild_as_claimed():
    """The files a tool must load without running: a Python 2 file, magics, data that is not here."""
    with pytest.raises(SyntaxError):
        ast.parse((GALLERY / "py2/nn_from_scratch.py").read_text())
    cells = "".join(
        json.loads((GALLERY / "notebook/mlp_3layer_no_bias.ipynb").read_text())["cells"][1]["source"]
    )
    assert cells.startswith("%matplotlib inline")
    assert "!wget" in (GALLERY / "notebook/mlp_3layer_no_bias.ipynb").read_text()
    assert not Path("/content/data/mnist.npz").exists()
    assert not Path("/home/amine/kaggle/digit-recognizer/train.csv").exists()
    assert 'read_data("train")' in (GALLERY / "yoav_utils/utils.py").read_text()


@pytest.mark.parametrize("case", MANIFEST, ids=[c["path"] for c in MANIFEST])
def test_label_is_the_truth(case, monkeypatch):
    adapter = ADAPTERS[case["path"]]
    extra = {"monkeypatch": monkeypatch} if adapter is adapt_utils_sibling else {}
    params, loss, grads = adapter(case["path"], **extra)
    expected = finite_differences(loss, params)
    err = relative_error(grads, expected)
    if case["expected_exit"] == 0:
        assert err < AGREE, f"labelled correct, but off by {err:.3g} relative"
    else:
        assert err > DISAGREE, f"labelled buggy, but agrees to {err:.3g} relative"


@pytest.mark.parametrize(
    ("adapter", "relpath", "strength"),
    [
        (adapt_cs231n, "cs231n/neural_net.py", {"reg": 0.3}),
        (adapt_cs231n, "cs231n/neural_net.py", {"reg": 0.0}),
        (adapt_colmajor, "colmajor/digits_nn.py", {"lambda_regul": 0.0}),
        (adapt_colmajor, "colmajor/digits_nn.py", {"lambda_regul": 2.0}),
    ],
)
def test_correct_l2_knob_at_other_strengths(adapter, relpath, strength):
    """The correct files stay exactly right with their regularisation knob off or at another strength."""
    params, loss, grads = adapter(relpath, *strength.values())
    assert relative_error(grads, finite_differences(loss, params)) < AGREE
