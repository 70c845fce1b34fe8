"""Tests for mlpnn_jax.data: IDX parsing, MNIST loading, scaling, checksums and error messages."""

from __future__ import annotations

import ast
import gzip
import hashlib
import itertools
import os
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from mlpnn_jax import data
from mlpnn_jax.data import DataError, load_mnist, read_idx, scale_pixels

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as IDX bytes (magic defaults to unsigned byte with arr.ndim dims)."""
    arr = np.asarray(arr, dtype=np.uint8)
    magic = 0x0800 | arr.ndim if magic is None else magic
    return magic.to_bytes(4, "big") + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()


def write(directory: Path, name: str, payload: bytes, gz: bool = False) -> Path:
    """Write payload as directory/name, or gzip-compressed as directory/name.gz."""
    path = directory / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_arrays(n_train: int = 7, n_test: int = 5, rows: int = 3, cols: int = 4) -> dict:
    """A small valid MNIST-format set, {file name: uint8 array}, with pixels 0 and 255 present."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8)
    train[0, 0, 0], train[0, 0, 1] = 0, 255
    return {
        TRAIN_IMAGES: train,
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        TEST_LABELS: np.arange(n_test, dtype=np.uint8) % 10,
    }


def write_set(directory: Path, arrays: dict, gz: tuple[bool, ...] = (False,) * 4) -> None:
    """Write the four arrays as IDX files in directory, gzipping those flagged in gz."""
    for name, flag in zip(NAMES, gz, strict=True):
        write(directory, name, idx_bytes(arrays[name]), flag)


def scaled(images: np.ndarray, dtype: str) -> np.ndarray:
    """The reference scaling: flatten, float64 / 255.0, then cast."""
    return (images.reshape(len(images), -1).astype(np.float64) / 255.0).astype(dtype)


def assert_one_line(exc: pytest.ExceptionInfo) -> str:
    """Return the exception message after checking it is a single line."""
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, message
    return message


# --- loading a small valid set -------------------------------------------------------------


@pytest.mark.parametrize(
    "gz",
    [(False,) * 4, (True,) * 4, (True, False, False, True)],
    ids=["plain", "gzip", "mixed"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_small_set(tmp_path: Path, gz: tuple[bool, ...], dtype: str) -> None:
    arrays = make_arrays()
    write_set(tmp_path, arrays, gz)
    x_train, y_train, x_test, y_test = load_mnist(tmp_path, dtype=dtype)
    assert x_train.shape == (7, 12) and x_test.shape == (5, 12)
    assert y_train.shape == (7,) and y_test.shape == (5,)
    assert x_train.dtype == x_test.dtype == np.dtype(dtype)
    assert y_train.dtype == y_test.dtype == np.int32
    np.testing.assert_array_equal(x_train, scaled(arrays[TRAIN_IMAGES], dtype))
    np.testing.assert_array_equal(x_test, scaled(arrays[TEST_IMAGES], dtype))
    np.testing.assert_array_equal(y_train, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(y_test, arrays[TEST_LABELS])
    assert x_train.min() == 0.0 and x_train.max() == 1.0


def test_a_gzip_file_of_several_members_and_zero_padding_loads_whole(tmp_path: Path) -> None:
    """gzip's own reading: members one after another make one stream, zeros after the last are padding."""
    arrays = make_arrays()
    write_set(tmp_path, arrays)
    payload = (tmp_path / TRAIN_IMAGES).read_bytes()
    (tmp_path / TRAIN_IMAGES).unlink()
    cuts = (0, 5, 17, len(payload))  # the header split across two members
    members = b"".join(gzip.compress(payload[a:b]) for a, b in itertools.pairwise(cuts))
    (tmp_path / f"{TRAIN_IMAGES}.gz").write_bytes(members + bytes(64))
    x_train, *_ = load_mnist(tmp_path, dtype="uint8")
    np.testing.assert_array_equal(x_train, arrays[TRAIN_IMAGES].reshape(7, -1))


def test_data_dir_may_be_str(tmp_path: Path) -> None:
    write_set(tmp_path, make_arrays())
    x_train, *_ = load_mnist(str(tmp_path))
    assert x_train.shape == (7, 12)


def test_plain_file_preferred_over_gzip(tmp_path: Path) -> None:
    arrays = make_arrays()
    write_set(tmp_path, arrays)
    # A different (still valid) gzipped copy must be ignored while the plain file exists.
    write(tmp_path, TRAIN_LABELS, idx_bytes(9 - arrays[TRAIN_LABELS]), gz=True)
    _, y_train, _, _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(y_train, arrays[TRAIN_LABELS])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", np.float32, np.dtype("f8")])
def test_scaling_exact_for_every_pixel_value(tmp_path: Path, dtype: object) -> None:
    arrays = make_arrays(n_train=1, rows=16, cols=16)
    arrays[TRAIN_IMAGES] = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    arrays[TRAIN_LABELS] = np.zeros(1, np.uint8)
    write_set(tmp_path, arrays)
    x_train, *_ = load_mnist(tmp_path, dtype=dtype)
    want = (np.arange(256, dtype=np.float64) / 255.0).astype(dtype).reshape(1, 256)
    assert x_train.dtype == want.dtype
    assert x_train.tobytes() == want.tobytes()  # bit for bit, not just close
    assert x_train[0, 0] == 0.0 and x_train[0, 255] == 1.0


def test_uint8_keeps_the_raw_pixels(tmp_path: Path) -> None:
    """dtype="uint8": the pixels 0..255 as stored (what the trainer puts on the device), labels int32."""
    arrays = make_arrays()
    write_set(tmp_path, arrays, (True,) * 4)
    x_train, y_train, x_test, _ = load_mnist(tmp_path, dtype="uint8")
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int32
    np.testing.assert_array_equal(x_train, arrays[TRAIN_IMAGES].reshape(len(x_train), -1))
    assert scale_pixels(x_test).tobytes() == load_mnist(tmp_path)[2].tobytes()


@pytest.mark.parametrize("dtype", ["int32", "int8", "complex64", "no-such-type", None, object])
def test_bad_dtype_is_value_error_naming_option(tmp_path: Path, dtype: object) -> None:
    with pytest.raises(ValueError, match="dtype") as exc:
        load_mnist(tmp_path, dtype=dtype)
    assert not isinstance(exc.value, DataError)
    assert_one_line(exc)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write(tmp_path, "x-idx3-ubyte", idx_bytes(arr), gz)
    got = read_idx(str(path))
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, arr)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)))
def test_parse_idx_round_trip(arr: np.ndarray) -> None:
    got = data._parse_idx(idx_bytes(arr), Path("x"))
    assert got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)


def test_data_module_does_not_import_jax() -> None:
    tree = ast.parse(Path(data.__file__).read_text())
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"jax", "jaxlib"}}


# --- errors ------------------------------------------------------------------------------

Case = Callable[[Path, dict], None]


def _replace(name: str, payload: Callable[[bytes], bytes], gz: bool = False) -> Case:
    """A case that rewrites file `name` as payload(valid IDX bytes), optionally as name.gz."""

    def apply(directory: Path, arrays: dict) -> None:
        (directory / name).unlink()
        body = payload(idx_bytes(arrays[name]))
        (directory / f"{name}.gz" if gz else directory / name).write_bytes(body)

    return apply


def _set(name: str, make: Callable[[dict], np.ndarray]) -> Case:
    """A case that rewrites file `name` as a valid IDX file of make(arrays)."""

    def apply(directory: Path, arrays: dict) -> None:
        write(directory, name, idx_bytes(make(arrays)))

    return apply


def _with_label(value: int, *where: int) -> Callable[[dict], np.ndarray]:
    def make(arrays: dict) -> np.ndarray:
        labels = arrays[TRAIN_LABELS].copy()
        labels[list(where)] = value
        return labels

    return make


def _swap(name: str, make: Callable[[Path], object]) -> Case:
    """A case that replaces file `name` with what make(path) creates there (a FIFO, a symlink)."""

    def apply(directory: Path, arrays: dict) -> None:
        (directory / name).unlink()
        make(directory / name)

    return apply


def _idx_header(magic: int, *shape: int) -> bytes:
    return magic.to_bytes(4, "big") + np.array(shape, ">u4").tobytes()


def _crc_flipped(payload: bytes) -> bytes:
    compressed = bytearray(gzip.compress(payload))
    compressed[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    return bytes(compressed)


ERROR_CASES = {
    # id: (case, files the message must name, words it must contain)
    "missing": (
        lambda d, a: (d / TRAIN_LABELS).unlink(),
        [TRAIN_LABELS],
        ["missing file", f"{TRAIN_LABELS}.gz"],
    ),
    "magic-images": (
        _replace(TRAIN_IMAGES, lambda b: LABELS_MAGIC.to_bytes(4, "big") + b[4:]),
        [TRAIN_IMAGES],
        ["wrong magic number", "expected 2051", "got 2049"],
    ),
    "magic-labels": (
        _replace(TEST_LABELS, lambda b: IMAGES_MAGIC.to_bytes(4, "big") + b[4:]),
        [TEST_LABELS],
        ["wrong magic number", "expected 2049", "got 2051"],
    ),
    "magic-garbage": (
        _replace(TRAIN_IMAGES, lambda b: b"<html>not an IDX file</html>"),
        [TRAIN_IMAGES],
        ["wrong magic number", "expected 2051"],
    ),
    "header-short": (_replace(TRAIN_IMAGES, lambda b: b[:2]), [TRAIN_IMAGES], ["header truncated"]),
    "header-dims": (_replace(TRAIN_IMAGES, lambda b: b[:10]), [TRAIN_IMAGES], ["header truncated"]),
    "empty-gzip": (
        _replace(TRAIN_LABELS, lambda b: gzip.compress(b""), gz=True),
        [f"{TRAIN_LABELS}.gz"],
        ["header truncated"],
    ),
    "payload-truncated": (
        _replace(TEST_IMAGES, lambda b: b[:-1]),
        [TEST_IMAGES],
        ["payload truncated", "expected 60 bytes", "got 59"],
    ),
    "payload-over-long": (
        _replace(TRAIN_LABELS, lambda b: b + b"\0\0"),
        [TRAIN_LABELS],
        ["payload over-long", "2 trailing bytes"],
    ),
    "gzip-truncated": (
        _replace(TRAIN_IMAGES, lambda b: gzip.compress(b)[:-12], gz=True),
        [f"{TRAIN_IMAGES}.gz"],
        ["corrupt gzip stream"],
    ),
    "gzip-garbage": (
        _replace(TRAIN_IMAGES, lambda b: b"this is not gzip data at all", gz=True),
        [f"{TRAIN_IMAGES}.gz"],
        ["corrupt gzip stream"],
    ),
    "gzip-crc": (
        _replace(TEST_LABELS, _crc_flipped, gz=True),
        [f"{TEST_LABELS}.gz"],
        ["corrupt gzip stream"],
    ),
    "gzip-over-long": (
        _replace(TRAIN_LABELS, lambda b: gzip.compress(b + b"\0\0"), gz=True),
        [f"{TRAIN_LABELS}.gz"],
        ["payload over-long", "expected 7 bytes", "the gzip stream holds more"],
    ),
    "gzip-declares-more-than-deflate-can-hold": (
        _replace(TRAIN_IMAGES, lambda b: gzip.compress(_idx_header(IMAGES_MAGIC, 10**9, 28, 28)), gz=True),
        [f"{TRAIN_IMAGES}.gz"],
        ["payload truncated", "expected 784000000000 bytes", "compressed bytes can inflate to"],
    ),
    "fifo": (_swap(TRAIN_IMAGES, os.mkfifo), [TRAIN_IMAGES], ["is a FIFO, not a regular file"]),
    "dangling-symlink": (
        _swap(TEST_LABELS, lambda path: path.symlink_to(path.parent / "gone")),
        [TEST_LABELS],
        ["is a symlink to a missing", "gone"],
    ),
    "count-mismatch": (
        _set(TRAIN_LABELS, lambda a: a[TRAIN_LABELS][:-1]),
        [TRAIN_IMAGES, TRAIN_LABELS],
        ["count mismatch", "7 images", "6 labels"],
    ),
    "label-10": (
        _set(TRAIN_LABELS, _with_label(10, 3)),
        [TRAIN_LABELS],
        ["outside 0..9", "1 of 7", "10 at index 3"],
    ),
    "label-255": (
        _set(TRAIN_LABELS, _with_label(255, 1, 5)),
        [TRAIN_LABELS],
        ["outside 0..9", "2 of 7", "255 at index 1"],
    ),
    "zero-cols": (
        _set(TEST_IMAGES, lambda a: np.zeros((5, 3, 0), np.uint8)),
        [TEST_IMAGES],
        ["bad dimensions", "> 0"],
    ),
    "image-size-mismatch": (
        _set(TEST_IMAGES, lambda a: np.zeros((5, 4, 4), np.uint8)),
        [TRAIN_IMAGES, TEST_IMAGES],
        ["image size mismatch"],
    ),
}


@pytest.mark.parametrize(("case", "files", "words"), ERROR_CASES.values(), ids=ERROR_CASES)
def test_malformed_set_raises_data_error(
    tmp_path: Path, case: Case, files: list[str], words: list[str]
) -> None:
    arrays = make_arrays()
    write_set(tmp_path, arrays)
    case(tmp_path, arrays)
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    message = assert_one_line(exc)
    for name in files:
        assert str(tmp_path / name) in message
    for word in words:
        assert word in message


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as exc:
        load_mnist(missing)
    assert str(missing) in assert_one_line(exc)


def test_directory_is_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a-file", b"")
    with pytest.raises(DataError, match="not a directory") as exc:
        load_mnist(path)
    assert str(path) in assert_one_line(exc)


def test_read_idx_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x-idx1-ubyte", b"\0\0\x0d\x01\0\0\0\x01abcd")  # float32 IDX
    with pytest.raises(DataError, match="wrong magic number") as exc:
        read_idx(path)
    assert str(path) in assert_one_line(exc)
    with pytest.raises(DataError, match="cannot read file") as exc:
        read_idx(tmp_path / "absent")
    assert str(tmp_path / "absent") in assert_one_line(exc)


# --- checksums ---------------------------------------------------------------------------


def _sha256sums(arrays: dict) -> str:
    return "".join(f"{hashlib.sha256(idx_bytes(arrays[n])).hexdigest()}  {n}\n" for n in NAMES)


def test_load_dir_verifies_checksums(tmp_path: Path) -> None:
    arrays = make_arrays()
    write_set(tmp_path, arrays, gz=(True, False, True, False))
    table = data._read_checksums(write(tmp_path, "SHA256SUMS", _sha256sums(arrays).encode()))
    assert set(table) == set(NAMES)
    data._load_dir(tmp_path, np.dtype(np.float32), table)  # all match

    good = table[TEST_IMAGES]
    bad = {**table, TEST_IMAGES: "0" * 64}
    with pytest.raises(DataError) as exc:
        data._load_dir(tmp_path, np.dtype(np.float32), bad)
    message = assert_one_line(exc)
    assert str(tmp_path / f"{TEST_IMAGES}.gz") in message
    assert f"checksum mismatch: expected {'0' * 64}, got {good}" in message

    del bad[TEST_IMAGES]
    with pytest.raises(DataError, match="no checksum") as exc:
        data._load_dir(tmp_path, np.dtype(np.float32), bad)
    assert str(tmp_path / f"{TEST_IMAGES}.gz") in assert_one_line(exc)


def test_bundled_load_verifies_but_user_dir_does_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_arrays()
    write_set(tmp_path, arrays, gz=(True,) * 4)
    write(tmp_path, "SHA256SUMS", _sha256sums(arrays).encode())
    monkeypatch.setattr(data, "_BUNDLED_DIR", tmp_path)
    load_mnist()  # checksums match

    # One pixel changed, still a valid gzip and IDX file: only the checksum can catch it.
    arrays[TRAIN_IMAGES] = arrays[TRAIN_IMAGES].copy()
    arrays[TRAIN_IMAGES][2, 1, 1] ^= 1
    write(tmp_path, TRAIN_IMAGES, idx_bytes(arrays[TRAIN_IMAGES]), gz=True)
    with pytest.raises(DataError, match="checksum mismatch") as exc:
        load_mnist()
    assert str(tmp_path / f"{TRAIN_IMAGES}.gz") in assert_one_line(exc)
    x_train, *_ = load_mnist(tmp_path)  # a user data_dir is not checksummed
    np.testing.assert_array_equal(x_train, scaled(arrays[TRAIN_IMAGES], "float32"))


@pytest.mark.parametrize(
    "text", ["abc  " + TRAIN_IMAGES, "0" * 64, "0" * 64 + "  "], ids=["short", "no-name", "blank"]
)
def test_malformed_checksum_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "SHA256SUMS", f"\n{text}\n".encode())
    with pytest.raises(DataError, match="malformed checksum line 2") as exc:
        data._read_checksums(path)
    assert str(path) in assert_one_line(exc)


# --- the bundled MNIST -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return load_mnist()


def test_bundled_checksum_table_lists_all_files() -> None:
    table = data._read_checksums(data._BUNDLED_DIR / "SHA256SUMS")
    assert set(table) == set(NAMES)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


def test_bundled_mnist_shapes_and_dtypes(mnist: tuple) -> None:
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 784) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 784) and y_test.shape == (10000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int32


def test_bundled_mnist_values(mnist: tuple) -> None:
    x_train, y_train, x_test, y_test = mnist
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)
    # The test images scale exactly as float64 / 255.0 cast to float32 would.
    raw = read_idx(data._BUNDLED_DIR / f"{TEST_IMAGES}.gz")
    assert raw.shape == (10000, 28, 28)
    np.testing.assert_array_equal(x_test, scaled(raw, "float32"))


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    """A 4 MB train-images-idx3-ubyte.gz whose header says 60000 x 28 x 28 and whose payload inflates to
    4 GB, loaded by a real process: refused as over-long with under 100 MB more than the declared size's
    47 MB of peak memory."""
    arrays = make_arrays(rows=28, cols=28)
    write_set(tmp_path, arrays)
    (tmp_path / TRAIN_IMAGES).unlink()
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)  # one gzip member of 16 MB of zeros, repeated
    member = zeros.compress(bytes(1 << 24)) + zeros.flush()
    bomb = gzip.compress(_idx_header(IMAGES_MAGIC, 60000, 28, 28)) + member * 256
    (tmp_path / f"{TRAIN_IMAGES}.gz").write_bytes(bomb)
    assert len(bomb) < 5 * 2**20
    # VmHWM, the peak resident memory of this process image (ru_maxrss would carry pytest's over exec)
    script = (
        "import sys\nfrom pathlib import Path\nfrom mlpnn_jax.data import DataError, load_mnist\n"
        "def peak():\n    status = Path('/proc/self/status').read_text()\n"
        "    return int(status.split('VmHWM:')[1].split()[0])\n"
        "before = peak()\n"
        "try:\n    load_mnist(sys.argv[1])\nexcept DataError as e:\n    print(e)\n"
        "print(peak() - before)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    message, extra_kb = proc.stdout.splitlines()
    assert f"{TRAIN_IMAGES}.gz: payload over-long: expected 47040000 bytes" in message
    assert int(extra_kb) * 1024 < 47_040_000 + 100 * 2**20, extra_kb


def test_image_sizes_read_the_headers_and_refuse_unsound_ones(tmp_path: Path) -> None:
    """(training images, test images, pixels) from the headers alone; None where a header does not
    match its file (a truncated file), so that nothing is compiled for sizes the files cannot hold."""
    assert data.image_sizes() == (60000, 10000, 784)
    arrays = make_arrays()
    write_set(tmp_path, arrays, (True, False, False, False))
    assert data.image_sizes(tmp_path) == (7, 5, 12)
    test_images = tmp_path / TEST_IMAGES
    test_images.write_bytes(test_images.read_bytes()[:-1])
    assert data.image_sizes(tmp_path) is None
    assert data.image_sizes(tmp_path / "missing") is None
