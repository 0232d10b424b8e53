"""Colab copies of the chapters: output-free ``.ipynb`` files whose first cell installs the package.

Colab cannot open the jupytext MyST sources, so ``notebooks/colab/NN_slug.ipynb`` holds an
output-free copy of every chapter (``make colab`` / ``kokoro-nb book sync-colab``, after
``make book``: the prose quotes the numbers of the executed full-data build; a test fails when a
copy drifts from its source). Its Markdown is plain (see :mod:`kokoro_book.colab_markdown`). The
copy's first code cell, on Colab only:

- clones the repository named in ``_config.yml`` (``repository.url``, the one place the address
  is set) into ``~/kokorochat-companion``;
- installs this package with the extras the chapter needs, constrained to
  ``requirements-colab.txt`` (``requirements-colab-train.txt`` with ``[train]``), resolved against
  the packages Colab preinstalls (see ``colab_runtime``), so Colab keeps its own numpy, pandas and
  CUDA build of torch; a failed
  install, or one that replaced a package the session has already imported, stops the notebook;
- mounts Google Drive only when ``DRIVE_DATA`` names a folder there, and then reads KokoroChat,
  the translation and Psy-Insight from it where they are there
  (:func:`kokoro_nb.data.sources.has_dialogues` says for KokoroChat) and keeps downloaded
  archives and files in its ``downloads`` folder (on the runtime when that cannot be written);
  otherwise the data come from ``$KOKOROCHAT_DIR`` etc. or the verified downloads.

>>> "requirements-colab-train.txt" in setup_source("https://github.com/o/r", "main", ["train"])
True
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kokoro_book import colab_markdown, frontmatter
from kokoro_book.colab_markdown import WILDCARD
from kokoro_book.colab_runtime import constraints_file
from kokoro_book.sources import (
    find_root,
    notebook_options,
    notebook_sources,
    read_notebook,
    write_if_changed,
)
from kokoro_nb.errors import DataError

COLAB_DIR = "notebooks/colab"
COLAB_PATH = COLAB_DIR + "/{name}.ipynb"
SETUP_TAG = "colab-setup"
CLONE_DIR = "~/kokorochat-companion"
DRIVE_MOUNT = "/content/drive"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def repository(root: Path) -> tuple[str, str]:
    """Return (url, branch) of the repository from ``_config.yml`` (``repository.url``/``branch``)."""
    cfg = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8")) or {}
    repo = cfg.get("repository") or {}
    if not repo.get("url"):
        raise DataError("repository.url is not set; it is the address the Colab copies clone",
                        file=str(Path(root) / "_config.yml"), field="repository.url")
    return str(repo["url"]).rstrip("/"), str(repo.get("branch") or "main")


def setup_source(repo_url: str, branch: str, extras: list[str] | tuple = ()) -> str:
    """Return the code of the Colab setup cell for a chapter that needs *extras*.

    pip runs as ``sys.executable -m pip`` in a subprocess, so its exit status is seen: a failed
    install ends the cell with ``SystemExit`` (IPython shows one line and "Run all" stops there).
    The versions of the distributions behind every module the session has already imported are
    compared before and after; if the install replaced one, the cell asks for a restart and stops.
    """
    spec = f"{{repo}}[{','.join(extras)}]" if extras else "{repo}"
    return f'''# Colab setup (does nothing outside Colab): clone the companion and install what this chapter
# needs within {constraints_file(extras)}, the versions resolved against Colab's own packages
# (Colab keeps its numpy, pandas and torch). A failed install stops here with pip's message.
# DRIVE_DATA names a folder in My Drive (Drive is mounted only then): KokoroChat is read from it,
# the translation and Psy-Insight from its multilingual-kokorochat and psy-insight folders, if
# there; what is not there is downloaded (verified) and kept in its downloads folder, so a later
# chapter or a new runtime downloads nothing (in a folder you can only view: on this runtime).
REPO_URL = "{repo_url}"
BRANCH = "{branch}"
DRIVE_DATA = None   # e.g. "KokoroChat"
import os, sys
if "google.colab" in sys.modules:
    import importlib, subprocess
    from importlib.metadata import packages_distributions, version

    def imported():  # {{distribution: version}} behind each module this session has imported
        dists = packages_distributions()
        tops = {{m.partition(".")[0] for m in list(sys.modules)}}
        return {{d: version(d) for m in tops for d in dists.get(m, ()) if d}}

    repo = os.path.expanduser("{CLONE_DIR}")
    if not os.path.isdir(repo):
        !git clone --quiet --depth 1 --branch {{BRANCH}} {{REPO_URL}} {{repo}}
    before = imported()
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c",
                          f"{{repo}}/{constraints_file(extras)}", f"{spec}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(pip.stdout, end="")
    if pip.returncode:
        raise SystemExit(f"pip failed (exit status {{pip.returncode}}; its message is above)")
    importlib.invalidate_caches()
    after = imported()
    changed = [f"{{d}} {{v}} -> {{after.get(d)}}" for d, v in before.items() if after.get(d) != v]
    if changed:
        raise SystemExit("Restart the session (Runtime > Restart session), then run the notebook "
                         "again: the install replaced packages already imported: " + ", ".join(changed))
    if DRIVE_DATA:
        from google.colab import drive
        drive.mount("{DRIVE_MOUNT}")
        data = os.path.join("{DRIVE_MOUNT}/MyDrive", DRIVE_DATA)
        if not os.path.isdir(data):
            raise SystemExit(f"DRIVE_DATA: no folder {{data}}; create it in My Drive, or add a "
                             "shortcut to the course folder there")
        from kokoro_nb.data.sources import has_dialogues
        if has_dialogues(data):
            os.environ["KOKOROCHAT_DIR"] = data
        for var, sub in (("KOKOROCHAT_EN_DIR", "multilingual-kokorochat"), ("PSY_INSIGHT_DIR", "psy-insight")):
            if os.path.isdir(os.path.join(data, sub)):
                os.environ[var] = os.path.join(data, sub)
        os.environ["KOKORO_ARCHIVE_CACHE"] = os.path.join(data, "downloads")'''


def colab_notebook(source: Path, repo_url: str, branch: str, *, index=None, executed=None,
                   note: str | None = None, exact: bool = True,
                   headers: frontmatter.Context | None = None) -> str:
    """Return the output-free ``.ipynb`` text Colab opens for one jupytext source.

    Its Markdown is plain (:mod:`kokoro_book.colab_markdown`): numbers from *executed* (the
    chapter's executed full-data notebook, with *note* saying so), figures after visible cells,
    exercises, solutions and references in Colab's form. With *executed* None every number is a
    wildcard (:data:`~kokoro_book.colab_markdown.WILDCARD`), for comparing structure only; with
    *exact* False only the machine-dependent numbers (timings) are. The chapter header
    (:mod:`kokoro_book.frontmatter`) follows the overview, its links converted like the rest;
    *headers* is the context to read it with (one per run over the chapters).
    """
    import nbformat
    nb = read_notebook(source)
    opts = notebook_options(nb, source)
    if index is None:
        index = colab_markdown.book_index(find_root(Path(source).parent))
    if headers is None:
        headers = frontmatter.Context(find_root(Path(source).parent), index=index)
    header = frontmatter.header_cell(Path(source).stem, headers, nb)
    if header is not None:
        frontmatter.insert(nb, header, file=str(source))
    colab_markdown.convert(nb, Path(source).stem, Path(source), index, executed, note, exact=exact)
    if not any(SETUP_TAG in c.metadata.get("tags", []) for c in nb.cells):
        setup = nbformat.v4.new_code_cell(setup_source(repo_url, branch, opts.get("colab_extras", ())))
        setup.metadata["tags"] = [SETUP_TAG]
        # before the first code cell: after the title, the overview, the header and any notes
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, setup)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"            # stable ids keep the copies diff-free
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    meta = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
            "colab": {"provenance": []}}
    if opts.get("colab_gpu"):
        meta["accelerator"] = "GPU"
    nb.metadata = meta
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def _pattern(expected: str) -> re.Pattern:
    """Return a regex matching *expected* where each wildcard may be any JSON string content."""
    hole = json.dumps(WILDCARD)[1:-1]
    parts = expected.split(hole)
    return re.compile(r'(?:[^"\\]|\\.)*?'.join(re.escape(p) for p in parts))


def _matches(path: Path, expected: str) -> bool:
    return path.is_file() and _pattern(expected).fullmatch(path.read_text(encoding="utf-8")) is not None


def _prune(root: Path, expected: set, check: bool) -> list[str]:
    colab, stale = root / COLAB_DIR, []
    for path in sorted(colab.glob("*.ipynb")) if colab.is_dir() else []:
        if path not in expected:      # a copy whose source is gone
            stale.append(str(path.relative_to(root)))
            if not check:
                path.unlink()
    return stale


def sync(root: Path | None = None, *, check: bool = False, build_dir: Path | None = None) -> list[str]:
    """Write (or with *check*, only compare) ``notebooks/colab/*.ipynb``; return stale paths.

    The numbers come from the executed notebooks of the full-data build in *build_dir*
    (default ``<root>/_build``); a missing chapter, a ``--sample`` build or one older than its
    source is a :class:`~kokoro_nb.errors.DataError`. A copy that differs from the build only in
    machine-dependent numbers (timings) counts as up to date and is left alone.
    """
    import nbformat
    root = find_root(root)
    build = Path(build_dir) if build_dir else root / "_build"
    url, branch = repository(root)
    index = colab_markdown.book_index(root)
    headers = frontmatter.Context(root, index=index)
    stale, expected = [], set()
    for src in notebook_sources(root):
        executed_path = build / "executed" / f"{src.stem}.ipynb"
        book_sample = notebook_options(read_notebook(src), src).get("book_parameters", {}).get("sample")
        stamp = colab_markdown.check_executed(src.stem, src, executed_path, book_sample)
        executed = nbformat.read(executed_path, as_version=4)
        note = colab_markdown.numbers_note(stamp, book_sample)
        path = root / COLAB_DIR / f"{src.stem}.ipynb"
        expected.add(path)
        loose = colab_notebook(src, url, branch, index=index, executed=executed, note=note, exact=False,
                               headers=headers)
        if _matches(path, loose):
            continue
        stale.append(str(path.relative_to(root)))
        if not check:
            write_if_changed(path, colab_notebook(src, url, branch, index=index, executed=executed,
                                                   note=note, headers=headers).encode())
    return stale + _prune(root, expected, check)


def check_structure(root: Path | None = None) -> list[str]:
    """Return the Colab copies whose cells differ from their sources in anything but numbers.

    Needs no build: every number quoted from the build matches any value. Catches a source
    edited without `make colab`.
    """
    root = find_root(root)
    url, branch = repository(root)
    index = colab_markdown.book_index(root)
    headers = frontmatter.Context(root, index=index)
    stale, expected = [], set()
    for src in notebook_sources(root):
        path = root / COLAB_DIR / f"{src.stem}.ipynb"
        expected.add(path)
        if not _matches(path, colab_notebook(src, url, branch, index=index, headers=headers)):
            stale.append(str(path.relative_to(root)))
    return stale + _prune(root, expected, check=True)


def colab_url(repo_url: str, branch: str, name: str) -> str:
    """Return the Colab address that opens the committed copy of notebook *name*."""
    gh = repo_url.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{gh}/blob/{branch}/{COLAB_PATH.format(name=name)}"
