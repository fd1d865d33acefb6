#!/usr/bin/python3
"""Runs a notebook with Debian's nbclient on a kernel and compares its outputs with ours.
Usage: nbclient_parity.py --kernel NAME --input IN.ipynb --ours OURS.ipynb [--save THEIRS.ipynb]
Outputs are compared by type, stream name, mime keys and text after normalising: streams
coalesced with \\r and \\b applied (as frontends show them; nbclient 0.7 stores them unmerged),
memory addresses, execution counts. Exit 0 when they match, 1 with a report otherwise."""
import argparse
import os
import re
import sys

import nbformat
from nbclient import NotebookClient

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ADDR = re.compile(r"0x[0-9a-fA-F]+")
CR = re.compile(r".*\r(?=[^\n])")
BS = re.compile(r"[^\n]\x08")


def text(v):
    return "".join(v) if isinstance(v, list) else v


def norm(s):
    return ADDR.sub("0xADDR", ANSI.sub("", s))


def coalesce(outputs):
    out = []
    for o in outputs:
        if o["output_type"] == "stream" and out and out[-1]["output_type"] == "stream" and out[-1]["name"] == o["name"]:
            out[-1] = dict(out[-1], text=text(out[-1]["text"]) + text(o["text"]))
        else:
            out.append(dict(o))
    for o in out:
        if o["output_type"] == "stream":
            t = CR.sub("", text(o["text"]))
            while BS.search(t):
                t = BS.sub("", t)
            o["text"] = t
    return out


def summary(nb):
    cells = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        outs = []
        for o in coalesce(c.get("outputs", [])):
            t = o["output_type"]
            if t == "stream":
                outs.append((t, o["name"], norm(o["text"])))
            elif t == "error":
                outs.append((t, o["ename"], norm(o["evalue"])))
            else:
                data = o.get("data", {})
                texts = tuple((k, norm(text(data[k]))) for k in sorted(data)
                              if k in ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml"))
                outs.append((t, tuple(sorted(data)), texts))
        cells.append((c.get("id"), outs))
    return cells


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--save")
    a = ap.parse_args()
    nb = nbformat.read(a.input, as_version=4)
    NotebookClient(nb, kernel_name=a.kernel, timeout=120, allow_errors=False,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(a.input))}}).execute()
    if a.save:
        nbformat.write(nb, a.save)
    theirs = summary(nb)
    ours = summary(nbformat.read(a.ours, as_version=4))
    if theirs == ours:
        print(f"parity: {len(ours)} code cells match")
        return 0
    for (tid, t), (oid, o) in zip(theirs, ours):
        if t != o:
            print(f"cell {tid} / {oid} differs:\n  nbclient: {t!r}\n  ours:     {o!r}")
    if len(theirs) != len(ours):
        print(f"cell counts differ: nbclient {len(theirs)}, ours {len(ours)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
