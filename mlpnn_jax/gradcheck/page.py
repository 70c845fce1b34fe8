"""The page a student reads about one gradcheck: what was inferred, the diagnosis in words, each
parameter's per-entry error as a small heat map, and the formula that would be right beside its shape.

One self-contained HTML page under report.html's rules (``report_html``: its Content-Security-Policy,
its pieces, every image inline as a data: URI), made from the check's JSON report.
"""

from __future__ import annotations

import base64
import html

import numpy as np

from mlpnn_jax import report_html as H
from mlpnn_jax.gradcheck.problems import FD_PROBLEM, SPECS
from mlpnn_jax.gradcheck.report import RTOL

# the problem whose heat map is shown, the first on which the parameter fails: the middle-sized one first
PREFERRED = (FD_PROBLEM, *(name for name, _, _ in reversed(SPECS) if name != FD_PROBLEM))
CELL_PX = 24  # a heat map entry's side on the page, at most
HEAT_PX = 230  # a heat map's longest side on the page, at most
RIGHT, NONFINITE = (222, 242, 228), (60, 10, 40)  # colours of a right entry, and of a NaN or inf one
WRONG_LOW, WRONG_HIGH = (253, 186, 116), (185, 28, 28)  # just wrong .. wrong by 100% or more
VERDICT_TITLES = {
    "ok": "Your gradients are right",
    "failed": "Some gradients are wrong",
    "not checked": "Not checked",
}
DIMENSIONS = {"D": "input", "K": "output unit", "1": "entry"}  # a shape's letter -> what one index is
# (output head, loss) -> dZL, the loss's gradient with respect to the last pre-activation, per sample
OUTPUT_ERROR = {
    ("softmax", "ce"): "P - T",
    ("softmax", "kl"): "P - T",
    ("softmax", "smooth_ce"): "P - ((1 - eps) T + eps / K)",
    ("softmax", "mse"): "P * (G - (P * G).sum(axis=1, keepdims=True)),  G = 2 (P - T)",
    ("softmax", "mse_half"): "P * (G - (P * G).sum(axis=1, keepdims=True)),  G = P - T",
    ("softmax", "mse_mean"): "P * (G - (P * G).sum(axis=1, keepdims=True)),  G = 2 (P - T) / K",
    ("sigmoid", "bce"): "A - T",
    ("sigmoid", "bce_mean"): "(A - T) / K",
    ("sigmoid", "se_sum"): "2 (A - T) * A * (1 - A)",
    ("sigmoid", "se_half"): "(A - T) * A * (1 - A)",
    ("sigmoid", "se_mean"): "2 (A - T) * A * (1 - A) / K",
}
DERIVATIVE = {  # activation -> f'(Z{i}) in terms of the layer's A{i} or Z{i}
    "tanh": "(1 - A{i}**2)",
    "relu": "(Z{i} > 0)",
    "sigmoid": "A{i} * (1 - A{i})",
    "leaky_relu": "np.where(Z{i} > 0, 1, 0.01)",
    "identity": "1",
}
BIAS_SUM = {"flat": ".sum(axis=0)", "row": ".sum(axis=0, keepdims=True)", "col": ".sum(axis=0)[:, None]"}
CSS = """
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card h3{text-transform:none;letter-spacing:0;font-size:16px;color:var(--ink);margin:0 0 6px}
.card h3 .st{font-size:12px;font-weight:600;margin-left:8px;padding:1px 8px;border-radius:9px}
.st.ok{background:#dcfce7;color:#166534}.st.bad{background:#fee2e2;color:#991b1b}
img.heat{image-rendering:pixelated;display:block;margin:6px 0;border:1px solid #d1d5db}
code,.formula{font-family:var(--mono);font-size:13px}
.formula{background:#f8fafc;border:1px solid var(--line);border-radius:8px;padding:6px 9px;margin:6px 0}
.legend span{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px -2px 10px}
ul.diag{margin:0;padding-left:20px}ul.diag li{margin:4px 0}
.verdict-ok .kpi:first-child .v{color:#15803d}.verdict-bad .kpi:first-child .v{color:var(--red)}
details summary{cursor:pointer;color:var(--muted);font-size:13px;margin-bottom:8px}
"""


def render(path, verdict, message, report, traceback=""):
    """The page of one check: a string of HTML.

    Args:
        path: the checked file, as the command named it.
        verdict: "ok", "failed" or "not checked".
        message: the one-line diagnosis or error.
        report: the check's JSON report (``Report.to_json()``), None when it could not run.
        traceback: the user's traceback, when their code raised.
    """
    if report is None:
        body = (
            "The check could not run, so nothing is known about your gradients yet: fix this, run it again."
        )
        sections = [H.section("Why", f"<p>{html.escape(message)}</p>" + H.note(body))]
        if traceback:
            sections.append(H.section("Your code's traceback", f"<pre>{html.escape(traceback)}</pre>"))
        return _tinted(
            H.page(VERDICT_TITLES[verdict], path, message, [(verdict, "verdict")], sections, CSS), verdict
        )
    checks = report["params"]
    right = sum(p["ok"] for p in checks.values())
    kpis = [
        (verdict, "verdict"),
        (f"{right} of {len(checks)}", "parameters right"),
        (f"{RTOL:g}", "tolerance"),
    ]
    sections = [
        _inferred(report),
        _diagnosis(report),
        H.section("Your gradients, entry by entry", _legend() + _cards(report)),
        _backward(report),
        H.section(
            "The whole report",
            f"<details><summary>as the command prints it</summary>"
            f"<pre>{html.escape(report['table'])}</pre></details>",
        ),
    ]
    return _tinted(H.page(VERDICT_TITLES[verdict], path, message, kpis, sections, CSS), verdict)


def _tinted(text, verdict):
    """The page with its verdict's colour: green for ok, red otherwise."""
    return text.replace("<main>", f'<main class="verdict-{"ok" if verdict == "ok" else "bad"}">', 1)


def _inferred(report):
    items = "".join(f"<li>{html.escape(s)}</li>" for s in report["inferred"])
    return H.section("What the checker found out about your code", f'<ul class="diag">{items}</ul>')


def _diagnosis(report):
    errors = [d for d in report["diagnoses"] if d["level"] == "error"]
    notes = [d for d in report["diagnoses"] if d["level"] != "error"]
    if errors:
        body = (
            '<ul class="diag">' + "".join(f"<li>{html.escape(d['message'])}</li>" for d in errors) + "</ul>"
        )
    else:
        body = (
            f"<p>Every entry of every gradient matches {html.escape(report['convention']['reference'])}.</p>"
        )
    if notes:
        body += H.note("Notes: " + " ".join(d["message"] for d in notes))
    return H.section("Diagnosis", body)


def _legend():
    swatches = (
        (RIGHT, f"right (within {RTOL:g})"),
        (WRONG_LOW, "just wrong"),
        (WRONG_HIGH, "wrong by 100% or more"),
        (NONFINITE, "NaN or inf"),
    )
    spans = "".join(f'<span style="background:rgb{c}"></span>{html.escape(t)}' for c, t in swatches)
    return H.note(
        "Each square is one entry of the gradient your code returned, laid out as your array is."
    ) + (f'<p class="note legend">{spans}</p>')


def _cards(report):
    sizes = {p["name"]: p for p in report["problems"]}
    cards = []
    for label, check in report["params"].items():
        spec = report["convention"]["params"][label]
        entry = _shown(check)
        cards.append(
            f'<div class="card"><h3>{html.escape(label)}<span class="st {"ok" if check["ok"] else "bad"}">'
            f"{'right' if check['ok'] else html.escape(check['status'])}</span></h3>"
            + _heat(label, entry, sizes[entry["problem"]], check["expected_shape"])
            + _formula(label, spec, report["convention"]["net"], check, entry)
            + "</div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _shown(check):
    """The problem whose entries are drawn: the first of PREFERRED on which the parameter fails."""
    per = {p["problem"]: p for p in check["problems"]}
    order = [per[name] for name in PREFERRED if name in per]
    return next((p for p in order if not p["ok"]), order[0])


def _heat(label, entry, problem, symbols):
    sizes = ", ".join(f"{k}={v}" for k, v in problem.items() if k not in ("name", "regime", "redrawn"))
    where = f"on the test problem {entry['problem']} ({sizes})"
    if "entry_errors" not in entry:
        got = "nothing" if entry["got_shape"] is None else f"shape {tuple(entry['got_shape'])}"
        return H.note(f"Not compared {where}: your code returned {got} ({entry['status']}).")
    errors = np.array(entry["entry_errors"], dtype=float)  # None (not finite) -> nan
    grid = errors.reshape(1, -1) if errors.ndim == 1 else errors
    side = max(1, min(CELL_PX, HEAT_PX // max(grid.shape)))
    uri = "data:image/png;base64," + base64.b64encode(H.png(_colours(grid))).decode()
    alt = f"heat map of {label}'s entry errors"
    image = (
        f'<img class="heat" src="{uri}" alt="{html.escape(alt)}" '
        f'width="{side * grid.shape[1]}" height="{side * grid.shape[0]}">'
    )
    bad = ~(errors <= RTOL)  # NaN (not finite) counts as wrong
    return image + H.note(f"{_pattern(bad, label, symbols)} {where}.")


def _colours(errors):
    """RGB pixels: one per entry, by how wrong it is (log scale from the tolerance to 100%)."""
    level = np.clip(np.log10(np.maximum(np.nan_to_num(errors), RTOL) / RTOL) / -np.log10(RTOL), 0, 1)
    low, high = np.array(WRONG_LOW), np.array(WRONG_HIGH)
    wrong = low + level[..., None] * (high - low)
    rgb = np.where((errors > RTOL)[..., None], wrong, RIGHT)  # NaN compares False: coloured below
    return np.where(np.isnan(errors)[..., None], NONFINITE, rgb).astype(np.uint8)


def _pattern(bad, label, symbols):
    """Which entries are wrong, in words; ``symbols`` is the shape's letters, e.g. '(D, H)'."""
    count = f"{int(bad.sum())} of {bad.size} entries wrong"
    if not bad.any():
        return f"All {bad.size} entries right"
    if bad.all():
        return f"Every entry wrong ({count})"
    if bad.ndim == 2:
        axes = [s.strip() for s in symbols.strip("()").split(",")]
        for axis, word in ((0, "row"), (1, "column")):
            whole = np.flatnonzero(bad.all(1 - axis))
            if whole.size and bad.sum() == whole.size * bad.shape[1 - axis]:
                which = f"{word.capitalize()}{'s' * (whole.size > 1)} {', '.join(map(str, whole))}"
                one = DIMENSIONS.get(axes[axis], "hidden unit")
                return (
                    f"{which} of {label} {'are' if whole.size > 1 else 'is'} wrong, the rest is right: a "
                    f"{word} of {label} belongs to one {one} ({count})"
                )
    return count.capitalize()


def _formula(label, spec, net, check, entry):
    canon = spec["as"]
    shape = f"{check['expected_shape']} = {tuple(entry['expected_shape'])}"
    if net is None:
        return H.note(f"{label} must have shape {shape} (your own loss: no formula is known for it).")
    i = int(canon[1:])
    below = "X" if i == 1 else f"A{i - 1}"
    if canon[0] == "W":
        grad = f"dZ{i}.T @ {below}" if spec["transposed"] else f"{below}.T @ dZ{i}"
        grad += f" + {net['l2']:g} * {canon}" if net["l2"] else ""
    else:
        grad = f"dZ{i}{BIAS_SUM[spec['bias']]}"
    stored = " (stored as (out, in): the transpose)" if spec["transposed"] else ""
    return f'<div class="formula">d{html.escape(label)} = {html.escape(grad)}</div>' + H.note(
        f"{label} is {canon} below{stored}; its gradient must have shape {shape}."
    )


def _backward(report):
    net = report["convention"]["net"]
    if net is None:
        return H.section(
            "The backward pass", H.note("Your loss matches no known network: no formula is shown.")
        )
    layers = sum(1 for s in report["convention"]["params"].values() if s["as"][0] == "W")
    out = "P" if net["head"] == "softmax" else "A"
    error = OUTPUT_ERROR.get((net["head"], net["loss"]), f"d loss / d Z{layers} (README: the losses table)")
    mean = " / n" if net["reduction"] == "mean" else ""
    lines = [f"dZ{layers} = ({error}){mean}"]
    for i in range(layers - 1, 0, -1):
        lines.append(f"dZ{i} = (dZ{i + 1} @ W{i + 1}.T) * {DERIVATIVE[net['activation']].format(i=i)}")
    notation = (
        f"For a batch of n samples as rows: X (n, D), T the one-hot targets (n, K), Zi = A(i-1) @ Wi + bi, "
        f"Ai = {net['activation']}(Zi), A0 = X, {out} = {net['head']}(Z{layers}). Code that takes one "
        "sample at a time, or data as columns, computes the same numbers in its own layout."
    )
    body = "".join(f'<div class="formula">{html.escape(s)}</div>' for s in lines)
    return H.section("The backward pass it should compute", H.note(notation) + body)
