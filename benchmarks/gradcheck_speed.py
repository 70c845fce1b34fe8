"""How long one ``mlpnn-jax gradcheck`` takes, beside the start-up of JAX itself (issue 18).

    python benchmarks/gradcheck_speed.py [--repeats 5] [--json FILE]

Times, as whole processes started alternately ``--repeats`` times: ``python -c "import jax"``, the whole
command ``mlpnn-jax gradcheck tests/gallery/correct.py:backprop`` with a cold compilation cache (a fresh
empty folder each time) and with a warm one (a folder one untimed check filled), and the command's
parent alone (a missing file: no child is started). Prints the medians and the ratios to JAX's start-up;
exits 1 if the warm ratio is over the goal (1.5). Every check must exit 0 with the same report. On a
shared machine other jobs slow every figure: the load average after the run is printed too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = "tests/gallery/correct.py:backprop"
GOAL = 1.5  # the whole warm check / JAX's start-up
# JAX's cache settings of the caller's environment would change what the children compile
_DROPPED = ("MLPNN_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_COMPILATION_CACHE")


def env(cache=""):
    """The children's environment: this checkout first, ``cache`` as the gradcheck's cache folder."""
    kept = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    return {**kept, "PYTHONPATH": str(ROOT), "MLPNN_JAX_CACHE_DIR": str(cache)}


def timed(command, cache=""):
    """(wall seconds, exit status, stdout) of ``command`` as a process of its own."""
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env(cache), capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc.returncode, proc.stdout


def gradcheck(target=TARGET):
    return [sys.executable, "-m", "mlpnn_jax", "gradcheck", target]


def cpu():
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(repeats, folder):
    """{kind: [seconds, ...]} of the alternating runs; raises if a check's exit or report differs."""
    warm = folder / "warm"
    _, code, expected = timed(gradcheck(), warm)  # untimed: fills the warm cache
    if code != 0:
        raise SystemExit(f"gradcheck {TARGET} exited {code}: the benchmark needs a passing check")
    times = {"import_jax": [], "cold": [], "warm": [], "parent_alone": []}
    for i in range(repeats):
        times["import_jax"].append(timed([sys.executable, "-c", "import jax"])[0])
        for kind, cache in (("cold", folder / f"cold{i}"), ("warm", warm)):
            seconds, code, out = timed(gradcheck(), cache)
            if (code, out) != (0, expected):
                raise SystemExit(f"the {kind} check of run {i} exited {code} or printed another report")
            times[kind].append(seconds)
        times["parent_alone"].append(timed(gradcheck("missing.py:backprop"))[0])
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind, alternating (default 5)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="gradcheck-speed-") as tmp:
        times = run(args.repeats, Path(tmp))
    medians = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu()}, {len(os.sched_getaffinity(0))} cores",
        "python": platform.python_version(),
        "repeats": args.repeats,
        **{f"{k}_s": round(v, 3) for k, v in medians.items()},
        "cold_ratio": round(medians["cold"] / medians["import_jax"], 3),
        "warm_ratio": round(medians["warm"] / medians["import_jax"], 3),
        "goal_warm_ratio": GOAL,
        "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "load_average_1min_after": round(os.getloadavg()[0], 2),  # other jobs on the machine slow it
    }
    for k, v in figures.items():
        print(f"{k:>24}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["warm_ratio"] <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
