#!/usr/bin/python3
"""Renders an HTML file in headless Chromium through the DevTools protocol (--remote-debugging-pipe,
no extra packages) and prints a JSON summary of the DOM: images (decoded, sizes), tables (also
inside iframes), iframes and their heights, console errors and uncaught exceptions.
Usage: browser_check.py FILE.html"""
import json
import select
import os
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="kh-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4.
        def setup():
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)  # above 3 and 4 before moving them there
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=setup, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not os.environ.get("KH_BROWSER_DEBUG") else None)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.replies = {}
        self.sessions = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        want = self.next_id
        msg = {"id": want, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while want not in self.replies:
            self.dispatch(self.read())
        m = self.replies.pop(want)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m.get("result", {})

    def dispatch(self, m):
        if "id" in m:
            self.replies[m["id"]] = m
            return
        self.events.append(m)
        if m.get("method") == "Target.attachedToTarget":
            # An iframe in its own process: watch its console and errors too, then let it run.
            child = m["params"]["sessionId"]
            self.sessions.append(child)
            for domain in ("Runtime.enable", "Log.enable"):
                self.send(domain, session=child)
            self.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}, session=child)
            self.send("Runtime.runIfWaitingForDebugger", session=child)

    def read(self, deadline=30.0):
        end = time.time() + deadline
        while b"\0" not in self.buf:
            if time.time() > end:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method, timeout=20.0):
        end = time.time() + timeout
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self.dispatch(self.read(max(0.1, end - time.time())))

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            if b"\0" in self.buf or select.select([self.from_chrome], [], [], max(0.0, end - time.time()))[0]:
                self.dispatch(self.read())

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])


def count_nodes(node, name):
    n = 1 if node.get("nodeName") == name else 0
    for child in node.get("children", []) + ([node["contentDocument"]] if "contentDocument" in node else []):
        n += count_nodes(child, name)
    return n


def main():
    path = os.path.abspath(sys.argv[1])
    b = Browser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            b.send(domain, session=s)
        b.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}, session=s)
        b.send("Page.navigate", {"url": "file://" + path}, session=s)
        b.wait_event("Page.loadEventFired")
        b.pump(1.0)  # iframes load and post their heights
        images = json.loads(b.send("Runtime.evaluate", {"expression":
            "JSON.stringify([...document.images].map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})))",
            "returnByValue": True}, session=s)["result"]["value"])
        frames = json.loads(b.send("Runtime.evaluate", {"expression":
            "JSON.stringify([...document.querySelectorAll('iframe')].map(f => ({h: f.getBoundingClientRect().height, sandbox: f.getAttribute('sandbox')})))",
            "returnByValue": True}, session=s)["result"]["value"])
        page_title = b.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=s)["result"]["value"]
        # Tables anywhere: the page and every iframe session (sandboxed iframes run in their own process).
        tables = 0
        for session in [s] + b.sessions:
            try:
                r = b.send("Runtime.evaluate", {"expression": "document.querySelectorAll('table').length",
                                                "returnByValue": True}, session=session)
                tables += int(r["result"].get("value", 0))
            except RuntimeError:
                pass  # a frame gone since
        errors = []
        for e in b.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text"))
        print(json.dumps({"images": images, "iframes": frames, "tables": tables,
                          "errors": errors, "title": page_title}))
    finally:
        b.close()


if __name__ == "__main__":
    main()
