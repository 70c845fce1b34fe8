"""gradcheck's start-up: a parent without JAX, and the child's persistent compilation cache.

The cache is tested by injecting the faults into real processes: a warm cache gives the same report as
none, and a folder that cannot be used (a file, under a file, one that others can write, one whose
writes fail, entries damaged) leaves the check and its report as they are, without a word on stderr.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpnn_jax.devices import CACHE_ENV

ROOT = Path(__file__).resolve().parents[1]
TARGET = str(ROOT / "tests/gallery/correct.py:backprop")
HIT = "Persistent compilation cache hit"
COMPILED = "Finished XLA compilation"  # logged for every program, whether compiled or read from the cache
JAX_LOG = ("Finished tracing ", "Compiling ", "Finished jaxpr to MLIR", HIT, COMPILED)  # JAX_LOG_COMPILES


def gradcheck(cache, *targets, **env):
    """The finished ``mlpnn-jax gradcheck TARGETS`` (default: TARGET --json) with ``cache`` as
    MLPNN_JAX_CACHE_DIR, JAX logging each program it compiles or reads from the cache."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")},
        "PYTHONPATH": str(ROOT),
        CACHE_ENV: str(cache),
        "JAX_LOG_COMPILES": "1",
        **env,
    }
    command = [sys.executable, "-m", "mlpnn_jax", "gradcheck", *(targets or (TARGET, "--json"))]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def report(proc):
    """The JSON report of an exit-0 check, and the lines of stderr that are not JAX's compile log."""
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(JAX_LOG)]
    return json.loads(proc.stdout), noise


@pytest.fixture(scope="module")
def uncached():
    """The report with no cache at all (MLPNN_JAX_CACHE_DIR set but empty)."""
    proc = gradcheck("")
    assert HIT not in proc.stderr
    return report(proc)[0]


def test_the_parent_imports_neither_jax_nor_numpy(tmp_path):
    probe = (
        "import sys; from mlpnn_jax import cli; code = cli.main(['gradcheck', sys.argv[1]]); "
        "print(code, 'jax' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), CACHE_ENV: str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, TARGET], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stderr.splitlines()[-1] == "0 False False", proc.stderr
    assert "gradcheck backprop: loss 'ce'" in proc.stdout  # the child did check it


def test_a_warm_cache_compiles_nothing_and_changes_nothing(tmp_path, uncached):
    cache = tmp_path / "cache"
    cold = gradcheck(cache)
    programs = cold.stderr.count(COMPILED)
    assert programs > 0 and HIT not in cold.stderr
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert len(list(cache.iterdir())) == programs  # one entry per program
    warm = gradcheck(cache)
    assert warm.stderr.count(HIT) == warm.stderr.count(COMPILED) == programs
    assert report(cold) == report(warm) == (uncached, [])


def _file(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    return tmp_path / "cache"


def _under_a_file(tmp_path):
    return _file(tmp_path) / "cache"


def _world_writable(tmp_path):
    (tmp_path / "cache").mkdir(mode=0o777)
    (tmp_path / "cache").chmod(0o777)  # the umask took some bits off
    return tmp_path / "cache"


def _writes_fail(tmp_path):
    return Path("/proc")  # exists and is a folder, but no file can be made in it (even by root)


@pytest.mark.parametrize("make", [_file, _under_a_file, _world_writable, _writes_fail])
def test_an_unusable_cache_folder_changes_nothing(tmp_path, make, uncached):
    cache = make(tmp_path)
    proc = gradcheck(cache)
    assert HIT not in proc.stderr
    assert report(proc) == (uncached, [])
    if cache.is_dir() and cache != Path("/proc"):
        assert not any(cache.iterdir())  # others could have written an entry: nothing read or written


def _truncated(data):
    return data[: len(data) // 2]


def _garbage(data):
    return bytes(range(256)) * (len(data) // 256 + 1)


def _empty(data):
    return b""


@pytest.mark.parametrize("damage", [_truncated, _garbage, _empty])
def test_damaged_entries_are_compiled_afresh(tmp_path, damage, uncached):
    cache = tmp_path / "cache"
    gradcheck(cache)
    entries = sorted(cache.iterdir())
    for entry in entries:  # e.g. a check killed while writing one
        entry.write_bytes(damage(entry.read_bytes()))
    proc = gradcheck(cache)
    assert HIT not in proc.stderr and proc.stderr.count(COMPILED) == len(entries)
    assert report(proc) == (uncached, [])
    then = gradcheck(cache)  # the damaged entries were removed, and written again
    assert then.stderr.count(HIT) == len(entries)


def test_a_folder_given_to_jax_itself_is_kept(tmp_path, uncached):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    # JAX's own default keeps only programs that took a second to compile: none of the check's
    proc = gradcheck(
        ours, JAX_COMPILATION_CACHE_DIR=str(theirs), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"
    )
    assert report(proc) == (uncached, [])
    assert len(list(theirs.iterdir())) == proc.stderr.count(COMPILED) > 0
    assert not ours.exists() or not any(ours.iterdir())


def test_a_jax_targets_own_damaged_entries_are_mended_not_reported(tmp_path):
    # the user's own jitted code compiles while the check records its warnings (conventions.quiet_call);
    # this one computes in float32, so its verdict is exit 1 with a dtype diagnosis, each time
    target = str(ROOT / "tests/gallery/correct.py:backprop_jax")
    cache = tmp_path / "cache"

    def check():
        proc = gradcheck(cache, target, "--json")
        noise = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(JAX_LOG)]
        return proc.returncode, json.loads(proc.stdout), noise, proc.stderr.count(HIT)

    first = check()
    assert first[0] == 1 and first[2] == []
    entries = sorted(cache.iterdir())
    for entry in entries:
        entry.write_bytes(_truncated(entry.read_bytes()))
    assert check()[:3] == first[:3]  # no note of JAX's warning: the same report
    # a damaged entry's program goes with every shape of it (jit_tanh of n = 1, 7, 32): what was read
    # whole before it in that run is written again by the next, and the one after reads every entry
    check()
    assert check()[3] == len(entries)


def test_class_mode_children_keep_no_cache(tmp_path):
    # a student's code could write into the next student's check: no child reads or writes one, not
    # even JAX's own (JAX_COMPILATION_CACHE_DIR) where the teacher's environment names one
    ours, theirs = tmp_path / "ours", tmp_path / "jax"
    theirs.mkdir()
    gallery = ROOT / "tests/gallery"
    targets = f"{gallery}/correct.py:backprop", f"{gallery}/buggy.py:sign_flip"
    proc = gradcheck(ours, *targets, JAX_COMPILATION_CACHE_DIR=str(theirs))
    assert proc.returncode == 1, proc.stderr  # one right, one wrong
    assert HIT not in proc.stderr
    assert not ours.exists() and not any(theirs.iterdir())
