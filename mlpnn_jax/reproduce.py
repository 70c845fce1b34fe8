"""The notebook's experiment in JAX: full-batch gradient descent from its own initial weights.

Every epoch, exactly as cells 9 and 13: the loss it printed (a sum over samples of probabilities
clipped at 1e-8; KL negative) on the training set before the update, one gradient step with lr 0.1, and
the same loss on the test set after it. Many epochs run inside one jitted ``lax.scan``; the loss history
stays on the device until a chunk ends.
"""

from __future__ import annotations

import functools
import time

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


def run_notebook(
    params,
    data,
    loss="ce",
    epochs=NOTEBOOK_EPOCHS,
    lr=NOTEBOOK_LR,
    chunk=200,
    on_chunk=None,
    chunk_seconds=None,
):
    """Trains like the notebook and returns its loss curves.

    Args:
        params: initial params {"W1": (D, H), "b1": (H,), "W2": (H, 10), "b2": (10,)}, e.g. from
            ``reference.notebook_init``; their dtype (float64 or float32) is the computation's.
        data: (x_train (n, D), y_train (n,), x_test (m, D), y_test (m,)).
        loss: "ce" or "kl" (the gradient is the same; the printed loss differs in sign).
        epochs, lr: 2000 and 0.1, as the notebook.
        chunk: epochs per jitted call (at most); ``on_chunk`` runs between calls.
        chunk_seconds: if given, chunks start at 1 epoch and double (1, 2, 4, ... up to ``chunk``) only
            while a chunk takes under half of this, so ``on_chunk`` (and Ctrl-C) come about every
            ``chunk_seconds`` whatever an epoch costs; each size compiles once.
        on_chunk: ``on_chunk(first_epoch, train_losses, test_losses)`` with numpy arrays for the
            epochs just run; returning True stops early.
    Returns:
        (final params, train losses (epochs,), test losses (epochs,)) as numpy arrays.
    """
    if loss not in ("ce", "kl"):
        raise ValueError(f"--loss: the notebook trained with ce or kl, got {loss!r}")
    dtype = params["W1"].dtype
    state = {"params": jax.tree.map(lambda a: jnp.array(a, dtype), params)}  # a copy: the caller's survive
    x, x_test = (jnp.asarray(a, dtype) for a in (data[0], data[2]))
    y, y_test = (jnp.asarray(a, jnp.int32) for a in (data[1], data[3]))

    def run(n):
        state["params"], (tr, te) = _run_epochs(state["params"], x, y, x_test, y_test, lr, loss, n)
        return np.asarray(tr), np.asarray(te)

    train_losses, test_losses = _in_chunks(run, epochs, chunk, on_chunk, chunk_seconds)
    return state["params"], train_losses, test_losses


def run_numpy(network, data, loss="ce", epochs=NOTEBOOK_EPOCHS, lr=NOTEBOOK_LR, chunk=1, on_chunk=None):
    """The same experiment through the numpy reference (``reference.run_notebook``), in float64.

    Args:
        network: a ``reference.MLPNN``, trained in place.  The rest: as ``run_notebook``.
    Returns:
        (network, train losses (epochs,), test losses (epochs,)) as numpy arrays.
    """
    import reference

    def run(n):
        tr, te = reference.run_notebook(network, *data, loss=loss, epochs=n, lr=lr, print_every=0)
        return np.asarray(tr), np.asarray(te)

    train_losses, test_losses = _in_chunks(run, epochs, chunk, on_chunk)
    return network, train_losses, test_losses


def run_engine(
    engine, network, data, loss, epochs, *, dtype, precision, chunk, on_chunk=None, chunk_seconds=None
):
    """Runs the notebook's experiment on ``engine`` ("jax" or "numpy") from ``network``'s weights.

    Args:
        engine: "jax" (in ``dtype``, matmuls at ``precision``) or "numpy" (float64).
        network: a ``reference.MLPNN`` holding the initial weights.  data, loss, epochs: as
            ``run_notebook``.  chunk, on_chunk: ``on_chunk(first_epoch, train_losses, test_losses)`` after
            every ``chunk`` epochs, returning True to stop: the one protocol of both engines.
        chunk_seconds: the jax engine's chunks are sized to take about this long (see ``run_notebook``).
    Returns:
        (the trained ``reference.MLPNN``, train losses, test losses).
    """
    import reference

    if engine == "numpy":
        return run_numpy(network, data, loss, epochs, chunk=chunk, on_chunk=on_chunk)
    params = jax.tree.map(lambda a: a.astype(dtype), network.params)
    with jax.default_matmul_precision(precision):
        params, train, test = run_notebook(
            params, data, loss, epochs, chunk=chunk, on_chunk=on_chunk, chunk_seconds=chunk_seconds
        )
    return reference.MLPNN.from_params(jax.tree.map(np.asarray, params)), train, test


def printed(epoch, last, every):
    """Whether the ``[epoch N] loss`` line of ``epoch`` is printed: every ``every``-th epoch, as the
    notebook did, and the ``last`` epoch run, so that a run's final loss is always shown (0: never)."""
    return bool(every) and (epoch % every == 0 or epoch == last)


def _in_chunks(run, epochs, chunk, on_chunk, chunk_seconds=None):
    """Calls ``run(n) -> (train, test)`` for chunks of n epochs, then ``on_chunk``, until done or stopped.

    With ``chunk_seconds``, n is a power of two that doubles while a chunk takes under half of it and
    halves when one takes longer (n never exceeds ``chunk``), so a chunk lasts about ``chunk_seconds``.
    """
    train_losses, test_losses = [], []
    done = 0
    size = 1 if chunk_seconds else (chunk or epochs)
    while done < epochs:
        left = epochs - done
        n = min(size, left) if not chunk_seconds else 1 << (min(size, left).bit_length() - 1)
        t0 = time.perf_counter()
        tr, te = run(n)
        took = time.perf_counter() - t0
        train_losses.append(tr)
        test_losses.append(te)
        stop = on_chunk(done + 1, tr, te) if on_chunk is not None else False
        done += n
        if stop:
            break
        if chunk_seconds and n == size:  # a size's first call includes its compile; it is cached after
            if took > chunk_seconds and size > 1:
                size //= 2
            elif took < chunk_seconds / 2 and 2 * size <= (chunk or epochs):
                size *= 2
    return np.concatenate(train_losses), np.concatenate(test_losses)
