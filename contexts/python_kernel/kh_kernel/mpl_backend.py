"""matplotlib backend of kernel-host-python (`module://kh_kernel.mpl_backend`).

Figures are rendered with Agg. When a cell ends, every open pyplot figure is sent as
display_data (PNG by default, SVG if kh_kernel.figure_formats says so) together with a chart
description (`application/vnd.kernel-host.chart+json`, see charts.py), then closed;
plt.show() does the same at once. The kernel selects this backend when matplotlib is imported,
unless MPLBACKEND is set.
"""
import io
import weakref

import matplotlib
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

CHART_MIME = "application/vnd.kernel-host.chart+json"
BACKEND = "module://kh_kernel.mpl_backend"

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase
backend_version = "kernel-host"

# Figures already displayed during the current cell (by display(fig) or as a result).
_shown = weakref.WeakSet()


def mark_shown(fig):
    _shown.add(fig)


def figure_bundle(fig):
    """(data, metadata) for a figure: image(s), text/plain and the chart description."""
    from kh_kernel import figure_formats
    data = {"text/plain": repr(fig)}
    if "png" in figure_formats or not figure_formats:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        import base64
        data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
    if "svg" in figure_formats:
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        data["image/svg+xml"] = buf.getvalue().decode("utf-8")
    try:
        from kh_kernel import charts
        chart = charts.figure_to_chart(fig)
        if chart:
            data[CHART_MIME] = chart
    except Exception as exc:  # a chart description must never cost the picture
        import _kh_native
        _kh_native.log(f"chart description failed: {exc!r}")
    return data, {}


def _display_open_figures(skip_shown):
    from kh_kernel.display import publish_display_data
    for manager in Gcf.get_all_fig_managers():
        fig = manager.canvas.figure
        if skip_shown and fig in _shown:
            continue
        if not fig.get_axes() and not fig.get_children()[1:]:
            continue  # an empty figure: nothing to show
        data, metadata = figure_bundle(fig)
        publish_display_data(data, metadata)


def show(block=None):
    """plt.show(): display every open figure now and close it."""
    try:
        _display_open_figures(skip_shown=False)
    finally:
        _shown.clear()
        matplotlib.pyplot.close("all")


def flush_figures():
    """End of cell: display the figures the cell left open (not already displayed), close all."""
    if not Gcf.get_all_fig_managers():
        _shown.clear()
        return
    if matplotlib.get_backend() != BACKEND:
        _shown.clear()
        return
    try:
        _display_open_figures(skip_shown=True)
    finally:
        _shown.clear()
        matplotlib.pyplot.close("all")
