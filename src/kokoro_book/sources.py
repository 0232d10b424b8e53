"""Where the book's sources are and what they declare: the toc, the jupytext chapters, their
parameters cell and ``kokoro_nb`` front-matter options.

Reading only: nothing here executes a notebook (:mod:`kokoro_book.run`), fingerprints it
(:mod:`kokoro_book.stamps`) or writes into the build (:mod:`kokoro_book.stage`), except
:func:`write_if_changed`, the one careful file write every layer above shares.

Notebook front matter may carry a ``kokoro_nb`` mapping (see :data:`OPTION_KEYS`)::

    kokoro_nb:
      book_parameters: {model_name: tiny-random-llama}   # used by the book build and the tests
      smoke_parameters: {max_steps: 4}                   # only for the synthetic-data tests
      colab_extras: [train]                              # pip extras the Colab copy installs
      colab_gpu: true                                    # the Colab copy asks for a GPU
      objectives: [Compute ..., Explain ...]             # the chapter's header for readers
      prerequisites: {chapters: [03_scores], methods: [spearman-rank-correlation]}
      gpu: optional                                      # no, optional or required

The last three are read and checked by :mod:`kokoro_book.frontmatter`; they change what a reader
sees, not what runs, so :func:`execution_text` leaves them out of what a stamp hashes.

>>> declared_parameters("data_dir = None\\nsample = None  # all\\nseed: int = 42")
['data_dir', 'sample', 'seed']
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import yaml

from kokoro_nb.errors import DataError, KokoroError

NOTEBOOK_DIR = "notebooks"
# Parameters the pipeline injects, each only into notebooks whose parameters cell declares it.
PIPELINE_PARAMETERS = ("data_dir", "psy_insight_dir", "translation_dir", "sample", "lang", "output_dir")
# Other parameters named like these are inputs too (e.g. results_dir): their files join the stamp.
INPUT_SUFFIXES = ("_dir", "_path", "_file")
PATH_PARAMETERS = ("data_dir", "psy_insight_dir", "translation_dir", "output_dir")
# Reader-only options (the chapter header, kokoro_book.frontmatter): no effect on a run.
HEADER_KEYS = ("objectives", "prerequisites", "gpu")
OPTION_KEYS = ("book_parameters", "smoke_parameters", "colab_extras", "colab_gpu", *HEADER_KEYS)


# --------------------------------------------------------------------------- locating things

def find_root(start: str | os.PathLike | None = None) -> Path:
    """Return the project root: the first folder upwards holding ``_toc.yml`` and ``notebooks/``."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [here, *here.parents, Path(__file__).resolve().parents[2]]
    for c in candidates:
        if (c / "_toc.yml").is_file() and (c / NOTEBOOK_DIR).is_dir():
            return c
    raise KokoroError(f"{here}: no _toc.yml with a notebooks/ folder here or above; run "
                      "`kokoro-nb book` from the project checkout")


def toc_files(root: Path) -> list[str]:
    """Return every ``file:``/``root:`` entry of ``_toc.yml``, in reading order."""
    path = Path(root) / "_toc.yml"
    try:
        toc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the table of contents ({exc})", file=str(path)) from None
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return out


def chapters(root: Path) -> list[str]:
    """Return the notebook names (``NN_slug``) that ``_toc.yml`` lists, checking each has a source."""
    root = Path(root)
    names = []
    for entry in toc_files(root):
        entry = entry.removesuffix(".md").removesuffix(".ipynb")
        if not entry.startswith(NOTEBOOK_DIR + "/"):
            continue
        name = entry[len(NOTEBOOK_DIR) + 1:]
        if not source_path(root, name).is_file():
            raise DataError(f"lists {entry}, but {NOTEBOOK_DIR}/{name}.md does not exist",
                            file=str(root / "_toc.yml"))
        names.append(name)
    return names


def source_path(root: Path, name: str) -> Path:
    """Return the jupytext source of notebook *name*."""
    return Path(root) / NOTEBOOK_DIR / f"{name}.md"


def notebook_sources(root: Path) -> list[Path]:
    """Return every notebook source in ``notebooks/`` (sorted), listed in the toc or not."""
    return sorted((Path(root) / NOTEBOOK_DIR).glob("*.md"))


# --------------------------------------------------------------------------- reading notebooks

def read_notebook(path: Path):
    """Read a jupytext MyST source into a notebook, checking the book's conventions."""
    import jupytext
    path = Path(path)
    try:
        nb = jupytext.read(path, fmt="md:myst")
    except Exception as exc:  # jupytext raises many types on malformed sources
        raise DataError(f"cannot read as a jupytext MyST notebook ({exc})", file=str(path)) from None
    if "kernelspec" not in nb.metadata:
        raise DataError("no kernelspec in the front matter; is the jupytext header there?",
                        file=str(path), field="kernelspec")
    if parameters_cell(nb) is None:
        raise DataError("no code cell tagged `parameters` (papermill needs one)", file=str(path),
                        field="tags")
    notebook_options(nb, path)  # validate early
    return nb


# {glue}`key`, {glue:text}`key:,.2f`, {glue:md}`key`; and ```{glue:figure} key (also :::{glue:figure})
_GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")
_GLUE_DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::(\w+))?\}\s+(\S+)", re.M)


def glue_references(nb, *, figures: bool = True) -> set[str]:
    """Return the glue keys the markdown cells of *nb* refer to, with roles or directives.

    ``figures=False`` leaves out the keys of ``{glue:figure}`` directives and any key named
    ``fig-...``: figures are glued by ``plotting.glue_figure``, not by a chapter's facts.

    >>> from nbformat.v4 import new_markdown_cell, new_notebook
    >>> nb = new_notebook(cells=[new_markdown_cell(
    ...     "{glue:text}`n:,` and {glue}`mean` and {glue:md}`tbl`\\n\\n:::{glue:figure} fig-a\\n:::\\n")])
    >>> sorted(glue_references(nb)), sorted(glue_references(nb, figures=False))
    (['fig-a', 'mean', 'n', 'tbl'], ['mean', 'n', 'tbl'])
    """
    refs = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            refs |= set(_GLUE_ROLE.findall(cell.source))
            refs |= {key for kind, key in _GLUE_DIRECTIVE.findall(cell.source) if figures or kind != "figure"}
    return refs if figures else {r for r in refs if not r.startswith("fig-")}


# ```{solution} LABEL ... ``` (also ```` or ::: fences; the same fence closes it, alone on its line)
_SOLUTION = re.compile(r"^(`{3,}|:{3,})\{solution\}[ \t]+(\S+)[ \t]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def exercise_solutions(nb_or_text) -> dict[str, str]:
    """Return ``{exercise label: code}`` for the ``{solution}`` directives of a chapter.

    *nb_or_text* is a notebook (its markdown cells are read) or MyST text. The code of a solution
    is its 4-space indented blocks, dedented and joined; a prose-only solution maps to ``""``.

    >>> text = ("```{solution} ex-a\\n:class: dropdown\\n\\n    x = 1\\n\\n    x + 1\\n\\nProse.\\n```\\n"
    ...         "```{solution} ex-b\\nOnly words.\\n```\\n"
    ...         "````{solution} ex-c\\n```python\\nnot indented\\n```\\n    y = 2\\n````\\n")
    >>> exercise_solutions(text)
    {'ex-a': 'x = 1\\n\\nx + 1', 'ex-b': '', 'ex-c': 'y = 2'}
    """
    import textwrap
    if isinstance(nb_or_text, str):
        text = nb_or_text
    else:
        text = "\n".join(c.source for c in nb_or_text.cells if c.cell_type == "markdown")
    out = {}
    for _, label, body in _SOLUTION.findall(text):
        blocks, current = [], []
        for line in body.splitlines():
            if line.startswith("    ") or (current and not line.strip()):
                current.append(line)
            elif current:
                blocks.append(textwrap.dedent("\n".join(current)).strip())
                current = []
        if current:
            blocks.append(textwrap.dedent("\n".join(current)).strip())
        out[label] = "\n\n".join(b for b in blocks if b)
    return out


def parameters_cell(nb):
    """Return the code cell tagged ``parameters``, or None."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    return None


def declared_parameters(code: str) -> list[str]:
    """Return the names assigned at top level in a parameters cell's code."""
    names = []
    for node in ast.parse(code).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def parameter_defaults(code: str) -> dict:
    """Return the literal default values of a parameters cell (non-literals are left out)."""
    out = {}
    for node in ast.parse(code).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            out.update({t.id: value for t in targets if isinstance(t, ast.Name)})
    return out


def notebook_options(nb, path: Path | str = "?") -> dict:
    """Return the notebook's ``kokoro_nb`` front-matter options, validated."""
    opts = nb.metadata.get("kokoro_nb") or {}
    if not isinstance(opts, dict):
        raise DataError("front matter `kokoro_nb` must be a mapping", file=str(path), field="kokoro_nb")
    for key, value in opts.items():
        if key not in OPTION_KEYS:
            raise DataError(f"unknown option {key!r}; allowed: {', '.join(OPTION_KEYS)}",
                            file=str(path), field="kokoro_nb")
        if key.endswith("_parameters") and not isinstance(value, dict):
            raise DataError("must be a mapping of parameter name to value", file=str(path),
                            field=f"kokoro_nb.{key}")
    declared = set(declared_parameters(parameters_cell(nb).source)) if parameters_cell(nb) else set()
    for key in ("book_parameters", "smoke_parameters"):
        unknown = sorted(set(opts.get(key, {})) - declared)
        if unknown:
            raise DataError(f"sets {', '.join(unknown)}, which the parameters cell does not declare",
                            file=str(path), field=f"kokoro_nb.{key}")
    return opts


def notebook_parameters(nb, name: str, *, data_dir=None, psy_insight_dir=None, sample=None,
                        lang=None, output_root: Path, extra: dict | None = None,
                        translation_dir=None) -> dict:
    """Return the parameters papermill injects into notebook *name* in the book build.

    Precedence: notebook defaults < ``book_parameters`` < pipeline values (data, sample,
    label language, output folder; only those the notebook declares, sample and lang only when
    set, sample not when ``book_parameters`` has one) < *extra* (the tests' smoke parameters).
    """
    declared = set(declared_parameters(parameters_cell(nb).source))
    params = dict(notebook_options(nb, name).get("book_parameters", {}))
    pipeline = {"data_dir": _str_or_none(data_dir), "psy_insight_dir": _str_or_none(psy_insight_dir),
                "translation_dir": _str_or_none(translation_dir), "sample": sample, "lang": lang, "output_dir": str(Path(output_root) / name)}
    if sample is None or "sample" in params:  # a chapter's own book sample wins (smoke training)
        del pipeline["sample"]
    if lang is None:
        del pipeline["lang"]
    params.update({k: v for k, v in pipeline.items() if k in declared})
    params.update(extra or {})
    return params


def _str_or_none(p) -> str | None:
    return None if p is None else str(Path(p).expanduser().resolve())


_HEADER_LINE = re.compile(rf"^  (?:{'|'.join(HEADER_KEYS)}):")


def execution_text(text: str) -> str:
    """Return a chapter source without its reader-only front matter (:data:`HEADER_KEYS`).

    What a stamp hashes (:mod:`kokoro_book.run`, :func:`kokoro_book.colab_markdown.check_executed`):
    editing a chapter's objectives re-renders it and its Colab copy, but does not run it again.
    Only the usual layout is recognised (each key two spaces under ``kokoro_nb:``, its value on
    that line or on lines indented further); the result is checked by parsing both front matters,
    and on any doubt the whole text is returned, so an odd layout costs a re-run, never a missed one.
    A ``kokoro_nb:`` left empty goes too, so the text equals that of the source before the keys
    were added.

    >>> src = "---\\nkernelspec: {}\\nkokoro_nb:\\n  gpu: no\\n  objectives:\\n    - Explain x\\n---\\n# T\\n"
    >>> execution_text(src)
    '---\\nkernelspec: {}\\n---\\n# T\\n'
    """
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return text
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        return text
    head, kept, block, skipping = lines[1:end], [], None, False
    for line in head:
        if not line.startswith(" ") and line.strip():
            block = len(kept) if re.match(r"^kokoro_nb:\s*$", line) else None
            skipping = False
        elif block is not None and _HEADER_LINE.match(line):
            skipping = True
            continue
        elif skipping and line.startswith(("   ", "  - ")):
            continue
        else:
            skipping = False
        kept.append(line)
    # drop a kokoro_nb: line left without children
    kept = [ln for i, ln in enumerate(kept)
            if not (re.match(r"^kokoro_nb:\s*$", ln) and not (i + 1 < len(kept) and kept[i + 1].startswith(" ")))]
    try:
        before = yaml.safe_load("\n".join(head)) or {}
        after = yaml.safe_load("\n".join(kept)) or {}
    except yaml.YAMLError:
        return text
    expected = dict(before)
    opts = {k: v for k, v in (expected.get("kokoro_nb") or {}).items() if k not in HEADER_KEYS} \
        if isinstance(expected.get("kokoro_nb"), dict) else expected.get("kokoro_nb")
    if opts:
        expected["kokoro_nb"] = opts
    else:
        expected.pop("kokoro_nb", None)
    if after != expected:
        return text
    return "\n".join([lines[0], *kept, *lines[end:]])


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write *data* unless the file already holds it (unchanged mtimes keep Sphinx incremental)."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True
