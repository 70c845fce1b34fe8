"""On-device data augmentation of flat image batches: random affine and elastic distortions.

Pure JAX and jittable, with no host work, so it runs inside a ``lax.scan`` epoch; the result depends
only on the PRNG key. Every distortion is a map from each output pixel to the source point it reads
from, so ``both`` (affine, then elastic) composes the two maps and resamples the image once, bilinearly,
with zeros outside the image (MNIST's background).

The elastic distortion is Simard, Steinkraus and Platt's (ICDAR 2003): a uniform(-1, 1) displacement
per pixel and axis, smoothed by a normalised Gaussian of width ``sigma`` (separable, truncated at
4 sigma, zero outside the image, as ``scipy.ndimage.gaussian_filter(mode="constant")``), times ``alpha``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from mlpnn_jax.names import AUGMENT_KINDS as KINDS


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which distortions to draw, and how strong. The defaults suit 28 x 28 MNIST digits.

    Attributes:
        kind: "none", "affine", "elastic" or "both" (affine, then elastic, resampled once).
        degrees: rotations are uniform in [-degrees, degrees].
        scale: (low, high): isotropic scale factors are uniform in it.
        shear: horizontal shear factors (column shift per row) are uniform in [-shear, shear].
        shift: translations are uniform in [-shift, shift] pixels, along each axis.
        alpha: the elastic field's scale, in pixels (Simard's alpha).
        sigma: the width of the elastic field's Gaussian smoothing, in pixels (Simard's sigma).
    """

    kind: str = "none"
    degrees: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 0.15
    shift: float = 2.0
    alpha: float = 34.0
    sigma: float = 4.0

    def __post_init__(self):
        try:
            object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        except (TypeError, ValueError):
            raise ValueError(f"augment scale: expected two numbers (low, high), got {self.scale!r}") from None
        checks = (
            (self.kind in KINDS, "kind", f"one of {', '.join(KINDS)}", self.kind),
            (_finite(self.degrees) and self.degrees >= 0, "degrees", "a finite number >= 0", self.degrees),
            (
                len(self.scale) == 2 and all(_finite(s) for s in self.scale) and self.scale[0] > 0,
                "scale",
                "two finite numbers 0 < low <= high",
                self.scale,
            ),
            (_finite(self.shear) and self.shear >= 0, "shear", "a finite number >= 0", self.shear),
            (_finite(self.shift) and self.shift >= 0, "shift", "a finite number >= 0", self.shift),
            (_finite(self.alpha) and self.alpha >= 0, "alpha", "a finite number >= 0", self.alpha),
            (_finite(self.sigma) and self.sigma > 0, "sigma", "a finite number > 0", self.sigma),
        )
        for ok, name, expected, got in checks:
            if not ok:
                raise ValueError(f"augment {name}: expected {expected}, got {got!r}")
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"augment scale: expected low <= high, got {self.scale!r}")


def _finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


def augment(key, x, image_shape, cfg):
    """Distorts every image of a flat batch, each with its own random draw.

    Args:
        key: a ``jax.random`` key; the same key gives the same result.
        x: (n, H * W) images of any float dtype, background 0 (e.g. MNIST pixels in [0, 1]).
        image_shape: (H, W), static.
        cfg: an AugmentConfig.
    Returns:
        (n, H * W) distorted images, of x's dtype; x itself for kind "none".
    """
    return warp(draw(key, x.shape[0], image_shape, cfg, x.dtype), x, image_shape, cfg)


def draw(key, n, image_shape, cfg, dtype=jnp.float32):
    """The random draws of ``augment(key, x, ...)`` for n images of dtype ``dtype``, apart from the
    elastic noise: a few numbers an image, so that an epoch can draw every step's in one vectorised
    call (``jax.vmap`` over the steps' keys) before its scan instead of many small kernels a step.

    Returns:
        a dict: "inv" (n, 2, 2) and "offset" (n, 2), the maps from output to source pixel (affine,
        both), and "elastic", the key of the elastic fields (elastic, both); empty for "none".
    """
    plan = {}
    if cfg.kind == "none":
        return plan
    ct = _coord_dtype(dtype)
    k_affine, k_elastic = jax.random.split(key)
    if cfg.kind in ("affine", "both"):
        angle, scale, shear, shift = random_affine_params(k_affine, n, cfg, ct)
        plan["inv"], plan["offset"] = _inverse_affine(angle, scale, shear, shift, image_shape)
    if cfg.kind in ("elastic", "both"):
        plan["elastic"] = k_elastic
    return plan


def draw_steps(keys, n, image_shape, cfg, dtype=jnp.float32):
    """``draw`` for each key of ``keys`` (steps,) at once, vectorised: its arrays stacked (steps, ...),
    equal bit for bit to drawing them one by one. Drawn in a scan's steps, they cost many small kernels
    a step; an epoch draws them all before its scan."""
    return jax.vmap(lambda k: draw(k, n, image_shape, cfg, dtype))(keys)


def warp(plan, x, image_shape, cfg):
    """Distorts a flat batch as ``draw``'s plan says: ``augment`` given its draws.

    Args:
        plan: ``draw(key, n, image_shape, cfg, x.dtype)``.  x: (n, H * W) images.
        image_shape: (H, W), static.  cfg: the AugmentConfig given to ``draw``.
    Returns:
        (n, H * W) distorted images, of x's dtype; x itself for kind "none".
    """
    if cfg.kind == "none":
        return x
    h, w = image_shape
    n = x.shape[0]
    ct = _coord_dtype(x.dtype)
    rows, cols = _grid((h, w), ct)
    src_r, src_c = jnp.broadcast_to(rows, (n, h, w)), jnp.broadcast_to(cols, (n, h, w))
    inv = plan.get("inv")
    if inv is not None:
        src_r, src_c = _apply_affine(inv, plan["offset"], rows, cols)
    if "elastic" in plan:
        d = elastic_field(plan["elastic"], n, (h, w), cfg.alpha, cfg.sigma, ct)
        if inv is not None:  # I0(S(p + e(p))) = I0(S(p) + A^-1 e(p)), as S is affine
            d = jnp.einsum("nab,nbhw->nahw", inv, d)
        src_r, src_c = src_r + d[:, 0], src_c + d[:, 1]
    out = resample(x.reshape(n, h, w), src_r, src_c)
    return out.reshape(n, h * w).astype(x.dtype)


def random_affine_params(key, n, cfg, dtype=jnp.float32):
    """Draws n affine distortions as ``cfg`` says: (angle (n,) radians, scale (n,), shear (n,),
    shift (n, 2) pixels (rows, cols))."""
    ka, ks, kh, kt = jax.random.split(key, 4)
    rad = math.radians(cfg.degrees)
    angle = jax.random.uniform(ka, (n,), dtype, -rad, rad)
    scale = jax.random.uniform(ks, (n,), dtype, cfg.scale[0], cfg.scale[1])
    shear = jax.random.uniform(kh, (n,), dtype, -cfg.shear, cfg.shear)
    shift = jax.random.uniform(kt, (n, 2), dtype, -cfg.shift, cfg.shift)
    return angle, scale, shear, shift


def affine_warp(x, image_shape, angle, scale, shear, shift):
    """Applies given affine maps about the image centre: scale, then shear, rotate and translate.

    Args:
        x: (n, H * W) images.  image_shape: (H, W).
        angle: (n,) counter-clockwise rotations in radians (pi / 2 is ``np.rot90``).
        scale: (n,) isotropic scale factors.  shear: (n,) column shift per row below the centre.
        shift: (n, 2) translations (rows down, columns right) in pixels.
    Returns:
        (n, H * W) warped images of x's dtype (bilinear, zero outside).
    """
    h, w = image_shape
    n = x.shape[0]
    ct = _coord_dtype(x.dtype)
    as_ct = lambda a: jnp.asarray(a, ct)  # noqa: E731
    inv, offset = _inverse_affine(as_ct(angle), as_ct(scale), as_ct(shear), as_ct(shift), (h, w))
    src_r, src_c = _apply_affine(inv, offset, *_grid((h, w), ct))
    return resample(x.reshape(n, h, w), src_r, src_c).reshape(n, h * w).astype(x.dtype)


def gaussian_matrix(size, sigma, dtype=jnp.float32):
    """The (size, size) matrix G with (G u)_i = sum_j g(i - j) u_j: a normalised Gaussian of width
    sigma truncated at 4 sigma, zero outside [0, size) (scipy's gaussian_filter, mode "constant")."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    lag = np.arange(size)[:, None] - np.arange(size)[None, :]
    g = np.where(np.abs(lag) <= radius, taps[np.clip(lag + radius, 0, 2 * radius)], 0.0)
    return jnp.asarray(g, dtype)


def elastic_field(key, n, image_shape, alpha, sigma, dtype=jnp.float32):
    """Simard's elastic displacement fields: alpha * (Gaussian-smoothed uniform(-1, 1) noise).

    Args:
        key: a ``jax.random`` key.  n: the number of fields.  image_shape: (H, W).
        alpha: the scale in pixels.  sigma: the Gaussian's width in pixels.  dtype: a float dtype.
    Returns:
        (n, 2, H, W) displacements (rows, cols) in pixels.
    """
    h, w = image_shape
    noise = uniform_noise(key, (n * 2, h, w), dtype)
    # Separable smoothing as two small matrix products: G_h U G_w^T.
    smooth = jnp.einsum(
        "ij,bjm->bim", gaussian_matrix(h, sigma, dtype), noise @ gaussian_matrix(w, sigma, dtype).T
    )
    return jnp.asarray(alpha, dtype) * smooth.reshape(n, 2, h, w)


def uniform_noise(key, shape, dtype=jnp.float32):
    """Uniform(-1, 1) noise on a grid of 2**16 levels, (k + 1/2) / 2**15 - 1, symmetric about 0.

    Two values per 32 random bits: the random bits are most of the elastic distortion's cost. Its
    variance is 1/3 (1 - 2**-32); after smoothing over hundreds of pixels the grid is invisible.
    """
    *lead, last = shape
    half = (last + 1) // 2
    bits = jax.random.bits(key, (*lead, half), jnp.uint32)
    k = jnp.concatenate([bits >> 16, bits & 0xFFFF], axis=-1)[..., :last]
    return (k.astype(dtype) + 0.5) * (2.0 / 65536) - 1.0


def resample(images, src_r, src_c):
    """Bilinear samples of each image at the given source points, 0 outside the image.

    Args:
        images: (n, H, W).  src_r, src_c: (n, H', W') source rows and columns (any float dtype).
    Returns:
        (n, H', W') of the coordinates' dtype.
    """
    n, h, w = images.shape
    # Two rows and columns of zeros on every side: a top-left corner clipped into [-2, H] x [-2, W]
    # reads a 2 x 2 patch that is all zeros exactly when the point is outside, so no masks are needed.
    padded = jnp.pad(images.astype(src_r.dtype), ((0, 0), (2, 2), (2, 3)))
    # Each pixel packed with its right neighbour into one complex number: a patch is 2 elements to
    # gather, not 4. XLA's CPU gather costs about the same per element whatever its size, and it is most
    # of the augmentation's cost; the values, hence the result, are those of a 2 x 2 float gather.
    pairs = jax.lax.complex(padded[:, :, :-1], padded[:, :, 1:])  # (n, H + 4, W + 4)
    r0, c0 = jnp.floor(src_r), jnp.floor(src_c)
    fr, fc = src_r - r0, src_c - c0
    rows = jnp.arange(n, dtype=jnp.int32)[:, None, None] * (h + 4) + jnp.clip(r0, -2, h).astype(jnp.int32) + 2
    c0 = jnp.clip(c0, -2, w).astype(jnp.int32) + 2
    dims = jax.lax.GatherDimensionNumbers(offset_dims=(3,), collapsed_slice_dims=(1,), start_index_map=(0, 1))
    # images stacked as one (n (H + 4), W + 4) array: two indices a point, rows of the stack and columns
    q = jax.lax.gather(pairs.reshape(-1, w + 4), jnp.stack([rows, c0], -1), dims, (2, 1), mode="clip")
    t, b = q[..., 0], q[..., 1]
    top = t.real + fc * (t.imag - t.real)
    bottom = b.real + fc * (b.imag - b.real)
    return top + fr * (bottom - top)


def _coord_dtype(dtype):
    """Coordinates in at least float32 (bfloat16 cannot address 28 pixels to a fraction)."""
    return jnp.promote_types(dtype, jnp.float32)


def _grid(image_shape, dtype):
    """The pixel coordinates (rows (H, 1), cols (1, W))."""
    h, w = image_shape
    return jnp.arange(h, dtype=dtype)[:, None], jnp.arange(w, dtype=dtype)[None, :]


def _inverse_affine(angle, scale, shear, shift, image_shape):
    """The maps from output to source pixel: (A^-1 (n, 2, 2), offset (n, 2)), source = A^-1 p + offset,
    for the forward map p' = A (p - c) + c + shift with A = R(angle) Shear(shear) scale."""
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    # In (row, col) coordinates (rows point down) a counter-clockwise rotation is [[cos, -sin], [sin, cos]].
    rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    zero, one = jnp.zeros_like(shear), jnp.ones_like(shear)
    shr = jnp.stack([jnp.stack([one, zero], -1), jnp.stack([shear, one], -1)], -2)  # col += shear * row
    a = rot @ shr * scale[:, None, None]
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    inv = (
        jnp.stack([jnp.stack([a[:, 1, 1], -a[:, 0, 1]], -1), jnp.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], -2)
        / det[:, None, None]
    )
    centre = jnp.asarray([(image_shape[0] - 1) / 2, (image_shape[1] - 1) / 2], angle.dtype)
    # p = A^-1 (p' - c - shift) + c
    offset = centre - jnp.einsum("nab,nb->na", inv, centre + shift)
    return inv, offset


def _apply_affine(inv, offset, rows, cols):
    """Source coordinates (n, H, W) twice of the output grid rows (H, 1), cols (1, W)."""
    m = inv[:, :, :, None, None]
    src_r = m[:, 0, 0] * rows + m[:, 0, 1] * cols + offset[:, 0, None, None]
    src_c = m[:, 1, 0] * rows + m[:, 1, 1] * cols + offset[:, 1, None, None]
    return src_r, src_c
