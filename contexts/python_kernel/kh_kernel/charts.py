"""Structured description of a matplotlib figure, for agents that cannot see the picture.

Published with each figure as `application/vnd.kernel-host.chart+json`. The shape follows E2B's
`chart` result (shared/reference/jupyter-and-e2b.md, 1.4):

- every chart: type ("line", "scatter", "bar", "pie", "box_and_whisker", "superchart",
  "unknown"), title, elements;
- 2D charts: x_label, y_label, x_unit, y_unit (parsed from "label (unit)" / "label [unit]");
- line and scatter: x_ticks, x_tick_labels, x_scale, y_ticks, y_tick_labels, y_scale
  (linear, log, symlog, logit, datetime, categorical, ...), elements {label, points: [[x, y]]};
- bar: elements {label, value, group}; pie: {label, angle, radius};
- box_and_whisker: {label, min, first_quartile, median, third_quartile, max, outliers};
- superchart (several axes): elements = one chart per axes, title = the figure's suptitle.
Dates become ISO 8601 strings, categories stay strings, numbers are floats.
"""
import datetime
import math
import re

from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch, Rectangle, Wedge
from matplotlib.text import Text

_UNIT = re.compile(r"\s\((.*?)\)|\[(.*?)\]")


def figure_to_chart(fig):
    axes = fig.get_axes()
    if not axes:
        return {}
    if len(axes) > 1:
        suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
        return {"type": "superchart", "title": suptitle or None,
                "elements": [axes_to_chart(ax) for ax in axes]}
    return axes_to_chart(axes[0])


def axes_to_chart(ax):
    kind = chart_type(ax)
    builder = {
        "line": _line_chart,
        "scatter": _scatter_chart,
        "bar": _bar_chart,
        "pie": _pie_chart,
        "box_and_whisker": _box_chart,
    }.get(kind)
    if builder is None:
        return {"type": kind, "title": ax.get_title() or None, "elements": []}
    return builder(ax)


def _children(ax):
    children = getattr(ax, "_children", None)
    if children is None:
        children = list(ax.lines) + list(ax.patches) + list(ax.collections)
    return [c for c in children if not isinstance(c, Text)]


def _is_grid_line(line):
    """A straight horizontal or vertical reference line (axhline, axvline, grid-like)."""
    x, y = line.get_xdata(), line.get_ydata()
    try:
        return len(x) == 2 and len(y) == 2 and (x[0] == x[1] or y[0] == y[1])
    except Exception:
        return False


def chart_type(ax):
    objects = _children(ax)
    if all(isinstance(o, Line2D) for o in objects):
        return "line"
    if all(isinstance(o, (PathPatch, Line2D)) for o in objects):
        return "box_and_whisker"
    objects = [o for o in objects if not (isinstance(o, Line2D) and _is_grid_line(o))]
    if all(isinstance(o, PathCollection) for o in objects):
        return "scatter"
    if all(isinstance(o, Wedge) for o in objects):
        return "pie"
    if all(isinstance(o, Rectangle) for o in objects):
        return "bar"
    return "unknown"


# ---- values ------------------------------------------------------------------------------

def _axis_kind(axis):
    converter = getattr(axis, "converter", None)
    module = type(converter).__module__ if converter is not None else ""
    if module == "matplotlib.dates":
        return "datetime"
    if module == "matplotlib.category":
        return "categorical"
    return "number"


def _value(v, kind="number"):
    """A JSON-able value for a data coordinate."""
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if type(v).__name__ == "datetime64":
        return str(v.astype("datetime64[s]"))
    if isinstance(v, str):
        return v
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if kind == "datetime" and isinstance(v, (int, float)):
        from matplotlib.dates import num2date
        return num2date(v).isoformat()
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    return str(v)


def _scale(ax, which):
    axis = ax.xaxis if which == "x" else ax.yaxis
    kind = _axis_kind(axis)
    if kind in ("datetime", "categorical"):
        return kind
    return ax.get_xscale() if which == "x" else ax.get_yscale()


def _ticks(ax, which):
    axis = ax.xaxis if which == "x" else ax.yaxis
    kind = _axis_kind(axis)
    ticks = ax.get_xticks() if which == "x" else ax.get_yticks()
    labels = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    return [_value(t, kind) for t in ticks], [label.get_text() for label in labels]


def _base(ax, kind):
    chart = {"type": kind, "title": ax.get_title() or None}
    for which in ("x", "y"):
        label = (ax.get_xlabel() if which == "x" else ax.get_ylabel()) or None
        unit = None
        if label:
            match = _UNIT.search(label)
            if match:
                unit = match.group(1) or match.group(2)
        chart[f"{which}_label"] = label
        chart[f"{which}_unit"] = unit
    return chart


def _planar(ax, kind):
    chart = _base(ax, kind)
    for which in ("x", "y"):
        ticks, labels = _ticks(ax, which)
        chart[f"{which}_ticks"] = ticks
        chart[f"{which}_tick_labels"] = labels
        chart[f"{which}_scale"] = _scale(ax, which)
    chart["elements"] = []
    return chart


def _label(artist, prefix, default_prefix):
    label = artist.get_label() or ""
    if label.startswith(prefix):
        suffix = label[len(prefix):]
        return f"{default_prefix} {suffix}" if suffix.isdigit() else default_prefix
    return label


# ---- chart types -------------------------------------------------------------------------

def _line_chart(ax):
    chart = _planar(ax, "line")
    xkind = _axis_kind(ax.xaxis)
    ykind = _axis_kind(ax.yaxis)
    for line in ax.get_lines():
        xs = line.get_xdata(orig=True)
        ys = line.get_ydata(orig=True)
        chart["elements"].append({
            "label": _label(line, "_child", "Line"),
            "points": [[_value(x, xkind), _value(y, ykind)] for x, y in zip(xs, ys)],
        })
    return chart


def _scatter_chart(ax):
    chart = _planar(ax, "scatter")
    xkind = _axis_kind(ax.xaxis)
    ykind = _axis_kind(ax.yaxis)
    for collection in ax.collections:
        offsets = collection.get_offsets()
        chart["elements"].append({
            "label": _label(collection, "_child", "Series"),
            "points": [[_value(x, xkind), _value(y, ykind)] for x, y in offsets],
        })
    return chart


def _tick_label_at(ticks, labels, position):
    for tick, label in zip(ticks, labels):
        try:
            if abs(float(tick) - position) < 1e-9 and label:
                return label
        except (TypeError, ValueError):
            continue
    return None


def _bar_chart(ax):
    chart = _base(ax, "bar")
    elements = []
    containers = [c for c in ax.containers if hasattr(c, "patches")]
    for index, container in enumerate(containers):
        group = _label(container, "_container", "Group")
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        ticks = ax.get_yticks() if horizontal else ax.get_xticks()
        labels = [t.get_text() for t in (ax.get_yticklabels() if horizontal else ax.get_xticklabels())]
        for rect in container.patches:
            if horizontal:
                center, value = rect.get_y() + rect.get_height() / 2, rect.get_width()
            else:
                center, value = rect.get_x() + rect.get_width() / 2, rect.get_height()
            label = _tick_label_at(ticks, labels, center) or _value(center)
            elements.append({"label": str(label), "value": _value(value), "group": group})
        if horizontal and index == 0:
            # As in E2B: x_* describe the categories, y_* the values.
            chart["x_label"], chart["y_label"] = chart["y_label"], chart["x_label"]
            chart["x_unit"], chart["y_unit"] = chart["y_unit"], chart["x_unit"]
    chart["elements"] = elements
    return chart


def _pie_chart(ax):
    chart = {"type": "pie", "title": ax.get_title() or None, "elements": []}
    for wedge in ax.patches:
        if not isinstance(wedge, Wedge):
            continue
        chart["elements"].append({
            "label": wedge.get_label(),
            "angle": round(abs(wedge.theta2 - wedge.theta1), 6),
            "radius": _value(wedge.r),
        })
    return chart


def _box_chart(ax):
    chart = _base(ax, "box_and_whisker")
    boxes = []
    for patch in ax.patches:
        if not isinstance(patch, PathPatch):
            continue
        verts = patch.get_path().vertices
        boxes.append({"x0": float(verts[:, 0].min()), "x1": float(verts[:, 0].max()),
                      "y0": float(verts[:, 1].min()), "y1": float(verts[:, 1].max()),
                      "median": None, "low": None, "high": None, "outliers": []})
    if not boxes:
        chart["elements"] = []
        return chart
    # Vertical boxes share their width; horizontal boxes share their height.
    vertical = len({round(b["x1"] - b["x0"], 9) for b in boxes}) <= len({round(b["y1"] - b["y0"], 9) for b in boxes})
    if not vertical:
        for b in boxes:
            b["x0"], b["y0"], b["x1"], b["y1"] = b["y0"], b["x0"], b["y1"], b["x1"]
        chart["x_label"], chart["y_label"] = chart["y_label"], chart["x_label"]
        chart["x_unit"], chart["y_unit"] = chart["y_unit"], chart["x_unit"]
    for line in ax.get_lines():
        xs = [float(v) for v in line.get_xdata()]
        ys = [float(v) for v in line.get_ydata()]
        if not vertical:
            xs, ys = ys, xs
        if not xs:
            continue
        box = next((b for b in boxes if b["x0"] - 1e-9 <= min(xs) and max(xs) <= b["x1"] + 1e-9), None)
        if box is None:
            continue
        if line.get_linestyle() in ("None", "none", " ", "") and line.get_marker() not in (None, "None", ""):
            box["outliers"].extend(ys)
        elif len(ys) == 2 and ys[0] == ys[1] and box["y0"] <= ys[0] <= box["y1"] and \
                abs((xs[1] - xs[0]) - (box["x1"] - box["x0"])) < 1e-9:
            box["median"] = ys[0]
        elif len(ys) == 2 and ys[0] != ys[1]:
            lo, hi = min(ys), max(ys)
            if abs(hi - box["y0"]) < 1e-9:
                box["low"] = lo
            elif abs(lo - box["y1"]) < 1e-9:
                box["high"] = hi
    ticks = ax.get_xticks() if vertical else ax.get_yticks()
    labels = [t.get_text() for t in (ax.get_xticklabels() if vertical else ax.get_yticklabels())]
    chart["elements"] = [{
        "label": _tick_label_at(ticks, labels, (b["x0"] + b["x1"]) / 2) or str(i + 1),
        "min": b["low"] if b["low"] is not None else b["y0"],
        "first_quartile": b["y0"],
        "median": b["median"],
        "third_quartile": b["y1"],
        "max": b["high"] if b["high"] is not None else b["y1"],
        "outliers": b["outliers"],
    } for i, b in enumerate(boxes)]
    return chart
