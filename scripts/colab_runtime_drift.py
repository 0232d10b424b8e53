#!/usr/bin/env python3
"""Compare Colab's runtime as published now with the copy vendored in scripts/colab-runtime/.

    git clone --depth 1 https://github.com/googlecolab/backend-info /tmp/backend-info
    python3 scripts/colab_runtime_drift.py /tmp/backend-info [--update]

Every vendored file is compared with the file of the same name in the fresh clone, except our
own ``README.md``; ``BACKEND-INFO-README.md`` is upstream's ``README.md``. Exit 0 when they are
identical; 1 when Colab's runtime changed (a unified diff per file on stdout, and with
``--update`` the fresh files replace the vendored ones, so that ``make colab-sim`` tries what
Colab runs now); 2 when a folder is missing. The weekly Colab workflow runs it.
"""
from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "scripts" / "colab-runtime"
OWN = {"README.md"}                                   # ours: where the copy came from
RENAMED = {"BACKEND-INFO-README.md": "README.md"}     # vendored name -> upstream name
MAX_DIFF_LINES = 200


def drift(fresh: Path, vendored: Path = VENDORED) -> dict[str, list[str]]:
    """Return {vendored file: unified diff lines} for every vendored file that differs upstream
    (a file gone upstream shows as removed)."""
    out = {}
    for local in sorted(p for p in vendored.iterdir() if p.is_file() and p.name not in OWN):
        upstream = fresh / RENAMED.get(local.name, local.name)
        new = upstream.read_text(encoding="utf-8").splitlines() if upstream.is_file() else []
        old = local.read_text(encoding="utf-8").splitlines()
        if new != old:
            out[local.name] = list(difflib.unified_diff(
                old, new, f"scripts/colab-runtime/{local.name}",
                f"backend-info/{upstream.name}" + ("" if upstream.is_file() else " (gone)"), lineterm=""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fresh", type=Path, help="a clone of googlecolab/backend-info")
    parser.add_argument("--vendored", type=Path, default=VENDORED, help="the vendored copy")
    parser.add_argument("--update", action="store_true", help="copy the changed files over the vendored ones")
    args = parser.parse_args(argv)
    for folder in (args.fresh, args.vendored):
        if not folder.is_dir():
            print(f"colab_runtime_drift: {folder}: no such folder", file=sys.stderr)
            return 2
    changed = drift(args.fresh, args.vendored)
    head = subprocess.run(["git", "-C", str(args.fresh), "log", "-1", "--format=%h %cs %s"],
                          capture_output=True, text=True).stdout.strip() or "?"
    if not changed:
        print(f"colab_runtime_drift: scripts/colab-runtime/ matches backend-info {head}")
        return 0
    for name, lines in changed.items():
        print("\n".join(lines[:MAX_DIFF_LINES]))
        if len(lines) > MAX_DIFF_LINES:
            print(f"... {len(lines) - MAX_DIFF_LINES} more diff lines")
        if os.environ.get("GITHUB_ACTIONS"):
            print(f"::error file=scripts/colab-runtime/{name}::Colab's runtime changed: {name} "
                  f"differs from backend-info {head}")
        if args.update:
            upstream = args.fresh / RENAMED.get(name, name)
            if upstream.is_file():
                shutil.copyfile(upstream, args.vendored / name)
    print(f"colab_runtime_drift: Colab's runtime changed since the vendored copy: "
          f"{', '.join(changed)} differ from backend-info {head}"
          + ("; the vendored files now hold the new ones" if args.update else ""), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
