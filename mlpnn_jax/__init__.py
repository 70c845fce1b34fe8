"""mlpnn-jax: the notebook's backprop MLP for MNIST, reimplemented in JAX and validated against it.

The names below are imported on first use, not with the package: ``mlpnn-jax`` (the command) starts by
installing its signal handlers, so that Ctrl-C during start-up, while JAX is still importing, exits
quietly; an eager import of JAX here would come before them.
"""

import importlib

__version__ = "0.1.0"

# name: the module that defines it
_EXPORTS = {
    "ConfigError": "config",
    "TrainConfig": "config",
    "DataError": "data",
    "load_mnist": "data",
    "GradcheckUsageError": "gradcheck",
    "Report": "gradcheck",
    "check_backprop": "gradcheck",
    "check_file": "gradcheck",
    "LOSSES": "losses",
    "get_loss": "losses",
    "apply": "model",
    "gradients": "model",
    "init_params": "model",
    "DivergenceError": "trainer",
    "TrainResult": "trainer",
    "load_data": "trainer",
    "train": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlpnn_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mlpnn_jax.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
