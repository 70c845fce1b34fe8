"""The PNG figures of ``reproduce``, the notebook's: loss curves and confusion matrices (matplotlib, Agg).

``train`` draws its figures without matplotlib (charts.py).
"""

from __future__ import annotations

import io
import threading

from mlpnn_jax.checkpoint import atomic_write

# the curves' margins (fractions of a 6 x 4 inch figure): room for 7-character tick labels, the widest
# matplotlib writes before it moves the magnitude to an offset (1000000; the notebook's sums reach 140000)
_MARGINS = {"left": 0.16, "right": 0.97, "top": 0.92, "bottom": 0.12}
_IMPORTING = threading.Lock()  # preload's thread and a figure drawn meanwhile import pyplot once, in turn


def preload():
    """Imports matplotlib in a background thread, so the import overlaps training instead of following it."""
    threading.Thread(target=_pyplot, daemon=True).start()


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported on first use (it costs ~0.3 s)."""
    with _IMPORTING:  # matplotlib.use while pyplot is half imported in another thread raises
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    plt = _pyplot()
    buf = io.BytesIO()
    # margins set by each figure, not tight_layout or bbox_inches="tight": each draws the figure once
    # more to measure its text, about a quarter of the time a figure takes (0.31 -> 0.23 s for three)
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def loss_curves(path, train, test, ylabel, title=None):
    """The notebook's figure: train and test loss against epochs (1-based)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    fig.subplots_adjust(**_MARGINS)
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, label="train")
    ax.plot(epochs, test, label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, path)


def confusion(path, cm, title="Confusion matrix"):
    """A confusion matrix (K, K), true classes down, predictions across, counts in the cells."""
    plt = _pyplot()
    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(6, 5.5))
    fig.subplots_adjust(left=0.1, right=0.98, top=0.94, bottom=0.09)
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2
    for i in range(k):
        for j in range(k):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    _save(fig, path)
