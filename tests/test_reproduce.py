"""The JAX engine of the notebook's experiment agrees with the numpy reference epoch by epoch; what the
reproduce command prints and writes."""

import re
from pathlib import Path

import numpy as np
import pytest

import reference
from mlpnn_jax.reproduce import run_notebook
from mlpnn_jax.runs import LOCK, REPRODUCE_FILES


@pytest.fixture(scope="module")
def reduced(small_mnist):
    """A reduced problem: 512 training and 128 test images of MNIST, float64."""
    x, y, xt, yt = small_mnist
    return x[:512].astype(np.float64), y[:512], xt[:128].astype(np.float64), yt[:128]


@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_jax_and_numpy_engines_agree_epoch_by_epoch(loss, reduced):
    """40 epochs of full-batch GD from the notebook's (saturated) init, hidden layer of 64.

    Both compute in float64 in different summation orders; the loss curves agree to ~1e-15 relative,
    so 1e-9 is a wide margin that still catches any difference in the algorithm (a different step,
    clip or loss changes the curve at the 1e-3 level or more).
    """
    nets = dict(zip(("ce", "kl"), reference.notebook_networks(n_neuron=64), strict=True))
    net = nets[loss]
    start = net.params
    kept = {k: v.copy() for k, v in start.items()}
    train_np, test_np = reference.run_notebook(net, *reduced, loss=loss, epochs=40, print_every=0)
    seen = []
    params, train_jax, test_jax = run_notebook(
        start,
        reduced,
        loss,
        epochs=40,
        chunk=15,
        on_chunk=lambda first, tr, te: seen.append((first, len(tr))),
    )
    assert seen == [(1, 15), (16, 15), (31, 10)]
    np.testing.assert_allclose(train_jax, train_np, rtol=1e-9)
    np.testing.assert_allclose(test_jax, test_np, rtol=1e-9)
    assert (np.sign(train_jax) == (1 if loss == "ce" else -1)).all()  # KL printed negative
    for k in start:
        np.testing.assert_allclose(np.asarray(params[k]), getattr(net, k), rtol=1e-9, atol=1e-12)
    # the caller's initial params survive the donated jit call
    assert all(np.array_equal(start[k], kept[k]) for k in kept)


def test_float32_engine_follows_float64(reduced):
    start = reference.notebook_init(n_neuron=64)[0]
    _, t64, _ = run_notebook(start, reduced, "ce", epochs=10)
    p32 = {k: v.astype(np.float32) for k, v in start.items()}
    d32 = tuple(a.astype(np.float32) if a.dtype.kind == "f" else a for a in reduced)
    _, t32, _ = run_notebook(p32, d32, "ce", epochs=10)
    assert t32.dtype == np.float32
    # Measured: 1.3e-7 relative, i.e. float32 rounding (u = 6e-8) of a sum over 512 samples, which ten
    # steps of lr 0.1 do not amplify; 1e-5 allows a hundred times that, and any difference in the
    # algorithm between the dtypes would show at 1e-3 or more.
    np.testing.assert_allclose(t32, t64, rtol=1e-5)


def test_early_stop_and_bad_loss(reduced):
    start = reference.notebook_init(n_neuron=8)[0]
    _, train, test = run_notebook(start, reduced, "ce", epochs=30, chunk=10, on_chunk=lambda *a: True)
    assert len(train) == len(test) == 10
    with pytest.raises(ValueError, match="--loss"):
        run_notebook(start, reduced, "mse", epochs=1)


@pytest.mark.parametrize(
    ("epochs", "every", "printed"), [(5, 200, [5]), (6, 4, [4, 6]), (6, 3, [3, 6]), (4, 0, [])]
)
def test_reproduce_prints_its_last_epoch_and_progress_without_a_terminal(
    epochs, every, printed, tmp_path, small_mnist_dir, capsys, monkeypatch
):
    from mlpnn_jax import cli

    monkeypatch.setattr(cli, "PLAIN_PROGRESS_SECONDS", 0.0)  # a line after every chunk, not every 10 s
    argv = ["reproduce", "--loss", "ce", "--epochs", epochs, "--print-every", every, "--hidden", 8]
    code = cli.main([str(a) for a in [*argv, "--data-dir", small_mnist_dir, "--out", tmp_path / "rep"]])
    out, err = capsys.readouterr()
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("[epoch ")]
    assert [int(line[len("[epoch ") :].split("]")[0]) for line in lines] == printed
    progress = [line for line in err.splitlines() if line.startswith("ce: epoch ")]  # stderr: no terminal
    assert progress and progress[-1].startswith(f"ce: epoch {epochs}/{epochs}, ")
    written = {p.name for p in (tmp_path / "rep").iterdir()} - {LOCK}
    assert "ce_params.npz" in written and written <= set(REPRODUCE_FILES)


def _expand(pattern):
    """The names of a shell brace pattern: ``{ce,kl}_confusion.{png,txt}`` -> four names."""
    found = re.search(r"\{([^}]*)\}", pattern)
    if found is None:
        return [pattern]
    head, tail = pattern[: found.start()], pattern[found.end() :]
    return [name for alt in found.group(1).split(",") for name in _expand(head + alt + tail)]


def test_the_readme_lists_every_file_reproduce_writes():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Reproducing the notebook")[1].split("\n## ")[0]
    listed = {name for token in re.findall(r"`([\w{},]+\.[\w{},]+)`", section) for name in _expand(token)}
    assert set(REPRODUCE_FILES) <= listed
