"""The pieces of report.html: CSS, charts (charts.py's SVG), digit images (PNG), tables, the page shell.

Every piece is a string of HTML with its images inline as data: URIs, so the page needs nothing else.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

MAX_MISTAKES = 120  # digits shown; the page says how many there are in all
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def svg(document):
    """An SVG document (a string, e.g. ``charts.line_chart``'s) as a data: URI."""
    return "data:image/svg+xml;base64," + base64.b64encode(document.encode()).decode()


def png(pixels):
    """A uint8 image, grayscale (h, w) or RGB (h, w, 3), as PNG bytes."""
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(pixels, np.uint8))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2 if pixels.ndim == 3 else 0, 0, 0, 0)  # 8-bit RGB or gray
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def digit(pixels):
    """A test image (D,) in [0, 1] as a PNG data: URI, dark ink on white; None if D is not a square."""
    side = math.isqrt(pixels.size)
    if side * side != pixels.size:
        return None
    gray = np.round(255 * (1 - np.clip(pixels.reshape(side, side), 0, 1))).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(png(gray)).decode()


def img(uri, cls, alt=""):
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}">'


def _bar(fraction, cls="bar"):
    return f'<div class="{cls}"><span style="width:{100 * fraction:.1f}%"></span></div>'


def _thead(*names):
    return "<thead><tr>" + "".join(f"<th>{n}</th>" for n in names) + "</tr></thead>"


def section(title, body):
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def grid(*parts):
    return '<div class="grid">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def note(text):
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def _prob(p):
    return f"{p:.3f}" if p >= 0.001 else f"{p:.0e}".replace("e-0", "e-")


def results_section(title, cm):
    """The confusion matrix as a heat-map table beside per-class accuracy bars."""
    k = cm.shape[0]
    rows = cm.sum(1)
    off = cm - np.diag(np.diag(cm))
    worst_off = max(int(off.max()), 1)
    head = "".join(f"<th>{j}</th>" for j in range(k))
    body = []
    for i in range(k):
        cells = []
        for j in range(k):
            n = int(cm[i, j])
            if i == j:
                a = 0.15 + 0.85 * n / max(rows[i], 1)
                style = f"background:rgba(37,99,235,{a:.2f});color:{'#fff' if a > 0.55 else '#111'}"
            elif n:
                a = 0.08 + 0.72 * n / worst_off
                style = f"background:rgba(220,38,38,{a:.2f});color:{'#fff' if a > 0.55 else '#111'}"
            else:
                style = "color:#c7ccd4"
            cells.append(f'<td style="{style}" title="true {i}, predicted {j}: {n}">{n}</td>')
        body.append(f"<tr><th>{i}</th>{''.join(cells)}</tr>")
    matrix = (
        f'<table class="cm"><thead><tr><th class="corner">true ↓<br>predicted →</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return section(title, f'<div class="pair"><div>{matrix}</div><div>{_class_table(cm)}</div></div>')


def _class_table(cm):
    """Per class: images, accuracy, its error rate (a bar, scaled to the worst class), its top confusion."""
    totals, right = cm.sum(1), np.diag(cm)
    errors = np.where(totals > 0, 1 - right / np.maximum(totals, 1), 0.0)
    worst = max(errors.max(), 1e-12)
    rows = []
    for i in range(cm.shape[0]):
        others = np.where(np.arange(cm.shape[0]) == i, -1, cm[i])
        j = int(others.argmax())
        confused = f"{j} <small>({int(cm[i, j])}×)</small>" if cm[i, j] > 0 and j != i else "–"
        acc = f"{100 * right[i] / totals[i]:.2f}%" if totals[i] else "–"
        bar = _bar(errors[i] / worst)
        rows.append(
            f"<tr><th>{i}</th><td>{totals[i]}</td><td>{acc}</td><td>{100 * errors[i]:.2f}%</td>"
            f"<td>{bar}</td><td>{confused}</td></tr>"
        )
    return (
        '<table class="classes">'
        + _thead("class", "images", "accuracy", "errors", "", "confused with")
        + f"<tbody>{''.join(rows)}</tbody></table>"
    )


def mistakes_section(title, x, y, probs):
    """The misclassified test digits, worst first: the lowest probability given to the true class."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y)
    p_true = probs[wrong, y[wrong]]
    order = wrong[np.argsort(p_true, kind="stable")]
    cards = []
    for i in order[:MAX_MISTAKES]:
        t, p = int(y[i]), int(pred[i])
        uri = digit(x[i])
        image = img(uri, "digit", f"test image {i}") if uri else '<div class="digit"></div>'
        cards.append(
            f'<figure title="test image #{i}">{image}<figcaption><b class="t">{t}</b> → <b class="p">{p}</b>'
            f"<small>p({t}) {_prob(probs[i, t])}<br>p({p}) {_prob(probs[i, p])}</small></figcaption></figure>"
        )
    shown = min(len(order), MAX_MISTAKES)
    text = (
        f"{len(order)} of {len(y)} test images are misclassified; "
        + (f"the {shown} worst are shown" if shown < len(order) else "all are shown")
        + ", worst first (lowest probability given to the true class). Each shows true → predicted class"
        " and the probability the network gave each."
    )
    if x.shape[1] != math.isqrt(x.shape[1]) ** 2:
        text += " The images are not square, so they are not drawn."
    return section(title, note(text) + f'<div class="digits">{"".join(cards)}</div>')


def epochs_table(history):
    slowest = max(h["seconds"] for h in history) or 1
    rows = "".join(
        f"<tr><td>{h['epoch']}</td><td>{h['train_loss']:.4f}</td><td>{h['test_loss']:.4f}</td>"
        f"<td>{100 * h['test_accuracy']:.2f}%</td><td>{h['seconds']:.2f} s</td>"
        f"<td>{_bar(h['seconds'] / slowest, 'bar time')}</td>"
        f"<td>{h['elapsed']:.1f} s</td></tr>"
        for h in history
    )
    return (
        '<div class="scroll"><table class="num">'
        + _thead("epoch", "train loss", "test loss", "test accuracy", "time", "", "elapsed")
        + f"<tbody>{rows}</tbody></table></div>"
    )


def timing_table(timing):
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{epochs}</td><td>{seconds:.1f} s</td>"
        f"<td>{1000 * seconds / max(epochs, 1):.1f} ms</td></tr>"
        for name, epochs, seconds in timing
    )
    return (
        '<table class="num">'
        + _thead("loss", "epochs", "time", "per epoch")
        + f"<tbody>{rows}</tbody></table>"
        + note(
            "Epochs run many at a time inside one compiled loop, so the time per epoch is the mean over the"
            " run, compilation included."
        )
    )


def _kv(d):
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>" for k, v in d.items()
    )
    return f'<table class="kv">{rows}</table>'


def _value(v):
    if isinstance(v, list) and v and all(isinstance(s, str) for s in v):
        counts = {s: v.count(s) for s in v}
        return (
            ", ".join(s if n == 1 else f"{n} × {s}" for s, n in counts.items())
            if len(v) > 4
            else ", ".join(v)
        )
    return json.dumps(v) if not isinstance(v, str) else v


def setup_section(config, machines):
    """The config's fields (those in effect) beside the machines: the one that started the run, then the
    one of each resume."""
    config = {k: ("bundled MNIST" if k == "data_dir" and v is None else v) for k, v in config.items()}
    titles = ["machine", *(f"machine of resume {i}" for i in range(1, len(machines)))]
    machine_html = "".join(f"<h3>{t}</h3>{_kv(m)}" for t, m in zip(titles, machines, strict=False))
    if not machines:
        machine_html = "<h3>machine</h3>" + note("Not recorded: this run predates its report.")
    return section("Configuration and machine", grid("<h3>config</h3>" + _kv(config), machine_html))


_CSS = """
:root{--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f5f7;--card:#fff;--blue:#2563eb;--red:#dc2626}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:28px 28px 56px}
header h1{font-size:26px;margin:0;font-weight:700;letter-spacing:-.01em}
header .eyebrow{color:var(--muted);font-size:13px;margin-bottom:2px}
header .run{font-family:var(--mono)}
header .sub{margin:6px 0 0;color:#374151}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin:20px 0 4px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 18px}
.kpi .v{font-size:28px;font-weight:700;font-variant-numeric:tabular-nums;line-height:1.2}
.kpi .l{color:var(--muted);font-size:13px}
.kpi:first-child .v{color:var(--blue)}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:20px 24px;
margin-top:16px}
h2{font-size:17px;margin:0 0 14px}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:20px 28px;align-items:start}
img.chart{width:100%;height:auto;display:block}
.note{color:var(--muted);font-size:13px;margin:8px 0 12px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:14px}
th,td{padding:4px 10px;text-align:right}
thead th{color:var(--muted);font-weight:600;font-size:12px;border-bottom:1px solid var(--line)}
table.num td,table.classes td{border-bottom:1px solid #f1f2f4}
table.cm{font-size:13px}
table.cm td{width:36px;height:30px;text-align:center;border:2px solid #fff;border-radius:4px}
table.cm th{color:var(--muted);font-weight:600;text-align:center}
table.cm th.corner{font-size:11px;font-weight:500;text-align:right;white-space:nowrap}
table.classes tbody th{text-align:center}
.bar{width:80px;height:8px;background:#eef0f3;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:var(--red);opacity:.75;border-radius:4px}
.bar.time span{background:var(--blue);opacity:.6}
.pair{display:flex;flex-wrap:wrap;gap:24px 40px;align-items:flex-start}
table.kv{width:100%;font-size:13px}
table.kv th{text-align:left;color:var(--muted);font-weight:500;white-space:nowrap;vertical-align:top}
table.kv td{text-align:left;font-family:var(--mono);word-break:break-word}
table.kv tr{border-bottom:1px solid #f1f2f4}
.digits{display:grid;grid-template-columns:repeat(auto-fill,minmax(86px,1fr));gap:8px}
figure{margin:0;padding:8px 4px 6px;border:1px solid var(--line);border-radius:10px;text-align:center}
img.digit,div.digit{width:56px;height:56px;image-rendering:pixelated;display:block;margin:0 auto 4px}
figcaption{font-size:15px;line-height:1.25}
figcaption .t{color:var(--blue)}
figcaption .p{color:var(--red)}
figcaption small{display:block;color:var(--muted);font-size:11px;margin-top:2px}
pre{background:#0f172a;color:#e2e8f0;border-radius:10px;padding:14px 16px;font-size:12px;line-height:1.45;
overflow-x:auto;margin:0}
.scroll{max-height:460px;overflow:auto}
footer{color:var(--muted);font-size:12px;margin-top:22px;text-align:center}
"""


def page(title, run_dir, subtitle, kpis, sections, css=""):
    """The whole page: a header with the key figures in tiles, then the sections; a string of HTML.

    ``css`` is added to the page's own style sheet (for pages other than a run's report).
    """
    tiles = "".join(
        f'<div class="kpi"><div class="v">{html.escape(v)}</div><div class="l">{html.escape(k)}</div></div>'
        for v, k in kpis
    )
    written = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    from mlpnn_jax import __version__

    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}: {html.escape(Path(run_dir).name)}</title>"
        f"<style>{_CSS}{css}</style></head>"
        f'<body><main><header><div class="eyebrow">mlpnn-jax · <span class="run">{html.escape(str(run_dir))}'
        f'</span></div><h1>{html.escape(title)}</h1><p class="sub">{html.escape(subtitle)}</p></header>'
        f'<div class="kpis">{tiles}</div>'
        + "".join(sections)
        + f"<footer>mlpnn-jax {__version__} · report written {written}</footer></main></body></html>\n"
    )
