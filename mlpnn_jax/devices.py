"""JAX's start-up for a command: platform, 64-bit mode and multi-host set-up, before JAX touches a device."""

from __future__ import annotations

import os


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
    except RuntimeError as e:
        raise SetupError(f"--platform {platform}: no such backend here ({str(e).splitlines()[0]})") from None
    return jax
