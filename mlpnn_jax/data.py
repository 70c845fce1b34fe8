"""Load MNIST-format IDX files (gzipped or not) as numpy arrays.

numpy only: this module must not import jax, so that loading data stays fast and usable on its own.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import math
import os
import stat
import threading
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["NUM_CLASSES", "DataError", "image_sizes", "load_mnist", "path_kind", "read_idx", "write_mnist"]

# The MNIST that ships with the package; its SHA256SUMS lists the decompressed IDX files.
_BUNDLED_DIR = Path(__file__).parent / "mnist"

# IDX magic numbers: 0x00 0x00, data-type code (0x08 = unsigned byte), number of dimensions.
_IMAGES_MAGIC = 0x00000803  # 2051
_LABELS_MAGIC = 0x00000801  # 2049

# The four files of an MNIST-format set with their magic numbers, in load_mnist's order.
_FILES = {
    "train-images-idx3-ubyte": _IMAGES_MAGIC,
    "train-labels-idx1-ubyte": _LABELS_MAGIC,
    "t10k-images-idx3-ubyte": _IMAGES_MAGIC,
    "t10k-labels-idx1-ubyte": _LABELS_MAGIC,
}
_UBYTE = 0x08
_MAX_DEFLATE_RATIO = 1032  # deflate expands at most ~1032:1
_KINDS = {
    stat.S_IFREG: "a file",
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
NUM_CLASSES = 10  # MNIST's digits: the model's outputs, the labels' range


class DataError(ValueError):
    """A data file is missing or malformed; the one-line message names the file and the problem."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read one unsigned-byte IDX file, gzipped (name ends in .gz) or not.

    Args:
        path: the IDX file.

    Returns:
        A read-only uint8 array shaped as the header says, e.g. (N, rows, cols) for images and
        (N,) for labels; it is a view over the file's bytes (no copy).

    Raises:
        DataError: the file cannot be read or decompressed, or is not a well-formed IDX file.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def load_mnist(
    data_dir: str | Path | None = None, dtype: str | np.dtype | type = "float32"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load an MNIST-format data set: the bundled MNIST, or the four IDX files in `data_dir`.

    Pixels are scaled to [0, 1] as `uint8 / 255`, computed directly in `dtype` (``scale_pixels``);
    `dtype="uint8"` keeps the raw pixels 0..255 instead, a quarter of float32's memory (the trainer
    keeps them so on the device and scales each batch there, with the same division).

    Args:
        data_dir: a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
            t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzipped (`.gz`;
            the plain file wins if both exist), e.g. Fashion-MNIST. None loads the bundled
            MNIST and verifies each decompressed file against the bundled SHA256SUMS.
        dtype: a numpy floating dtype (name), e.g. "float32" or "float64", or "uint8" (raw pixels).

    Returns:
        (x_train, y_train, x_test, y_test): x_train (N_train, rows*cols) and x_test
        (N_test, rows*cols) of `dtype` in [0, 1] (uint8: 0..255); y_train (N_train,) and y_test
        (N_test,) int32 in 0..9. For MNIST, N_train = 60000, N_test = 10000, rows*cols = 784. Standard order.

    Raises:
        ValueError: `dtype` is neither a numpy floating dtype nor uint8.
        DataError: a file or the directory is missing or malformed, or a checksum differs.
    """
    pixel_dtype = _pixel_dtype(dtype)
    if data_dir is None:
        return _load_dir(_BUNDLED_DIR, pixel_dtype, _read_checksums(_BUNDLED_DIR / "SHA256SUMS"))
    return _load_dir(Path(data_dir), pixel_dtype)


def load_pixels_async(data_dir: str | Path | None = None) -> concurrent.futures.Future:
    """Starts ``load_mnist(data_dir, dtype="uint8")`` in a thread of its own: a Future of its result.

    The trainer's data set, loaded while JAX imports and compiles (numpy and zlib run without the GIL for
    most of it). A daemon thread: a command that fails meanwhile exits without waiting for it.
    """
    future: concurrent.futures.Future = concurrent.futures.Future()

    def load():
        try:
            future.set_result(load_mnist(data_dir, dtype="uint8"))
        except BaseException as e:  # handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=load, name="load_mnist", daemon=True).start()
    return future


def image_sizes(data_dir: str | Path | None = None) -> tuple[int, int, int] | None:
    """(training images, test images, pixels an image) from the two image files' headers; None unless
    both headers are sound.

    Lets a caller size a model and compile its training while the data set is still loading, so each
    header is checked first against its file's size (for a gzipped file, the size its gzip trailer
    records), and nothing is built from dimensions a file cannot hold; ``load_mnist`` reports any
    problem.
    """
    heads = [_images_header(data_dir, name) for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")]
    if None in heads or heads[0][1] != heads[1][1]:
        return None
    return heads[0][0], heads[1][0], heads[0][1]


def _images_header(data_dir, name):
    """(images, rows * cols) of the images file ``name`` in ``data_dir`` if its header is sound, else None."""
    try:
        path = _locate(_BUNDLED_DIR if data_dir is None else Path(data_dir), name)
        with open(path, "rb") as raw:
            if path.suffix == ".gz":
                with gzip.open(raw, "rb") as f:
                    header = f.read(16)
                raw.seek(-4, 2)  # the gzip trailer: the decompressed size mod 2**32
                size, size_mod = None, int.from_bytes(raw.read(4), "little")
                limit = _MAX_DEFLATE_RATIO * raw.seek(0, 2)
            else:
                header, size = raw.read(16), raw.seek(0, 2)
    except (OSError, EOFError, ValueError, DataError, zlib.error):
        return None
    if len(header) < 16:
        return None
    magic, n, rows, cols = (int.from_bytes(header[i : i + 4], "big") for i in range(0, 16, 4))
    total = 16 + n * rows * cols
    # plain: the exact size; gzipped: the trailer's size mod 2**32, within deflate's largest ratio
    sound = total == size if size is not None else (total <= limit and total % 2**32 == size_mod)
    return (n, rows * cols) if magic == _IMAGES_MAGIC and rows * cols > 0 and sound else None


def _pixel_dtype(dtype: object) -> np.dtype:
    """Return `dtype` as a numpy floating dtype or uint8, or raise ValueError naming the option."""
    try:
        # np.dtype(None) means float64; refuse it rather than guess.
        result = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        result = None
    if result is None or (result.kind != "f" and result != np.uint8):
        raise ValueError(
            f"dtype: expected a numpy floating dtype such as 'float32' or 'float64', or 'uint8' (raw"
            f" pixels), got {dtype!r}"
        )
    return result


def scale_pixels(pixels: np.ndarray, dtype: str | np.dtype | type = "float32") -> np.ndarray:
    """Pixels 0..255 (uint8, any shape) as `dtype` in [0, 1]: `uint8 / 255`, computed directly in `dtype`.

    For float16, float32 and float64 the values are bit-identical to `(pixels.astype(np.float64) /
    255.0)` cast to `dtype` (division is correctly rounded, and float64 carries more than twice the
    digits of the narrower types, so rounding twice never differs from rounding once).
    """
    dtype = np.dtype(dtype)
    # One allocation, then divide in place: float64 equals the notebook's `data / 255.0` bit for bit.
    out = np.asarray(pixels).astype(dtype)
    out /= dtype.type(255)
    return out


def _load_dir(
    data_dir: Path, dtype: np.dtype, checksums: Mapping[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the four files in `data_dir`, checking sha256 of decompressed bytes if `checksums`."""
    kind = path_kind(data_dir)
    if kind is None:
        raise DataError(f"{data_dir}: data directory does not exist")
    if kind != "a directory":
        raise DataError(f"{data_dir}: the data directory is {kind}, not a directory")
    # Locate all four first, so a missing file is reported before the slow reads.
    paths = [_locate(data_dir, name) for name in _FILES]
    arrays = []
    for (name, magic), path in zip(_FILES.items(), paths, strict=True):
        buf = _read_bytes(path)
        if checksums is not None:
            _verify(path, buf, checksums.get(name))
        arrays.append(_parse_idx(buf, path, magic))
    _check_trainable(arrays[0], paths[0])
    x_train, y_train = _pair(arrays[0], arrays[1], paths[0], paths[1], dtype)
    x_test, y_test = _pair(arrays[2], arrays[3], paths[2], paths[3], dtype)
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(
            f"{paths[0]} and {paths[2]}: image size mismatch: "
            f"{arrays[0].shape[1:]} pixels in training images but {arrays[2].shape[1:]} in test"
        )
    return x_train, y_train, x_test, y_test


def _check_trainable(images: np.ndarray, path: Path) -> None:
    """Raise DataError for a training set nothing can be learnt from: empty, or one image repeated."""
    if len(images) == 0:
        raise DataError(f"{path}: the training set is empty (its header says 0 images)")
    # Exact uint8 comparisons: a float std of constant pixels is not exactly 0 after rounding.
    if (images == images.flat[0]).all():
        what = f"every pixel of every image is {images.flat[0]}"
    elif len(images) > 1 and (images == images[:1]).all():
        what = "all its images are identical"
    else:
        return
    raise DataError(f"{path}: the training set cannot be learnt from: {what} ({len(images)} images)")


def _locate(data_dir: Path, name: str) -> Path:
    """Return data_dir/name if it exists, else data_dir/name.gz, else raise DataError."""
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        kind = path_kind(candidate)
        if kind == "a file":
            return candidate
        if kind is not None:  # never opened: reading a FIFO or a device could block or never end
            raise DataError(f"{candidate} is {kind}, not a regular file")
    raise DataError(f"{data_dir / name}: missing file (expected {name} or {name}.gz)")


def path_kind(path: str | Path) -> str | None:
    """What ``path`` is, for messages: "a file", "a directory", "a FIFO", ..., "a symlink to a missing
    TARGET"; None when nothing is there (nor under a part of it that is not a directory)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"a symlink to a missing {os.readlink(path)}" if os.path.islink(path) else None
    return _KINDS.get(stat.S_IFMT(mode), "not a file or directory")


def _read_bytes(path: Path) -> bytes:
    """Return the file's bytes, decompressed if its name ends in .gz."""
    try:
        data = path.read_bytes()
        return _inflate(data, path) if path.suffix == ".gz" else data
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream: {exc}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from exc


def _inflate(data: bytes, path: Path) -> bytes:
    """The IDX bytes of the gzip file ``data``, inflating at most the size its header declares + 1 byte.

    A gzip bomb (a small file whose payload inflates far past its header's shape) is refused after that
    one byte: the memory used is the declared size, never the size of the payload.
    """
    head = _gunzip(data, 4)
    head = _gunzip(data, 4 + 4 * head[3]) if len(head) == 4 else head
    shape, _ = _parse_header(head, path)
    declared = math.prod(shape)
    if declared > _MAX_DEFLATE_RATIO * len(data):
        raise DataError(
            f"{path}: payload truncated: expected {declared} bytes for shape {shape}, more than"
            f" {len(data)} compressed bytes can inflate to"
        )
    buf = _gunzip(data, len(head) + declared + 1)
    if len(buf) == len(head) + declared + 1:
        raise DataError(
            f"{path}: payload over-long: expected {declared} bytes for shape {shape}, but the gzip stream"
            " holds more (read no further)"
        )
    return buf


def _gunzip(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes (or fewer, all there are) of the gzip members in ``data``.

    One zlib call per member, which runs without the GIL from start to end. gzip.GzipFile inflates 8 KB
    of input a call, and each call then waits for the GIL again while JAX imports in the main thread:
    MNIST took 1.2 s to load beside the import instead of 0.26 s alone. zlib checks each member's
    header and CRC (zlib.error); a member cut short raises EOFError, as gzip does.
    """
    parts, n = [], 0
    while n < limit and data.count(0) != len(data):  # as gzip, ignore zero padding after a member
        member = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer around the deflate data
        parts.append(member.decompress(data, limit - n))
        n += len(parts[-1])
        if n < limit and not member.eof:
            raise EOFError("the file ended before the end of its last gzip member")
        data = member.unused_data
    return b"".join(parts)


def _verify(path: Path, buf: bytes, expected: str | None) -> None:
    """Raise DataError unless sha256(buf) equals `expected` (hex)."""
    if expected is None:
        raise DataError(f"{path}: no checksum listed for this file in SHA256SUMS")
    got = hashlib.sha256(buf).hexdigest()
    if got != expected.lower():
        raise DataError(f"{path}: checksum mismatch: expected {expected}, got {got}")


def _read_checksums(path: Path) -> dict[str, str]:
    """Parse a sha256sum-format file ("<hex>  <name>" per line) into {name: hex}."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read checksum file: {exc}") from exc
    table = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")  # sha256sum marks binary mode with "*"
        if len(digest) != 64 or not name:
            raise DataError(f"{path}: malformed checksum line {number}: {line!r}")
        table[name] = digest
    return table


def _parse_idx(buf: bytes | bytearray, path: Path, magic: int | None = None) -> np.ndarray:
    """Return the uint8 array in IDX bytes `buf`; `magic` pins the exact header if given."""
    shape, header = _parse_header(buf, path, magic)
    expected = math.prod(shape)
    got = len(buf) - header
    if got < expected:
        raise DataError(f"{path}: payload truncated: expected {expected} bytes for shape {shape}, got {got}")
    if got > expected:
        raise DataError(
            f"{path}: payload over-long: expected {expected} bytes for shape {shape}, "
            f"got {got} ({got - expected} trailing bytes)"
        )
    array = np.frombuffer(buf, np.uint8, count=expected, offset=header).reshape(shape)
    array.flags.writeable = False  # a view over a bytearray when inflated
    return array


def _parse_header(buf: bytes | bytearray, path: Path, magic: int | None = None) -> tuple[tuple, int]:
    """The shape and the header's length in bytes of the IDX bytes ``buf`` (its header at least)."""
    if len(buf) < 4:
        raise DataError(f"{path}: header truncated: expected at least 4 bytes, got {len(buf)}")
    got_magic = int.from_bytes(buf[:4], "big")
    if magic is not None and got_magic != magic:
        raise DataError(f"{path}: wrong magic number: expected {magic}, got {got_magic}")
    if got_magic >> 8 != _UBYTE or buf[3] == 0:
        raise DataError(
            f"{path}: wrong magic number: expected an unsigned-byte IDX file "
            f"(0x0000080N, N > 0), got {got_magic:#010x}"
        )
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(
            f"{path}: header truncated: expected {header} bytes for {ndim} dimensions, got {len(buf)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    if 0 in shape[1:]:
        raise DataError(f"{path}: bad dimensions {shape}: sizes after the first must be > 0")
    return shape, header


def _pair(
    images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Check an images/labels pair and return (pixels (N, rows*cols) of `dtype`, labels int32)."""
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} and {labels_path}: count mismatch: {len(images)} images but {len(labels)} labels"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError(
            f"{labels_path}: labels outside 0..{NUM_CLASSES - 1}: {bad.size} of {len(labels)}, "
            f"first is {labels[bad[0]]} at index {bad[0]}"
        )
    pixels = images.reshape(len(images), math.prod(images.shape[1:]))
    return (pixels if dtype == np.uint8 else scale_pixels(pixels, dtype)), labels.astype(np.int32)


def write_mnist(data_dir: str | Path, x_train, y_train, x_test, y_test, shape=(28, 28), gz=True) -> Path:
    """Writes a data set as the four MNIST IDX files, so that ``load_mnist(data_dir)`` reads it back.

    Args:
        data_dir: the directory to write (created if missing).
        x_train: (n, rows * cols) pixels in [0, 1] (or uint8 0..255).  y_train: (n,) labels 0..9.
        x_test, y_test: likewise, (m, rows * cols) and (m,).
        shape: (rows, cols) of one image.  gz: gzip the files.
    Returns:
        The directory.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    arrays = (x_train, y_train, x_test, y_test)
    for (name, magic), a in zip(_FILES.items(), arrays, strict=True):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = np.rint(a * 255)
        if magic == _IMAGES_MAGIC:
            a = a.reshape(-1, *shape)
        a = a.astype(np.uint8)
        payload = magic.to_bytes(4, "big") + np.array(a.shape, ">u4").tobytes() + a.tobytes()
        (data_dir / (name + ".gz" if gz else name)).write_bytes(gzip.compress(payload, 1) if gz else payload)
    return data_dir
