"""The peer: Debian's jupyter_client against the same kernels, measured like bench/kernel_bench.cpp.

cold start: KernelManager.start_kernel() + client.wait_for_ready()
round trip: client.execute(code), then wait for the execute_reply and the IOPub status idle of that
            request (the same condition execute_interactive uses)
Run with Debian's /usr/bin/python3. Prints one JSON object per measurement.
"""
import argparse
import json
import time

from jupyter_client.manager import KernelManager


def summary(samples):
    samples = sorted(samples)
    at = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return {"n": len(samples), "median_ms": at(0.5), "p99_ms": at(0.99), "min_ms": samples[0]}


def start(kernel):
    km = KernelManager(kernel_name=kernel)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def execute(kc, code):
    msg_id = kc.execute(code)
    got_reply = got_idle = False
    while not got_reply:
        reply = kc.get_shell_msg(timeout=60)
        got_reply = reply["parent_header"].get("msg_id") == msg_id
    while not got_idle:
        msg = kc.get_iopub_msg(timeout=60)
        got_idle = (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle")
    return reply


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--code", default="1+1")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()

    starts = []
    for _ in range(args.cold):
        t0 = time.perf_counter()
        km, kc = start(args.kernel)
        starts.append((time.perf_counter() - t0) * 1000)
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    if starts:
        print(json.dumps({"what": "cold_start", "kernel": args.kernel, **summary(starts)}), flush=True)

    if args.n > 0:
        km, kc = start(args.kernel)
        samples = []
        for i in range(args.warmup + args.n):
            t0 = time.perf_counter()
            reply = execute(kc, args.code)
            ms = (time.perf_counter() - t0) * 1000
            assert reply["content"]["status"] == "ok", reply["content"]
            if i >= args.warmup:
                samples.append(ms)
        print(json.dumps({"what": "round_trip", "kernel": args.kernel, **summary(samples)}), flush=True)
        kc.stop_channels()
        km.shutdown_kernel(now=False)


if __name__ == "__main__":
    main()
