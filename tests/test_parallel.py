"""Data parallelism: 4 CPU devices give the 1-device result; two processes train together as one.

Each run is a fresh `mlpnn-jax` process, since the device count and the distributed runtime are
fixed when JAX starts. The runs train on the small MNIST set (1024 training and 256 test images, eight
steps of 128): where the arithmetic runs does not depend on how much data there is, a sharding mistake (a
batch reduced per device, a wrong shard) changes every step's gradient, far beyond the 1e-9 allowed, and
the full set made these the slowest tests of the suite (two processes with gloo collectives: 468 steps).
"""

import json
import os
import socket
import subprocess
import sys

import pytest

# The command (one epoch, float64, plain SGD), on the small set: see above.
COMMAND = ["--epochs", "1", "--hidden", "64", "--dtype", "float64", "--optimizer", "sgd", "--lr", "0.1"]
COMMAND += ["--seed", "0", "--platform", "cpu"]


def mlpnn(args, devices=1, **popen):
    """Starts `python -m mlpnn_jax ARGS` with ``devices`` host CPU devices."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, "-m", "mlpnn_jax", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def last_metrics(run_dir):
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def command(small_mnist_dir):
    return [*COMMAND, "--data-dir", small_mnist_dir]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, command):
    out = tmp_path_factory.mktemp("one") / "run"
    finish(mlpnn(["train", *command, "--out", out]))
    return last_metrics(out)


def test_four_devices_match_one(tmp_path, command, one_device):
    out = tmp_path / "four"
    log = finish(mlpnn(["train", *command, "--out", out], devices=4))
    assert "on 4 cpu device(s)" in log
    four = last_metrics(out)
    assert four["test_loss"] == pytest.approx(one_device["test_loss"], rel=1e-9)
    assert four["test_accuracy"] == one_device["test_accuracy"]


def test_two_processes_train_together(tmp_path, command, one_device):
    """Two processes on 127.0.0.1 (one CPU device each, gloo collectives) end where one process does."""
    out = tmp_path / "two"
    port = free_port()
    cluster = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", 2]
    procs = [mlpnn(["train", *command, "--out", out, *cluster, "--process-id", i]) for i in (0, 1)]
    logs = [finish(p) for p in procs]
    assert "on 2 cpu device(s)" in logs[0]
    assert "epoch" not in logs[1]  # only process 0 prints ...
    two = last_metrics(out)  # ... and writes
    assert two["test_loss"] == pytest.approx(one_device["test_loss"], rel=1e-9)
    assert two["test_accuracy"] == one_device["test_accuracy"]


def test_batch_not_divisible_by_devices_is_a_usage_error(tmp_path, command):
    proc = mlpnn(["train", *command, "--batch-size", 130, "--out", tmp_path / "r"], devices=4)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "--batch-size: expected a multiple of the 4 devices that share each batch, got 130" in out
