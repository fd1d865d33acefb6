"""IPython features, loaded only when a cell needs them: line and cell magics (%timeit, %%time,
%cd, %env, ...), shell escapes (!cmd, x = !cmd) and help (obj?, obj??).

A cell that is valid Python never reaches this module (kernel.py tries to compile it first), so
plain cells never import IPython. The first magic cell creates one InteractiveShell on the
kernel's __main__ namespace, with history disabled, plain-text tracebacks, display routed to
the kernel's publisher, `!cmd` run with the output going straight to the captured fds 1 and 2,
and the pager writing `page` payloads into the execute reply (as ipykernel does).
"""
import re
import sys

import _kh_native as native

# Lines starting with % or !, assignments from them (x = !ls, y = %env), and help (obj?).
_MAGIC = re.compile(r"^\s*[%!]|^[^#\n'\"]*=\s*[%!]|^[^#\n'\"]*\?\s*$", re.M)

PIP_MESSAGE = ("Packages are provided by the system (Debian apt packages such as python3-<name>); "
               "%pip is not available in kernel-host-python. Ask for the package to be added to "
               "the sandbox image.")

_shell = None


def transform_cell(code):
    """The cell with IPython syntax turned into Python, or None if it has no IPython syntax."""
    if not _MAGIC.search(code):
        return None
    return get_shell().transform_cell(code)


def take_payloads():
    if _shell is None:
        return []
    payloads = _shell.payload_manager.read_payload()
    _shell.payload_manager.clear_payload()
    return payloads


def _pip(line):
    """%pip: explains where packages come from."""
    print(PIP_MESSAGE, file=sys.stderr)


def _matplotlib(line):
    """%matplotlib [inline]: figures are always shown inline by kernel-host-python."""
    import matplotlib
    from kh_kernel.kernel import MPL_BACKEND
    matplotlib.use(MPL_BACKEND)


def _make_shell_class():
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type

    class KernelDisplayPublisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            from kh_kernel.display import publish_display_data
            publish_display_data(data, metadata, transient=transient, update=update)

        def clear_output(self, wait=False):
            native.clear_output(bool(wait))

    class KernelShell(InteractiveShell):
        display_pub_class = Type(KernelDisplayPublisher)

        def system(self, cmd):
            # The child writes to the kernel's fds 1 and 2, which are captured and streamed.
            return self.system_raw(cmd)

        def init_virtualenv(self):
            pass

        def enable_gui(self, gui=None):
            pass

    return KernelShell


def get_shell():
    global _shell
    if _shell is not None:
        return _shell
    from traitlets.config import Config
    from kh_kernel.kernel import main_module, user_ns
    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Plain"
    saved_hooks = (sys.displayhook, sys.excepthook)
    saved_display = getattr(__import__("builtins"), "display", None)
    try:
        shell = _make_shell_class().instance(config=config, user_module=main_module, user_ns=user_ns)
    finally:
        sys.displayhook, sys.excepthook = saved_hooks
    if saved_display is not None:
        __import__("builtins").display = saved_display
    from IPython.core import page, payloadpage
    shell.set_hook("show_in_pager", page.as_hook(payloadpage.page), 99)
    shell.register_magic_function(_pip, "line", "pip")
    shell.register_magic_function(_matplotlib, "line", "matplotlib")
    _shell = shell
    return shell
