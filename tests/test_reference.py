"""The numpy reference computes exactly what the notebook computed."""

import ast
import io
from pathlib import Path

import numpy as np
import pytest

import reference
from mlpnn_jax.model import init_params


def verbatim_notebook_draws(n_neuron):
    """The notebook's own cells 1, 4 and 6 (global np.random, seed 1), two networks in a row."""
    np.random.seed(1)

    def perceptron(dim):
        w = np.random.randn(dim, 1)
        b = np.random.rand()
        return w, b

    nets = []
    for _ in range(2):
        layer1 = [perceptron(784) for _ in range(n_neuron)]
        layer2 = [perceptron(n_neuron) for _ in range(10)]
        nets.append(
            {
                "W1": np.hstack([w for w, _ in layer1]),
                "b1": np.array([b for _, b in layer1]),
                "W2": np.hstack([w for w, _ in layer2]),
                "b2": np.array([b for _, b in layer2]),
            }
        )
    return nets


def test_notebook_init_is_the_notebooks_stream():
    state = np.random.get_state()
    try:
        expected = verbatim_notebook_draws(1000)
    finally:
        np.random.set_state(state)
    ce, kl = reference.notebook_init()
    for ours, theirs in ((ce, expected[0]), (kl, expected[1])):
        assert {k: v.shape for k, v in ours.items()} == {
            "W1": (784, 1000),
            "b1": (1000,),
            "W2": (1000, 10),
            "b2": (10,),
        }
        for k in ours:
            assert np.array_equal(ours[k], theirs[k]), k
    assert not np.array_equal(ce["W1"], kl["W1"])  # the KL network continues the stream


def test_notebook_init_leaves_global_random_state_alone():
    state = np.random.get_state()
    reference.notebook_init(n_neuron=5)
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_jax_notebook_init_is_bit_for_bit():
    ce, _ = reference.notebook_init(n_neuron=30)
    params = init_params(1, (784, 30, 10), "notebook", np.float64)
    assert all(np.array_equal(np.asarray(params[k]), ce[k]) for k in ce)


def small_problem(seed=0, n=40, h=8):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784)) * (rng.random((n, 784)) < 0.2)
    return x, rng.integers(0, 10, n), reference.notebook_networks(n_neuron=h)


def test_kl_loss_is_the_notebooks_value_without_warnings():
    x, y, (net, _) = small_problem()
    out = net(x)
    onehot = reference.to_one_hot(y)
    with np.errstate(divide="ignore", invalid="ignore"):  # cell 11 verbatim, warnings and all
        notebook = np.sum(np.where(onehot != 0, np.multiply(onehot, np.log(out / onehot)), 0))
    ours = reference.compute_loss_kl(out, y)  # pytest turns any warning into an error here
    assert ours == notebook
    assert ours < 0  # it printed -KL
    assert ours == -reference.compute_loss_ce(out, y)  # with one-hot targets, -KL = -CE exactly


def test_bp_cross_entropy_steps_along_manual_gradients():
    x, y, (net, _) = small_problem()
    before = net.params
    net(x)
    reference.bp_cross_entropy(net, x, y, lr=1.0)
    grads = reference.manual_gradients(before, x, y, "ce")
    for k in before:
        # the notebook's unstable softmax and our max-subtracted one differ only in rounding
        np.testing.assert_allclose(before[k] - getattr(net, k), grads[k], rtol=1e-10, atol=1e-13)
    assert reference.bp_kl is reference.bp_cross_entropy


def test_output_is_clipped_and_cache_keeps_unclipped():
    x, _, (net, _) = small_problem(h=200)
    out = net(x)
    assert out.min() >= 1e-8
    assert net.cache["A2"].min() < 1e-8  # the unscaled init saturates the softmax
    np.testing.assert_allclose(net.cache["A2"].sum(1), 1.0, rtol=1e-12)


def test_run_notebook_prints_the_notebooks_lines_and_records_every_epoch():
    x, y, (net, _) = small_problem(n=60)
    buf = io.StringIO()
    train, test = reference.run_notebook(net, x, y, x[:20], y[:20], epochs=6, print_every=3, file=buf)
    assert len(train) == len(test) == 6
    lines = buf.getvalue().splitlines()
    assert lines == [f"[epoch 3] loss: {train[2]:.4f}", f"[epoch 6] loss: {train[5]:.4f}"]
    assert train[-1] < train[0]


def test_evaluate_prints_like_the_notebook():
    x, y, (net, _) = small_problem(n=30)
    buf = io.StringIO()
    cm, acc = reference.evaluate(net, x, y, file=buf)
    text = buf.getvalue()
    assert text.startswith("Confusion matrix:\n[[") and f"\nAccuracy={acc}\n" in text
    assert cm.sum() == 30 and acc == np.trace(cm) / 30


def test_from_params_round_trip():
    _, _, (net, _) = small_problem()
    again = reference.MLPNN.from_params(net.params)
    x = np.random.default_rng(2).random((5, 784))
    np.testing.assert_array_equal(again(x), net(x))


def test_manual_gradients_rejects_unknown_loss_and_bad_keys():
    params = reference.notebook_init(n_neuron=3)[0]
    x = np.zeros((2, 784))
    with pytest.raises(ValueError, match="loss must be one of"):
        reference.manual_gradients(params, x, np.zeros(2, int), "l1")
    with pytest.raises(ValueError, match="keys W1, b1"):
        reference.manual_gradients({"W1": params["W1"]}, x, np.zeros(2, int))


def test_reference_never_imports_jax_or_mlpnn_jax():
    for path in Path(reference.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in names if m.split(".")[0] in ("jax", "jaxlib", "mlpnn_jax", "optax")], path
