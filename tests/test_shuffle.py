"""The host's shuffle (shuffle.py) is jax.random's, bit for bit; the epoch compiles no shuffle of its own."""

import re

import jax
import numpy as np
import pytest

from mlpnn_jax import TrainConfig, shuffle, train
from mlpnn_jax import epoch as E
from mlpnn_jax.trainer import initial_params, input_stats, split_validation

SEEDS = [0, 1, 2**31, 2**32 - 1]


def words(key):
    """A jax.random key's two uint32 words, as ints."""
    return tuple(int(w) for w in jax.random.key_data(key))


@pytest.mark.parametrize(
    ("key", "counter", "expected"),
    [  # Random123's known-answer vectors for threefry2x32_20 (kat_vectors)
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ],
)
def test_threefry_gives_random123s_known_answers(key, counter, expected):
    y0, y1 = shuffle.threefry2x32(key, *(np.array([c], np.uint32) for c in counter))
    assert (int(y0[0]), int(y1[0])) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_keys_are_jax_randoms(seed):
    """seed_key, fold_in and split give the words of jax.random's keys."""
    key = jax.random.key(seed)
    assert shuffle.seed_key(seed) == words(key)
    for data in (0, 1, 77, 2**32 - 1):
        assert shuffle.fold_in(shuffle.seed_key(seed), data) == words(jax.random.fold_in(key, data))
    assert shuffle.split(shuffle.seed_key(seed)) == tuple(words(k) for k in jax.random.split(key))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("epoch", [1, 2, 1000])
@pytest.mark.parametrize("n", [1, 2, 3, 1625, 1626, 60000])  # one sort round up to 1625, two from 1626
def test_the_epoch_order_is_jax_randoms_permutation(seed, epoch, n):
    expected = jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n)
    got = shuffle.epoch_order(seed, epoch, n)
    assert got.dtype == np.int32 and np.array_equal(got, np.asarray(expected))


def test_random_bits_are_jax_randoms():
    key = jax.random.key(5)
    expected = jax.random.bits(key, (1001,), np.uint32)
    assert np.array_equal(shuffle.random_bits(words(key), 1001), np.asarray(expected))


@pytest.mark.parametrize("options", [{}, {"augment": "affine"}, {"dropout_hidden": 0.1}])
def test_the_compiled_epoch_sorts_nothing(options):
    """No shuffle inside the epoch: its sorts were most of its random-number code to compile."""
    config = TrainConfig(hidden=(16,), batch_size=64, epochs=1, **options)
    layout = E.layout(config, E.make_mesh(), 512, 128, 784)
    shapes = jax.eval_shape(lambda: initial_params(config, 784))
    compiled = E.compile_train_epoch(config, layout, shapes, 512, 128)
    assert not re.search(r"\ssort\(", compiled.as_text())  # an HLO sort instruction


def test_the_epoch_trains_on_the_order_it_is_given(small_mnist):
    """epoch_order: every training image once, in whole batches; the epoch takes its batches in that
    order (the same order, the same params; the order reversed, others)."""
    config = TrainConfig(hidden=(16,), batch_size=64, epochs=1)
    layout = E.layout(config, E.make_mesh(), 1024, 256, 784)
    data = E.place_data(layout, config, small_mnist, input_stats(small_mnist[0]))
    order = E.epoch_order(config, layout, 1)
    assert order.shape == (16, 64) and sorted(np.asarray(order).ravel()) == list(range(1024))
    train_epoch, params = E.make_train_epoch(config, layout), initial_params(config, 784)
    results = [
        jax.device_get(train_epoch(E.init_state(config, layout, params), np.int32(1), o, data)[0][0])
        for o in (order, order, order[::-1])
    ]
    assert all(np.array_equal(results[0][k], results[1][k]) for k in params)
    assert not np.array_equal(results[0]["W1"], results[2]["W1"])


def test_the_order_is_the_same_with_jax_x64_off():
    """Runs train in JAX's default 32-bit mode (the suite runs in 64-bit)."""
    with jax.enable_x64(False):
        for seed, epoch, n in [(0, 1, 60000), (2**32 - 1, 2**31 - 1, 1626), (7, 3, 1625)]:
            expected = jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n)
            assert np.array_equal(shuffle.epoch_order(seed, epoch, n), np.asarray(expected))


def test_train_takes_each_epoch_in_jax_randoms_order(small_mnist):
    """train's epochs are jax.random.permutation(fold_in(key(seed), epoch), n_train) in whole batches,
    the validation images left out: two epochs run by hand in those orders give its params bit for bit."""
    config = TrainConfig(hidden=(16,), batch_size=64, epochs=2, validation=128, seed=11)
    result = train(config, small_mnist)
    data, validation = split_validation(config, small_mnist)
    layout = E.layout(config, E.make_mesh(), 1024, 256, 784)
    dev = E.place_data(layout, config, data, input_stats(data[0]), validation)
    state, train_epoch = (
        E.init_state(config, layout, initial_params(config, 784)),
        E.make_train_epoch(config, layout),
    )
    for epoch in (1, 2):
        key = jax.random.fold_in(jax.random.key(config.seed), epoch)
        order = jax.random.permutation(key, 1024 - 128)[: 14 * 64].reshape(14, 64)
        state, _, _ = train_epoch(state, np.int32(epoch), order, dev)
    assert all(np.array_equal(result.train_params[k], np.asarray(state[0][k])) for k in result.train_params)
