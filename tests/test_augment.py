"""Data augmentation: exact geometry on known maps, the elastic field's statistics, determinism, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpnn_jax.augment import (
    KINDS,
    AugmentConfig,
    affine_warp,
    augment,
    elastic_field,
    gaussian_matrix,
    random_affine_params,
    resample,
    uniform_noise,
)

SHAPE = (28, 28)
# Jitted once each: op-by-op dispatch would compile every small op (threefry above all) separately.
augment_jit = jax.jit(augment, static_argnums=(2, 3))
affine_warp_jit = jax.jit(affine_warp, static_argnums=1)
elastic_field_jit = jax.jit(elastic_field, static_argnums=(1, 2, 3, 4, 5))
uniform_noise_jit = jax.jit(uniform_noise, static_argnums=(1, 2))
resample_jit = jax.jit(resample)
ZERO = {"degrees": 0.0, "scale": (1.0, 1.0), "shear": 0.0, "shift": 0.0, "alpha": 0.0}


def images(n=5, shape=SHAPE, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).random((n, shape[0] * shape[1])).astype(dtype)


def warp(x, shape=SHAPE, angle=0.0, scale=1.0, shear=0.0, shift=(0.0, 0.0)):
    n = x.shape[0]
    full = lambda v: np.full(n, v, np.float64)  # noqa: E731
    out = affine_warp_jit(x, shape, full(angle), full(scale), full(shear), np.tile(shift, (n, 1)))
    return np.asarray(out).reshape(n, *shape)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_magnitude_is_the_identity_exactly(kind):
    x = images()
    np.testing.assert_array_equal(
        np.asarray(augment_jit(jax.random.key(0), x, SHAPE, AugmentConfig(kind, **ZERO))), x
    )


@pytest.mark.parametrize("shift", [(2, -3), (-5, 0), (0, 7), (27, 27), (40, 0)])
def test_an_integer_translation_moves_pixels_exactly(shift):
    x = images(3)
    dr, dc = shift
    h, w = SHAPE
    padded = np.pad(x.reshape(3, h, w), ((0, 0), (64, 64), (64, 64)))  # output (i, j) reads (i - dr, j - dc)
    expected = padded[:, 64 - dr : 64 - dr + h, 64 - dc : 64 - dc + w]
    np.testing.assert_array_equal(warp(x, shift=np.array(shift, np.float64)), expected)


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_a_rotation_by_multiples_of_90_degrees_is_rot90(k):
    # cos(pi / 2) is 6e-17, not 0, so source points are integers to ~1e-15 and weights 1 to that.
    x = images(3)
    got = warp(x, angle=k * np.pi / 2)
    np.testing.assert_allclose(got, np.rot90(x.reshape(3, *SHAPE), k, axes=(1, 2)), rtol=0, atol=1e-12)


def test_a_half_pixel_shift_averages_neighbours():
    x = images(2)
    got = warp(x, shift=np.array([0.0, 0.5]))
    im = x.reshape(2, *SHAPE)
    np.testing.assert_allclose(got[:, :, 1:], (im[:, :, :-1] + im[:, :, 1:]) / 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[:, :, 0], im[:, :, 0] / 2, rtol=0, atol=1e-15)  # half of it from outside


def test_scale_and_shear_move_known_pixels():
    x = np.zeros((1, 31 * 31))
    x[0, 15 * 31 + 20] = 1.0  # 5 columns right of the centre (15, 15)
    np.testing.assert_array_equal(np.argwhere(warp(x, (31, 31), scale=2.0)[0] == 1), [[15, 25]])
    x = np.zeros((1, 31 * 31))
    x[0, 18 * 31 + 15] = 1.0  # 3 rows below the centre; shear 1 moves it 3 columns right
    np.testing.assert_array_equal(np.argwhere(warp(x, (31, 31), shear=1.0)[0] == 1), [[18, 18]])


@pytest.mark.parametrize("kind", ["affine", "elastic", "both"])
def test_deterministic_for_a_key_and_different_across_keys(kind):
    x = images(4, dtype=np.float32)
    cfg = AugmentConfig(kind)
    a, b = (np.asarray(augment_jit(jax.random.key(1), x, SHAPE, cfg)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = np.asarray(augment_jit(jax.random.key(2), x, SHAPE, cfg))
    assert np.abs(a - c).max() > 0.1
    assert not np.array_equal(a[0], a[1])  # each image its own draw


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [(kind, jnp.float32) for kind in KINDS] + [("both", d) for d in (jnp.float64, jnp.bfloat16, jnp.float16)],
)
def test_shape_and_dtype_kept(kind, dtype):
    x = jnp.asarray(images(3, (20, 24)), dtype)
    out = augment_jit(jax.random.key(0), x, (20, 24), AugmentConfig(kind))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize(
    "extra", [{"alpha": 0.0}, {"degrees": 0.0, "scale": (1.0, 1.0), "shear": 0.0, "shift": 0.0}]
)
def test_both_reduces_to_either_part(extra):
    """With one part at zero magnitude, ``both`` is the other (the same key draws the same), to rounding:
    the identity map's A^-1 e(p) is e(p) exactly, but XLA may fuse the two programs' sums differently."""
    x = images(3)
    key = jax.random.key(3)
    other = "affine" if "alpha" in extra else "elastic"
    got = augment_jit(key, x, SHAPE, AugmentConfig("both", **extra))
    want = augment_jit(key, x, SHAPE, AugmentConfig(other, **extra))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-12)
    assert np.abs(np.asarray(got) - x).max() > 0.1


def test_both_is_affine_then_elastic_resampled_once():
    """``both`` reads I0(S(p + e(p))): on a smooth image it matches resampling twice, affine then elastic,
    and not elastic then affine (0.28 away). Each bilinear resampling of this blob is within
    (|f_rr| + |f_cc|) / 8 = 0.01 of exact, more where the distortion compresses it: 0.014 was seen."""
    n, shape = 8, (64, 64)  # the blob stays far from the border, where resampling twice loses content
    r, c = np.mgrid[:64, :64]
    blob = np.exp(-((r - 30.0) ** 2 + (c - 33.0) ** 2) / (2 * 5.0**2)).ravel()
    x = np.tile(blob, (n, 1))
    key = jax.random.key(7)
    cfg = AugmentConfig("both", degrees=20.0, alpha=60.0, sigma=5.0)
    got = np.asarray(augment_jit(key, x, shape, cfg))
    k_affine, k_elastic = jax.random.split(key)  # augment's own draws
    params = random_affine_params(k_affine, n, cfg, jnp.float64)
    d = np.asarray(elastic_field_jit(k_elastic, n, shape, cfg.alpha, cfg.sigma, jnp.float64))

    def elastic(im):
        return np.asarray(resample_jit(jnp.asarray(im).reshape(n, *shape), r + d[:, 0], c + d[:, 1])).reshape(
            n, -1
        )

    affine_then_elastic = elastic(affine_warp_jit(x, shape, *params))
    elastic_then_affine = affine_warp_jit(elastic(x), shape, *params)
    assert np.abs(got - affine_then_elastic).max() < 0.03
    assert np.abs(got - elastic_then_affine).max() > 0.1
    assert np.abs(got - x).max() > 0.2


def test_gaussian_matrix_is_scipys_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    u = np.random.default_rng(0).uniform(-1, 1, (5, 28))
    for sigma in (1.0, 2.5, 4.0, 6.0):
        want = ndimage.gaussian_filter1d(u, sigma, axis=1, mode="constant")
        np.testing.assert_allclose(
            u @ np.asarray(gaussian_matrix(28, sigma, jnp.float64)).T, want, atol=1e-14
        )


def test_uniform_noise_is_uniform_on_minus_one_one():
    u = np.asarray(uniform_noise_jit(jax.random.key(0), (400, 25, 25), jnp.float64)).ravel()
    assert u.min() > -1 and u.max() < 1
    # 250000 draws: the sample mean and variance are within 4 standard errors of 0 and 1/3
    assert abs(u.mean()) < 4 * np.sqrt(1 / 3 / u.size)
    assert abs(u.var() - 1 / 3) < 4 * np.sqrt((1 / 5 - 1 / 9) / u.size)
    assert np.histogram(u, 10, (-1, 1))[0].min() > 0.09 * u.size


def test_elastic_field_std_and_smoothness_match_theory():
    """Field = alpha G U G^T with U uniform(-1, 1): var[i, j] = alpha^2 / 3 * (G G^T)_ii (G G^T)_jj, and
    neighbours (i, j), (i + 1, j) correlate by (G G^T)_{i, i+1} / sqrt((G G^T)_ii (G G^T)_{i+1, i+1})."""
    alpha, sigma, n = 30.0, 3.0, 3000
    d = np.asarray(elastic_field_jit(jax.random.key(0), n, SHAPE, alpha, sigma, jnp.float64))
    assert d.shape == (n, 2, *SHAPE)
    g = np.asarray(gaussian_matrix(28, sigma, jnp.float64))
    gg = g @ g.T
    var = alpha**2 / 3 * np.outer(np.diag(gg), np.diag(gg))
    # 6000 samples a pixel: a sample std has relative standard error 1 / sqrt(2 * 6000) = 0.9%
    ratio = d.std(axis=(0, 1)) / np.sqrt(var)
    assert abs(ratio.mean() - 1) < 0.01 and np.abs(ratio - 1).max() < 0.05
    assert abs(d.mean()) < 0.01 * np.sqrt(var.max())
    corr_theory = gg[13, 14] / np.sqrt(gg[13, 13] * gg[14, 14])
    f = d[:, :, 13, 10:18].reshape(-1, 8), d[:, :, 14, 10:18].reshape(-1, 8)
    corr = np.mean([np.corrcoef(f[0][:, j], f[1][:, j])[0, 1] for j in range(8)])
    assert abs(corr - corr_theory) < 0.01 and corr_theory > 0.9  # smooth: neighbours nearly equal
    # an interior pixel's std in closed form: sum of squared taps ~ 1 / (2 sqrt(pi) sigma) per axis
    assert abs(np.sqrt(var[14, 14]) / (alpha / np.sqrt(3) / (2 * np.sqrt(np.pi) * sigma)) - 1) < 0.02


@pytest.mark.parametrize("kind", ["affine", "both"])
def test_it_jits_inside_a_scan(kind):
    x = jnp.asarray(images(6, dtype=np.float32))
    cfg = AugmentConfig(kind)
    key = jax.random.key(0)

    @jax.jit
    def epoch(x):
        def step(total, i):
            out = augment(jax.random.fold_in(key, i), x, SHAPE, cfg)
            return total + out.sum(), out

        return jax.lax.scan(step, jnp.float32(0), jnp.arange(3))

    total, outs = epoch(x)
    for i in range(3):
        want = augment_jit(jax.random.fold_in(key, i), x, SHAPE, cfg)
        np.testing.assert_allclose(np.asarray(outs[i]), np.asarray(want), rtol=0, atol=1e-5)
    assert np.isclose(float(total), float(outs.sum()), rtol=1e-5)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("kind", "rotate"),
        ("degrees", -1.0),
        ("degrees", float("nan")),
        ("scale", (1.1, 0.9)),
        ("scale", (0.0, 1.0)),
        ("scale", 1.0),
        ("scale", (0.9, 1.0, 1.1)),
        ("shear", -0.1),
        ("shift", float("inf")),
        ("alpha", -1.0),
        ("sigma", 0.0),
    ],
)
def test_bad_options_are_one_line_errors_naming_them(option, value):
    with pytest.raises(ValueError, match=f"^augment {option}: expected [^\n]*$"):
        AugmentConfig(**{option: value})
