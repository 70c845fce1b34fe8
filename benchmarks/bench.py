"""Benchmarks of mlpnn-jax against the notebook and a plain JAX baseline, side by side in one run.

What it measures (every figure in the table is measured by this run; nothing is hard-coded):

1. Seconds per notebook epoch: a 60000-sample full-batch forward + backward + update of 784-1000-10,
   plus the 10000-sample test forward, exactly what one epoch of the notebook does, for
   (a) the numpy reference in float64 (``reference.run_notebook``, the notebook itself; 1 warm-up
   epoch, then the median of a few timed epochs), (b) JAX float64 and (c) JAX float32
   (``mlpnn_jax.reproduce.run_notebook``: one compiling call of k epochs, then the median of repeated
   k-epoch calls, each one jitted ``lax.scan``). Each with its achieved GFLOP/s (the GEMMs an epoch
   needs: 2 forward, 3 backward, 2 test-forward), the fraction of the measured GEMM peak of the same
   library and dtype (a large jitted matmul in JAX, ``numpy.dot`` on OpenBLAS), and the projected
   time of the notebook's 2000 epochs.
2. Whole-process wall time of ``mlpnn-jax train --target-accuracy 0.98`` beside the project's own plain
   JAX baseline ``benchmarks/baseline.py --target 0.98 --epochs 30`` (adam 1e-3, batch 128: see its
   docstring), interleaved, N repeats, with the epoch at which each reached 98%, and the ratio ours /
   baseline (goal <= 0.25). Both load the bundled MNIST the same way; untimed runs warm the page caches.
   Twice: cold, JAX's persistent compilation cache off for both (mlpnn-jax's own, MLPNN_JAX_CACHE_DIR,
   set empty; the variables that would turn on JAX's removed), as a first run; and warm, each with a
   cache of its own filled by an untimed run (the baseline through JAX's variables), as every run after.
3. Peak resident memory (max RSS, ``/usr/bin/time -f %M``, else ``getrusage(RUSAGE_CHILDREN)`` in a
   fresh wrapper process) of ``mlpnn-jax reproduce --loss ce --epochs 2 --dtype float64`` (goal < 3 GB)
   and of ``mlpnn-jax train --epochs 1`` (goal < 1.5 GB). MB and GB are 10**6 and 10**9 bytes.

How to run (from the repository root; about 4 minutes on 2 cores):

    python benchmarks/bench.py                      # prints the environment and the tables
    python benchmarks/bench.py --json results.json  # also saves every figure (written atomically)
    python benchmarks/bench.py --quick              # smoke mode: tiny sizes and repeats, < 60 s;
                                                    # its figures show that it runs, not how fast
    python benchmarks/bench.py --repeats 5          # more interleaved train/baseline pairs

Progress goes to stderr, the tables to stdout. Run it on a quiet machine: other processes inflate
every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import render

from mlpnn_jax.devices import CACHE_ENV, cache_environment

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "benchmarks" / "baseline.py"

# The GEMMs of one notebook epoch (n train, m test, D-H-K): forward X@W1 and A1@W2; backward
# dW2 = A1.T@dZ2, dA1 = dZ2@W2.T, dW1 = X.T@dZ1 (no dX); the test forward. The loss needs none.
D, H, K = 784, 1000, 10
NOTEBOOK_EPOCHS = 2000

TARGET = 0.98
SPEEDUP_GOAL = 0.25  # ours / baseline wall time (issue 20)
MEMORY_GOALS_MB = {  # mlpnn-jax arguments (and --out DIR): max RSS goal
    ("reproduce", "--loss", "ce", "--epochs", "2", "--dtype", "float64", "--print-every", "0"): 3000,
    ("train", "--epochs", "1"): 1500,
}
CACHE_ENV_PREFIXES = ("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "JAX_ENABLE_COMPILATION_CACHE")
CACHES = {  # the compilation cache of each timing of train vs baseline
    "cold": "no compilation cache: a first run",
    "warm": "each with its own compilation cache, filled by an untimed run: every run after the first",
}
REACHED = re.compile(r"reached (?:\w+ )?(\d+(?:\.\d+)?)% at epoch (\d+)")  # "reached test 98.0% at epoch 2"

# Runs a command, then writes its max RSS (KiB) to argv[1]: the fallback for /usr/bin/time.
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc)\n"
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repeats of one mode."""

    samples: int | None = None  # the notebook epoch on the first N training (N / 6 test) samples
    peak_n: int = 4096  # GEMM peak: n x n @ n x n
    peak_repeats: int = 3
    numpy_warmup: int = 1
    numpy_epochs: int = 3
    jax_epochs: tuple[tuple[str, int], ...] = (("float64", 4), ("float32", 8))  # (dtype, k)
    jax_repeats: int = 2
    train_repeats: int = 3
    baseline_epochs: int = 30
    warm_up_processes: bool = True


QUICK = Settings(
    samples=6000,
    peak_n=1024,
    peak_repeats=2,
    numpy_warmup=0,
    numpy_epochs=1,
    jax_epochs=(("float64", 1), ("float32", 1)),
    jax_repeats=1,
    train_repeats=1,
    baseline_epochs=1,
    warm_up_processes=False,
)


def epoch_flops(n_train, n_test):
    return 2 * n_train * (2 * D * H + 3 * H * K) + 2 * n_test * (D * H + H * K)


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn):
    """(seconds, result) of one call of fn()."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# ---------------------------------------------------------------- environment


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment():
    """The machine and software the figures were measured on."""
    import jax
    import jaxlib
    import numpy as np
    from threadpoolctl import threadpool_info

    blas_keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "blas": [{k: info.get(k) for k in blas_keys} for info in threadpool_info()],
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "XLA_FLAGS")},
    }


# ---------------------------------------------------------------- GEMM peaks


def best_gflops(fn, flops, repeats):
    """The best GFLOP/s of ``repeats`` calls of fn() after one untimed warm-up call."""
    fn()
    return flops / min(timed(fn)[0] for _ in range(repeats)) / 1e9


def jax_peak(dtype, n, repeats):
    import jax
    import jax.numpy as jnp

    a, b = (jax.random.normal(jax.random.key(i), (n, n), dtype) for i in range(2))
    matmul = jax.jit(jnp.matmul)
    return best_gflops(lambda: matmul(a, b).block_until_ready(), 2 * n**3, repeats)


def numpy_peak(n, repeats):
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    return best_gflops(lambda: np.dot(a, b), 2 * n**3, repeats)


def gemm_peaks(settings):
    n, r = settings.peak_n, settings.peak_repeats
    log(f"GEMM peaks ({n} x {n} @ {n} x {n}, best of {r})")
    return {
        "n": n,
        "repeats": r,
        "numpy float64": numpy_peak(n, r),
        "jax float64": jax_peak("float64", n, r),
        "jax float32": jax_peak("float32", n, r),
    }


# ---------------------------------------------------------------- notebook epochs


def numpy_epoch_seconds(data, settings):
    """Seconds of each timed epoch of the notebook's own loop (float64, OpenBLAS)."""
    import reference

    network = reference.notebook_networks()[0]
    if settings.numpy_warmup:
        reference.run_notebook(network, *data, epochs=settings.numpy_warmup, print_every=0)
    stamps = [time.perf_counter()]
    reference.run_notebook(
        network,
        *data,
        epochs=settings.numpy_epochs,
        print_every=0,
        progress=lambda *_: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in itertools.pairwise(stamps)]


def jax_epoch_seconds(data, dtype, k, repeats):
    """(first call's seconds: compile + k epochs, per-epoch seconds of each timed k-epoch call)."""
    import jax

    import reference
    from mlpnn_jax.reproduce import run_notebook

    params = {name: a.astype(dtype) for name, a in reference.notebook_networks()[0].params.items()}
    data = tuple(jax.device_put(a.astype(dtype) if a.dtype.kind == "f" else a) for a in data)

    def call():
        return jax.block_until_ready(run_notebook(params, data, "ce", epochs=k, chunk=k))

    first = timed(call)[0]
    return first, [timed(call)[0] / k for _ in range(repeats)]


def epoch_row(name, peak_key, seconds, peaks, flops, extra=None):
    per_epoch = statistics.median(seconds)
    gflops = flops / per_epoch / 1e9
    return {
        "config": name,
        "peak": peak_key,
        "epoch_s": per_epoch,
        "each_s": seconds,
        "gflops": gflops,
        "peak_gflops": peaks[peak_key],
        "fraction_of_peak": gflops / peaks[peak_key],
        "notebook_2000_epochs_s": per_epoch * NOTEBOOK_EPOCHS,
        **(extra or {}),
    }


def notebook_epochs(settings, peaks):
    import mlpnn_jax

    data = mlpnn_jax.load_mnist(dtype="float64")
    if settings.samples:
        n = settings.samples
        data = (data[0][:n], data[1][:n], data[2][: n // 6], data[3][: n // 6])
    flops = epoch_flops(len(data[0]), len(data[2]))
    log(f"numpy reference float64: {settings.numpy_warmup} warm-up + {settings.numpy_epochs} timed epochs")
    seconds = numpy_epoch_seconds(data, settings)
    rows = [epoch_row("numpy reference f64", "numpy float64", seconds, peaks, flops)]
    for dtype, k in settings.jax_epochs:
        log(f"jax {dtype}: compile + {k} epochs, then {settings.jax_repeats} x {k} epochs")
        first, seconds = jax_epoch_seconds(data, dtype, k, settings.jax_repeats)
        extra = {"epochs_per_call": k, "first_call_s": first}
        name = f"jax f{dtype[-2:]} (scan of {k})"
        rows.append(epoch_row(name, f"jax {dtype}", seconds, peaks, flops, extra))
    return {"n_train": len(data[0]), "n_test": len(data[2]), "gflop": flops / 1e9, "rows": rows}


# ---------------------------------------------------------------- processes


def child_env(platform_name):
    """os.environ without a persistent compilation cache (JAX's or ours), and JAX on ``platform_name``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CACHE_ENV_PREFIXES)}
    env.update({"JAX_PLATFORMS": platform_name, CACHE_ENV: ""})
    return env


def cached_envs(env, folder):
    """The environments of our CLI and of the baseline, each with its own compilation cache in folder."""
    return {
        "mlpnn-jax train": {**env, CACHE_ENV: f"{folder}/ours"},
        "baseline": {**env, **cache_environment(f"{folder}/baseline")},
    }


def measure_process(cmd, env, cwd):
    """Runs cmd; returns {"wall_s", "rss_mb", "output"}; raises RuntimeError if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        if Path("/usr/bin/time").exists():
            wrapped = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd]
        else:
            wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, rss_file.name, *cmd]
        wall, proc = timed(
            lambda: subprocess.run(wrapped, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        )
        rss_text = Path(rss_file.name).read_text()
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-2000:]}")
    return {"wall_s": wall, "rss_mb": int(rss_text.split()[-1]) * 1024 / 1e6, "output": output}


def cli():
    """The mlpnn-jax console script (or ``python -m mlpnn_jax`` where it is not on PATH)."""
    script = shutil.which("mlpnn-jax")
    return [script] if script else [sys.executable, "-m", "mlpnn_jax"]


def reached(output):
    """(accuracy %, epoch) of the first "reached X% at epoch N" line, or (None, None)."""
    match = REACHED.search(output)
    return (float(match[1]), int(match[2])) if match else (None, None)


def train_command(out):
    return [*cli(), "train", "--target-accuracy", str(TARGET), "--out", str(out)]


def baseline_command(baseline, epochs):
    return [sys.executable, str(baseline), "--target", str(TARGET), "--epochs", str(epochs)]


def warm_up_baseline(baseline, settings, env, tmp):
    """An untimed baseline run that warms the page cache. Returns a note.

    Our CLI needs no such run: ``memory_checks`` ran it just before.
    """
    if settings.warm_up_processes:
        log("untimed baseline run (the page cache)")
        measure_process(baseline_command(baseline, 1), env, tmp)
    return "both commands ran untimed before" if settings.warm_up_processes else "no untimed runs"


def train_vs_baseline(settings, baseline, env):
    """Interleaved whole-process timings of our CLI's training and the baseline's, cold and warm."""
    if not baseline.exists():
        log(f"skipping train vs baseline: {baseline} not found")
        return {"skipped": f"{baseline} not found"}
    with tempfile.TemporaryDirectory(prefix="mlpnn-bench-") as tmp:
        commands = {
            "mlpnn-jax train": train_command(f"{tmp}/train"),
            "baseline": baseline_command(baseline, settings.baseline_epochs),
        }
        note = warm_up_baseline(baseline, settings, env, tmp)
        cold = {name: env for name in commands}
        warm = cached_envs(env, tmp)
        for name, cmd in commands.items():  # fills each one's cache
            log(f"untimed {name} run (its compilation cache)")
            shutil.rmtree(f"{tmp}/train", ignore_errors=True)
            measure_process(cmd, warm[name], tmp)
        return {
            start: pairs(settings, commands, envs, tmp, start, note)
            for start, envs in [("cold", cold), ("warm", warm)]
        }


def pairs(settings, commands, envs, tmp, start, note):
    """The interleaved repeats of ``commands``, each in its environment of ``envs``."""
    runs = {name: [] for name in commands}
    for i in range(settings.train_repeats):
        for name, cmd in commands.items():
            log(f"train vs baseline, {start}, repeat {i + 1}/{settings.train_repeats}: {name}")
            shutil.rmtree(f"{tmp}/train", ignore_errors=True)
            runs[name].append(measure_process(cmd, envs[name], tmp))
    rows = [training_row(name, commands[name], runs[name]) for name in commands]
    ratio = rows[0]["median_s"] / rows[1]["median_s"]
    return {"rows": rows, "ratio_median": ratio, "goal": SPEEDUP_GOAL, "cache": f"{note}; {CACHES[start]}"}


def training_row(name, cmd, runs):
    walls = [r["wall_s"] for r in runs]
    hits = [reached(r["output"]) for r in runs]
    return {
        "config": name,
        "command": " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)),
        "each_s": walls,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "reached": [h[0] is not None for h in hits],
        "epochs_to_target": [h[1] for h in hits],
        "max_rss_mb": max(r["rss_mb"] for r in runs),
    }


def memory_checks(env):
    """Max RSS of the two commands that have a memory goal, each in a fresh process."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlpnn-bench-") as tmp:
        for i, (args, goal) in enumerate(MEMORY_GOALS_MB.items()):
            command = "mlpnn-jax " + " ".join(args)
            log(f"max RSS: {command}")
            result = measure_process([*cli(), *args, "--out", f"{tmp}/{i}"], env, tmp)
            rows.append(
                {
                    "command": command,
                    "max_rss_mb": result["rss_mb"],
                    "goal_mb": goal,
                    "pass": result["rss_mb"] < goal,
                    "wall_s": result["wall_s"],
                }
            )
    return rows


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="also save every figure as JSON")
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes and repeats (< 60 s)")
    p.add_argument("--repeats", type=int, help="train/baseline pairs (default 3; --quick: 1)")
    p.add_argument("--baseline", type=Path, default=BASELINE, help=f"the baseline script ({BASELINE})")
    p.add_argument("--platform", default="cpu", help="JAX platform, here and in the children (cpu)")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats: expected a positive integer")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        p.error(f"--json: the folder of {args.json} does not exist")
    return args


def main(argv=None):
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.repeats:
        settings = dataclasses.replace(settings, train_repeats=args.repeats)
    start = time.perf_counter()
    import jax

    jax.config.update("jax_platforms", args.platform)
    jax.config.update("jax_enable_x64", True)
    env = child_env(args.platform)
    results = {"quick": args.quick, "settings": dataclasses.asdict(settings), "environment": environment()}
    results["gemm_peaks"] = gemm_peaks(settings)
    results["notebook_epoch"] = notebook_epochs(settings, results["gemm_peaks"])
    results["memory"] = memory_checks(env)
    results["train_vs_baseline"] = train_vs_baseline(settings, args.baseline, env)
    results["runtime_s"] = time.perf_counter() - start
    print(render(results, TARGET, SPEEDUP_GOAL), flush=True)
    if args.json:
        from mlpnn_jax.checkpoint import write_json  # atomic, as a run's files

        write_json(args.json, results)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
