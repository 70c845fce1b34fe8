"""The README's code runs as written."""

import re
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
