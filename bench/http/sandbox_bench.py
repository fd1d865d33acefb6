#!/usr/bin/python3
"""kernel-host's sandbox-container routes against Cloudflare's own container runtime, in one run.

  bench/http/sandbox_bench.py [--build build] [--n 500] [--raw-mib 256] [--rounds 1]

Needs the peer set up first (else its column shows the reference figures of
/work/shared/reference, marked "ref"):
  bench/peers/cloudflare_runtime.sh /work/.mirror/cloudflare+sandbox-sdk/repo

Both servers are driven by the same Node client (http/sandbox_routes.mjs: node:http, keep-alive):
session exec `true` (POST /api/execute in a session), sessionless exec (__DISABLE_SESSION__),
1 MiB /api/write and /api/read (also timed without the client's JSON encode/decode of the 1 MiB,
the same for both servers: the request body built before the clock, the answer parsed after), --raw-mib MiB through PUT and GET /api/files/raw (ours only: the peer
has no raw route) and through the SSE /api/read/stream (both), POST /api/sandboxes {} until 201 (ours
only: the peer is one container), 50 sessions each running `sleep 0.1` at once (wall time), and
50 sessions x 20 `true` at once (execs/s); process start to the first answered GET /api/ping.
The peer listens on the hard-coded port 3000: run as root, the whole run (both servers and the
client) goes into a private network namespace (unshare -n, loopback only), so a port 3000 in use on
the machine does not matter (--no-netns to skip that). Rounds alternate ours, peer; the table shows
the median over rounds. Prints the table (ratio = how many times better ours is) and one JSON line.
Not a test: nothing is asserted.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "bench/http/sandbox_routes.mjs")

# /work/shared/reference/peer-baselines.md and cloudflare-sandbox.md section 8 (2 vCPU, Node client)
REFERENCE = {"session_true": 8.7, "sessionless_true": 2.5, "write_1mib": 7.9, "read_1mib": 6.2}


def ping_until_up(base, proc, deadline_s=60):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline_s:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/api/ping", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.001)
    raise RuntimeError(f"{base} never answered")


def client(base, args, *extra):
    cmd = ["node", CLIENT, base, "--n", str(args.n), "--raw-mib", str(args.raw_mib), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"client failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_ours(args, tmp):
    kh = os.path.join(args.build, "bin/kernel-host")
    # a port picked here: the "listening on" line is block-buffered when stdout is a pipe
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([kh, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, "kh"),
                             "--python-pool", "0", "--body-limit", f"{2 * args.raw_mib + 16}MiB"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ping_until_up(base, proc)
        start_ms = (time.perf_counter() - t0) * 1000
        res = client(base, args, "--tag", "kernel-host")
        res["start_to_first_answer_ms"] = round(start_ms, 1)
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_peer(args, tmp):
    container = os.path.join(args.peer_dir, "sandbox-sdk/packages/sandbox-container")
    bun = os.path.join(args.peer_dir, "bun/node_modules/.bin/bun")
    log_path = os.path.join(tmp, f"peer-{time.monotonic_ns()}.log")
    env = dict(os.environ, PYTHON_POOL_MIN_SIZE="0", JAVASCRIPT_POOL_MIN_SIZE="0", TYPESCRIPT_POOL_MIN_SIZE="0")
    os.makedirs("/workspace", exist_ok=True)
    base = "http://127.0.0.1:3000"
    try:
        urllib.request.urlopen(base + "/api/ping", timeout=0.5)
        raise RuntimeError("port 3000 is already in use (run as root for a private network namespace)")
    except OSError:
        pass
    with open(log_path, "a") as log:
        t0 = time.perf_counter()
        # own session: when the runtime dies it signals its process group
        proc = subprocess.Popen([bun, "run", "src/main.ts"], cwd=container, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ping_until_up(base, proc)
        start_ms = (time.perf_counter() - t0) * 1000
        res = client(base, args, "--tag", "cloudflare-runtime")
        res["start_to_first_answer_ms"] = round(start_ms, 1)
        res["exited"] = proc.poll()
        with open(log_path) as f:
            crashes = [line.strip()[:400] for line in f if '"level":"error"' in line and "ncaught" in line]
        if crashes:
            res["crashes"] = crashes
        return res
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            try:  # what is left of its group (session shells) after a crash
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def get(res, key, field):
    v = res.get(key)
    if not isinstance(v, dict) or field not in v:
        return None
    return float(v[field])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--peer-dir", default=os.path.join(ROOT, "bench/.peers"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--raw-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-netns", action="store_true")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.peer_dir = os.path.abspath(args.peer_dir)

    if os.geteuid() == 0 and not args.no_netns and not args.in_netns:
        argv = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--in-netns"]
        os.execvp("unshare", ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv])

    have_peer = (not args.no_peer and os.path.exists(os.path.join(args.peer_dir, "bun/node_modules/.bin/bun"))
                 and os.path.exists(os.path.join(args.peer_dir, "sandbox-sdk/packages/sandbox-container/src/main.ts")))
    tmp = tempfile.mkdtemp(prefix="kh-sandbox-bench-")
    ours, peer = [], []
    try:
        for _ in range(args.rounds):
            ours.append(run_ours(args, tmp))
            if have_peer:
                peer.append(run_peer(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report -------------------------------------------------------------------------
    rows = [  # name, key, field, lower is better, goal (text, test)
        ("session exec `true` median (ms)", "session_true", "median_ms", True, ("< 1", lambda v: v < 1)),
        ("  p95", "session_true", "p95_ms", True, None),
        ("sessionless exec `true` median (ms)", "sessionless_true", "median_ms", True, ("< 2", lambda v: v < 2)),
        ("  p95", "sessionless_true", "p95_ms", True, None),
        ("write 1 MiB median (ms)", "write_1mib", "median_ms", True, ("< 2", lambda v: v < 2)),
        ("  p95", "write_1mib", "p95_ms", True, None),
        ("read 1 MiB median (ms)", "read_1mib", "median_ms", True, ("< 2", lambda v: v < 2)),
        ("  p95", "read_1mib", "p95_ms", True, None),
        ("write 1 MiB, body built before the clock, median (ms)", "write_1mib_prebuilt", "median_ms", True, ("< 2", lambda v: v < 2)),
        ("read 1 MiB, answer parsed after the clock, median (ms)", "read_1mib_raw", "median_ms", True, ("< 2", lambda v: v < 2)),
        (f"GET /api/files/raw {args.raw_mib} MiB (MB/s)", "raw_get", "MBps", False, (">= 500", lambda v: v >= 500)),
        (f"PUT /api/files/raw {args.raw_mib} MiB (MB/s)", "raw_put", "MBps", False, (">= 500", lambda v: v >= 500)),
        (f"POST /api/read/stream SSE {args.raw_mib} MiB (MB/s)", "read_stream", "MBps", False, None),
        ("POST /api/sandboxes -> 201 median (ms)", "sandbox_create", "median_ms", True, ("< 50", lambda v: v < 50)),
        ("  p95", "sandbox_create", "p95_ms", True, None),
        ("50 sessions x `sleep 0.1` at once, wall (ms)", "parallel_sleep", "median_ms", True, None),
        ("50 sessions x 20 `true` at once (execs/s)", "parallel_true", "median_per_s", False, None),
        ("process start to first /api/ping (ms)", None, "start_to_first_answer_ms", True, None),
    ]
    peer_name = "CF runtime" if peer else "CF (ref)"
    print(f"{'measure':50} {'kernel-host':>12} {peer_name:>12} {'ratio':>8}  goal")
    table = []
    for name, key, field, lower, goal in rows:
        pick = (lambda r: r.get(field)) if key is None else (lambda r: get(r, key, field))
        o = median(pick(r) for r in ours)
        if peer:
            p = median(pick(r) for r in peer)
            pref = False
        else:
            p = REFERENCE.get(key) if field == "median_ms" else None
            pref = p is not None
        ratio = None
        if o and p:
            ratio = p / o if lower else o / p
        gtext = ""
        if goal and o is not None:
            gtext = f"{goal[0]}: {'met' if goal[1](o) else 'MISSED'}"
        fmt = lambda v: "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3f}" if v < 10 else f"{v:.1f}")
        ptext = fmt(p) + (" ref" if pref else "")
        print(f"{name:50} {fmt(o):>12} {ptext:>12} {('-' if ratio is None else f'{ratio:.1f}x'):>8}  {gtext}")
        table.append({"measure": name, "ours": o, "peer": p, "peer_is_reference": pref, "ratio": ratio})
    if not peer:
        print("peer: reference (not re-measured): /work/shared/reference/peer-baselines.md, cloudflare-sandbox.md 8")
    for label, results in (("kernel-host", ours), ("CF runtime", peer)):
        for r in results:
            if r.get("errors"):
                print(f"{label}: section errors: {json.dumps(r['errors'])[:600]}")
            for k in ("session_true", "sessionless_true", "write_1mib", "read_1mib", "write_1mib_prebuilt", "read_1mib_raw",
                      "sandbox_create", "parallel_sleep", "parallel_true"):
                if isinstance(r.get(k), dict) and r[k].get("errors"):
                    print(f"{label}: {k}: {r[k]['errors']} failed requests {r[k].get('first_error', '')[:200]}")
            for c in r.get("crashes", []):
                print(f"{label}: crashed: {c[:300]}")
    print(json.dumps({"table": table, "ours": ours, "peer": peer, "rounds": args.rounds, "n": args.n}))


if __name__ == "__main__":
    main()
