"""A preset's test accuracy over seeds: `mlpnn-jax train --preset NAME` (default frontier), as a user runs it.

    python benchmarks/frontier.py [--preset NAME] [--seeds 0 1 2] [--json FILE] [--out DIR] [-- TRAIN FLAGS]

Each seed is one whole `python -m mlpnn_jax train --preset NAME --seed S` process (this checkout's
package, start-up and data loading included). The figure reported is the LAST epoch's test accuracy of a
recipe fixed in advance (not the best epoch), with the last epoch's validation accuracy when the run holds
a validation set out. Prints a Markdown table (per seed, then mean and spread) and writes the same as JSON.
Extra train flags after `--` (e.g. `-- --epochs 1` for a smoke test) go to every run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, like the runs below

from mlpnn_jax.checkpoint import write_json  # noqa: E402
from mlpnn_jax.config import PRESETS  # noqa: E402


def run_seed(preset, seed, out, extra):
    """The last metrics row of one `train --preset PRESET` process, with its wall time."""
    # -P: not the current directory's mlpnn_jax (another checkout) but this one's, from PYTHONPATH
    argv = [sys.executable, "-P", "-m", "mlpnn_jax", "train", "--preset", preset, "--seed", str(seed)]
    argv += ["--out", str(out), "--overwrite", *extra]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # no empty entry: it means "."
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"seed {seed}: train exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    return {
        "seed": seed,
        "epochs": last["epoch"],
        "test_accuracy": last["test_accuracy"],
        "validation_accuracy": last.get("validation_accuracy"),
        "train_seconds": last["elapsed"],
        "process_seconds": wall,
    }


def spread(values):
    """{mean, min, max, std} of a list of numbers (std 0 for one)."""
    return {
        "mean": statistics.mean(values),
        "min": min(values),
        "max": max(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def table(runs, summary):
    """The Markdown table of the runs and their summary."""
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines = ["| seed | epochs | test accuracy (last epoch) | validation accuracy | seconds (process) |"]
    lines.append("|---|---|---|---|---|")
    for r in runs:
        lines.append(
            f"| {r['seed']} | {r['epochs']} | {pct(r['test_accuracy'])} | {pct(r['validation_accuracy'])}"
            f" | {r['process_seconds']:.1f} |"
        )
    t, s = summary["test_accuracy"], summary["process_seconds"]
    lines.append(
        f"| mean (min-max, std) | | {pct(t['mean'])} ({pct(t['min'])}-{pct(t['max'])}, {100 * t['std']:.2f})"
        f" | {_val_cell(summary)} | {s['mean']:.1f} ({s['min']:.1f}-{s['max']:.1f}) |"
    )
    return "\n".join(lines)


def _val_cell(summary):
    v = summary.get("validation_accuracy")
    return "-" if v is None else f"{100 * v['mean']:.2f}% ({100 * v['min']:.2f}-{100 * v['max']:.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="frontier", choices=PRESETS, help="the preset to run (frontier)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--out", help="keep the run directories here (default: a temporary directory)")
    parser.add_argument("extra", nargs="*", help="train flags for every run, after --")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        runs = []
        for seed in args.seeds:
            runs.append(run_seed(args.preset, seed, root / f"{args.preset}-seed{seed}", args.extra))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {k: spread([r[k] for r in runs]) for k in ("test_accuracy", "process_seconds", "train_seconds")}
    if all(r["validation_accuracy"] is not None for r in runs):
        summary["validation_accuracy"] = spread([r["validation_accuracy"] for r in runs])
    print(table(runs, summary))
    command = f"mlpnn-jax train --preset {args.preset}"
    result = {"command": command, "extra": args.extra, "runs": runs, **summary}
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
