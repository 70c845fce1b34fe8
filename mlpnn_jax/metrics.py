"""Metrics of trained params: predicted classes, the confusion matrix and the accuracy."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlpnn_jax.model import apply

NUM_CLASSES = 10


def predict(params, x, activation="tanh", precision="default"):
    """The predicted classes (m,) of x (m, D) under ``params`` (for raw inputs), as numpy."""
    with jax.default_matmul_precision(precision):
        return np.asarray(_predict(params, x, activation))


@functools.partial(jax.jit, static_argnames=("activation",))
def _predict(params, x, activation):
    return jnp.argmax(apply(params, x, activation), axis=-1)


def classify(params, x, activation="tanh", precision="default"):
    """(class probabilities (m, K), predicted classes (m,)) of x (m, D) under ``params`` (for raw inputs),
    as numpy; the classes are the logits' argmax, as ``predict``'s. One jitted forward pass for both,
    shared by the train command and the report, so that they show the same numbers."""
    with jax.default_matmul_precision(precision):
        return tuple(np.asarray(a) for a in _classify(params, x, activation))


@functools.partial(jax.jit, static_argnames=("activation",))
def _classify(params, x, activation):
    logits = apply(params, x, activation)
    return jax.nn.softmax(logits, axis=-1), jnp.argmax(logits, axis=-1)


def confusion_matrix(labels, predictions, num_classes=NUM_CLASSES):
    """Counts (K, K) of true class (rows) against predicted class (columns), like scikit-learn's.

    One ``np.bincount``: scikit-learn's gives the same counts (tested) but costs a second of import.
    """
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, -1)


def accuracy(cm):
    """The fraction of correct predictions of a confusion matrix (K, K), from integer counts."""
    return float(cm.trace() / cm.sum())


def evaluate(params, x, y, activation="tanh", precision="default"):
    """(confusion matrix (K, K), accuracy) of ``params`` (for raw inputs) on x (m, D), labels y (m,)."""
    cm = confusion_matrix(y, predict(params, x, activation, precision))
    return cm, accuracy(cm)
