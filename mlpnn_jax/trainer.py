"""Minibatch training with optax, jit-compiled: the compiled epoch and the loop around it.

An epoch is one jitted ``lax.scan`` over batches drawn from a permutation made on the device; the train
state is donated, the data stays on the device, and metrics come back once per epoch. Data parallelism is
sharding: params are replicated over a ``("batch",)`` mesh of every device and each batch is split
across it, so one process, one host of several GPUs, or several hosts run the same step.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mlpnn_jax import optim
from mlpnn_jax.augment import draw_steps, warp
from mlpnn_jax.config import ConfigError, TrainConfig
from mlpnn_jax.losses import get_loss
from mlpnn_jax.model import apply, init_params
from mlpnn_jax.optim import check_memory, make_optimizer

NUM_CLASSES = 10
NOISE_STREAM = 0x6E6F6973  # fold_in of the epoch's key for its augmentation and dropout draws


def _same(name):
    return name


class DivergenceError(RuntimeError):
    """The loss became NaN, infinite or exploded at ``epoch``; ``last_good`` is the TrainResult (on the
    host) of the epoch before, or None. The advice names the config field to change (``field``);
    ``describe(name)`` renders it with ``name(field)`` (the CLI passes its flags)."""

    def __init__(self, message, epoch, last_good=None, field="lr"):
        super().__init__(message)
        self.message, self.epoch, self.last_good, self.field = message, epoch, last_good, field

    def describe(self, name=_same):
        return f"{self.message}: lower {name(self.field)}"

    def __str__(self):
        return self.describe()


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        train_params, opt_state: the state training continues from (in standardized coordinates).
        input_stats: (mean, std) the inputs were standardized with; (0.0, 1.0) when not.
        history: one metrics dict per epoch (epoch, train_loss, test_loss, test_accuracy, with
            validation: validation_loss, validation_accuracy; seconds, elapsed).
        config: the TrainConfig.
        params (property): the trained params for raw pixels in [0, 1], standardization folded in: the
            moving average of the weights when the config keeps one (ema_decay), as evaluated.
    """

    train_params: dict
    opt_state: Any
    input_stats: tuple
    history: list
    config: TrainConfig

    @property
    def epochs_run(self):
        return len(self.history)

    @functools.cached_property
    def params(self):
        ema = optim.ema_params(self.config, self.opt_state)
        params = self.train_params if ema is None else ema
        return fold_input_stats(jax.tree.map(np.asarray, params), self.input_stats)


def input_stats(x_train, standardize=True):
    """(mean, std) of all training pixels, as Python floats; (0.0, 1.0) without standardization."""
    if not standardize:
        return 0.0, 1.0
    x = np.asarray(x_train)
    # Row sums in the data's dtype (784 terms each: exact enough), then the 60000 row totals in float64:
    # accurate, and without a float64 copy of the data set (~1 s on a laptop for MNIST).
    n = x.size
    mean = float(x.sum(axis=1).sum(dtype=np.float64)) / n
    mean_sq = float(np.einsum("ij,ij->i", x, x).sum(dtype=np.float64)) / n
    std = math.sqrt(max(mean_sq - mean**2, 0.0))
    if not std > 0 or x.min() == x.max():  # exact: rounding leaves constant inputs a std of ~1e-5
        raise ConfigError(
            "standardize", "the training inputs are constant, so they cannot be standardized; turn it off"
        )
    return mean, std


def fold_input_stats(params, stats):
    """Params for raw x from params for (x - mean) / std: W1 / std, and b1 - mean / std * sum_i W1[i]."""
    mean, std = stats
    if (mean, std) == (0.0, 1.0):
        return dict(params)
    w1 = params["W1"]
    return {**params, "W1": w1 / std, "b1": params["b1"] - (mean / std) * w1.sum(0)}


def make_mesh(devices=None):
    """A 1-D ``("batch",)`` mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.sharding.Mesh(np.array(devices), ("batch",))


def _batch_loss_fn(config):
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


class Trainer:
    """The compiled pieces of one training configuration on one mesh.

    Args:
        config: a TrainConfig.
        n_train: the number of training samples (validation images not included).
        mesh: the device mesh (default: all devices).
        n_test, n_validation: the sizes of the test and validation sets.
        input_dim: pixels per image; augmentation needs square images.
    """

    def __init__(self, config, n_train, mesh=None, n_test=None, n_validation=0, input_dim=None):
        self.config = config
        self.mesh = make_mesh() if mesh is None else mesh
        n_dev = self.mesh.devices.size
        if n_test == 0:
            raise ConfigError("data_dir", "the test set is empty; accuracy needs at least one test image")
        if config.batch_size > n_train:
            raise ConfigError(
                "batch_size", f"expected at most the {n_train} training samples, got {config.batch_size}"
            )
        if config.batch_size % n_dev:
            raise ConfigError(
                "batch_size",
                f"expected a multiple of the {n_dev} devices that share each batch, got {config.batch_size}",
            )
        self.steps_per_epoch = n_train // config.batch_size
        self.image_shape = _image_shape(config, input_dim)
        self.augment_config = config.augment_config()
        self.dropout = bool(config.dropout_input or config.dropout_hidden)
        self.noisy = self.dropout or config.augment != "none"  # draws random numbers every step
        total = config.epochs * self.steps_per_epoch
        if total > _MAX_STEPS:  # optax counts steps in int32; the schedules would overflow
            raise ConfigError(
                "epochs",
                f"expected at most {_MAX_STEPS // self.steps_per_epoch} epochs of {self.steps_per_epoch}"
                f" steps (optax counts optimizer steps in int32), got {config.epochs}",
            )
        self.optimizer = make_optimizer(config, self.steps_per_epoch)
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharded = NamedSharding(self.mesh, P("batch"))
        # out_shardings matching the inputs keep one executable for every epoch (else epoch 2 recompiles)
        self._epoch = jax.jit(self._epoch_impl, donate_argnums=(0,), out_shardings=self.replicated)
        # the test set is split over the devices too, where its size allows
        self.test_sharding = self.batch_sharded if n_test and n_test % n_dev == 0 else self.replicated
        self.validation_sharding = self.batch_sharded if n_validation % n_dev == 0 else self.replicated

    def init_state(self, params):
        """(params, a fresh optimizer state), both replicated on the mesh."""
        params = self.place(params)
        return params, jax.jit(self.optimizer.init, out_shardings=self.replicated)(params)

    def place(self, tree):
        """``tree`` replicated on every device of the mesh (each process passes the full value)."""
        return jax.tree.map(lambda a: _global_array(np.asarray(a), self.replicated), tree)

    def place_data(self, data, stats, validation=None):
        """The data set, its (mean, std) and the validation set (x (v, D), y (v,)) or None, on the mesh
        in the config's dtype: ``epoch``'s ``data``."""
        dtype = np.dtype(self.config.dtype)
        images_labels = lambda x, y: (np.asarray(x, dtype), np.asarray(y, np.int32))  # noqa: E731
        x_train, y_train, x_test, y_test = data
        host = (*images_labels(x_train, y_train), *images_labels(x_test, y_test))
        host += ((np.asarray(stats[0], dtype), np.asarray(stats[1], dtype)),)
        return self.place((*host, () if validation is None else images_labels(*validation)))

    def _epoch_impl(self, state, epoch, x, y, x_test, y_test, stats, validation):
        """One epoch: state, epoch (), x (n, D), y (n,), x_test (m, D), y_test (m,), (mean, std),
        validation () or (x (v, D), y (v,)) -> (state, metrics: a dict of device scalars)."""
        params, opt_state = state
        bs, nb = self.config.batch_size, self.steps_per_epoch
        key = jax.random.fold_in(jax.random.key(self.config.seed), epoch)
        perm = jax.random.permutation(key, x.shape[0])[: nb * bs].reshape(nb, bs)
        xs = (perm,)  # the steps' random draws only where they are needed: the plain epoch stays plain
        if self.noisy:  # step i's keys: split(fold_in(noise_key, i)); its augmentation's draws made here
            noise_key = jax.random.fold_in(key, NOISE_STREAM)
            keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(noise_key, i)))(jnp.arange(nb))
            xs += (draw_steps(keys[:, 0], bs, self.image_shape, self.augment_config, x.dtype), keys[:, 1])
        step = self._step_fn(x, y, stats)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), xs)
        ema = optim.ema_params(self.config, opt_state)
        evaluated = params if ema is None else ema
        test_loss, correct = self._evaluate(evaluated, x_test, y_test, stats, self.test_sharding)
        metrics = {"train_loss": jnp.mean(losses.astype(self.config.dtype)), "test_loss": test_loss}
        metrics["test_correct"] = correct
        if validation:
            loss, correct = self._evaluate(evaluated, *validation, stats, self.validation_sharding)
            metrics.update(validation_loss=loss, validation_correct=correct)
        return (params, opt_state), metrics

    def _step_fn(self, x, y, stats):
        """The scan body: one optimizer step on the batch of the indices it is given."""
        (mean, std), batch_loss = stats, _batch_loss_fn(self.config)

        def step(carry, xs):
            params, opt_state = carry
            idx = jax.lax.with_sharding_constraint(xs[0], self.batch_sharded)
            xb, dropout_key = x[idx], ()
            if self.noisy:
                plan, drop = xs[1:]
                dropout_key = (drop,) if self.dropout else ()
                xb = warp(plan, xb, self.image_shape, self.augment_config)
            xb = (xb - mean) / std  # standardizing per batch costs far less than the matmuls
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, y[idx], *dropout_key)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return step

    def _evaluate(self, params, x, y, stats, sharding):
        """(mean loss (), correct predictions () int) of params on x (m, D), labels y (m,)."""
        mean, std = stats
        x = jax.lax.with_sharding_constraint((x - mean) / std, sharding)
        logits = apply(params, x, self.config.activation)
        loss = jnp.mean(get_loss(self.config.loss, **self.config.loss_options())(logits, y))
        # a count, not a float32 mean: 9543 / 10000 must compare equal to a target of 0.9543
        return loss, jnp.sum(jnp.argmax(logits, -1) == y)

    def epoch(self, state, epoch, data):
        """Runs epoch number ``epoch`` (1-based) on ``state`` (donated).

        Args:
            state: (params, opt_state) on the mesh.  epoch: its shuffle is fold_in(key(seed), epoch).
            data: ``place_data``'s (x_train, y_train, x_test, y_test, (mean, std), validation) on the
                mesh; the model sees (x - mean) / std.
        Returns:
            (new state, metrics): train_loss, test_loss, test_correct (and validation_loss,
            validation_correct) as device scalars; the test and validation sets are evaluated with the
            moving average of the weights when the config keeps one.
        """
        with jax.default_matmul_precision(self.config.precision):
            return self._epoch(state, np.int32(epoch), *data)


def _image_shape(config, input_dim):
    """(side, side) of the square images augmentation needs; None without augmentation."""
    if config.augment == "none" or input_dim is None:
        return None
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise ConfigError("augment", f"expected square images to distort, got {input_dim} pixels an image")
    return side, side


def _global_array(a, sharding):
    """A global jax.Array from this process's copy of a replicated value (works across hosts)."""
    if jax.process_count() == 1:
        return jax.device_put(a, sharding)
    return jax.make_array_from_process_local_data(sharding, a, a.shape)


_MAX_STEPS = 2**31 - 1


def load_resume(path, config, input_dim=None):
    """The ``resume`` dict for ``train`` from a checkpoint of ``config`` (see ``checkpoint.save``).

    The optimizer state's tree structure comes from ``jax.eval_shape`` of the config's optimizer: no
    arrays are made for it, and a checkpoint of another optimizer is a CheckpointError. Every field is
    validated against the config, and W1 against ``input_dim`` (the data's pixels) where it is known.
    """
    from mlpnn_jax import checkpoint

    params = checkpoint.load(path, parse_config=type(config).from_json)[0]
    if input_dim is not None:
        checkpoint.check_input_dim(path, params, input_dim)
    template = jax.eval_shape(
        make_optimizer(config, 1).init, params
    )  # its structure: not the schedule's length
    params, opt_state, meta = checkpoint.load(path, template, parse_config=type(config).from_json)
    return {
        "train_params": params,
        "opt_state": opt_state,
        **{k: meta[k] for k in ("history", "input_stats")},
    }


def saved_params(path):
    """(params for raw pixels, TrainConfig) of a train checkpoint, as the run evaluated them: the moving
    average of the weights when it kept one, with the input standardization folded in."""
    from mlpnn_jax import checkpoint

    params, _, meta = checkpoint.load(path)
    config = TrainConfig.from_json(meta["config"])
    if config.ema_decay:
        params = optim.ema_params(config, load_resume(path, config)["opt_state"])
    return fold_input_stats(params, meta["input_stats"]), config


# loss name: f(config) -> the loss of a uniform guess (zero logits) for a one-hot target, K classes
_UNIFORM_LOSS = {
    "ce": lambda c: math.log(NUM_CLASSES),
    "kl": lambda c: math.log(NUM_CLASSES),
    "smooth_ce": lambda c: math.log(NUM_CLASSES),  # uniform p: the same against any target distribution
    "mse": lambda c: (NUM_CLASSES - 1) / NUM_CLASSES,  # (1 - 1/K)^2 + (K - 1) / K^2
    "focal": lambda c: (1 - 1 / NUM_CLASSES) ** c.focal_gamma * math.log(NUM_CLASSES),
    "hinge": lambda c: (NUM_CLASSES - 1) * c.hinge_margin,  # every other class within the margin
}


def divergence_limit(config):
    """The training loss that counts as divergence: 100 times the loss of a uniform guess.

    A tanh net's loss stays finite however far it diverges, so NaN alone would miss it; no trained or
    fresh net comes near 100 x log 10 = 230 (CE). Closed forms: no compile, no numpy reference needed.
    """
    uniform = _UNIFORM_LOSS[config.loss](config)
    return 100 * uniform if uniform > 0 else math.inf


def _check_dtype(config):
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "dtype", "float64 needs 64-bit JAX; call jax.config.update('jax_enable_x64', True) first"
        )


def initial_params(config, input_dim):
    """The params ``config`` starts from, for inputs of ``input_dim`` features."""
    sizes = (input_dim, *config.hidden, NUM_CLASSES)
    return init_params(config.seed, sizes, config.init, jnp.dtype(config.dtype))


def load_data(config, resume_from=None):
    """Loads ``config``'s data set in a thread while the initial params compile (start-up overlaps).

    Args:
        config: a TrainConfig (its data_dir and dtype).
        resume_from: a checkpoint path to continue from instead (it loads while the data set does).
    Returns:
        (data (x_train, y_train, x_test, y_test), params or None, resume dict or None), ready for
        ``train(config, data, params=params, resume=resume)``. params is None when resuming, or when
        the image size cannot be read ahead of the data set (``train`` then makes them).
    """
    from mlpnn_jax import checkpoint
    from mlpnn_jax.data import image_size, load_mnist

    _check_dtype(config)
    params = resume = None
    dim = image_size(config.data_dir)  # None unless the file's header is sound
    check_memory(config, dim or 784)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="load_mnist") as pool:
        loading = pool.submit(load_mnist, config.data_dir, dtype=config.dtype)
        if resume_from is not None:
            resume = load_resume(resume_from, config, dim)
        elif dim:
            params = initial_params(config, dim)
        data = loading.result()
    if resume is not None:
        checkpoint.check_input_dim(resume_from, resume["train_params"], data[0].shape[1])
    elif dim != data[0].shape[1]:
        check_memory(config, data[0].shape[1])
    return data, params, resume


def train(config, data, *, params=None, mesh=None, resume=None, on_epoch=None, started=None):
    """Trains an MLP on ``data`` as ``config`` says.

    Args:
        config: a TrainConfig.
        data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)) arrays, e.g. ``load_mnist()``
            (``load_data`` loads them while the initial params compile).
        params: the initial params (default: ``initial_params(config, D)``); ignored when resuming.
        mesh: the ("batch",) device mesh; default all devices.
        resume: a dict with the ``train_params``, ``opt_state``, ``input_stats`` and ``history`` of an
            earlier run of the same config (see ``load_resume``), to continue from its last epoch.
        on_epoch: ``on_epoch(record, result)`` after every epoch, with that epoch's metrics dict and a
            TrainResult of the state so far, copied to the host (the device buffers are donated to the
            next epoch); returning True stops training (on every process, if any one returns True).
        started: the ``time.perf_counter()`` the records' ``elapsed`` counts from (default: this call),
            e.g. taken before ``load_data``, so that it includes loading.
    Returns:
        A TrainResult. Raises DivergenceError (with ``last_good``, the host TrainResult of the last
        good epoch, or None) when a loss becomes NaN or infinite, or explodes.
    """
    _check_dtype(config)
    clock = {"start": time.perf_counter() if started is None else started}
    data, validation = split_validation(config, data)
    x_train, _, x_test, _ = data
    n_val = 0 if validation is None else len(validation[1])
    trainer = Trainer(config, x_train.shape[0], mesh, x_test.shape[0], n_val, x_train.shape[1])
    state, stats, history = _start(trainer, x_train, params, resume)
    dev_data = trainer.place_data(data, stats, validation)
    last_good = None
    clock["last"] = time.perf_counter()
    for epoch in range(len(history) + 1, config.epochs + 1):
        new_state, metrics = trainer.epoch(state, epoch, dev_data)
        record = _record(epoch, metrics, (x_test.shape[0], n_val), clock)
        _check_divergence(config, record, last_good)
        state = new_state
        history.append(record)
        last_good = TrainResult(*jax.device_get(state), stats, list(history), config)
        stop = bool(on_epoch(record, last_good)) if on_epoch is not None else False
        if _stop_together(stop) or _reached(config, record):
            break
    # its own copy of the history: a result kept from epoch 1 stays at epoch 1
    return TrainResult(*state, stats, list(history), config)


def split_validation(config, data):
    """(data without its last ``config.validation`` training images, those images (x, y) or None)."""
    x, y, x_test, y_test = data
    n, v = x.shape[0], config.validation
    if not v:
        return data, None
    if v >= n:
        raise ConfigError("validation", f"expected fewer than the {n} training images, got {v}")
    return (x[: n - v], y[: n - v], x_test, y_test), (x[n - v :], y[n - v :])


def _start(trainer, x_train, params, resume):
    """(state on the mesh, input stats, history) of a fresh run or of ``resume``."""
    config = trainer.config
    if resume is not None:
        state = trainer.place(resume["train_params"]), trainer.place(resume["opt_state"])
        return state, tuple(resume["input_stats"]), list(resume["history"])
    stats = input_stats(x_train, config.standardize)
    if params is None or params["W1"].shape[0] != x_train.shape[1]:
        params = initial_params(config, x_train.shape[1])
    return trainer.init_state(params), stats, []


def _record(epoch, metrics, sizes, clock):
    """The metrics dict of one epoch, from its device scalars and the (test, validation) set sizes."""
    now = time.perf_counter()
    metrics = jax.device_get(metrics)
    record = {"epoch": epoch, "train_loss": float(metrics["train_loss"])}
    for name, size in zip(("test", "validation"), sizes, strict=True):
        if f"{name}_loss" in metrics:
            record[f"{name}_loss"] = float(metrics[f"{name}_loss"])
            record[f"{name}_accuracy"] = int(metrics[f"{name}_correct"]) / size
    record.update(seconds=now - clock["last"], elapsed=now - clock["start"])
    clock["last"] = now
    return record


def _check_divergence(config, record, last_good):
    """Raises DivergenceError if this epoch's loss is NaN, infinite or past the divergence limit."""
    train_loss, test_loss, limit = record["train_loss"], record["test_loss"], divergence_limit(config)
    finite = math.isfinite(train_loss) and math.isfinite(test_loss)
    if finite and train_loss <= limit:
        return
    what = "became non-finite" if not finite else f"exploded past {limit:.4g}"
    raise DivergenceError(
        f"epoch {record['epoch']}: the loss {what} (train {train_loss:.4g}, test {test_loss:.4g});"
        f" the learning rate {config.lr:g} is probably too high for {config.optimizer}"
        f" with a {config.schedule} schedule",
        record["epoch"],
        last_good,
    )


def _stop_together(stop):
    """True on every process if any process asks to stop: one left in the next all-reduce would hang."""
    if jax.process_count() > 1:
        return bool(multihost_utils.process_allgather(np.array(stop)).any())
    return stop


def _reached(config, record):
    return config.target_accuracy is not None and record["test_accuracy"] >= config.target_accuracy
