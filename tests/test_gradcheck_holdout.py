"""gradcheck on the holdout gallery (tests/gallery_holdout/): backprops in the exact conventions of real
published code (deeplearning.ai, Coursera ex4, CS231n, network2.py, ...), each correct and with a bug.

Each case must get its MANIFEST exit code (0 correct, 1 buggy) and a report that starts with what was
inferred; run in-process through ``isolate.run_file`` with the Request the CLI builds. A case the tool
cannot check yet is listed in ``NOT_YET``: it must end in exit 2 with a message that tells the user
what to do, never in a verdict (a wrong verdict is far worse than no verdict).
"""

import json
from pathlib import Path

import pytest
from test_gradcheck_wild import request

from mlpnn_jax.gradcheck.isolate import run_file

HOLDOUT = Path(__file__).parent / "gallery_holdout"
MANIFEST = HOLDOUT / "MANIFEST.json"
CASES = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else []
# Coursera ex4: one unrolled parameter vector (bias as column 0 of each Theta) and the layer sizes
# passed as arguments; the checker cannot pass either yet, so it says how to wrap the function.
NOT_YET = {
    "ex4_unrolled/exercise4.py": "write a wrapper",
    "ex4_unrolled/exercise4_buggy.py": "write a wrapper",
}


@pytest.mark.skipif(not CASES, reason="tests/gallery_holdout/MANIFEST.json is not there")
@pytest.mark.parametrize("case", CASES, ids=[c["path"] for c in CASES])
def test_holdout_backprops_are_judged_right_or_not_at_all(case):
    outcome = run_file(request(case, HOLDOUT))
    if case["path"] in NOT_YET:
        assert outcome.code == 2 and outcome.report == "", outcome.report
        assert NOT_YET[case["path"]] in outcome.error and "\n" not in outcome.error, outcome.error
        return
    assert outcome.code == case["expected_exit"], outcome.error or outcome.report
    first = outcome.report.splitlines()[0]
    assert first.startswith("called ") and "params are" in first, first
