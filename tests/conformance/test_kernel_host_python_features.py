"""Functional tests of kernel-host-python through Debian's jupyter_client (issue 3's bullets).

Run with JUPYTER_PATH pointing at the build tree's share/jupyter (ctest sets it). No timing
assertions: live streaming is proven causally (the cell waits for a file that the test creates
only after it has received the cell's first output), and durations are printed, not asserted.
"""
import base64
import os
import signal
import tempfile
import time
import uuid

import numpy as np
import pytest
from jupyter_client.manager import start_new_kernel

KERNEL = "kernel-host-python"
TIMEOUT = 30


# ---- helpers ---------------------------------------------------------------------------------

def start():
    return start_new_kernel(kernel_name=KERNEL, startup_timeout=30)


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=False)


@pytest.fixture(scope="module")
def kernel():
    km, kc = start()
    yield km, kc
    stop(km, kc)


@pytest.fixture
def kc(kernel):
    return kernel[1]


def run(kc, code, **kwargs):
    """Executes code; returns (reply content, iopub messages of the request except status)."""
    msgs = []
    kwargs.setdefault("timeout", TIMEOUT)
    reply = kc.execute_interactive(code, output_hook=msgs.append, **kwargs)
    return reply["content"], [m for m in msgs if m["msg_type"] != "status"]


def ok(kc, code, **kwargs):
    reply, msgs = run(kc, code, **kwargs)
    assert reply["status"] == "ok", reply
    return msgs


def stream_text(msgs, name="stdout"):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def of_type(msgs, msg_type):
    return [m for m in msgs if m["msg_type"] == msg_type]


def result(kc, expr):
    msgs = ok(kc, expr)
    results = of_type(msgs, "execute_result")
    assert len(results) == 1, msgs
    return results[0]["content"]["data"]["text/plain"]


def wait_idle(kc, msg_id, on_msg=None, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if on_msg:
            on_msg(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return
    raise TimeoutError("no idle status")


def shell_reply(kc, msg_id, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=deadline - time.monotonic())
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


# ---- execution basics ------------------------------------------------------------------------

def test_persistent_namespace_and_last_expression(kc):
    ok(kc, "a = 20")
    assert result(kc, "a + 22") == "42"
    msgs = ok(kc, "a + 1;")  # a trailing semicolon hides the result, as in IPython
    assert not of_type(msgs, "execute_result")


def test_execution_count_silent_and_store_history(kc):
    reply, _ = run(kc, "1")
    n = reply["execution_count"]
    reply, msgs = run(kc, "2", silent=True)
    assert reply["execution_count"] == n
    assert not of_type(msgs, "execute_result")
    reply, _ = run(kc, "3", store_history=False)
    assert reply["execution_count"] == n
    reply, _ = run(kc, "4")
    assert reply["execution_count"] == n + 1


def test_user_expressions(kc):
    reply, _ = run(kc, "ue = 6", user_expressions={"double": "ue * 2", "bad": "1/0"})
    exprs = reply["user_expressions"]
    assert exprs["double"]["status"] == "ok"
    assert exprs["double"]["data"]["text/plain"] == "12"
    assert exprs["bad"]["status"] == "error"
    assert exprs["bad"]["ename"] == "ZeroDivisionError"


def test_top_level_await(kc):
    assert result(kc, "import asyncio\nawait asyncio.sleep(0.01)\n'awaited'") == "'awaited'"


# ---- streams ---------------------------------------------------------------------------------

def _live_stream_roundtrip(kc, first_line_code, marker):
    """The cell writes `marker`, then waits for a file the test creates only after receiving the
    marker: the cell can finish only if its output was streamed while it ran."""
    flag = os.path.join(tempfile.mkdtemp(), "go")
    code = (f"{first_line_code}\n"
            "import os, time\n"
            "deadline = time.time() + 20\n"
            f"while not os.path.exists({flag!r}):\n"
            "    if time.time() > deadline: raise TimeoutError('output was not streamed live')\n"
            "    time.sleep(0.01)\n"
            "print('finished')")
    msg_id = kc.execute(code)
    seen = []

    def on_msg(msg):
        if msg["msg_type"] == "stream":
            seen.append(msg["content"]["text"])
            if marker in "".join(seen) and not os.path.exists(flag):
                open(flag, "w").close()

    wait_idle(kc, msg_id, on_msg)
    reply = shell_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "finished" in "".join(seen)


def test_print_streams_while_cell_runs(kc):
    _live_stream_roundtrip(kc, "print('marker-py')", "marker-py")


def test_child_process_output_streams_while_cell_runs(kc):
    _live_stream_roundtrip(kc, "import os; os.system('echo marker-child')", "marker-child")


def test_stream_messages_arrive_during_a_timed_loop(kc):
    code = "import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.1)"
    msg_id = kc.execute(code)
    arrivals = []
    wait_idle(kc, msg_id, lambda m: m["msg_type"] == "stream" and arrivals.append(
        (time.monotonic(), m["content"]["text"])))
    assert "".join(t for _, t in arrivals) == "0\n1\n2\n3\n4\n"
    assert len(arrivals) >= 3  # one message per line, not one at the end
    print("stream arrival offsets (s):", [round(t - arrivals[0][0], 3) for t, _ in arrivals])


def test_background_thread_output_after_the_cell(kc):
    msg_id = kc.execute("import threading\n"
                        "threading.Timer(0.3, lambda: print('late output')).start()")
    wait_idle(kc, msg_id)
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if msg["msg_type"] == "stream" and "late output" in msg["content"]["text"]:
            assert msg["parent_header"]["msg_id"] == msg_id  # attributed to the cell that started it
            break
    shell_reply(kc, msg_id)


def test_display_from_a_thread(kc):
    msg_id = kc.execute("import threading\n"
                        "t = threading.Thread(target=lambda: display({'from': 'thread'}))\n"
                        "t.start(); t.join()")
    shown = []
    wait_idle(kc, msg_id, lambda m: m["msg_type"] == "display_data" and shown.append(m))
    assert shown and shown[0]["content"]["data"]["text/plain"] == "{'from': 'thread'}"
    assert shown[0]["parent_header"]["msg_id"] == msg_id
    shell_reply(kc, msg_id)


def test_interrupt_slow_repr(kernel):
    _interrupt(*kernel, "class Slow:\n    def _repr_html_(self):\n        while True: pass\nSlow()")


def test_fd_level_output(kc):
    msgs = ok(kc, "import os, subprocess, sys\n"
                  "os.system('echo from-system')\n"
                  "subprocess.run(['sh', '-c', 'echo from-subprocess; echo to-stderr >&2'])\n"
                  "os.write(1, b'from-os-write\\n')")
    out = stream_text(msgs)
    assert "from-system" in out and "from-subprocess" in out and "from-os-write" in out
    assert "to-stderr" in stream_text(msgs, "stderr")


def test_stdout_and_stderr(kc):
    msgs = ok(kc, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert stream_text(msgs) == "out\n"
    assert stream_text(msgs, "stderr") == "err\n"


def test_ten_thousand_lines_complete_and_in_order(kc):
    msgs = ok(kc, "for i in range(10000):\n    print(i)")
    assert stream_text(msgs) == "".join(f"{i}\n" for i in range(10000))
    print("stream messages for 10,000 lines:", len(of_type(msgs, "stream")))


def test_stream_order_relative_to_results(kc):
    msgs = ok(kc, "print('before')\ndisplay('shown')\nprint('after')\n'result'")
    kinds = []
    for m in msgs:
        if m["msg_type"] not in ("stream", "display_data", "execute_result"):
            continue
        text = m["content"].get("text")
        # A write may reach the pipe reader in pieces ("after", "\n"): streaming may split a
        # line; what must hold is the order relative to the other outputs.
        if m["msg_type"] == "stream" and kinds and kinds[-1][0] == "stream":
            kinds[-1] = ("stream", kinds[-1][1] + text)
        else:
            kinds.append((m["msg_type"], text))
    assert kinds == [("stream", "before\n"), ("display_data", None), ("stream", "after\n"),
                     ("execute_result", None)]


def test_invalid_utf8_and_lone_surrogates_are_replaced(kc):
    msgs = ok(kc, "import os, sys\nprint('a\\udcffb')\nsys.stdout.flush()\nos.write(1, b'c\\xff\\xfed\\n')")
    out = stream_text(msgs)
    assert "\ufffd" in out and "a" in out and "b" in out and "c" in out and "d" in out
    msgs = ok(kc, "class S:\n    def _repr_html_(self): return '<b>\\udcff</b>'\nS()")
    html = of_type(msgs, "execute_result")[0]["content"]["data"]["text/html"]
    assert html.startswith("<b>") and html.endswith("</b>")
    assert result(kc, "'still alive'") == "'still alive'"


# ---- display protocol ------------------------------------------------------------------------

def test_repr_methods(kc):
    code = ("class R:\n"
            "    def _repr_html_(self): return '<b>r</b>'\n"
            "    def _repr_markdown_(self): return '*r*'\n"
            "    def _repr_svg_(self): return '<svg></svg>'\n"
            "    def _repr_png_(self): return b'\\x89PNG'\n"
            "    def _repr_jpeg_(self): return b'\\xff\\xd8'\n"
            "    def _repr_latex_(self): return '$r$'\n"
            "    def _repr_json_(self): return {'r': 1}\n"
            "    def _repr_javascript_(self): return 'console.log(1)'\n"
            "    def _repr_pdf_(self): return b'%PDF'\n"
            "R()")
    data = of_type(ok(kc, code), "execute_result")[0]["content"]["data"]
    assert data["text/html"] == "<b>r</b>"
    assert data["text/markdown"] == "*r*"
    assert data["image/svg+xml"] == "<svg></svg>"
    assert base64.b64decode(data["image/png"]) == b"\x89PNG"
    assert base64.b64decode(data["image/jpeg"]) == b"\xff\xd8"
    assert data["text/latex"] == "$r$"
    assert data["application/json"] == {"r": 1}
    assert data["application/javascript"] == "console.log(1)"
    assert base64.b64decode(data["application/pdf"]) == b"%PDF"
    assert "text/plain" in data


def test_repr_mimebundle(kc):
    code = ("class M:\n"
            "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
            "        return {'text/plain': 'm', 'application/vnd.custom+json': {'x': 1}}, {'k': 'v'}\n"
            "display(M())")
    msg = of_type(ok(kc, code), "display_data")[0]["content"]
    assert msg["data"] == {"text/plain": "m", "application/vnd.custom+json": {"x": 1}}
    assert msg["metadata"] == {"k": "v"}


def test_display_id_update_and_clear_output(kc):
    msgs = ok(kc, "h = display('one', display_id=True)\nh.update('two')\n"
                  "from IPython.display import clear_output\nclear_output(wait=True)")
    shown = of_type(msgs, "display_data")[0]["content"]
    updated = of_type(msgs, "update_display_data")[0]["content"]
    display_id = shown["transient"]["display_id"]
    assert display_id and updated["transient"]["display_id"] == display_id
    assert updated["data"]["text/plain"] == "'two'"
    assert of_type(msgs, "clear_output")[0]["content"] == {"wait": True}


def test_ipython_display_objects(kc):
    msgs = ok(kc, "from IPython.display import display, HTML, Markdown, SVG, JSON, Latex, Image\n"
                  "display(HTML('<i>h</i>'), Markdown('**m**'), SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>'),"
                  " JSON({'j': [1]}), Latex('$x$'))\n"
                  "from PIL import Image as PILImage\nimport io\nb = io.BytesIO()\n"
                  "PILImage.new('RGB', (2, 2)).save(b, 'png')\n"
                  "display(Image(data=b.getvalue()))\n"
                  "h = display(HTML('<p>1</p>'), display_id='fixed')\nh.update(HTML('<p>2</p>'))")
    datas = [m["content"]["data"] for m in of_type(msgs, "display_data")]
    mimes = [next(k for k in d if k != "text/plain") for d in datas]
    assert mimes == ["text/html", "text/markdown", "image/svg+xml", "application/json",
                     "text/latex", "image/png", "text/html"]
    update = of_type(msgs, "update_display_data")[0]["content"]
    assert update["transient"]["display_id"] == "fixed"
    assert update["data"]["text/html"] == "<p>2</p>"


def test_pandas_dataframe(kc):
    data = of_type(ok(kc, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})"),
                   "execute_result")[0]["content"]["data"]
    assert "<table" in data["text/html"]
    assert "a" in data["text/plain"] and "b" in data["text/plain"]


def test_pil_image_png(kc):
    data = of_type(ok(kc, "from PIL import Image\nImage.new('RGB', (3, 3), 'red')"),
                   "execute_result")[0]["content"]["data"]
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")


# ---- matplotlib --------------------------------------------------------------------------------

CHART = "application/vnd.kernel-host.chart+json"


def test_matplotlib_figure_without_show(kc):
    msgs = ok(kc, "import matplotlib.pyplot as plt\n"
                  "plt.plot([1, 2, 3], [1, 4, 9], label='squares')\n"
                  "plt.title('Squares'); plt.xlabel('n'); plt.ylabel('area (m2)')\n"
                  "x = 1")
    shown = of_type(msgs, "display_data")
    assert len(shown) == 1
    data = shown[0]["content"]["data"]
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    chart = data[CHART]
    assert chart["type"] == "line"
    assert chart["title"] == "Squares"
    assert chart["x_label"] == "n" and chart["y_label"] == "area (m2)" and chart["y_unit"] == "m2"
    assert chart["x_scale"] == "linear" and chart["x_ticks"] and chart["x_tick_labels"]
    assert chart["elements"] == [{"label": "squares", "points": [[1.0, 1.0], [2.0, 4.0], [3.0, 9.0]]}]
    assert result(kc, "len(plt.get_fignums())") == "0"  # closed after being shown


def test_matplotlib_show_and_chart_types(kc):
    msgs = ok(kc, "import matplotlib.pyplot as plt\n"
                  "plt.bar(['a', 'b'], [3, 5]); plt.title('bars'); plt.show()\n"
                  "plt.pie([1, 3], labels=['x', 'y']); plt.show()\n"
                  "plt.scatter([1, 2], [3, 4]); plt.yscale('log'); plt.show()\n"
                  "fig, axes = plt.subplots(1, 2); axes[0].plot([1, 2]); axes[1].bar([0], [1])")
    charts = [m["content"]["data"][CHART] for m in of_type(msgs, "display_data")]
    assert [c["type"] for c in charts] == ["bar", "pie", "scatter", "superchart"]
    bar, pie, scatter, superchart = charts
    assert bar["title"] == "bars"
    assert [(e["label"], e["value"]) for e in bar["elements"]] == [("a", 3.0), ("b", 5.0)]
    assert [e["label"] for e in pie["elements"]] == ["x", "y"]
    assert [round(e["angle"]) for e in pie["elements"]] == [90, 270]
    assert scatter["y_scale"] == "log"
    assert scatter["elements"][0]["points"] == [[1.0, 3.0], [2.0, 4.0]]
    assert [c["type"] for c in superchart["elements"]] == ["line", "bar"]


def test_matplotlib_svg_format(kc):
    msgs = ok(kc, "import kh_kernel, matplotlib.pyplot as plt\n"
                  "kh_kernel.figure_formats = ('svg',)\n"
                  "try:\n    plt.plot([1, 2]); plt.show()\n"
                  "finally:\n    kh_kernel.figure_formats = ('png',)")
    data = of_type(msgs, "display_data")[0]["content"]["data"]
    assert "<svg" in data["image/svg+xml"] and "image/png" not in data
    assert data[CHART]["type"] == "line"


def test_matplotlib_figure_as_result_is_shown_once(kc):
    msgs = ok(kc, "import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2])\nfig")
    images = [m for m in msgs if m["msg_type"] in ("display_data", "execute_result")
              and "image/png" in m["content"]["data"]]
    assert len(images) == 1 and images[0]["msg_type"] == "execute_result"


# ---- lazy IPython, magics, shell escapes -----------------------------------------------------

def test_plain_cells_never_import_ipython():
    km, kc = start()
    try:
        ok(kc, "print('plain')\nx = [i * i for i in range(10)]\nx")
        ok(kc, "display({'a': 1})\nimport json\njson.dumps(x)")
        ok(kc, "def f():\n    return 1\nf()")
        kc.complete("pri", 3)
        kc.get_shell_msg(timeout=TIMEOUT)
        assert result(kc, "import sys\n'IPython' in sys.modules") == "False"
    finally:
        stop(km, kc)


def test_magics(kc):
    assert "per loop" in stream_text(ok(kc, "%timeit -n 3 -r 2 sum(range(100))"))
    msgs = ok(kc, "%%time\ntotal = sum(range(10))\ntotal")
    assert "Wall time" in stream_text(msgs)
    assert of_type(msgs, "execute_result")[0]["content"]["data"]["text/plain"] == "45"
    assert "apt" in stream_text(ok(kc, "%pip install requests"), "stderr")
    here = result(kc, "import os\nos.getcwd()")
    tmp = tempfile.mkdtemp()
    ok(kc, f"%cd {tmp}")
    assert result(kc, "os.getcwd()") == repr(tmp)
    ok(kc, f"%cd {eval(here)}")
    ok(kc, "%env KH_MAGIC_TEST=yes")
    assert result(kc, "os.environ['KH_MAGIC_TEST']") == "'yes'"


def test_shell_escapes(kc):
    assert stream_text(ok(kc, "!echo bang")) == "bang\n"
    ok(kc, "lines = !printf 'a\\nb\\n'")
    assert result(kc, "list(lines)") == "['a', 'b']"


# ---- stdin -------------------------------------------------------------------------------------

def test_input_over_stdin(kc):
    requests = []

    def answer(msg):
        requests.append(msg["content"])
        kc.input("Ada")

    ok(kc, "name = input('Name? ')", allow_stdin=True, stdin_hook=answer)
    assert requests == [{"prompt": "Name? ", "password": False}]
    assert result(kc, "name") == "'Ada'"


def test_getpass_over_stdin(kc):
    requests = []

    def answer(msg):
        requests.append(msg["content"])
        kc.input("s3cret")

    ok(kc, "import getpass\npw = getpass.getpass('Password: ')", allow_stdin=True, stdin_hook=answer)
    assert requests == [{"prompt": "Password: ", "password": True}]
    assert result(kc, "pw") == "'s3cret'"


def test_input_without_stdin_is_a_clear_error(kc):
    reply, msgs = run(kc, "input('x')", allow_stdin=False)
    assert reply["status"] == "error"
    assert reply["ename"] == "StdinNotImplementedError"
    assert "allow_stdin" in reply["evalue"]


# ---- interrupts, exits ---------------------------------------------------------------------------

def _interrupt(km, kc, code):
    msg_id = kc.execute(code)
    started = []
    deadline = time.monotonic() + TIMEOUT
    while not started and time.monotonic() < deadline:  # wait until the cell runs
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            started.append(msg)
    time.sleep(0.3)
    t0 = time.monotonic()
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id, timeout=10)
    print(f"interrupt of {code!r} answered after {time.monotonic() - t0:.3f} s")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert result(kc, "'usable'") == "'usable'"


def test_interrupt_busy_loop(kernel):
    _interrupt(*kernel, "while True:\n    pass")


def test_interrupt_sleep(kernel):
    _interrupt(*kernel, "import time\ntime.sleep(60)")


def test_interrupt_input(kernel):
    km, kc = kernel
    msg_id = kc.execute("input('never answered')", allow_stdin=True)
    kc.get_stdin_msg(timeout=TIMEOUT)  # the input_request
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id, timeout=10)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert result(kc, "'after input'") == "'after input'"


def test_idle_sigint_is_harmless(kernel):
    km, kc = kernel
    ok(kc, "1")
    for _ in range(3):
        km.signal_kernel(signal.SIGINT)
        time.sleep(0.05)
    time.sleep(0.2)
    assert km.is_alive()
    assert result(kc, "2 + 2") == "4"


def test_stop_on_error_aborts_only_queued_cells(kc):
    failing = kc.execute("import time\ntime.sleep(0.3)\n1/0")
    queued = kc.execute("'should be aborted'")
    assert shell_reply(kc, failing)["content"]["ename"] == "ZeroDivisionError"
    assert shell_reply(kc, queued)["content"]["status"] == "aborted"
    wait_idle(kc, queued)  # an aborted request still gets busy/idle
    assert result(kc, "'sent after the error'") == "'sent after the error'"


def test_sys_exit_is_an_error_and_kernel_lives(kc):
    reply, msgs = run(kc, "import sys\nsys.exit(3)")
    assert reply["status"] == "error"
    assert reply["ename"] == "SystemExit" and reply["evalue"] == "3"
    assert result(kc, "'alive'") == "'alive'"


def test_os_exit_ends_the_kernel():
    km, kc = start()
    try:
        kc.execute("import os\nos._exit(3)")
        deadline = time.monotonic() + 10
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not km.is_alive()
    finally:
        kc.stop_channels()
        km.cleanup_resources()


def test_atexit_handlers_run_at_shutdown():
    path = os.path.join(tempfile.mkdtemp(), "atexit")
    km, kc = start()
    ok(kc, f"import atexit\natexit.register(lambda: open({path!r}, 'w').write('ran'))")
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    with open(path) as f:
        assert f.read() == "ran"


# ---- errors ------------------------------------------------------------------------------------

def test_traceback_points_at_cell_lines_without_kernel_frames(kc):
    reply, msgs = run(kc, "def inner():\n    return 1 / 0\n\ninner()")
    assert reply["status"] == "error"
    assert reply["ename"] == "ZeroDivisionError" and reply["evalue"] == "division by zero"
    tb = "\n".join(reply["traceback"])
    assert "line 4" in tb and "line 2" in tb and "return 1 / 0" in tb
    assert "kh_kernel" not in tb and "kernel.py" not in tb
    errors = of_type(msgs, "error")
    assert len(errors) == 1 and errors[0]["content"]["traceback"] == reply["traceback"]


def test_syntax_error_shows_the_line(kc):
    reply, _ = run(kc, "x = 1\ny = (2 +\nprint(x))) oops")
    assert reply["ename"] == "SyntaxError"
    tb = "\n".join(reply["traceback"])
    assert "oops" in tb and "kh_kernel" not in tb


# ---- variables comm ----------------------------------------------------------------------------

class VariablesComm:
    """Host side of the kernel_host.variables comm, written from contexts/python_kernel/README.md."""

    def __init__(self, kc):
        self.kc = kc
        self.comm_id = uuid.uuid4().hex
        self._send("comm_open", {"comm_id": self.comm_id, "target_name": "kernel_host.variables",
                                 "data": {}})

    def _send(self, msg_type, content, buffers=None):
        msg = self.kc.session.msg(msg_type, content)
        self.kc.session.send(self.kc.shell_channel.socket, msg, buffers=buffers or [])
        return msg["header"]["msg_id"]

    def request(self, data, buffers=None):
        msg_id = self._send("comm_msg", {"comm_id": self.comm_id, "data": data}, buffers)
        replies = []
        wait_idle(self.kc, msg_id, lambda m: m["msg_type"] == "comm_msg" and replies.append(m))
        assert len(replies) == 1
        assert replies[0]["content"]["comm_id"] == self.comm_id
        return replies[0]["content"]["data"], replies[0].get("buffers", [])

    def close(self):
        self._send("comm_close", {"comm_id": self.comm_id, "data": {}})


def test_variables_json_set_and_get(kc):
    comm = VariablesComm(kc)
    value = {"nested": {"list": [1, 2.5, None, True, "s"], "empty": {}}, "n": -3}
    reply, _ = comm.request({"request_id": 7, "set": {"cfg": value, "name": "x", "flag": False}})
    assert reply["status"] == "ok" and reply["request_id"] == 7
    assert sorted(reply["set"]) == ["cfg", "flag", "name"]
    assert result(kc, "type(cfg['nested']['list']).__name__, cfg['nested']['list'][2], flag") == \
        "('list', None, False)"
    reply, _ = comm.request({"get": ["cfg", "name", "nope"], "get_format": "json"})
    assert reply["values"] == {"cfg": value, "name": "x"}
    assert reply["missing"] == ["nope"]
    reply, _ = comm.request({"set": {"1bad": 1}})
    assert reply["status"] == "error" and reply["ename"] == "ValueError"
    comm.close()


def test_variables_numpy_buffers_zero_copy_and_back(kc):
    comm = VariablesComm(kc)
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = np.array([1, -2, 3], dtype=np.int32)
    reply, _ = comm.request({"arrays": {"a": {"dtype": "float64", "shape": [3, 4], "buffer": 0},
                                        "b": {"dtype": "int32", "shape": [3], "buffer": 1}}},
                            [a.tobytes(), b.tobytes()])
    assert reply["status"] == "ok", reply
    assert result(kc, "a.shape, a.dtype.name, float(a.sum()), b.tolist()") == \
        "((3, 4), 'float64', 66.0, [1, -2, 3])"
    # Zero copy: the array is a view whose memory belongs to the received message buffer.
    assert result(kc, "base = a\nwhile getattr(base, 'base', None) is not None: base = base.base\n"
                      "a.flags.owndata, type(getattr(base, 'obj', base)).__name__") == "(False, 'Buffer')"
    ok(kc, "a[0, 0] = 100.0")  # the view is writable
    reply, buffers = comm.request({"get": ["a", "b", "cfg_missing"]})
    assert reply["arrays"]["a"] == {"dtype": "float64", "shape": [3, 4], "buffer": 0}
    got = np.frombuffer(buffers[reply["arrays"]["a"]["buffer"]], dtype="float64").reshape(3, 4)
    expected = a.copy()
    expected[0, 0] = 100.0
    assert np.array_equal(got, expected)
    got_b = np.frombuffer(buffers[reply["arrays"]["b"]["buffer"]], dtype=reply["arrays"]["b"]["dtype"])
    assert np.array_equal(got_b, b)
    reply, _ = comm.request({"get": ["b"], "get_format": "json"})
    assert reply["values"] == {"b": [1, -2, 3]} and reply["arrays"] == {}
    reply, _ = comm.request({"arrays": {"c": {"dtype": "float64", "shape": [5], "buffer": 0}}},
                            [b"\0" * 8])
    assert reply["status"] == "error" and "bytes" in reply["evalue"]
    comm.close()


def test_variables_100mb_float64(kc):
    comm = VariablesComm(kc)
    big = np.random.default_rng(1).random(100 * 1024 * 1024 // 8)
    t0 = time.perf_counter()
    reply, _ = comm.request({"arrays": {"big": {"dtype": "float64", "shape": [big.size], "buffer": 0}}},
                            [memoryview(big)])
    elapsed = time.perf_counter() - t0
    assert reply["status"] == "ok", reply
    print(f"100 MB float64 set through buffers: {elapsed:.3f} s")
    assert result(kc, "big.size, big.flags.owndata") == f"({big.size}, False)"
    assert float(result(kc, "float(big[12345]) if True else 0")) == big[12345]
    t0 = time.perf_counter()
    reply, buffers = comm.request({"get": ["big"]})
    print(f"100 MB float64 get through buffers: {time.perf_counter() - t0:.3f} s")
    assert np.array_equal(np.frombuffer(buffers[0], dtype="float64"), big)
    ok(kc, "del big")
    comm.close()


# ---- other requests ----------------------------------------------------------------------------

def test_complete(kc):
    ok(kc, "import os\nmy_variable = 1")
    kc.complete("my_va", 5)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert reply["status"] == "ok" and reply["matches"] == ["my_variable"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (0, 5)
    kc.complete("os.pa", 5)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert "path" in reply["matches"] and reply["cursor_start"] == 3
    kc.complete("import jso", 10)
    assert "json" in kc.get_shell_msg(timeout=TIMEOUT)["content"]["matches"]
    kc.complete("open('/us", 9)
    assert "/usr/" in kc.get_shell_msg(timeout=TIMEOUT)["content"]["matches"]


def test_inspect(kc):
    ok(kc, "def documented(a, b=2):\n    '''Adds things.'''\n    return a + b")
    kc.inspect("documented(1, ", 14)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert reply["found"]
    text = reply["data"]["text/plain"]
    assert "(a, b=2)" in text and "Adds things." in text
    kc.inspect("documented", 3, detail_level=1)
    assert "return a + b" in kc.get_shell_msg(timeout=TIMEOUT)["content"]["data"]["text/plain"]
    kc.inspect("no_such_name", 5)
    assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["found"] is False


def test_is_complete(kc):
    def status(code):
        kc.is_complete(code)
        return kc.get_shell_msg(timeout=TIMEOUT)["content"]

    assert status("x = 1")["status"] == "complete"
    incomplete = status("for i in range(3):")
    assert incomplete["status"] == "incomplete" and incomplete["indent"] == "    "
    assert status("x = = 1")["status"] == "invalid"
    assert status("%timeit x")["status"] == "complete"


def test_history(kc):
    ok(kc, "hist_marker = 'h1'")
    ok(kc, "hist_marker + '2'")
    kc.history(hist_access_type="tail", n=2, output=True, raw=True)
    history = kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"]
    assert [h[2][0] for h in history] == ["hist_marker = 'h1'", "hist_marker + '2'"]
    assert history[1][2][1] == "'h12'"
    session, line = history[0][0], history[0][1]
    kc.history(hist_access_type="range", session=session, start=line, stop=line + 1, raw=True, output=False)
    assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"] == [[session, line, "hist_marker = 'h1'"]]
    kc.history(hist_access_type="search", pattern="hist_marker =*", raw=True, output=False)
    assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"][-1][2] == "hist_marker = 'h1'"


def test_comm_info(kc):
    comm = VariablesComm(kc)
    ok(kc, "1")  # the comm_open has been handled once a later request is answered
    kc.comm_info(target_name="kernel_host.variables")
    comms = kc.get_shell_msg(timeout=TIMEOUT)["content"]["comms"]
    assert comms[comm.comm_id] == {"target_name": "kernel_host.variables"}
    comm.close()


def test_unknown_request_gets_an_error_reply(kc):
    msg = kc.session.msg("frobnicate_request", {})
    kc.shell_channel.send(msg)
    reply = shell_reply(kc, msg["header"]["msg_id"])
    assert reply["msg_type"] == "frobnicate_reply"
    assert reply["content"]["status"] == "error"
    assert result(kc, "'fine'") == "'fine'"


def test_kernel_info(kc):
    kc.kernel_info()
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert reply["status"] == "ok"
    assert reply["implementation"] == "kernel-host-python"
    info = reply["language_info"]
    assert info["name"] == "python" and info["version"].startswith("3.11")
    assert info["mimetype"] == "text/x-python" and info["file_extension"] == ".py"
    assert info["pygments_lexer"] == "ipython3" and info["nbconvert_exporter"] == "python"
    assert info["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert reply["help_links"] and reply["banner"]


def test_python_is_debians(kc):
    assert result(kc, "import sys\nsys.executable, sys.prefix") == "('/usr/bin/python3', '/usr')"
    assert result(kc, "import numpy, os\nnumpy.__file__.startswith('/usr/lib/python3/dist-packages')") == "True"
