"""The notebook's numpy code, made exact and importable: the executable specification of mlpnn-jax.

numpy (and scikit-learn's metrics, as the notebook used them) only; it never imports jax or mlpnn_jax.
"""

from reference.gradients import LOSSES, as_targets, forward, loss_value, manual_gradients
from reference.notebook import (
    MLPNN,
    Perceptron,
    bp_cross_entropy,
    bp_kl,
    compute_loss_ce,
    compute_loss_kl,
    evaluate,
    notebook_init,
    notebook_networks,
    run_notebook,
    softmax,
    to_one_hot,
)

__all__ = [
    "LOSSES",
    "MLPNN",
    "Perceptron",
    "as_targets",
    "bp_cross_entropy",
    "bp_kl",
    "compute_loss_ce",
    "compute_loss_kl",
    "evaluate",
    "forward",
    "loss_value",
    "manual_gradients",
    "notebook_init",
    "notebook_networks",
    "run_notebook",
    "softmax",
    "to_one_hot",
]
