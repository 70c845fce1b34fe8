"""gradcheck on the third gallery (tests/gallery_third/, written by a helper who never saw the tool):
each case as its MANIFEST.json names it, with only PATH:NAME and the flags a user would pass.

The families are the code the checker once could not run: a CS231n package with its layer modules,
layers assembled by the file's top-level ``nn.add(...)``, the data passed to the constructor with an
in-place update at no rate, plain-Python neuron dicts with the bias last, a bias column of 784-300-10
arrays with a decaying step, an error-signal backward applied by the file's own update, a video
series' notebooks (one with Python 2 prints) and an nbformat 3 notebook. The labels are proved by
finite differences of each author's own loss (tests/test_gallery_third_truth.py).
"""

import json
from pathlib import Path

import pytest
from test_gradcheck_wild import request

from mlpnn_jax.gradcheck.isolate import run_file

THIRD = Path(__file__).parent / "gallery_third"
CASES = json.loads((THIRD / "MANIFEST.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["path"] for c in CASES])
def test_third_gallery_backprops_are_judged_right(case):
    outcome = run_file(request(case, THIRD))
    assert outcome.code == case["expected_exit"], outcome.error or outcome.report
    first = outcome.report.splitlines()[0]
    assert first.startswith("called ") and "params are" in first, first
