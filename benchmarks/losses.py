"""Test accuracy of each loss under one training recipe (the README's loss table).

    python benchmarks/losses.py [--seeds 3] [--epochs 2]

Every loss trains with the default recipe of `mlpnn-jax train` (784-1000-10 tanh, Nesterov momentum,
lr 0.1, one-cycle, batch 128) with label smoothing off, so that each loss is itself; smooth_ce keeps
its own eps = 0.1. Prints a Markdown table: mean, min and max final test accuracy over the seeds.
"""

import argparse
import statistics

from mlpnn_jax import LOSSES, TrainConfig, load_mnist, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = load_mnist()
    print(f"| loss | test accuracy, mean of {args.seeds} seeds (min-max), {args.epochs} epochs |")
    print("|---|---|")
    for loss in LOSSES:
        accs = []
        for seed in range(args.seeds):
            config = TrainConfig(loss=loss, label_smoothing=0.0, epochs=args.epochs, seed=seed)
            accs.append(100 * train(config, data).history[-1]["test_accuracy"])
        print(f"| {loss} | {statistics.mean(accs):.2f}% ({min(accs):.2f}-{max(accs):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
