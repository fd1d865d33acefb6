"""The IPython display protocol without IPython.

format_object() builds a mime bundle from `_repr_mimebundle_` and the `_repr_*_` methods;
display() publishes display_data / update_display_data; DisplayHandle updates a display by id;
clear_output() clears. When the user imports IPython, its display functions are replaced by
these (patch_ipython_display_functions), so IPython.display.display/HTML/Image/... work without
an InteractiveShell.
"""
import base64
import sys
import uuid

import _kh_native as native

# (mime type, method) in IPython's order.
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
    ("application/javascript", "_repr_javascript_"),
    ("application/pdf", "_repr_pdf_"),
)
BINARY_MIMES = frozenset({"image/png", "image/jpeg", "application/pdf"})
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _method(obj, name):
    """The bound formatter method `name` of obj, or None. Classes themselves are not formatted
    with their instances' methods, and objects whose __getattr__ invents attributes are safe."""
    if isinstance(obj, type):
        return None
    try:
        method = getattr(obj, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def _report_formatter_error(name, obj):
    from kh_kernel.kernel import format_exception
    _, _, tb = format_exception(sys.exc_info()[1])
    print(f"Error in {type(obj).__name__}.{name}:\n" + "\n".join(tb), file=sys.stderr)


def plain_text(obj):
    """text/plain: repr(), pretty-printed for long builtin containers."""
    text = repr(obj)
    if len(text) > 80 and isinstance(obj, _CONTAINERS):
        import pprint
        try:
            text = pprint.pformat(obj, width=80, sort_dicts=False)
        except Exception:
            pass
    return text


def _encode(mime, value):
    if mime in BINARY_MIMES and isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (bytes, bytearray)) and mime != "application/json":
        return bytes(value).decode("utf-8", "replace")
    return value


def _is_matplotlib_figure(obj):
    cls = type(obj)
    return cls.__module__ == "matplotlib.figure" and cls.__name__ in ("Figure", "SubFigure")


def format_object(obj, include=None, exclude=None):
    """(data, metadata) for obj, following IPython's display protocol."""
    data, metadata = {}, {}
    bundle = _method(obj, "_repr_mimebundle_")
    if bundle is not None:
        try:
            result = bundle(include=include, exclude=exclude)
        except Exception:
            _report_formatter_error("_repr_mimebundle_", obj)
            result = None
        if isinstance(result, tuple) and len(result) == 2:
            result, md = result
            metadata.update(md or {})
        if result:
            data.update({mime: _encode(mime, value) for mime, value in result.items()})
    if _is_matplotlib_figure(obj) and not data:
        from kh_kernel import mpl_backend
        fig_data, fig_md = mpl_backend.figure_bundle(obj)
        data.update(fig_data)
        metadata.update(fig_md)
        mpl_backend.mark_shown(obj)
    for mime, name in REPR_METHODS:
        if mime in data:
            continue
        method = _method(obj, name)
        if method is None:
            continue
        try:
            value = method()
        except NotImplementedError:
            continue
        except Exception:
            _report_formatter_error(name, obj)
            continue
        if value is None:
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, md = value
            if md:
                metadata[mime] = md
        data[mime] = _encode(mime, value)
    if "text/plain" not in data:
        data["text/plain"] = plain_text(obj)
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data, metadata


def publish_display_data(data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
    """Publish a raw mime bundle (IPython.display.publish_display_data's signature)."""
    if update:
        native.update_display_data(data, metadata or {}, transient or {})
    else:
        native.display_data(data, metadata or {}, transient or {})


def display(*objs, include=None, exclude=None, metadata=None, transient=None, display_id=None,
            raw=False, clear=False, update=False, **kwargs):
    """Display objects (IPython.display.display's signature and behaviour).

    display_id=True makes a new id; the returned DisplayHandle updates that output in place.
    """
    if transient is None:
        transient = {}
    if metadata is None:
        metadata = {}
    if display_id:
        if display_id is True:
            display_id = uuid.uuid4().hex
        transient = dict(transient, display_id=display_id)
    if not objs and display_id:
        return DisplayHandle(display_id)  # display(display_id=True): a handle for later
    if clear:
        clear_output(wait=True)
    for obj in objs:
        if raw:
            publish_display_data(obj, metadata, transient=transient, update=update)
            continue
        ipython_display = _method(obj, "_ipython_display_")
        if ipython_display is not None:
            ipython_display()
            continue
        data, md = format_object(obj, include, exclude)
        if not data:
            continue
        if metadata:
            md = dict(md, **metadata)
        publish_display_data(data, md, transient=transient, update=update)
    if display_id:
        return DisplayHandle(display_id)
    return None


def update_display(obj, *, display_id, **kwargs):
    """Update the output shown with display_id."""
    kwargs["update"] = True
    display(obj, display_id=display_id, **kwargs)


def clear_output(wait=False):
    """Clear the output of the current cell (after the next output when wait=True)."""
    native.clear_output(bool(wait))


class DisplayHandle:
    """A handle on a displayed output, to update it in place."""

    def __init__(self, display_id=None):
        self.display_id = display_id or uuid.uuid4().hex

    def __repr__(self):
        return f"<{type(self).__name__} display_id={self.display_id}>"

    def display(self, obj, **kwargs):
        display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj, **kwargs):
        update_display(obj, display_id=self.display_id, **kwargs)


def patch_ipython_display_functions(module):
    """Route IPython.core.display_functions to this module (called when IPython imports it)."""
    module.display = display
    module.update_display = update_display
    module.clear_output = clear_output
    module.publish_display_data = publish_display_data
