"""mlpnn-jax: the notebook's backprop MLP for MNIST, reimplemented in JAX and validated against it."""

from mlpnn_jax.config import ConfigError, TrainConfig
from mlpnn_jax.data import DataError, load_mnist
from mlpnn_jax.gradcheck import GradcheckUsageError, Report, check_backprop
from mlpnn_jax.losses import LOSSES, get_loss
from mlpnn_jax.model import apply, gradients, init_params
from mlpnn_jax.trainer import DivergenceError, TrainResult, load_data, train

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "GradcheckUsageError",
    "Report",
    "TrainConfig",
    "TrainResult",
    "apply",
    "check_backprop",
    "get_loss",
    "gradients",
    "init_params",
    "load_data",
    "load_mnist",
    "train",
]
