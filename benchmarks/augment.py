"""The cost of on-device augmentation, as a fraction of a train epoch, measured side by side.

    python benchmarks/augment.py [--preset fast] [--hidden H ...] [--repeats 5] [--train 60000] [--json FILE]

The trainer's own compiled epoch (by default the fast recipe: 784-1000-10 tanh, batch 128, Nesterov
momentum, label smoothing, and the test set's evaluation; ``--preset`` and ``--hidden`` give another
recipe's net, its moving average included) on the first ``--train`` MNIST training images, once for each
``--augment`` kind. Each kind's time is the median of ``--repeats`` epochs, interleaved so that
a busy machine slows all of them alike; the table gives seconds per epoch, the augmentation's extra time
as a percentage of the plain epoch, and the same from the process's CPU time (less hurt by other
processes on a shared machine, but blind to how well the threads overlap).
"""

import argparse
import statistics
import time

import jax
import numpy as np

from mlpnn_jax import TrainConfig, load_mnist
from mlpnn_jax import epoch as E
from mlpnn_jax.augment import KINDS
from mlpnn_jax.checkpoint import write_json
from mlpnn_jax.config import PRESETS
from mlpnn_jax.trainer import initial_params, input_stats


def compiled_runs(data, preset, hidden):
    """For each ``--augment`` kind: [(config, layout, train_epoch), device data, state] after one epoch
    that compiles it."""
    x = data[0]
    runs = {}
    for kind in KINDS:
        config = TrainConfig.from_preset(
            preset=preset, augment=kind, **({"hidden": hidden} if hidden else {})
        )
        layout = E.layout(config, E.make_mesh(), len(x), len(data[2]), x.shape[1])
        dev = E.place_data(layout, config, data, input_stats(x))
        train_epoch = E.make_train_epoch(config, layout)
        state = E.init_state(config, layout, initial_params(config, x.shape[1]))
        state, metrics, _ = train_epoch(state, np.int32(1), E.epoch_order(config, layout, 1), dev)
        jax.block_until_ready(metrics)
        runs[kind] = [(config, layout, train_epoch), dev, state]
    return runs


def timed_epochs(runs, repeats):
    """Wall and CPU seconds of ``repeats`` epochs of each kind, interleaved: ({kind: [s]}, {kind: [s]})."""
    wall, cpu = {kind: [] for kind in runs}, {kind: [] for kind in runs}
    for r in range(repeats):
        for kind, ((config, layout, train_epoch), dev, state) in runs.items():
            order = E.epoch_order(config, layout, r + 2)
            t, c = time.perf_counter(), time.process_time()
            runs[kind][2], metrics, _ = train_epoch(state, np.int32(r + 2), order, dev)
            jax.block_until_ready(metrics)
            wall[kind].append(time.perf_counter() - t)
            cpu[kind].append(time.process_time() - c)
    return wall, cpu


def cost_table(wall, cpu):
    """Each kind's median seconds and its extra over the plain epoch, in percent, wall and CPU."""
    base, base_cpu = statistics.median(wall["none"]), statistics.median(cpu["none"])
    table = {}
    for kind in wall:
        t, c = statistics.median(wall[kind]), statistics.median(cpu[kind])
        table[kind] = {
            "seconds": t,
            "extra_percent": 100 * (t - base) / base,
            "cpu_seconds": c,
            "cpu_extra_percent": 100 * (c - base_cpu) / base_cpu,
        }
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="fast", choices=PRESETS, help="the recipe whose epoch to time (fast)"
    )
    parser.add_argument("--hidden", type=int, nargs="+", help="hidden sizes instead of the preset's")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train", type=int, default=60000, help="training images an epoch")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    x, y, x_test, y_test = load_mnist()
    runs = compiled_runs((x[: args.train], y[: args.train], x_test, y_test), args.preset, args.hidden)
    wall, cpu = timed_epochs(runs, args.repeats)
    table = cost_table(wall, cpu)
    config, layout, _ = runs["none"][0]
    net = "-".join(str(n) for n in (x.shape[1], *config.hidden, 10))
    print(
        f"| augment | s / epoch ({layout.steps_per_epoch} steps of {config.batch_size}, {net} "
        f"{config.activation}) | extra, % of a plain epoch | CPU time |"
    )
    print("|---|---|---|---|")
    for kind, row in table.items():
        extra, extra_cpu = row["extra_percent"], row["cpu_extra_percent"]
        print(f"| {kind} | {row['seconds']:.2f} | {extra:+.0f}% | {extra_cpu:+.0f}% |")
    if args.json:
        meta = {"preset": args.preset, "net": net, "train": args.train, "repeats": args.repeats}
        write_json(args.json, meta | {"wall": wall, "cpu": cpu, "table": table})


if __name__ == "__main__":
    main()
