"""The mlpnn-jax command on small data in temporary directories."""

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mlpnn_jax import checkpoint as ckpt
from mlpnn_jax.cli import main
from mlpnn_jax.data import write_mnist

FAST = ["--hidden", "32", "--batch-size", "64"]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``mlpnn-jax ARGV`` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_every_file_and_evaluate_reloads_it(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 2, *FAST)
    assert code == 0
    expected = {
        "config.json",
        "metrics.jsonl",
        "checkpoint.npz",
        "loss_curves.svg",
        "accuracy_curve.svg",
        "confusion.svg",
        "confusion.txt",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no leftovers of atomic writes
    config = json.loads((out / "config.json").read_text())
    assert config["hidden"] == [32] and config["epochs"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"epoch", "train_loss", "test_loss", "test_accuracy", "seconds"} <= set(rows[0])
    assert stdout.count("epoch ") >= 2 and "test acc" in stdout  # one summary line per epoch
    for figure in out.glob("*.svg"):
        assert ET.parse(figure).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    text = (out / "confusion.txt").read_text()
    assert text.startswith("Confusion matrix:\n[[")

    code, stdout, _ = run(capsys, "evaluate", out, "--json")
    assert code == 0
    scores = json.loads(stdout)
    assert scores["accuracy"] == pytest.approx(rows[-1]["test_accuracy"], abs=1e-6)
    assert scores["mean_loss"] == pytest.approx(rows[-1]["test_loss"], rel=1e-5)
    assert str(np.array(scores["confusion_matrix"])) in text  # the matrix confusion.txt holds


def test_evaluate_prints_labelled_matrix_and_per_class_scores(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 1, *FAST)[0] == 0
    scores = json.loads(run(capsys, "evaluate", out, "--json")[1])
    cm = np.array(scores["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == scores["test_images"] == 256
    for k, c in enumerate(scores["per_class"]):  # the definitions, from the matrix
        assert c["class"] == k and c["support"] == cm[k].sum()
        assert c["recall"] == pytest.approx(cm[k, k] / max(cm[k].sum(), 1))
        assert c["precision"] == pytest.approx(cm[k, k] / max(cm[:, k].sum(), 1))
        pr = c["precision"] + c["recall"]
        assert c["f1"] == pytest.approx(2 * c["precision"] * c["recall"] / pr if pr else 0.0)
    code, text, _ = run(capsys, "evaluate", out)
    lines = text.splitlines()
    assert code == 0 and f"accuracy {100 * scores['accuracy']:.2f}%" in lines[0]
    header = lines.index("true\\pred" + "".join(f"{k:>5}" for k in range(10)))
    assert lines[header + 1].split() == ["0", *map(str, cm[0])]
    assert lines[header + 11].split()[:2] == ["class", "precision"]
    assert lines[header + 12].split() == [
        "0",
        *(f"{scores['per_class'][0][m]:.4f}" for m in ("precision", "recall", "f1")),
        str(cm[0].sum()),
    ]


def test_evaluate_reads_reproduce_runs(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "rep"
    argv = ["reproduce", "--epochs", 3, "--hidden", 16, "--data-dir", small_mnist_dir, "--out", out]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, "evaluate", out)
    assert code == 2 and "pick one with --loss ce|kl" in err
    for loss in ("ce", "kl"):
        scores = json.loads(run(capsys, "evaluate", out, "--loss", loss, "--json")[1])
        printed = (out / f"{loss}_confusion.txt").read_text()  # what the notebook's evaluate printed
        assert scores["kind"] == "reproduce" and scores["loss"] == loss
        assert f"Accuracy={scores['accuracy']}" in printed
        assert str(np.array(scores["confusion_matrix"])) in printed
        assert 0 < scores["mean_loss"] < 10


def clear_target(run_dir):
    """Makes a run that stopped at its target after epoch 1 resumable: resuming a run with a target would
    stop again, so its checkpoint's config drops it."""
    meta = ckpt.load(run_dir / ckpt.CHECKPOINT)[2]
    assert meta["epoch"] == 1
    meta["config"]["target_accuracy"] = None
    with np.load(run_dir / ckpt.CHECKPOINT) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(run_dir / ckpt.CHECKPOINT, **arrays)


LEGACY_FIGURES = ("loss_curves.png", "accuracy_curve.png", "confusion.png")  # train's files before SVG


@pytest.mark.parametrize("how", ["--resume", "--overwrite"])
def test_a_run_with_the_old_png_figures_resumes_and_is_overwritten(capsys, tmp_path, small_mnist_dir, how):
    out, args = tmp_path / "old", ["--data-dir", small_mnist_dir, "--epochs", 2, *FAST]
    assert run(capsys, "train", "--out", out, *args, "--target-accuracy", 0.01)[0] == 0
    for name in LEGACY_FIGURES:  # as an earlier version left it
        (out / name).write_bytes(b"\x89PNG old")
    if how == "--resume":
        clear_target(out)
        code, _, err = run(capsys, "train", "--resume", out)
    else:
        code, _, err = run(capsys, "train", "--out", out, "--overwrite", *args)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert not names & set(LEGACY_FIGURES) and {"loss_curves.svg", "confusion.svg"} <= names


def test_resume_continues_to_the_same_result(capsys, tmp_path, small_mnist_dir):
    args = ["--data-dir", small_mnist_dir, "--epochs", 3, "--seed", 5, *FAST]
    assert run(capsys, "train", "--out", tmp_path / "full", *args)[0] == 0
    # an interrupted run: epochs 1 and 2 of the same config, then resumed
    assert run(capsys, "train", "--out", tmp_path / "part", *args, "--target-accuracy", 0.01)[0] == 0
    clear_target(tmp_path / "part")
    code, _, _ = run(capsys, "train", "--resume", tmp_path / "part")
    assert code == 0
    full = ckpt.load(tmp_path / "full" / ckpt.CHECKPOINT)
    resumed = ckpt.load(tmp_path / "part" / ckpt.CHECKPOINT)
    assert all(np.array_equal(full[0][k], resumed[0][k]) for k in full[0])
    assert [h["test_loss"] for h in full[2]["history"]] == [h["test_loss"] for h in resumed[2]["history"]]
    # resuming again: nothing left to do; and options cannot be changed on resume
    assert run(capsys, "train", "--resume", tmp_path / "part")[0] == 2
    code, _, err = run(capsys, "train", "--resume", tmp_path / "part", "--lr", 1)
    assert code == 2 and "drop --lr" in err


def test_divergence_keeps_the_last_good_checkpoint(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data-dir", small_mnist_dir, "--out", out, "--lr", 1000, *FAST)
    assert code == 1
    assert "diverged at epoch 1" in err and "lower --lr" in err
    assert not (out / ckpt.CHECKPOINT).exists()  # epoch 1 was already bad: no good state to keep
    # a learning rate that warms up into divergence: the first epochs are good, a later one explodes
    ramp = ["--optimizer", "sgd", "--lr", 300, "--warmup", 0.9, "--epochs", 10, "--label-smoothing", 0]
    code, _, err = run(capsys, "train", "--data-dir", small_mnist_dir, "--out", out, *ramp, *FAST)
    assert code == 1
    bad = int(err.split("diverged at epoch ")[1].split(":")[0])
    assert bad >= 2 and f"the checkpoint of epoch {bad - 1} is kept" in err
    meta = ckpt.load(out / ckpt.CHECKPOINT)[2]
    assert meta["epoch"] == bad - 1 and np.isfinite([h["train_loss"] for h in meta["history"]]).all()
    assert run(capsys, "evaluate", out)[0] == 0  # and it is usable


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--loss", "l1"], "--loss: expected one of"),
        (["train", "--lr", "-1"], "--lr: expected a positive number, got -1.0"),
        (["train", "--hidden", "0"], "--hidden: expected one or more positive layer sizes"),
        (["train", "--batch-size", "100000"], "--batch-size: expected at most the 1024 training samples"),
        (["train", "--data-dir", "/nonexistent/mnist"], "--data-dir: /nonexistent/mnist is not a directory"),
        (["train", "--resume", "/nonexistent/run"], "/nonexistent/run/checkpoint.npz: no checkpoint there"),
        (["evaluate", "/nonexistent/run"], "/nonexistent/run: no such directory"),
        (["train", "--config", "/nonexistent/config.json"], "--config: /nonexistent/config.json is not a"),
        (["train", "--config", "LIST_JSON"], "is not a run's config.json (expected a JSON object)"),
        (["train", "--config", "UNKNOWN_JSON"], "unknown keys ['colour']"),
        (["evaluate", "EMPTY"], "not a run directory (no checkpoint.npz or reproduce.json)"),
        (["evaluate", "RUN", "--loss", "kl"], "--loss picks a reproduce run's loss"),
        (["evaluate", "REPRODUCED_CE", "--loss", "kl"], "has no kl_params.npz (it has ce)"),
        (["evaluate", "REPRODUCED_NONE"], "the reproduction finished no loss"),
        (["reproduce", "--engine", "numpy", "--dtype", "float32"], "--dtype: the numpy engine"),
        (["reproduce", "--epochs", "0"], "--epochs: expected a positive integer"),
        (["reproduce", "--hidden", "0"], "--hidden: expected a positive number of hidden units, got 0"),
        (["train", "--seed", "-1"], "--seed: expected an integer in [0, 2**32), got -1"),
        (["train", "--hinge-margin", "inf"], "--hinge-margin: expected a finite positive number"),
        (["train", "--loss", "smooth_ce", "--label-smoothing", "0"], "eps > 0 for smooth_ce"),
        (["train", "--out", "/proc/mlpnn-run"], "--out: cannot create /proc/mlpnn-run"),
        (["train", "--resume", "RUN", "--out", "elsewhere"], "drop --out"),
        (["evaluate", "TRUNCATED"], "not a readable checkpoint (BadZipFile"),
        (["evaluate", "NO_PARAMS"], "incomplete checkpoint"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, small_mnist_dir, tmp_path, argv, message):
    good = tmp_path / "good"
    good.mkdir()
    ckpt.save(good / ckpt.CHECKPOINT, {"W1": np.zeros((2, 2)), "b1": np.zeros(2)}, (), {"a": 1})
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / ckpt.CHECKPOINT).write_bytes((good / ckpt.CHECKPOINT).read_bytes()[:100])
    no_params = tmp_path / "no_params"
    no_params.mkdir()
    meta = {"config": {}, "epoch": 1, "history": [], "input_stats": [0.0, 1.0]}
    ckpt.save(no_params / ckpt.CHECKPOINT, {}, (), meta)
    reproduced_ce, reproduced_none, empty = tmp_path / "rep_ce", tmp_path / "rep_none", tmp_path / "empty"
    for d in (reproduced_ce, reproduced_none, empty):
        d.mkdir()
    for d in (reproduced_ce, reproduced_none):
        (d / "reproduce.json").write_text(
            json.dumps({"dtype": "float64", "precision": "highest", "data_dir": None})
        )
    (reproduced_ce / "ce_params.npz").write_bytes(b"")
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "unknown.json").write_text('{"colour": "red"}')
    names = {
        "RUN": good,
        "TRUNCATED": truncated,
        "NO_PARAMS": no_params,
        "REPRODUCED_CE": reproduced_ce,
        "REPRODUCED_NONE": reproduced_none,
        "EMPTY": empty,
        "LIST_JSON": tmp_path / "list.json",
        "UNKNOWN_JSON": tmp_path / "unknown.json",
    }
    argv = [str(names.get(a, a)) for a in argv]
    if argv[0] == "train" and "--data-dir" not in argv and "--resume" not in argv and "--out" not in argv:
        argv = [*argv, "--data-dir", str(small_mnist_dir), "--out", str(tmp_path / "run")]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--optimizer"])
    assert e.value.code == 2


def test_out_dir_with_a_run_is_not_overwritten_without_consent(capsys, tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    args = ["train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", 1, *FAST]
    assert run(capsys, *args)[0] == 0
    before = (out / ckpt.CHECKPOINT).read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 2 and "already holds a run" in err
    assert (out / ckpt.CHECKPOINT).read_bytes() == before
    # --overwrite with a bad option, or a replacement that diverges in its first epoch: the old run stays
    assert run(capsys, *args, "--overwrite", "--batch-size", 100000)[0] == 2
    assert run(capsys, *args, "--overwrite", "--lr", 1000)[0] == 1
    assert (out / ckpt.CHECKPOINT).read_bytes() == before
    assert json.loads((out / "config.json").read_text())["lr"] == 0.1
    # a replacement with a good first epoch replaces every file of the old run
    (out / "confusion.svg").write_bytes(b"old")
    assert run(capsys, *args, "--overwrite", "--seed", 7)[0] == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 7
    assert (out / "confusion.svg").read_text().startswith("<svg")
    assert (out / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize("engine", ["jax", "numpy"])
def test_reproduce_writes_curves_and_prints_the_notebooks_lines(capsys, tmp_path, small_mnist_dir, engine):
    out = tmp_path / "rep"
    argv = ["reproduce", "--loss", "both", "--epochs", 6, "--print-every", 3, "--hidden", 16]
    code, stdout, _ = run(capsys, *argv, "--engine", engine, "--data-dir", small_mnist_dir, "--out", out)
    assert code == 0
    for loss in ("ce", "kl"):
        for suffix in ("_losses.csv", "_loss_curves.png", "_confusion.png", "_confusion.txt"):
            assert (out / f"{loss}{suffix}").is_file()
    rows = (out / "ce_losses.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,test_loss" and len(rows) == 7
    lines = [line for line in stdout.splitlines() if line.startswith("[epoch")]
    assert len(lines) == 4  # epochs 3 and 6, for each loss
    ce_train = [float(r.split(",")[1]) for r in rows[1:]]
    assert lines[0] == f"[epoch 3] loss: {ce_train[2]:.4f}"
    kl_rows = (out / "kl_losses.csv").read_text().splitlines()[1:]
    assert all(float(r.split(",")[1]) < 0 for r in kl_rows)  # the KL "loss" printed negative
    assert stdout.count("Confusion matrix:") == 2 and stdout.count("Accuracy=") == 2


def test_jax_and_numpy_reproductions_print_the_same_digits(capsys, tmp_path, small_mnist_dir):
    argv = ["reproduce", "--loss", "ce", "--epochs", 8, "--print-every", 2, "--hidden", 16]
    outs = []
    for engine in ("jax", "numpy"):
        code, stdout, _ = run(
            capsys, *argv, "--engine", engine, "--data-dir", small_mnist_dir, "--out", tmp_path / engine
        )
        assert code == 0
        outs.append(
            [line for line in stdout.splitlines() if line.startswith(("[epoch", "Accuracy", " [", "[["))]
        )
    assert outs[0] == outs[1] and len(outs[0]) > 4


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(tmp_path, small_mnist_dir):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mlpnn_jax", "train", "--data-dir", small_mnist_dir, "--out", out]
    cmd += ["--epochs", "100000", "--hidden", "8", "--batch-size", "512", "--platform", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # wait until an epoch has finished
            if line.startswith("epoch"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "resume: mlpnn-jax train --resume" in stdout
    meta = ckpt.load(out / ckpt.CHECKPOINT)[2]
    assert meta["epoch"] >= 1 and len(meta["history"]) == meta["epoch"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == meta["epoch"]


def test_float32_default_path_and_an_exact_target_hit(tmp_path, small_mnist):
    """The CLI's default float32 path, in a process without 64-bit JAX (this suite turns it on).

    With 250 test images, k / 250 is not a float32 number: an accuracy computed as a float32 mean would
    fall just short of the target k / 250 and miss it; a count divided on the host hits it exactly.
    """
    x, y, xt, yt = small_mnist
    data = write_mnist(tmp_path / "data", x, y, xt[:250], yt[:250])
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    base = [sys.executable, "-m", "mlpnn_jax", "train", "--data-dir", data, *FAST, "--platform", "cpu"]

    def train(out, *extra):
        proc = subprocess.run([*base, "--out", out, *extra], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    first = train(tmp_path / "a", "--epochs", "3")[0]["test_accuracy"]
    correct = round(first * 250)
    assert first == correct / 250
    assert float(np.float32(correct / 250)) != correct / 250 or correct % 125 == 0
    again = train(tmp_path / "b", "--epochs", "3", "--target-accuracy", repr(correct / 250))
    assert len(again) == 1 and again[0]["test_accuracy"] == first


def test_every_config_field_is_a_flag_and_reaches_the_config(capsys):
    """The train flags are generated from TrainConfig: each field has one, with its default in --help."""
    import dataclasses

    from mlpnn_jax import TrainConfig
    from mlpnn_jax.cli import build_parser, flag
    from mlpnn_jax.options import given_options

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    fields = dataclasses.fields(TrainConfig)
    assert all(flag(f.name) in help_text for f in fields)
    assert flag("standardize") == "--standardize" and flag("batch_size") == "--batch-size"
    args = build_parser().parse_args(["train", "--lr", "0.3", "--hidden", "7", "5", "--no-standardize"])
    assert given_options(args) == {"lr": 0.3, "hidden": [7, 5], "standardize": False}
    assert TrainConfig(**given_options(args)).hidden == (7, 5)
    assert given_options(build_parser().parse_args(["train", "--standardize"])) == {"standardize": True}


@pytest.mark.parametrize("command", ["train", "reproduce", "evaluate", "gradcheck"])
def test_help_describes_the_command(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mlpnn-jax {command}")
    assert "Exit codes" not in out  # not the module's docstring


@pytest.mark.parametrize(
    ("command", "shown", "absent"),
    [
        ("train", "--standardize, --no-standardize", None),
        ("train", "(default: on)", "(True)"),
        ("train", "adamw: its own, 0.0001) --schedule", "(None)"),
        ("train", "deep --hidden 1000 500 --activation relu --augment both", "see PRESETS"),
        ("reproduce", "(default: 2000)", "(default: None)"),
        ("reproduce", "(default: highest)", None),
    ],
)
def test_help_shows_defaults_and_presets(capsys, command, shown, absent):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    flat = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    assert shown in flat
    assert absent is None or absent not in flat


def test_version(capsys):
    import mlpnn_jax

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"mlpnn-jax {mlpnn_jax.__version__}\n"


def test_config_trains_a_runs_recipe_again_with_flags_winning(capsys, tmp_path, small_mnist_dir):
    first = tmp_path / "first"
    argv = ["--data-dir", small_mnist_dir, "--epochs", 1, "--seed", 3, "--lr", 0.05, "--optimizer", "adam"]
    code, stdout, _ = run(capsys, "train", *argv, *FAST, "--out", first)
    assert code == 0
    assert stdout.splitlines()[0].startswith(
        "training hidden 32 tanh, ce loss, adam lr 0.05 onecycle schedule, 1 epochs on "
    )
    saved = first / "config.json"
    code, _, _ = run(capsys, "train", "--config", saved, "--out", tmp_path / "again", "--seed", 4)
    assert code == 0
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again == {**json.loads(saved.read_text()), "seed": 4}
    for extra, words in [
        (["--resume", first], "drop --config"),
        (["--preset", "deep"], "--preset: --config gives every option already"),
    ]:
        code, _, err = run(capsys, "train", "--config", saved, *extra)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1
