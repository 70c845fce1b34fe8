"""The hand-drawn SVG charts: valid documents that draw every value where their axes say, keep every
label inside, and lay text out with widths no font they name exceeds."""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpnn_jax import charts

NS = {"s": "http://www.w3.org/2000/svg"}
SUPERSCRIPTS = {chr(v): chr(k) for k, v in charts.SUPERSCRIPT.items()}  # superscript: its digit
STEPS = np.geomspace(1e-3, 1e-7, 20)
CHARTS = {  # name: (series, log)
    "two epochs": ([("train", [0.7543, 0.5706]), ("test", [0.1817, 0.1689])], False),
    "one epoch": ([("test", [97.33])], False),
    "notebook sums, log": (
        [("train", np.geomspace(140016, 30000, 2000)), ("test", np.geomspace(1e5, 2e4, 2000))],
        True,
    ),
    "sub-decade log": ([("train", [1.9, 1.5, 1.1])], True),
    "learning rate, log": ([("lr", STEPS)], True),
    "gaps": ([("lr", [1e-3, 1e-3, 1e-3, np.nan, 5e-4, 5e-4, np.inf, 5e-4])], False),
    "negative small": ([("train", [5e-4, 3e-4, -4e-4]), ("test", [1e-4, 2e-4, 3e-4])], False),
    "huge": ([("train", [1.4e8, 3e7, 2.2e7])], False),
    "tiny": ([("train", [5e-6, 3e-6, 1e-6])], False),
    "constant": ([("validation", [98.0] * 5), ("test", [98.0] * 5)], False),
    "zero constant": ([("train", [0.0, 0.0])], False),
    "nothing finite": ([("train", [np.nan, np.nan])], True),
    "log with zeros": ([("train", [1.0, 0.0, 0.1, -1.0])], True),
}


def parse(document):
    root = ET.fromstring(document)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def number(label):
    """The value a tick label names: plain, e notation, or 10 with a superscript exponent."""
    if label.startswith("10") and any(c in SUPERSCRIPTS for c in label[2:]) and len(label) > 2:
        return 10.0 ** int("".join(SUPERSCRIPTS[c] for c in label[2:]))
    return float(label)


def texts(root):
    return [
        (t, float(t.get("x")), float(t.get("y")), int(t.get("font-size")))
        for t in root.iter(f"{{{NS['s']}}}text")
    ]


def y_ticks(root):
    """[(pixel y, value)] of the y axis' tick labels (right-aligned, left of the plot)."""
    return [(y - 4, number(t.text)) for t, _, y, _ in texts(root) if t.get("class") == "ytick"]


def x_ticks(root):
    return [(x, int(t.text)) for t, x, _, _ in texts(root) if t.get("class") == "xtick"]


def points(root):
    """[(x, y)] of every point drawn: the polylines' vertices and the dots."""
    found = [
        tuple(map(float, p.split(",")))
        for line in root.iter(f"{{{NS['s']}}}polyline")
        for p in line.get("points").split()
    ]
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{{{NS['s']}}}circle")]
    return found, dots


def axis(ticks, log=False):
    """value -> pixel along an axis, as its first and last tick labels [(pixel, value)] fix it."""
    (p0, v0), (p1, v1) = ticks[0], ticks[-1]
    f = math.log10 if log else float
    return lambda v: p0 + (f(v) - f(v0)) / (f(v1) - f(v0)) * (p1 - p0)


@pytest.mark.parametrize("name", CHARTS)
def test_every_value_is_drawn_where_the_axes_say(name):
    series, log = CHARTS[name]
    root = parse(charts.line_chart(series, "loss", "Loss", log=log))
    yt, xt = y_ticks(root), x_ticks(root)
    assert len(yt) >= 2, "an axis needs two ticks to be read"
    assert [v for _, v in yt] == sorted(v for _, v in yt)  # written from the bottom up
    assert [p for p, _ in yt] == sorted((p for p, _ in yt), reverse=True)
    y_of = axis(yt, log)
    x_of = axis(xt) if len(xt) >= 2 else (lambda epoch: xt[0][0])  # one epoch: its one tick
    line, dots = points(root)
    expected = [
        (e + 1, v)
        for _, values in series
        for e, v in enumerate(np.asarray(values, float))
        if np.isfinite(v) and (v > 0 or not log)
    ]
    assert len(line) == len(expected)
    assert len(dots) == (len(expected) if len(expected) <= charts.MAX_MARKERS else 0)
    # every coordinate is written to 0.1 px: a point, and each of the two ticks that fix the axis, is
    # off by at most 0.05 px, so the point lies within 0.05 + 2 x 0.05 of where its value belongs
    for (x, y), (epoch, value) in zip(line, expected, strict=True):
        assert abs(x - x_of(epoch)) <= 0.16 and abs(y - y_of(value)) <= 0.16, (epoch, value)


@pytest.mark.parametrize("name", CHARTS)
def test_every_label_inside_the_chart(name):
    series, log = CHARTS[name]
    document = charts.line_chart(
        series, "cross-entropy, sum over images", "Cross-entropy", log=log, marks=[2]
    )
    root = parse(document)
    width, height = charts.SIZE
    for t, x, y, size in texts(root):
        w = charts.text_width(t.text, size, bold=t.get("font-weight") == "bold")
        if t.get("transform"):  # the y label, centred on (x, y) of translate(x y) and turned upright
            x, y = map(float, t.get("transform").split("(")[1].split(")")[0].split())
            assert size <= x + size / 2 and y - w / 2 >= 0 and y + w / 2 <= height, t.text
            continue
        start = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor")]
        assert start >= 0 and start + w <= width and y - size >= 0 and y <= height, t.text
    line, dots = points(root)
    assert all(0 < x < width and 0 < y < height for x, y in line + dots)


# the titles and axis labels the project draws (report.py, runs.py), beside the tick labels and legends
WORDS = [
    ("Loss", "ce loss (mean)"),
    ("Accuracy", "accuracy (%)"),
    ("Learning rate", "at the epoch's last step"),
    ("Cross-entropy", "Cross-entropy, sum over images"),
    ("KL divergence", "KL divergence, sum over images"),
    ("Confusion matrix (accuracy 98.16%)", "predicted"),
    ("Loss (train: smoothed targets, eps 0.1)", "focal loss (mean)"),
]


def test_text_is_never_wider_than_laid_out():
    """text_width bounds the width of every tick label, legend, title and axis label drawn, in DejaVu
    Sans and DejaVu Sans Bold (the widest fonts the charts name), unhinted as a browser lays SVG out."""
    from matplotlib import font_manager, ft2font

    fonts = {
        b: ft2font.FT2Font(
            font_manager.findfont(
                font_manager.FontProperties(family="DejaVu Sans", weight="bold" if b else "normal")
            )
        )
        for b in (False, True)
    }
    unhinted = ft2font.LoadFlags.NO_HINTING if hasattr(ft2font, "LoadFlags") else ft2font.LOAD_NO_HINTING
    documents = [
        charts.line_chart(series, ylabel, title, log=log)
        for (series, log), (title, ylabel) in zip(CHARTS.values(), WORDS * 2, strict=False)
    ]
    documents.append(charts.confusion_chart(np.full((10, 10), 1135), WORDS[5][0]))
    drawn = {
        (t.text, size, t.get("font-weight") == "bold") for d in documents for t, _, _, size in texts(parse(d))
    }
    drawn |= {(t, charts.TICK_FONT, False) for t in ["-0.0004", "-2.5e-5", "1.2501e8", "10\u207b\u2077"]}
    assert {bold for *_, bold in drawn} == {False, True}
    for text, size, bold in drawn:
        fonts[bold].set_size(size, 72)  # 72 dpi: a point is a pixel
        fonts[bold].set_text(text, 0, flags=unhinted)
        assert fonts[bold].get_width_height()[0] / 64 <= charts.text_width(text, size, bold), text


def test_a_gap_splits_the_line():
    series, log = CHARTS["gaps"]
    root = parse(charts.line_chart(series, "lr", "Learning rate", log=log))
    lines = list(root.iter(f"{{{NS['s']}}}polyline"))
    assert [len(line.get("points").split()) for line in lines] == [3, 2, 1]


def test_a_legend_names_several_series_and_marks_are_dashed():
    root = parse(charts.line_chart(CHARTS["two epochs"][0], "loss", "Loss", marks=[2]))
    words = [t.text for t, *_ in texts(root)]
    assert "train" in words and "test" in words
    dashed = [line for line in root.iter(f"{{{NS['s']}}}line") if line.get("stroke-dasharray")]
    assert len(dashed) == 1
    single = [t.text for t, *_ in texts(parse(charts.line_chart(CHARTS["one epoch"][0], "acc", "Accuracy")))]
    assert "test" not in single  # one series: its name is the title's


def test_text_is_escaped():
    root = parse(charts.line_chart([("a<b", [1, 2]), ("c&d", [2, 1])], 'x & "y"', "<Loss>"))
    assert root.find("s:title", NS).text == "<Loss>"
    words = [t.text for t, *_ in texts(root)]
    assert {'x & "y"', "a<b", "c&d", "<Loss>"} <= set(words)


def test_a_fourth_series_is_refused_not_dropped():
    with pytest.raises(ValueError, match="at most 3 series"):
        charts.line_chart([(str(i), [1, 2]) for i in range(4)], "y", "t")


def test_a_point_alone_between_gaps_is_a_dot_at_any_length():
    root = parse(charts.line_chart([("lr", [np.nan] * 49 + [1e-3])], "lr", "Learning rate"))
    assert len(list(root.iter(f"{{{NS['s']}}}circle"))) == 1


@pytest.mark.parametrize(
    "values", [[1e308, -1e308], [5e-324, 1e-323], [0.0, 5e-324], [1e-320, 1e-300, 1.0], [1e301, 1.0]]
)
@pytest.mark.parametrize("log", [False, True])
def test_extreme_values_draw_or_leave_a_gap(values, log):
    """Values past LIMIT (or below 1 / LIMIT on a log axis) are gaps; the rest is drawn with two ticks."""
    root = parse(charts.line_chart([("train", values)], "loss", "Loss", log=log))
    assert len(y_ticks(root)) >= 2
    line, _ = points(root)
    drawable = [v for v in values if abs(v) <= charts.LIMIT and (not log or v >= 1 / charts.LIMIT)]
    assert len(line) == len(drawable)


def test_confusion_chart_writes_every_count_in_its_cell():
    cm = np.arange(100).reshape(10, 10) * 137
    root = parse(charts.confusion_chart(cm, "Confusion matrix (accuracy 98.16%)"))
    cells = list(root.iter(f"{{{NS['s']}}}rect"))[1:]  # the first is the background
    assert [c.find("s:title", NS).text for c in cells[:2]] == [
        "true 0, predicted 0: 0",
        "true 0, predicted 1: 137",
    ]
    counts = [t for t, *_ in texts(root) if t.get("class") == "count"]
    assert [int(t.text) for t in counts] == cm.ravel().tolist()
    side = float(cells[0].get("width"))
    for t in counts:
        assert charts.text_width(t.text, int(t.get("font-size"))) <= side
    shades = np.array([float(c.get("fill-opacity")) for c in cells]).reshape(10, 10)
    right = np.eye(10, dtype=bool)
    assert {c.get("fill") for c in cells[11::11]} == {charts.COLORS[0]} and cells[1].get("fill") == charts.RED
    assert shades[right].argmax() == 9 and shades[~right].argmax() == 89 and shades.max() == 1  # per kind


@pytest.mark.parametrize("k", [1, 30])
def test_confusion_chart_fits_counts_of_any_size(k):
    cm = np.full((k, k), 7) + np.diag(np.full(k, 99_990))  # five-digit counts
    root = parse(charts.confusion_chart(cm, "Confusion matrix"))
    cells = list(root.iter(f"{{{NS['s']}}}rect"))[1:]
    counts = [t for t, *_ in texts(root) if t.get("class") == "count"]
    assert len(cells) == len(counts) == k * k and [int(t.text) for t in counts] == cm.ravel().tolist()
    side = float(cells[0].get("width"))
    assert all(charts.text_width(t.text, int(t.get("font-size"))) <= side - 4 for t in counts)


@given(
    st.floats(-1e6, 1e6), st.floats(1e-6, 1e6), st.integers(5, 10)
)  # 5: at least two ticks (a step is at most 2.5x the least)
def test_nice_ticks(lo, span, count):
    hi = lo + span
    span = hi - lo  # as rounded
    ticks, step = charts.linear_ticks(lo, hi, count)
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    assert round(mantissa, 6) in (1, 2, 5)
    assert span / step <= count
    assert len(ticks) >= 2
    assert lo - 1e-9 * abs(lo) - 1e-9 * step <= ticks[0] and ticks[-1] <= lo + span + 1e-9 * (abs(lo) + step)
    assert np.allclose(np.diff(ticks), step)
    labels = charts.tick_labels(ticks, step)
    assert len(set(labels)) == len(labels)  # distinct, and each names its tick to within half a step
    assert all(abs(number(label) - t) <= step / 2 for label, t in zip(labels, ticks, strict=True))


@given(st.floats(-30, 30), st.floats(0.01, 30))
def test_log_ticks(low, decades):
    lo, hi = 10.0**low, 10.0 ** (low + decades)
    ticks, step = charts.log_ticks(lo, hi)
    assert 2 <= len(ticks) <= 30
    assert all(lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9) for t in ticks)
    labels = charts.tick_labels(ticks, step)
    assert len(set(labels)) == len(labels)
    tolerance = (lambda t: step / 2) if step else (lambda t: 1e-2 * t)
    assert all(abs(number(label) - t) <= tolerance(t) for label, t in zip(labels, ticks, strict=True))
