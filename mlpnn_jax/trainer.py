"""Training: minibatch training with optax, and the notebook's full-batch experiment, both jit-compiled.

An epoch is one jitted ``lax.scan`` over batches drawn from a permutation made on the device; the train
state is donated, the data stays on the device, and metrics come back once per epoch. Data parallelism is
sharding: params are replicated over a ``("batch",)`` mesh of every device and each batch is split
across it, so one process, one host of several GPUs, or several hosts run the same step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mlpnn_jax.losses import DEFAULT_OPTIONS, LOSSES, get_loss
from mlpnn_jax.model import ACTIVATIONS, INITS, apply, init_params

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
DTYPES = ("float32", "float64")
PRECISIONS = ("default", "high", "highest")
NUM_CLASSES = 10


class ConfigError(ValueError):
    """A bad training option; the message is one line naming the option and what was expected."""


class DivergenceError(RuntimeError):
    """The loss became NaN, infinite or exploded at ``epoch``; ``last_good`` is the TrainResult (on the
    host) of the epoch before, or None."""

    def __init__(self, message, epoch, last_good=None):
        super().__init__(message)
        self.epoch, self.last_good = epoch, last_good


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. The defaults are the recipe the README explains.

    Attributes:
        loss: "ce", "kl", "mse", "smooth_ce", "focal" or "hinge".
        label_smoothing: eps > 0 trains on the soft targets (1 - eps) one_hot + eps / 10 (with "kl",
            the KL divergence to those); for "smooth_ce" it is that loss's own eps (> 0).
        focal_gamma, hinge_margin: the options of "focal" and "hinge".
        optimizer: "sgd", "momentum" (Nesterov), "adam" or "adamw".
        lr: the peak learning rate.  momentum: for "momentum".  weight_decay: for "adamw".
        schedule: "constant", "cosine" (warm-up, then cosine decay to 0) or "onecycle".
        warmup: the fraction of all steps spent warming up (cosine, onecycle, constant).
        batch_size, epochs: minibatch size and number of epochs (the last partial batch is dropped).
        hidden: hidden layer sizes; (1000,) is the notebook's 784-1000-10.
        activation: "tanh" or "relu".  init: "glorot", "lecun" or "notebook".
        dtype: "float32" or "float64" (needs jax_enable_x64).  compute_dtype: None, or "bfloat16" to
            compute the forward and backward passes in bfloat16 with float32 master weights.
        precision: matmul precision: "default" (fastest), "high" or "highest" (true float32 on GPU/TPU).
        standardize: train on (x - mean) / std, the training set's pixel mean and std (two scalars);
            the returned params have it folded into W1 and b1, so they take raw pixels like any params.
        seed: the seed of the init and of every epoch's shuffle.
        target_accuracy: stop after the first epoch whose test accuracy reaches it.
        data_dir: a directory of MNIST-format IDX files; None for the bundled MNIST.
    """

    loss: str = "ce"
    label_smoothing: float = 0.1
    focal_gamma: float = DEFAULT_OPTIONS["gamma"]
    hinge_margin: float = DEFAULT_OPTIONS["margin"]
    optimizer: str = "momentum"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    warmup: float = 0.1
    batch_size: int = 128
    epochs: int = 2
    hidden: tuple[int, ...] = (1000,)
    activation: str = "tanh"
    init: str = "glorot"
    dtype: str = "float32"
    compute_dtype: str | None = None
    precision: str = "default"
    standardize: bool = True
    seed: int = 0
    target_accuracy: float | None = None
    data_dir: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        _check(self.loss in LOSSES, "--loss", f"one of {', '.join(LOSSES)}", self.loss)
        _check(0 <= self.label_smoothing < 1, "--label-smoothing", "in [0, 1)", self.label_smoothing)
        _check(0 <= self.focal_gamma < math.inf, "--focal-gamma", "a finite number >= 0", self.focal_gamma)
        _check(
            0 < self.hinge_margin < math.inf, "--hinge-margin", "a finite positive number", self.hinge_margin
        )
        if self.loss == "smooth_ce":
            _check(
                self.label_smoothing > 0, "--label-smoothing", "eps > 0 for smooth_ce", self.label_smoothing
            )
        _check(
            self.optimizer in OPTIMIZERS,
            "--optimizer",
            f"one of {', '.join(OPTIMIZERS)}",
            self.optimizer,
        )
        _check(math.isfinite(self.lr) and self.lr > 0, "--lr", "a positive number", self.lr)
        _check(0 <= self.momentum < 1, "--momentum", "in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "--weight-decay", "at least 0", self.weight_decay)
        _check(
            self.schedule in SCHEDULES,
            "--schedule",
            f"one of {', '.join(SCHEDULES)}",
            self.schedule,
        )
        _check(0 <= self.warmup < 1, "--warmup", "a fraction in [0, 1)", self.warmup)
        _check(self.batch_size >= 1, "--batch-size", "a positive integer", self.batch_size)
        _check(self.epochs >= 1, "--epochs", "a positive integer", self.epochs)
        _check(
            len(self.hidden) >= 1 and min(self.hidden) >= 1,
            "--hidden",
            "one or more positive layer sizes",
            list(self.hidden),
        )
        _check(self.activation in ACTIVATIONS, "--activation", "tanh or relu", self.activation)
        _check(self.init in INITS, "--init", f"one of {', '.join(INITS)}", self.init)
        _check(self.dtype in DTYPES, "--dtype", "float32 or float64", self.dtype)
        _check(
            self.compute_dtype in (None, "bfloat16"),
            "--compute-dtype",
            "bfloat16",
            self.compute_dtype,
        )
        _check(self.precision in PRECISIONS, "--precision", "default, high or highest", self.precision)
        _check(0 <= self.seed < 2**32, "--seed", "an integer in [0, 2**32)", self.seed)
        if self.target_accuracy is not None:
            _check(
                0 < self.target_accuracy <= 1,
                "--target-accuracy",
                "in (0, 1]",
                self.target_accuracy,
            )

    def loss_options(self):
        """The keyword options of this config's loss function."""
        return {
            "smooth_ce": {"label_smoothing": self.label_smoothing},
            "focal": {"gamma": self.focal_gamma},
            "hinge": {"margin": self.hinge_margin},
        }.get(self.loss, {})

    def to_json(self):
        """A JSON-ready dict of the config."""
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_json(cls, d):
        """The config of ``to_json``'s dict; unknown keys are an error."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"config: unknown keys {sorted(unknown)}")
        return cls(**d)


def _check(ok, option, expected, got):
    if not ok:
        raise ConfigError(f"{option}: expected {expected}, got {got!r}")


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        train_params, opt_state: the state training continues from (in standardized coordinates).
        input_stats: (mean, std) the inputs were standardized with; (0.0, 1.0) when not.
        history: one metrics dict per epoch (epoch, train_loss, test_loss, test_accuracy, seconds).
        config: the TrainConfig.
        params (property): the trained params for raw pixels in [0, 1], standardization folded in.
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
        return fold_input_stats(jax.tree.map(np.asarray, self.train_params), self.input_stats)


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
    if not std > 0:
        raise ConfigError("--standardize: the training inputs are constant; use --no-standardize")
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


def make_optimizer(config, steps_per_epoch):
    """The optax optimizer for ``config``, its schedule counting ``steps_per_epoch`` steps an epoch."""
    total = config.epochs * steps_per_epoch
    warm = int(config.warmup * total)
    lr = config.lr
    if config.schedule == "cosine":
        sched = optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(total, warm + 1), 0.0)
    elif config.schedule == "onecycle":
        sched = optax.cosine_onecycle_schedule(total, lr, pct_start=max(config.warmup, 1e-6))
    elif warm:
        sched = optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm]
        )
    else:
        sched = lr
    if config.optimizer == "sgd":
        return optax.sgd(sched)
    if config.optimizer == "momentum":
        return optax.sgd(sched, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return optax.adam(sched)
    return optax.adamw(sched, weight_decay=config.weight_decay)


def _batch_loss_fn(config):
    """The mean training loss of a batch, ``f(params, x (B, D), labels (B,)) -> scalar``."""
    loss = get_loss(config.loss, **config.loss_options())
    eps = config.label_smoothing if config.loss != "smooth_ce" else 0.0

    def f(params, x, labels):
        if config.compute_dtype:  # bfloat16 compute, float32 master weights: grads come back float32
            params = jax.tree.map(lambda p: p.astype(config.compute_dtype), params)
            x = x.astype(config.compute_dtype)
        logits = apply(params, x, config.activation).astype(config.dtype)
        targets = labels
        if eps:
            targets = (1 - eps) * jax.nn.one_hot(labels, NUM_CLASSES, dtype=logits.dtype) + eps / NUM_CLASSES
        return jnp.mean(loss(logits, targets))

    return f


class Trainer:
    """The compiled pieces of one training configuration on one mesh.

    Args:
        config: a TrainConfig.
        n_train: the number of training samples.
        mesh: the device mesh (default: all devices).
    """

    def __init__(self, config, n_train, mesh=None, n_test=None):
        self.config = config
        self.mesh = make_mesh() if mesh is None else mesh
        n_dev = self.mesh.devices.size
        if n_test == 0:
            raise ConfigError("--data-dir: the test set is empty; accuracy needs at least one test image")
        if config.batch_size > n_train:
            raise ConfigError(
                f"--batch-size: expected at most the {n_train} training samples, got {config.batch_size}"
            )
        if config.batch_size % n_dev:
            raise ConfigError(
                f"--batch-size: expected a multiple of the {n_dev} devices that share each batch,"
                f" got {config.batch_size}"
            )
        self.steps_per_epoch = n_train // config.batch_size
        self.optimizer = make_optimizer(config, self.steps_per_epoch)
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharded = NamedSharding(self.mesh, P("batch"))
        # out_shardings matching the inputs keep one executable for every epoch (else epoch 2 recompiles)
        self._epoch = jax.jit(self._epoch_impl, donate_argnums=(0,), out_shardings=self.replicated)
        # the test set is split over the devices too, where its size allows
        self.test_sharding = self.batch_sharded if n_test and n_test % n_dev == 0 else self.replicated

    def init_state(self, params):
        """(params, a fresh optimizer state), both replicated on the mesh."""
        params = self.place(params)
        return params, jax.jit(self.optimizer.init, out_shardings=self.replicated)(params)

    def place(self, tree):
        """``tree`` replicated on every device of the mesh (each process passes the full value)."""
        return jax.tree.map(lambda a: _global_array(np.asarray(a), self.replicated), tree)

    def _epoch_impl(self, state, epoch, x, y, x_test, y_test, stats):
        """One epoch: state, epoch (), x (n, D), y (n,), x_test (m, D), y_test (m,), (mean, std) ->
        (state, (mean train loss (), mean test loss (), correct test predictions () int))."""
        params, opt_state = state
        mean, std = stats
        bs, nb = self.config.batch_size, self.steps_per_epoch
        batch_loss = _batch_loss_fn(self.config)
        key = jax.random.fold_in(jax.random.key(self.config.seed), epoch)
        perm = jax.random.permutation(key, x.shape[0])[: nb * bs].reshape(nb, bs)

        def step(carry, idx):
            params, opt_state = carry
            idx = jax.lax.with_sharding_constraint(idx, self.batch_sharded)
            xb = (x[idx] - mean) / std  # standardizing per batch costs far less than the matmuls
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, y[idx])
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm)
        x_test = jax.lax.with_sharding_constraint((x_test - mean) / std, self.test_sharding)
        logits = apply(params, x_test, self.config.activation)
        test_loss = jnp.mean(get_loss(self.config.loss, **self.config.loss_options())(logits, y_test))
        # a count, not a float32 mean: 9543 / 10000 must compare equal to a target of 0.9543
        correct = jnp.sum(jnp.argmax(logits, -1) == y_test)
        return (params, opt_state), (jnp.mean(losses.astype(self.config.dtype)), test_loss, correct)

    def epoch(self, state, epoch, data):
        """Runs epoch number ``epoch`` (1-based) on ``state`` (donated).

        Args:
            state: (params, opt_state) on the mesh.  epoch: its shuffle is fold_in(key(seed), epoch).
            data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,), (mean, std)) on the mesh;
                the model sees (x - mean) / std.
        Returns:
            (new state, (train_loss, test_loss, correct test predictions)) as device scalars.
        """
        with jax.default_matmul_precision(self.config.precision):
            return self._epoch(state, np.int32(epoch), *data)


class Background:
    """Runs ``fn(*args, **kwargs)`` in a thread; ``result()`` waits for it and re-raises its error."""

    def __init__(self, fn, *args, **kwargs):
        self._result = self._error = None

        def run():
            try:
                self._result = fn(*args, **kwargs)
            except BaseException as e:  # handed to the caller's thread by result()
                self._error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _global_array(a, sharding):
    """A global jax.Array from this process's copy of a replicated value (works across hosts)."""
    if jax.process_count() == 1:
        return jax.device_put(a, sharding)
    return jax.make_array_from_process_local_data(sharding, a, a.shape)


def load_resume(path, config):
    """The ``resume`` dict for ``train`` from a checkpoint of ``config`` (see ``checkpoint.save``).

    The optimizer state's tree structure comes from ``jax.eval_shape`` of the config's optimizer: no
    arrays are made for it, and a checkpoint of another optimizer is a CheckpointError.
    """
    from mlpnn_jax import checkpoint

    params = checkpoint.load(path)[0]
    template = jax.eval_shape(
        make_optimizer(config, 1).init, params
    )  # its structure: not the schedule's length
    params, opt_state, meta = checkpoint.load(path, template)
    return {
        "train_params": params,
        "opt_state": opt_state,
        **{k: meta[k] for k in ("history", "input_stats")},
    }


def _divergence_limit(config):
    """The training loss that counts as divergence: 100 times the loss of a uniform guess.

    A tanh net's loss stays finite however far it diverges, so NaN alone would miss it; no trained or
    fresh net comes near 100 x log 10 = 230 (CE). Computed with the numpy reference: no compile.
    """
    import reference

    zeros = np.zeros((1, NUM_CLASSES))
    uniform = reference.LOSSES[config.loss](zeros, np.eye(NUM_CLASSES)[:1], **config.loss_options())[0]
    return 100 * float(uniform[0]) if uniform[0] > 0 else math.inf


def _check_dtype(config):
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "--dtype: float64 needs 64-bit JAX; call jax.config.update('jax_enable_x64', True) first"
        )


def initial_params(config, input_dim):
    """The params ``config`` starts from, for inputs of ``input_dim`` features."""
    sizes = (input_dim, *config.hidden, NUM_CLASSES)
    return init_params(config.seed, sizes, config.init, jnp.dtype(config.dtype))


def train(config, data=None, *, mesh=None, resume=None, on_epoch=None):
    """Trains an MLP on MNIST (or ``data``) as ``config`` says.

    Args:
        config: a TrainConfig.
        data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)) numpy arrays, a Background
            loading them, or None to load ``config.data_dir`` (the bundled MNIST by default).
        mesh: the ("batch",) device mesh; default all devices.
        resume: a dict with the ``train_params``, ``opt_state``, ``input_stats`` and ``history`` of an
            earlier run of the same config (see ``checkpoint.load``), to continue from its last epoch.
        on_epoch: ``on_epoch(record, result)`` after every epoch, with that epoch's metrics dict and a
            TrainResult of the state so far, copied to the host (the device buffers are donated to the
            next epoch); returning True stops training (on every process, if any one returns True).
    Returns:
        A TrainResult. Raises DivergenceError (with ``last_good``, the host TrainResult of the last
        good epoch, or None) when a loss becomes NaN or infinite, or explodes.
    """
    from mlpnn_jax.data import image_size, load_mnist

    _check_dtype(config)
    t_start = time.perf_counter()
    params = None
    if data is None:  # load in the background while the init compiles: the two overlap
        data = Background(load_mnist, config.data_dir, dtype=config.dtype)
    if isinstance(data, Background) and resume is None and (dim := image_size(config.data_dir)):
        params = initial_params(config, dim)
    if isinstance(data, Background):
        data = data.result()
    x_train, y_train, x_test, y_test = data
    trainer = Trainer(config, x_train.shape[0], mesh, n_test=x_test.shape[0])
    if resume is None:
        stats = input_stats(x_train, config.standardize)
        if params is None or params["W1"].shape[0] != x_train.shape[1]:
            params = initial_params(config, x_train.shape[1])
        params, opt_state = trainer.init_state(params)
        history = []
    else:
        stats = tuple(resume["input_stats"])
        params, opt_state = trainer.place(resume["train_params"]), trainer.place(resume["opt_state"])
        history = list(resume["history"])
    dtype = np.dtype(config.dtype)
    dev_data = trainer.place(
        (
            np.asarray(x_train, dtype),
            np.asarray(y_train, np.int32),
            np.asarray(x_test, dtype),
            np.asarray(y_test, np.int32),
            (np.asarray(stats[0], dtype), np.asarray(stats[1], dtype)),
        )
    )

    def result(state):  # its own copy of the history: a result kept from epoch 1 stays at epoch 1
        return TrainResult(state[0], state[1], stats, list(history), config)

    state = (params, opt_state)
    last_good = None
    limit = _divergence_limit(config)
    t_last = time.perf_counter()
    for epoch in range(len(history) + 1, config.epochs + 1):
        new_state, metrics = trainer.epoch(state, epoch, dev_data)
        train_loss, test_loss = float(metrics[0]), float(metrics[1])
        test_acc = int(metrics[2]) / x_test.shape[0]
        now = time.perf_counter()
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "seconds": now - t_last,
            "elapsed": now - t_start,
        }
        t_last = now
        finite = math.isfinite(train_loss) and math.isfinite(test_loss)
        if not finite or train_loss > limit:
            what = "became non-finite" if not finite else f"exploded past {limit:.4g}"
            raise DivergenceError(
                f"epoch {epoch}: the loss {what} (train {train_loss:.4g}, test {test_loss:.4g});"
                f" the learning rate {config.lr:g} is probably too high for {config.optimizer}"
                f" with a {config.schedule} schedule: lower --lr",
                epoch,
                last_good,
            )
        state = new_state
        history.append(record)
        last_good = result(jax.device_get(state))
        stop = bool(on_epoch(record, last_good)) if on_epoch is not None else False
        if jax.process_count() > 1:  # stop together: a process left in the next all-reduce would hang
            stop = bool(multihost_utils.process_allgather(np.array(stop)).any())
        if stop or (config.target_accuracy is not None and test_acc >= config.target_accuracy):
            break
    return result(state)


def predict(params, x, activation="tanh", precision="default"):
    """The predicted classes (m,) of x (m, D) under ``params`` (for raw inputs), as numpy."""
    with jax.default_matmul_precision(precision):
        return np.asarray(_predict(params, x, activation))


@functools.partial(jax.jit, static_argnames=("activation",))
def _predict(params, x, activation):
    return jnp.argmax(apply(params, x, activation), axis=-1)


def confusion_matrix(labels, predictions, num_classes=NUM_CLASSES):
    """Counts (K, K) of true class (rows) against predicted class (columns), like scikit-learn's."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, -1)
