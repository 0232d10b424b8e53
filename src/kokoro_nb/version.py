"""The version and the commit a reader sees.

One source of truth: ``version`` in ``pyproject.toml``, read back through the installed package's
metadata (``kokoro_nb.__version__``). The book's footer, the PDF's title page and ``kokoro-nb
--version`` all show :func:`label`: that version and the commit it was built from, e.g.
``0.1.0 (commit 8f250f1)``, with ``-dirty`` when tracked files differ from the commit.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

DIST = "kokoro-nb"
ROOT = Path(__file__).resolve().parents[2]      # the checkout, for an editable install


def package_version() -> str:
    """Return the installed distribution's version (``0+unknown`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(DIST)
    except PackageNotFoundError:
        return "0+unknown"


def commit(root: str | Path = ROOT) -> str | None:
    """Return the short SHA of *root*'s checked-out commit (``-dirty`` when tracked files were
    changed), or None outside a git checkout (an installed wheel, an unpacked archive)."""
    root = Path(root)
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"],
                               capture_output=True).returncode == 1
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "") if sha else None


def label(root: str | Path = ROOT) -> str:
    """Return ``<version> (commit <sha>)``, or the bare version outside a git checkout."""
    sha = commit(root)
    return f"{package_version()} (commit {sha})" if sha else package_version()
