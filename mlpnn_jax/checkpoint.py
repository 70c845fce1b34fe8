"""Checkpoints and run files: arrays plus JSON, never pickle, always written atomically.

A checkpoint is one ``.npz`` holding the params (``params/W1`` ...), the optimizer state's leaves
(``opt_state/0000`` ...) and a JSON string (``meta``) with the config, the epoch and the history. The
optimizer state's tree structure is not stored: ``load`` rebuilds it from the config, so a checkpoint
never needs code execution to read.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np

from mlpnn_jax.data import NUM_CLASSES

CHECKPOINT = "checkpoint.npz"
FORMAT_VERSION = 1
META_KEYS = ("config", "epoch", "history", "input_stats")


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint; the message names the file."""


def atomic_write(path, write):
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it over ``path``.

    A crash or Ctrl-C at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; a run's files are as shareable as any
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path, obj):
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def save(path, params, opt_state, meta):
    """Saves a checkpoint.

    Args:
        path: the .npz file to write.
        params: the params dict (any arrays).
        opt_state: the optax state (a pytree of arrays).
        meta: a JSON-serialisable dict (config, epoch, history, ...).
    """
    save_arrays(path, params, {**meta, "format": FORMAT_VERSION}, jax.tree.leaves(opt_state))


def read_arrays(path):
    """(arrays dict without ``meta``, meta dict) of an ``.npz`` of arrays plus a JSON ``meta`` string.

    Raises CheckpointError, naming the file, for a missing or unreadable file or a meta that is not a
    JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # our handle: closed on errors too
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a readable checkpoint (its meta is not a JSON object)")
    return arrays, meta


def save_arrays(path, params, meta, leaves=()):
    """Writes ``params`` (``params/W1`` ...), ``leaves`` (``opt_state/0000`` ...) and a JSON ``meta``
    string to the ``.npz`` file ``path``, atomically."""
    arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update((f"opt_state/{i:04d}", np.asarray(leaf)) for i, leaf in enumerate(leaves))
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def params_of(arrays):
    """The params dict (``W1``, ``b1`` ...) of ``read_arrays``'s arrays."""
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("params/")}


@dataclasses.dataclass(frozen=True)
class Saved:
    """A checkpoint read once (``read``): its path, params, meta and optimizer-state leaves (in order)."""

    path: Path
    params: dict
    meta: dict
    leaves: tuple

    def opt_state(self, template):
        """The stored optimizer state in ``template``'s tree structure (e.g. ``optimizer.init(params)``,
        or its ``jax.eval_shape``), checked leaf by leaf; CheckpointError if it does not fit."""
        return _opt_state(self.path, self.leaves, template)


def read(path, parse_config=None):
    """Reads a checkpoint written by ``save`` and validates every field of it.

    Args:
        path: the .npz file.
        parse_config: a function from the stored config dict to a config with ``hidden`` and ``dtype``
            (e.g. ``TrainConfig.from_json``); its errors become CheckpointErrors, and the params are
            checked against the parsed config. None checks the params' own consistency only.
    Returns:
        A Saved: params (a dict of numpy arrays), meta and the optimizer state's leaves.
    Raises:
        CheckpointError: one line naming the file and the first thing wrong with it.
    """
    path = Path(path)
    arrays, meta = read_arrays(path)
    fmt = meta.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise CheckpointError(f"{path}: its meta's format is {fmt!r}, expected an integer")
    if fmt > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer mlpnn-jax (format {meta['format']!r})")
    missing = [k for k in META_KEYS if k not in meta]
    params = params_of(arrays)
    if missing or "W1" not in params or len(params) % 2:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {missing or 'params'})")
    _check_meta(path, meta)
    widths = _check_params(path, params)
    if parse_config is not None:
        _check_fits_config(path, params, widths, _parse(path, meta["config"], parse_config))
    leaves = tuple(arrays[k] for k in sorted(k for k in arrays if k.startswith("opt_state/")))
    return Saved(path, params, meta, leaves)


def load(path, opt_state_template=None, parse_config=None):
    """``read``'s (params, opt_state in ``opt_state_template``'s structure or None, meta)."""
    saved = read(path, parse_config)
    opt_state = None if opt_state_template is None else saved.opt_state(opt_state_template)
    return saved.params, opt_state, saved.meta


def _opt_state(path, leaves, template):
    """The stored optimizer state, in ``template``'s tree structure, checked leaf by leaf."""
    template, treedef = jax.tree.flatten(template)
    if len(leaves) != len(template) or any(
        np.shape(a) != np.shape(b) for a, b in zip(leaves, template, strict=True)
    ):
        raise CheckpointError(f"{path}: its optimizer state does not fit the config's optimizer")
    for i, leaf in enumerate(leaves):
        _check_finite(path, f"opt_state/{i:04d}", leaf)
    return jax.tree.unflatten(treedef, leaves)


def check_input_dim(path, params, input_dim):
    """Raises CheckpointError unless the model in ``path`` takes inputs of ``input_dim`` features."""
    if params["W1"].shape[0] != input_dim:
        raise CheckpointError(
            f"{path}: its model takes {params['W1'].shape[0]} inputs (W1 {params['W1'].shape}),"
            f" but the data's images have {input_dim} pixels"
        )


# Each history row's keys and what each must be; a row is one epoch's metrics (see metrics.jsonl).
_HISTORY_KEYS = {
    "epoch": "a positive integer",
    "train_loss": "a finite number",
    "test_loss": "a finite number",
    "test_accuracy": "a number in [0, 1]",
    "seconds": "a finite number >= 0",
    "elapsed": "a finite number >= 0",
}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_HISTORY_CHECKS = {
    "epoch": lambda v: _is_int(v) and v >= 1,
    "train_loss": _is_real,
    "test_loss": _is_real,
    "test_accuracy": lambda v: _is_real(v) and 0 <= v <= 1,
    "seconds": lambda v: _is_real(v) and v >= 0,
    "elapsed": lambda v: _is_real(v) and v >= 0,
}


def _check_meta(path, meta):
    """Raises CheckpointError for a meta field of the wrong type or value (a hand-edited checkpoint)."""
    if not isinstance(meta["config"], dict):
        raise CheckpointError(
            f"{path}: its config is {type(meta['config']).__name__}, expected a JSON object"
        )
    epoch, history, stats = meta["epoch"], meta["history"], meta["input_stats"]
    if not (_is_int(epoch) and epoch >= 1):
        raise CheckpointError(f"{path}: its epoch is {epoch!r}, expected a positive integer")
    if not isinstance(history, list) or len(history) != epoch:
        got = f"{len(history)} rows" if isinstance(history, list) else type(history).__name__
        raise CheckpointError(
            f"{path}: its history has {got}, expected a list of {epoch} rows (one an epoch)"
        )
    for i, row in enumerate(history, 1):
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: history row {i} is {type(row).__name__}, expected a JSON object")
        absent = [k for k in _HISTORY_KEYS if k not in row]
        if absent:
            raise CheckpointError(f"{path}: history row {i} lacks {', '.join(absent)}")
        for key, ok in _HISTORY_CHECKS.items():
            if not ok(row[key]):
                raise CheckpointError(
                    f"{path}: history row {i}: {key} is {row[key]!r}, expected {_HISTORY_KEYS[key]}"
                )
        if row["epoch"] != i:
            raise CheckpointError(f"{path}: history row {i} says epoch {row['epoch']}, expected {i}")
    if not (isinstance(stats, list) and len(stats) == 2 and all(_is_real(v) for v in stats) and stats[1] > 0):
        raise CheckpointError(
            f"{path}: its input_stats are {stats!r}, expected [mean, std] with finite mean and std > 0"
        )


def _check_params(path, params):
    """Checks W1, b1, ..., Wn, bn chain as ``x @ W + b`` and hold finite floats; returns the layer widths."""
    n = len(params) // 2
    expected = {f"{p}{i}" for i in range(1, n + 1) for p in "Wb"}
    if set(params) != expected:
        raise CheckpointError(
            f"{path}: its params are {sorted(params)}, expected {sorted(expected)} (W1, b1, ... W{n}, b{n})"
        )
    widths = []
    for i in range(1, n + 1):
        w, b = params[f"W{i}"], params[f"b{i}"]
        if w.ndim != 2 or b.ndim != 1 or w.shape[1] != b.shape[0] or 0 in w.shape:
            raise CheckpointError(
                f"{path}: params W{i} {w.shape} and b{i} {b.shape} do not fit"
                " (expected (inputs, width) and (width,))"
            )
        if widths and w.shape[0] != widths[-1]:
            raise CheckpointError(
                f"{path}: params W{i} {w.shape} takes {w.shape[0]} inputs,"
                f" but layer {i - 1} has {widths[-1]} units"
            )
        widths.append(w.shape[1])
    dtypes = {a.dtype for a in params.values()}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise CheckpointError(
            f"{path}: its params have dtypes {sorted(map(str, dtypes))}, expected one float dtype"
        )
    for name, a in params.items():
        _check_finite(path, f"params/{name}", a)
    return widths


def _check_finite(path, name, a):
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        raise CheckpointError(
            f"{path}: {name} holds {nan} NaN and {inf} infinite values of {a.size}: the checkpoint is damaged"
        )


def _parse(path, config, parse_config):
    """The config parsed by ``parse_config``; a hand-edited value that does not parse is a CheckpointError."""
    try:
        return parse_config(config)
    except (ValueError, TypeError) as e:  # a config check or a value of the wrong JSON type
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: its config is invalid: {first}") from None


def _check_fits_config(path, params, widths, config):
    """The params' hidden widths, output size and dtype must be the config's."""
    hidden, out = tuple(widths[:-1]), widths[-1]
    if hidden != tuple(config.hidden) or out != NUM_CLASSES:
        raise CheckpointError(
            f"{path}: its params have hidden widths {list(hidden)} and {out} outputs, but its config says"
            f" hidden {list(config.hidden)} and {NUM_CLASSES} outputs"
        )
    dtype = params["W1"].dtype
    if dtype != np.dtype(config.dtype):
        raise CheckpointError(f"{path}: its params are {dtype}, but its config says dtype {config.dtype}")


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_dirs(a, b):
    """Atomically swaps directories ``a`` and ``b`` (Linux renameat2); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
