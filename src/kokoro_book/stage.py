"""Stage the book: assemble in ``<build>/stage`` what Jupyter Book renders (the settings, the
toc, the pages, the executed chapters and their downloads), and the one call into Jupyter Book.

Staged layout::

    stage/_config.yml             _config.yml plus the version line, the repository root (for
                                  the Colab check) and a preview banner
    stage/notebooks/NN_slug.ipynb the executed chapters, each with its header (objectives,
                                  prerequisites, time, GPU: :mod:`kokoro_book.frontmatter`)
                                  under the overview
    stage/notebooks/download/NN_slug/  <build>/outputs/NN_slug/download/*, offered on the page
                                  (MyST's {download} role)

It runs no notebook (:mod:`kokoro_book.run`) and decides nothing about HTML or PDF options
(:mod:`kokoro_book.build`, :mod:`kokoro_book.pdf`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from kokoro_book import frontmatter
from kokoro_book.sources import NOTEBOOK_DIR, source_path, write_if_changed
from kokoro_nb import version

BOOK_PAGES_DIR = "book"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
DOWNLOAD_DIR = "download"       # <output_dir>/download/* -> stage/notebooks/download/<name>/*


def stage_book(root: Path, build_dir: Path, names: list[str], *, banner: str | None = None,
               label: str | None = None) -> Path:
    """Assemble the sources Jupyter Book renders in ``<build>/stage`` and return that folder."""
    root, stage = Path(root), Path(build_dir) / "stage"
    wanted: dict[Path, bytes] = {}
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    sphinx_cfg = config.setdefault("sphinx", {}).setdefault("config", {}) or {}
    config["sphinx"]["config"] = sphinx_cfg
    sphinx_cfg["kokoro_repo_root"] = str(root.resolve())
    if banner:
        html = config.setdefault("html", {})
        html["announcement"] = banner + (" " + html["announcement"] if html.get("announcement") else "")
    # what a reader cites: the version and commit, in every page's footer and on the PDF's title page
    release = "Version " + (label or version.label(root))
    html = config.setdefault("html", {})
    html["extra_footer"] = (html.get("extra_footer") or "") + f'<p class="kokoro-version">{release}</p>'
    sphinx_cfg.setdefault("latex_elements", {})["releasename"] = release
    wanted[stage / "_config.yml"] = yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()
    for f in BOOK_FILES[1:]:
        if (root / f).is_file():
            wanted[stage / f] = (root / f).read_bytes()
    pages = root / BOOK_PAGES_DIR
    for f in sorted(pages.rglob("*")) if pages.is_dir() else []:
        if f.is_file():
            wanted[stage / f.relative_to(root)] = f.read_bytes()
    headers = frontmatter.Context(root)
    for name in names:
        executed = Path(build_dir) / "executed" / f"{name}.ipynb"
        wanted[stage / NOTEBOOK_DIR / f"{name}.ipynb"] = with_header(executed, name, headers)
        downloads = Path(build_dir) / "outputs" / name / DOWNLOAD_DIR
        for f in sorted(downloads.iterdir()) if downloads.is_dir() else []:
            if f.is_file():
                wanted[stage / NOTEBOOK_DIR / DOWNLOAD_DIR / name / f.name] = f.read_bytes()
    for path, data in wanted.items():
        write_if_changed(path, data)
    if stage.is_dir():  # drop pages that left the book
        for f in stage.rglob("*"):
            if f.is_file() and f not in wanted:
                f.unlink()
    return stage


def with_header(executed: Path, name: str, ctx: frontmatter.Context) -> bytes:
    """Return the executed notebook's bytes with the chapter header under its overview.

    The header is read from the source (not from the executed copy, which a header edit does
    not re-run); a chapter without one, or without a source, is staged as it is.
    """
    import nbformat
    data = Path(executed).read_bytes()
    if not source_path(ctx.root, name).is_file():
        return data
    cell = frontmatter.header_cell(name, ctx, chapter_suffix=".ipynb")
    if cell is None:
        return data
    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    frontmatter.insert(nb, cell, file=str(source_path(ctx.root, name)))
    return nbformat.writes(nb).encode("utf-8")


def jupyter_book(stage: Path, out: Path, doctrees: Path, builder: str, *, overrides: dict | None = None,
                  warnings_as_errors: bool = False, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run Jupyter Book's Sphinx *builder* on *stage* in a subprocess (Sphinx keeps global state)."""
    code = ("import json, sys; from pathlib import Path; from jupyter_book.sphinx import build_sphinx; "
            "s, a = Path(sys.argv[1]), json.loads(sys.argv[4]); "
            "sys.exit(build_sphinx(s, sys.argv[2], noconfig=True, path_config=s / '_config.yml', "
            "builder=a['builder'], confoverrides={'external_toc_path': (s / '_toc.yml').as_posix(), "
            "'latex_individualpages': False, **a['overrides']}, doctreedir=sys.argv[3], "
            "warningiserror=a['werror'], keep_going=True, freshenv=a['fresh'], quiet=True))")
    args = json.dumps({"builder": builder, "overrides": overrides or {}, "werror": warnings_as_errors,
                       "fresh": fresh})
    return subprocess.run([sys.executable, "-c", code, str(stage), str(out), str(doctrees), args],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
