"""SVG charts drawn by hand: the learning curves and confusion matrix of a train run and its report.html.

Each chart is a standalone SVG document, a string: a browser shows it as a file or inline in the page.
No matplotlib: importing it and drawing train's three figures took 1.0-1.1 s of an 11 s run on a slow
2-core machine, and report.html's charts 0.22-0.25 s more; these take 0.03 and 0.05 s. Text is laid
out with ``text_width``, an upper bound on the advance of the fonts the charts name
(tests/test_charts.py measures DejaVu Sans and DejaVu Sans Bold, the widest of them).
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
MARK = "#6b7280"  # the dashed line where a run was resumed
RED = "#dc2626"  # a confusion matrix's mistakes
LIMIT = 1e300  # values drawn: |v| <= LIMIT, and v >= 1 / LIMIT on a log axis (beyond: a gap)
SIZE = (560, 330)  # width, height of a line chart (px)
TICK_FONT, LABEL_FONT, TITLE_FONT = 11, 12, 13  # px
# the widest advance of a digit or sign in these fonts, regular and bold (DejaVu Sans: 0.636, 0.696 em)
EM_WIDTH = {False: 0.64, True: 0.70}
MAX_MARKERS = 30  # points drawn as dots up to this many epochs; beyond, a line alone
SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def text_width(text, size, bold=False):
    """The width (px) ``text`` is given at font ``size`` px: an upper bound for digits and signs (and,
    tests/test_charts.py checks, for every title, legend and axis label the charts draw)."""
    return len(text) * EM_WIDTH[bold] * size


def _attrs(attrs):
    """SVG attributes from keywords: fill_opacity= is fill-opacity, class_= is class."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())


def _text(x, y, text, size, anchor="start", **attrs):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{_attrs(attrs)}>'
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
    """(ticks, step) for a log axis over [lo, hi] (0 < lo < hi): powers of ten (step None), with 2 and 5
    times them where the axis spans at most two decades, every k-th power (k | the exponent) where it
    spans more than eight; a linear axis' ticks and step where fewer than two of those fall inside."""
    low, high = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = (1, 2, 5) if high - low <= 2 else (1,)
    stride = max(1, math.ceil((high - low) / 8))
    exponents = range(math.ceil(low / stride) * stride, high + 1, stride)
    ticks = [m * 10.0**e for e in exponents for m in mantissas]
    ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return (ticks, None) if len(ticks) >= 2 else linear_ticks(lo, hi)


def tick_labels(ticks, step=None):
    """The labels of one axis' ticks, distinct and in one style: a linear axis' (``step``) with the
    decimals its step needs (down to 1e-6), a log axis' (step None) in their shortest form (down to
    1e-4); beyond, and from 1e7, in e notation (2e-5, 1.25e8: "+" is as wide as a digit and a half),
    or as 10 with a superscript on a log axis of powers of ten alone."""
    big = max(abs(t) for t in ticks)
    if big < 1e7 and (step >= 1e-6 if step is not None else min(abs(t) for t in ticks) >= 1e-4):
        if step is None:  # 1, 2 or 5 times a power of ten: seven digits print them without an exponent
            return [f"{t:.7g}" for t in ticks]
        return [f"{t:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}" for t in ticks]
    if step is None and all(math.isclose(t, 10.0 ** round(math.log10(t)), rel_tol=1e-9) for t in ticks):
        return ["10" + str(round(math.log10(t))).translate(SUPERSCRIPT) for t in ticks]
    return [_e_notation(t, step) for t in ticks]


def _e_notation(value, step):
    """``value`` as 1.25e8: the significant digits ``step`` needs (three on a log axis), no trailing
    zeros, no "+" or leading zeros in the exponent; 0 as 0."""
    if value == 0:
        return "0"
    digits = (
        3 if step is None else math.floor(math.log10(abs(value))) - math.floor(math.log10(step) + 1e-9) + 1
    )
    mantissa, exponent = f"{value:.{max(digits, 1) - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}e{int(exponent)}"


def _drawable(values, log):
    """The mask of the values an axis can show: finite, within LIMIT, and positive on a log axis."""
    values = np.asarray(values, float)
    with np.errstate(invalid="ignore"):
        shown = np.isfinite(values) & (np.abs(values) <= LIMIT)
        return shown & (values >= 1 / LIMIT) if log else shown


def _value_range(series, log):
    """(lo, hi) of every drawable value, padded by 5% of the span (in decades on a log axis); (0, 1), or
    0.1 to 10 on a log axis, where there is none."""
    values = np.concatenate([np.asarray(v, float).ravel() for _, v in series] or [np.zeros(0)])
    values = values[_drawable(values, log)]
    if values.size == 0:
        return (0.1, 10.0) if log else (0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo > 1e-12 * max(abs(lo), abs(hi)) + 1e-300:
        pad = 0.05 * (hi - lo)
    else:  # one value, or values equal to rounding: a range around them
        pad = 0.5 if log else max(0.05 * abs(lo), 1e-3)
    lo, hi = lo - pad, hi + pad
    return (10.0**lo, 10.0**hi) if log else (lo, hi)


def _y_axis(series, log):
    """(to_y (values -> fraction of the height, from the bottom), [(tick, label)])."""
    lo, hi = _value_range(series, log)
    if log:
        a, b = math.log10(lo), math.log10(hi)
        ticks, step = log_ticks(lo, hi)

        def to_y(v):
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log10(v) - a) / (b - a)

        return to_y, list(zip(ticks, tick_labels(ticks, step), strict=True))
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
        series: [(label, values (epochs,))], at most one per colour of COLORS, drawn in their order; a
            value the axis cannot show (NaN, inf, beyond LIMIT, or on a log axis <= 0) leaves a gap.
            Epochs are 1..len(values).
        ylabel, title: the y axis' label and the chart's title (top left); x is "epoch".
        log: a log y axis.  marks: epochs before which a dashed vertical line is drawn (a resume).
    Returns:
        The SVG document, a string; a legend at the top right names the series when there are several.
    """
    if len(series) > len(COLORS):
        raise ValueError(f"a chart draws at most {len(COLORS)} series; got {len(series)}")
    to_y, yticks = _y_axis(series, log)
    x_lo, x_hi, xticks = _x_axis(max((len(v) for _, v in series), default=1) or 1)
    left = 22 + max(text_width(label, TICK_FONT) for _, label in yticks) + 8  # the y label, the ticks'
    plot = _Plot(left, SIZE[0] - 16, 40, SIZE[1] - 44, (x_lo, x_hi), to_y)
    body = [
        _text(12, 22, title, TITLE_FONT, font_weight="bold", class_="title"),
        *_axes(plot, xticks, yticks, ylabel),
    ]
    for x in plot.x(np.asarray(marks, float) - 0.5):
        body.append(_line(x, x, plot.top, plot.bottom, MARK, stroke_dasharray="5 4"))
    for (_, values), color in zip(series, COLORS[: len(series)], strict=True):
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
        _text((plot.left + plot.right) / 2, SIZE[1] - 8, "epoch", LABEL_FONT, "middle", class_="xlabel"),
        _text(
            0,
            0,
            ylabel,
            LABEL_FONT,
            "middle",
            transform=f"translate(14 {middle:.1f}) rotate(-90)",
            class_="ylabel",
        ),
    ]


def _curve(plot, values, color, log):
    """The polylines of one series (a gap at every value the axis cannot show) and its dots: at every
    point up to MAX_MARKERS epochs, beyond that where a point stands alone between gaps."""
    shown = _drawable(values, log)
    xs, ys = plot.x(np.arange(1, values.size + 1)), plot.y(np.where(shown, values, 1.0))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], shown.astype(np.int8), [0]])))
    runs = [range(start, stop) for start, stop in zip(edges[::2], edges[1::2], strict=True)]
    parts = [
        f'<polyline points="{" ".join(f"{xs[i]:.1f},{ys[i]:.1f}" for i in run)}" fill="none"'
        f' stroke="{color}" stroke-width="2" stroke-linejoin="round"/>'
        for run in runs
    ]
    dots = np.flatnonzero(shown) if values.size <= MAX_MARKERS else [run[0] for run in runs if len(run) == 1]
    return parts + [f'<circle cx="{xs[i]:.1f}" cy="{ys[i]:.1f}" r="3" fill="{color}"/>' for i in dots]


def _legend(labels, right):
    """A swatch and a name per series, right-aligned on the title's row."""
    parts, x = [], right
    for label, color in reversed(list(zip(labels, COLORS[: len(labels)], strict=True))):
        parts.append(_text(x, 22, label, LABEL_FONT, "end", fill=MUTED, class_="legend"))
        x -= text_width(label, LABEL_FONT) + 6
        parts.append(_line(x - 18, x, 18, 18, color, stroke_width=3))
        x -= 18 + 14
    return parts


def _line(x1, x2, y1, y2, stroke, **attrs):
    return f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="{stroke}"{_attrs(attrs)}/>'


# ---------------------------------------------------------------- confusion matrix


def confusion_chart(cm, title):
    """A confusion matrix (K, K) of counts as a heat map: true classes down, predictions across, each
    count written in its cell; a correct cell blue and a mistake red, each as deep as its count against
    the largest of its kind (correct or mistaken), an empty cell grey. An SVG document, a string."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    right = np.eye(k, dtype=bool)
    peaks = {True: max(int(cm[right].max(initial=0)), 1), False: max(int(cm[~right].max(initial=0)), 1)}
    widest = str(int(cm.max(initial=0)))
    font = max(7, TICK_FONT - k // 10)  # smaller counts for many classes
    cell = max(20, min(40, 400 // max(k, 1)), math.ceil(text_width(widest, font)) + 8)  # 3 px either side
    left, top = 56, 62
    width = max(left + k * cell + 16, math.ceil(text_width(title, TITLE_FONT, bold=True)) + 24)
    middle = top + k * cell / 2
    body = [
        _text(12, 22, title, TITLE_FONT, font_weight="bold", class_="title"),
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
    fill = (COLORS[0] if i == j else RED) if n else AXIS  # an empty cell: a faint grey
    return [
        f'<rect x="{x}" y="{y}" width="{side}" height="{side}" rx="3" fill="{fill}"'
        f' fill-opacity="{max(share, 0.06):.3f}"><title>true {i}, predicted {j}: {n}</title></rect>',
        _text(x + side / 2, y + side / 2 + font / 3, str(n), font, "middle", fill=ink, class_="count"),
    ]
