"""The README's code runs as written."""

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_block(heading):
    """The first ```python block after the README's ``heading``."""
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(heading) :], re.S)[1]


@pytest.mark.slow
def test_python_api_block_runs_as_written(monkeypatch):
    monkeypatch.chdir(REPO)  # its file paths are the repository's
    namespace = {}
    exec(compile(python_block("## Python API"), "README.md", "exec"), namespace)
    assert namespace["result"].history[-1]["test_accuracy"] > 0.95  # two epochs of the default recipe
    assert namespace["report"].ok and namespace["method"].ok  # the stand-in and the gallery's method
    assert namespace["logits"].shape == (10000, 10) and set(namespace["grads"]) == {"W1", "b1", "W2", "b2"}


def gradcheck_rows():
    """(command, [fragments]) of each row of the table under "## Checking your own backprop"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Checking your own backprop") :]
    table = section[section.index("| your code |") :].split("\n\n", 1)[0].splitlines()[2:]
    rows = []
    for line in table:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        command = re.fullmatch(r"`mlpnn-jax gradcheck (.*)`", cells[1])[1]
        rows.append((command, re.findall(r"`([^`]*)`", cells[2])))
    return rows


ROWS = gradcheck_rows()


@pytest.mark.parametrize(("command", "fragments"), ROWS, ids=[c.split(":")[0] for c, _ in ROWS])
def test_each_row_of_the_gradcheck_table_is_what_the_check_says(command, fragments, monkeypatch):
    from mlpnn_jax.gradcheck.isolate import Request, run_file

    monkeypatch.chdir(REPO)
    target, *flags = shlex.split(command)
    options = dict(zip(flags[::2], flags[1::2], strict=True))
    names = {"--forward": "forward", "--init": "init", "--loss": "loss"}
    outcome = run_file(Request(target=target, **{names[k]: v for k, v in options.items()}))
    assert outcome.code == 0, outcome.error or outcome.report
    first = outcome.report.splitlines()[0]
    for fragment in fragments:
        assert fragment in first, f"{fragment!r} not in {first!r}"
