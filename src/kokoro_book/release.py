"""The version and the commit a reader sees, and the check that a release is consistent.

One source of truth: ``version`` in ``pyproject.toml``, read back through the installed package's
metadata (``kokoro_nb.__version__``). The book's footer, the PDF's title page and ``kokoro-nb
--version`` all show :func:`label`: that version and the commit it was built from, e.g.
``0.1.0 (commit 8f250f1)``, with ``-dirty`` when tracked files differ from the commit.

``make release-check`` (``python -m kokoro_book.release``) runs before a tag: the top release of
``CHANGELOG.md``, ``CITATION.cff`` and ``.zenodo.json`` must name the same version and date as
``pyproject.toml``; exit 1 and one line per disagreement otherwise.

>>> changelog_top("# Changelog\\n\\n## [Unreleased]\\n\\n## [1.2.0] - 2027-01-05\\n- x\\n## [1.1.0] - 2026-12-01\\n")
('1.2.0', '2027-01-05')
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

from kokoro_nb.version import ROOT, label, package_version

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")     # releases are MAJOR.MINOR.PATCH
_RELEASE_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\S+))?", re.M)


def changelog_top(text: str) -> tuple[str, str | None] | None:
    """Return (version, date) of the newest release heading (``## [1.0.0] - 2027-01-05``),
    skipping ``## [Unreleased]``; None when there is none."""
    for m in _RELEASE_HEADING.finditer(text):
        if m["version"].lower() != "unreleased":
            return m["version"], m["date"]
    return None


def check(root: str | Path = ROOT, tag: str | None = None) -> list[str]:
    """Return one line per disagreement between the release files (empty: ready to tag)."""
    root = Path(root)
    problems: list[str] = []
    try:
        version = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        return [f"pyproject.toml: project.version: cannot read it ({type(exc).__name__}: {exc})"]
    if not VERSION_RE.match(version):
        problems.append(f"pyproject.toml: project.version: {version!r} is not MAJOR.MINOR.PATCH")
    installed = package_version()
    if installed != version:
        problems.append(f"installed package: version {installed}, but pyproject.toml says {version}: "
                        "run `make install`")

    _failed = object()

    def read(name: str, parse):
        try:
            return parse((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"{name}: cannot read it ({type(exc).__name__}: {exc})")
            return _failed

    top, date = read("CHANGELOG.md", changelog_top), None
    if top is None:
        problems.append("CHANGELOG.md: no release heading like `## [1.0.0] - 2027-01-05`")
    elif top is not _failed:
        if top[0] != version:
            problems.append(f"CHANGELOG.md: the newest release is {top[0]}, but pyproject.toml says {version}")
        date = top[1]
        if not (date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)):
            problems.append(f"CHANGELOG.md: release {top[0]} has no date (`## [{top[0]}] - YYYY-MM-DD`)")
            date = None
    cff = read("CITATION.cff", yaml.safe_load)
    if isinstance(cff, dict):
        if str(cff.get("version")) != version:
            problems.append(f"CITATION.cff: version: {cff.get('version')}, but pyproject.toml says {version}")
        if date and str(cff.get("date-released")) != date:
            problems.append(f"CITATION.cff: date-released: {cff.get('date-released')}, but CHANGELOG.md says {date}")
    elif cff is not _failed:
        problems.append("CITATION.cff: not a YAML mapping")
    zen = read(".zenodo.json", json.loads)
    if isinstance(zen, dict):
        if zen.get("version") != version:
            problems.append(f".zenodo.json: version: {zen.get('version')}, but pyproject.toml says {version}")
        if date and zen.get("publication_date") != date:
            problems.append(f".zenodo.json: publication_date: {zen.get('publication_date')}, "
                            f"but CHANGELOG.md says {date}")
    elif zen is not _failed:
        problems.append(".zenodo.json: not a JSON object")
    if tag is not None and tag != f"v{version}":
        problems.append(f"tag {tag}: expected v{version} (pyproject.toml)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``make release-check``: exit 0 when the release files agree, 1 (and what differs) if not."""
    parser = argparse.ArgumentParser(prog="release-check", description=__doc__.split("\n\n")[2])
    parser.add_argument("--root", default=str(ROOT), help="the checkout (default: this package's)")
    parser.add_argument("--tag", help="the tag about to be pushed (must be v<version>)")
    args = parser.parse_args(argv)
    problems = check(args.root, args.tag)
    for p in problems:
        print(f"release-check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"release-check: {label(args.root)}: pyproject.toml, CHANGELOG.md, CITATION.cff and "
          ".zenodo.json agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
