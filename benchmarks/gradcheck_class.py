"""How long ``mlpnn-jax gradcheck`` takes for a class: 40 small submissions against one check.

    python benchmarks/gradcheck_class.py [--students 40] [--repeats 3] [--json FILE]

Writes a class of small ``mlp1.py:loss_and_gradients(x, y, params)`` files (right ones and three kinds
of bug, in turn) to a temporary folder and times, as whole processes: the command's start-up (a file
without the function, which needs no child), one check (median of ``--repeats``), and the class with the
default ``--jobs`` (one per core). The goal is start-up + (students / cores) x (one check - start-up).
On a shared machine other jobs take cores from it: the load average after the run is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = """import numpy as np


def create_classifier(in_dim, hid_dim, out_dim):
    W = np.random.randn(in_dim, hid_dim)
    b = np.zeros(hid_dim)
    U = np.random.randn(hid_dim, out_dim)
    b_tag = np.zeros(out_dim)
    return [W, b, U, b_tag]


def loss_and_gradients(x, y, params):
    W, b, U, b_tag = params
    h = np.tanh(x @ W + b)
    z = h @ U + b_tag
    p = np.exp(z - z.max())
    p /= p.sum()
    dz = p.copy()
    dz[y] -= 1
    dh = DH
    return -np.log(p[y]), [np.outer(x, dh), dh, np.outer(h, dz), GB_TAG]
"""
VARIANTS = (  # (dh, the gradient of b_tag): right, no tanh derivative, sign flip, a dropped row
    ("(U @ dz) * (1 - h**2)", "dz"),
    ("U @ dz", "dz"),
    ("(U @ dz) * (1 - h**2)", "-dz"),
    ("(U @ dz) * (1 - h**2) * (np.arange(len(h)) > 0)", "dz"),
)
NAME = "loss_and_gradients"
TARGET = f"mlp1.py:{NAME}"


def write_class(folder, students):
    """students folders student00/mlp1.py, ... cycling through VARIANTS."""
    for i in range(students):
        dh, gb = VARIANTS[i % len(VARIANTS)]
        (folder / f"student{i:02d}").mkdir()
        (folder / f"student{i:02d}/mlp1.py").write_text(TEMPLATE.replace("DH", dh).replace("GB_TAG", gb))


def timed(*args, cwd):
    """(wall, CPU) seconds of ``mlpnn-jax gradcheck ARGS`` as a process of its own, its children's
    CPU time included."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", *args, "--init", "create_classifier"]
    before, start = _cpu(), time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start, _cpu() - before


def _cpu():
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _median(runs):
    """The median (wall, CPU) of several (wall, CPU) runs, each taken separately."""
    walls, cpus = zip(*runs, strict=True)
    return statistics.median(walls), statistics.median(cpus)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the start-up and of one check")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="gradcheck-class-") as tmp:
        folder = Path(tmp)
        write_class(folder, args.students)
        (folder / "empty.py").write_text("X = 1\n")
        start, start_cpu = _median(timed(f"empty.py:{NAME}", cwd=folder) for _ in range(args.repeats))
        one, one_cpu = _median(timed(f"student00/{TARGET}", cwd=folder) for _ in range(args.repeats))
        whole, whole_cpu = timed(f"student*/{TARGET}", "--summary", "grades.json", cwd=folder)
        verdicts = [r["verdict"] for r in json.loads((folder / "grades.json").read_text())]
    goal = start + args.students / cores * (one - start)
    figures = {
        "students": args.students,
        "cores": cores,
        "start_up_s": round(start, 2),
        "one_check_s": round(one, 2),
        "class_s": round(whole, 2),
        "goal_s": round(goal, 2),
        "class_over_goal": round(whole / goal, 3),
        # one check alone keeps more than one core busy (JAX's import and XLA's threads): the bound for
        # the class is its CPU time spread over the cores
        "start_up_cpu_s": round(start_cpu, 2),
        "one_check_cpu_s": round(one_cpu, 2),
        "class_cpu_s": round(whole_cpu, 2),
        "cpu_bound_s": round(start + args.students / cores * (one_cpu - start_cpu), 2),
        "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "load_average_1min_after": round(os.getloadavg()[0], 2),  # other jobs on the machine slow it
    }
    for k, v in figures.items():
        print(f"{k:>16}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
