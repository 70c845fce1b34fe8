"""Fault injection into real mlpnn-jax processes: full disks, kill -9, signals, locks, bad files and sizes.

Every test runs ``python -m mlpnn_jax`` as a separate process on the small MNIST fixture with tiny
settings (a few seconds a process), or calls the CLI's ``main`` where a fresh process adds nothing.
Full disks and read-only file systems are small tmpfs mounts: they need root (the CI runs as root) and are
skipped, with the reason, where mounting is not permitted.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlpnn_jax import checkpoint as ckpt
from mlpnn_jax import runs
from mlpnn_jax.cli import main
from mlpnn_jax.data import write_mnist
from mlpnn_jax.devices import CACHE_ENV

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--batch-size", "128"]
# one CPU device and this checkout's code in every child process, which starts cold
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")},
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
    "JAX_PLATFORMS": "cpu",
    # no compilation cache: every child starts cold, so a signal timed to land in the start-up does
    CACHE_ENV: "",
}


def command(*args):
    return [sys.executable, "-m", "mlpnn_jax", *map(str, args)]


def cli(*args, timeout=120, **kwargs):
    """The finished process ``mlpnn-jax ARGS`` (text output captured)."""
    return subprocess.run(command(*args), env=ENV, capture_output=True, text=True, timeout=timeout, **kwargs)


def start(*args, **kwargs):
    return subprocess.Popen(
        command(*args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def one_line(err):
    """The one line of an error output; fails on a traceback or several lines."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def assert_complete_run(run_dir, capsys=None):
    """``run_dir`` holds one complete, loadable run that ``evaluate`` finds, and nothing left over."""
    if capsys is not None:
        assert main(["evaluate", str(run_dir)]) == 0
        assert "accuracy" in capsys.readouterr().out
    params, _, meta = ckpt.load(run_dir / ckpt.CHECKPOINT)
    config = json.loads((run_dir / "config.json").read_text())
    assert config == meta["config"]
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == meta["epoch"] == len(meta["history"])
    assert params["W1"].shape[1] == config["hidden"][0]
    # leftovers of a killed run are removed (here by evaluate), never visible as a run
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    siblings = [p.name for p in run_dir.parent.iterdir() if p.name.startswith(f".{run_dir.name}.")]
    assert not siblings, siblings
    return config


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, small_mnist_dir):
    """A finished 1-epoch run (hidden 16), written once for the tests that copy or damage it."""
    out = tmp_path_factory.mktemp("base") / "run"
    proc = cli("train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 1, *TINY)
    assert proc.returncode == 0, proc.stderr
    return out


def files_of(run_dir):
    """{name: bytes} of a run's files, but for the lock file (it names the last process that held it)."""
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != runs.LOCK}


def copy_run(src, dst):
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# ---------------------------------------------------------------- 1: full disk, kill -9 during --overwrite


def test_full_disk_during_overwrite_keeps_the_old_run(tmpfs, base_run, small_mnist_dir, capsys):
    fs = tmpfs(1 << 20)  # 1 MiB: the old run (~250 kB) fits; the new one (hidden 300: ~3.8 MB) cannot
    run = copy_run(base_run, fs / "run")
    before = files_of(run)
    proc = cli(
        "train", "--data-dir", small_mnist_dir, "--out", run, "--epochs", 1, "--hidden", 300, "--overwrite"
    )
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr)
    assert "No space left on device" in line
    assert files_of(run) == before
    assert_complete_run(run, capsys)
    assert sorted(p.name for p in fs.iterdir()) == ["run"]  # no half-built new run left beside it


def test_full_disk_mid_run_keeps_the_last_good_checkpoint(tmpfs, small_mnist_dir, capsys):
    # hidden 120: a checkpoint of 0.75 MB (W1 and its momentum); 1.15 MB holds one, not a second beside it
    # (the atomic write of epoch 2's checkpoint)
    fs = tmpfs(1_150_000)
    run = fs / "run"
    proc = cli("train", "--data-dir", small_mnist_dir, "--out", run, "--epochs", 5, "--hidden", 120)
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr)
    assert "No space left on device" in line and str(run) in line
    meta = ckpt.load(run / ckpt.CHECKPOINT)[2]
    assert meta["epoch"] >= 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert main(["evaluate", str(run)]) == 0


def test_kill_9_during_overwrite_always_leaves_one_complete_run(tmp_path, base_run, small_mnist_dir, capsys):
    """Ten overwrite runs killed at random moments: each time one complete run is there, old or new."""
    rng = random.Random(9)
    args = ["--data-dir", small_mnist_dir, "--epochs", 2, "--hidden", 24, "--batch-size", 128, "--overwrite"]
    trials, span = 10, 7.0  # a whole run takes about 6 s here: start-up, both epochs, the swap, the plots
    moments = [(i + rng.random()) / trials * span for i in range(trials)]  # stratified over the run
    for pair in range(0, trials, 2):  # two at a time: the machine has two cores
        procs = []
        for i in (pair, pair + 1):
            run = copy_run(base_run, tmp_path / f"t{i}" / "run")
            procs.append((moments[i], run, start("train", "--out", run, *args)))
        t0 = time.monotonic()
        for moment, _, proc in procs:
            time.sleep(max(0.0, moment - (time.monotonic() - t0)))
            proc.kill()
        for _, run, proc in procs:
            proc.communicate(timeout=30)  # reaps it and closes its pipes
            config = assert_complete_run(run, capsys)
            assert config["hidden"] in ([16], [24])  # the old run or the new one, nothing else


# ---------------------------------------------------------------- 2: the user's own files, --out ""


@pytest.mark.parametrize(
    ("files", "overwrite"),
    [
        ({"config.json": "{}\n", "metrics.jsonl": "mine\n"}, False),
        ({"notes.txt": "my notes\n"}, False),
        ({"notes.txt": "my notes\n"}, True),
    ],
    ids=["own-config-and-metrics", "own-notes", "own-notes-overwrite"],
)
def test_users_files_in_out_are_never_touched(tmp_path, base_run, small_mnist_dir, files, overwrite):
    out = copy_run(base_run, tmp_path / "run") if overwrite else tmp_path / "mine"
    out.mkdir(exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    before = files_of(out)
    extra = ["--overwrite"] if overwrite else []
    proc = cli("train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 1, *TINY, *extra)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "--out" in line and ("did not write" in line or "not mlpnn-jax's" in line)
    assert files_of(out) == before


def test_empty_out_is_refused(tmp_path, small_mnist_dir):
    proc = cli("train", "--data-dir", small_mnist_dir, "--out", "", "--epochs", 1, *TINY, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--out" in one_line(proc.stderr)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 3: two runs into one --out


def test_two_runs_into_one_out_exactly_one_wins(tmp_path, small_mnist_dir, capsys):
    out = tmp_path / "run"
    args = ["train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 2, *TINY]
    a, b = start(*args), start(*args)
    results = [(p, *p.communicate(timeout=120)) for p in (a, b)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [e for _, _, e in results]
    loser, winner = (results[0], results[1]) if results[0][0].returncode == 2 else (results[1], results[0])
    line = one_line(loser[2])
    assert "in use by" in line and f"process {winner[0].pid}" in line
    assert_complete_run(out, capsys)


# ---------------------------------------------------------------- 4: read-only --out


@pytest.mark.parametrize("how", ["overwrite", "resume"])
def test_read_only_out_fails_before_data_is_loaded(tmpfs, tmp_path, base_run, how):
    fs = tmpfs(4 << 20)
    run = damage(base_run, fs / "run", lambda meta, params: None)  # unharmed, with epochs left to run
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    # a data directory whose training images are broken: an error about them would mean it was read first
    bad_data = tmp_path / "bad"
    bad_data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (bad_data / name).write_bytes(b"\0\0\0\0broken")
    (bad_data / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\0\0broken")
    if how == "overwrite":
        proc = cli("train", "--data-dir", bad_data, "--out", run, "--epochs", 1, *TINY, "--overwrite")
    else:
        proc = cli("train", "--resume", run)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "Read-only file system" in line and str(run) in line
    assert "training" not in proc.stdout


# ---------------------------------------------------------------- 5-7: signals


def wait_for(proc, prefix, timeout=60):
    """Reads ``proc``'s stdout until a line starts with ``prefix``; returns the lines read."""
    lines, t_end = [], time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix) or time.monotonic() > t_end:
            break
    return lines


def read_until(stream, words, timeout):
    """Reads lines of ``stream`` until one holds ``words``; returns the seconds it took (fails on EOF)."""
    t0 = time.monotonic()
    for line in stream:
        if words in line:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"no {words!r} in {timeout} s"
    raise AssertionError(f"the stream ended without {words!r}")


def test_reproduce_answers_ctrl_c_within_seconds_and_a_second_aborts(tmp_path, small_mnist_dir):
    # hidden 2000, float32: a 0.1-0.3 s epoch, so the old 200-epoch chunks took most of a minute
    args = ["reproduce", "--loss", "ce", "--epochs", 100000, "--hidden", 2000, "--dtype", "float32"]
    args += ["--data-dir", small_mnist_dir, "--print-every", 200]
    proc = start(*args, "--out", tmp_path / "a")
    wait_for(proc, "== cross-entropy")
    time.sleep(6)  # past the first chunks' compiles, even on a loaded machine
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    answered = read_until(proc.stderr, "Ctrl-C", timeout=30)
    out, err = proc.communicate(timeout=60)
    assert answered < 2.5, f"Ctrl-C answered after {answered:.1f} s"
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 30  # then the curves so far are written, as the notebook's figures
    assert "Traceback" not in err
    printed = [int(line.split()[1].rstrip("]")) for line in out.splitlines() if line.startswith("[epoch")]
    rows = (tmp_path / "a" / "ce_losses.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,test_loss" and len(rows) >= 2  # the epochs run so far
    # the notebook's lines, every 200 epochs, then the last epoch run
    assert printed[-1] == len(rows) - 1 and all(e % 200 == 0 for e in printed[:-1])

    proc = start(*args, "--out", tmp_path / "b")
    wait_for(proc, "== cross-entropy")
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - t0 < 2.5, err
    assert "Traceback" not in err and "Fatal Python error" not in err


def test_double_ctrl_c_in_train_always_exits_130(tmp_path, small_mnist_dir):
    rng = random.Random(6)
    args = ["train", "--data-dir", small_mnist_dir, "--epochs", 100000, "--hidden", 64]
    for trial in range(2):  # four runs, two at a time
        procs = [start(*args, "--out", tmp_path / f"r{trial}{k}") for k in range(2)]
        for proc in procs:
            wait_for(proc, "epoch")
        time.sleep(rng.uniform(0, 0.5))
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        time.sleep(rng.uniform(0.05, 0.4))
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 130, err
            assert "Fatal Python error" not in err and "Traceback" not in err


def test_sigterm_is_treated_like_ctrl_c(tmp_path, small_mnist_dir, capsys):
    out = tmp_path / "run"
    proc = start("train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 100000, *TINY)
    wait_for(proc, "epoch")
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a scheduler expects; after the checkpoint
    assert "Traceback" not in err
    assert f"resume: mlpnn-jax train --resume {out}" in stdout
    meta = ckpt.load(out / ckpt.CHECKPOINT)[2]
    assert meta["epoch"] >= 1 and len((out / "metrics.jsonl").read_text().splitlines()) == meta["epoch"]


def test_ctrl_c_during_start_up_exits_130_quietly(tmp_path, small_mnist_dir):
    rng = random.Random(7)
    procs = []
    for trial in range(6):
        proc = start("train", "--data-dir", small_mnist_dir, "--out", tmp_path / f"r{trial}", *TINY)
        procs.append(proc)
        # from just after the interpreter's own start-up (a signal inside its `site` import is Python's
        # fatal error, before any of mlpnn-jax runs) to the first compile
        time.sleep(rng.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
        assert len(err.strip().splitlines()) <= 1, err


def test_closed_stdout_does_not_stop_the_run(tmp_path, small_mnist_dir, capsys):
    out = tmp_path / "run"
    proc = start("train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 3, *TINY)
    first = proc.stdout.readline()  # `| head -1`: one line read, then the pipe closed
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert first.startswith("training")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert assert_complete_run(out, capsys)["epochs"] == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert (out / "confusion.svg").is_file()


# ---------------------------------------------------------------- 8: damaged checkpoints


DAMAGE = {
    # name: (edit of (meta, params), words the one-line error must hold)
    "params-wider-than-config": (lambda m, p: m["config"].update(hidden=[64]), "hidden"),
    "W1-wrong-shape": (lambda m, p: p.update(W1=np.zeros((700, 16), np.float32)), "W1"),
    "std-0": (lambda m, p: m.update(input_stats=[0.13, 0.0]), "input_stats"),
    "config-epochs-null": (lambda m, p: m["config"].update(epochs=None), "epochs"),
    "meta-epoch-null": (lambda m, p: m.update(epoch=None), "epoch"),
    "hidden-abc": (lambda m, p: m["config"].update(hidden="abc"), "hidden"),
    "history-missing-keys": (lambda m, p: [r.pop("test_loss") for r in m["history"]], "test_loss"),
    "nan-params": (lambda m, p: p["W2"].__setitem__((0, 0), np.nan), "NaN"),
}


def damage(src, dst, edit):
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    with np.load(dst / ckpt.CHECKPOINT) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["config"]["epochs"] = 3  # so that resume has epochs left to run
    params = {k.split("/", 1)[1]: arrays.pop(k).copy() for k in list(arrays) if k.startswith("params/")}
    edit(meta, params)
    arrays.update({f"params/{k}": v for k, v in params.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dst / ckpt.CHECKPOINT, **arrays)
    return dst


@pytest.mark.parametrize("command_", ["evaluate", "resume"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_is_one_line_and_exit_2(tmp_path, base_run, capsys, case, command_):
    edit, words = DAMAGE[case]
    run = damage(base_run, tmp_path / "run", edit)
    argv = ["evaluate", str(run)] if command_ == "evaluate" else ["train", "--resume", str(run)]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2, err
    line = one_line(err)
    assert str(run / ckpt.CHECKPOINT) in line and words in line
    if case == "nan-params":
        assert "--lr" not in line and "learning rate" not in line


# ---------------------------------------------------------------- 9-13: platforms, sizes, data


@pytest.mark.parametrize("command_", ["train", "evaluate", "reproduce"])
def test_platform_gpu_without_a_gpu_is_one_line(tmp_path, base_run, small_mnist_dir, command_):
    if Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA GPU is here")
    args = {
        "train": ["train", "--data-dir", small_mnist_dir, "--out", tmp_path / "r", *TINY],
        "evaluate": ["evaluate", base_run],
        "reproduce": ["reproduce", "--epochs", 1, "--hidden", 8, "--data-dir", small_mnist_dir],
    }[command_]
    proc = cli(*args, "--platform", "gpu", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--platform gpu" in one_line(proc.stderr)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_huge_epoch_count_with_a_schedule_is_one_line(tmp_path, small_mnist_dir, schedule):
    # 8 steps an epoch: 10**9 epochs are 8e9 steps, past the schedules' int32 step count
    argv = ["train", "--data-dir", small_mnist_dir, "--out", tmp_path / "r", *TINY]
    proc = cli(*argv, "--epochs", 10**9, "--schedule", schedule, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--epochs" in one_line(proc.stderr)


def _idx(magic, shape, payload=b""):
    return magic.to_bytes(4, "big") + np.array(shape, ">u4").tobytes() + payload


def test_absurd_idx_header_is_one_line(tmp_path, small_mnist_dir, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for p in small_mnist_dir.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    (data / "train-images-idx3-ubyte.gz").unlink()
    big = 2**32 - 1
    (data / "train-images-idx3-ubyte").write_bytes(_idx(2051, (big, big, big), bytes(100)))
    code = main(["train", "--data-dir", str(data), "--out", str(tmp_path / "r"), *TINY])
    _, err = capsys.readouterr()
    assert code == 2, err
    line = one_line(err)
    assert "train-images-idx3-ubyte" in line and "truncated" in line


def test_out_of_memory_is_one_line(tmp_path, small_mnist_dir):
    # a 4 GB address-space limit (JAX itself maps ~1.5 GB); hidden 10**6 needs 3.1 GB for the params alone.
    # Set in a small launcher that then execs the command: no fork of this multithreaded process.
    limit = 4 << 30
    launcher = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]),) * 2);"
        " os.execv(sys.executable, [sys.executable, '-m', 'mlpnn_jax', *sys.argv[2:]])"
    )
    args = ["train", "--data-dir", small_mnist_dir, "--out", tmp_path / "r", "--hidden", 1000000]
    cmd = [sys.executable, "-c", launcher, str(limit), *map(str, args), "--epochs", "1"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_line(proc.stderr)
    assert "--hidden" in line and "GB" in line


@pytest.mark.parametrize("kind", ["empty", "constant", "identical"])
def test_unlearnable_training_set_is_named(tmp_path, small_mnist, capsys, kind):
    x, y, xt, yt = small_mnist
    x = {"empty": x[:0], "constant": np.full_like(x, 0.5), "identical": np.repeat(x[:1], len(x), 0)}[kind]
    y = y[: len(x)]
    data = write_mnist(tmp_path / "data", x, y, xt, yt)
    code = main(["train", "--data-dir", str(data), "--out", str(tmp_path / "r"), *TINY])
    _, err = capsys.readouterr()
    assert code == 2, err
    line = one_line(err)
    assert "train-images-idx3-ubyte" in line and "training set" in line
    assert "--batch-size" not in line


# ---------------------------------------------------------------- recovery of a cut-short swap


def test_a_swap_cut_between_its_two_renames_is_recovered(tmp_path, base_run, capsys):
    """Where the file system cannot exchange two directories, a kill between the two renames leaves the
    run's name missing; the next evaluate (or train) puts the complete new run back."""
    old = copy_run(base_run, tmp_path / ".run.mlpnn-jax-old.99999")
    new = copy_run(base_run, tmp_path / ".run.mlpnn-jax-new.99999")
    marker = json.loads((new / "config.json").read_text())
    assert not (tmp_path / "run").exists()
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == marker
    assert not old.exists() and not new.exists()
    assert_complete_run(tmp_path / "run")
    assert runs.recover(tmp_path / "run") == tmp_path / "run"


def test_a_killed_runs_lock_and_leftovers_do_not_block_the_next_claim(tmp_path, base_run):
    run = copy_run(base_run, tmp_path / "run")
    dead = {"pid": 2**22 + 12345, "host": "elsewhere", "kind": "train", "since": 0}
    (run / runs.LOCK).write_text(json.dumps(dead) + "\n")  # no process holds its flock
    (run / ".checkpoint.npz.x1y2z3.tmp").write_bytes(b"torn")
    sibling = copy_run(base_run, tmp_path / f".run.mlpnn-jax-new.{dead['pid']}")
    with runs.claim(run, "train", overwrite=True) as claimed:
        assert json.loads((run / runs.LOCK).read_text())["pid"] == os.getpid()
        assert not sibling.exists() and not (run / ".checkpoint.npz.x1y2z3.tmp").exists()
        assert claimed.dir != run and claimed.dir.parent == tmp_path  # the new run is built beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # closed unpublished: the old run stays
    assert files_of(run) == files_of(base_run)


# ---------------------------------------------------------------- gradcheck: user code, bounded

# a correct per-batch backprop (the notebook's), with a marker line where each case puts its code
_BACKPROP = """import numpy as np


def backprop(params, X, Y):
    # CASE
    n = len(X)
    A1 = np.tanh(X @ params['W1'] + params['b1'])
    Z = A1 @ params['W2'] + params['b2']
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    d2 = (P - np.eye(P.shape[1])[Y]) / n
    d1 = d2 @ params['W2'].T * (1 - A1**2)
    return {'W1': X.T @ d1, 'b1': d1.sum(0), 'W2': A1.T @ d2, 'b2': d2.sum(0)}
"""
# the user's code records its pid and that of a subprocess of its own, then never returns
_HANG = """import os, subprocess, time
if not os.path.exists(PIDS):
    kid = subprocess.Popen(['sleep', '600'])
    open(PIDS, 'w').write(f'{os.getpid()} {kid.pid}\\n')
while True:
    time.sleep(0.01)"""


def user_file(tmp_path, case):
    path = tmp_path / "student.py"
    code = _BACKPROP.replace("# CASE", case.replace("\n", "\n    "))
    path.write_text(code.replace("PIDS", repr(str(tmp_path / "pids"))))
    return f"{path}:backprop"


def alive(pid):
    """Whether process ``pid`` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_gradcheck_leaves_no_process_behind_whatever_ends_it(tmp_path, signum):
    proc = start("gradcheck", user_file(tmp_path, _HANG), "--timeout", 600)
    pids_file, t_end = tmp_path / "pids", time.monotonic() + 90
    while not (pids_file.is_file() and pids_file.read_text().endswith("\n")):
        assert time.monotonic() < t_end and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(map(alive, pids))
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}.get(signum, -signal.SIGKILL)
    t_end = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < t_end:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]


@pytest.mark.parametrize(
    ("case", "args", "words"),
    [
        ("import time\ntime.sleep(3600)", ["--timeout", 5], "did not finish within 5 s"),
        ("big = bytearray(8 * 10**9)", [], "allows 4 GB of memory (--memory-limit)"),
        ("big = bytearray(3 * 10**9)", ["--memory-limit", 2], "allows 2 GB of memory (--memory-limit)"),
    ],
    ids=["timeout", "memory-default", "memory-limit"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_gradcheck_bounds_user_code_in_one_line(tmp_path, case, args, words, as_json):
    proc = cli("gradcheck", user_file(tmp_path, case), *args, *(["--json"] if as_json else []))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("error: ") and words in last, proc.stderr
    if as_json:
        record = json.loads(proc.stdout)
        assert record["status"] == "not checked" and words in record["error"]
    else:
        assert proc.stdout == ""


def test_gradcheck_json_is_one_object_when_the_target_is_missing(tmp_path):
    proc = cli("gradcheck", f"{tmp_path / 'none.py'}:backprop", "--json")
    assert proc.returncode == 2
    record = json.loads(proc.stdout)
    assert record == {"status": "not checked", "error": record["error"], "traceback": None}
    assert "none.py" in record["error"] and one_line(proc.stderr) == f"error: {record['error']}"


def test_gradcheck_keeps_the_first_64_kb_of_what_user_code_prints(tmp_path):
    # 20 MB a call, and the probe calls it several times
    proc = cli("gradcheck", user_file(tmp_path, "print('x' * 20_000_000)"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK" in proc.stdout
    assert proc.stderr.startswith("x" * 65536) and len(proc.stderr) < 66000
    more = proc.stderr.splitlines()[-1]
    assert more.startswith("[gradcheck: ") and more.endswith(" MB more output of the code elided]")
    assert float(more.split()[1]) > 20  # more than one call's worth was elided


# ---------------------------------------------------------------- failed starts, paths, symlinks


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--batch-size", 100000], 2), (["--lr", 1000, "--optimizer", "sgd", "--schedule", "constant"], 1)],
    ids=["batch-too-large", "diverged"],
)
def test_a_failed_start_leaves_nothing_behind(tmp_path, base_run, small_mnist_dir, args, code):
    new = cli("train", "--data-dir", small_mnist_dir, "--out", tmp_path / "a" / "b", *TINY, *args)
    assert new.returncode == code, new.stderr
    assert not (tmp_path / "a").exists()
    old = copy_run(base_run, tmp_path / "old")
    argv = ["train", "--data-dir", small_mnist_dir, "--out", old, "--overwrite", *TINY, *args]
    assert cli(*argv).returncode == code
    assert files_of(old) == files_of(base_run) and sorted(os.listdir(tmp_path)) == ["old"]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.parent.joinpath("file").write_text("mine"), "file is a file, not a directory"),
        (lambda p: p.symlink_to(p.parent / "gone"), "is a symlink to a missing"),
        (os.mkfifo, "is a FIFO, not a directory"),
    ],
    ids=["under-a-file", "dangling-symlink", "fifo"],
)
def test_out_paths_say_what_they_are(tmp_path, small_mnist_dir, make, words):
    out = tmp_path / "out"
    make(out)
    before = sorted(os.listdir(tmp_path))
    target = tmp_path / "file" / "run" if (tmp_path / "file").exists() else out
    proc = cli("train", "--data-dir", small_mnist_dir, "--out", target, *TINY)
    assert proc.returncode == 2 and words in one_line(proc.stderr), proc.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_a_fifo_as_a_data_file_is_named(tmp_path, small_mnist_dir):
    data = tmp_path / "data"
    data.mkdir()
    for p in small_mnist_dir.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    (data / "train-images-idx3-ubyte.gz").unlink()
    os.mkfifo(data / "train-images-idx3-ubyte")
    proc = cli("train", "--data-dir", data, "--out", tmp_path / "r", *TINY, timeout=60)
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte is a FIFO, not a regular file" in one_line(proc.stderr)
    assert not (tmp_path / "r").exists()


def test_out_a_symlink_to_a_run_is_followed_and_kept(tmp_path, base_run, small_mnist_dir, capsys):
    run = copy_run(base_run, tmp_path / "runs" / "real")
    link = tmp_path / "link"
    link.symlink_to(run)
    argv = ["train", "--data-dir", small_mnist_dir, "--out", link, "--overwrite", *TINY, "--seed", 7]
    assert cli(*argv).returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(run)
    assert json.loads((run / "config.json").read_text())["seed"] == 7  # the new run, at the target
    assert sorted(os.listdir(tmp_path)) == ["link", "runs"] and os.listdir(run.parent) == ["real"]
    assert_complete_run(run, capsys)
    assert main(["evaluate", str(link)]) == 0 and "accuracy " in capsys.readouterr().out
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["link", "runs"]


def test_resume_through_a_symlink_continues_the_run_it_names(tmp_path, base_run):
    run = damage(base_run, tmp_path / "runs" / "real", lambda meta, params: None)  # 3 epochs, 1 done
    link = tmp_path / "link"
    link.symlink_to(run)
    proc = cli("train", "--resume", link)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(run)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # continued at the target
    assert sorted(os.listdir(tmp_path)) == ["link", "runs"] and os.listdir(run.parent) == ["real"]
