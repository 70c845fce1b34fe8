"""report.html as a user sees it: written by every train and reproduce run, rendered in headless Chromium.

The browser checks inject a probe script (allowed by its hash in the page's own Content-Security-Policy,
which otherwise stays as written) that records every CSP violation, i.e. every load the page tries beyond
its inline styles and data: images, file:// included, and whether every image decoded. Chromium's net log
shows no request made by the page. The controls at the end show each detector catching a leaky page.
"""

import base64
import contextlib
import hashlib
import html
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from mlpnn_jax import checkpoint, report, report_html
from mlpnn_jax.cli import main

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",  # lets the probe's timer run before the DOM is dumped
]
PROBE = (
    "window.__v=[];document.addEventListener('securitypolicyviolation',"
    "e=>window.__v.push(e.violatedDirective+' '+e.blockedURI));"
    "window.addEventListener('load',()=>setTimeout(()=>{const imgs=[...document.images].map("
    "i=>i.complete&&i.naturalWidth>0);document.documentElement.setAttribute('data-probe',"
    "JSON.stringify({images:imgs,violations:window.__v}))},50));"
)
PROBE_HASH = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{report_html.CSP}">'


def run(*argv):
    """(exit code, stdout) of ``mlpnn-jax ARGV`` in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, small_mnist_dir):
    out = tmp_path_factory.mktemp("train") / "run"
    args = ["--hidden", 32, "--batch-size", 64, "--epochs", 2, "--data-dir", small_mnist_dir]
    code, stdout = run("train", "--out", out, *args)
    assert code == 0, stdout
    return out


@pytest.fixture(scope="module")
def reproduce_run(tmp_path_factory, small_mnist_dir):
    out = tmp_path_factory.mktemp("reproduce") / "run"
    args = ["--epochs", 6, "--print-every", 2, "--hidden", 16, "--data-dir", small_mnist_dir]
    code, stdout = run("reproduce", "--out", out, *args)
    assert code == 0, stdout
    return out, stdout


def reads_of(command):
    """(exit code, how many times it read a checkpoint file) of running ``command()``."""
    reads, read_arrays = [], checkpoint.read_arrays

    def counting(path):
        reads.append(path)
        return read_arrays(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "read_arrays", counting)
        code = command()
    return code, len(reads)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, small_mnist_dir):
    """A train run (EMA on) stopped after epoch 1, then resumed to its 3 epochs: (run, the resume's reads)."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    args = ["--hidden", 32, "--batch-size", 64, "--epochs", 3, "--ema-decay", 0.5]
    args += ["--data-dir", small_mnist_dir]
    assert run("train", "--out", out, *args, "--target-accuracy", 0.01)[0] == 0  # stops after epoch 1
    path = out / checkpoint.CHECKPOINT
    arrays, meta = checkpoint.read_arrays(path)
    meta["config"]["target_accuracy"] = None  # so that the resumed run goes on to its 3 epochs
    np.savez(path, **arrays, meta=np.array(json.dumps(meta)))
    code, reads = reads_of(lambda: run("train", "--resume", out)[0])
    assert code == 0
    return out, reads


def svg_texts(page):
    """The decoded SVG of every chart in the page."""
    found = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", page)
    return [base64.b64decode(b).decode() for b in found]


def chromium(page, tmp_path, *extra):
    """Runs headless Chromium on ``page``; returns (stdout, the URLs the page itself requested)."""
    net_log = tmp_path / "net.json"
    profile = tmp_path / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}", *extra]
    done = subprocess.run([*command, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # The browser's own background fetches have no initiator ("not an origin"); a page's requests do.
    requested = [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != "not an origin"
    ]
    return done.stdout, requested


def probe(html_text, tmp_path):
    """Renders ``html_text`` with the probe; returns (image loaded flags, CSP violations, page requests)."""
    assert html_text.count(CSP_META) <= 1
    policy = report_html.CSP.replace(
        "default-src 'none';", f"default-src 'none'; script-src 'sha256-{PROBE_HASH}';"
    )
    head = CSP_META.replace(report_html.CSP, policy) + f"<script>{PROBE}</script>"
    if CSP_META in html_text:
        html_text = html_text.replace(CSP_META, head)
    else:  # a page without the policy: the probe alone, first in <head>
        html_text = html_text.replace("<head>", f"<head><script>{PROBE}</script>", 1)
    page = tmp_path / "probed.html"
    page.write_text(html_text)
    dom, requested = chromium(page, tmp_path, "--dump-dom")
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe did not report: the page did not finish loading"
    result = json.loads(html.unescape(found.group(1)))
    return result["images"], result["violations"], requested


def confusion_in_page(text):
    """The confusion matrix the page shows, read back from its cells' titles."""
    cells = re.findall(r'title="true (\d+), predicted (\d+): (\d+)"', text)
    cm = np.zeros((10, 10), int)
    for i, j, n in cells[:100]:
        cm[int(i), int(j)] = int(n)
    return cm


def confusion_txt(path):
    body = path.read_text().split("Accuracy=")[0].replace("Confusion matrix:", "")
    return np.array([int(n) for n in re.findall(r"\d+", body)]).reshape(10, 10)


def test_a_train_run_writes_a_self_contained_report(train_run):
    text = (train_run / "report.html").read_text()
    assert text.count(CSP_META) == 1 and text.index(CSP_META) < text.index("<style>")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # every source is inline
    cm = confusion_in_page(text)
    assert (cm == confusion_txt(train_run / "confusion.txt")).all()  # the run's own confusion matrix
    wrong = int(cm.sum() - np.trace(cm))
    assert text.count('class="digit"') == min(wrong, report_html.MAX_MISTAKES) > 0
    assert f"{wrong} of 256 test images are misclassified" in text
    (machine,) = json.loads((train_run / "machine.json").read_text())  # one session: one machine
    assert machine["jax"] in text and machine["devices"][0] in text
    history = [json.loads(line) for line in (train_run / "metrics.jsonl").read_text().splitlines()]
    assert all(f"{h['seconds']:.2f} s" in text for h in history)  # every epoch's time


def test_a_resumed_run_sums_its_time_marks_the_resume_and_keeps_both_machines(resumed_run):
    out, _ = resumed_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("resumed", False) for r in rows] == [False, True, False]
    assert rows[1]["elapsed"] >= rows[0]["elapsed"] + rows[1]["seconds"]  # the first session's time kept
    assert rows[2]["elapsed"] >= rows[1]["elapsed"] + rows[2]["seconds"]
    machines = json.loads((out / "machine.json").read_text())
    assert len(machines) == 2 and all("jax" in m for m in machines)  # the first, then the resume's
    text = (out / "report.html").read_text()
    assert "resumed before epoch 2" in text and "machine of resume 1" in text
    assert f'{rows[-1]["elapsed"]:.1f} s</div><div class="l">training time' in text  # both sessions


@pytest.mark.parametrize("command", ["resume", "report", "evaluate"])
def test_each_command_reads_the_checkpoint_once(resumed_run, command):
    """An EMA run, whose saved params need the optimizer state: read once for all. ``train --resume``
    reads the checkpoint it resumes once; its second read is of the checkpoint it wrote, by the report,
    which is built from the run's files alone."""
    out, resume_reads = resumed_run
    reads = {"resume": resume_reads}
    if command != "resume":
        code, reads[command] = reads_of(lambda: run(command, out)[0])
        assert code == 0
    assert reads[command] == {"resume": 2, "report": 1, "evaluate": 1}[command]


def test_the_report_shows_the_fields_in_effect_and_the_learning_rate(train_run):
    text = (train_run / "report.html").read_text()
    table = text.split("<h3>config</h3>")[1].split("</table>")[0]
    shown = set(re.findall(r"<th>(\w+)</th>", table))
    assert {"loss", "label_smoothing", "momentum", "augment", "lr"} <= shown  # ce, momentum, no augment
    assert not shown & {"hinge_margin", "focal_gamma", "augment_degrees", "elastic_alpha", "patience"}
    charts = svg_texts(text)
    assert len(charts) == 3 and "Learning rate" in charts[2]


def test_the_mistakes_are_shown_worst_first(train_run):
    text = (train_run / "report.html").read_text()
    captions = re.findall(r'<b class="t">(\d)</b>.*?<small>p\(\d\) ([0-9.e-]+)<br>', text)
    p_true = [float(p) for _, p in captions]
    assert len(p_true) > 1 and p_true == sorted(p_true)


@needs_chromium
@pytest.mark.parametrize("kind", ["train", "reproduce"])
def test_the_report_renders_every_image_and_requests_nothing(kind, train_run, reproduce_run, tmp_path):
    run_dir = train_run if kind == "train" else reproduce_run[0]
    text = (run_dir / "report.html").read_text()
    images, violations, requested = probe(text, tmp_path)
    assert len(images) == text.count("<img ") >= 4  # charts and digits
    assert all(images), f"{images.count(False)} images did not load"
    assert violations == [] and requested == []


def test_a_reproduce_run_shows_its_printed_lines_and_both_curves(reproduce_run):
    run_dir, stdout = reproduce_run
    assert {"reproduce.json", "ce_params.npz", "kl_params.npz", "machine.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    text = (run_dir / "report.html").read_text()
    blocks = [html.unescape(b) for b in re.findall(r"<pre>(.*?)</pre>", text, re.S)]
    assert len(blocks) == 2 and blocks[0].startswith("== cross-entropy ==")
    for block in blocks:  # verbatim, in order, in what the command printed
        assert block + "\n" in stdout
        assert block.count("[epoch ") == 3
    assert text.count('alt="cross-entropy loss curves"') == 1
    assert text.count('alt="KL divergence loss curves"') == 1
    tables = text.split('<table class="cm">')[1:]
    assert len(tables) == 2
    for loss, table in zip(("ce", "kl"), tables, strict=True):
        assert (confusion_in_page(table) == confusion_txt(run_dir / f"{loss}_confusion.txt")).all()


@pytest.mark.parametrize("kind", ["train", "reproduce"])
def test_report_command_rewrites_it_and_refuses_a_non_run(kind, train_run, reproduce_run, tmp_path, capsys):
    run_dir = train_run if kind == "train" else reproduce_run[0]
    first = (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    again = (run_dir / "report.html").read_text()
    footer = re.compile(r"report written [^<]*")
    assert footer.sub("", again) == footer.sub("", first)  # same run, same page (machine.json kept)
    capsys.readouterr()
    for target in (tmp_path, tmp_path / "missing"):
        assert main(["report", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mlpnn-jax report: error: ") and err.count("\n") == 1


def test_a_run_without_a_machine_record_says_so(train_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(train_run, copy)
    (copy / "machine.json").unlink()
    text = report.write_report(copy).read_text()
    assert "Not recorded" in text


@needs_chromium
def test_the_probe_catches_a_page_that_loads_anything(tmp_path):
    """Controls: a leaky page fails each check, so passing them means something."""
    (tmp_path / "local.png").write_bytes(report_html.png(np.zeros((2, 2), np.uint8)))
    leaky = (
        "<!doctype html><html><head><style>body{background:url(local.png)}</style></head><body>"
        f'<img src="{report_html.digit(np.ones(4))}"><img src="local.png"><img src="http://127.0.0.1:9/x.png">'
        "</body></html>"
    )
    images, violations, requested = probe(leaky, tmp_path)
    assert images == [True, True, False] and violations == []
    assert requested == ["http://127.0.0.1:9/x.png"]  # the net log sees the page's request
    images, violations, requested = probe(leaky.replace("<head>", f"<head>{CSP_META}"), tmp_path)
    assert images == [True, False, False] and requested == []  # the policy blocks all but data:
    assert sorted(violations) == ["img-src file", "img-src file", "img-src http://127.0.0.1:9/x.png"]
