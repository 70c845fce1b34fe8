"""Checkpoints and run files: arrays plus JSON, never pickle, always written atomically.

A checkpoint is one ``.npz`` holding the params (``params/W1`` ...), the optimizer state's leaves
(``opt_state/0000`` ...) and a JSON string (``meta``) with the config, the epoch and the history. The
optimizer state's tree structure is not stored: ``load`` rebuilds it from the config, so a checkpoint
never needs code execution to read.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np

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
    arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
    for i, leaf in enumerate(jax.tree.leaves(opt_state)):
        arrays[f"opt_state/{i:04d}"] = np.asarray(leaf)
    arrays["meta"] = np.array(json.dumps({**meta, "format": FORMAT_VERSION}))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path, opt_state_template=None):
    """Loads a checkpoint written by ``save``.

    Args:
        path: the .npz file.
        opt_state_template: an optax state of the same optimizer (e.g. ``optimizer.init(params)``),
            whose structure the stored leaves fill; None to skip the optimizer state.
    Returns:
        (params dict of numpy arrays, opt_state or None, meta dict).
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
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer mlpnn-jax (format {meta['format']!r})")
    missing = [k for k in META_KEYS if k not in meta]
    params = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("params/")}
    if missing or "W1" not in params or len(params) % 2:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {missing or 'params'})")
    opt_state = None
    if opt_state_template is not None:
        leaves = [arrays[k] for k in sorted(k for k in arrays if k.startswith("opt_state/"))]
        template, treedef = jax.tree.flatten(opt_state_template)
        if len(leaves) != len(template) or any(
            np.shape(a) != np.shape(b) for a, b in zip(leaves, template, strict=True)
        ):
            raise CheckpointError(f"{path}: its optimizer state does not fit the config's optimizer")
        opt_state = jax.tree.unflatten(treedef, leaves)
    return params, opt_state, meta
