"""The optimizer of a TrainConfig: its learning-rate schedule, weight decay and moving average of the weights.

The moving average (``ema_decay``) is an optax transformation at the end of the chain that leaves the
updates alone and keeps the average in its state, so it is checkpointed and resumed with the optimizer.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlpnn_jax.data import NUM_CLASSES


def _constant_schedule(lr, warm, total, config):
    if not warm:
        return lr
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm])


# schedule name: f(peak lr, warm-up steps, total steps, config) -> an optax schedule (or a constant)
SCHEDULE_FNS = {
    "constant": _constant_schedule,
    "cosine": lambda lr, warm, total, c: optax.warmup_cosine_decay_schedule(
        0.0, lr, warm, max(total, warm + 1), 0.0
    ),
    "onecycle": lambda lr, warm, total, c: optax.cosine_onecycle_schedule(
        total, lr, pct_start=max(c.warmup, 1e-6)
    ),
}
# optimizer name: f(schedule, config) -> an optax GradientTransformation (adamw decays on its own)
OPTIMIZER_FNS = {
    "sgd": lambda sched, c: optax.sgd(sched),
    "momentum": lambda sched, c: optax.sgd(sched, momentum=c.momentum, nesterov=True),
    "adam": lambda sched, c: optax.adam(sched),
    "adamw": lambda sched, c: optax.adamw(sched, weight_decay=c.decay),
}


def make_optimizer(config, steps_per_epoch):
    """The optax optimizer for ``config``, its schedule counting ``steps_per_epoch`` steps an epoch.

    Weight decay for every optimizer but adamw is L2 on the weights W (not the biases), added to the
    gradient before the optimizer sees it: g + decay * W. With ``ema_decay`` the chain ends in
    ``track_ema``. Without either, the optimizer is the plain optax one (its state as before).
    """
    optimizer = OPTIMIZER_FNS[config.optimizer](_schedule(config, steps_per_epoch), config)
    if config.decay and config.optimizer != "adamw":
        optimizer = optax.chain(optax.add_decayed_weights(config.decay, mask=weights_only), optimizer)
    if config.ema_decay:
        optimizer = optax.chain(optimizer, track_ema(config.ema_decay))
    return optimizer


def _schedule(config, steps_per_epoch):
    """The optimizer's learning rate: an optax schedule, or a number (a constant lr without warm-up,
    which optax's optimizers take without a step count in their state)."""
    total = config.epochs * steps_per_epoch
    return SCHEDULE_FNS[config.schedule](config.lr, int(config.warmup * total), total, config)


def make_schedule(config, steps_per_epoch):
    """The learning rate of ``config`` as a function of the optimizer step (0-based; optax's count)."""
    schedule = _schedule(config, steps_per_epoch)
    return schedule if callable(schedule) else optax.constant_schedule(schedule)


def weights_only(params):
    """The mask of the weights W1, W2, ... of a params dict (biases are not decayed)."""
    return {k: k.startswith("W") for k in params}


class EmaState(NamedTuple):
    """The moving average of the params (their tree)."""

    ema: Any


def track_ema(decay):
    """Keeps ema <- decay * ema + (1 - decay) * params after every update (from the initial params).

    Args:
        decay: in [0, 1).
    Returns:
        An optax GradientTransformation that passes the updates through unchanged; it needs the params.
    """

    def init(params):
        return EmaState(jax.tree.map(jnp.copy, params))  # a copy: params and state are donated separately

    def update(updates, state, params):
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: (decay * e + (1 - decay) * p).astype(e.dtype), state.ema, new)
        return updates, EmaState(ema)

    return optax.GradientTransformation(init, update)


def ema_params(config, opt_state):
    """The moving average of the params in ``opt_state`` of ``make_optimizer(config)``; None without one."""
    if not config.ema_decay:
        return None
    return opt_state[-1].ema


# optimizer: the arrays of its state, in params-sized copies
_STATE_COPIES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def check_memory(config, input_dim, num_classes=NUM_CLASSES):
    """Raises ConfigError when even a lower bound of training's memory exceeds what the device has free.

    The bound: params, gradients and updates plus the optimizer's state (params-sized arrays each) and
    one batch of activations; XLA needs more, so this only catches sizes that cannot fit at all.
    """
    from mlpnn_jax.config import ConfigError
    from mlpnn_jax.devices import free_memory

    sizes = (input_dim, *config.hidden, num_classes)
    n_params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    item = np.dtype(config.dtype).itemsize
    copies = 3 + _STATE_COPIES[config.optimizer]
    need = n_params * item * copies + 4 * config.batch_size * sum(config.hidden) * item
    free = free_memory()
    if free is not None and need > free:
        raise ConfigError(
            "hidden",
            f"{list(config.hidden)} needs at least {need / 1e9:.1f} GB ({n_params:,} {config.dtype} params"
            f" x {copies}: params, gradients, updates, {config.optimizer} state), but only"
            f" {max(free, 0) / 1e9:.1f} GB is free; use fewer hidden units",
        )
