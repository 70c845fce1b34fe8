"""JAX's start-up for a command: platform, 64-bit mode and multi-host set-up, before JAX touches a device."""

from __future__ import annotations

import os
import resource
from pathlib import Path


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
):
    """Starts JAX as a command asks; returns the jax module.

    Args:
        x64: turn on 64-bit JAX.  platform: "cpu", "gpu" or "tpu" (default: what JAX finds).
        deterministic: GPU: deterministic XLA ops (an XLA flag, so it is set before the backend starts).
        coordinator, num_processes, process_id: multi-host set-up (all three, or none).
        distributed: multi-host with the cluster's auto-detection (SLURM, TPU pods, ...).
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
