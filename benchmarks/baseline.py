"""The plain JAX baseline that ``bench.py`` times mlpnn-jax against: a reasonable, untuned training.

784-1000-10 tanh MLP, Glorot (uniform) init, zero biases, adam with a constant lr of 1e-3, batch 128,
cross-entropy on the raw [0, 1] pixels, float32. The data set is on the device; an epoch is one jitted
``lax.scan`` over the batches of a fresh permutation (the last partial batch dropped); the test accuracy
is computed after every epoch, and training stops at the first epoch that reaches ``--target``.

    python benchmarks/baseline.py --target 0.98 --epochs 30

It prints one line per epoch and, when the target is reached, ``reached X% at epoch N after S s`` (the
line ``bench.py`` reads, in the same format as ``mlpnn-jax train``). Data: the bundled MNIST through
``mlpnn_jax.data.load_mnist`` (numpy only), or ``--data-dir``. Exit code 0 whether or not it reaches the
target (the line says which).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's mlpnn_jax.data


def glorot(key, fan_in, fan_out):
    """Glorot (Xavier) uniform weights (fan_in, fan_out), float32."""
    import jax

    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(key, (fan_in, fan_out), "float32", -limit, limit)


def make_epoch(batch_size, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """The jitted epoch: (params, adam state, key, x, y) -> (params, adam state, mean train loss)."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        h = jnp.tanh(x @ params["W1"] + params["b1"])
        logits = h @ params["W2"] + params["b2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def adam(params, state, grads):
        m, v, t = state
        t = t + 1
        m = jax.tree.map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        scale = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = jax.tree.map(lambda p, a, b: p - scale * a / (jnp.sqrt(b) + eps), params, m, v)
        return params, (m, v, t)

    @jax.jit
    def epoch(params, state, key, x, y):
        n_batches = x.shape[0] // batch_size
        order = jax.random.permutation(key, x.shape[0])[: n_batches * batch_size]

        def step(carry, idx):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            return adam(params, state, grads), loss

        (params, state), losses = jax.lax.scan(step, (params, state), order.reshape(n_batches, -1))
        return params, state, losses.mean()

    @jax.jit
    def accuracy(params, x, y):
        h = jnp.tanh(x @ params["W1"] + params["b1"])
        return jnp.mean(jnp.argmax(h @ params["W2"] + params["b2"], axis=1) == y)

    return epoch, accuracy


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=float, default=0.98, help="stop at this test accuracy (0.98)")
    p.add_argument("--epochs", type=int, default=30, help="at most this many epochs (30)")
    p.add_argument("--hidden", type=int, default=1000, help="hidden units (1000)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (128)")
    p.add_argument("--seed", type=int, default=0, help="init and shuffle seed (0)")
    p.add_argument("--data-dir", help="MNIST-format IDX files (default: the bundled MNIST)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from mlpnn_jax.data import load_mnist

    x, y, x_test, y_test = (jnp.asarray(a) for a in load_mnist(args.data_dir, dtype="float32"))
    k1, k2, shuffle = jax.random.split(jax.random.key(args.seed), 3)
    d, h = x.shape[1], args.hidden
    params = {"W1": glorot(k1, d, h), "b1": jnp.zeros(h), "W2": glorot(k2, h, 10), "b2": jnp.zeros(10)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (zeros, zeros, jnp.zeros((), "int32"))
    epoch_fn, accuracy = make_epoch(args.batch_size)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        params, state, loss = epoch_fn(params, state, jax.random.fold_in(shuffle, epoch), x, y)
        acc = float(accuracy(params, x_test, y_test))
        now = time.perf_counter()
        print(f"epoch {epoch:3d}  train loss {float(loss):.4f}  test acc {100 * acc:.2f}%  {now - t0:.2f} s")
        if acc >= args.target:
            print(f"reached {100 * args.target:.1f}% at epoch {epoch} after {now - start:.1f} s")
            return 0
    print(f"did not reach {100 * args.target:.1f}% in {args.epochs} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
