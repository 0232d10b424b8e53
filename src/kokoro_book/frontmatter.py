"""The chapter header: learning objectives, prerequisites, time and GPU, shown under the overview.

Its source of truth is the chapter's ``kokoro_nb`` front matter (see :mod:`kokoro_book.sources`)::

    kokoro_nb:
      objectives:                      # 2 to 4, each starting with a verb of OBJECTIVE_VERBS
        - Compute Spearman's rho of five dialogue features with the score.
        - Explain why sessions of one client are not independent draws.
      prerequisites:
        chapters: [03_scores]          # earlier chapters (names in _toc.yml); may be []
        methods: [spearman-rank-correlation, cluster-bootstrap]   # level-3 headings of the primer
      gpu: "no"                        # no, optional (CPU with a tiny model) or required

plus two numbers nobody types: the reading time, from the chapter's words and visible code
(:func:`reading_minutes`), and the run time of its Colab copy on the Colab simulation
(``book/_data/colab_run_times.json``, written by ``scripts/colab_sim.py --record``).

:func:`render` turns them into one plain-Markdown block (a list with bold labels and ordinary
links, valid in the book and in Colab) and :func:`insert` puts it as its own cell right after the
chapter's **Overview** paragraph. Both the staged book (:mod:`kokoro_book.stage`, chapter links
to the executed ``.ipynb``) and the Colab copy (:mod:`kokoro_book.colab`, whose
:mod:`~kokoro_book.colab_markdown` conversion then points every link at the published book) call
:func:`header_cell`. A chapter whose front matter has none of the three keys gets no header (a
draft, or a throw-away test book); one that has some must have all, valid, or the build stops
with the file and the field. ``tests/book/test_frontmatter.py`` requires every chapter of the
book to have one, with a measured run time.

>>> starts_with_verb("Compute the median."), starts_with_verb("The median is computed.")
(True, False)
>>> reading_time_text(7), run_time_text(42.0), run_time_text(150.0)
('about 7 min', 'under 1 min', 'about 3 min')
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kokoro_book.sources import (
    HEADER_KEYS,
    NOTEBOOK_DIR,
    chapters,
    notebook_options,
    read_notebook,
    source_path,
)
from kokoro_nb.errors import DataError

PRIMER = "book/methods_primer"                        # doc name; the file is PRIMER + ".md"
RUN_TIMES = "book/_data/colab_run_times.json"
TIMES_ANCHOR = "the-chapter-headers"                  # the primer section that explains the times
WORDS_PER_MINUTE = 200                                # prose
CODE_LINES_PER_MINUTE = 10                            # visible code: read slower, 6 s a line
HIDDEN_CODE_TAGS = ("remove-cell", "remove-input")    # code the book does not show
OBJECTIVES_MIN, OBJECTIVES_MAX, OBJECTIVE_CHARS = 2, 4, 160
GPU_TEXT = {
    "no": "not needed.",
    "optional": ("optional. The chapter runs on a CPU with a tiny model (put the book's "
                 "[CPU settings](../book/instructor_guide.md#the-cpu-settings) in its parameters "
                 "cell); the paper's 8B model needs a GPU."),
    "required": "required.",
}
# An objective starts with one of these imperative verbs (what a reader will be able to do);
# a short, fixed list keeps objectives concrete. Add a verb here when a chapter needs one.
OBJECTIVE_VERBS = frozenset((
    "account", "align", "apply", "assess", "build", "check", "choose", "compare", "compute",
    "count", "decide", "describe", "design", "detect", "distinguish", "draw", "estimate",
    "evaluate", "explain", "find", "fine-tune", "fit", "generate", "identify", "interpret", "join",
    "judge", "load", "locate", "measure", "name", "plan", "predict", "prepare", "read",
    "recompute", "recover", "relate", "reproduce", "resume", "run", "score", "separate",
    "simulate", "split", "state", "summarise", "tell", "test", "tokenize", "train", "trace", "use",
    "verify", "weigh", "write",
))


@dataclass
class Header:
    """A chapter's header, validated: what :func:`render` shows."""
    name: str
    objectives: list[str]
    chapters: list[str]
    methods: list[str]
    gpu: str
    read_minutes: int
    run_seconds: float | None            # None: not measured yet (a test fails on it)


def starts_with_verb(text: str) -> bool:
    """Return whether *text* starts with a verb of :data:`OBJECTIVE_VERBS` (any case)."""
    first = re.match(r"[A-Za-z-]+", text.strip())
    return bool(first) and first.group(0).lower() in OBJECTIVE_VERBS


def reading_minutes(nb) -> int:
    """Minutes to read a chapter: prose at 200 words a minute plus visible code at 10 lines a minute.

    Prose is every word (white-space separated) of the markdown cells, exercises and solutions
    included; code is every non-blank line of the code cells the book shows (not ``remove-cell``
    or ``remove-input``). Rounded to the nearest minute, at least 1.
    """
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    code = sum(sum(1 for line in c.source.splitlines() if line.strip()) for c in nb.cells
               if c.cell_type == "code" and not set(HIDDEN_CODE_TAGS) & set(c.metadata.get("tags", [])))
    minutes = words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE
    return max(1, round(minutes))


def reading_time_text(minutes: int) -> str:
    return f"about {minutes} min"


def run_time_text(seconds: float | None) -> str:
    if seconds is None:
        return "not yet measured"
    if seconds < 60:
        return "under 1 min"
    return f"about {math.ceil(seconds / 60)} min"


# --------------------------------------------------------------------------- what the book knows

class Context:
    """What headers are checked against, read once per build: the toc, the primer, the run times.

    *index* is the book index (:func:`kokoro_book.colab_markdown.book_index`) when the caller
    already has it.
    """

    def __init__(self, root: Path, index=None):
        self.root = Path(root)
        if index is not None:
            self.index = index

    @cached_property
    def index(self):
        """The book's titles and chapter numbers (:func:`kokoro_book.colab_markdown.book_index`)."""
        from kokoro_book.colab_markdown import book_index
        return book_index(self.root)

    @cached_property
    def chapters(self) -> list[str]:
        return chapters(self.root)

    @cached_property
    def methods(self) -> dict[str, str]:
        return primer_methods(self.root)

    @cached_property
    def run_times(self) -> dict[str, float]:
        return read_run_times(self.root)


def primer_methods(root: Path) -> dict[str, str]:
    """Return ``{anchor: heading}`` of every level-3 heading of the methods primer.

    The anchor is the heading's slug, which must be the same for MyST (the book's links,
    ``myst_heading_anchors``) and docutils (the HTML ``id`` the Colab copies link to); they agree
    on letters, digits, single spaces and hyphens, and a heading where they differ (``Spearman's
    rho``) is an error.
    """
    from docutils.nodes import make_id
    from myst_parser.mdit_to_docutils.base import default_slugify

    from kokoro_book.colab_markdown import _heading_text, _parse
    path = Path(root) / f"{PRIMER}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the methods primer ({exc.strerror})", file=str(path)) from None
    out: dict[str, str] = {}
    tokens = _parse(text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h3":
            title = _heading_text(tokens[i + 1]).strip()
            slug = default_slugify(title)
            line = tok.map[0] + 1 if tok.map else None
            if make_id(title) != slug:
                raise DataError(f"heading {title!r}: its anchor would be {slug!r} in the book's links "
                                f"but {make_id(title)!r} in the HTML; use letters, digits, spaces and "
                                "hyphens", file=str(path), line=line)
            if slug in out:
                raise DataError(f"heading {title!r}: a second method with the anchor {slug!r}",
                                file=str(path), line=line)
            out[slug] = title
    return out


def read_run_times(root: Path) -> dict[str, float]:
    """Return ``{chapter: seconds}`` from the Colab simulation's record (empty when absent)."""
    path = Path(root) / RUN_TIMES
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return {name: float(entry["seconds"]) for name, entry in record["notebooks"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"not a run-time record of scripts/colab_sim.py --record ({exc})",
                        file=str(path)) from None


# --------------------------------------------------------------------------- reading and checking

def _line_of(source: Path, key: str) -> int | None:
    """The line of ``  key:`` in the front matter of *source* (for the error message), or None."""
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines[1:], 2):
        if line.rstrip() == "---":
            return None
        if re.match(rf"^\s+{re.escape(key)}:", line):
            return i
    return None


def read_header(name: str, ctx: Context, nb=None) -> Header | None:
    """Return chapter *name*'s header, checked; None when its front matter has none of the keys.

    Every problem is one :class:`~kokoro_nb.errors.DataError` naming the source file, the line
    and the field (``kokoro_nb.objectives``...).
    """
    source = source_path(ctx.root, name)
    nb = read_notebook(source) if nb is None else nb
    opts = notebook_options(nb, source)
    if not any(k in opts for k in HEADER_KEYS):
        return None

    def error(key: str, problem: str) -> DataError:
        return DataError(problem, file=str(source), line=_line_of(source, key.split(".")[-1]),
                         field=f"kokoro_nb.{key}")

    for key in HEADER_KEYS:
        if opts.get(key) in (None, "", [], {}):
            raise error(key, "missing or empty: a chapter header needs objectives, prerequisites "
                             "and gpu (see kokoro_book.frontmatter)")
    objectives = opts["objectives"]
    if not isinstance(objectives, list) or not all(isinstance(o, str) and o.strip() for o in objectives):
        raise error("objectives", "must be a list of sentences")
    if not OBJECTIVES_MIN <= len(objectives) <= OBJECTIVES_MAX:
        raise error("objectives", f"has {len(objectives)} objectives; give {OBJECTIVES_MIN} to "
                                  f"{OBJECTIVES_MAX}")
    for o in objectives:
        if not starts_with_verb(o):
            raise error("objectives", f"{o!r} does not start with a verb of "
                                      "kokoro_book.frontmatter.OBJECTIVE_VERBS (Compute, Explain, ...)")
        if len(o) > OBJECTIVE_CHARS:
            raise error("objectives", f"{o[:40]!r}... is {len(o)} characters; keep each under "
                                      f"{OBJECTIVE_CHARS}")
    pre = opts["prerequisites"]
    if not isinstance(pre, dict) or set(pre) != {"chapters", "methods"}:
        raise error("prerequisites", "must be a mapping with exactly `chapters` and `methods` "
                                     "(lists, [] for none)")
    for key in ("chapters", "methods"):
        if not isinstance(pre[key], list) or not all(isinstance(x, str) for x in pre[key]):
            raise error(f"prerequisites.{key}", "must be a list of names ([] for none)")
    order = ctx.chapters
    here = order.index(name) if name in order else len(order)
    for ch in pre["chapters"]:
        if ch not in order:
            raise error("prerequisites.chapters", f"{ch!r} is not a chapter of _toc.yml "
                                                  f"(known: {', '.join(order)})")
        if order.index(ch) >= here:
            raise error("prerequisites.chapters", f"{ch!r} does not come before {name} in _toc.yml")
    if pre["methods"]:
        known = ctx.methods
        for m in pre["methods"]:
            if m not in known:
                raise error("prerequisites.methods", f"{m!r} is not a method heading of "
                                                     f"{PRIMER}.md (known: {', '.join(sorted(known))})")
    gpu = opts["gpu"]
    if isinstance(gpu, bool):     # YAML 1.1 reads a bare no as False
        gpu = "no" if gpu is False else gpu
    if gpu not in GPU_TEXT:
        raise error("gpu", f"{gpu!r}: must be one of {', '.join(GPU_TEXT)}")
    if opts.get("colab_gpu") and gpu == "no":
        raise error("gpu", "is no, but colab_gpu asks Colab for a GPU; say optional or required")
    if gpu == "required" and not opts.get("colab_gpu"):
        raise error("gpu", "is required, but colab_gpu is not set, so the Colab copy asks for no GPU")
    return Header(name, [o.strip() for o in objectives], list(pre["chapters"]), list(pre["methods"]),
                  gpu, reading_minutes(nb), ctx.run_times.get(name))


# --------------------------------------------------------------------------- rendering

def render(header: Header, ctx: Context, *, chapter_suffix: str = ".md") -> str:
    """Return the header as plain Markdown, links relative to ``notebooks/``.

    *chapter_suffix* is the file type of the other chapters where the links are read: ``.md``
    for the sources (the Colab conversion resolves those), ``.ipynb`` in the staged book.
    """
    index = ctx.index
    primer = f"../{PRIMER}.md"

    def chapter_link(ch: str) -> str:
        doc = f"{NOTEBOOK_DIR}/{ch}"
        title = index.titles.get(doc, ch)
        number = index.chapters.get(doc)
        return f"[{f'Chapter {number}: ' if number else ''}{title}]({ch}{chapter_suffix})"

    parts = []
    if header.chapters:
        parts.append(", ".join(chapter_link(c) for c in header.chapters) + ".")
    if header.methods:
        parts.append("Methods: " + ", ".join(f"[{ctx.methods[m]}]({primer}#{m})" for m in header.methods) + ".")
    tiny = " with the tiny model" if header.gpu != "no" and header.run_seconds is not None else ""
    lines = ["- **Learning objectives.**", *(f"  - {o}" for o in header.objectives),
             f"- **Prerequisites:** {' '.join(parts) if parts else 'none.'}",
             (f"- **Time:** {reading_time_text(header.read_minutes)} to read; "
              f"{run_time_text(header.run_seconds)} to run on Colab's free CPU{tiny} "
              f"([how measured]({primer}#{TIMES_ANCHOR}))."),
             f"- **GPU:** {GPU_TEXT[header.gpu]}"]
    return "\n".join(lines)


def header_cell(name: str, ctx: Context, nb=None, *, chapter_suffix: str = ".md"):
    """Return chapter *name*'s header as a markdown cell, or None when it has none."""
    import nbformat
    header = read_header(name, ctx, nb)
    if header is None:
        return None
    cell = nbformat.v4.new_markdown_cell(render(header, ctx, chapter_suffix=chapter_suffix))
    cell.metadata["tags"] = ["kokoro-header"]
    return cell


_OVERVIEW = re.compile(r"^\*\*Overview\.\*\*", re.MULTILINE)


def insert(nb, cell, *, file: str = "?") -> list:
    """Put *cell* into *nb* right after the Overview paragraph of its first markdown cell.

    The first cell is split there when more follows (the warnings of the training chapters), so
    the header always sits under the overview. Returns the cells added (the header first).
    """
    import nbformat
    first = nb.cells[0] if nb.cells else None
    match = _OVERVIEW.search(first.source) if first is not None and first.cell_type == "markdown" else None
    if match is None:
        raise DataError("the first markdown cell has no **Overview.** paragraph for the chapter "
                        "header to follow", file=file)
    end = re.search(r"\n[ \t]*\n", first.source[match.end():])
    cut = match.end() + end.start() if end else len(first.source)
    head, rest = first.source[:cut].rstrip(), first.source[cut:].strip("\n")
    first.source = head
    added = [cell]
    if rest.strip():
        added.append(nbformat.v4.new_markdown_cell(rest))
    # fixed ids: a random one would change the staged page at every build and make Sphinx
    # render it again; a notebook without cell ids (nbformat < 4.5) gets none
    for new, cell_id in zip(added, ("kokoro-header", "kokoro-after-header")):
        if "id" in first:
            new["id"] = cell_id
        else:
            new.pop("id", None)
    nb.cells[1:1] = added
    return added
