"""The persistent compilation cache of every command that starts JAX (``devices.cache_dir``), tested by
running ``mlpnn-jax train`` in real processes: a warm cache compiles nothing and changes no result, a
damaged entry is compiled afresh without a word and written again, a full disk leaves only whole
entries, two runs at once share one folder, and a folder the user gave JAX itself wins. (gradcheck's
child uses the same folder: tests/test_gradcheck_cache.py.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlpnn_jax.devices import CACHE_ENV, cache_dir

ROOT = Path(__file__).resolve().parents[1]
HIT = "Persistent compilation cache hit"
COMPILED = "Finished XLA compilation"  # logged for every program, whether compiled or read from the cache
JAX_WARNS = "persistent compilation cache"  # in JAX's warnings; its compile log says "Persistent"


def train(data_dir, out, cache, **env):
    """``mlpnn-jax train`` of a tiny net for one epoch, started (not waited for), with ``cache`` as
    MLPNN_JAX_CACHE_DIR and JAX logging each program it compiles or reads from the cache."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")},
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "JAX_LOG_COMPILES": "1",
        CACHE_ENV: str(cache),
        **env,
    }
    args = ["train", "--data-dir", data_dir, "--hidden", "16", "--epochs", "1", "--out", out]
    command = [sys.executable, "-m", "mlpnn_jax", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc):
    """(the run's params and metrics without its timings, stderr) of a process that exited 0."""
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert JAX_WARNS not in err, err  # JAX's warning of an entry it could not read or write
    run = Path(proc.args[proc.args.index("--out") + 1])
    with np.load(run / "checkpoint.npz") as f:
        params = {k: f[k] for k in f.files if k.startswith("params/")}
    metrics = (run / "metrics.jsonl").read_text()
    return params, _untimed(metrics), err


def _untimed(metrics):
    timings = ("seconds", "elapsed")
    rows = [json.loads(line) for line in metrics.splitlines()]
    return [{k: v for k, v in row.items() if k not in timings} for row in rows]


def same(a, b):
    """Two runs' params are bit-identical and their metrics equal."""
    assert a[0].keys() == b[0].keys()
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], strict=True)
    assert a[1] == b[1]


@pytest.fixture(scope="module")
def uncached(small_mnist_dir, tmp_path_factory):
    """The run with no cache at all (MLPNN_JAX_CACHE_DIR set but empty; HOME a fresh folder)."""
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("uncached") / "run"
    result = finished(train(small_mnist_dir, out, "", HOME=str(home)))
    assert HIT not in result[2] and not (home / ".cache" / "mlpnn-jax").exists()
    return result


def test_a_warm_cache_compiles_nothing_and_changes_nothing(small_mnist_dir, tmp_path, uncached):
    cache = tmp_path / "cache"
    cold = finished(train(small_mnist_dir, tmp_path / "cold", cache))
    programs = cold[2].count(COMPILED)
    assert programs > 0 and HIT not in cold[2]
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert len(list(cache.iterdir())) == programs  # one entry per program
    warm = finished(train(small_mnist_dir, tmp_path / "warm", cache))
    assert warm[2].count(HIT) == warm[2].count(COMPILED) == programs
    same(cold, uncached)
    same(warm, uncached)


def test_damaged_entries_are_compiled_afresh_and_written_again(small_mnist_dir, tmp_path, uncached):
    cache = tmp_path / "cache"
    finished(train(small_mnist_dir, tmp_path / "first", cache))
    entries = sorted(cache.iterdir())
    for entry in entries:  # what kill -9 leaves while JAX writes one (a plain write, not atomic)
        data = entry.read_bytes()
        entry.write_bytes(data[: len(data) // 2])
    again = finished(train(small_mnist_dir, tmp_path / "again", cache))
    assert HIT not in again[2] and again[2].count(COMPILED) == len(entries)
    same(again, uncached)
    # JAX never replaces an entry it finds: the damaged ones were removed, and written again
    assert sorted(cache.iterdir()) == entries
    then = finished(train(small_mnist_dir, tmp_path / "then", cache))
    assert then[2].count(HIT) == len(entries)
    same(then, uncached)


def test_a_full_disk_leaves_only_whole_entries(small_mnist_dir, tmp_path, tmpfs, uncached):
    cache = tmpfs(64 * 1024) / "cache"  # the folder itself: the mount's root is writable by all
    full = finished(train(small_mnist_dir, tmp_path / "full", cache))
    same(full, uncached)
    entries = sorted(cache.iterdir())
    assert 0 < len(entries) < full[2].count(COMPILED)  # some did not fit
    # in the same folder (the key of an entry depends on it): every entry left is whole, and hits
    again = finished(train(small_mnist_dir, tmp_path / "again", cache))
    assert again[2].count(HIT) == len(entries)
    assert sorted(cache.iterdir()) == entries  # what did not fit the first time is not left cut short
    same(again, uncached)


def test_only_the_named_programs_entries_are_removed_and_other_warnings_shown(tmp_path):
    key = "0123456789abcdef" * 4  # JAX's entry names: the program's name, a sha256, "-cache"
    names = [f"jit_f-{key}-cache", f"jit_f-{key}-atime", f"jit_f-v2-{key}-cache", f"jit_f_g-{key}-cache"]
    names += [f"jit_h-{key}-cache", "jit_f-notes.txt", f"jit_f-{key}-cache.bak"]  # the last two: not JAX's
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    probe = (
        "import sys, warnings; from mlpnn_jax.devices import mend_damaged_entries as mend; "
        "mend(sys.argv[1]); "
        "warnings.warn(\"Error reading persistent compilation cache entry for 'jit_f': error: cut\"); "
        f"warnings.warn(\"Error writing persistent compilation cache entry for 'jit_h-{key}': OSError\"); "
        "warnings.warn('something else')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(
        [f"jit_f-v2-{key}-cache", f"jit_f_g-{key}-cache", "jit_f-notes.txt", f"jit_f-{key}-cache.bak"]
    )
    assert "something else" in proc.stderr and JAX_WARNS not in proc.stderr


def test_two_runs_at_once_share_one_folder(small_mnist_dir, tmp_path, uncached):
    cache = tmp_path / "cache"
    procs = [train(small_mnist_dir, tmp_path / f"run{i}", cache) for i in range(2)]
    results = [finished(proc) for proc in procs]
    for result in results:
        same(result, uncached)
    assert len(list(cache.iterdir())) == results[0][2].count(COMPILED)


def test_a_folder_given_to_jax_itself_is_kept(small_mnist_dir, tmp_path, uncached):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    env = {
        "JAX_COMPILATION_CACHE_DIR": str(theirs),
        # JAX's own default: only programs that took a second to compile (none of this tiny net's)
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    result = finished(train(small_mnist_dir, tmp_path / "run", ours, **env))
    same(result, uncached)
    assert len(list(theirs.iterdir())) == result[2].count(COMPILED)
    assert not any(ours.iterdir())


def test_jax_own_switch_turns_the_cache_off(small_mnist_dir, tmp_path, uncached):
    cache = tmp_path / "cache"
    result = finished(train(small_mnist_dir, tmp_path / "run", cache, JAX_ENABLE_COMPILATION_CACHE="false"))
    same(result, uncached)
    assert not any(cache.iterdir())


@pytest.mark.parametrize(
    ("ours", "xdg", "where"),
    [
        (None, None, "HOME/.cache/mlpnn-jax"),
        (None, "XDG", "XDG/mlpnn-jax"),
        (None, "relative", "HOME/.cache/mlpnn-jax"),  # the XDG spec: a relative path is ignored
        ("OURS/cache", "XDG", "OURS/cache"),
        ("", "XDG", None),
    ],
)
def test_the_cache_folder(tmp_path, monkeypatch, ours, xdg, where):
    def at(text):
        return (
            text.replace("HOME", str(tmp_path / "home"))
            .replace("XDG", str(tmp_path / "xdg"))
            .replace("OURS", str(tmp_path / "ours"))
        )

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in ((CACHE_ENV, ours), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, at(value))
    found = cache_dir()
    assert found == (None if where is None else Path(at(where)))
    if found is not None:
        assert found.is_dir() and oct(found.stat().st_mode & 0o777) == "0o700"
