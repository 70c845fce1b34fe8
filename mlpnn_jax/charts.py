"""SVG charts drawn by hand: the learning curves and confusion matrix of a train run and its report.html.

Each chart is a standalone SVG document, a string: a browser shows it as a file or inline in the page.
No matplotlib: importing it and drawing train's three figures took 1.0-1.1 s of an 11 s run on a slow
2-core machine, and report.html's charts 0.22-0.25 s more; these take 0.03 and 0.05 s. Text is laid
out with ``text_width``, an upper bound on the advance of the fonts the charts name
(tests/test_charts.py measures DejaVu Sans, the widest of them).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Callable

import numpy as np

FONT = "system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,'DejaVu Sans',sans-serif"
COLORS = ("#2563eb", "#ea580c", "#16a34a")  # blue, orange, green: one per series, in order
INK, MUTED, GRID, AXIS = "#111827", "#4b5563", "#e5e7eb", "#9ca3af"
RED = "#dc2626"  # a confusion matrix's mistakes
SIZE = (560, 330)  # width, height of a line chart (px)
TICK_FONT, LABEL_FONT, TITLE_FONT = 11, 12, 13  # px
EM_WIDTH = 0.64  # the widest advance of a digit or sign in these fonts (DejaVu Sans' digits: 0.636 em)
MAX_MARKERS = 30  # points drawn as dots up to this many epochs; beyond, a line alone
SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def text_width(text, size):
    """The width (px) ``text`` is given at font ``size`` px: an upper bound for digits and signs, and
    room to spare for the lower-case words of titles and legends."""
    return len(text) * EM_WIDTH * size


def _text(x, y, text, size, anchor="start", **attrs):
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{html.escape(text)}</text>"
    )


def _document(width, height, title, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" font-family="{html.escape(FONT)}" fill="{INK}">'
        f"<title>{html.escape(title)}</title>"
        f'<rect width="{width}" height="{height}" fill="#fff"/>{"".join(body)}</svg>'
    )


# ---------------------------------------------------------------- ticks


def nice_step(span, count):
    """The smallest 1, 2 or 5 times a power of ten that cuts ``span`` (> 0) into at most ``count`` steps."""
    base = 10.0 ** math.floor(math.log10(span / count))
    return next(m * base for m in (1, 2, 5, 10) if span / (m * base) <= count)


def linear_ticks(lo, hi, count=6):
    """(ticks, step): the multiples of a nice step in [lo, hi]."""
    step = nice_step(hi - lo, count)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)], step


def log_ticks(lo, hi):
    """Ticks for a log axis over [lo, hi] (0 < lo < hi): powers of ten, with 2 and 5 times them where
    the axis spans at most two decades, every k-th power where it spans more than eight; a linear
    axis' ticks where fewer than two of those fall inside (e.g. 1.1 to 1.9)."""
    low, high = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = (1, 2, 5) if high - low <= 2 else (1,)
    stride = max(1, math.ceil((high - low) / 8))
    ticks = [m * 10.0**e for e in range(low, high + 1, stride) for m in mantissas]
    ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return ticks if len(ticks) >= 2 else linear_ticks(lo, hi)[0]


def tick_labels(ticks, step=None):
    """The labels of one axis' ticks, in one style: fixed decimals enough for a linear axis' ``step``,
    or the shortest form of each tick (log axes); outside 1e-4..1e7, powers of ten as 10 with a
    superscript and other values in e notation."""
    plain = all(t == 0 or 1e-4 <= abs(t) < 1e7 for t in ticks) and (step is None or step >= 1e-4)
    if plain and step is not None:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return [f"{t:.{decimals}f}" for t in ticks]
    return [f"{t:.6g}" if plain else _power(t) for t in ticks]


def _power(value):
    """10 with a superscript exponent for a power of ten, else e notation without + or leading zeros
    (2e-5, 1.4e8: "+" is as wide as a digit and a half)."""
    if value == 0:
        return "0"
    exponent = round(math.log10(abs(value)))
    if value > 0 and math.isclose(value, 10.0**exponent, rel_tol=1e-9):
        return "10" + str(exponent).translate(SUPERSCRIPT)
    text = f"{value:.3g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def _value_range(series, log):
    """(lo, hi) of every finite value (positive on a log axis), padded by 5% of the span (in decades on a
    log axis); (0, 1), or 0.1 to 10 on a log axis, where there is none."""
    values = np.concatenate([np.asarray(v, float).ravel() for _, v in series] or [np.zeros(0)])
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        return (0.1, 10.0) if log else (0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = 0.05 * (hi - lo) if hi > lo else max(0.05 * abs(lo), 0.5 if log else 1e-3)
    lo, hi = lo - pad, hi + pad
    return (10.0**lo, 10.0**hi) if log else (lo, hi)


def _y_axis(series, log):
    """(to_y (values -> fraction of the height, from the bottom), [(tick, label)])."""
    lo, hi = _value_range(series, log)
    if log:
        a, b = math.log10(lo), math.log10(hi)
        ticks = log_ticks(lo, hi)

        def to_y(v):
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log10(v) - a) / (b - a)

        return to_y, list(zip(ticks, tick_labels(ticks), strict=True))
    ticks, step = linear_ticks(lo, hi)
    labels = tick_labels(ticks, step)
    return (lambda v: (np.asarray(v, float) - lo) / (hi - lo)), list(zip(ticks, labels, strict=True))


def _x_axis(epochs):
    """(lo, hi, ticks) of an epoch axis 1..epochs: integer ticks, the ends padded half an epoch or 5%."""
    pad = max(0.5, 0.05 * (epochs - 1))
    step = max(1, int(nice_step(max(epochs - 1, 1), 8)))
    return 1 - pad, epochs + pad, list(range(step, epochs + 1, step)) if epochs > 1 else [1]


# ---------------------------------------------------------------- line chart


@dataclasses.dataclass(frozen=True)
class _Plot:
    """Where a line chart draws: its plot area (px) and the axes' ranges mapped onto it."""

    left: float
    right: float
    top: float
    bottom: float
    epochs: tuple[float, float]  # the x axis' ends
    to_y: Callable  # values -> their height on the y axis, 0 at its bottom and 1 at its top

    def x(self, epochs):
        lo, hi = self.epochs
        return self.left + (np.asarray(epochs, float) - lo) / (hi - lo) * (self.right - self.left)

    def y(self, values):
        return self.bottom - self.to_y(values) * (self.bottom - self.top)


def line_chart(series, ylabel, title, log=False, marks=()):
    """A line chart of values per epoch.

    Args:
        series: [(label, values (epochs,))], drawn in COLORS' order; a NaN (or, on a log axis, a value
            <= 0) leaves a gap. Epochs are 1..len(values).
        ylabel, title: the y axis' label and the chart's title (top left); x is "epoch".
        log: a log y axis.  marks: epochs before which a dashed vertical line is drawn (a resume).
    Returns:
        The SVG document, a string; a legend at the top right names the series when there are several.
    """
    to_y, yticks = _y_axis(series, log)
    x_lo, x_hi, xticks = _x_axis(max((len(v) for _, v in series), default=1) or 1)
    left = 22 + max(text_width(label, TICK_FONT) for _, label in yticks) + 8  # the y label, the ticks'
    plot = _Plot(left, SIZE[0] - 16, 40, SIZE[1] - 44, (x_lo, x_hi), to_y)
    body = [_text(12, 22, title, TITLE_FONT, font_weight="bold"), *_axes(plot, xticks, yticks, ylabel)]
    for x in plot.x(np.asarray(marks, float) - 0.5):
        body.append(_line(x, x, plot.top, plot.bottom, "#6b7280", stroke_dasharray="5 4"))
    for (_, values), color in zip(series, COLORS, strict=False):
        body.extend(_curve(plot, np.asarray(values, float), color, log))
    if len(series) > 1:
        body.extend(_legend([label for label, _ in series], plot.right))
    return _document(*SIZE, title, body)


def _axes(plot, xticks, yticks, ylabel):
    """The grid, the tick labels, the left and bottom spines and the two axis labels."""
    parts = []
    for tick, label in yticks:
        y = float(plot.y(tick))
        parts.append(_line(plot.left, plot.right, y, y, GRID))
        parts.append(_text(plot.left - 6, y + 4, label, TICK_FONT, "end", fill=MUTED, class_="ytick"))
    for tick in xticks:
        x = float(plot.x(tick))
        parts.append(_line(x, x, plot.top, plot.bottom, GRID))
        parts.append(_text(x, plot.bottom + 16, str(tick), TICK_FONT, "middle", fill=MUTED, class_="xtick"))
    middle = (plot.top + plot.bottom) / 2
    return [
        *parts,
        f'<path d="M{plot.left:.1f} {plot.top}V{plot.bottom}H{plot.right}" fill="none" stroke="{AXIS}"/>',
        _text((plot.left + plot.right) / 2, SIZE[1] - 8, "epoch", LABEL_FONT, "middle"),
        _text(0, 0, ylabel, LABEL_FONT, "middle", transform=f"translate(14 {middle:.1f}) rotate(-90)"),
    ]


def _curve(plot, values, color, log):
    """The polylines of one series (a gap at every value the axis cannot show) and its dots."""
    shown = np.isfinite(values) & ((values > 0) if log else True)
    xs, ys = plot.x(np.arange(1, values.size + 1)), plot.y(np.where(shown, values, 1.0))
    parts, run = [], []
    for i in range(values.size + 1):
        if i < values.size and shown[i]:
            run.append(f"{xs[i]:.1f},{ys[i]:.1f}")
        elif run:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"'
                ' stroke-linejoin="round"/>'
            )
            run = []
    if values.size <= MAX_MARKERS:
        dots = np.flatnonzero(shown)
        parts += [f'<circle cx="{xs[i]:.1f}" cy="{ys[i]:.1f}" r="3" fill="{color}"/>' for i in dots]
    return parts


def _legend(labels, right):
    """A swatch and a name per series, right-aligned on the title's row."""
    parts, x = [], right
    for label, color in reversed(list(zip(labels, COLORS, strict=False))):
        parts.append(_text(x, 22, label, LABEL_FONT, "end", fill=MUTED, class_="legend"))
        x -= text_width(label, LABEL_FONT) + 6
        parts.append(_line(x - 18, x, 18, 18, color, stroke_width=3))
        x -= 18 + 14
    return parts


def _line(x1, x2, y1, y2, stroke, **attrs):
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="{stroke}"{extra}/>'


# ---------------------------------------------------------------- confusion matrix


def confusion_chart(cm, title):
    """A confusion matrix (K, K) as a heat map, as report.html's table draws it: true classes down,
    predictions across, each count written in its cell; a correct cell blue and a mistake red, each as
    deep as its count is large among its kind. An SVG document, a string."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    right = np.eye(k, dtype=bool)
    peaks = {True: max(int(cm[right].max(initial=0)), 1), False: max(int(cm[~right].max(initial=0)), 1)}
    cell = max(20, min(40, 400 // max(k, 1)))
    font = TICK_FONT  # the largest count fits its cell, with 4 px to spare
    while font > 6 and text_width(str(int(cm.max(initial=0))), font) > cell - 6:
        font -= 1
    left, top = 56, 62
    width = max(left + k * cell + 16, int(text_width(title, TITLE_FONT)) + 24)
    middle = top + k * cell / 2
    body = [
        _text(12, 22, title, TITLE_FONT, font_weight="bold"),
        _text(left + k * cell / 2, 42, "predicted", LABEL_FONT, "middle"),
        _text(0, 0, "true", LABEL_FONT, "middle", transform=f"translate(16 {middle:.1f}) rotate(-90)"),
    ]
    for i in range(k):
        body.append(_text(left - 8, top + (i + 0.5) * cell + 4, str(i), TICK_FONT, "end", fill=MUTED))
        body.append(_text(left + (i + 0.5) * cell, top - 6, str(i), TICK_FONT, "middle", fill=MUTED))
        for j in range(k):
            share = int(cm[i, j]) / peaks[i == j]
            body.extend(_cell(left + j * cell, top + i * cell, cell - 2, (i, j, int(cm[i, j])), share, font))
    return _document(width, top + k * cell + 16, title, body)


def _cell(x, y, side, count, share, font):
    """One cell of the heat map, ``count`` (true, predicted, n): a square tinted by ``share`` (blue where
    true == predicted, else red; grey where n is 0), with n written in it."""
    i, j, n = count
    ink = "#fff" if share > 0.55 else (INK if n else AXIS)
    fill = (COLORS[0] if i == j else RED) if n else "#9ca3af"  # an empty cell: a faint grey
    return [
        f'<rect x="{x}" y="{y}" width="{side}" height="{side}" rx="3" fill="{fill}"'
        f' fill-opacity="{max(share, 0.06):.3f}"><title>true {i}, predicted {j}: {n}</title></rect>',
        _text(x + side / 2, y + side / 2 + font / 3, str(n), font, "middle", fill=ink, class_="count"),
    ]
