"""The compiled epoch: ``make_train_epoch(config, layout)`` returns a pure jitted ``train_epoch``.

An epoch is one jitted ``lax.scan`` over batches in an order drawn on the host (``shuffle.epoch_order``:
no shuffle to compile) and gathered on the device; the train state is donated, the data
stays on the device, and metrics come back once per epoch. The config is closed over by the factory,
never read while a method traces. Data parallelism is sharding: params are replicated over a
``("batch",)`` mesh of every device and each batch is split across it, so one process, one host of
several GPUs, or several hosts run the same step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mlpnn_jax import optim, shuffle
from mlpnn_jax.augment import draw_steps, warp
from mlpnn_jax.config import ConfigError
from mlpnn_jax.data import NUM_CLASSES, scale_pixels
from mlpnn_jax.losses import get_loss
from mlpnn_jax.model import apply

NOISE_STREAM = 0x6E6F6973  # fold_in of the epoch's key for its augmentation and dropout draws
MAX_STEPS = 2**31 - 1  # optax counts optimizer steps in int32


class EpochData(NamedTuple):
    """An epoch's data on the mesh (``place_data``): x (n, D), y (n,), x_test (m, D), y_test (m,),
    stats (mean, std) as 0-d arrays, validation () or (x (v, D), y (v,))."""

    x: Any
    y: Any
    x_test: Any
    y_test: Any
    stats: Any
    validation: Any


@dataclasses.dataclass(frozen=True)
class Layout:
    """What an epoch needs to know of its data and devices, checked once (``layout``).

    Attributes:
        mesh: the ("batch",) device mesh.  n_train: training images (the validation ones left out).
        steps_per_epoch: optimizer steps an epoch.
        image_shape: (side, side) of the images augmentation distorts; None without augmentation.
        test_sharded, validation_sharded: whether those sets split evenly over the devices.
    """

    mesh: Any
    n_train: int
    steps_per_epoch: int
    image_shape: tuple | None
    test_sharded: bool
    validation_sharded: bool

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())

    @property
    def batch_sharded(self):
        return NamedSharding(self.mesh, P("batch"))


def make_mesh(devices=None):
    """A 1-D ``("batch",)`` mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.sharding.Mesh(np.array(devices), ("batch",))


def check_devices(config, mesh):
    """Raises ConfigError unless every batch splits evenly over the mesh's devices (before any data)."""
    n_dev = mesh.devices.size
    if config.batch_size % n_dev:
        raise ConfigError(
            "batch_size",
            f"expected a multiple of the {n_dev} devices that share each batch, got {config.batch_size}",
        )


def layout(config, mesh, n_images, n_test, input_dim=None):
    """The Layout of ``config`` on ``mesh`` for data of these sizes: every check that needs the data.

    Args:
        config: a TrainConfig.  mesh: the device mesh.
        n_images: the training set's images, the ``config.validation`` held out included.
        n_test: test images.  input_dim: pixels an image (augmentation needs squares); None: unchecked.
    Returns:
        A Layout. Raises ConfigError (naming the field) for data the config cannot train on.
    """
    n_dev, n_val = mesh.devices.size, config.validation
    n_train = n_images - n_val
    if n_val and n_val >= n_images:
        raise ConfigError("validation", f"expected fewer than the {n_images} training images, got {n_val}")
    if n_test == 0:
        raise ConfigError("data_dir", "the test set is empty; accuracy needs at least one test image")
    if config.batch_size > n_train:
        raise ConfigError(
            "batch_size", f"expected at most the {n_train} training samples, got {config.batch_size}"
        )
    steps = n_train // config.batch_size
    if config.epochs * steps > MAX_STEPS:  # the schedules would overflow
        raise ConfigError(
            "epochs",
            f"expected at most {MAX_STEPS // steps} epochs of {steps} steps (optax counts optimizer"
            f" steps in int32), got {config.epochs}",
        )
    shape = _image_shape(config, input_dim)
    return Layout(mesh, n_train, steps, shape, n_test % n_dev == 0, n_val % n_dev == 0)


def _image_shape(config, input_dim):
    """(side, side) of the square images augmentation needs; None without augmentation."""
    if config.augment == "none" or input_dim is None:
        return None
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise ConfigError("augment", f"expected square images to distort, got {input_dim} pixels an image")
    return side, side


def place(layout, tree):
    """``tree`` replicated on every device of the mesh (each process passes the full value)."""
    return jax.tree.map(lambda a: _global_array(np.asarray(a), layout.replicated), tree)


def place_data(layout, config, data, stats, validation=None):
    """The EpochData of (x_train, y_train, x_test, y_test), their (mean, std) and the validation set
    (x (v, D), y (v,)) or None, on the mesh: images of uint8 pixels stay uint8 (``unit``), others
    become the config's dtype."""
    dtype = np.dtype(config.dtype)

    def images_labels(x, y):
        x = np.asarray(x)
        return (x if x.dtype == np.uint8 else x.astype(dtype, copy=False)), np.asarray(y, np.int32)

    x_train, y_train, x_test, y_test = data
    host = (*images_labels(x_train, y_train), *images_labels(x_test, y_test))
    host += ((np.asarray(stats[0], dtype), np.asarray(stats[1], dtype)),)
    return EpochData(*place(layout, (*host, () if validation is None else images_labels(*validation))))


def init_state(config, layout, params):
    """(params, a fresh optimizer state), both replicated on the mesh."""
    params = place(layout, params)
    return params, _init_opt_state(config, layout)(params)


@functools.cache  # one per (config, layout), as the epoch: what compile_init_state compiled, init_state runs
def _init_opt_state(config, layout):
    """The jitted ``init`` of ``config``'s optimizer: params -> its fresh state, replicated on the mesh."""
    optimizer = optim.make_optimizer(config, layout.steps_per_epoch)
    return jax.jit(optimizer.init, out_shardings=layout.replicated)


def compile_init_state(config, layout, params):
    """Compiles ``init_state``'s optimizer init from the params' shapes (``jax.eval_shape`` of them), so
    that it compiles beside the epoch instead of after it (0.1 s). Returns nothing."""
    _init_opt_state(config, layout).lower(_replicated(layout, params)).compile()


def _replicated(layout, tree):
    """The shapes of ``tree``'s leaves (arrays or ShapeDtypeStructs), replicated on the mesh."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=layout.replicated), tree)


@functools.cache  # one jitted epoch per (config, layout): what compile_train_epoch compiled, train runs
def make_train_epoch(config, layout):
    """The compiled epoch of ``config`` on ``layout``: ``train_epoch(state, epoch, order, data)``.

    The returned function is pure and jitted, its state donated: state (params, opt_state) on the mesh,
    epoch an int32 scalar (1-based), order the epoch's batches of image indices ((steps, batch) int32,
    ``epoch_order``), data an EpochData (the model sees (x - mean) / std). Its random draws (dropout,
    augmentation) come from fold_in(key(seed), epoch). It returns (new state, metrics, test outputs):
    metrics are train_loss, test_loss, test_correct, lr (the learning rate of the epoch's last step),
    with validation also validation_loss and validation_correct, as device scalars; the test outputs
    are the class probabilities (m, K) and predicted classes (m,) of the test set, left on the device
    (the caller fetches the last epoch's only). The test and validation sets are evaluated with the
    moving average of the weights when the config keeps one.
    """
    optimizer = optim.make_optimizer(config, layout.steps_per_epoch)
    schedule = optim.make_schedule(config, layout.steps_per_epoch)
    step = _step_fn(config, layout, optimizer)
    evaluate = _evaluate_fn(config)
    bs, nb = config.batch_size, layout.steps_per_epoch
    augment, (_, noisy) = config.augment_config(), _draws(config)
    test_sharding, val_sharding = (
        layout.batch_sharded if sharded else layout.replicated
        for sharded in (layout.test_sharded, layout.validation_sharded)
    )

    def train_epoch(state, epoch, order, data):
        with jax.default_matmul_precision(config.precision):
            xs = (order,)  # the steps' random draws only where they are needed: the plain epoch stays plain
            if noisy:  # step i's keys: split(fold_in(noise_key, i)); its augmentation's draws made here
                key = jax.random.fold_in(jax.random.key(config.seed), epoch)
                noise_key = jax.random.fold_in(key, NOISE_STREAM)
                keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(noise_key, i)))(jnp.arange(nb))
                xs += (draw_steps(keys[:, 0], bs, layout.image_shape, augment, config.dtype), keys[:, 1])
            state, losses = jax.lax.scan(lambda carry, xs: step(carry, xs, data), state, xs)
            ema = optim.ema_params(config, state[1])
            evaluated = state[0] if ema is None else ema
            test_loss, correct, logits = evaluate(
                evaluated, data.x_test, data.y_test, data.stats, test_sharding
            )
            metrics = {"train_loss": jnp.mean(losses.astype(config.dtype)), "test_loss": test_loss}
            metrics.update(test_correct=correct, lr=jnp.asarray(schedule(epoch * nb - 1)))
            if data.validation:
                loss, correct, _ = evaluate(evaluated, *data.validation, data.stats, val_sharding)
                metrics.update(validation_loss=loss, validation_correct=correct)
            return state, metrics, (jax.nn.softmax(logits, axis=-1), jnp.argmax(logits, axis=-1))

    # out_shardings matching the inputs keep one executable for every epoch (else epoch 2 recompiles)
    return jax.jit(train_epoch, donate_argnums=(0,), out_shardings=layout.replicated)


def compile_train_epoch(config, layout, params, n_images, n_test):
    """Compiles ``make_train_epoch(config, layout)`` from shapes alone, so that it can compile while the
    data set loads: the first epoch then finds it compiled. ``params``: the initial params' shapes
    (``jax.eval_shape`` of them); the data: n_images training images (the validation ones included)
    and n_test test images of uint8 pixels. Returns the compiled executable (``jax.stages.Compiled``)."""
    replicated = lambda shape, dtype: _replicated(layout, jax.ShapeDtypeStruct(shape, dtype))  # noqa: E731
    dtype, v, input_dim = jnp.dtype(config.dtype), config.validation, params["W1"].shape[0]
    params = _replicated(layout, params)
    # the shapes from a plain init, not from the jitted one: the main thread compiles that one meanwhile,
    # and tracing it here too raced for its caches (train then compiled it again, 1 run in 3)
    optimizer = optim.make_optimizer(config, layout.steps_per_epoch)
    opt_state = _replicated(layout, jax.eval_shape(optimizer.init, params))
    images = lambda n: (replicated((n, input_dim), jnp.uint8), replicated((n,), jnp.int32))  # noqa: E731
    stats = (replicated((), dtype), replicated((), dtype))
    data = EpochData(*images(n_images - v), *images(n_test), stats, images(v) if v else ())
    epoch = jax.ShapeDtypeStruct((), jnp.int32)
    order = replicated((layout.steps_per_epoch, config.batch_size), jnp.int32)
    return make_train_epoch(config, layout).lower((params, opt_state), epoch, order, data).compile()


def epoch_order(config, layout, epoch):
    """The batches of epoch ``epoch`` (1-based), replicated on the mesh: (steps, batch) int32 indices of
    the training images, from ``shuffle.epoch_order(config.seed, epoch, n_train)`` (the last partial
    batch left out). Every process draws the same."""
    steps, batch = layout.steps_per_epoch, config.batch_size
    order = shuffle.epoch_order(config.seed, epoch, layout.n_train)[: steps * batch]
    return _global_array(order.reshape(steps, batch), layout.replicated)


def _step_fn(config, layout, optimizer):
    """The scan body: one optimizer step on the batch of the indices it is given."""
    batch_loss, augment, (dropout, noisy) = batch_loss_fn(config), config.augment_config(), _draws(config)

    def step(carry, xs, data):
        params, opt_state = carry
        mean, std = data.stats
        idx = jax.lax.with_sharding_constraint(xs[0], layout.batch_sharded)
        xb, dropout_key = unit(data.x[idx], config.dtype), ()
        if noisy:
            plan, drop = xs[1:]
            dropout_key = (drop,) if dropout else ()
            xb = warp(plan, xb, layout.image_shape, augment)
        xb = (xb - mean) / std  # standardizing per batch costs far less than the matmuls
        loss, grads = jax.value_and_grad(batch_loss)(params, xb, data.y[idx], *dropout_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def unit(x, dtype):
    """Images in [0, 1] of ``dtype``: uint8 pixels looked up here, a batch at a time, so that the data set
    stays on the device as bytes (a quarter of float32's memory and traffic). The table of the 256
    values is ``data.scale_pixels``'s, correctly rounded; XLA would compute ``x / 255`` as ``x * (1 /
    255)``, which differs in the last bit for half of them. Float images pass as they are."""
    if x.dtype != jnp.uint8:
        return x
    return jnp.asarray(scale_pixels(np.arange(256, dtype=np.uint8), dtype))[x]


def _draws(config):
    """(dropout, noisy): whether the config drops units, and whether its steps draw random numbers."""
    dropout = bool(config.dropout_input or config.dropout_hidden)
    return dropout, dropout or config.augment != "none"


def batch_loss_fn(config):
    """The mean training loss of a batch, ``f(params, x (B, D), labels (B,)[, dropout key]) -> scalar``."""
    loss = get_loss(config.loss, **config.loss_options())
    eps = config.label_smoothing if config.loss != "smooth_ce" else 0.0

    def f(params, x, labels, key=None):
        if config.compute_dtype:  # bfloat16 compute, float32 master weights: grads come back float32
            params = jax.tree.map(lambda p: p.astype(config.compute_dtype), params)
            x = x.astype(config.compute_dtype)
        dropout = None if key is None else (key, config.dropout_input, config.dropout_hidden)
        logits = apply(params, x, config.activation, dropout).astype(config.dtype)
        targets = labels
        if eps:
            targets = (1 - eps) * jax.nn.one_hot(labels, NUM_CLASSES, dtype=logits.dtype) + eps / NUM_CLASSES
        return jnp.mean(loss(logits, targets))

    return f


def _evaluate_fn(config):
    """``f(params, x (m, D), y (m,), (mean, std), sharding) -> (mean loss (), correct predictions (),
    logits (m, K))``."""
    loss_fn = get_loss(config.loss, **config.loss_options())

    def evaluate(params, x, y, stats, sharding):
        mean, std = stats
        x = jax.lax.with_sharding_constraint((unit(x, config.dtype) - mean) / std, sharding)
        logits = apply(params, x, config.activation)
        loss = jnp.mean(loss_fn(logits, y))
        # a count, not a float32 mean: 9543 / 10000 must compare equal to a target of 0.9543
        return loss, jnp.sum(jnp.argmax(logits, -1) == y), logits

    return evaluate


def _global_array(a, sharding):
    """A global jax.Array from this process's copy of a replicated value (works across hosts)."""
    if jax.process_count() == 1:
        return jax.device_put(a, sharding)
    return jax.make_array_from_process_local_data(sharding, a, a.shape)
