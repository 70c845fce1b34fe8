"""report.html: one self-contained page per run (train or reproduce) that a person opens in a browser.

Everything is inline: the CSS, the charts (charts.py's SVG as data: URIs), the digits (PNG data: URIs).
A Content-Security-Policy forbids any fetch, so the page shows the same offline, mailed or archived.
The page is built from the run's files alone, so ``mlpnn-jax report RUN_DIR`` rebuilds it at any time.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import platform
import sys
from pathlib import Path

import jax
import numpy as np

from mlpnn_jax import charts, checkpoint, report_html

REPORT, MACHINE, REPRODUCE = "report.html", "machine.json", "reproduce.json"
REPRODUCE_OPTIONS = ("loss", "epochs", "dtype", "engine", "precision", "print_every", "hidden", "data_dir")
LOSS_NAMES = {"ce": "cross-entropy", "kl": "KL divergence"}


class ReportError(ValueError):
    """A directory that is not a run, or a run whose files do not fit together; one line."""


# ---------------------------------------------------------------- what runs record for their report


def machine_info():
    """The machine this process runs on, as a JSON-ready dict: date, host, OS, CPU, versions, devices."""
    devices = jax.devices()
    cpuinfo = Path("/proc/cpuinfo")  # Linux names the CPU model here; platform.processor() often does not
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": devices[0].platform,
        "devices": [f"{d.device_kind} ({d.platform}:{d.id})" for d in devices],
        "processes": jax.process_count(),
    }


def start_reproduction(run_dir, options):
    """Records a reproduce run's options in reproduce.json and removes what an earlier run left there.

    Args:
        run_dir: the run directory (it exists).
        options: the command's options (a dict holding at least REPRODUCE_OPTIONS).
    """
    run_dir = Path(run_dir)
    config = {k: options[k] for k in REPRODUCE_OPTIONS}
    if config["data_dir"] is not None:
        config["data_dir"] = str(Path(config["data_dir"]).resolve())
    for name in [REPORT, MACHINE, *(f"{loss}_params.npz" for loss in LOSS_NAMES)]:
        (run_dir / name).unlink(missing_ok=True)  # a stale file would describe another run
    checkpoint.write_json(run_dir / REPRODUCE, config)


def save_reproduction(run_dir, loss, params, seconds, epochs):
    """Saves one reproduced loss's final params and timing as ``{loss}_params.npz`` (arrays + JSON).

    Args:
        run_dir: the run directory.  loss: "ce" or "kl".
        params: {"W1": (D, H), "b1": (H,), "W2": (H, 10), "b2": (10,)}, the trained weights.
        seconds: wall time of the training (compilation included).  epochs: epochs run.
    """
    meta = {"seconds": float(seconds), "epochs": int(epochs)}
    checkpoint.save_arrays(Path(run_dir) / f"{loss}_params.npz", params, meta)


# ---------------------------------------------------------------- the report


def write_report(run_dir, machine=None, test_set=None, classified=None):
    """Writes ``run_dir/report.html`` (atomically) for a train or reproduce run.

    Args:
        run_dir: a directory written by ``mlpnn-jax train`` (checkpoint.npz) or ``reproduce``
            (reproduce.json).
        machine: ``machine_info()`` of the process that ran it, added to machine.json (a list: the
            machine that started the run, then the one of each resume); None to read machine.json (a
            run without one shows "not recorded").
        test_set: (x_test (m, D), y_test (m,)) to skip reloading the run's data set; None loads the one
            its config names (the bundled MNIST by default).
        classified: a train run's ``metrics.classify`` of its final params on test_set, (probabilities
            (m, K), classes (m,)), to skip computing them again; None computes them.
    Returns:
        The report's path.
    Raises:
        ReportError: not a run directory, or its files are missing or do not fit together.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such directory")
    if (run_dir / checkpoint.CHECKPOINT).is_file():
        saved = checkpoint.read(run_dir / checkpoint.CHECKPOINT)  # read once for the whole page
        machines = _machines(run_dir, machine, _sessions(saved.meta["history"]))
        page = _train_page(run_dir, saved, machines, test_set, classified)
    elif (run_dir / REPRODUCE).is_file():
        page = _reproduce_page(run_dir, _machines(run_dir, machine, 1), test_set)
    else:
        raise ReportError(f"{run_dir}: not a run directory (no {checkpoint.CHECKPOINT} or {REPRODUCE})")
    path = run_dir / REPORT
    checkpoint.write_text(path, page)
    return path


def _sessions(history):
    """The number of processes that trained a run: the first, and one per ``resumed`` marker."""
    return 1 + sum(bool(h.get("resumed")) for h in history)


def _machines(run_dir, machine, sessions):
    """The run's machine.json as a list (one a session), with ``machine`` recorded as the last
    session's; [] where none was ever recorded."""
    path = run_dir / MACHINE
    machines = read_json(path) if path.is_file() else []
    machines = [machines] if isinstance(machines, dict) else machines  # written before resumes appended
    if machine is not None:
        machines = [*machines[: sessions - 1], machine]
        checkpoint.write_json(path, machines)
    return machines


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable JSON ({e})") from None


def _test_set(test_set, data_dir, dtype, n_inputs):
    """The run's test images (m, D) and labels (m,), checked against the model's input size."""
    if test_set is None:
        from mlpnn_jax.data import load_mnist

        test_set = load_mnist(data_dir, dtype=dtype)[2:]
    x, y = (np.asarray(a) for a in test_set)
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ReportError(f"{data_dir or 'the bundled MNIST'}: its images do not fit the model's inputs")
    return x, y


def _train_page(run_dir, saved, machines, test_set, classified):
    from mlpnn_jax import metrics
    from mlpnn_jax.trainer import saved_params

    # the params as the run evaluated them: the moving average of the weights when it kept one
    params, config = saved_params(saved)
    history = _history(run_dir / "metrics.jsonl")
    x, y = _test_set(test_set, config.data_dir, config.dtype, params["W1"].shape[0])
    if classified is None:
        classified = metrics.classify(params, x, config.activation, config.precision)
    probs, pred = classified
    cm = metrics.confusion_matrix(y, pred, probs.shape[1])
    acc = metrics.accuracy(cm)
    last = history[-1]
    sizes = "-".join(str(n) for n in [params["W1"].shape[0], *config.hidden, probs.shape[1]])
    subtitle = (
        f"{sizes} {config.activation} · {config.loss} loss · {config.optimizer} lr {config.lr:g}"
        f" {config.schedule} · batch {config.batch_size} · {config.dtype}"
    )
    kpis = [
        (f"{100 * acc:.2f}%", "test accuracy"),
        (f"{last['test_loss']:.4f}", "test loss"),
        (f"{len(history)} / {config.epochs}", "epochs run"),
        (f"{last['elapsed']:.1f} s", "training time"),
        (f"{int(cm.sum() - np.trace(cm))}", f"mistakes of {int(cm.sum())}"),
    ]
    sections = [
        _curves_section(config, history),
        report_html.results_section("Confusion matrix and per-class accuracy", cm),
        report_html.mistakes_section("Test digits it gets wrong", x, y, probs),
        report_html.section(
            "Epochs",
            report_html.epochs_table(history)
            + report_html.note(
                "Epoch 1 includes compiling the jitted epoch, unless it compiled while the data set loaded."
            ),
        ),
        report_html.setup_section(config.in_effect(), machines),
    ]
    return report_html.page("Training run", run_dir, subtitle, kpis, sections)


def learning_curves(config, history):
    """The charts of a train run's history (metrics.jsonl's records), as SVG documents by name:
    "loss_curves", "accuracy_curve" (every split it measured) and, where the run recorded it,
    "learning_rate"; each with a dashed line at every epoch where the run was resumed."""
    loss = [("train", [h["train_loss"] for h in history]), ("test", [h["test_loss"] for h in history])]
    acc = [("test", [100 * h["test_accuracy"] for h in history])]
    if "validation_accuracy" in history[0]:
        acc.insert(0, ("validation", [100 * h["validation_accuracy"] for h in history]))
    resumed = [h["epoch"] for h in history if h.get("resumed")]
    smoothed = f" (train: smoothed targets, eps {config.label_smoothing:g})" if config.label_smoothing else ""
    curves = {
        "loss_curves": charts.line_chart(
            loss, f"{config.loss} loss (mean)", "Loss" + smoothed, marks=resumed
        ),
        "accuracy_curve": charts.line_chart(acc, "accuracy (%)", "Accuracy", marks=resumed),
    }
    if any("lr" in h for h in history):  # runs written before it was recorded have none
        lr = [("lr", [h.get("lr", np.nan) for h in history])]
        curves["learning_rate"] = charts.line_chart(
            lr, "at the epoch's last step", "Learning rate", marks=resumed
        )
    return curves


def _curves_section(config, history):
    """The learning curves of a train run, with a note on what they show."""
    curves = learning_curves(config, history)
    resumed = [h["epoch"] for h in history if h.get("resumed")]
    note = (
        f"The train loss is measured against the smoothed targets (eps {config.label_smoothing:g}), so it"
        " sits above the test loss, which uses the true labels. "
        if config.label_smoothing
        else ""
    )
    if resumed:
        note += f"Dashed lines: resumed before epoch {', '.join(map(str, resumed))}."
    images = (
        report_html.img(report_html.svg(c), "chart", name.replace("_", " ")) for name, c in curves.items()
    )
    return report_html.section("Learning curves", report_html.grid(*images) + report_html.note(note))


def _history(path):
    try:
        history = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable ({e})") from None
    if not history:
        raise ReportError(f"{path}: no epochs recorded")
    return history


def _reproduce_page(run_dir, machines, test_set):
    config = read_json(run_dir / REPRODUCE)
    losses = [loss for loss in LOSS_NAMES if (run_dir / f"{loss}_params.npz").is_file()]
    if not losses:
        raise ReportError(f"{run_dir}: the reproduction finished no loss (no ce_params.npz or kl_params.npz)")
    runs = []
    for loss in losses:
        runs.append(_reproduced(run_dir, loss, config, test_set))
        test_set = runs[-1]["test_set"]  # loaded once for both losses
    kpis = [(f"{100 * r['accuracy']:.2f}%", f"{r['name']}: test accuracy") for r in runs]
    kpis += [
        (f"{runs[0]['epochs']} / {config['epochs']}", "epochs run"),
        (f"{sum(r['seconds'] for r in runs):.1f} s", "training time"),
    ]
    subtitle = (
        f"{runs[0]['sizes']} tanh, full-batch gradient descent, lr 0.1, from the notebook's initial weights"
        f" · {config['engine']} engine · {config['dtype']}"
    )
    curves = report_html.grid(
        *(report_html.img(r["chart"], "chart", f"{r['name']} loss curves") for r in runs)
    )
    note = "Log scale." + (" The notebook printed -KL; the chart shows KL." if "kl" in losses else "")
    printed = [f"<pre>{html.escape(r['printed'])}</pre>" for r in runs]
    source = "As the command printed them, rebuilt from {loss}_losses.csv and {loss}_confusion.txt."
    sections = [
        report_html.section("Loss curves", curves + report_html.note(note)),
        report_html.section("The printed lines", report_html.grid(*printed) + report_html.note(source)),
        *(part for r in runs for part in r["sections"]),
        report_html.section(
            "Timing", report_html.timing_table([(r["name"], r["epochs"], r["seconds"]) for r in runs])
        ),
        report_html.setup_section(config, machines),
    ]
    return report_html.page("The notebook's experiment, reproduced", run_dir, subtitle, kpis, sections)


def _reproduced(run_dir, loss, config, test_set):
    """Everything the page shows of one reproduced loss, as a dict."""
    import reference
    from mlpnn_jax import metrics

    params, meta = load_reproduced_params(run_dir / f"{loss}_params.npz")
    x, y = _test_set(test_set, config["data_dir"], config["dtype"], params["W1"].shape[0])
    net = reference.MLPNN.from_params(params)  # the network the run evaluated, in float64
    net(x)
    probs = net.cache["A2"]  # unclipped: the output clips at 1e-8, which would tie the worst digits
    cm = metrics.confusion_matrix(y, probs.argmax(1), probs.shape[1])
    train, test = _loss_curves(run_dir / f"{loss}_losses.csv")
    sign = -1 if loss == "kl" else 1  # the notebook printed -KL; the chart shows the loss itself
    name = LOSS_NAMES[loss]
    chart = report_html.svg(
        charts.line_chart(
            [("train", sign * train), ("test", sign * test)], f"{name}, sum over images", name, True
        )
    )
    return {
        "name": name,
        "test_set": (x, y),
        "sizes": f"{params['W1'].shape[0]}-{params['W1'].shape[1]}-{params['W2'].shape[1]}",
        "accuracy": metrics.accuracy(cm),
        "epochs": meta["epochs"],
        "seconds": meta["seconds"],
        "chart": chart,
        "printed": _printed_lines(run_dir, loss, config, train),
        "sections": [
            report_html.results_section(f"{name}: confusion matrix and per-class accuracy", cm),
            report_html.mistakes_section(f"{name}: test digits it gets wrong", x, y, probs),
        ],
    }


def load_reproduced_params(path):
    """(params dict, meta dict) of a ``save_reproduction`` file."""
    try:
        arrays, meta = checkpoint.read_arrays(path)
    except checkpoint.CheckpointError as e:
        raise ReportError(str(e)) from None
    return checkpoint.params_of(arrays), meta


def _loss_curves(path):
    """(train losses, test losses) of a reproduce run's ``{loss}_losses.csv``."""
    try:
        rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable ({e})") from None
    return rows[:, 1], rows[:, 2]


def _printed_lines(run_dir, loss, config, train):
    """The lines the reproduce command printed for ``loss``: its epoch lines and its evaluation."""
    from mlpnn_jax.reproduce import printed

    every, last = config["print_every"], len(train)
    lines = [f"== {LOSS_NAMES[loss]} =="]
    # the notebook's own %-format, as the command printed it
    lines += ["[epoch %d] loss: %.4f" % (e, v) for e, v in enumerate(train, 1) if printed(e, last, every)]  # noqa: UP031
    confusion = run_dir / f"{loss}_confusion.txt"
    lines.append(confusion.read_text().rstrip() if confusion.is_file() else "(no confusion matrix saved)")
    return "\n".join(lines)
