"""Colab copies of the chapters: output-free ``.ipynb`` files whose first cell installs the package.

Colab cannot open the jupytext MyST sources, so ``notebooks/colab/NN_slug.ipynb`` holds an
output-free copy of every chapter (``make colab`` / ``kokoro-nb book sync-colab``; a test fails
when a copy drifts from its source). The copy's first code cell, on Colab only:

- clones the repository named in ``_config.yml`` (``repository.url``, the one place the address
  is set) into ``~/kokorochat-companion``;
- installs this package with the extras the chapter needs, constrained to
  ``requirements-colab.txt`` (``requirements-colab-train.txt`` with ``[train]``), resolved against
  the packages Colab preinstalls (see ``colab_runtime``), so Colab keeps its own numpy, pandas and
  CUDA build of torch; a failed
  install, or one that replaced a package the session has already imported, stops the notebook;
- mounts Google Drive only when ``DRIVE_DATA`` names a folder there, and then reads KokoroChat
  (and the translation, if there) from it and keeps downloaded archives in it; otherwise the
  data come from ``$KOKOROCHAT_DIR`` or the verified download.

>>> "requirements-colab-train.txt" in setup_source("https://github.com/o/r", "main", ["train"])
True
"""
from __future__ import annotations

from pathlib import Path

import yaml

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
        from .errors import DataError
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
    from .colab_runtime import constraints_file
    spec = f"{{repo}}[{','.join(extras)}]" if extras else "{repo}"
    return f'''# Colab setup (does nothing outside Colab): clone the companion and install what this chapter
# needs within {constraints_file(extras)}, the versions resolved against Colab's own packages
# (Colab keeps its numpy, pandas and torch). A failed install stops here with pip's message.
# DRIVE_DATA names a folder in My Drive (Drive is mounted only then): KokoroChat is read from it,
# the translation from its multilingual-kokorochat folder if there, and downloaded archives are
# kept in its downloads folder, so a later chapter or a new runtime downloads nothing.
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
        os.environ["KOKOROCHAT_DIR"] = data
        if os.path.isdir(os.path.join(data, "multilingual-kokorochat")):
            os.environ["KOKOROCHAT_EN_DIR"] = os.path.join(data, "multilingual-kokorochat")
        os.environ["KOKORO_ARCHIVE_CACHE"] = os.path.join(data, "downloads")'''


def colab_notebook(source: Path, repo_url: str, branch: str) -> str:
    """Return the output-free ``.ipynb`` text Colab opens for one jupytext source."""
    import nbformat

    from .book import notebook_options, read_notebook
    nb = read_notebook(source)
    opts = notebook_options(nb, source)
    if not any(SETUP_TAG in c.metadata.get("tags", []) for c in nb.cells):
        setup = nbformat.v4.new_code_cell(setup_source(repo_url, branch, opts.get("colab_extras", ())))
        setup.metadata["tags"] = [SETUP_TAG]
        nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, setup)
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


def sync(root: Path | None = None, *, check: bool = False) -> list[str]:
    """Write (or with *check*, only compare) ``notebooks/colab/*.ipynb``; return stale paths."""
    from .book import _write_if_changed, find_root, notebook_sources
    root = find_root(root)
    url, branch = repository(root)
    colab = root / COLAB_DIR
    stale = []
    expected = {}
    for src in notebook_sources(root):
        expected[colab / f"{src.stem}.ipynb"] = colab_notebook(src, url, branch).encode()
    for path, data in expected.items():
        if not path.is_file() or path.read_bytes() != data:
            stale.append(str(path.relative_to(root)))
            if not check:
                _write_if_changed(path, data)
    for path in sorted(colab.glob("*.ipynb")) if colab.is_dir() else []:
        if path not in expected:      # a copy whose source is gone
            stale.append(str(path.relative_to(root)))
            if not check:
                path.unlink()
    return stale


def colab_url(repo_url: str, branch: str, name: str) -> str:
    """Return the Colab address that opens the committed copy of notebook *name*."""
    gh = repo_url.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{gh}/blob/{branch}/{COLAB_PATH.format(name=name)}"
