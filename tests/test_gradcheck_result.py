"""The user's return value is parsed once into a canonical ``result.Result``.

``result.parse`` on the main shapes of a return value (a dict by name, a tuple by position, an in-place
update, per-example calls), and a check that ``check_backprop`` parses each problem's results exactly
once, wherever they are read (the probe, the reference, the comparisons).
"""

import numpy as np
import pytest
from test_gradcheck import fn

from mlpnn_jax.gradcheck import check_backprop, conventions, layouts, models, problems, result, runner

NET = models.candidates(["ce"], ["tanh"])[0]
PROBS, EXPECTED = problems.make(0, 2, True, NET, condition=False)  # the numpy backprop's gradients
P = PROBS[1]  # n7-small: n, D, H, K all different
G = EXPECTED[P.name]
CALL = conventions.Call(("params", "X", "y"), ("P", "X", "Y"), False, "rows", "int")
LIST = layouts.source_guesses("def f(p, X, y):\n    W1, b1, W2, b2 = p\n", "p")[0]


def convention(layout=None, call=CALL, f=None):
    return runner.Convention(conventions.Target("f", f), layout or layouts.canonical(), call)


def calls(*returned, losses=None, outputs=None):
    n = len(returned)
    return runner.Calls(list(returned), losses or [None] * n, outputs or [None] * n, [])


def codes(findings):
    return [(f.code, f.level) for f in findings]


def test_a_dict_by_name_is_read_by_its_keys():
    returned = {"dW1": G["W1"], "db1": G["b1"], "dW2": G["W2"], "db2": G["b2"], "dZ1": np.zeros(3)}
    res = result.parse(calls(returned), convention(), P)
    assert all(np.array_equal(res.grads[k], G[k]) and res.grads[k].dtype == np.float64 for k in G)
    assert res.status == dict.fromkeys(G, "ok")
    assert res.shapes == {k: G[k].shape for k in G} and res.dtypes == dict.fromkeys(G, "float64")
    assert codes(res.findings) == [("extra_key", "note")]  # dZ1: not a parameter, ignored
    assert res.loss is None and res.outputs is None


@pytest.mark.parametrize("order", [("W1", "b1", "W2", "b2"), ("W2", "b2", "W1", "b1")])
def test_a_tuple_is_read_by_position_or_by_its_shapes(order):
    returned = tuple(G[k].astype(np.float32) for k in order)
    res = result.parse(calls(returned), convention(LIST), P)
    for k in G:
        np.testing.assert_allclose(res.grads[k], G[k], rtol=1e-6, atol=1e-7)  # float32's rounding
    assert res.status == dict.fromkeys(G, "dtype") and res.dtypes == dict.fromkeys(G, "float32")
    assert res.findings == ()


def test_an_in_place_update_is_read_as_its_gradients():
    def step(params, X, y, lr):
        for k in G:
            params[k] -= lr * G[k]

    call = conventions.Call(("params", "X", "y", "lr"), ("P", "X", "Y", "R"), False, "rows", "int")
    res = convention(call=call, f=step).run(P)
    for k in G:
        np.testing.assert_allclose(res.grads[k], G[k], rtol=0, atol=1e-13)  # (W - (W - g)) / 1
    assert res.status == dict.fromkeys(G, "ok")
    assert ("in_place", "note") in codes(res.findings)


def test_per_example_calls_are_averaged_and_their_losses_and_outputs_gathered():
    half = {k: v / 2 for k, v in G.items()}
    outputs = [np.ones((1, 3)), np.zeros((1, 3))]
    res = result.parse(calls(G, half, losses=[1.0, 3.0], outputs=outputs), convention(), P)
    assert all(np.allclose(res.grads[k], 0.75 * G[k], rtol=1e-15, atol=0) for k in G)
    assert res.loss == 2.0 and np.array_equal(res.outputs, np.concatenate(outputs))


def test_a_wrong_shape_is_unusable_and_its_hints_wait_for_the_expected_gradients():
    returned = {"W1": G["W1"], "W2": G["W2"].T, "b2": G["b2"]}
    res = result.parse(calls(returned), convention(), P)
    assert res.status == {"W1": "ok", "b1": "missing", "W2": "transposed", "b2": "ok"}
    assert res.grads["W2"] is None and res.grads["b1"] is None and res.shapes["W2"] == G["W2"].T.shape
    assert codes(res.findings) == [("missing_key", "error"), ("transposed", "error")]
    assert "even transposed it does not match" in res.findings[1].message  # no values known yet
    known = res.findings_against(convention(), P, G)
    assert "its transpose matches the expected gradient" in known[1].message
    assert known[0] == res.findings[0]


def _own_loss(params, X, Y):
    """0.5 sum(Z2^2): no candidate's loss, so the reference is differences of it (many more calls)."""
    A1 = np.tanh(X @ params["W1"] + params["b1"])
    Z2 = A1 @ params["W2"] + params["b2"]
    dZ1 = Z2 @ params["W2"].T * (1 - A1**2)
    grads = {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": A1.T @ Z2, "b2": Z2.sum(0)}
    return 0.5 * float(np.sum(Z2**2)), grads


@pytest.mark.parametrize(
    ("backprop", "ok"),
    [
        (fn("correct", "backprop"), True),
        (fn("correct", "backprop_per_sample"), True),
        (fn("buggy", "transposed_dW1"), False),
        (_own_loss, True),
    ],
    ids=["batch", "per_sample", "buggy", "own_loss"],
)
def test_each_problem_is_parsed_once(monkeypatch, backprop, ok):
    parsed, parse = [], result.parse

    def counted(calls, conv, problem):
        parsed.append((calls, problem))
        return parse(calls, conv, problem)

    monkeypatch.setattr(result, "parse", counted)
    report = check_backprop(backprop)
    assert report.ok is ok
    runs = [id(c) for c, _ in parsed]
    assert len(runs) == len(set(runs))  # no run's return value read twice
    drawn = [p for _, p in parsed if p.name != "probe"]  # the probe: one run per convention tried
    assert len({id(p) for p in drawn}) == len(drawn), [p.name for p in drawn]  # one run per problem
    assert {p["name"] for p in report.problems} <= {p.name for p in drawn}


@pytest.mark.parametrize("name", ["backprop", "with_l2"])
def test_the_expected_gradients_are_kept_not_recomputed(monkeypatch, name):
    computed, gradients = [], models.gradients

    def counted(net, params, X, Y):
        computed.append((net, *(params[k].tobytes() for k in sorted(params)), X.tobytes(), Y.tobytes()))
        return gradients(net, params, X, Y)

    monkeypatch.setattr(models, "gradients", counted)
    assert check_backprop(fn("correct", "backprop") if name == "backprop" else _with_l2).ok
    assert computed and len(computed) == len(set(computed))  # jax.grad of a net on a problem: once


def _with_l2(params, X, Y, lam=0.1):
    """The notebook's mean CE backprop with an L2 term lam W in the weights' gradients (a net the
    problems were not conditioned for: its gradients are computed, once)."""
    grads = fn("correct", "backprop")(params, X, Y)
    return {k: g + lam * params[k] if k[0] == "W" else g for k, g in grads.items()}
