#!/usr/bin/env python3
"""Print the cache key of the data downloads for GitHub Actions: ``key=data-...``.

The key is made of the upstream commits pinned in ``src/kokoro_nb/config.py``
(``*_COMMIT``), so the cache holds exactly what `kokoro-nb data fetch` verifies, and a new pin
downloads afresh. The file is read, not imported: this runs with a bare Python.

    python3 scripts/ci_data_key.py >> "$GITHUB_OUTPUT"
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "src" / "kokoro_nb" / "config.py"
CACHE_VERSION = "2"      # bump to drop every cached download (2: Psy-Insight's two files, new layout)


def pinned_commits(path: Path = CONFIG) -> dict[str, str]:
    """Return {NAME_COMMIT: sha} for every string constant named ``*_COMMIT`` in *path*."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            out.update({t.id: node.value.value for t in node.targets
                        if isinstance(t, ast.Name) and t.id.endswith("_COMMIT")})
    return out


def cache_key(path: Path = CONFIG) -> str:
    """Return ``data-v<N>-<name>-<sha>-...`` over the pinned commits, in name order."""
    commits = pinned_commits(path)
    if not commits:
        raise SystemExit(f"ci_data_key: {path}: no *_COMMIT constants")
    parts = [f"{name.removesuffix('_COMMIT').lower().replace('_', '-')}-{sha}"
             for name, sha in sorted(commits.items())]
    return f"data-v{CACHE_VERSION}-" + "-".join(parts)


if __name__ == "__main__":
    print(f"key={cache_key(Path(sys.argv[1]) if len(sys.argv) > 1 else CONFIG)}")
