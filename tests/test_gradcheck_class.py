"""gradcheck for teachers: a class of submissions through the real ``mlpnn-jax gradcheck`` command.

The class is written here, one folder per student, as a course's ``mlp1.py:loss_and_gradients(x, y,
params)`` with ``create_classifier`` is: two right (in different styles), two with a bug, one that does
not parse, one that hangs, one that calls ``os._exit``, one that misspells the function, and a notebook
without the cell. Every file is checked in its own child process; the summaries, the exit code and the
pages are read back. The pages are rendered in headless Chromium with test_report's probe.
"""

import contextlib
import csv
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from test_report import needs_chromium, probe

from mlpnn_jax.gradcheck import classroom
from mlpnn_jax.gradcheck.isolate import Outcome

INIT = """
import numpy as np


def create_classifier(in_dim, hid_dim, out_dim):
    W = np.random.randn(in_dim, hid_dim)
    b = np.zeros(hid_dim)
    U = np.random.randn(hid_dim, out_dim)
    b_tag = np.zeros(out_dim)
    return [W, b, U, b_tag]
"""
RIGHT = (
    INIT
    + """

def loss_and_gradients(x, y, params):
    W, b, U, b_tag = params
    h = np.tanh(x @ W + b)
    z = h @ U + b_tag
    p = np.exp(z - z.max())
    p /= p.sum()
    dz = p.copy()
    dz[y] -= 1
    dh = (U @ dz) * (1 - h**2)
    return -np.log(p[y]), [np.outer(x, dh), dh, np.outer(h, dz), dz]
"""
)
RIGHT_LOGSUMEXP = (
    INIT
    + """

def log_softmax(z):
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


def loss_and_gradients(x, y, params):
    W, b, U, b_tag = params
    a = np.tanh(W.T.dot(x) + b)
    logp = log_softmax(U.T.dot(a) + b_tag)
    onehot = np.eye(len(b_tag))[y]
    gz = np.exp(logp) - onehot
    ga = U.dot(gz) * (1.0 - a * a)
    return -logp[y], (x[:, None] * ga[None, :], ga, a[:, None] * gz[None, :], gz)
"""
)
CLASS = {
    "ada/mlp1.py": RIGHT,
    "bob/mlp1.py": RIGHT_LOGSUMEXP,
    "cy/mlp1.py": RIGHT.replace("dh = (U @ dz) * (1 - h**2)", "dh = U @ dz"),  # no tanh derivative
    "cyd/mlp1.py": RIGHT.replace("* (1 - h**2)", "* (1 - h**2) * (np.arange(len(h)) > 0)"),  # unit 0 left out
    "dee/mlp1.py": INIT + "\n\ndef loss_and_gradients(x, y, params)\n    return 0, params\n",
    "eve/mlp1.py": INIT + "\n\ndef loss_and_gradients(x, y, params):\n    while True:\n        pass\n",
    "fay/mlp1.py": "import os\n" + INIT + "\n\ndef loss_and_gradients(x, y, params):\n    os._exit(3)\n",
    "gus/mlp1.py": RIGHT.replace("def loss_and_gradients(", "def loss_and_gradient("),
}
TIMEOUT = 30  # s per file: the hanging one's; the others take a few seconds each
# path -> (verdict, exit code, what its message says)
EXPECTED = {
    "ada/mlp1.py": ("ok", 0, "tanh hidden, softmax output, cross-entropy"),
    "bob/mlp1.py": ("ok", 0, "tanh hidden, softmax output, cross-entropy"),
    "cy/mlp1.py": ("failed", 1, "tanh derivative was 1"),
    "cyd/mlp1.py": ("failed", 1, "only entry [0]"),
    "dee/mlp1.py": ("not checked", 2, "is not valid Python 3"),
    "eve/mlp1.py": ("not checked", 2, f"did not finish within {TIMEOUT} s"),
    "fay/mlp1.py": ("not checked", 2, "(exit status 3) before the check finished"),
    "gus/mlp1.py": ("not checked", 2, "has no function 'loss_and_gradients'"),
    "nb/mlp1.ipynb": ("not checked", 2, "has no function 'loss_and_gradients'"),
}


def write_class(root):
    for rel, text in CLASS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": INIT}]
    (root / "nb").mkdir()
    (root / "nb/mlp1.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class checked twice at once by the real command (a .json and a .csv summary):
    {suffix: (the summary's path, the process)}."""
    root = tmp_path_factory.mktemp("class")
    write_class(root / "submissions")
    targets = ["submissions/*/mlp1.py:loss_and_gradients", "submissions/nb/mlp1.ipynb:loss_and_gradients"]
    runs = {}
    for suffix in (".json", ".csv"):
        summary = root / f"grades{suffix}"
        command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", *targets, "--init", "create_classifier"]
        command += ["--summary", str(summary), "--timeout", str(TIMEOUT), "--jobs", "2"]
        proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[suffix] = summary, proc
    return {
        s: (summary, *proc.communicate(timeout=600), proc.returncode) for s, (summary, proc) in runs.items()
    }


def test_the_command_prints_one_line_per_file_then_the_total_and_exits_2(graded):
    for _, stdout, stderr, code in graded.values():
        assert code == 2, stderr
        lines = stdout.splitlines()
        assert lines[-1] == "2 ok, 2 failed, 5 not checked"
        assert len(lines) == len(EXPECTED) + 1
        for rel, (verdict, _, said) in EXPECTED.items():
            (mine,) = [line for line in lines if line.startswith(f"submissions/{rel} ")]
            assert re.search(rf"\s{verdict}\s", mine) and said in mine
        assert stderr == ""  # no progress bar off a terminal, and the students' own output is not shown


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_every_row_of_the_summary(graded, suffix):
    summary = graded[suffix][0]
    text = summary.read_text()
    rows = json.loads(text) if suffix == ".json" else list(csv.DictReader(text.splitlines()))
    assert [r["path"] for r in rows] == [f"submissions/{rel}" for rel in sorted(EXPECTED)]
    for row in rows:
        verdict, code, said = EXPECTED[row["path"].removeprefix("submissions/")]
        assert row["verdict"] == verdict and int(row["exit_code"]) == code and said in row["message"]
        assert 0 <= float(row["seconds"]) < 600
        assert (summary.parent / row["page"]).is_file()
        if suffix == ".csv":
            assert set(row) == set(classroom.COLUMNS)
            continue
        assert set(row) == {*classroom.COLUMNS, "params"}
        assert set(row["params"]) == (set() if code == 2 else {"W", "b", "U", "b_tag"})
        for name, p in row["params"].items():
            wrong = row["verdict"] == "failed" and name in ("W", "b")
            assert p["ok"] is not wrong and (p["max_entry_rel_err"] > 1e-7) is wrong


def test_a_progress_bar_on_a_terminal(tmp_path):
    write_class(tmp_path)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns for the bar
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", "ada/mlp1.py:loss_and_gradients"]
    command += ["dee/mlp1.py:loss_and_gradients", "--init", "create_classifier"]
    with os.fdopen(leader, "rb", buffering=0) as terminal:
        done = subprocess.run(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower, timeout=300)
        os.close(follower)
        drawn = b""
        with contextlib.suppress(OSError):  # EIO: everything the terminal got has been read
            while chunk := terminal.read(65536):
                drawn += chunk
    drawn = drawn.decode()
    assert done.returncode == 2 and done.stdout.decode().endswith("1 ok, 0 failed, 1 not checked\n")
    assert "gradcheck: 100%" in drawn and "2/2" in drawn


def test_a_directory_means_its_files_that_define_the_name(tmp_path):
    write_class(tmp_path)
    (tmp_path / "ada/utils.py").write_text("def softmax(z):\n    return z\n")  # a helper: not a submission
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden/mlp1.py").write_text(RIGHT)
    found = classroom.expand([f"{tmp_path}:loss_and_gradients"])
    # gus misspells it and the notebook lacks it: not submissions of this function; dee's does not parse
    names = ["ada", "bob", "cy", "cyd", "dee", "eve", "fay"]
    assert found == [f"{tmp_path / n / 'mlp1.py'}:loss_and_gradients" for n in names]
    assert classroom.expand([found[0], f"{tmp_path}/a*/mlp1.py:loss_and_gradients"]) == found[:1]
    with pytest.raises(classroom.ClassError, match=r"no \.py or \.ipynb file there defines"):
        classroom.expand([f"{tmp_path}/z*/mlp1.py:loss_and_gradients"])


@pytest.mark.parametrize(
    ("codes", "worst", "total"),
    [
        ((0, 0), 0, "2 ok, 0 failed, 0 not checked"),
        ((1, 0), 1, "1 ok, 1 failed, 0 not checked"),
        ((0, 2, 1), 2, "1 ok, 1 failed, 1 not checked"),
    ],
)
def test_the_exit_code_is_the_worst_files(codes, worst, total):
    rows = [classroom.Row(f"{i}.py", "f", classroom.VERDICTS[c], c, "", 0.0, {}) for i, c in enumerate(codes)]
    assert classroom.exit_code(rows) == worst and classroom.total(rows) == total


def test_a_summary_that_cannot_be_written_is_one_line(tmp_path):
    write_class(tmp_path)
    (tmp_path / "grades-pages").write_text("mine")  # a file where the pages' folder belongs
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", "dee/mlp1.py:loss_and_gradients"]
    command += ["gus/mlp1.py:loss_and_gradients", "--summary", "grades.json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout.endswith("0 ok, 0 failed, 2 not checked\n")
    assert done.stderr.startswith("mlpnn-jax gradcheck: error: could not write grades.json and its pages")
    assert done.stderr.count("\n") == 1 and (tmp_path / "grades-pages").read_text() == "mine"
    assert not (tmp_path / "grades.json").exists()


def test_each_target_gets_its_own_page_name_and_label(tmp_path):
    targets = [f"{tmp_path}/ada/mlp1.py:f", f"{tmp_path}/ada/mlp1.py:g", f"{tmp_path}/bob/x/mlp1.ipynb:f"]
    rows = [classroom.row(t, Outcome(2, error="e"), 0.0) for t in targets]
    assert classroom.page_names(rows) == [
        "ada__mlp1.py-f.html",
        "ada__mlp1.py-g.html",
        "bob__x__mlp1.ipynb.html",
    ]
    assert classroom.labels(targets) == targets  # several functions: FILE:NAME
    assert classroom.labels(targets[:1]) == [f"{tmp_path}/ada/mlp1.py"]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--json"], "--json is for one check"),
        (["--summary", "grades.txt"], "must end in .json or .csv"),
        (["--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_class_options_that_cannot_work_are_one_line(tmp_path, extra, says):
    write_class(tmp_path)
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", f"{tmp_path}/*/mlp1.py:loss_and_gradients"]
    done = subprocess.run([*command, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and says in done.stderr


def test_the_buggy_students_page_says_where(graded):
    summary = graded[".json"][0]
    (row,) = [r for r in json.loads(summary.read_text()) if r["path"].endswith("cy/mlp1.py")]
    text = (summary.parent / row["page"]).read_text()
    assert text.count('<img class="heat"') == 4
    assert "Every entry wrong (20 of 20 entries wrong)" in text  # W (D, H) on n7-small
    assert "tanh derivative was 1" in text and "dW = X.T @ dZ1" in text and "(D, H) = (5, 4)" in text
    assert "dZ1 = (dZ2 @ W2.T) * (1 - A1**2)" in text
    (row,) = [r for r in json.loads(summary.read_text()) if r["path"].endswith("cyd/mlp1.py")]
    text = (summary.parent / row["page"]).read_text()
    assert "Column 0 of W is wrong, the rest is right: a column of W belongs to one hidden unit" in text
    assert "1 of 4 entries wrong" in text  # b


@needs_chromium
@pytest.mark.parametrize("student", ["cy", "eve"])
def test_a_page_renders_its_heat_maps_and_requests_nothing(graded, student, tmp_path):
    summary = graded[".json"][0]
    (row,) = [r for r in json.loads(summary.read_text()) if r["path"].endswith(f"{student}/mlp1.py")]
    text = (summary.parent / row["page"]).read_text()
    images, violations, requested = probe(text, tmp_path)
    assert len(images) == (4 if student == "cy" else 0) and all(images)
    assert violations == [] and requested == []


@needs_chromium
def test_html_for_one_check(tmp_path):
    write_class(tmp_path)
    page = tmp_path / "cy.html"
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", "cy/mlp1.py:loss_and_gradients"]
    command += ["--init", "create_classifier", "--html", str(page)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "gradcheck loss_and_gradients: loss 'ce'" in done.stdout  # the table
    images, violations, requested = probe(page.read_text(), tmp_path)
    assert len(images) == 4 and all(images) and violations == [] and requested == []
