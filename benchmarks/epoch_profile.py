"""Where a default `train` epoch's time goes (784-1000-10 tanh, batch 128, Nesterov momentum).

    python benchmarks/epoch_profile.py [--reps 3] [--json FILE]

Times the trainer's own compiled epoch and copies of it with one piece taken out or replaced, each a
whole epoch in one jitted `lax.scan`, round-robin so that a noisy machine slows them all alike, and
reports the minimum per variant. A piece's share is what taking it out saves:

- gather: the batch's rows picked by index (`x[idx]`) -> a contiguous slice of the same size;
- optimizer: optax's Nesterov momentum with its schedule -> a plain p - lr g;
- tanh: tanh and its derivative -> the identity;
- metrics: the test-set forward pass and the loss and accuracy reductions -> nothing.

Also measured in the same run: the float32 GEMM peak (4096^3 matmuls) and the epoch's matmul FLOPs,
so the epoch's rate is a share of that peak (the README's "of its peak").
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlpnn_jax import TrainConfig, load_mnist
from mlpnn_jax.trainer import Trainer, initial_params, input_stats

VARIANTS = ("trainer", "copy", "no_gather", "no_optimizer", "no_tanh", "no_metrics")


def make_epoch(trainer, variant):
    """A jitted copy of the trainer's default epoch with one piece taken out (see the module doc)."""
    c, optimizer = trainer.config, trainer.optimizer
    bs, nb = c.batch_size, trainer.steps_per_epoch
    act = (lambda h: h) if variant == "no_tanh" else jnp.tanh

    def forward(params, x):
        return act(x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]

    def loss_fn(params, x, labels):
        targets = (1 - c.label_smoothing) * jax.nn.one_hot(labels, 10) + c.label_smoothing / 10
        return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(forward(params, x)), -1))

    def epoch(state, epoch, x, y, x_test, y_test, mean, std):
        key = jax.random.fold_in(jax.random.key(c.seed), epoch)
        perm = jax.random.permutation(key, x.shape[0])[: nb * bs].reshape(nb, bs)

        def step(carry, xs):
            params, opt_state = carry
            idx, i = xs
            if variant == "no_gather":
                xb, yb = (
                    jax.lax.dynamic_slice_in_dim(x, i * bs, bs),
                    jax.lax.dynamic_slice_in_dim(y, i * bs, bs),
                )
            else:
                xb, yb = x[idx], y[idx]
            loss, grads = jax.value_and_grad(loss_fn)(params, (xb - mean) / std, yb)
            if variant == "no_optimizer":
                return (jax.tree.map(lambda p, g: p - 0.05 * g, params, grads), opt_state), loss
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, state, (perm, jnp.arange(nb)))
        if variant == "no_metrics":
            return (params, opt_state), (losses[-1],)
        logits = forward(params, (x_test - mean) / std)
        test_loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y_test[:, None], -1))
        return (params, opt_state), (jnp.mean(losses), test_loss, jnp.sum(jnp.argmax(logits, -1) == y_test))

    return jax.jit(epoch, donate_argnums=0)


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
    trainer = Trainer(config, n, n_test=m, input_dim=d)
    stats = input_stats(data[0])
    dev = trainer.place_data(data, stats)
    fns = {v: make_epoch(trainer, v) for v in VARIANTS[1:]}
    states = {v: trainer.init_state(initial_params(config, d)) for v in VARIANTS}

    def run(v, epoch):
        if v == "trainer":
            states[v], metrics = trainer.epoch(states[v], epoch, dev)
        else:
            x, y, xt, yt, (mean, std), _ = dev
            states[v], metrics = fns[v](states[v], np.int32(epoch), x, y, xt, yt, mean, std)
        jax.block_until_ready(metrics)

    for v in VARIANTS:  # compile
        run(v, 1)
    times = {v: [] for v in VARIANTS}
    for rep in range(args.reps):
        for v in VARIANTS:
            times[v].append(_timed(lambda v=v, e=rep + 2: run(v, e)))
    best = {v: min(t) for v, t in times.items()}
    h, k = config.hidden[0], 10
    steps = trainer.steps_per_epoch
    flops = steps * 2 * config.batch_size * (2 * d * h + 3 * h * k) + 2 * m * (d * h + h * k)
    peak = gemm_peak()
    report = {
        "epoch_s": best["trainer"],
        "copy_s": best["copy"],
        "gflop": flops / 1e9,
        "gemm_peak_gflops": peak / 1e9,
        "of_peak": flops / best["trainer"] / peak,
        "shares": {v[3:]: (best["copy"] - best[v]) / best["copy"] for v in VARIANTS[2:]},
        "times": times,
    }
    print(
        f"epoch {best['trainer']:.3f} s (its copy {best['copy']:.3f} s), {flops / 1e9:.1f} GFLOP of matmuls:"
        f" {flops / best['trainer'] / 1e9:.0f} GFLOP/s = {100 * report['of_peak']:.0f}% of the float32 GEMM"
        f" peak {peak / 1e9:.0f} GFLOP/s"
    )
    for v in VARIANTS[2:]:
        print(
            f"  {v[3:]:10s} {best['copy'] - best[v]:+.3f} s"
            f"  {100 * report['shares'][v[3:]]:5.1f}% of the epoch"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
