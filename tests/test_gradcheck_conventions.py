"""gradcheck pointed at files as people write them: conventions inferred, networks identified, L2,
files that cannot run whole, and the child process that isolates the user's code.

The files are in tests/gallery/own/ (next to a student's own reference.py and jax.py, which must
not shadow the checker's modules). ``isolate.run_file`` is the child process's whole job; the
isolation tests start real child processes through the CLI.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlpnn_jax.gradcheck import (
    LoadError,
    check_backprop,
    check_file,
    compare,
    load,
    patterns,
    problems,
    rules,
)
from mlpnn_jax.gradcheck.command import run_gradcheck
from mlpnn_jax.gradcheck.isolate import Request, run_file
from mlpnn_jax.gradcheck.models import Net

OWN = Path(__file__).parent / "gallery" / "own"


def run(target, **kwargs):
    return run_file(Request(target=f"{OWN / target}", **kwargs))


def test_per_example_list_params_from_an_init_and_a_sibling_module():
    outcome = run("mlp1.py:loss_and_gradients", init="create_classifier")
    assert outcome.code == 0, outcome.report + outcome.error
    first = outcome.report.splitlines()[0]
    assert first.startswith("called loss_and_gradients(x, y, params) once per example and averaged over 7")
    assert "params are the list [W (5, 4), b (4,), U (4, 3), b_tag (3,)] from create_classifier" in first
    assert "Its loss matches 2 weight layers, tanh hidden, softmax output, cross-entropy" in outcome.report


def test_a_bug_in_per_example_code_is_diagnosed():
    outcome = run("mlp1.py:loss_and_gradients_buggy", init="create_classifier")
    assert outcome.code == 1
    assert "[activation]" in outcome.report and "derivative was 1 (none at all)" in outcome.report


def test_the_init_function_is_found_without_init():
    outcome = run("mlp1.py:loss_and_gradients")
    assert outcome.code == 0 and "from create_classifier" in outcome.report


def test_a_notebook_with_magics_shell_lines_and_python_2_loads_only_what_is_needed(tmp_path):
    notebook = json.loads((OWN / "deep.ipynb").read_text())
    notebook["cells"].append(
        {"cell_type": "code", "source": ["print 'done'\n"], "metadata": {}, "outputs": []}
    )
    (tmp_path / "deep.ipynb").write_text(json.dumps(notebook))
    outcome = run_file(Request(target=f"{tmp_path / 'deep.ipynb'}:backward", init="init_weights"))
    assert outcome.code == 0, outcome.report + outcome.error
    assert "params are the list [params[0] (5, 4), params[1] (4, 6), params[2] (6, 3)]" in outcome.report
    assert "3 weight layers, relu hidden, softmax output" in outcome.report and "no biases" in outcome.report
    for skipped in (
        "'%matplotlib inline' (a magic or shell line)",
        "!wget",
        'np.load("data.npz")',
        "not valid Python 3",
    ):
        assert skipped in outcome.report, skipped


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("loss_right", 0, "L2 lambda = 0.1"),
        ("loss_missing_l2", 1, "[l2]"),
        ("loss_sum", 1, "off by a factor of n, the batch size"),
        ("grads_only", 0, "the gradients include L2 regularisation with lambda = 0.1"),
    ],
)
def test_l2_regularisation(name, code, text):
    outcome = run(f"l2net.py:{name}", init="init")
    assert outcome.code == code, outcome.report + outcome.error
    assert text in outcome.report


def test_in_place_updates_are_read_as_gradients():
    outcome = run("inplace.py:Net.backward", forward="forward")
    assert outcome.code == 0, outcome.report + outcome.error
    assert "X as columns (D, n), one-hot columns" in outcome.report
    assert "squared error 1/2 sum_k (a_k - t_k)^2" in outcome.report


@pytest.mark.parametrize(
    ("target", "forward", "code", "text"),
    [
        ("spread_args.py:backward_prop", "forward_prop", 0, "params are the arguments [W1 (4, 5), b1 (4, 1)"),
        ("spread_args.py:backward_prop_buggy", "forward_prop", 1, "b1 has shape () = (), expected (H, 1)"),
        ("global_rate.py:Net.backprop", "predict", 0, "[in_place] the code updates the params in place"),
        ("own_loss.py:loss_grad", None, 0, "checked against centred finite differences of that loss"),
        ("own_loss.py:loss_grad_buggy", None, 1, "b1: off by a factor of 2 (2 on n1-small, 2 on n7-small)"),
    ],
)
def test_other_conventions_and_a_loss_no_candidate_has(target, forward, code, text):
    outcome = run(target, forward=forward)
    assert outcome.code == code, outcome.report + outcome.error
    assert text in outcome.report


@pytest.mark.parametrize(
    ("cls", "code", "text"),
    [
        ("NeuralNetwork", 0, "seed 0: OK"),
        ("BuggyNetwork", 1, "[activation] self.layers[0].W and self.layers[0].b match a backprop whose tanh"),
        ("TemperedNetwork", 2, ""),
    ],
)
def test_layer_objects_that_update_themselves_through_the_command(cls, code, text):
    """backward(grad, lr) of a container of layers: grad is made as the loss's gradient with respect to
    the forward's output, and the in-place updates are read back; an output no candidate network
    computes leaves the gradient unknown, and the check is not run."""
    target = f"{OWN / 'layers.py'}:{cls}.backward"
    flags = ["--forward", "forward", "--init", "build"]
    done = subprocess.run(
        [sys.executable, "-m", "mlpnn_jax", "gradcheck", target, *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stdout + done.stderr
    if code == 2:
        assert done.stdout == "" and done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
        assert "takes grad, the loss's gradient with respect to the output of" in done.stderr
        return
    assert "with grad = the loss's gradient with respect to its output" in done.stdout
    assert "[in_place]" in done.stdout and text in done.stdout


def test_a_python_2_file_around_the_function(tmp_path):
    source = (OWN / "l2net.py").read_text()
    (tmp_path / "py2.py").write_text(f'{source}\n\nprint "training"\nfor i in xrange(10):\n    print i\n')
    outcome = run_file(Request(target=f"{tmp_path / 'py2.py'}:loss_right", init="init"))
    assert outcome.code == 0 and "not valid Python 3" in outcome.report
    (tmp_path / "py2_needed.py").write_text('def backprop(params, X, Y):\n    print "no"\n')
    outcome = run_file(Request(target=f"{tmp_path / 'py2_needed.py'}:backprop"))
    assert outcome.code == 2 and "backprop (line 1) is not valid Python 3: SyntaxError" in outcome.error


def test_loading_never_runs_top_level_code_nor_imports_the_users_folder():
    objs, module = load.load(OWN / "mlp1.py", ["loss_and_gradients"])
    assert "TRAIN" not in module.namespace and "STUDENT" not in module.namespace
    assert objs["loss_and_gradients"].__globals__["softmax"].__module__.startswith("_mlpnn_gradcheck_user_")
    assert any("train.csv" in s for s in load.skipped_summary(module))


# ------------------------------------------------------------------------------- rules, one at a time


@pytest.fixture(scope="module")
def ctx_parts():
    net = Net()
    probs, expected = problems.make(0, 2, True, net)
    labels = {k: k for k in ("W1", "b1", "W2", "b2")}
    return net, probs, expected, labels


def context(parts, change):
    net, probs, expected, labels = parts
    got = {p.name: {k: change(p, k, v) for k, v in expected[p.name].items()} for p in probs}
    cmp = {p.name: {k: compare.compare(got[p.name][k], expected[p.name][k]) for k in labels} for p in probs}
    return rules.Context(probs, expected, got, cmp, net, labels)


@pytest.mark.parametrize(
    ("rule", "change", "code", "text"),
    [
        ("scale", lambda p, k, v: v * p.n, "scale", "off by a factor of n"),
        ("scale", lambda p, k, v: -v, "sign", "the wrong sign"),
        ("l2", lambda p, k, v: v + 0.3 * p.params[k] * (k[0] == "W"), "l2", "lambda = 0.3"),
        (
            "few_entries",
            lambda p, k, v: (
                v * np.where(np.arange(v.size).reshape(v.shape) == 1, 1.01, 1.0) if k == "W1" else v
            ),
            "few_entries",
            "only entry",
        ),
    ],
)
def test_each_rule_alone(ctx_parts, rule, change, code, text):
    ctx = context(ctx_parts, change)
    todo = {k for k in ctx.keys if ctx.failing(k)}
    found = next(r for r in rules.RULES if r.code == rule).find(ctx, todo)
    assert found and found[0].code == code and text in found[0].message, found
    assert not todo or rule == "few_entries"


def test_the_table_runs_every_rule_and_names_the_wrong_layer_of_a_deep_network():
    net = Net()
    probs, expected = problems.make(0, 3, True, net)
    labels = {k: k for k in expected[probs[0].name]}
    got = {p.name: {k: v * (1.5 if k == "W1" else 1.0) for k, v in expected[p.name].items()} for p in probs}
    cmp = {p.name: {k: compare.compare(got[p.name][k], expected[p.name][k]) for k in labels} for p in probs}
    found = rules.run(rules.Context(probs, expected, got, cmp, net, labels))
    assert [f.code for f in found] == ["scale", "layer"], found
    assert found[1].message.endswith("the wrong gradients are in layer 1 (1 = the input layer)")
    assert set(rules.CODES) == {r.code for r in rules.RULES} and len(rules.CODES) == len(rules.RULES)


def test_a_rule_that_does_not_apply_finds_nothing(ctx_parts):
    ctx = context(ctx_parts, lambda p, k, v: v * p.n)
    todo = {k for k in ctx.keys if ctx.failing(k)}
    assert patterns.l2(ctx, todo) == [] and todo == set(ctx.keys)


def test_api_infers_the_loss_when_none_is_given():
    def sigmoid_se(params, X, Y):
        n, K = X.shape[0], params["W2"].shape[1]
        A1 = np.tanh(X @ params["W1"] + params["b1"])
        A2 = 1 / (1 + np.exp(-(A1 @ params["W2"] + params["b2"])))
        d2 = (A2 - np.eye(K)[Y]) * A2 * (1 - A2) / n
        d1 = d2 @ params["W2"].T * (1 - A1**2)
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": A1.T @ d2, "b2": d2.sum(0)}

    report = check_backprop(sigmoid_se)
    assert report.ok and "sigmoid output, squared error 1/2 sum_k" in report.network
    assert not check_backprop(sigmoid_se, loss="ce").ok


# ---------------------------------------------------------------------------------- isolation (CLI)


def cli(target, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    code = run_gradcheck(target, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("body", "timeout", "error"),
    [
        ("    while True:\n        pass\n", 8, "did not finish within 8 s"),
        ("    import os\n    os._exit(0)\n", 60, "ended (exit status 0) before the check finished"),
        ("    raise GeneratorExit('bye')\n", 60, "your code raised GeneratorExit: bye"),
        ("    raise KeyboardInterrupt\n", 60, "your code raised KeyboardInterrupt"),
    ],
)
def test_the_users_code_cannot_take_the_checker_down(tmp_path, body, timeout, error):
    (tmp_path / "evil.py").write_text(f"def backprop(params, X, Y):\n{body}")
    code, out, err = cli(f"{tmp_path / 'evil.py'}:backprop", timeout=timeout)
    assert code == 2 and out == "" and err.splitlines()[-1].startswith("error: ") and error in err


def test_closed_stdout_and_a_students_own_modules_beside_the_file(tmp_path):
    (tmp_path / "reference.py").write_text("raise ImportError('mine')\n")
    (tmp_path / "mlpnn_jax.py").write_text("raise ImportError('mine')\n")
    (tmp_path / "bp.py").write_text(
        "import sys\nimport numpy as np\n\n\ndef backprop(params, X, Y):\n    sys.stdout.close()\n"
        "    n = len(X)\n    A1 = np.tanh(X @ params['W1'] + params['b1'])\n    Z = A1 @ params['W2'] + "
        "params['b2']\n"
        "    P = np.exp(Z - Z.max(1, keepdims=True))\n    P /= P.sum(1, keepdims=True)\n"
        "    d2 = (P - np.eye(P.shape[1])[Y]) / n\n    d1 = d2 @ params['W2'].T * (1 - A1**2)\n"
        "    return {'W1': X.T @ d1, 'b1': d1.sum(0), 'W2': A1.T @ d2, 'b2': d2.sum(0)}\n"
    )
    code, out, err = cli(f"{tmp_path / 'bp.py'}:backprop", as_json=True)
    assert code == 0, err
    assert json.loads(out)["ok"]


@pytest.mark.parametrize(
    ("target", "forward", "ok"),
    [("inplace.py:Net.backward", "forward", True), ("global_rate.py:Net.backprop", "predict", True)],
)
def test_check_file_checks_a_class_method_from_python(target, forward, ok):
    report = check_file(f"{OWN}/{target}", forward=forward)
    assert report.ok is ok and f"called {target.split(':')[1]}(" in report.to_table()


def test_check_file_names_a_missing_method():
    with pytest.raises(LoadError, match="Net has no method 'nope'"):
        check_file(f"{OWN}/inplace.py:Net.nope")
