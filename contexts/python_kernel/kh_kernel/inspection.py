"""inspect_request: signature, type and docstring of the name at the cursor (source with
detail_level 1), without IPython. Only dotted names are looked up; nothing is called."""
import re

from kh_kernel.completion import _resolve

_NAME_CHARS = re.compile(r"[\w.]")


def _name_at(code, pos):
    if pos is None or pos < 0 or pos > len(code):
        pos = len(code)
    start = pos
    while start > 0 and _NAME_CHARS.match(code[start - 1]):
        start -= 1
    end = pos
    while end < len(code) and re.match(r"\w", code[end]):
        end += 1
    name = code[start:end].strip(".")
    if name and not name[0].isdigit():
        return name
    # Inside a call: inspect the callable before the innermost unclosed parenthesis.
    depth = 0
    for i in range(pos - 1, -1, -1):
        c = code[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                return _name_at(code, i) if i > 0 and _NAME_CHARS.match(code[i - 1]) else None
            depth -= 1
    return None


def describe(name, obj, detail_level=0):
    import inspect
    lines = []
    try:
        if callable(obj):
            lines.append(f"Signature: {name}{inspect.signature(obj)}")
    except (TypeError, ValueError):
        pass
    lines.append(f"Type:      {type(obj).__name__}")
    if not (isinstance(obj, type) or inspect.isroutine(obj) or inspect.ismodule(obj)):
        text = repr(obj)
        if len(text) > 200:
            text = text[:200] + "..."
        lines.append(f"String form: {text}")
    try:
        filename = inspect.getfile(obj)
        lines.append(f"File:      {filename}")
    except TypeError:
        pass
    doc = inspect.getdoc(obj)
    if detail_level > 0:
        try:
            lines.append("Source:\n" + inspect.getsource(obj))
        except (OSError, TypeError):
            if doc:
                lines.append("Docstring:\n" + doc)
    elif doc:
        lines.append("Docstring:\n" + doc)
    return "\n".join(lines)


def inspect(code, cursor_pos, detail_level, ns):
    name = _name_at(code, cursor_pos)
    not_found = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    if not name:
        return not_found
    try:
        obj = _resolve(name, ns)
    except Exception:
        return not_found
    return {"status": "ok", "found": True, "data": {"text/plain": describe(name, obj, detail_level)},
            "metadata": {}}
