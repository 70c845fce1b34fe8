"""Each epoch's order, drawn on the host: ``jax.random.permutation(fold_in(key(seed), epoch), n)`` bit
for bit, by JAX's default PRNG (threefry 2x32, its keys split and its bits drawn "partitionably"), in numpy.

Drawn inside the compiled epoch, the shuffle's random bits and sorts were 0.4 s of a cold start's XLA
compile on two cores; here they are 11 ms of numpy an epoch, drawn while the device runs the epoch before.
The hash is Salmon et al.'s Threefry-2x32 with 20 rounds (Random123), as ``jax.random`` runs it.
"""

from __future__ import annotations

import math

import numpy as np

ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # the bit rotations of the rounds, four at a time
PARITY = 0x1BD11BDA  # Threefish's key-schedule constant: the third key word is k0 ^ k1 ^ PARITY
MASK = 0xFFFFFFFF
SHUFFLE_EXPONENT = 3  # jax.random's sort rounds: enough that ties between sort keys hardly matter


def threefry2x32(key, x0, x1):
    """Threefry-2x32-20 of the counters (x0, x1) under ``key``.

    Args:
        key: (k0, k1), two ints in [0, 2**32).  x0, x1: (n,) uint32 counters.
    Returns:
        (y0, y1), each (n,) uint32.
    """
    k0, k1 = int(key[0]), int(key[1])
    ks = (k0, k1, k0 ^ k1 ^ PARITY)
    x0, x1 = x0 + np.uint32(ks[0]), x1 + np.uint32(ks[1])  # uint32 arrays wrap around, as the hash needs
    for i in range(5):
        for r in ROTATIONS[i % 2]:
            x0 += x1
            x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
            x1 ^= x0
        x0 += np.uint32(ks[(i + 1) % 3])
        x1 += np.uint32((ks[(i + 2) % 3] + i + 1) & MASK)
    return x0, x1


def _hash(key, n):
    """threefry2x32 of the counters 0..n-1 (high words 0), as (y0, y1)."""
    return threefry2x32(key, np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))


def seed_key(seed):
    """The words of ``jax.random.key(seed)`` for a seed in [0, 2**32)."""
    return 0, int(seed)


def fold_in(key, data):
    """``jax.random.fold_in(key, data)``'s words, data in [0, 2**32)."""
    y0, y1 = threefry2x32(key, np.zeros(1, np.uint32), np.array([data], np.uint32))
    return int(y0[0]), int(y1[0])


def split(key):
    """The two keys of ``jax.random.split(key)``, as words."""
    y0, y1 = _hash(key, 2)
    return (int(y0[0]), int(y1[0])), (int(y0[1]), int(y1[1]))


def random_bits(key, n):
    """``jax.random.bits(key, (n,), uint32)``: (n,) uint32."""
    y0, y1 = _hash(key, n)
    return y0 ^ y1


def permutation(key, n):
    """``jax.random.permutation(key, n)``: (n,) int32, by rounds of a stable sort on random bits."""
    rounds = math.ceil(SHUFFLE_EXPONENT * math.log(max(1, n)) / math.log(MASK))
    order = np.arange(n, dtype=np.int32)
    for _ in range(rounds):
        key, subkey = split(key)
        order = order[np.argsort(random_bits(subkey, n), kind="stable")]
    return order


def epoch_order(seed, epoch, n):
    """The order of epoch ``epoch`` (1-based) of a run of seed ``seed`` over n images: (n,) int32."""
    return permutation(fold_in(seed_key(seed), epoch), n)
