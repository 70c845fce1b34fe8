"""check_backprop and run_gradcheck on a gallery of correct and deliberately buggy backprops.

The gallery (tests/gallery/) holds plain numpy files, as a student would write them: correct.py (each
backprop right, written a different way), buggy.py (one bug each) and broken_returns.py (results that
are not a dict of arrays); raises.py and broken_import.py exercise the usage errors. Every correct one
must pass; every buggy one must fail with exactly the expected diagnosis codes.
"""

import functools
import importlib.util
import io
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mlpnn_jax.gradcheck import CODES, GradcheckUsageError, check_backprop
from mlpnn_jax.gradcheck.command import run_gradcheck

GALLERY = Path(__file__).parent / "gallery"
PARAMS = ("W1", "b1", "W2", "b2")


@functools.cache
def gallery(stem):
    """A gallery module, loaded from its file with the gallery on sys.path (for gallery_common)."""
    sys.path.insert(0, str(GALLERY))
    try:
        spec = importlib.util.spec_from_file_location(f"_gallery_{stem}", GALLERY / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(GALLERY))
    return module


def fn(stem, name, **bound):
    f = getattr(gallery(stem), name)
    return functools.partial(f, **bound) if bound else f


def messages(report):
    return " | ".join(d.message for d in report.diagnoses)


# ----------------------------------------------------------------------------- correct backprops

CORRECT = [
    ("backprop", "ce", False, {}),
    ("backprop", "ce", True, {}),
    ("backprop", "kl", False, {}),
    ("backprop", "kl", True, {}),
    ("backprop_softmax_jacobian", "ce", False, {}),
    ("backprop_softmax_jacobian", "kl", True, {}),
    ("backprop_per_sample", "ce", False, {}),
    ("backprop_per_sample", "kl", True, {}),
    ("backprop_jax", "ce", False, {}),
    ("mse", "mse", False, {}),
    ("mse", "mse", True, {}),
    ("smooth_ce", "smooth_ce", False, {}),
    ("smooth_ce", "smooth_ce", True, {"label_smoothing": 0.3}),
    ("focal", "focal", False, {}),
    ("focal", "focal", True, {"gamma": 0.5}),
    ("hinge", "hinge", False, {}),
    ("hinge", "hinge", True, {"margin": 0.5}),
]


@pytest.mark.parametrize(("name", "loss", "soft", "options"), CORRECT)
def test_correct_backprops_pass(name, loss, soft, options):
    report = check_backprop(fn("correct", name, **options), loss, soft, **options)
    assert report.ok, report.to_table()
    assert report.codes == frozenset() and not report.diagnoses
    assert report.reference_check["ok"] and report.reference_check["max_rel_err"] < 1e-6
    for check in report.params.values():
        assert check.ok and check.status == "ok"
        assert check.max_entry_rel_err < 1e-9  # the tolerance (1e-7) has headroom
        assert check.expected_shape == check.got_shape


@pytest.mark.parametrize("seed", [1, 2, 3, 12345])
@pytest.mark.parametrize("name", ["backprop", "backprop_softmax_jacobian"])
def test_correct_backprops_pass_on_other_seeds(name, seed):
    assert check_backprop(fn("correct", name), seed=seed).ok


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("backprop_lists", "not_array", "is a list, not a numpy array"),
        ("backprop_mutating", "mutation", "modified X in place"),
        ("backprop_warning", "warning", "RuntimeWarning: divide by zero"),
    ],
)
def test_notes_do_not_fail_the_check(name, code, text):
    report = check_backprop(fn("correct", name))
    assert report.ok, report.to_table()
    assert [d.code for d in report.diagnoses] == [code]
    assert report.diagnoses[0].level == "note" and text in report.diagnoses[0].message
    assert "notes:" in report.to_table()


def test_the_checker_works_with_jax_x64_off():
    """The expected gradients are float64 even when the caller left JAX in 32-bit mode; a user's
    jax.numpy backprop then computes in float32, and the report says so."""
    with jax.enable_x64(False):
        assert check_backprop(fn("correct", "backprop")).ok
        report = check_backprop(fn("correct", "backprop_jax"))
    assert report.codes == {"dtype"}
    assert "agree to" in messages(report) and "the formulas look right" in messages(report)


# ------------------------------------------------------------------------------ buggy backprops

BUGGY = [  # (file, function, loss, the exact error codes, a phrase of the diagnosis)
    ("buggy", "sum_instead_of_mean", "ce", {"scale"}, "off by a factor of n, the batch size (7 on n7-small"),
    ("buggy", "sign_flip", "ce", {"sign"}, "the wrong sign"),
    ("buggy", "transposed_dW1", "ce", {"transposed"}, "(H, D) = (9, 12), expected (D, H) = (12, 9)"),
    ("buggy", "missing_key", "ce", {"missing_key"}, "no gradient for b2"),
    ("buggy", "extra_key", "ce", {"extra_key"}, "unexpected key(s) 'dZ2'"),
    ("buggy", "renamed_keys", "ce", {"missing_key", "extra_key"}, "'dW1' for 'W1'"),
    ("buggy", "no_tanh_derivative", "ce", {"activation", "layer"}, "tanh derivative was 1 (none at all)"),
    ("buggy", "a1_as_derivative", "ce", {"activation", "layer"}, "tanh derivative was A1 instead"),
    ("buggy", "only_first_sample", "ce", {"subset_of_samples"}, "only the first sample (index 0)"),
    ("buggy", "dropped_last_sample", "ce", {"subset_of_samples"}, "all but the last sample (index 6"),
    ("buggy", "dropped_last_sample_mean", "ce", {"subset_of_samples"}, "averaged over the 31 used"),
    (
        "buggy",
        "one_entry_off",
        "ce",
        {"few_entries", "layer"},
        "only entry [1, 2] (relative error 1.0e-04 on n1-small, 1.0e-04 on n7-small",
    ),
    ("buggy", "returns_nan", "ce", {"nonfinite"}, "b1 has 9 NaN"),
    ("buggy", "bias_not_summed", "ce", {"shape"}, "(n, H) = (32, 9), expected (H,) = (9,): the batch axis"),
    (
        "buggy",
        "bias_wrong_axis",
        "ce",
        {"shape"},
        "(n,) = (32,), expected (H,) = (9,): reduced over the wrong axis",
    ),
    ("buggy", "bias_keepdims", "ce", {"shape"}, "keepdims=True?); its values match once squeezed"),
    ("buggy", "w2_updated_first", "ce", {"early_update", "layer"}, "W2 - 0.1 * dW2"),
    ("buggy", "w2_from_inputs", "ce", {"shape"}, "X where the hidden activation A1 belongs"),
    ("buggy", "layer2_preactivation", "ce", {"layer_input", "layer"}, "W2 is wrong, W1, b1 and b2 are right"),
    ("buggy", "layer2_bias_summed", "ce", {"scale", "layer"}, "b2: off by a factor of n"),
    ("buggy", "float32_result", "ce", {"dtype"}, "the formulas look right"),
    ("buggy", "first_label_for_all", "ce", {"batch", "layer"}, "right on n1-small (one sample) but wrong on"),
    ("buggy", "zero_output_bias", "ce", {"zero", "layer"}, "b2: all zeros"),
    ("buggy", "scrambled", "ce", {"layer"}, "every parameter is wrong"),
    ("correct", "backprop", "mse", {"wrong_loss"}, "the gradients of the 'ce' loss, not of 'mse'"),
    ("correct", "backprop", "smooth_ce", {"wrong_loss"}, "the gradients of the 'ce' loss"),
    ("correct", "mse", "ce", {"wrong_loss"}, "the gradients of the 'mse' loss"),
    ("broken_returns", "returns_none", "ce", {"type"}, "returned None (a missing `return`?)"),
    ("broken_returns", "returns_list", "ce", {"type"}, "returned a list of 4 items"),
    ("broken_returns", "returns_tuple", "ce", {"type"}, "returned a tuple of 4 items"),
    ("broken_returns", "returns_string", "ce", {"type"}, "returned a str"),
    ("broken_returns", "dict_of_strings", "ce", {"type"}, "W1 is a str"),
    ("broken_returns", "ragged_lists", "ce", {"type"}, "W1 (a list of 2 items) is not an array"),
    ("broken_returns", "object_values", "ce", {"type"}, "dtype object"),
    ("broken_returns", "complex_values", "ce", {"type"}, "complex128"),
    ("broken_returns", "scalar_values", "ce", {"shape"}, "a single number where an array belongs"),
    ("broken_returns", "infinite", "ce", {"nonfinite"}, "W2 has 0 NaN and 1 inf"),
    ("broken_returns", "huge_values", "ce", {"layer"}, "every parameter is wrong"),
    ("broken_returns", "weird_keys", "ce", {"extra_key"}, "unexpected key(s) 0"),
]


@pytest.mark.parametrize(
    ("stem", "name", "loss", "codes", "text"), BUGGY, ids=[f"{b[1]}-{b[2]}" for b in BUGGY]
)
def test_buggy_backprops_fail_with_their_diagnosis(stem, name, loss, codes, text):
    report = check_backprop(fn(stem, name), loss)
    assert not report.ok
    assert report.codes == codes, report.to_table()
    assert text in messages(report), report.to_table()
    assert all(d.code in CODES and d.level in ("error", "note") for d in report.diagnoses)
    # the report renders and serialises whatever came back
    table = str(report)
    assert table == report.to_table() and "FAILED" in table
    assert all(f"[{c}]" in table for c in codes)
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["ok"] is False and set(data["params"]) == set(PARAMS)
    assert {d["code"] for d in data["diagnoses"] if d["level"] == "error"} == codes


def test_the_diagnoses_name_the_parameters_and_the_worst_entry():
    report = check_backprop(fn("buggy", "one_entry_off"))
    assert [k for k, c in report.params.items() if not c.ok] == ["W1"]
    assert report.params["W1"].worst[1] == (1, 2)
    assert report.params["W1"].max_entry_rel_err == pytest.approx(1e-4, rel=1e-3)
    layer = next(d for d in report.diagnoses if d.code == "layer")
    assert layer.params == ("W1",)

    report = check_backprop(fn("buggy", "no_tanh_derivative"))
    assert {d.code: d.params for d in report.diagnoses}["layer"] == ("W1", "b1")
    assert "W1 and b1 are wrong, W2 and b2 are right" in messages(report)
    assert report.params["W2"].ok and report.params["b2"].ok

    report = check_backprop(fn("buggy", "transposed_dW1"))
    assert report.params["W1"].status == "transposed" and report.params["W1"].got_shape == "(H, D)"
    assert report.params["W1"].max_abs_err is None  # nothing to compare


def test_the_batch_size_one_problem_tells_sum_from_mean():
    """A sum instead of a mean is right for n = 1 and off by exactly n elsewhere."""
    report = check_backprop(fn("buggy", "sum_instead_of_mean"))
    per = {p["problem"]: p for p in report.to_json()["params"]["W1"]["problems"]}
    assert per["n1-small"]["ok"] and not per["n7-small"]["ok"] and not per["n32-saturated"]["ok"]
    assert "right on n1-small" in messages(report)


@pytest.mark.parametrize("param", PARAMS)
def test_one_part_in_ten_thousand_in_the_smallest_entry_is_caught(param):
    """The tolerance's promise: any one entry off by 1e-4 relative fails, even the parameter's
    smallest entry (above 1e-8 of its largest); rounding-sized noise on every entry passes."""
    correct = fn("correct", "backprop")

    def smallest_entry_off(params, X, Y):
        g = correct(params, X, Y)
        v = np.abs(g[param])
        idx = np.unravel_index(np.argmin(np.where(v > 1e-8 * v.max(), v, np.inf)), v.shape)
        g[param][idx] *= 1 + 1e-4
        return g

    def rounding_noise(params, X, Y):
        g = correct(params, X, Y)
        rng = np.random.default_rng(0)
        return {k: v * (1 + 1e-13 * rng.standard_normal(v.shape)) for k, v in g.items()}

    report = check_backprop(smallest_entry_off)
    assert not report.ok and not report.params[param].ok
    assert all(report.params[k].ok for k in PARAMS if k != param)
    assert check_backprop(rounding_noise).ok


def test_inputs_are_copies():
    """A function that mutates its inputs cannot corrupt the check (it sees copies)."""
    report = check_backprop(fn("buggy", "w2_updated_first"))
    notes = [d for d in report.diagnoses if d.level == "note"]
    assert [d.code for d in notes] == ["mutation"] and "params['W2']" in notes[0].message
    again = check_backprop(fn("correct", "backprop"))  # the same problems: unchanged
    assert again.ok


def test_json_has_per_parameter_entries():
    data = check_backprop(fn("correct", "backprop")).to_json()
    json.dumps(data, allow_nan=False)
    assert data["ok"] is True and [p["name"] for p in data["problems"]] == [
        "n1-small",
        "n7-small",
        "n32-saturated",
    ]
    assert [p["n"] for p in data["problems"]] == [1, 7, 32]
    assert data["reference_check"]["ok"] and data["tolerance"]["rtol"] == 1e-7
    for name in PARAMS:
        entry = data["params"][name]
        assert entry["ok"] and entry["max_rel_err"] < 1e-12 and len(entry["problems"]) == 3
        assert set(entry) >= {"expected_shape", "got_shape", "max_abs_err", "max_entry_rel_err", "worst"}


# ---------------------------------------------------------------------------------- usage errors


def test_a_raising_function_is_a_usage_error_with_its_traceback():
    with pytest.raises(GradcheckUsageError, match=r"backprop\(params, X, Y\) raised ValueError") as info:
        check_backprop(fn("raises", "backprop"))
    tb = info.value.formatted_traceback
    assert "raises.py" in tb and "in helper" in tb and "gradcheck.py" not in tb


def test_exit_inside_the_function_is_a_usage_error():
    def leaves(params, X, Y):
        sys.exit(3)

    with pytest.raises(GradcheckUsageError, match="SystemExit"):
        check_backprop(leaves)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((42,), {}, "not callable"),
        ((print,), {"loss": "l2"}, "loss must be one of"),
        ((print,), {"temperature": 2.0}, "unknown loss option"),
        ((print,), {"gamma": "two"}, "gamma must be a finite number"),
        ((print,), {"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(GradcheckUsageError, match=match):
        check_backprop(*args, **kwargs)


# ------------------------------------------------------------------------------------------ CLI


def cli(target, isolate=False, **kwargs):
    """The CLI's run_gradcheck, in this process unless ``isolate`` (a child process costs seconds: the
    true child-process runs are test_cli_exit_0_when_right, test_cli_json_stays_parseable_when_the_file
    _prints and tests/test_gradcheck_conventions.py's isolation tests)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_gradcheck(target, out=out, err=err, isolate=isolate, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_cli_exit_0_when_right():
    path_before = list(sys.path)
    code, out, err = cli(f"{GALLERY / 'correct.py'}:backprop_per_sample", isolate=True)
    assert code == 0 and err == ""
    assert "gradcheck backprop_per_sample: loss 'ce', integer labels, seed 0: OK" in out
    assert sys.path == path_before  # the file's directory was on sys.path only while it ran
    assert not any(m.startswith("_mlpnn_gradcheck_") for m in sys.modules)


def test_cli_exit_1_when_wrong():
    code, out, err = cli(f"{GALLERY / 'buggy.py'}:sum_instead_of_mean", seed=3)
    assert code == 1 and err == ""
    assert "FAILED" in out and "[scale]" in out and "seed 3" in out


def test_cli_json():
    code, out, _ = cli(f"{GALLERY / 'correct.py'}:hinge", loss="hinge", soft_targets=True, as_json=True)
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["loss"] == "hinge" and data["soft_targets"]
    assert set(data["params"]) == set(PARAMS)
    code, out, _ = cli(f"{GALLERY / 'buggy.py'}:transposed_dW1", as_json=True)
    data = json.loads(out)
    assert code == 1 and data["params"]["W1"]["status"] == "transposed"
    assert [d["code"] for d in data["diagnoses"]] == ["transposed"]


def test_cli_imports_the_files_neighbours(tmp_path):
    (tmp_path / "student_helpers_0xf3.py").write_text("def scale(g, n):\n    return g / n\n")
    (tmp_path / "student.py").write_text(
        "import numpy as np\n"
        "from student_helpers_0xf3 import scale\n\n\n"
        "def bp(params, X, Y):\n"
        "    n = len(X)\n"
        "    A1 = np.tanh(X @ params['W1'] + params['b1'])\n"
        "    Z = A1 @ params['W2'] + params['b2']\n"
        "    P = np.exp(Z - Z.max(1, keepdims=True))\n"
        "    P /= P.sum(1, keepdims=True)\n"
        "    dZ2 = P - np.eye(P.shape[1])[Y]\n"
        "    dZ1 = dZ2 @ params['W2'].T * (1 - A1**2)\n"
        "    grads = {'W1': X.T @ dZ1, 'b1': dZ1.sum(0), 'W2': A1.T @ dZ2, 'b2': dZ2.sum(0)}\n"
        "    return {k: scale(g, n) for k, g in grads.items()}\n"
    )
    code, out, err = cli(f"{tmp_path / 'student.py'}:bp")
    assert code == 0, err + out
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("no_such_file.py:backprop", "no_such_file.py: no such file"),
        (f"{GALLERY / 'correct.py'}", "expected FILE.py:FUNCTION"),
        (f"{GALLERY / 'correct.py'}:", "expected FILE.py:FUNCTION"),
        (f"{GALLERY / 'correct.py'}:not-a-name", "is not a function name"),
        (f"{GALLERY}:backprop", "not a .py file"),
        (
            f"{GALLERY / 'correct.py'}:nope",
            "has no function 'nope' (functions defined there: _backward, backprop",
        ),
        (f"{GALLERY / 'raises.py'}:not_a_function", "raises.py:not_a_function is an int, not a function"),
    ],
)
def test_cli_usage_errors_exit_2(target, error):
    code, out, err = cli(target)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and error in err and err.count("\n") == 1


def test_cli_bad_loss_exits_2():
    code, out, err = cli(f"{GALLERY / 'correct.py'}:backprop", loss="l2")
    assert (
        code == 2
        and out == ""
        and err == "error: loss must be one of ce, kl, mse, smooth_ce, focal, hinge, bce, se; got 'l2'\n"
    )


def test_cli_never_runs_the_files_top_level_statements(tmp_path):
    """A file whose top level raises (or loads data) is not run: only the function and what it uses load."""
    code, out, err = cli(f"{GALLERY / 'broken_import.py'}:backprop")
    assert code == 2 and out == "" and err == "error: broken_import.py has no function 'backprop'\n"
    source = (GALLERY / "correct.py").read_text()
    (tmp_path / "gallery_common.py").write_text((GALLERY / "gallery_common.py").read_text())
    (tmp_path / "loads_data.py").write_text(
        f"{source}\nimport numpy\nDATA = numpy.loadtxt('/no/such/file.csv')\nraise RuntimeError('top "
        "level')\n"
    )
    code, out, err = cli(f"{tmp_path / 'loads_data.py'}:backprop")
    assert code == 0, err + out
    assert (
        "not loaded from your file" in out and "DATA = numpy.loadtxt" in out and "raise RuntimeError" in out
    )


def test_cli_function_that_raises_exits_2_with_its_traceback():
    code, out, err = cli(f"{GALLERY / 'raises.py'}:backprop")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in helper" in err and "return np.ones(3) @ X" in err
    assert lines[-1].startswith("error: backprop(params, X, Y) raised ValueError: ")


def test_cli_json_stays_parseable_when_the_file_prints(tmp_path):
    source = (GALLERY / "correct.py").read_text()
    (tmp_path / "gallery_common.py").write_text((GALLERY / "gallery_common.py").read_text())
    (tmp_path / "chatty.py").write_text(
        f"print('loading')\n{source}\n\n"
        "def talkative(params, X, Y):\n    print('computing')\n    return backprop(params, X, Y)\n"
    )
    code, out, err = cli(f"{tmp_path / 'chatty.py'}:talkative", as_json=True, isolate=True)
    assert code == 0 and json.loads(out)["ok"]
    assert "computing" in err and "loading" not in err  # the top level never runs
    assert any(d["code"] == "skipped" and "print(" in d["message"] for d in json.loads(out)["diagnoses"])


def test_cli_syntax_error_exits_2(tmp_path):
    (tmp_path / "typo.py").write_text("def backprop(params, X, Y)\n    return {}\n")
    code, out, err = cli(f"{tmp_path / 'typo.py'}:backprop")
    assert code == 2 and out == ""
    assert (
        err == "error: typo.py: backprop (line 1) is not valid Python 3: SyntaxError: expected ':' (line 1: "
        "'def backprop(params, X, Y)')\n"
    )
