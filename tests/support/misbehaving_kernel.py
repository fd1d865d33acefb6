#!/usr/bin/python3
"""A small Jupyter kernel that misbehaves on purpose, for kernel-host's tests.

Run by Debian's /usr/bin/python3 (pyzmq from python3-zmq):
    misbehaving_kernel.py --mode MODE -f CONNECTION_FILE

Modes:
  normal           a well-behaved kernel: kernel_info, execute (exec in a persistent namespace,
                   prints sent as a stdout stream), interrupt (SIGINT), shutdown on control
  ignore-shutdown  answers shutdown_request but keeps running (SIGTERM still stops it)
  ignore-sigterm   ignores SIGTERM and shutdown_request: only SIGKILL stops it
  exit-at-start    writes a message to stderr and exits with code 3 before binding anything
  never-ready      binds nothing and never answers: just sleeps (SIGINT ignored too)
  die-mid-cell     like normal, but an execute_request whose code contains "die" gets
                   status busy and then the process exits (code 0) without a reply
  segv-mid-cell    the same, but the process dies of a real segmentation fault (SIGSEGV)
  sigkill-mid-cell the same, but the process sends itself SIGKILL
  sigkill-at-start kills itself with SIGKILL before binding anything
  segv-at-kernel-info binds, then crashes (SIGSEGV) on the first kernel_info_request
  segv-during-shutdown like normal, but a shutdown_request makes it crash (SIGSEGV) before replying

Every mode (that runs cells) offers test hooks to the cell as `kh`:
  kh.flood_messages(n)        n small stdout stream messages, as fast as pyzmq sends them
  kh.flood_bytes(total, chunk) `total` bytes of stdout in `chunk`-byte stream messages
  kh.send_garbage()           malformed and wrongly signed messages on IOPub and shell, each
                              parented to the running request (they must all be dropped)
Floods end early with KeyboardInterrupt on SIGINT (the cell's interrupt).
"""

import argparse
import contextlib
import ctypes
import datetime
import hashlib
import hmac
import io
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
import uuid

import zmq

MODES = ("normal", "ignore-shutdown", "ignore-sigterm", "exit-at-start", "never-ready", "die-mid-cell",
         "segv-mid-cell", "sigkill-mid-cell", "sigkill-at-start", "segv-at-kernel-info", "segv-during-shutdown")
DYING_MODES = ("die-mid-cell", "segv-mid-cell", "sigkill-mid-cell")
DELIMITER = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"


class Kernel:
    def __init__(self, connection, mode):
        self.mode = mode
        self.key = connection["key"].encode()
        self.session = str(uuid.uuid4())
        self.execution_count = 0
        self.namespace = {"__name__": "__main__", "kh": TestHooks(self)}
        self.current = None  # header of the request being handled (the hooks' parent)
        self.current_ids = []  # and its shell routing ids
        self.stopping = threading.Event()
        self.context = zmq.Context()

        def bind(kind, port_key):
            socket = self.context.socket(kind)
            port = connection[port_key]
            if connection.get("transport", "tcp") == "ipc":
                socket.bind(f"ipc://{connection['ip']}-{port}")
            else:
                socket.bind(f"tcp://{connection['ip']}:{port}")
            return socket

        self.shell = bind(zmq.ROUTER, "shell_port")
        self.control = bind(zmq.ROUTER, "control_port")
        self.stdin = bind(zmq.ROUTER, "stdin_port")
        self.iopub = bind(zmq.PUB, "iopub_port")
        # The heartbeat socket is used only by its thread from here on.
        self.hb = bind(zmq.REP, "hb_port")
        self.hb_thread = threading.Thread(target=self.heartbeat, daemon=True)
        self.hb_thread.start()

    # ---- wire protocol ------------------------------------------------------------------
    def sign(self, parts):
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def recv(self, socket):
        frames = socket.recv_multipart()
        split = frames.index(DELIMITER)
        identities, signature, parts = frames[:split], frames[split + 1], frames[split + 2:split + 6]
        if not hmac.compare_digest(signature, self.sign(parts)):
            raise ValueError("bad signature")
        return identities, json.loads(parts[0]), json.loads(parts[3])

    def send(self, socket, msg_type, content, parent, identities=()):
        header = {
            "msg_id": str(uuid.uuid4()),
            "session": self.session,
            "username": "kernel",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "msg_type": msg_type,
            "version": PROTOCOL_VERSION,
        }
        parts = [json.dumps(p).encode() for p in (header, parent or {}, {}, content)]
        socket.send_multipart([*identities, DELIMITER, self.sign(parts), *parts])

    def publish(self, msg_type, content, parent):
        self.send(self.iopub, msg_type, content, parent)

    # ---- loops --------------------------------------------------------------------------
    def heartbeat(self):
        while not self.stopping.is_set():
            if self.hb.poll(100):
                self.hb.send(self.hb.recv())

    def run(self):
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.shell, zmq.POLLIN)
        while True:
            try:
                for socket, _ in poller.poll():
                    self.handle(socket)
            except KeyboardInterrupt:
                pass  # SIGINT while idle: nothing to interrupt

    def handle(self, socket):
        try:
            identities, header, content = self.recv(socket)
        except ValueError as e:
            print(f"misbehaving kernel: dropped a message: {e}", file=sys.stderr, flush=True)
            return
        msg_type = header["msg_type"]
        if msg_type == "kernel_info_request" and self.mode == "segv-at-kernel-info":
            crash()
        if msg_type == "shutdown_request" and self.mode == "segv-during-shutdown":
            crash()
        self.current, self.current_ids = header, identities
        self.publish("status", {"execution_state": "busy"}, header)
        try:
            handler = getattr(self, "do_" + msg_type, None)
            if handler is not None:
                reply = handler(content, header)
            elif msg_type.endswith("_request"):
                reply = {"status": "error", "ename": "NotImplementedError",
                         "evalue": f"{msg_type} is not supported by this test kernel", "traceback": []}
            else:
                reply = None  # comm messages and the like get no reply
            if reply is not None:
                self.send(socket, msg_type.replace("_request", "_reply"), reply, header, identities)
        finally:
            self.publish("status", {"execution_state": "idle"}, header)
        if msg_type == "shutdown_request" and self.mode in ("normal", *DYING_MODES):
            self.exit()

    def exit(self):
        self.stopping.set()
        self.hb_thread.join()
        for socket in (self.shell, self.control, self.stdin, self.iopub, self.hb):
            socket.close(linger=1000)  # let the reply and the idle status go out
        self.context.term()
        sys.exit(0)

    # ---- handlers -----------------------------------------------------------------------
    def do_kernel_info_request(self, content, header):
        return {
            "status": "ok",
            "protocol_version": PROTOCOL_VERSION,
            "implementation": "kh-misbehaving",
            "implementation_version": "0.1",
            "language_info": {
                "name": "python",
                "version": sys.version.split()[0],
                "mimetype": "text/x-python",
                "file_extension": ".py",
            },
            "banner": f"kernel-host test kernel (mode {self.mode})",
            "help_links": [],
        }

    def do_execute_request(self, content, header):
        code = content.get("code", "")
        if self.mode in DYING_MODES and "die" in code:
            time.sleep(0.2)  # give the busy status time to leave
            if self.mode == "segv-mid-cell":
                crash()
            if self.mode == "sigkill-mid-cell":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(0)
        silent = content.get("silent", False)
        if not silent:
            self.execution_count += 1
            self.publish("execute_input", {"code": code, "execution_count": self.execution_count}, header)
        stdout, stderr = io.StringIO(), io.StringIO()
        error = None
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                exec(compile(code, "<cell>", "exec"), self.namespace)
        except BaseException as e:  # KeyboardInterrupt from an interrupt included
            error = {"ename": type(e).__name__, "evalue": str(e),
                     "traceback": traceback.format_exception(type(e), e, e.__traceback__)}
        for name, buffer in (("stdout", stdout), ("stderr", stderr)):
            if buffer.getvalue() and not silent:
                self.publish("stream", {"name": name, "text": buffer.getvalue()}, header)
        if error is not None:
            if not silent:
                self.publish("error", error, header)
            return {"status": "error", "execution_count": self.execution_count, **error}
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    def do_shutdown_request(self, content, header):
        return {"status": "ok", "restart": bool(content.get("restart", False))}

    def do_interrupt_request(self, content, header):
        return {"status": "ok"}

    def do_comm_info_request(self, content, header):
        return {"status": "ok", "comms": {}}


def crash():
    """A real segmentation fault (not a raised signal): reads address 0."""
    sys.stderr.flush()
    ctypes.string_at(0)


class TestHooks:
    """What a cell can ask the kernel to misbehave with (see the module docstring)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def _signed(self, msg_type, content):
        k = self.kernel
        header = {"msg_id": str(uuid.uuid4()), "session": k.session, "username": "kernel",
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "msg_type": msg_type, "version": PROTOCOL_VERSION}
        parts = [json.dumps(p).encode() for p in (header, k.current or {}, {}, content)]
        return [DELIMITER, k.sign(parts), *parts]

    def flood_messages(self, n):
        frames = self._signed("stream", {"name": "stdout", "text": "x\n"})
        for _ in range(n):
            self.kernel.iopub.send_multipart(frames)

    def flood_bytes(self, total, chunk=1 << 20):
        frames = self._signed("stream", {"name": "stdout", "text": "y" * (chunk - 1) + "\n"})
        for _ in range(total // chunk):
            self.kernel.iopub.send_multipart(frames)

    def send_garbage(self):
        k = self.kernel
        good = self._signed("stream", {"name": "stdout", "text": "FORGED\n"})
        reply = self._signed("execute_reply", {"status": "ok", "execution_count": 999999})
        parts = good[2:]
        wrong_key = hmac.new(b"not-the-key", digestmod=hashlib.sha256)
        for part in parts:
            wrong_key.update(part)
        bad_json = [b"{not json", *parts[1:]]
        for socket, frames in ((k.iopub, good), (k.shell, reply)):
            ids = [] if socket is k.iopub else list(k.current_ids)
            msg = frames[2:]
            socket.send_multipart([*ids, *msg])                                   # no delimiter
            socket.send_multipart([*ids, DELIMITER, frames[1], *msg[:2]])         # truncated
            socket.send_multipart([*ids, DELIMITER, b"0" * 64, *msg])             # bad HMAC
            socket.send_multipart([*ids, DELIMITER, wrong_key.hexdigest().encode(), *msg])  # other key
            socket.send_multipart([*ids, DELIMITER, k.sign(bad_json), *bad_json])  # signed, not JSON
            socket.send_multipart([*ids, DELIMITER])                              # delimiter only
            socket.send_multipart([*ids, b"\xff" * 10])                           # one binary frame


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="normal")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args()

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # crashes on purpose leave no core files
    if args.mode == "sigkill-at-start":
        os.kill(os.getpid(), signal.SIGKILL)
    if args.mode == "exit-at-start":
        print("misbehaving kernel: exiting at start with code 3 (--mode exit-at-start)", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.mode == "never-ready":
        while True:  # a hung kernel: interrupts do not reach it either, only SIGTERM/SIGKILL
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(3600)
    if args.mode == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    with open(args.connection_file) as f:
        connection = json.load(f)
    print(f"misbehaving kernel: mode {args.mode}, pid {os.getpid()}", file=sys.stderr, flush=True)
    Kernel(connection, args.mode).run()


if __name__ == "__main__":
    main()
