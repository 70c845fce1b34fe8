"""Test set-up: four CPU devices and 64-bit JAX, both fixed before JAX starts.

Four host devices let the data-parallel tests shard batches on a machine without accelerators; x64 lets
the validation tests work in float64. Every array the package makes has an explicit dtype, so float32
code paths stay float32.

Compiled programs are shared between the tests of one session through JAX's compilation cache in a
temporary directory: each ``train`` call jits a fresh epoch whose XLA compile takes seconds and whose run
on the small test sets takes milliseconds, and many tests train the same configuration several times (a
full run, an interrupted one, its resumption). The cache hands back the executable XLA built for the
same program, so what runs is unchanged. Child processes (``python -m mlpnn_jax`` and gradcheck's
children) keep theirs as a user's do, in a folder of this session (MLPNN_JAX_CACHE_DIR) instead of the
user's cache folder; tests/test_faults.py starts its children without one, cold, so that a signal timed
to land in the start-up does.

Under pytest-xdist (one worker per core) each worker's numpy uses one BLAS thread: two workers each
spinning two OpenBLAS threads on two cores made the per-example checks of 784-wide nets 5-10x slower.
"""

import os
import shutil
import subprocess
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # JAX_PLATFORMS= (empty) runs the tests on an accelerator
# ... where every pytest-xdist worker is a process of its own: none may take 75% of the device's memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

if os.environ.get("PYTEST_XDIST_WORKER"):  # before numpy loads OpenBLAS; the children inherit it
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import jax

jax.config.update("jax_enable_x64", True)
_XLA_CACHE = tempfile.mkdtemp(prefix="mlpnn-jax-test-xla-cache-")
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)  # a config value: not inherited by children
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
os.environ["MLPNN_JAX_CACHE_DIR"] = os.path.join(_XLA_CACHE, "children")  # inherited by children

import pytest  # noqa: E402

from mlpnn_jax.data import load_mnist, write_mnist  # noqa: E402


def pytest_unconfigure(config):
    shutil.rmtree(_XLA_CACHE, ignore_errors=True)


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size)``: a fresh tmpfs of ``size`` bytes; skips the test where mounting is not permitted."""
    mounted = []

    def mount(size, name="fs"):
        d = tmp_path / name
        d.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True, text=True
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}): needs root")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST, float32, loaded once."""
    return load_mnist()


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory, mnist):
    """A small MNIST-format set on disk (the first 1024 training and 256 test images of MNIST)."""
    x, y, xt, yt = mnist
    return write_mnist(tmp_path_factory.mktemp("small_mnist"), x[:1024], y[:1024], xt[:256], yt[:256])


@pytest.fixture(scope="session")
def small_mnist(small_mnist_dir):
    """The small set as arrays (float32)."""
    return load_mnist(small_mnist_dir)
