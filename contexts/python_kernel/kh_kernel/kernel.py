"""Execution engine of kernel-host-python.

The C++ interpreter (python_interpreter.cpp) calls the functions at the bottom of this module:
execute(), complete(), inspect(), is_complete(), shutdown(). Everything they publish goes
through the native module `_kh_native` (native_module.cpp), which forwards to xeus.

Start-up cost matters (the kernel must answer kernel_info within tens of milliseconds), so this
module imports only what every cell needs; the rest is imported on first use.
"""
import _thread
import ast
import builtins
import io
import linecache
import os
import sys

import _kh_native as native

CO_COROUTINE = 0x80
_COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_KERNEL_FILE_PREFIX = "kh_kernel/"

main_module = sys.modules["__main__"]
user_ns = main_module.__dict__


class _State:
    allow_stdin = False
    execution_count = 0
    silent = False
    serial = 0  # distinguishes cells that share an execution count (silent / not stored)
    event_loop = None


state = _State()


# ---- streams and stdin ---------------------------------------------------------------------

def _make_stream(fd):
    # Unbuffered text stream on the captured fd: what Python prints and what child processes
    # write travel through the same pipe, so they stay in order. Lone surrogates are passed
    # through as (invalid) UTF-8 bytes and replaced by U+FFFD when the message is serialized.
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogatepass", write_through=True)


class StdinNotImplementedError(RuntimeError):
    """Raised by input() and getpass() when the execute request does not allow stdin."""


_MAIN_THREAD = _thread.get_ident()


def _check_stdin(what):
    if _thread.get_ident() != _MAIN_THREAD:
        raise StdinNotImplementedError(f"{what} is only supported on the main thread")
    if not state.allow_stdin:
        raise StdinNotImplementedError(
            f"{what} was called, but this frontend does not support input requests "
            "(the execute request has allow_stdin=false)")


def kernel_input(prompt=""):
    """input() replacement: asks the frontend over the stdin channel."""
    _check_stdin("input()")
    _flush_std_streams()
    return native.input(str(prompt), False)


def kernel_getpass(prompt="Password: ", stream=None):
    """getpass.getpass() replacement: asks the frontend for a password over stdin."""
    _check_stdin("getpass()")
    _flush_std_streams()
    return native.input(str(prompt), True)


class KernelStdin(io.TextIOBase):
    """sys.stdin: readline() asks the frontend, like input()."""

    def readable(self):
        return True

    def isatty(self):
        return False

    def readline(self, size=-1):
        _check_stdin("sys.stdin.readline()")
        _flush_std_streams()
        return native.input("", False) + "\n"

    def read(self, size=-1):
        return self.readline(size)


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def flush_output():
    """Forwards everything written so far, before a rich output or the reply."""
    _flush_std_streams()
    native.flush()


# ---- post-import hooks ---------------------------------------------------------------------

class _HookedLoader:
    """Runs a hook right after a module has been executed."""

    def __init__(self, loader, hook):
        self.loader = loader
        self.hook = hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        try:
            self.hook(module)
        except Exception as exc:  # a hook must never break the user's import
            native.log(f"post-import hook for {module.__name__} failed: {exc!r}")

    def __getattr__(self, name):
        return getattr(self.loader, name)


class PostImportHooks:
    """A meta-path finder that wraps the loader of a few modules to patch them when imported:
    matplotlib (our backend), getpass (stdin channel), IPython's display functions (our
    publisher). It costs nothing for other modules and nothing until these are imported."""

    def __init__(self, hooks):
        self.hooks = hooks

    def find_spec(self, name, path=None, target=None):
        hook = self.hooks.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


MPL_BACKEND = "module://kh_kernel.mpl_backend"


def _hook_matplotlib(module):
    if "MPLBACKEND" not in os.environ:
        module.rcParams["backend"] = MPL_BACKEND


def _hook_getpass(module):
    module.getpass = kernel_getpass


def _hook_ipython_display(module):
    from kh_kernel import display
    display.patch_ipython_display_functions(module)


# ---- user namespace ------------------------------------------------------------------------

def display(*objs, **kwargs):
    """Display objects with every representation they have (IPython's display protocol)."""
    from kh_kernel import display as _display
    return _display.display(*objs, **kwargs)


def _setup():
    sys.stdout = sys.__stdout__ = _make_stream(1)
    sys.stderr = sys.__stderr__ = _make_stream(2)
    sys.stdin = sys.__stdin__ = KernelStdin()
    if "" not in sys.path:
        sys.path.insert(0, "")
    user_ns.setdefault("__builtins__", builtins)
    builtins.input = kernel_input
    builtins.display = display
    sys.meta_path.insert(0, PostImportHooks({
        "matplotlib": _hook_matplotlib,
        "getpass": _hook_getpass,
        "IPython.core.display_functions": _hook_ipython_display,
    }))


# ---- running a cell ------------------------------------------------------------------------

def _cell_filename(count, stored):
    state.serial += 1
    if stored:
        return f"<cell {count}>"
    return f"<cell {count}.{state.serial}>"


def _register_source(filename, code):
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)


def _compile_cell(code, filename):
    try:
        return compile(code, filename, "exec", ast.PyCF_ONLY_AST | _COMPILE_FLAGS, dont_inherit=True)
    except SyntaxError:
        from kh_kernel import magics
        transformed = magics.transform_cell(code)
        if transformed is None:
            raise
        _register_source(filename, transformed)
        return compile(transformed, filename, "exec", ast.PyCF_ONLY_AST | _COMPILE_FLAGS,
                       dont_inherit=True)


def _run_code(code_obj):
    # SIGINT is unblocked by the native side for the whole execute() call, so an interrupt also
    # stops slow formatting (_repr_*_) and figure rendering, not only the cell's own code.
    result = eval(code_obj, user_ns)
    if code_obj.co_flags & CO_COROUTINE:
        result = _run_coroutine(result)
    return result


def _run_coroutine(coro):
    import asyncio
    if state.event_loop is None or state.event_loop.is_closed():
        state.event_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(state.event_loop)
    return state.event_loop.run_until_complete(coro)


def _run_cell(code, filename):
    """Runs the cell; returns (has_value, value) for its last expression."""
    _register_source(filename, code)
    tree = _compile_cell(code, filename)
    body = tree.body
    last = None
    if body and isinstance(body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        last = ast.Expression(body.pop().value)
    if body:
        _run_code(compile(ast.Module(body, type_ignores=[]), filename, "exec", _COMPILE_FLAGS,
                          dont_inherit=True))
    if last is None:
        return False, None
    return True, _run_code(compile(last, filename, "eval", _COMPILE_FLAGS, dont_inherit=True))


_PLAIN_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)})


def format_result(value):
    """Mime bundle and metadata for an execute_result."""
    if type(value) in _PLAIN_TYPES:
        return {"text/plain": repr(value)}, {}
    from kh_kernel import display as _display
    return _display.format_object(value)


def _is_kernel_file(filename):
    return filename.startswith(_KERNEL_FILE_PREFIX)


def _strip_kernel_frames(te, seen=None):
    from traceback import StackSummary
    seen = seen if seen is not None else set()
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    te.stack = StackSummary.from_list([f for f in te.stack if not _is_kernel_file(f.filename)])
    _strip_kernel_frames(te.__cause__, seen)
    _strip_kernel_frames(te.__context__, seen)


def format_exception(exc):
    """(ename, evalue, traceback lines) without the kernel's own frames."""
    import traceback
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _strip_kernel_frames(te)
    lines = [chunk.rstrip("\n") for chunk in te.format()]
    if len(lines) == 2 and lines[0].startswith("Traceback") and isinstance(exc, SyntaxError):
        lines = lines[1:]
    return type(exc).__name__, str(exc), lines


def _error_content(exc):
    ename, evalue, tb = format_exception(exc)
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": tb}


def _post_cell():
    mpl = sys.modules.get("kh_kernel.mpl_backend")
    if mpl is not None:
        try:
            mpl.flush_figures()
        except Exception as exc:
            ename, evalue, tb = format_exception(exc)
            print("\n".join(tb), file=sys.stderr)


def _user_expressions(expressions):
    results = {}
    for name, expr in expressions.items():
        try:
            value = eval(expr, user_ns)
            data, metadata = format_result(value)
            results[name] = {"status": "ok", "data": data, "metadata": metadata}
        except BaseException as exc:
            results[name] = _error_content(exc)
    return results


def execute(code, silent, store_history, user_expressions, allow_stdin, count):
    """Runs one execute_request. Returns (reply content, text/plain of the result or None)."""
    state.allow_stdin = allow_stdin
    state.execution_count = count
    state.silent = silent
    result_text = None
    payload = []
    filename = _cell_filename(count, store_history and not silent)
    try:
        has_value, value = _run_cell(code, filename)
        if has_value and value is not None and not silent:
            user_ns["_"] = value
            data, metadata = format_result(value)
            result_text = data.get("text/plain")
            flush_output()
            native.execute_result(count, data, metadata)
        reply = {"status": "ok"}
    except BaseException as exc:
        reply = _error_content(exc)
        flush_output()
        native.error(reply["ename"], reply["evalue"], reply["traceback"])
    _post_cell()
    magics = sys.modules.get("kh_kernel.magics")
    if magics is not None:
        payload = magics.take_payloads()
    if reply["status"] == "ok":
        reply["payload"] = payload
        reply["user_expressions"] = _user_expressions(user_expressions) if user_expressions else {}
    flush_output()
    return reply, result_text


def complete(code, cursor_pos):
    from kh_kernel import completion
    return completion.complete(code, cursor_pos, user_ns)


def inspect(code, cursor_pos, detail_level):
    from kh_kernel import inspection
    return inspection.inspect(code, cursor_pos, detail_level, user_ns)


def is_complete(code):
    from kh_kernel import completion
    return completion.is_complete(code)


def handle_variables(data, buffers):
    from kh_kernel import variables
    return variables.handle(data, buffers, user_ns)


def shutdown():
    """Runs atexit handlers and flushes the streams (xeus ends the process with std::exit)."""
    import atexit
    try:
        atexit._run_exitfuncs()
    finally:
        flush_output()


def sanitize(obj):
    """Makes `obj` convertible to JSON by the native side: str with lone surrogates or invalid
    characters, tuples, numpy scalars and unknown objects are converted."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, (bool, int, float)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {sanitize(k) if isinstance(k, str) else str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [sanitize(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        try:
            return sanitize(item())
        except Exception:
            pass
    tolist = getattr(obj, "tolist", None)  # numpy arrays
    if callable(tolist):
        try:
            return sanitize(tolist())
        except Exception:
            pass
    return sanitize(repr(obj))


_setup()
