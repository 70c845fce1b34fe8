"""reproduce's PNG figures: margins that keep every label inside; train never imports matplotlib."""

import subprocess
import sys

import numpy as np
import pytest

from mlpnn_jax import plots

LONG = np.geomspace(1_400_015.98, 1500, 2000)  # 7-digit ticks: the widest before matplotlib's offset
FIGURES = {
    "notebook sums": lambda p: plots.loss_curves(p, LONG, LONG / 4, "cross-entropy (sum)", "Notebook: ce"),
    "negative small": lambda p: plots.loss_curves(p, [5e-4, 3e-4, -4e-4], [1e-4, 2e-4, 3e-4], "hinge (mean)"),
    "confusion": lambda p: plots.confusion(p, np.arange(100).reshape(10, 10) * 137),
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_label_inside_the_figure(name, tmp_path, monkeypatch):
    saved, save = [], plots._save

    def check_then_save(fig, path):
        fig.draw_without_rendering()  # the axis labels take their places when the figure is drawn
        renderer, box = fig.canvas.get_renderer(), fig.bbox
        for ax in fig.axes:  # the box of what each axes draws: its ticks, tick labels, axis labels, title
            extent = ax.get_tightbbox(renderer)
            inside = box.x0 <= extent.x0 <= extent.x1 <= box.x1 and box.y0 <= extent.y0 <= extent.y1 <= box.y1
            assert inside, f"{ax.get_ylabel() or 'colorbar'}: drawn over {extent}, outside the figure {box}"
            saved.append(ax)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", check_then_save)
    FIGURES[name](tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert saved  # the figure was measured


def test_train_never_imports_matplotlib(tmp_path, small_mnist_dir):
    """train draws its figures and report by hand (charts.py): matplotlib's import is reproduce's alone."""
    argv = [
        "train",
        "--data-dir",
        str(small_mnist_dir),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--hidden",
        "8",
    ]
    code = (
        "import sys\n"
        "from mlpnn_jax import cli\n"
        f"rc = cli.main({argv!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "run" / "report.html").is_file()
