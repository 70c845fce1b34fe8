"""Ground truth for tests/gallery_holdout: every label proved without the gradcheck tool.

The holdout gallery reproduces calling conventions of published course and tutorial backprops that
tests/gallery_wild does not cover (the argument orders of the deeplearning.ai exercises, a backward
pass that takes only a cache, gradient dicts with non-parameter keys, activations stored in the
params dict, relative star imports inside a package, unrolled parameter vectors, n_y = 1 asserted by
the forward pass). As in tests/test_gallery_wild_truth.py, a hand-written adapter calls the author's
own function on a small random float64 problem and compares it with centred finite differences of the
author's OWN forward loss: correct cases must agree, buggy ones must disagree clearly.

Files are loaded without running their top-level code: only the definitions a case needs are executed
(``ast``), with the sibling modules they import replaced by modules holding only the siblings' own
definitions that are used (a sibling may itself import what is not here: ``submission``). The
package case is imported as a package, its relative star imports resolved by Python itself.

Tolerance (same reasoning as the wild gallery): losses are O(1) and smooth at the drawn points; with
h = 1e-6 the centred difference is good to ~1e-10 relative, so correct files must agree to 1e-7 relative
to the largest gradient entry (the correct files measure 2e-10 to 1e-8) and buggy ones must be off by
more than 1e-3 (they measure 1 to 3), so no label sits near a threshold. ReLU pre-activations are kept
more than 1e-3 from their kink (asserted).
"""

import ast
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fd_truth import AGREE, DISAGREE, D, H, K, N, finite_differences, labels, needed_nodes, relative_error

GALLERY = Path(__file__).resolve().parent / "gallery_holdout"
MANIFEST = json.loads((GALLERY / "MANIFEST.json").read_text())
H2 = 6  # second hidden layer of the three-weight-layer networks


def definitions(path, wanted, siblings=None):
    """Execute only the named top-level definitions of ``path`` and the imports they use.

    ``siblings`` maps a sibling module name to the definitions of it that are needed; the sibling
    is then replaced by a module holding only those (its own top-level code never runs).
    """
    imports, kept = needed_nodes(ast.parse(Path(path).read_text()).body, wanted)
    saved = {name: sys.modules.get(name) for name in siblings or {}}
    try:
        for name, needed in (siblings or {}).items():
            stub = types.ModuleType(name)
            stub.__dict__.update(vars(definitions(Path(path).with_name(name + ".py"), needed)))
            sys.modules[name] = stub
        namespace = {"__name__": "gallery_holdout_case"}
        exec(compile(ast.Module(imports + kept, []), str(path), "exec"), namespace)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    missing = set(wanted) - set(namespace)
    assert not missing, f"definitions not found: {missing}"
    return types.SimpleNamespace(**namespace)


def away_from_kinks(*pre_activations):
    for z in pre_activations:
        assert np.min(np.abs(z)) > 1e-3, "a ReLU pre-activation too close to its kink: pick another seed"


def randomise(rng, arrays, scale=1.0):
    """Overwrite the author's initial values in place (their init draws from numpy's global RNG)."""
    for a in arrays:
        a[...] = scale * rng.standard_normal(a.shape)


def binary_columns(rng, n=N):
    """0/1 labels as a row (1, n), both classes present."""
    return rng.permutation(np.arange(n) % 2).reshape(1, n).astype(float)


# ---------------------------------------------------------------------------------------------------
# adapters: each returns (params, loss, grads) where ``loss()`` reads the arrays in ``params`` and
# ``grads`` is the author's gradient of that same loss, in the same order


def adapt_planar(relpath):
    src = definitions(
        GALLERY / relpath,
        ["initialize_parameters", "forward_propagation", "compute_cost", "backward_propagation"],
        siblings={"planar_utils": ["sigmoid"]},
    )
    rng = np.random.default_rng(11)
    parameters = src.initialize_parameters(D, H, 1)  # the forward pass asserts n_y == 1
    names = ["W1", "b1", "W2", "b2"]
    randomise(rng, [parameters[k] for k in names])
    X, Y = rng.standard_normal((D, N)), binary_columns(rng)
    _, cache = src.forward_propagation(X, parameters)
    grads = src.backward_propagation(parameters, cache, X, Y)  # (parameters, cache, X, Y)

    def loss():
        return src.compute_cost(src.forward_propagation(X, parameters)[0], Y)

    return [parameters[k] for k in names], loss, [grads["d" + k] for k in names]


def adapt_gradcheck(relpath):
    src = definitions(
        GALLERY / relpath,
        ["forward_propagation_n", "backward_propagation_n"],
        siblings={"gc_utils": ["sigmoid", "relu"]},
    )
    rng = np.random.default_rng(12)
    shapes = {"W1": (H, D), "b1": (H, 1), "W2": (H2, H), "b2": (H2, 1), "W3": (1, H2), "b3": (1, 1)}
    parameters = {k: rng.standard_normal(s) for k, s in shapes.items()}
    X, Y = rng.standard_normal((D, N)), binary_columns(rng)
    _, cache = src.forward_propagation_n(X, Y, parameters)
    away_from_kinks(cache[0], cache[4])
    grads = src.backward_propagation_n(X, Y, cache)  # no parameters: they travel in the cache tuple
    return (
        list(parameters.values()),
        lambda: src.forward_propagation_n(X, Y, parameters)[0],
        [grads["d" + k] for k in parameters],
    )


def adapt_deep(relpath):
    src = definitions(
        GALLERY / relpath,
        [
            "initialize_parameters_deep",
            "linear_forward",
            "linear_activation_forward",
            "L_model_forward",
            "compute_cost",
            "linear_backward",
            "linear_activation_backward",
            "L_model_backward",
        ],
        siblings={"dnn_utils_v2": ["sigmoid", "sigmoid_backward", "relu", "relu_backward"]},
    )
    rng = np.random.default_rng(13)
    parameters = src.initialize_parameters_deep([D, H, H2, 1])
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    randomise(rng, [parameters[k] for k in names])
    X, Y = rng.standard_normal((D, N)), binary_columns(rng)
    AL, caches = src.L_model_forward(X, parameters)
    away_from_kinks(caches[0][1], caches[1][1])
    grads = src.L_model_backward(AL, Y, caches)  # (AL, Y, caches): neither X nor the parameters
    assert {"dA0", "dA1", "dA2"} <= set(grads), "the non-parameter keys this convention returns"

    def loss():
        return src.compute_cost(src.L_model_forward(X, parameters)[0], Y)

    return [parameters[k] for k in names], loss, [grads["d" + k] for k in names]


def adapt_mlpn(relpath):
    src = definitions(
        GALLERY / relpath,
        ["forward", "classifier_output", "loss_and_gradients", "create_classifier"],
        siblings={"loglinear": ["softmax"]},
    )
    rng = np.random.default_rng(14)
    params = src.create_classifier([D, H, H2, K])
    randomise(rng, params)
    xs, ys = rng.standard_normal((N, D)), labels(rng)
    grads = [np.zeros_like(p) for p in params]
    for x, y in zip(xs, ys, strict=True):  # per example; the training loop averages
        _, g = src.loss_and_gradients(x, y, params)
        grads = [a + b / N for a, b in zip(grads, g, strict=True)]

    def loss():
        return np.mean([src.loss_and_gradients(x, y, params)[0] for x, y in zip(xs, ys, strict=True)])

    return params, loss, grads


def adapt_casper(relpath):
    src = definitions(GALLERY / relpath, ["DeepNeuralNetwork"])
    rng = np.random.default_rng(15)
    net = src.DeepNeuralNetwork(sizes=[D, H, H2, K])
    params = [net.params[k] for k in ["W1", "W2", "W3"]]
    randomise(rng, params)
    xs, ys = rng.standard_normal((N, D)), np.eye(K)[labels(rng)]
    grads = [np.zeros_like(p) for p in params]
    for x, y in zip(xs, ys, strict=True):  # per example, 1-D x (D,) and one-hot y (K,)
        change_w = net.backward_pass(y, net.forward_pass(x))
        grads = [g + change_w[k] / N for g, k in zip(grads, ["W1", "W2", "W3"], strict=True)]
    assert {"A0", "Z1", "A3"} <= set(net.params), "activations live in the params dict"

    def loss():  # the file has no loss function: the cross-entropy its backward pass is written for
        return np.mean([-np.sum(y * np.log(net.forward_pass(x))) for x, y in zip(xs, ys, strict=True)])

    return params, loss, grads


def adapt_cs231n_fcnet(relpath, reg=None):
    root = str(GALLERY / "cs231n_a2")
    module_name = "cs231n.classifiers." + Path(relpath).stem
    sys.path.insert(0, root)
    try:
        mod = importlib.import_module(module_name)
    finally:
        sys.path.remove(root)
        for name in [m for m in sys.modules if m == "cs231n" or m.startswith("cs231n.")]:
            del sys.modules[name]
    rng = np.random.default_rng(16)
    kwargs = {} if reg is None else {"reg": reg}  # None: the author's default, as a user would run it
    net = mod.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=K, **kwargs)
    names = ["W1", "b1", "W2", "b2"]
    randomise(rng, [net.params[k] for k in names])
    X, y = rng.standard_normal((N, D)), labels(rng)
    hidden = X @ net.params["W1"] + net.params["b1"]
    away_from_kinks(hidden, np.maximum(hidden, 0) @ net.params["W2"] + net.params["b2"])
    _, grads = net.loss(X, y)
    return [net.params[k] for k in names], lambda: net.loss(X, y)[0], [grads[k] for k in names]


def adapt_network2(relpath):
    src = definitions(GALLERY / relpath, ["Network", "CrossEntropyCost", "sigmoid", "sigmoid_prime"])
    rng = np.random.default_rng(17)
    net = src.Network([D, H, K])  # cost=CrossEntropyCost by default
    randomise(rng, [*net.weights, *net.biases])
    xs = [rng.standard_normal((D, 1)) for _ in range(N)]
    ys = [np.eye(K)[j].reshape(K, 1) for j in labels(rng)]
    nabla_b = [np.zeros(b.shape) for b in net.biases]
    nabla_w = [np.zeros(w.shape) for w in net.weights]
    for x, t in zip(xs, ys, strict=True):  # averaged over the batch, as update_mini_batch does
        db, dw = net.backprop(x, t)  # (nabla_b, nabla_w): biases first
        nabla_b = [a + b / N for a, b in zip(nabla_b, db, strict=True)]
        nabla_w = [a + b / N for a, b in zip(nabla_w, dw, strict=True)]

    def loss():
        return sum(net.cost.fn(net.feedforward(x), t) for x, t in zip(xs, ys, strict=True)) / N

    return [*net.weights, *net.biases], loss, [*nabla_w, *nabla_b]


def adapt_ex4(relpath, lambda_=None):
    src = definitions(
        GALLERY / relpath, ["nnCostFunction", "sigmoidGradient"], siblings={"utils": ["sigmoid"]}
    )
    rng = np.random.default_rng(18)
    nn_params = rng.standard_normal(H * (D + 1) + K * (H + 1))  # unrolled [Theta1 (H, D+1), Theta2 (K, H+1)]
    X, y = rng.standard_normal((N, D)), labels(rng)
    kwargs = {} if lambda_ is None else {"lambda_": lambda_}
    _, grad = src.nnCostFunction(nn_params, D, H, K, X, y, **kwargs)
    return [nn_params], lambda: src.nnCostFunction(nn_params, D, H, K, X, y, **kwargs)[0], [grad]


ADAPTERS = {
    "dlai_planar/planar_nn.py": adapt_planar,
    "dlai_planar/planar_nn_buggy.py": adapt_planar,
    "dlai_gradcheck/gradient_checking.py": adapt_gradcheck,
    "dlai_gradcheck/gradient_checking_buggy.py": adapt_gradcheck,
    "dlai_deep/building_deep_nn.py": adapt_deep,
    "dlai_deep/building_deep_nn_buggy.py": adapt_deep,
    "yoav_mlpn/mlpn.py": adapt_mlpn,
    "yoav_mlpn/mlpn_buggy.py": adapt_mlpn,
    "casper_dnn/dnn_mnist.py": adapt_casper,
    "casper_dnn/dnn_mnist_buggy.py": adapt_casper,
    "cs231n_a2/cs231n/classifiers/fc_net.py": adapt_cs231n_fcnet,
    "cs231n_a2/cs231n/classifiers/fc_net_buggy.py": adapt_cs231n_fcnet,
    "nielsen_network2/network2.py": adapt_network2,
    "nielsen_network2/network2_buggy.py": adapt_network2,
    "ex4_unrolled/exercise4.py": adapt_ex4,
    "ex4_unrolled/exercise4_buggy.py": adapt_ex4,
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
    """What a tool must load without running: missing modules, star imports, data that is not here."""
    for missing in ["testCases_v2", "testCases", "testCases_v4a", "submission", "keras", "grad_check"]:
        assert importlib.util.find_spec(missing) is None, missing
    assert "from testCases_v2 import *" in (GALLERY / "dlai_planar/planar_nn.py").read_text()
    assert "backward_propagation_test_case()" in (GALLERY / "dlai_planar/planar_nn.py").read_text()
    assert "from ..layers import *" in (GALLERY / "cs231n_a2/cs231n/classifiers/fc_net.py").read_text()
    assert 'fetch_openml("mnist_784"' in (GALLERY / "casper_dnn/dnn_mnist.py").read_text()
    assert "from submission import SubmissionBase" in (GALLERY / "ex4_unrolled/utils.py").read_text()
    assert not (GALLERY / "ex4_unrolled/Data/ex4data1.mat").exists()


@pytest.mark.parametrize("case", MANIFEST, ids=[c["path"] for c in MANIFEST])
def test_label_is_the_truth(case):
    params, loss, grads = ADAPTERS[case["path"]](case["path"])
    expected = finite_differences(loss, params)
    err = relative_error(grads, expected)
    if case["expected_exit"] == 0:
        assert err < AGREE, f"labelled correct, but off by {err:.3g} relative"
    else:
        assert err > DISAGREE, f"labelled buggy, but agrees to {err:.3g} relative"


@pytest.mark.parametrize(
    ("adapter", "relpath", "strength"),
    [
        (adapt_cs231n_fcnet, "cs231n_a2/cs231n/classifiers/fc_net.py", 0.3),
        (adapt_ex4, "ex4_unrolled/exercise4.py", 1.0),
    ],
)
def test_correct_l2_knob_at_other_strengths(adapter, relpath, strength):
    """The correct files stay exactly right with their regularisation knob switched on."""
    params, loss, grads = adapter(relpath, strength)
    assert relative_error(grads, finite_differences(loss, params)) < AGREE
