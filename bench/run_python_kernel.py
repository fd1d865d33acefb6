#!/usr/bin/python3
"""Issue 3's benchmark: kernel-host-python against ipykernel and Debian's xpython, side by side in
one run, all driven by the same client (build/bin/kh_bench_kernel):

  spawn to ready (kernel_info_reply with IOPub live)   goal: <= 60 ms and <= 0.25x ipykernel
  warm execute("1+1") round trip                       goal: <= 0.5 ms and <= 0.15x ipykernel
  a cell printing 10,000 lines (to the last output)

Usage: bench/run_python_kernel.py [--n 1000] [--cold 10] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KH_BUILD_DIR", os.path.join(ROOT, "build"))
KERNELS = ["kernel-host-python", "python3", "xpython"]
LINES = "for i in range(10000):\n    print(i)"


def bench(kernel, code, n, warmup, cold):
    cmd = [os.path.join(BUILD, "bin/kh_bench_kernel"), "--kernel", kernel, "--code", code, "--n", str(n),
           "--warmup", str(warmup), "--cold", str(cold)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {r["what"]: r for r in map(json.loads, filter(None, out.splitlines()))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--cold", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    rows = {k: {"cold": [], "rt": [], "rt99": [], "lines": []} for k in KERNELS}
    for r in range(args.rounds):
        for k in KERNELS:
            quick = bench(k, "1+1", args.n, 50, args.cold)
            lines = bench(k, LINES, 20, 3, 0)
            rows[k]["cold"].append(quick["cold_start"]["median_ms"])
            rows[k]["rt"].append(quick["round_trip"]["median_ms"])
            rows[k]["rt99"].append(quick["round_trip"]["p99_ms"])
            rows[k]["lines"].append(lines["round_trip"]["median_ms"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {k: {m: statistics.median(v) for m, v in rows[k].items()} for k in KERNELS}
    ours, ipk = med["kernel-host-python"], med["python3"]
    print(f"{args.rounds} rounds; medians of round medians (ms); ratio = kernel-host-python / ipykernel")
    print(f"{'measure':<26}" + "".join(f"{k:>20}" for k in KERNELS) + f"{'ratio':>8}{'goal':>18}")
    goals = {"cold": "<=60ms, <=0.25x", "rt": "<=0.5ms, <=0.15x", "rt99": "-", "lines": "-"}
    names = {"cold": "spawn to ready", "rt": "1+1 round trip median", "rt99": "1+1 round trip p99",
             "lines": "10,000-line cell"}
    for m in ["cold", "rt", "rt99", "lines"]:
        print(f"{names[m]:<26}" + "".join(f"{med[k][m]:>20.3f}" for k in KERNELS)
              + f"{ours[m] / ipk[m]:>8.3f}{goals[m]:>18}")
    print(json.dumps({"medians_ms": med}))


if __name__ == "__main__":
    main()
