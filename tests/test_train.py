"""Minibatch training: determinism, resume, divergence, options, losses, dtypes and data parallelism."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpnn_jax import ConfigError, DivergenceError, TrainConfig, apply, train
from mlpnn_jax import checkpoint as ckpt
from mlpnn_jax.epoch import make_mesh
from mlpnn_jax.losses import LOSSES
from mlpnn_jax.metrics import confusion_matrix
from mlpnn_jax.trainer import input_stats, load_resume

SMALL = {"hidden": (32,), "batch_size": 64, "epochs": 2}


def small(**kw):
    return TrainConfig(**{**SMALL, **kw})


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_same_seed_same_numbers(small_mnist):
    a = train(small(seed=3), small_mnist)
    b = train(small(seed=3), small_mnist)
    c = train(small(seed=4), small_mnist)
    strip = [{k: v for k, v in h.items() if k not in ("seconds", "elapsed")} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k not in ("seconds", "elapsed")} for h in b.history]
    assert leaves_equal(a.train_params, b.train_params)
    assert not leaves_equal(a.train_params, c.train_params)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_resume_equals_an_uninterrupted_run(small_mnist, tmp_path, optimizer):
    config = small(epochs=3, optimizer=optimizer, lr=1e-3 if optimizer == "adam" else 0.05)
    full = train(config, small_mnist)
    part = train(config, small_mnist, on_epoch=lambda record, result: record["epoch"] == 1)
    assert part.epochs_run == 1
    # through a checkpoint on disk, as the CLI does it
    path = tmp_path / ckpt.CHECKPOINT
    meta = {
        "config": config.to_json(),
        "epoch": 1,
        "history": part.history,
        "input_stats": list(part.input_stats),
    }
    ckpt.save(path, part.train_params, part.opt_state, meta)
    resumed = train(config, small_mnist, resume=load_resume(path, config))
    assert resumed.epochs_run == 3
    assert leaves_equal(resumed.train_params, full.train_params)
    assert leaves_equal(resumed.opt_state, full.opt_state)
    assert [h["test_loss"] for h in resumed.history] == [h["test_loss"] for h in full.history]


def test_divergence_names_the_epoch(small_mnist):
    with pytest.raises(
        DivergenceError, match=r"epoch 1: the loss (became non-finite|exploded past 230.3).*lower lr"
    ) as e:
        train(small(lr=1e4, optimizer="sgd", schedule="constant", warmup=0.0), small_mnist)
    assert e.value.epoch == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("loss", "l2", "loss: expected one of"),
        ("lr", -0.1, "lr: expected a positive number, got -0.1"),
        ("lr", float("nan"), "lr: expected a positive number"),
        ("hidden", (0,), "hidden: expected one or more positive layer sizes, got [0]"),
        ("hidden", (), "hidden"),
        ("epochs", 0, "epochs"),
        ("batch_size", 0, "batch_size"),
        ("optimizer", "rmsprop", "optimizer"),
        ("schedule", "step", "schedule"),
        ("label_smoothing", 1.0, "label_smoothing"),
        ("target_accuracy", 1.5, "target_accuracy"),
        ("dtype", "float16", "dtype"),
    ],
)
def test_bad_options_are_one_line_config_errors(option, value, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{option: value})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_batch_larger_than_data_and_device_count(small_mnist):
    with pytest.raises(ConfigError, match="batch_size: expected at most the 1024 training samples"):
        train(small(batch_size=2048), small_mnist)
    with pytest.raises(ConfigError, match="multiple of the 4 devices"):
        train(small(batch_size=66), small_mnist)


def test_float64_needs_x64(small_mnist):
    with jax.enable_x64(False), pytest.raises(ConfigError, match="dtype: float64 needs 64-bit JAX"):
        train(small(dtype="float64"), small_mnist)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains(loss, small_mnist):
    result = train(small(loss=loss, epochs=3), small_mnist)
    assert result.history[-1]["test_accuracy"] > 0.6  # chance is 0.1; 48 steps on 1024 images


@pytest.mark.parametrize(
    "options",
    [
        {"dtype": "float64"},
        {"compute_dtype": "bfloat16"},
        {"hidden": (48, 24), "activation": "relu", "init": "lecun"},
        {"optimizer": "adamw", "lr": 2e-3, "schedule": "cosine"},
        {"optimizer": "sgd", "schedule": "constant", "warmup": 0.1},
        {"loss": "kl", "label_smoothing": 0.1},
        {"init": "notebook", "hidden": (16,), "optimizer": "sgd", "lr": 0.01, "standardize": False},
    ],
)
def test_options_train_and_keep_dtypes(options, small_mnist):
    config = small(**options)
    result = train(config, small_mnist)
    assert all(v.dtype == jnp.dtype(config.dtype) for v in jax.tree.leaves(result.train_params))
    losses = [h["train_loss"] for h in result.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    if config.init != "notebook":  # its unscaled draws saturate every unit: slow to learn, by design
        assert result.history[-1]["test_accuracy"] > 0.3


def test_returned_params_take_raw_pixels(small_mnist):
    """Standardization is folded into W1 and b1: apply(result.params, raw) = the trained model."""
    x, _, xt, yt = small_mnist
    result = train(small(dtype="float64"), small_mnist)
    mean, std = result.input_stats
    assert mean == pytest.approx(x.mean(dtype=np.float64), rel=1e-6)
    assert std == pytest.approx(x.std(dtype=np.float64), rel=1e-6)
    raw = np.asarray(apply(result.params, xt.astype(np.float64)))
    trained = np.asarray(apply(result.train_params, (xt.astype(np.float64) - mean) / std))
    np.testing.assert_allclose(raw, trained, rtol=1e-10, atol=1e-10)
    accuracy = np.mean(raw.argmax(1) == yt)
    assert accuracy == pytest.approx(result.history[-1]["test_accuracy"], abs=1e-12)


def test_input_stats_and_confusion_matrix():
    x = np.random.default_rng(0).random((50, 7)).astype(np.float32)
    mean, std = input_stats(x)
    assert mean == pytest.approx(x.astype(np.float64).mean(), rel=1e-6)
    assert std == pytest.approx(x.astype(np.float64).std(), rel=1e-6)
    assert input_stats(x, standardize=False) == (0.0, 1.0)
    with pytest.raises(ConfigError, match="constant"):
        input_stats(np.zeros((3, 4)))
    from sklearn.metrics import confusion_matrix as sk

    y, p = np.random.default_rng(1).integers(0, 10, (2, 500))
    np.testing.assert_array_equal(confusion_matrix(y, p), sk(y, p, labels=range(10)))


def test_results_given_to_on_epoch_are_snapshots(small_mnist):
    """Each epoch's result is a host copy: it outlives the donated device buffers and keeps its epoch."""
    seen = []
    final = train(small(epochs=3), small_mnist, on_epoch=lambda record, result: seen.append(result))
    assert [r.epochs_run for r in seen] == [1, 2, 3]
    assert np.isfinite(seen[0].params["W1"]).all()  # readable after training went on
    assert leaves_equal(seen[-1].train_params, final.train_params)
    assert not leaves_equal(seen[0].train_params, final.train_params)


def test_target_accuracy_stops_early(small_mnist):
    result = train(small(epochs=5, target_accuracy=0.5), small_mnist)
    first = next(h["epoch"] for h in result.history if h["test_accuracy"] >= 0.5)
    assert result.epochs_run == first < 5


def test_four_devices_equal_one_device(small_mnist):
    """Data parallelism changes where the arithmetic runs, not its result (float64, 1e-9 relative)."""
    assert len(jax.devices()) == 4  # tests/conftest.py forces four host devices
    config = TrainConfig(
        hidden=(64,), epochs=1, dtype="float64", optimizer="sgd", lr=0.1, seed=0, batch_size=64
    )
    one = train(config, small_mnist, mesh=make_mesh(jax.devices()[:1]))
    four = train(config, small_mnist, mesh=make_mesh())
    h1, h4 = one.history[-1], four.history[-1]
    assert h4["test_loss"] == pytest.approx(h1["test_loss"], rel=1e-9)
    assert h4["test_accuracy"] == h1["test_accuracy"]
    # the params really live on four devices, replicated
    assert len(four.train_params["W1"].sharding.device_set) == 4


def test_config_json_round_trip():
    config = small(hidden=(10, 5), target_accuracy=0.9)
    again = TrainConfig.from_json(config.to_json())
    assert again == config and dataclasses.asdict(again) == dataclasses.asdict(config)
    with pytest.raises(ConfigError, match="unknown keys"):
        TrainConfig.from_json({**config.to_json(), "colour": "red"})


@pytest.mark.parametrize(
    ("scheme", "variance"), [("glorot", lambda i, o: 2 / (i + o)), ("lecun", lambda i, o: 1 / i)]
)
def test_init_schemes_draw_their_variance(scheme, variance):
    """Truncated-normal weights with the scheme's variance (784000 draws: std error ~0.2%), zero biases."""
    from mlpnn_jax import init_params

    params = init_params(0, (784, 1000, 10), scheme, jnp.float64)
    for i, (fan_in, fan_out) in enumerate([(784, 1000), (1000, 10)], start=1):
        w = np.asarray(params[f"W{i}"])
        assert w.shape == (fan_in, fan_out) and params[f"W{i}"].dtype == jnp.float64
        assert w.var() == pytest.approx(variance(fan_in, fan_out), rel=0.05)
        assert (
            np.abs(w).max() <= 2 * np.sqrt(variance(fan_in, fan_out)) / 0.8796 + 1e-12
        )  # truncated at 2 std
        assert not np.asarray(params[f"b{i}"]).any()
    assert not np.array_equal(params["W1"], init_params(1, (784, 1000, 10), scheme, jnp.float64)["W1"])


@pytest.mark.parametrize("loss", list(LOSSES))
def test_divergence_limit_is_100_uniform_guesses(loss):
    """The closed forms of the divergence limit equal 100 x the loss itself at zero logits (one-hot)."""
    from mlpnn_jax.losses import get_loss
    from mlpnn_jax.trainer import divergence_limit

    config = TrainConfig(loss=loss, focal_gamma=1.5, hinge_margin=0.7)
    uniform = get_loss(loss, **config.loss_options())(jnp.zeros((1, 10)), jnp.array([3]))[0]
    assert divergence_limit(config) == pytest.approx(100 * float(uniform), rel=1e-12)


def test_training_does_not_import_the_reference():
    """The numpy reference is the spec, not a dependency of training."""
    code = (
        "import sys, numpy as np, mlpnn_jax as mj\n"
        "rng = np.random.default_rng(0)\n"
        "x, y = rng.random((64, 12), np.float32), rng.integers(0, 10, 64)\n"
        "mj.train(mj.TrainConfig(hidden=(4,), batch_size=16, epochs=1), (x, y, x[:16], y[:16]))\n"
        "assert 'reference' not in sys.modules, 'reference imported'\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
