"""``mlpnn-jax evaluate``'s library: a train or reproduce run's params, scored on a test set.

``read_run`` reads a run's settings into a ``RunModel`` (before JAX is set up: its dtype says whether it
needs 64-bit JAX), ``run_params`` its params (after), and ``score`` computes accuracy, the mean loss, the
confusion matrix and per-class precision, recall and F1 (``sklearn.metrics``, imported only here).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mlpnn_jax.checkpoint import CHECKPOINT, NUM_CLASSES


class EvaluationError(ValueError):
    """A run that cannot be evaluated as asked: one line naming the run or the option."""


@dataclasses.dataclass(frozen=True)
class RunModel:
    """What evaluating a run needs besides its params: where they are and how they are applied."""

    kind: str  # "train" or "reproduce"
    path: Path  # the file of the params
    activation: str
    loss: str
    loss_options: dict
    dtype: str
    precision: str
    data_dir: str | None
    saved: object = None  # a train run's checkpoint as ``checkpoint.read`` returned it: read once


def read_run(run_dir, loss=None):
    """The RunModel of a train run (``checkpoint.npz``) or a reproduce run (``reproduce.json``).

    Args:
        run_dir: the run directory.
        loss: a reproduce run's "ce" or "kl" (needed when it holds both); None for a train run.
    Raises:
        EvaluationError: not a run, or ``loss`` does not fit it.
    """
    from mlpnn_jax.report import REPRODUCE

    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).is_file():
        return _train_run(run_dir, loss)
    if (run_dir / REPRODUCE).is_file():
        return _reproduce_run(run_dir, loss)
    if not run_dir.is_dir():
        raise EvaluationError(f"{run_dir}: no such directory")
    raise EvaluationError(f"{run_dir}: not a run directory (no {CHECKPOINT} or {REPRODUCE})")


def _train_run(run_dir, loss):
    from mlpnn_jax import checkpoint
    from mlpnn_jax.config import TrainConfig

    if loss is not None:
        raise EvaluationError(f"--loss picks a reproduce run's loss; {run_dir} is a train run")
    saved = checkpoint.read(run_dir / CHECKPOINT, parse_config=TrainConfig.from_json)  # every field checked
    c = TrainConfig.from_json(saved.meta["config"])
    return RunModel(
        "train",
        run_dir / CHECKPOINT,
        c.activation,
        c.loss,
        c.loss_options(),
        c.dtype,
        c.precision,
        c.data_dir,
        saved,
    )


def _reproduce_run(run_dir, loss):
    from mlpnn_jax.report import LOSS_NAMES, REPRODUCE, read_json

    config = read_json(run_dir / REPRODUCE)
    done = [name for name in LOSS_NAMES if (run_dir / f"{name}_params.npz").is_file()]
    if not done:
        raise EvaluationError(
            f"{run_dir}: the reproduction finished no loss (no ce_params.npz or kl_params.npz)"
        )
    if loss is None and len(done) > 1:
        raise EvaluationError(f"{run_dir} holds the ce and the kl network: pick one with --loss ce|kl")
    loss = loss or done[0]
    if loss not in done:
        raise EvaluationError(f"--loss {loss}: {run_dir} has no {loss}_params.npz (it has {done[0]})")
    path = run_dir / f"{loss}_params.npz"
    return RunModel(
        "reproduce", path, "tanh", loss, {}, config["dtype"], config["precision"], config["data_dir"]
    )


def run_params(model):
    """The run's params for raw pixels, ``{"W1": (D, H1), "b1": (H1,), ...}``, as it evaluated them: a train
    run's moving average of the weights when it kept one, its input standardization folded in."""
    from mlpnn_jax.report import load_reproduced_params
    from mlpnn_jax.trainer import saved_params

    if model.kind == "train":
        return saved_params(model.saved)[0]
    return load_reproduced_params(model.path)[0]


def score(model, params, x, y):
    """Scores ``params`` of ``model`` on x (m, D), labels y (m,).

    Returns:
        A JSON-ready dict: accuracy, mean_loss, confusion_matrix (K, K) (true class down, predicted
        across) and per_class (K dicts: precision, recall, f1, support).
    """
    import jax
    import jax.numpy as jnp
    from sklearn.metrics import precision_recall_fscore_support

    from mlpnn_jax.losses import get_loss
    from mlpnn_jax.metrics import accuracy, confusion_matrix
    from mlpnn_jax.model import apply

    params = {k: jnp.asarray(v, model.dtype) for k, v in params.items()}
    with jax.default_matmul_precision(model.precision):
        logits = apply(params, jnp.asarray(x, model.dtype), model.activation)
        losses = get_loss(model.loss, **model.loss_options)(logits, jnp.asarray(y))
    predicted = np.asarray(jnp.argmax(logits, axis=-1))
    cm = confusion_matrix(y, predicted)
    classes = list(range(NUM_CLASSES))
    p, r, f1, support = precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
    return {
        "kind": model.kind,
        "loss": model.loss,
        "test_images": len(y),
        "accuracy": accuracy(cm),
        "mean_loss": float(jnp.mean(losses)),
        "confusion_matrix": cm.tolist(),
        "per_class": [
            {
                "class": k,
                "precision": float(p[k]),
                "recall": float(r[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k in classes
        ],
    }


def to_text(scores):
    """The scores as the evaluate command prints them: the figures, the labelled matrix, the classes."""
    cm = np.asarray(scores["confusion_matrix"])
    width = max(5, len(str(cm.max())) + 1)
    header = "true\\pred" + "".join(f"{k:>{width}}" for k in range(cm.shape[1]))
    rows = [f"{k:>9}" + "".join(f"{n:>{width}}" for n in row) for k, row in enumerate(cm)]
    classes = [
        f"{c['class']:>5}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}"
        for c in scores["per_class"]
    ]
    return "\n".join(
        [
            f"{scores['kind']} run, {scores['test_images']} test images: accuracy"
            f" {100 * scores['accuracy']:.2f}%, mean {scores['loss']} loss {scores['mean_loss']:.4f}",
            "confusion matrix (rows: true class, columns: predicted class)",
            header,
            *rows,
            "class  precision  recall      f1  support",
            *classes,
        ]
    )
