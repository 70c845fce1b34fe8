"""The notebook's experiment in JAX: full-batch gradient descent from its own initial weights.

Every epoch, exactly as cells 9 and 13: the loss it printed (a sum over samples of probabilities
clipped at 1e-8; KL negative) on the training set before the update, one gradient step with lr 0.1, and
the same loss on the test set after it. Many epochs run inside one jitted ``lax.scan``; the loss history
stays on the device until a chunk ends.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlpnn_jax.losses import get_loss, notebook_loss
from mlpnn_jax.model import apply
from reference.notebook import NOTEBOOK_EPOCHS, NOTEBOOK_LR


@functools.partial(jax.jit, static_argnames=("loss", "epochs"), donate_argnums=(0,))
def _run_epochs(params, x, y, x_test, y_test, lr, loss, epochs):
    """``epochs`` notebook epochs: (params, (train losses (epochs,), test losses (epochs,)))."""
    mean_loss = get_loss(loss)

    def objective(p):
        logits = apply(p, x)
        # The notebook stepped along p - t, the gradient of the unclipped, stable loss (see the README).
        return jnp.mean(mean_loss(logits, y)), logits

    def epoch(p, _):
        grads, logits = jax.grad(objective, has_aux=True)(p)
        train_loss = notebook_loss(logits, y, loss)
        p = jax.tree.map(lambda w, g: w - lr * g, p, grads)
        return p, (train_loss, notebook_loss(apply(p, x_test), y_test, loss))

    return jax.lax.scan(epoch, params, None, length=epochs)


def run_notebook(params, data, loss="ce", epochs=NOTEBOOK_EPOCHS, lr=NOTEBOOK_LR, chunk=200, on_chunk=None):
    """Trains like the notebook and returns its loss curves.

    Args:
        params: initial params {"W1": (D, H), "b1": (H,), "W2": (H, 10), "b2": (10,)}, e.g. from
            ``reference.notebook_init``; their dtype (float64 or float32) is the computation's.
        data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)).
        loss: "ce" or "kl" (the gradient is the same; the printed loss differs in sign).
        epochs, lr: 2000 and 0.1, as the notebook.
        chunk: epochs per jitted call; ``on_chunk`` runs between calls.
        on_chunk: ``on_chunk(first_epoch, train_losses, test_losses)`` with numpy arrays for the
            epochs just run; returning True stops early.
    Returns:
        (final params, train losses (epochs,), test losses (epochs,)) as numpy arrays.
    """
    if loss not in ("ce", "kl"):
        raise ValueError(f"--loss: the notebook trained with ce or kl, got {loss!r}")
    dtype = params["W1"].dtype
    params = jax.tree.map(lambda a: jnp.array(a, dtype), params)  # a copy: the caller's arrays survive
    x, x_test = (jnp.asarray(a, dtype) for a in (data[0], data[2]))
    y, y_test = (jnp.asarray(a, jnp.int32) for a in (data[1], data[3]))
    train_losses, test_losses = [], []
    done = 0
    while done < epochs:
        n = min(chunk or epochs, epochs - done)
        params, (tr, te) = _run_epochs(params, x, y, x_test, y_test, lr, loss, n)
        tr, te = np.asarray(tr), np.asarray(te)
        train_losses.append(tr)
        test_losses.append(te)
        stop = on_chunk(done + 1, tr, te) if on_chunk is not None else False
        done += n
        if stop:
            break
    return params, np.concatenate(train_losses), np.concatenate(test_losses)
