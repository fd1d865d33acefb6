#!/usr/bin/python3
"""kernel-host serve against Jupyter Server 1.23 + ipykernel, side by side in one run.

  bench/http/server_bench.py [--build build] [--n 200]

Measures, on this machine, in this order:
  - kernel-host: process start to the first answered request (GET /api/ping), idle daemon RSS;
  - `1+1` until done: ours over SSE (POST /api/execute/code) and over the kernel WebSocket
    (@jupyterlab/services), each with kernel-host-python and with ipykernel; Jupyter Server's
    kernel WebSocket with ipykernel, driven by the same @jupyterlab/services client;
  - 200 concurrent executions over 20 contexts through ours (errors counted);
  - Jupyter Server: start to first answered request, idle RSS.
Prints a table with ratios (peer / ours: higher is better for us) and one JSON line.
Not a test: nothing is asserted.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def first_answer(url, proc, deadline_s=60):
    """Seconds from now until `url` answers 200 (polled in a tight loop)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline_s:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except Exception:
            time.sleep(0.0005)
    raise RuntimeError(f"{url} never answered")


def node(script, *args, env):
    out = subprocess.run(["node", "--import", os.path.join(ROOT, "tests/node/register.mjs"),
                          os.path.join(ROOT, "bench/http", script), *map(str, args)],
                         env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed: {out.stderr[-2000:]}")
    # @jupyterlab/services logs to stdout too: the result is the last JSON line
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def sse_keepalive(port, kernel, n):
    """1+1 over SSE from a lean keep-alive client (http.client), to separate the server's share
    from Node fetch's per-request cost."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/api/contexts", json.dumps({"kernel": kernel}), {"Content-Type": "application/json"})
    ctx = json.loads(c.getresponse().read())["contextId"]
    times = []
    for i in range(n + 10):
        t = time.perf_counter()
        c.request("POST", "/api/execute/code", json.dumps({"context_id": ctx, "code": "1+1"}), {"Content-Type": "application/json"})
        body = c.getresponse().read()
        if b"execution_complete" not in body:
            raise RuntimeError(body[:300])
        if i >= 10:
            times.append((time.perf_counter() - t) * 1000)
    c.request("DELETE", f"/api/contexts/{ctx}")
    c.getresponse().read()
    times.sort()
    return {"median_ms": f"{times[len(times) // 2]:.3f}", "p90_ms": f"{times[int(len(times) * 0.9)]:.3f}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    kh = os.path.join(args.build, "bin/kernel-host")
    data_path = ":".join([os.path.join(args.build, "share/jupyter"), os.path.join(ROOT, ".deps/share/jupyter")])
    env = dict(os.environ, KH_DEPS_DIR=os.path.join(ROOT, ".deps"), KH_DATA_PATH=data_path)
    tmp = tempfile.mkdtemp(prefix="kh-server-bench-")
    results = {}

    # ---- kernel-host ----------------------------------------------------------------------
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_spawn = time.perf_counter()
    daemon = subprocess.Popen([kh, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, "kh"),
                               "--python-pool", "0", "--max-contexts", "64"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spawn_cost = time.perf_counter() - t_spawn
    results["kh_start_to_first_answer_ms"] = (first_answer(base + "/api/ping", daemon) + spawn_cost) * 1000
    time.sleep(1.0)
    results["kh_idle_rss_mb"] = rss_mb(daemon.pid)
    try:
        results["kh_sse_khpython"] = node("execute_latency.mjs", base, args.n, "python", "kernel-host-python", env=env)
        results["kh_sse_khpython_keepalive"] = sse_keepalive(port, "kernel-host-python", args.n)
        results["kh_sse_ipykernel"] = node("execute_latency.mjs", base, args.n, "python", "python3", env=env)
        results["kh_ws_khpython"] = node("ws_latency.mjs", base, "", "kernel-host-python", args.n, env=env)
        results["kh_ws_ipykernel"] = node("ws_latency.mjs", base, "", "python3", args.n, env=env)
        results["kh_concurrent"] = node("concurrent.mjs", base, 20, 200, "kernel-host-python", env=env)
        results["kh_concurrent_ipykernel"] = node("concurrent.mjs", base, 20, 200, "python3", env=env)
        results["kh_rss_after_mb"] = rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)

    # ---- Jupyter Server 1.23 + ipykernel --------------------------------------------------
    jport = free_port()
    jbase = f"http://127.0.0.1:{jport}"
    token = "benchtoken"
    jroot = os.path.join(tmp, "js")
    os.makedirs(jroot)
    jenv = dict(env, JUPYTER_RUNTIME_DIR=os.path.join(tmp, "jrt"), JUPYTER_CONFIG_DIR=os.path.join(tmp, "jcfg"))
    jenv.pop("KH_DATA_PATH", None)
    t_spawn = time.perf_counter()
    js = subprocess.Popen(["/usr/bin/python3", "-m", "jupyter_server", "--no-browser", "--allow-root",
                           f"--ServerApp.port={jport}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
                           f"--ServerApp.root_dir={jroot}"],
                          env=jenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spawn_cost = time.perf_counter() - t_spawn
    try:
        results["js_start_to_first_answer_ms"] = (first_answer(f"{jbase}/api/status?token={token}", js) + spawn_cost) * 1000
        time.sleep(1.0)
        results["js_idle_rss_mb"] = rss_mb(js.pid)
        results["js_ws_ipykernel"] = node("ws_latency.mjs", jbase, token, "python3", args.n, env=env)
        version = urllib.request.urlopen(f"{jbase}/api?token={token}").read().decode()
        results["js_version"] = json.loads(version).get("version")
    finally:
        js.terminate()
        js.wait(timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)

    # ---- report ---------------------------------------------------------------------------
    def med(key):
        return float(results[key]["median_ms"])

    js_ws = med("js_ws_ipykernel")
    rows = [
        ("1+1 SSE, kernel-host-python, Node fetch (median ms)", med("kh_sse_khpython"), js_ws),
        ("1+1 SSE, kernel-host-python, http.client", med("kh_sse_khpython_keepalive"), js_ws),
        ("1+1 SSE, ipykernel", med("kh_sse_ipykernel"), js_ws),
        ("1+1 WebSocket, kernel-host-python", med("kh_ws_khpython"), js_ws),
        ("1+1 WebSocket, ipykernel", med("kh_ws_ipykernel"), js_ws),
        ("start to first answered request (ms)", results["kh_start_to_first_answer_ms"], results["js_start_to_first_answer_ms"]),
        ("idle daemon RSS (MB)", results["kh_idle_rss_mb"], results["js_idle_rss_mb"]),
    ]
    print(f"{'measure':48} {'kernel-host':>12} {'Jupyter Server':>15} {'ratio':>8}")
    for name, ours, peer in rows:
        print(f"{name:48} {ours:12.3f} {peer:15.3f} {peer / ours:7.1f}x")
    for key in ("kh_concurrent", "kh_concurrent_ipykernel"):
        c = results[key]
        print(f"{key}: {c['executions']} executions over {c['contexts']} contexts: {c['errors']} errors, "
              f"{c['run_all_ms']} ms in all ({c['create_contexts_ms']} ms to create the contexts)")
    print("p90 ms: " + ", ".join(f"{k}={results[k]['p90_ms']}" for k in
                                  ("kh_sse_khpython", "kh_sse_ipykernel", "kh_ws_khpython", "kh_ws_ipykernel", "js_ws_ipykernel")))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
