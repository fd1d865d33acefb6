#!/usr/bin/python3
"""Issue 2's benchmark: our kernel client vs Debian's jupyter_client against the same ipykernel,
in one run: execute("1+1") round trip (median, p99) and cold start to ready, with ratios.

Usage: bench/run_kernel_client.py [--kernel python3] [--n 1000] [--cold 5] [--rounds 3]
Needs a build (build/bin/kh_bench_kernel). Goals: round trip <= 0.85x, start <= 0.5x jupyter_client.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KH_BUILD_DIR", os.path.join(ROOT, "build"))


def run(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return {(r["what"]): r for r in map(json.loads, filter(None, out.splitlines()))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernel", default="python3")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--cold", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median of round medians is reported")
    args = p.parse_args()

    env = dict(os.environ)
    env["JUPYTER_PATH"] = ":".join([os.path.join(BUILD, "share/jupyter"), os.path.join(ROOT, ".deps/share/jupyter")]
                                   + ([env["JUPYTER_PATH"]] if env.get("JUPYTER_PATH") else []))
    common = ["--kernel", args.kernel, "--n", str(args.n), "--warmup", str(args.warmup), "--cold", str(args.cold)]
    ours_cmd = [os.path.join(BUILD, "bin/kh_bench_kernel")] + common
    peer_cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench/peers/jupyter_client_bench.py")] + common

    rounds = {"ours": [], "jupyter_client": []}
    for i in range(args.rounds):
        rounds["ours"].append(run(ours_cmd, env))
        rounds["jupyter_client"].append(run(peer_cmd, env))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)

    def med(who, what, field):
        return statistics.median(r[what][field] for r in rounds[who])

    print(f"kernel: {args.kernel}; {args.rounds} rounds, each {args.n} executions after {args.warmup} warm-up "
          f"and {args.cold} cold starts; median of round figures")
    print(f"{'measure':<28}{'kernel-host':>14}{'jupyter_client':>16}{'ratio':>9}{'goal':>8}")
    results = {}
    for what, field, goal in [("round_trip", "median_ms", 0.85), ("round_trip", "p99_ms", None),
                              ("cold_start", "median_ms", 0.5)]:
        ours, peer = med("ours", what, field), med("jupyter_client", what, field)
        ratio = ours / peer
        results[f"{what}.{field}"] = {"ours": ours, "jupyter_client": peer, "ratio": ratio}
        goal_text = f"<={goal}" if goal else "-"
        mark = "" if goal is None else ("  ok" if ratio <= goal else "  MISSED")
        print(f"{what + ' ' + field:<28}{ours:>12.3f}ms{peer:>14.3f}ms{ratio:>9.2f}{goal_text:>8}{mark}")
    print(json.dumps({"kernel": args.kernel, "results": results}))


if __name__ == "__main__":
    main()
