"""Where a default `train` epoch's time goes (784-1000-10 tanh, batch 128, Nesterov momentum).

    python benchmarks/epoch_profile.py [--reps 5] [--json FILE]

Times the trainer's own compiled epoch, and each piece of it alone as a jitted `lax.scan` over the
epoch's 468 steps with the epoch's shapes:

- gemm: the forward and backward matrix products of a batch, with tanh replaced by the identity;
- tanh: tanh and its derivative on the (128, 1000) hidden layer;
- gather: the batch's rows picked by index (`x[idx]`), against a contiguous slice of the same size;
- optimizer: optax's Nesterov momentum with its schedule, and the params' update;
- metrics: the test-set forward pass and the loss and accuracy reductions (once an epoch).

Each is run ``--reps`` times round-robin and its minimum kept, so a noisy shared machine hurts less.
Also measured in the same run: the float32 GEMM peak (4096^3 matmuls) and the epoch's matmul FLOPs,
so the epoch's rate is a share of that peak (the README's "of its peak").
"""

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlpnn_jax import TrainConfig, load_mnist
from mlpnn_jax import epoch as E
from mlpnn_jax.optim import make_optimizer
from mlpnn_jax.trainer import initial_params, input_stats


def pieces(config, layout, x, y, x_test, y_test, params, opt_state):
    """name: a function of no arguments that runs that piece, compiled, for one epoch's worth of steps.

    Every array is an argument of the jitted function (a closed-over one would be constant-folded), and
    every result is used (summed), so that XLA can drop nothing.
    """
    optimizer = make_optimizer(config, layout.steps_per_epoch)
    bs, nb = config.batch_size, layout.steps_per_epoch
    perm = jax.random.permutation(jax.random.key(0), x.shape[0])[: nb * bs].reshape(nb, bs)
    xb, yb = x[:bs], y[:bs]
    hidden = xb @ params["W1"]

    def steps(body, carry, *operands):
        def run(carry, *operands):
            return jax.lax.scan(lambda c, i: (body(c, i, *operands), None), carry, jnp.arange(nb))[0]

        return functools.partial(jax.jit(run), carry, *operands)

    def loss_fn(params, x, labels):
        logits = (x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]  # tanh: timed alone
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def grad_step(p, i, xb, yb):
        return jax.tree.map(lambda a, g: a + 1e-9 * g, p, jax.grad(loss_fn)(p, xb, yb))

    def update(carry, i):
        p, s = carry
        updates, s = optimizer.update(jax.tree.map(lambda a: 1e-3 * a, p), s, p)
        return optax.apply_updates(p, updates), s

    def tanh_and_derivative(h, i):
        t = jnp.tanh(h + 1e-9 * i)
        return h + 1e-9 * (t + (1 - t * t))

    def metrics(params, x_test, y_test):
        logits = jnp.tanh(x_test @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_test))
        return loss, jnp.sum(jnp.argmax(logits, -1) == y_test)

    zeros = jnp.zeros(x.shape[1], x.dtype)
    return {
        "gemm": steps(grad_step, params, xb, yb),
        "tanh": steps(tanh_and_derivative, hidden),
        "gather": steps(lambda acc, i, x, perm: acc + x[perm[i]].sum(0), zeros, x, perm),
        "slice": steps(lambda acc, i, x: acc + jax.lax.dynamic_slice_in_dim(x, i * bs, bs).sum(0), zeros, x),
        "optimizer": steps(update, (params, opt_state)),
        "metrics": functools.partial(jax.jit(metrics), params, x_test, y_test),
    }


def gemm_peak(n=4096, reps=3):
    """Float32 matmul FLOP/s: the best of ``reps`` n^3 products."""
    a = jnp.asarray(np.random.default_rng(0).random((n, n), np.float32))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(reps))
    return 2 * n**3 / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    config = TrainConfig()
    data = load_mnist()
    n, d = data[0].shape
    m = data[2].shape[0]
    layout = E.layout(config, E.make_mesh(), n, m, d)
    dev = E.place_data(layout, config, data, input_stats(data[0]))
    state = E.init_state(config, layout, initial_params(config, d))
    params, opt_state = jax.tree.map(jnp.copy, state)  # the epoch donates its state
    fns = pieces(config, layout, *dev[:4], params, opt_state)
    train_epoch = E.make_train_epoch(config, layout)
    # drawn before the timings, as train draws each while the device runs the epoch before
    orders = {e: E.epoch_order(config, layout, e) for e in range(1, args.reps + 2)}

    def epoch(e):
        nonlocal state
        state, metrics, _ = train_epoch(state, np.int32(e), orders[e], dev)
        jax.block_until_ready(metrics)

    fns["epoch"] = epoch
    for name, fn in fns.items():  # compile
        jax.block_until_ready(fn(1) if name == "epoch" else fn())
    times = {name: [] for name in fns}
    for rep in range(args.reps):
        for name, fn in fns.items():
            times[name].append(
                _timed(lambda fn=fn, e=rep + 2: jax.block_until_ready(fn(e) if fn is epoch else fn()))
            )
    best = {name: min(t) for name, t in times.items()}
    h, k = config.hidden[0], 10
    flops = layout.steps_per_epoch * 2 * config.batch_size * (2 * d * h + 3 * h * k) + 2 * m * (d * h + h * k)
    peak = gemm_peak()
    shares = {name: best[name] / best["epoch"] for name in ("gemm", "tanh", "gather", "optimizer", "metrics")}
    report = {"seconds": best, "gflop": flops / 1e9, "gemm_peak_gflops": peak / 1e9}
    report.update(of_peak=flops / best["epoch"] / peak, shares=shares, times=times)
    print(
        f"epoch {best['epoch']:.3f} s, {flops / 1e9:.1f} GFLOP of matmuls: {flops / best['epoch'] / 1e9:.0f}"
        f" GFLOP/s = {100 * report['of_peak']:.0f}% of the float32 GEMM peak ({peak / 1e9:.0f} GFLOP/s)"
    )
    for name, share in shares.items():
        print(f"  {name:10s} {best[name]:.3f} s  {100 * share:5.1f}% of the epoch")
    print(f"  (the gather's rows as one contiguous slice instead: {best['slice']:.3f} s)")
    print(f"  the rest: {100 * (1 - sum(shares.values())):.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
