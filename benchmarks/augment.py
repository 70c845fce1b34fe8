"""The cost of on-device augmentation, as a fraction of a train epoch, measured side by side.

    python benchmarks/augment.py [--repeats 3] [--steps 100] [--json FILE]

A train epoch of the default recipe's shape (784-1000-10 tanh, batch 128, Nesterov momentum, label
smoothing): one jitted ``lax.scan`` over ``--steps`` batches gathered from MNIST on the device, with
each batch distorted in the scan body by ``augment`` of each kind first. Each configuration's time is
the median of ``--repeats`` runs, interleaved so that a busy machine slows all of them alike; the table
gives seconds per 1000 steps and the augmentation's extra time as a percentage of the plain epoch.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlpnn_jax.augment import KINDS, AugmentConfig, augment
from mlpnn_jax.data import load_mnist
from mlpnn_jax.losses import get_loss
from mlpnn_jax.model import apply, init_params

BATCH = 128


def make_epoch(kind, steps):
    """A jitted epoch of ``steps`` train steps, each batch distorted by ``kind`` first."""
    cfg = AugmentConfig(kind)
    opt = optax.sgd(0.01, momentum=0.9, nesterov=True)
    loss_fn = get_loss("smooth_ce", label_smoothing=0.1)

    def batch_loss(params, xb, yb):
        return jnp.mean(loss_fn(apply(params, xb), yb))

    def epoch(state, key, x, y):
        perm = jax.random.permutation(key, x.shape[0])[: steps * BATCH].reshape(steps, BATCH)

        def step(carry, inp):
            params, opt_state = carry
            i, idx = inp
            xb = augment(jax.random.fold_in(key, i), x[idx], (28, 28), cfg)
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, y[idx])
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        state, losses = jax.lax.scan(step, state, (jnp.arange(steps), perm))
        return state, losses.mean()

    return jax.jit(epoch, donate_argnums=0), opt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    x, y = (jnp.asarray(a) for a in load_mnist()[:2])
    params = init_params(0, (784, 1000, 10))
    runs = {}
    for kind in KINDS:
        epoch, opt = make_epoch(kind, args.steps)
        state = (jax.tree.map(jnp.copy, params), opt.init(params))
        state = jax.block_until_ready(epoch(state, jax.random.key(0), x, y))[0]  # compile
        runs[kind] = [epoch, state]
    times = {kind: [] for kind in KINDS}
    for r in range(args.repeats):
        for kind in KINDS:
            epoch, state = runs[kind]
            t = time.perf_counter()
            runs[kind][1] = jax.block_until_ready(epoch(state, jax.random.key(r + 1), x, y))[0]
            times[kind].append((time.perf_counter() - t) * 1000 / args.steps)
    base = statistics.median(times["none"])
    print(f"| augment | s / 1000 steps (batch {BATCH}, 784-1000-10) | extra, % of a plain epoch |")
    print("|---|---|---|")
    table = {}
    for kind in KINDS:
        t = statistics.median(times[kind])
        table[kind] = {"seconds_per_1000_steps": t, "extra_percent": 100 * (t - base) / base}
        print(f"| {kind} | {t:.2f} | {table[kind]['extra_percent']:+.0f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "repeats": args.repeats, "table": table}, f, indent=1)
    assert np.isfinite(base)


if __name__ == "__main__":
    main()
