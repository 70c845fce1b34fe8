"""Minibatch training with optax: the loop around the compiled epoch (``epoch.make_train_epoch``).

The stages, each handing one value on: the config (checked on its own), ``load_data`` (the data set, and
the initial params or a checkpoint's state), ``epoch.layout`` (every check that needs the data), the
placed state and data, then one jitted epoch after another, each turned into a history record on the
host. With a validation set every choice (``target_accuracy``, ``patience``, the best epoch) is made on
its accuracy; the test set is measured and reported, never used to choose.
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
from jax.experimental import multihost_utils

from mlpnn_jax import checkpoint, optim
from mlpnn_jax import epoch as E
from mlpnn_jax.config import ConfigError, TrainConfig
from mlpnn_jax.data import NUM_CLASSES
from mlpnn_jax.model import init_params
from mlpnn_jax.optim import check_memory, make_optimizer


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
        test_outputs: (class probabilities (m, K), predicted classes (m,)) of the test set by the last
            epoch's evaluated params, numpy (``metrics.classify``'s, without a second pass); None
            when this session ran no epoch.
        params (property): the trained params for raw pixels in [0, 1], standardization folded in: the
            moving average of the weights when the config keeps one (ema_decay), as evaluated.
    """

    train_params: dict
    opt_state: Any
    input_stats: tuple
    history: list
    config: TrainConfig
    test_outputs: tuple | None = None

    @property
    def epochs_run(self):
        return len(self.history)

    @functools.cached_property
    def params(self):
        ema = optim.ema_params(self.config, self.opt_state)
        params = self.train_params if ema is None else ema
        return fold_input_stats(jax.tree.map(np.asarray, params), self.input_stats)


def input_stats(x_train, standardize=True):
    """(mean, std) of all training pixels in [0, 1], as Python floats; (0.0, 1.0) without
    standardization. ``x_train``: (n, D) floats in [0, 1], or uint8 pixels 0..255 (``epoch.unit``)."""
    if not standardize:
        return 0.0, 1.0
    x = np.asarray(x_train)
    mean, mean_sq = _pixel_moments(x) if x.dtype == np.uint8 else _float_moments(x)
    std = math.sqrt(max(mean_sq - mean**2, 0.0))
    if not std > 0 or x.min() == x.max():  # exact: rounding leaves constant inputs a std of ~1e-5
        raise ConfigError(
            "standardize", "the training inputs are constant, so they cannot be standardized; turn it off"
        )
    return mean, std


def _pixel_moments(x):
    """(mean, mean square) of uint8 pixels / 255, from exact integer sums (squares a block of rows at a
    time: no copy of the data set)."""
    total = int(x.sum(dtype=np.uint64))
    blocks = np.array_split(x, max(1, x.size // 2**22))
    squares = sum(int(np.square(b, dtype=np.uint32).sum(dtype=np.uint64)) for b in blocks)
    return total / 255 / x.size, squares / 255**2 / x.size


def _float_moments(x):
    """(mean, mean square) of float pixels, without a float64 copy of the data set (~1 s on a laptop)."""
    # Row sums in the data's dtype (784 terms each: exact enough), then the 60000 row totals in float64.
    n = x.size
    return float(x.sum(axis=1).sum(dtype=np.float64)) / n, float(
        np.einsum("ij,ij->i", x, x).sum(dtype=np.float64)
    ) / n


def fold_input_stats(params, stats):
    """Params for raw x from params for (x - mean) / std: W1 / std, and b1 - mean / std * sum_i W1[i]."""
    mean, std = stats
    if (mean, std) == (0.0, 1.0):
        return dict(params)
    w1 = params["W1"]
    return {**params, "W1": w1 / std, "b1": params["b1"] - (mean / std) * w1.sum(0)}


def load_resume(saved, config, input_dim=None):
    """The ``resume`` dict for ``train`` from a checkpoint of ``config`` (see ``checkpoint.save``).

    Args:
        saved: the checkpoint as ``checkpoint.read`` returned it (read once per command), or its path.
        config: its TrainConfig.  input_dim: the data's pixels, checked against W1 where known.
    Returns:
        {"train_params", "opt_state", "history", "input_stats"}. The optimizer state's tree structure
        comes from ``jax.eval_shape`` of the config's optimizer (no arrays made for it); a checkpoint of
        another optimizer is a CheckpointError.
    """
    if not isinstance(saved, checkpoint.Saved):
        saved = checkpoint.read(saved, parse_config=type(config).from_json)
    if input_dim is not None:
        checkpoint.check_input_dim(saved.path, saved.params, input_dim)
    template = jax.eval_shape(make_optimizer(config, 1).init, saved.params)  # not the schedule's length
    return {
        "train_params": saved.params,
        "opt_state": saved.opt_state(template),
        **{k: saved.meta[k] for k in ("history", "input_stats")},
    }


def saved_params(saved):
    """(params for raw pixels, TrainConfig) of a train checkpoint (``checkpoint.read``'s Saved), as the
    run evaluated them: the moving average of the weights when it kept one, standardization folded in."""
    config = TrainConfig.from_json(saved.meta["config"])
    params = saved.params
    if config.ema_decay:
        params = optim.ema_params(config, load_resume(saved, config)["opt_state"])
    return fold_input_stats(params, saved.meta["input_stats"]), config


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


def check_start(config, mesh=None):
    """Raises ConfigError for what the config cannot run on this process's JAX, before any data loads:
    float64 without 64-bit JAX, a batch that does not split over the mesh's devices."""
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "dtype", "float64 needs 64-bit JAX; call jax.config.update('jax_enable_x64', True) first"
        )
    E.check_devices(config, E.make_mesh() if mesh is None else mesh)


def initial_params(config, input_dim):
    """The params ``config`` starts from, for inputs of ``input_dim`` features."""
    sizes = (input_dim, *config.hidden, NUM_CLASSES)
    return init_params(config.seed, sizes, config.init, jnp.dtype(config.dtype))


def load_data(config, resume_from=None, pixels=None):
    """Loads ``config``'s data set in a thread while the initial params and the epoch compile.

    Args:
        config: a TrainConfig (its data_dir and dtype).
        resume_from: a checkpoint to continue from instead, as ``checkpoint.read`` returned it.
        pixels: the data set already loading, ``data.load_pixels_async(config.data_dir)`` (the command
            starts it before JAX imports); None starts it here.
    Returns:
        (data (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)), params or None, resume dict or
        None), ready for ``train(config, data, params=params, resume=resume)``. The images are uint8
        pixels 0..255: the device scales each batch (``epoch.unit``), and they take a quarter of
        float32's memory. params is None when resuming, or when the image size cannot be read ahead of
        the data set (``train`` then makes them).
    """
    from mlpnn_jax.data import image_sizes, load_pixels_async

    check_start(config)
    loading = load_pixels_async(config.data_dir) if pixels is None else pixels
    params = resume = None
    sizes = image_sizes(config.data_dir)  # None unless the files' headers are sound
    dim = sizes[2] if sizes else None
    check_memory(config, dim or 784)
    layout = _early_layout(config, sizes)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile") as pool:
        if layout:
            shapes = jax.eval_shape(functools.partial(initial_params, config, sizes[2]))
            compiling = pool.submit(E.compile_train_epoch, config, layout, shapes, *sizes[:2])
        if resume_from is not None:
            resume = load_resume(resume_from, config, dim)
        elif dim:
            params = initial_params(config, dim)
            if layout:
                E.compile_init_state(config, layout, shapes)
        data = loading.result()
        if layout:
            compiling.result()
    if resume is not None:
        checkpoint.check_input_dim(resume_from.path, resume["train_params"], data[0].shape[1])
    elif dim != data[0].shape[1]:
        check_memory(config, data[0].shape[1])
    return data, params, resume


def _early_layout(config, sizes):
    """The Layout of the data set the headers' ``sizes`` describe, to compile for while it loads; None
    without sizes, or where the config cannot train on them: the data set's own checks then speak
    first (e.g. an empty training set names its file), and ``train`` checks the layout again."""
    if not sizes:
        return None
    try:
        return E.layout(config, E.make_mesh(), *sizes)
    except ConfigError:
        return None


def train(config, data, *, params=None, mesh=None, resume=None, on_epoch=None, started=None):
    """Trains an MLP on ``data`` as ``config`` says.

    Args:
        config: a TrainConfig.
        data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)) arrays, e.g. ``load_mnist()``
            (``load_data`` loads them while the initial params compile).
        params: the initial params (default: ``initial_params(config, D)``); ignored when resuming.
        mesh: the ("batch",) device mesh; default all devices.
        resume: a dict with the ``train_params``, ``opt_state``, ``input_stats`` and ``history`` of an
            earlier run of the same config (see ``load_resume``), to continue from its last epoch; its
            first new record says ``resumed: True``, and ``elapsed`` goes on from the last one's.
        on_epoch: ``on_epoch(record, result)`` after every epoch, with that epoch's metrics dict and a
            TrainResult of the state so far, copied to the host (the device buffers are donated to the
            next epoch); returning True stops training (on every process, if any one returns True).
        started: the ``time.perf_counter()`` the records' ``elapsed`` counts from (default: this call),
            e.g. taken before ``load_data``, so that it includes loading.
    Returns:
        A TrainResult. Raises DivergenceError (with ``last_good``, the host TrainResult of the last
        good epoch, or None) when a loss becomes NaN or infinite, or explodes.
    """
    mesh = E.make_mesh() if mesh is None else mesh
    check_start(config, mesh)
    clock = {"start": time.perf_counter() if started is None else started}
    layout = E.layout(config, mesh, data[0].shape[0], data[2].shape[0], data[0].shape[1])
    data, validation = split_validation(config, data)
    x_train, _, x_test, _ = data
    state, stats, history = _start(config, layout, x_train, params, resume)
    dev_data = E.place_data(layout, config, data, stats, validation)
    train_epoch, last_good, outputs = E.make_train_epoch(config, layout), None, None
    clock.update(last=time.perf_counter(), before=history[-1]["elapsed"] if history else 0.0)
    order = E.epoch_order(config, layout, len(history) + 1)
    for epoch in range(len(history) + 1, config.epochs + 1):
        new_state, metrics, outputs = train_epoch(state, np.int32(epoch), order, dev_data)
        if epoch < config.epochs:  # drawn on the host while the device runs this epoch
            order = E.epoch_order(config, layout, epoch + 1)
        record = _record(epoch, metrics, (x_test.shape[0], config.validation), clock)
        if resume is not None and epoch == len(resume["history"]) + 1:
            record["resumed"] = True  # where the run was continued
        _check_divergence(config, record, last_good)
        state = new_state
        history.append(record)
        last_good = TrainResult(*jax.device_get(state), stats, list(history), config)
        stop = bool(on_epoch(record, last_good)) if on_epoch is not None else False
        if _stop_together(stop) or should_stop(config, history):
            break
    # its own copy of the history: a result kept from epoch 1 stays at epoch 1
    outputs = None if outputs is None else tuple(jax.device_get(outputs))
    return TrainResult(*state, stats, list(history), config, outputs)


def split_validation(config, data):
    """(data without its last ``config.validation`` training images, those images (x, y) or None);
    ``epoch.layout`` has checked that some are left."""
    x, y, x_test, y_test = data
    n, v = x.shape[0], config.validation
    if not v:
        return data, None
    return (x[: n - v], y[: n - v], x_test, y_test), (x[n - v :], y[n - v :])


def _start(config, layout, x_train, params, resume):
    """(state on the mesh, input stats, history) of a fresh run or of ``resume``."""
    if resume is not None:
        state = E.place(layout, resume["train_params"]), E.place(layout, resume["opt_state"])
        return state, tuple(resume["input_stats"]), list(resume["history"])
    stats = input_stats(x_train, config.standardize)
    if params is None or params["W1"].shape[0] != x_train.shape[1]:
        params = initial_params(config, x_train.shape[1])
    return E.init_state(config, layout, params), stats, []


def _record(epoch, metrics, sizes, clock):
    """The metrics dict of one epoch, from its device scalars and the (test, validation) set sizes;
    ``elapsed`` adds the time of the run's earlier sessions (``clock["before"]``)."""
    metrics = jax.device_get(metrics)  # waits for the epoch: its time is the wait's end
    now = time.perf_counter()
    record = {"epoch": epoch, "train_loss": float(metrics["train_loss"])}
    for name, size in zip(("test", "validation"), sizes, strict=True):
        if f"{name}_loss" in metrics:
            record[f"{name}_loss"] = float(metrics[f"{name}_loss"])
            record[f"{name}_accuracy"] = int(metrics[f"{name}_correct"]) / size
    record.update(lr=float(metrics["lr"]), seconds=now - clock["last"])
    record["elapsed"] = clock["before"] + now - clock["start"]
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


def chosen_accuracy(config):
    """The record key every choice is made on: validation_accuracy with a validation set, else
    test_accuracy (then the test set both chooses and reports: no held-out figure)."""
    return "validation_accuracy" if config.validation else "test_accuracy"


def best_epoch(config, history):
    """The record of the first epoch with the best ``chosen_accuracy``."""
    key = chosen_accuracy(config)
    return max(history, key=lambda h: h[key])


def reached_epoch(config, history):
    """The record of the first epoch whose ``chosen_accuracy`` reached ``target_accuracy``, or None."""
    key, target = chosen_accuracy(config), config.target_accuracy
    return next((h for h in history if target is not None and h[key] >= target), None)


def should_stop(config, history):
    """Whether to stop after the last epoch of ``history``: ``target_accuracy`` reached, or ``patience``
    epochs gone by since the best (a tie is no new best)."""
    last = history[-1]
    reached = config.target_accuracy is not None and last[chosen_accuracy(config)] >= config.target_accuracy
    waited = last["epoch"] - best_epoch(config, history)["epoch"]
    return reached or (config.patience is not None and waited >= config.patience)
