"""complete_request and is_complete_request without IPython or jedi.

Completion covers names (user namespace, builtins, keywords), attributes of objects reachable
by a dotted name (no calls are evaluated), module names after `import` / `from`, names inside a
module after `from m import`, and file system paths inside string literals. Cursor positions are
in code points, as Python strings index them.
"""
import builtins
import keyword
import os
import re
import sys

_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import\s+(?:.*,\s*)?|import\s+(?:.*,\s*)?|from\s+)([\w.]*)$")
_TOKEN = re.compile(r"[A-Za-z_\d.]*$")
_MAGIC_LINE = re.compile(r"^\s*(%|!)")
_top_level_modules = None


def _reply(matches, start, end):
    return {"status": "ok", "matches": matches, "cursor_start": start, "cursor_end": end,
            "metadata": {}}


def _ordered(names, prefix):
    found = {n for n in names if n.startswith(prefix)}
    if not prefix.startswith("_"):
        found = {n for n in found if not n.startswith("_")}
    return sorted(found, key=lambda n: (n.startswith("_"), n.lower(), n))


def _open_string(line):
    """The start index of an unterminated string literal on this line, or None."""
    quote = None
    start = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote, start = c, i + 1
        elif c == "#":
            return None
        i += 1
    return start if quote else None


def _path_matches(fragment):
    expanded = os.path.expanduser(fragment)
    directory, base = os.path.split(expanded)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    shown_dir = fragment[: len(fragment) - len(base)]
    matches = []
    for entry in sorted(entries):
        if not entry.startswith(base) or (entry.startswith(".") and not base.startswith(".")):
            continue
        full = os.path.join(directory, entry)
        matches.append(shown_dir + entry + ("/" if os.path.isdir(full) else ""))
    return matches


def _module_names(package):
    import pkgutil
    global _top_level_modules
    if not package:
        if _top_level_modules is None:
            names = set(sys.builtin_module_names)
            names.update(m.name for m in pkgutil.iter_modules())
            _top_level_modules = names
        return _top_level_modules
    try:
        import importlib
        module = importlib.import_module(package)
    except Exception:
        return set()
    path = getattr(module, "__path__", None)
    return {m.name for m in pkgutil.iter_modules(path)} if path else set()


def _resolve(dotted, ns):
    parts = dotted.split(".")
    if parts[0] in ns:
        obj = ns[parts[0]]
    elif hasattr(builtins, parts[0]):
        obj = getattr(builtins, parts[0])
    elif parts[0] in sys.modules:  # an already imported module (`import` has no side effect)
        obj = sys.modules[parts[0]]
    else:
        raise LookupError(parts[0])
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj


def _attributes(obj):
    try:
        names = set(dir(obj))
    except Exception:
        names = set()
    return names


def complete(code, cursor_pos, ns):
    if cursor_pos is None or cursor_pos < 0 or cursor_pos > len(code):
        cursor_pos = len(code)
    text = code[:cursor_pos]
    line = text.rsplit("\n", 1)[-1]

    string_start = _open_string(line)
    if string_start is not None:
        fragment = line[string_start:]
        return _reply(_path_matches(fragment), cursor_pos - len(fragment), cursor_pos)

    imp = _IMPORT.match(line)
    if imp:
        package, fragment = imp.group(1), imp.group(2)
        if package:  # from package import frag
            names = _module_names(package)
            try:
                import importlib
                names = names | _attributes(importlib.import_module(package))
            except Exception:
                pass
            return _reply(_ordered(names, fragment), cursor_pos - len(fragment), cursor_pos)
        parent, _, base = fragment.rpartition(".")
        return _reply(_ordered(_module_names(parent), base), cursor_pos - len(base), cursor_pos)

    token = _TOKEN.search(line).group()
    if token[:1].isdigit():
        return _reply([], cursor_pos, cursor_pos)
    if "." in token:
        expr, _, prefix = token.rpartition(".")
        try:
            obj = _resolve(expr, ns)
        except Exception:
            return _reply([], cursor_pos, cursor_pos)
        return _reply(_ordered(_attributes(obj), prefix), cursor_pos - len(prefix), cursor_pos)
    names = set(ns) | set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist)
    return _reply(_ordered(names, token), cursor_pos - len(token), cursor_pos)


def _indent(code):
    lines = [line for line in code.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    if last.rstrip().endswith(":"):
        indent += "    "
    return indent


def is_complete(code):
    if not code.strip():
        return {"status": "complete"}
    if code.lstrip().startswith("%%"):
        return {"status": "complete"} if code.endswith("\n\n") else {"status": "incomplete", "indent": ""}
    import codeop
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(code, "<input>", "exec")
    except (SyntaxError, OverflowError, ValueError, TypeError):
        if any(_MAGIC_LINE.match(line) for line in code.splitlines()):
            return {"status": "complete"}
        return {"status": "invalid"}
    if compiled is None:
        return {"status": "incomplete", "indent": _indent(code)}
    # Like IPython: a cell whose last line is inside an indented block continues until a blank line.
    last = code.rstrip("\n").splitlines()[-1]
    if last[:1] in (" ", "\t") and not code.endswith("\n\n") and "\n" in code.rstrip("\n"):
        return {"status": "incomplete", "indent": _indent(code)}
    return {"status": "complete"}
