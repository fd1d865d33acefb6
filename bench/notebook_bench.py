#!/usr/bin/python3
"""End-to-end notebook execution: a generated 100-cell notebook of small cells, run by
`kernel-host run` and by Debian's `jupyter nbconvert --execute` in the same run (median of N
repetitions, wall time including kernel start and shutdown). Prints the times, the ratio and a
JSON line.

  /usr/bin/python3 bench/notebook_bench.py [--bin build/bin/kernel-host] [--cells 100] [--repeat 3]

Both runners use the same kernel (ipykernel `python3`); our runner is also timed on
kernel-host-python when its kernelspec exists in the build tree."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def make_notebook(path, cells):
    nb = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    for i in range(cells):
        src = f"x{i} = {i} * 2\nprint(x{i})" if i % 2 == 0 else f"x{i - 1} + {i}"
        nb["cells"].append({"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                            "outputs": [], "execution_count": None})
    with open(path, "w") as f:
        json.dump(nb, f, indent=1)


def timed(cmd, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode()[-2000:]}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(root, "build", "bin", "kernel-host"))
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kh-nb-bench-")
    nb = os.path.join(tmp, "bench.ipynb")
    make_notebook(nb, a.cells)
    data_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.bin))), "share", "jupyter")
    env = dict(os.environ, JUPYTER_PATH=data_dir)
    runs = {
        "kernel-host run (python3/ipykernel)": [a.bin, "run", nb, "-o", os.path.join(tmp, "ours.ipynb"), "--kernel", "python3"],
        "jupyter nbconvert --execute (python3/ipykernel)": ["/usr/bin/python3", "-m", "jupyter", "nbconvert", "--execute", "--to",
                                                            "notebook", "--output", os.path.join(tmp, "theirs.ipynb"), nb],
    }
    if os.path.exists(os.path.join(data_dir, "kernels", "kernel-host-python", "kernel.json")):
        runs["kernel-host run (kernel-host-python)"] = [a.bin, "run", nb, "-o", os.path.join(tmp, "ours-khp.ipynb"),
                                                       "--kernel", "kernel-host-python"]
    times = {name: [] for name in runs}
    for _ in range(a.repeat):  # interleaved, so both see the same machine state
        for name, cmd in runs.items():
            times[name].append(timed(cmd, env))
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["jupyter nbconvert --execute (python3/ipykernel)"]
    print(f"{a.cells}-cell notebook, median of {a.repeat} (wall time, kernel start and shutdown included)")
    for name, t in med.items():
        print(f"  {name:50s} {t * 1000:8.0f} ms   {base / t:5.1f}x vs nbconvert")
    print(json.dumps({"cells": a.cells, "repeat": a.repeat, "median_ms": {name: t * 1000 for name, t in med.items()}}))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
