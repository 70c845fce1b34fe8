"""Minibatch training: determinism, resume, divergence, options, losses, dtypes and data parallelism."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpnn_jax import ConfigError, DivergenceError, TrainConfig, apply, metrics, train
from mlpnn_jax import checkpoint as ckpt
from mlpnn_jax import epoch as E
from mlpnn_jax.data import load_mnist, scale_pixels
from mlpnn_jax.epoch import make_mesh
from mlpnn_jax.losses import LOSSES
from mlpnn_jax.metrics import confusion_matrix
from mlpnn_jax.optim import make_schedule
from mlpnn_jax.trainer import best_epoch, initial_params, input_stats, load_data, load_resume, should_stop

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
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in full.history]
    # a marker where it was resumed, and the time of the first session kept in elapsed
    assert [h.get("resumed") for h in resumed.history] == [None, True, None]
    assert resumed.history[1]["elapsed"] >= part.history[0]["elapsed"] + resumed.history[1]["seconds"]


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
        ("patience", 0, "patience: expected a positive integer, got 0"),
        ("patience", 3, "patience: expected a validation set to watch (validation > 0), got 3"),
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


@pytest.mark.parametrize(
    ("options", "message"),
    [({"batch_size": 66}, "multiple of the 4 devices"), ({"dtype": "float64"}, "float64 needs 64-bit JAX")],
)
def test_checks_that_need_no_data_come_before_it_loads(tmp_path, options, message):
    """A missing data set would be a DataError: the ConfigError comes first, before any loading."""
    config = small(data_dir=str(tmp_path / "missing"), **options)
    with jax.enable_x64("dtype" not in options), pytest.raises(ConfigError, match=message):
        load_data(config)


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


# (test, validation) accuracy of each epoch; the epoch the run stops after (None: it goes on); the best
CHOICES = [
    # the target is met by the test accuracy at epoch 1, by the validation accuracy only at epoch 2
    ({"target_accuracy": 0.9}, [(0.95, 0.5), (0.95, 0.92), (0.9, 0.91)], 2, 2),
    # a better test accuracy is no new best; a tie is none either: 2 epochs after epoch 1, it stops
    ({"patience": 2}, [(0.5, 0.8), (0.9, 0.8), (0.95, 0.7)], 3, 1),
    ({"patience": 2}, [(0.5, 0.8), (0.5, 0.81), (0.5, 0.7)], None, 2),
    ({"patience": 1, "target_accuracy": 0.99}, [(0.5, 0.8), (0.5, 0.81), (0.5, 0.82)], None, 3),
]


@pytest.mark.parametrize(("options", "accuracies", "stop", "best"), CHOICES)
def test_with_validation_every_choice_uses_it(options, accuracies, stop, best):
    config = small(validation=128, epochs=10, **options)
    history = [
        {"epoch": i, "test_accuracy": t, "validation_accuracy": v} for i, (t, v) in enumerate(accuracies, 1)
    ]
    first = next((i for i in range(1, len(history) + 1) if should_stop(config, history[:i])), None)
    assert first == stop
    assert best_epoch(config, history)["epoch"] == best


def test_without_validation_the_target_is_the_test_accuracy():
    history = [{"epoch": 1, "test_accuracy": 0.95}]
    assert should_stop(small(target_accuracy=0.9), history)
    assert not should_stop(small(target_accuracy=0.96), history)


def test_patience_stops_a_run_that_stopped_improving(small_mnist):
    """lr 1e-9 barely moves the weights: the validation accuracy stays at epoch 1's, its best."""
    flat = {"optimizer": "sgd", "schedule": "constant", "warmup": 0.0, "lr": 1e-9}
    result = train(small(epochs=8, validation=256, patience=2, **flat), small_mnist)
    assert result.epochs_run == 3
    assert len({h["validation_accuracy"] for h in result.history}) == 1


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_each_epoch_records_its_learning_rate(schedule, small_mnist):
    """The lr of each epoch's last step, computed in the jitted epoch, is the optax schedule's."""
    config = small(epochs=3, schedule=schedule)
    lrs = [h["lr"] for h in train(config, small_mnist).history]
    steps = 1024 // config.batch_size
    expected = [float(make_schedule(config, steps)(e * steps - 1)) for e in (1, 2, 3)]
    # the epoch computes it in float32 (u = 6e-8), the host here in float64: measured 1.3e-8 of the peak
    assert lrs == pytest.approx(expected, rel=0, abs=1e-6 * config.lr)
    if schedule == "constant":  # warmed up within epoch 1
        assert lrs == [pytest.approx(config.lr)] * 3
    else:  # past its warm-up, decaying to about 0 at the last step (one step before the end)
        assert lrs[0] > lrs[1] > lrs[2] and lrs[2] < 1e-2 * config.lr


def test_train_epoch_is_pure_and_donates_its_state(small_mnist):
    """The same state, epoch, order and data give the same result (nothing else is read); the state is
    donated; and it is the epoch ``train`` runs."""
    config = small()
    layout = E.layout(config, make_mesh(), 1024, 256, 784)
    data = E.place_data(layout, config, small_mnist, input_stats(small_mnist[0]))
    train_epoch = E.make_train_epoch(config, layout)
    params, outputs, order = initial_params(config, 784), [], E.epoch_order(config, layout, 1)
    for _ in range(2):
        state = E.init_state(config, layout, params)
        outputs.append(jax.device_get(train_epoch(state, np.int32(1), order, data)))
        assert state[0]["W1"].is_deleted()
    assert leaves_equal(*outputs)
    first = train(config, small_mnist, on_epoch=lambda record, result: True)
    assert leaves_equal(first.train_params, outputs[0][0][0])
    assert first.history[0]["train_loss"] == float(outputs[0][1]["train_loss"])


@pytest.mark.parametrize(
    ("options", "shown", "left_out"),
    [
        ({}, {"label_smoothing", "momentum", "augment"}, {"hinge_margin", "focal_gamma", "augment_degrees"}),
        ({"loss": "hinge", "optimizer": "adam"}, {"hinge_margin"}, {"momentum", "focal_gamma"}),
        ({"augment": "elastic", "validation": 8, "patience": 2}, {"patience"}, {"augment_shift"}),
        ({"augment": "both", "target_accuracy": 0.9}, {"augment_shear", "elastic_alpha"}, set()),
        ({"augment": "affine"}, {"augment_scale"}, {"elastic_alpha", "patience", "target_accuracy"}),
    ],
)
def test_the_fields_in_effect(options, shown, left_out):
    config = TrainConfig(**options)
    effect = config.in_effect()
    assert shown <= set(effect) and not left_out & set(effect)
    assert effect == {k: v for k, v in config.to_json().items() if k in effect}


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


@pytest.mark.parametrize("seed", [0, 2**31, 2**32 - 1])
def test_an_int_seed_draws_what_its_key_draws(seed):
    """A seed is made into its key inside the jitted draw (one program to compile): the same params."""
    from mlpnn_jax import init_params

    from_seed = init_params(seed, (5, 4, 3), "glorot", jnp.float32)
    from_key = init_params(jax.random.key(seed), (5, 4, 3), "glorot", jnp.float32)
    assert jax.tree.all(jax.tree.map(np.array_equal, from_seed, from_key))


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


@pytest.mark.parametrize("augment", ["none", "affine"])
def test_uint8_pixels_train_bit_for_bit_as_their_floats(small_mnist_dir, augment):
    """The trainer keeps the raw pixels on the device and scales each batch there (``epoch.unit``):
    the params, metrics and test outputs are those of the same images given as floats in [0, 1]."""
    config = small(augment=augment, epochs=2)
    pixels = load_mnist(small_mnist_dir, dtype="uint8")
    floats = load_mnist(small_mnist_dir)
    assert pixels[0].dtype == np.uint8 and leaves_equal(scale_pixels(pixels[0]), floats[0])
    assert input_stats(pixels[0]) == pytest.approx(input_stats(floats[0]), rel=1e-6)
    stats = input_stats(pixels[0])
    results = []
    for data in (pixels, floats):
        layout = E.layout(config, make_mesh(), 1024, 256, 784)
        dev = E.place_data(layout, config, data, stats)
        state = E.init_state(config, layout, initial_params(config, 784))
        order = E.epoch_order(config, layout, 1)
        results.append(jax.device_get(E.make_train_epoch(config, layout)(state, np.int32(1), order, dev)))
    assert dev.x.dtype == np.float32 and leaves_equal(*results)


def test_input_stats_of_pixels_are_exact():
    """uint8 pixels: the mean and std of pixel / 255 from a histogram, exact to float64 rounding."""
    x = np.random.default_rng(0).integers(0, 256, (300, 7), dtype=np.uint8)
    exact = x.astype(np.float64) / 255
    assert input_stats(x) == pytest.approx((exact.mean(), exact.std()), rel=1e-14)
    with pytest.raises(ConfigError, match="constant"):
        input_stats(np.full((3, 4), 7, np.uint8))


def test_train_returns_the_last_epochs_test_outputs(small_mnist):
    """``TrainResult.test_outputs`` is what ``metrics.classify`` gives for the final params (the report
    and the confusion matrix need no second pass): the same predictions, the same probabilities to
    float32 rounding."""
    result = train(small(epochs=2), small_mnist)
    probs, pred = metrics.classify(result.params, small_mnist[2])
    assert result.test_outputs[0].shape == (256, 10)
    np.testing.assert_allclose(result.test_outputs[0], probs, atol=1e-5)
    assert (result.test_outputs[1] == pred).mean() > 0.99
    assert (result.test_outputs[1] == small_mnist[3]).mean() == result.history[-1]["test_accuracy"]


@pytest.mark.parametrize("validation", [0, 128])
def test_the_epoch_compiles_while_the_data_set_loads(small_mnist_dir, validation):
    """``load_data`` compiles the epoch from the files' headers alone, and the optimizer's init beside
    it; ``train`` then compiles nothing (JAX's compile events name the function)."""
    from jax import monitoring

    config = small(data_dir=str(small_mnist_dir), validation=validation, epochs=1, seed=validation + 7)
    compiled = []

    def listen(event, duration, **labels):  # JAX's listener API: the labels vary by event
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(labels.get("fun_name"))

    monitoring.register_event_duration_secs_listener(listen)
    try:
        data, params, resume = load_data(config)
        assert data[0].dtype == np.uint8 and "jit(train_epoch)" in compiled
        compiled.clear()
        result = train(config, data, params=params, resume=resume)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiled == [] and result.epochs_run == 1
