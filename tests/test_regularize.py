"""The frontier options in training: dropout, weight decay, the EMA of the weights, the validation split,
augmentation inside the epoch, presets, and their one-line errors."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpnn_jax import ConfigError, TrainConfig, apply, gradients, train
from mlpnn_jax import checkpoint as ckpt
from mlpnn_jax.cli import main
from mlpnn_jax.config import PRESETS
from mlpnn_jax.metrics import evaluate
from mlpnn_jax.model import _drop, init_params
from mlpnn_jax.optim import track_ema
from mlpnn_jax.options import given_options
from mlpnn_jax.trainer import load_resume

TINY = {"hidden": (16,), "batch_size": 64, "epochs": 2}


@functools.partial(jax.jit, static_argnums=3)
def dropped(params, x, key, rates):
    """The training forward with dropout rates (input, hidden), static as in training."""
    return apply(params, x, "tanh", (key, *rates))


def tiny(**kw):
    return TrainConfig(**{**TINY, **kw})


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def tiny_data(small_mnist, n=256, m=128):
    x, y, xt, yt = small_mnist
    return x[:n], y[:n], xt[:m], yt[:m]


@pytest.mark.parametrize("sizes", [(12, 7, 3), (12, 9, 5, 3)])
def test_dropout_zero_is_the_plain_forward(sizes):
    params = init_params(0, sizes, dtype=jnp.float64)
    x = np.random.default_rng(0).normal(size=(6, sizes[0]))
    plain = jax.jit(apply)(params, x)
    np.testing.assert_array_equal(dropped(params, x, jax.random.key(1), (0.0, 0.0)), plain)
    for rates in [(0.3, 0.0), (0.0, 0.3)]:
        assert not np.allclose(dropped(params, x, jax.random.key(1), rates), plain)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_expected_value(rate):
    n = 400_000
    kept = np.asarray(jax.jit(_drop, static_argnums=2)(jax.random.key(2), jnp.ones(n, jnp.float64), rate))
    assert set(np.unique(kept)) == {0.0, 1 / (1 - rate)}
    # the mean of n independent draws of 1 / (1 - rate) Bernoulli(1 - rate): std sqrt(rate / (1 - rate) / n)
    assert abs(kept.mean() - 1) < 5 * np.sqrt(rate / (1 - rate) / n)


def test_hidden_dropout_keeps_the_expected_logits():
    """With one hidden layer, dropout of the hidden units is linear in the mask: E[logits] = logits."""
    params = init_params(0, (12, 40, 3), dtype=jnp.float64)
    x = np.random.default_rng(0).normal(size=(5, 12))
    keys = jax.random.split(jax.random.key(3), 20_000)
    draws = jax.vmap(lambda k: dropped(params, x, k, (0.0, 0.5)))(keys)
    sem = np.asarray(draws.std(0)) / np.sqrt(len(keys))
    assert (np.abs(np.asarray(draws.mean(0)) - np.asarray(apply(params, x))) < 5 * sem).all()


def test_dropout_trains_but_evaluation_is_plain(small_mnist):
    data = tiny_data(small_mnist)
    plain = train(tiny(dtype="float64"), data)
    dropped = train(tiny(dtype="float64", dropout_input=0.2, dropout_hidden=0.5), data)
    assert not leaves_equal(plain.train_params, dropped.train_params)
    _, accuracy = evaluate(dropped.params, data[2], data[3])  # no dropout: what the history reports
    assert accuracy == dropped.history[-1]["test_accuracy"]


def test_validation_rows_are_not_trained_on_nor_in_the_stats(small_mnist):
    x, y, xt, yt = tiny_data(small_mnist, n=320)
    held = train(tiny(dtype="float64", validation=64), (x, y, xt, yt))
    without = train(tiny(dtype="float64"), (x[:256], y[:256], xt, yt))
    assert held.input_stats == without.input_stats
    assert leaves_equal(held.train_params, without.train_params)
    cm_accuracy = evaluate(held.params, x[256:], y[256:])[1]
    assert [h["validation_accuracy"] for h in held.history][-1] == cm_accuracy
    assert [h["test_accuracy"] for h in held.history] == [h["test_accuracy"] for h in without.history]
    assert "validation_accuracy" not in without.history[0]


# optimizer: the first update of params p with gradient g (decay wd, lr), by hand
FIRST_STEP = {
    "sgd": lambda p, g, wd, lr, key: p - lr * (g + wd * p * key.startswith("W")),
    "momentum": lambda p, g, wd, lr, key: p - lr * 1.9 * (g + wd * p * key.startswith("W")),  # Nesterov 0.9
    "adam": lambda p, g, wd, lr, key: p - lr * _adam_direction(g + wd * p * key.startswith("W")),
    "adamw": lambda p, g, wd, lr, key: p - lr * (_adam_direction(g) + wd * p),  # decoupled, every param
}


def _adam_direction(g):
    """adam's first step direction: m / (sqrt(v) + eps) with bias-corrected m = g, v = g^2."""
    return g / (np.abs(g) + 1e-8)


@pytest.mark.parametrize("optimizer", list(FIRST_STEP))
@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_weight_decay_one_step_equals_the_hand_computation(small_mnist, optimizer, decay):
    x, y, xt, yt = tiny_data(small_mnist, n=64)
    config = tiny(
        dtype="float64", optimizer=optimizer, weight_decay=decay, epochs=1, lr=0.01, schedule="constant",
        warmup=0.0, label_smoothing=0.0, standardize=False,
    )  # fmt: skip
    p0 = jax.tree.map(np.asarray, init_params(config.seed, (784, 16, 10), dtype=jnp.float64))
    g = gradients(p0, x.astype(np.float64), y, loss="ce")  # one full batch: the mean over all 64
    got = train(config, (x, y, xt, yt), params=p0).train_params
    for k in p0:
        np.testing.assert_allclose(got[k], FIRST_STEP[optimizer](p0[k], g[k], decay, 0.01, k), rtol=1e-9)


def test_ema_transformation_is_the_closed_form():
    d, p0 = 0.8, {"W1": jnp.array([1.0, -2.0])}
    ema = track_ema(d)
    state, params, seen = ema.init(p0), p0, []
    for u in (0.5, -1.5, 3.0):
        updates = {"W1": jnp.full(2, u)}
        passed, state = ema.update(updates, state, params)
        assert passed is updates
        params = {"W1": params["W1"] + u}
        seen.append(params["W1"])
    closed = d**3 * p0["W1"] + (1 - d) * (d**2 * seen[0] + d * seen[1] + seen[2])
    np.testing.assert_allclose(state.ema["W1"], closed, rtol=1e-12)


def test_training_evaluates_and_returns_the_ema(small_mnist):
    data = tiny_data(small_mnist)
    config = tiny(dtype="float64", ema_decay=0.7, epochs=3, batch_size=256, standardize=False)  # 1 step/epoch
    seen = []
    p0 = jax.tree.map(np.asarray, init_params(config.seed, (784, 16, 10), dtype=jnp.float64))
    result = train(config, data, params=p0, on_epoch=lambda r, res: seen.append(res.train_params))
    d = config.ema_decay
    for k in p0:
        closed = d**3 * p0[k] + (1 - d) * (d**2 * seen[0][k] + d * seen[1][k] + seen[2][k])
        np.testing.assert_allclose(result.params[k], closed, rtol=1e-12, atol=1e-15)
    assert evaluate(result.params, data[2], data[3])[1] == result.history[-1]["test_accuracy"]


@pytest.mark.parametrize(
    "options",
    [{"augment": "affine"}, {"augment": "both", "dropout_hidden": 0.2, "ema_decay": 0.9, "validation": 64}],
)
def test_augmentation_is_deterministic_and_resumes_equal(small_mnist, tmp_path, options):
    """Epoch 1 of the interrupted run equals the full run's (history), epochs 2-3 resumed equal it too."""
    data = tiny_data(small_mnist, n=320)
    config = tiny(epochs=3, **options)
    full = train(config, data)
    assert not leaves_equal(train(tiny(epochs=3), data).train_params, full.train_params)
    part = train(config, data, on_epoch=lambda record, result: record["epoch"] == 1)
    meta = {"config": config.to_json(), "epoch": 1, "history": part.history}
    ckpt.save(
        tmp_path / ckpt.CHECKPOINT,
        part.train_params,
        part.opt_state,
        {**meta, "input_stats": [*part.input_stats]},
    )
    resumed = train(config, data, resume=load_resume(tmp_path / ckpt.CHECKPOINT, config))
    assert leaves_equal(resumed.train_params, full.train_params)
    assert leaves_equal(resumed.opt_state, full.opt_state)
    assert [h.get("resumed") for h in resumed.history] == [None, True, None]  # where it was resumed
    drop = ("seconds", "elapsed", "resumed")
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in full.history
    ]


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"fast"}))
def test_presets_fill_in_and_explicit_options_override(name):
    from mlpnn_jax.cli import build_parser

    assert TrainConfig.from_preset(preset="fast") == TrainConfig()
    preset = TrainConfig.from_preset(preset=name)
    assert PRESETS[name] and all(getattr(preset, k) == v for k, v in PRESETS[name].items())
    args = build_parser().parse_args(["train", "--preset", name, "--epochs", "2", "--ema-decay", "0"])
    config = TrainConfig.from_preset(**given_options(args))
    assert config == dataclasses.replace(preset, epochs=2, ema_decay=0.0)
    # a config rebuilt from all its fields (resume, replace) keeps them, whatever its preset
    assert TrainConfig.from_json(config.to_json()) == config
    assert dataclasses.replace(config, seed=1).epochs == 2


def test_the_presets_are_the_commands_the_readme_measured():
    """The README's figures are of these flags; a preset that drifts from them has no figures."""
    as_flags = lambda name: dataclasses.replace(TrainConfig.from_preset(preset=name), preset="fast")  # noqa: E731
    frontier = TrainConfig(augment="affine", ema_decay=0.999, epochs=150)
    assert as_flags("frontier") == frontier
    deep = dataclasses.replace(frontier, hidden=(1000, 500), activation="relu", augment="both", epochs=200)
    assert as_flags("deep") == deep


def test_a_config_saved_before_these_options_resumes_as_it_was():
    """Its weight_decay (1e-4 by default) was adamw's alone: momentum runs get none, adamw keeps it."""
    old = {
        k: v for k, v in TrainConfig().to_json().items() if k in TINY or k in ("optimizer", "weight_decay")
    }
    assert TrainConfig.from_json({**old, "weight_decay": 1e-4}).decay == 0.0
    assert TrainConfig.from_json({**old, "weight_decay": 1e-3, "optimizer": "adamw"}).decay == 1e-3


def test_augmentation_needs_square_images(small_mnist):
    x, y, xt, yt = tiny_data(small_mnist)
    with pytest.raises(ConfigError, match="augment: expected square images to distort, got 780 pixels"):
        train(tiny(augment="affine"), (x[:, :780], y, xt[:, :780], yt))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "slow"], "--preset: expected one of fast, frontier, deep, got 'slow'"),
        (["--augment", "warp"], "--augment: expected one of none, affine, elastic, both"),
        (["--augment-degrees", "-1"], "--augment-degrees: expected in [0, 180]"),
        (["--augment-scale", "1.2", "0.9"], "--augment-scale: expected two numbers 0 < low <= high"),
        (["--augment-scale", "1.1"], "--augment-scale: expected two numbers"),
        (["--augment-shear", "-0.1"], "--augment-shear: expected a finite number >= 0"),
        (["--augment-shift", "inf"], "--augment-shift: expected a finite number >= 0"),
        (["--elastic-alpha", "-3"], "--elastic-alpha: expected a finite number >= 0"),
        (["--elastic-sigma", "0"], "--elastic-sigma: expected a finite number > 0"),
        (["--dropout-input", "1"], "--dropout-input: expected in [0, 1)"),
        (["--dropout-hidden", "-0.5"], "--dropout-hidden: expected in [0, 1)"),
        (["--weight-decay=-1e-4"], "--weight-decay: expected a finite number >= 0"),
        (["--ema-decay", "1"], "--ema-decay: expected in [0, 1)"),
        (["--validation", "-1"], "--validation: expected an integer >= 0"),
        (["--validation", "1024"], "--validation: expected fewer than the 1024 training images, got 1024"),
    ],
)
def test_bad_new_options_exit_2_with_one_line(capsys, tmp_path, small_mnist_dir, argv, message):
    code = main(["train", *argv, "--data-dir", str(small_mnist_dir), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_reports_validation_and_evaluate_uses_the_ema(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    argv = [
        "--hidden",
        "32",
        "--batch-size",
        "64",
        "--epochs",
        "2",
        "--validation",
        "128",
        "--ema-decay",
        "0.9",
    ]
    code = main(
        ["train", *argv, "--augment", "affine", "--data-dir", str(small_mnist_dir), "--out", str(out)]
    )
    stdout = capsys.readouterr().out
    assert code == 0 and stdout.count("val acc") == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"validation_loss", "validation_accuracy"} <= set(rows[-1])
    assert main(["evaluate", str(out), "--json"]) == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == pytest.approx(rows[-1]["test_accuracy"], abs=1e-6)
