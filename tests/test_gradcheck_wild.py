"""gradcheck on backprops written as people publish them (tests/gallery_wild/, from the gallery helper).

Each MANIFEST.json case names a file, its target (PATH:NAME) and the flags a user would pass, and the
exit code the tool must give: 0 for correct code, 1 for a bug. The report must start by saying what it
inferred (how it called the code, and where the params came from). The cases run in-process through
``isolate.run_file``, the child process's whole job (loading, probing, checking, formatting), with the
Request the CLI builds: no child process per case (tests/test_gradcheck.py runs the true CLI).
"""

import json
from pathlib import Path

import pytest

from mlpnn_jax.gradcheck.isolate import Request, run_file

WILD = Path(__file__).parent / "gallery_wild"
MANIFEST = WILD / "MANIFEST.json"
CASES = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else []
_FLAGS = {"--forward": "forward", "--init": "init", "--loss": "loss"}


def request(case, root=WILD):
    """The Request the CLI builds for a MANIFEST case (its PATH:TARGET and flags)."""
    flags, kwargs = list(case["flags"]), {}
    while flags:
        flag, value = flags.pop(0), flags.pop(0)
        kwargs[_FLAGS[flag]] = value
    return Request(target=f"{root / case['path']}:{case['target']}", **kwargs)


@pytest.mark.skipif(not CASES, reason="tests/gallery_wild/MANIFEST.json is not there")
@pytest.mark.parametrize("case", CASES, ids=[c["path"] for c in CASES])
def test_wild_backprops_are_judged_right(case):
    outcome = run_file(request(case))
    assert outcome.code == case["expected_exit"], outcome.error or outcome.report
    first = outcome.report.splitlines()[0]
    assert first.startswith("called ") and "params are" in first, first
