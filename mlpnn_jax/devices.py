"""JAX's start-up for a command: platform, 64-bit mode, multi-host set-up and the persistent compilation
cache, before JAX touches a device."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import warnings
from pathlib import Path

CACHE_ENV = "MLPNN_JAX_CACHE_DIR"  # the compilation cache's folder; set but empty: no cache
# what JAX warns when a cache entry cannot be read or written (it compiles the program instead), naming
# the program, whose name begins those of its entries ("jit_train_epoch-<64 hex>-cache"), or the entry
CACHE_WARNING = "Error (?:reading|writing) persistent compilation cache"
_DAMAGED = re.compile(CACHE_WARNING + r" entry for '([^']+)'")
_ENTRY = r"(?:-[0-9a-f]{64})?-(?:cache|atime)"  # after the name: an entry, or its access time (eviction)
_mending = []  # the folder whose damaged entries this process removes (mend_damaged_entries)


class SetupError(ValueError):
    """A platform or multi-host option that cannot work here: one line naming the flag."""


def setup_jax(
    x64=False,
    platform=None,
    deterministic=False,
    coordinator=None,
    num_processes=None,
    process_id=None,
    distributed=False,
    cache=None,
):
    """Starts JAX as a command asks; returns the jax module.

    Args:
        x64: turn on 64-bit JAX.  platform: "cpu", "gpu" or "tpu" (default: what JAX finds).
        deterministic: GPU: deterministic XLA ops (an XLA flag, so it is set before the backend starts).
        coordinator, num_processes, process_id: multi-host set-up (all three, or none).
        distributed: multi-host with the cluster's auto-detection (SLURM, TPU pods, ...).
        cache: the folder of the persistent compilation cache (``cache_dir()``), or None: none. A folder
            the user gave JAX itself (JAX_COMPILATION_CACHE_DIR) is kept.
    """
    if deterministic:  # read when the backend starts, so set it first
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true"
        ).strip()
    import jax

    if platform:
        jax.config.update("jax_platforms", {"gpu": "cuda"}.get(platform, platform))
    if x64:
        jax.config.update("jax_enable_x64", True)
    if cache is not None and not jax.config.jax_compilation_cache_dir:
        for name, value in cache_settings(cache).items():
            jax.config.update(name, value)
        mend_damaged_entries(cache)
    if coordinator or num_processes:
        if not (coordinator and num_processes and process_id is not None):
            raise SetupError("--coordinator, --num-processes and --process-id go together")
        if platform in (None, "cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif distributed:
        jax.distributed.initialize()  # the cluster's auto-detection (SLURM, TPU pods, ...)
    try:
        jax.devices()
    except (RuntimeError, AssertionError) as e:  # a platform that is not here: jax 0.10 asserts
        why = (str(e).splitlines() or [""])[0] or "JAX found no device of it"
        raise SetupError(f"--platform {platform}: no such backend here ({why})") from None
    return jax


def cache_dir():
    """The folder of the persistent compilation cache: $MLPNN_JAX_CACHE_DIR (set but empty: none), else
    $XDG_CACHE_HOME/mlpnn-jax, else ~/.cache/mlpnn-jax; made if missing (private to this user). None
    where there is none, or it cannot be made, is not a folder this user owns and can write, or others
    can write to it (what they wrote there would run as this user's programs)."""
    given = os.environ.get(CACHE_ENV)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    try:
        if given is not None:
            path = Path(given).expanduser() if given else None
        else:  # the XDG spec: a relative XDG_CACHE_HOME is ignored
            path = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "mlpnn-jax"
        if path is None:
            return None
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    private = st.st_uid == os.getuid() and not st.st_mode & 0o022
    return path if private and os.access(path, os.W_OK | os.X_OK) else None


def cache_settings(cache):
    """JAX's config values that keep every compiled program in the folder ``cache``; as environment
    variables their names are upper-case (JAX reads ``JAX_COMPILATION_CACHE_DIR`` at import). The
    user's JAX_ENABLE_COMPILATION_CACHE=false still turns the cache off."""
    return {
        "jax_compilation_cache_dir": str(cache),
        # our programs compile in 0.02-1 s each: JAX's default keeps only those over 1 s
        "jax_persistent_cache_min_compile_time_secs": 0.0,
    }


def cache_environment(cache):
    """The environment variables that give a child process ``cache_settings(cache)``, or (``cache``
    None) turn JAX's cache off; a value None means: remove the variable."""
    if cache is None:
        return {"JAX_ENABLE_COMPILATION_CACHE": "false", "JAX_COMPILATION_CACHE_DIR": None}
    # CACHE_ENV too: the child knows the folder is ours to mend (``mend_damaged_entries``)
    return {CACHE_ENV: str(cache), **{k.upper(): str(v) for k, v in cache_settings(cache).items()}}


def mend_damaged_entries(cache):
    """JAX's warning of a cache entry it could not read or write (a run killed while writing it, a full
    disk) is not shown: the entries of that program are removed instead, so that this run writes them
    again. (JAX compiles the program afresh, but never replaces an entry it finds: a damaged one would
    be compiled afresh in every run after.) Other warnings are shown as before."""
    shown = warnings.showwarning
    warnings.filterwarnings("always", message=CACHE_WARNING)  # each one: "default" shows one per line
    _mending[:] = [Path(cache)]

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not mended(message):
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def mended(message):
    """Whether ``message`` is JAX's warning of a damaged cache entry; if so, that program's entries (each
    shape's: the warning names no more) are removed from the folder this process mends, if any."""
    found = _DAMAGED.match(str(message))
    for entry in _entries(found[1]) if found else ():
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            entry.unlink()
    return found is not None


def _entries(name):
    """The entries of the program (or entry) ``name`` in the folder this process mends; none if none."""
    pattern = re.compile(re.escape(name) + _ENTRY)
    try:
        return [e for e in _mending[0].iterdir() if pattern.fullmatch(e.name)] if _mending else []
    except OSError:  # the folder gone or unreadable: nothing to mend
        return []


def free_memory():
    """Bytes the default device can still allocate, as far as the system says; None if it does not.

    Accelerators: the device's allocator limit less what is in use. CPU: the least of the memory the
    kernel calls available, the cgroup's limit less its usage, and the address-space limit
    (RLIMIT_AS) less what this process has mapped.
    """
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0) if "bytes_limit" in stats else None
    found = [_meminfo("MemAvailable:"), _cgroup_free()]
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        found.append(soft - (_status_kb("VmSize:") or 0) * 1024)
    found = [f for f in found if f is not None]
    return min(found) if found else None


def _meminfo(key, path="/proc/meminfo"):
    """A ``KEY: N kB`` line of a /proc file, in bytes; None where there is none."""
    try:
        with open(path) as f:
            line = next((line for line in f if line.startswith(key)), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def _status_kb(key):
    value = _meminfo(key, "/proc/self/status")
    return None if value is None else value // 1024


def _cgroup_free():
    """The cgroup (v2) memory limit less its usage; None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used
