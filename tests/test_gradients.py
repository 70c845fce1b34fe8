"""The gradient-equivalence suite: finite differences = the notebook's backprop = jax.grad.

Error measure: for each leaf, max|a - b| / max(max|a|, max|b|), the error relative to the leaf's largest
entry (and at least a thousandth of the largest entry of any leaf: see ``max_rel_err``). Elementwise
relative errors are meaningless for entries that cancel to ~1e-17 (a sum of 60000 terms that nearly
balance), and the leaf's scale is what an optimizer step sees.

Tolerances, float64 (unit roundoff u = 1.1e-16): each gradient entry is a dot product of at most a few
hundred terms, so the two implementations, summing in different orders, agree to about sqrt(terms) * u
relative to the leaf; 1e-10 leaves more than three orders of magnitude of headroom and still catches any
real mistake (a missed term is an O(1e-3) error or worse on these problem sizes).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import reference
from mlpnn_jax import gradients
from mlpnn_jax.losses import LOSSES, cross_entropy, get_loss, kl_divergence, notebook_loss
from mlpnn_jax.model import apply, init_params

LOSS_NAMES = list(LOSSES)


def rel_err(a, b, floor=0.0):
    """max |a - b| / max(max|a|, max|b|, floor) over one leaf; 0 when the denominator is 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), floor)
    return 0.0 if scale == 0 else float(np.abs(a - b).max(initial=0.0) / scale)


def max_rel_err(g, m):
    """The worst leaf's ``rel_err`` of two gradient dicts with the same keys.

    A leaf that is zero in exact arithmetic (the hinge's b2 gradient: each sample's logit gradient sums
    to exactly 0) comes out as +-1e-17 from one implementation and 0 from the other. Leaves are
    therefore measured against at least a thousandth of the largest entry of any leaf: rounding noise
    then stays ~1e-13, far below the 1e-10 bound, while a real error in a small leaf still shows.
    """
    assert set(g) == set(m)
    floor = 1e-3 * max(float(np.abs(np.asarray(v)).max(initial=0.0)) for v in m.values())
    return max(rel_err(g[k], m[k], floor) for k in m)


def make_problem(seed, n, d, h, k, init, soft, depth=1):
    """Random params (float64 dict), inputs X (n, d) and targets: labels (n,) or distributions (n, k)."""
    rng = np.random.default_rng(seed)
    sizes = [d] + [h] * depth + [k]
    params = {}
    for i in range(1, len(sizes)):
        if init == "notebook":  # the notebook's unscaled draws: saturated tanh and softmax
            w, b = rng.standard_normal((sizes[i - 1], sizes[i])), rng.random(sizes[i])
        else:
            w, b = (
                0.3 * rng.standard_normal((sizes[i - 1], sizes[i])),
                0.1 * rng.standard_normal(sizes[i]),
            )
        params[f"W{i}"], params[f"b{i}"] = w, b
    x = rng.random((n, d))  # pixel-like inputs in [0, 1)
    y = rng.dirichlet(np.full(k, 0.5), n) if soft else rng.integers(0, k, n)
    return params, x, y


def hinge_margins(params, x, y):
    """The smallest |z_j - z_k + 1| over target classes k, to keep hinge problems off its kinks."""
    z, _ = reference.forward(params, x)
    t = reference.as_targets(y, z.shape[1])
    m = np.abs(z[:, None, :] - z[:, :, None] + 1.0)
    m[:, np.arange(z.shape[1]), np.arange(z.shape[1])] = np.inf
    return m[t > 0].min()


problems = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(1, 17),
        "d": st.integers(1, 13),
        "h": st.integers(1, 11),
        "k": st.integers(2, 10),
        "init": st.sampled_from(["notebook", "small"]),
        "soft": st.booleans(),
    }
)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems)
def test_jax_grad_equals_manual_backprop(loss, problem):
    params, x, y = make_problem(**problem)
    if loss == "hinge":
        assume(hinge_margins(params, x, y) > 1e-9)
    g = gradients(params, x, y, loss)
    m = reference.manual_gradients(params, x, y, loss)
    assert all(g[k].dtype == jnp.float64 and g[k].shape == params[k].shape for k in params)
    assert max_rel_err(g, m) <= 1e-10


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("depth", [1, 3])
def test_deeper_nets_and_relu(loss, activation, depth):
    params, x, y = make_problem(7, 9, 6, 5, 4, "small", soft=False, depth=depth)
    g = gradients(params, x, y, loss, activation)
    m = reference.manual_gradients(params, x, y, loss, activation)
    assert sorted(g) == sorted(params) and len(g) == 2 * (depth + 1)
    assert max_rel_err(g, m) <= 1e-10


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("init", ["notebook", "small"])
def test_ce_and_kl_give_the_same_gradient(soft, init):
    params, x, y = make_problem(3, 32, 20, 15, 10, init, soft)
    g_ce, g_kl = gradients(params, x, y, "ce"), gradients(params, x, y, "kl")
    assert max_rel_err(g_ce, g_kl) <= 1e-12
    # ... because their losses differ by the entropy of the targets, which does not depend on the params
    logits = apply(params, x)
    t = np.asarray(reference.as_targets(y, 10))
    entropy = -np.sum(t * np.log(np.where(t > 0, t, 1.0)), axis=1)
    diff = np.asarray(cross_entropy(logits, y) - kl_divergence(logits, y))
    np.testing.assert_allclose(diff, entropy, rtol=0, atol=1e-12 * np.abs(cross_entropy(logits, y)).max())
    if not soft:
        assert np.all(entropy == 0)


def test_kl_with_zero_targets_is_finite_with_finite_gradient():
    """xlogy: zero target entries give 0, not 0 * log 0 = NaN, and the gradient is defined there."""
    logits = jnp.array([[1.0, -2.0, 0.5]])
    t = jnp.array([[0.0, 0.3, 0.7]])
    value = kl_divergence(logits, t)
    grad = jax.grad(lambda z: kl_divergence(z, t).sum())(logits)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(grad, jax.nn.softmax(logits) - t, rtol=1e-12)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("soft", [False, True])
def test_manual_backprop_equals_finite_differences(loss, soft):
    """Centred differences, step 1e-6: truncation O(h^2 f''') ~ 1e-12 and roundoff O(u |f| / h) ~ 1e-10,
    so agreement to 1e-6 relative to the leaf (with a 1e-9 absolute floor for entries that vanish)
    separates a right gradient from a wrong one by many orders of magnitude."""
    params, x, y = make_problem(11, 6, 4, 5, 3, "small", soft)
    if loss == "hinge":
        assert hinge_margins(params, x, y) > 1e-4  # far from the kinks at this step size
    m = reference.manual_gradients(params, x, y, loss)
    h = 1e-6
    for key, value in params.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = {**params, key: value.copy()}
            minus = {**params, key: value.copy()}
            plus[key][idx] += h
            minus[key][idx] -= h
            fd[idx] = (reference.loss_value(plus, x, y, loss) - reference.loss_value(minus, x, y, loss)) / (
                2 * h
            )
        assert np.abs(fd - m[key]).max() <= 1e-6 * np.abs(m[key]).max() + 1e-9, key


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("soft", [False, True])
def test_loss_values_match_reference(loss, soft):
    params, x, y = make_problem(5, 12, 7, 6, 10, "small", soft=soft)
    z = np.asarray(apply(params, x))
    ours = np.asarray(LOSSES[loss](jnp.asarray(z), y))
    ref = reference.LOSSES[loss](z, reference.as_targets(y, 10))[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_notebook_clip_changes_the_gradient_where_softmax_saturates():
    """The notebook printed a loss of probabilities clipped at 1e-8, but its backprop applied p - t.

    Under its unscaled init the softmax saturates: many samples give their true class a probability
    below 1e-8. The clipped loss is flat in those samples (its gradient there is exactly 0), while the
    backprop pushes them hardest (p - t has a -1 at the true class). The stable log-softmax loss has
    exactly the backprop's gradient.
    """
    params, _ = reference.notebook_init(in_dim=784, out_dim=10, n_neuron=200)
    rng = np.random.default_rng(0)
    x = (rng.random((64, 784)) < 0.2) * rng.random((64, 784))  # sparse, pixel-like inputs
    y = rng.integers(0, 10, 64)
    logits = apply(params, x)
    p_true = np.asarray(jax.nn.softmax(logits))[np.arange(64), y]
    clipped = p_true < 1e-8
    assert 10 <= clipped.sum() < 64  # saturated: a good share, not all, of the samples is clipped

    # per sample, the gradients with respect to the logits
    d_clip = np.asarray(jax.grad(lambda z: notebook_loss(z, y, "ce"))(logits))
    d_ce = np.asarray(jax.grad(lambda z: cross_entropy(z, y).sum())(logits))
    backprop = np.asarray(jax.nn.softmax(logits)) - reference.to_one_hot(y)
    assert np.all(d_clip[clipped] == 0)  # the printed loss does not see the worst samples at all
    np.testing.assert_allclose(d_clip[~clipped], backprop[~clipped], atol=1e-12)
    np.testing.assert_allclose(d_ce, backprop, atol=1e-12)
    assert np.abs(backprop[clipped]).max() > 0.99  # where the backprop pushes hardest

    # so over the parameters: jax.grad of the clipped mean loss is NOT the notebook's update ...
    n = x.shape[0]
    g_clip = jax.grad(lambda p: notebook_loss(apply(p, x), y, "ce") / n)(params)
    m = reference.manual_gradients(params, x, y, "ce")
    assert max_rel_err(g_clip, m) > 0.1
    # ... but the stable loss's gradient is, to rounding
    assert max_rel_err(gradients(params, x, y, "ce"), m) <= 1e-10
    # and the printed (clipped) value understates the true loss
    assert float(notebook_loss(logits, y)) < float(cross_entropy(logits, y).sum())


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("batch", [1, 64])
def test_float32_agrees_with_float64_reference(loss, batch):
    """float32 (u = 6e-8) on a 784-100-10 net: sums of up to 784 * batch terms lose at most ~sqrt(terms)
    ulps relative to the leaf in practice (~1e-6); 5e-5 allows for tanh/exp rounding and the
    float32 inputs, and is still orders of magnitude below any error that changes a step."""
    p64 = jax.tree.map(np.asarray, init_params(0, (784, 100, 10), "glorot", jnp.float64))
    rng = np.random.default_rng(batch)
    x = rng.random((batch, 784))
    y = rng.integers(0, 10, batch)
    p32 = jax.tree.map(lambda a: a.astype(np.float32), p64)
    x32 = x.astype(np.float32)
    with jax.default_matmul_precision("highest"):  # TF32 on GPUs would otherwise round inputs to 10 bits
        g = gradients(p32, x32, y, loss)
    assert all(v.dtype == jnp.float32 for v in g.values())
    # the reference sees exactly the float32-rounded values, so only float32 arithmetic differs
    m = reference.manual_gradients(
        jax.tree.map(lambda a: a.astype(np.float64), p32), x32.astype(np.float64), y, loss
    )
    assert max_rel_err(g, m) <= 5e-5


@pytest.mark.parametrize(
    ("loss", "options"),
    [
        ("focal", {"gamma": 0.0}),
        ("focal", {"gamma": 0.5}),
        ("focal", {"gamma": 3.0}),
        ("smooth_ce", {"label_smoothing": 0.3}),
        ("hinge", {"margin": 0.5}),
    ],
)
@pytest.mark.parametrize("soft", [False, True])
def test_loss_options_and_certain_predictions(loss, options, soft):
    """Non-default options, and a sample predicted with p = 1 exactly (the focal loss's 0 * inf spot)."""
    params, x, y = make_problem(21, 8, 6, 5, 4, "small", soft)
    params["W2"][:, 0] = 0.0
    params["b2"][0] = 800.0  # exp(-800) = 0 in float64: every sample puts p = 1 on class 0 ...
    params["W2"][0, 0] = -1600.0
    x[1:, :] = 0.0  # ... except sample 0, whose first hidden unit can pull class 0 back down
    logits = np.asarray(apply(params, x))
    assert (np.asarray(jax.nn.softmax(logits))[1:, 0] == 1.0).all()
    g = gradients(params, x, y, loss, **options)
    m = reference.manual_gradients(params, x, y, loss, **options)
    assert all(np.isfinite(v).all() for v in g.values())
    assert max_rel_err(g, m) <= 1e-10
    if loss == "focal" and options["gamma"] == 0.0:  # focal with gamma 0 is cross-entropy
        assert max_rel_err(g, gradients(params, x, y, "ce")) <= 1e-12


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("focal", {"gama": 0.5}, "unknown option 'gama' for loss 'focal' \\(focal takes gamma\\)"),
        ("ce", {"gamma": 0.5}, "unknown option 'gamma' for loss 'ce' \\(ce takes no options\\)"),
        ("hinge", {"label_smoothing": 0.1}, "hinge takes margin"),
    ],
)
def test_loss_options_are_strict(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_loss(name, **options)


def test_loss_options_still_apply():
    z, y = jnp.array([[2.0, -1.0, 0.5]]), jnp.array([0])
    assert not np.allclose(get_loss("focal", gamma=0.5)(z, y), get_loss("focal")(z, y))
