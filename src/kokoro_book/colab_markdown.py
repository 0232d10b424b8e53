"""Plain Markdown for the Colab copies: MyST roles and directives resolved, hidden cells as forms.

Colab renders CommonMark (plus ``<details>`` and ``$math$``), not MyST, and shows every cell the
book hides. :func:`convert` turns one chapter (read by jupytext from its MyST source) into what a
Colab reader should see:

- ``{glue:text}`key:fmt``` and friends become the values of the executed full-data build
  (``<build>/executed/NN_slug.ipynb``), formatted the way myst-nb formats them, with one note at
  the top saying where they come from;
- ``{glue:figure}`` fences become a caption cell (**Figure N.** ...) after the visible code cell
  that draws the figure (outside a book build ``kokoro_nb.show.glue.glue`` displays it);
- exercises become bold-numbered paragraphs, solutions collapsed ``<details>`` blocks, each in a
  cell of its own marked in the cell's metadata (``kokoro_nb: {exercise: label}`` or
  ``{solution: label}``), which is where :mod:`kokoro_book.teaching` finds them;
- admonitions become block quotes with a bold title;
- ``{doc}``, ``{ref}``, ``{numref}``, ``{cite}`` and links to other chapters point at the
  published book (``html.baseurl`` in ``_config.yml``);
- code cells the book removes or hides become Colab form cells (``# @title`` + ``cellView:
  form``): collapsed, still run, outputs shown.

Anything MyST this module does not know stops the conversion with the file and line, so no role
or directive reaches a Colab reader unconverted.

>>> format_glue("0.51234", ".1%"), format_glue("6589", ","), format_glue("'Workplace'", "")
('51.2%', '6,589', 'Workplace')
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kokoro_book.sources import toc_files
from kokoro_book.stamps import source_digest
from kokoro_nb.data.sources import dialogue_folder
from kokoro_nb.errors import DataError

HIDDEN_TAGS = ("remove-cell", "remove-input", "hide-input", "hide-cell")
GLUE_ROLES = ("glue", "glue:", "glue:any", "glue:text", "glue:md")
CITE_ROLES = ("cite", "cite:p", "cite:ps", "cite:t", "cite:ts", "cite:alp", "cite:year")
CODE_ROLES = ("func", "meth", "class", "mod", "attr", "data", "obj", "exc", "py:func", "py:class",
              "py:meth", "py:mod", "py:attr", "py:obj", "code", "samp", "file", "command", "envvar")
ADMONITIONS = {"admonition": "", "note": "Note", "warning": "Warning", "tip": "Tip",
               "important": "Important", "hint": "Hint", "caution": "Caution",
               "attention": "Attention", "danger": "Danger", "error": "Error", "seealso": "See also"}
FIGURE_DIRECTIVES = ("glue:figure", "figure")
# Values measured on the machine that built the book (timings, speeds, the device): they differ
# on every run, so the in-sync check accepts any value for them instead of failing on noise.
MACHINE_DEPENDENT = re.compile(r"(seconds|_per_s|_device)$")
# Where a value goes when a copy is compared without a build (see colab.check_structure).
WILDCARD = "\x00any\x00"

_ROLE_OR_CODE = re.compile(r"(?P<role>\{(?P<name>[A-Za-z0-9_+:-]+)\})?(?P<ticks>`+)"
                           r"(?P<body>[\s\S]*?[^`])(?P=ticks)(?!`)")
_LINK = re.compile(r"(?<!!)\]\((?P<target>[^)\s]+)\)")
_TEXT_TARGET = re.compile(r"^(?P<text>[\s\S]*?)\s*<(?P<target>[^<>]+)>$")
_MD_ESCAPE = re.compile(r"([\\`*_\[\]<>|$])")
LEFTOVER = re.compile(r"\{[A-Za-z][A-Za-z0-9_+:-]*\}`|^ {0,3}(?:`{3,}|~{3,}|:{3,})\s*\{|"
                      r"^ {0,3}\([A-Za-z0-9_.:-]+\)=\s*$|^:[a-z][a-z_-]*:( |$)", re.M)
"""A MyST role, a directive fence (backticks, tildes or colons), a ``(label)=`` target or a
directive option line: none of them may be left in a Colab copy's Markdown."""


def format_glue(text_plain: str, fmt_spec: str) -> str:
    """Format a glued ``text/plain`` value as myst-nb's ``{glue:text}`` does."""
    from myst_nb.core.variables import format_plain_text  # the book's own rule
    return format_plain_text(text_plain, fmt_spec)


def _parser():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser
    cfg = MdParserConfig(enable_extensions={"colon_fence", "deflist", "linkify", "substitution"})
    return create_md_parser(cfg, RendererHTML)


_MD = None


def _parse(text: str):
    global _MD
    if _MD is None:
        _MD = _parser()
    return _MD.parse(text)


# --------------------------------------------------------------------------- directives

@dataclass
class Directive:
    """One MyST directive fence: name, argument, options, body text and its line range."""
    name: str
    argument: str
    options: dict
    body: str
    start: int
    end: int


def _directive(token) -> Directive | None:
    info = token.info.strip()
    m = re.match(r"^\{([^}]+)\}\s*(.*)$", info)
    if token.type not in ("fence", "colon_fence") or not m:
        return None
    lines = token.content.split("\n")
    options: dict = {}
    if lines and lines[0].strip() == "---":            # YAML options block
        close = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if close is not None:
            options = yaml.safe_load("\n".join(lines[1:close])) or {}
            lines = lines[close + 1:]
    else:
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            key, _, value = lines.pop(0)[1:].partition(":")
            options[key] = value.strip()
    return Directive(m.group(1), m.group(2).strip(), options, "\n".join(lines).strip("\n"),
                     token.map[0], token.map[1])


def directives(text: str):
    """Yield every directive in *text* in document order, nested ones after their parent."""
    for token in _parse(text):
        d = _directive(token) if token.map else None
        if d is None:
            continue
        yield d
        if d.name not in ("code-cell", "code-block", "code"):
            yield from directives(d.body)


def split_exercises(text: str) -> list[tuple[str, dict]]:
    """Split MyST *text* so that each top-level ``{exercise}`` and ``{solution}`` is a chunk.

    Returns ``[(text, mark)]`` in order; *mark* is ``{}`` for prose, ``{"exercise": label}`` or
    ``{"solution": label}`` (the exercise's label) for a directive.

    >>> split_exercises("Intro.\\n\\n```{exercise}\\n:label: ex-a\\n\\nDo it.\\n```\\n\\n"
    ...                 "```{solution} ex-a\\nDone.\\n```\\nMore.")  # doctest: +NORMALIZE_WHITESPACE
    [('Intro.', {}), ('```{exercise}\\n:label: ex-a\\n\\nDo it.\\n```', {'exercise': 'ex-a'}),
     ('```{solution} ex-a\\nDone.\\n```', {'solution': 'ex-a'}), ('More.', {})]
    """
    lines = text.split("\n")
    out, pos = [], 0

    def prose(a: int, b: int) -> None:
        chunk = "\n".join(lines[a:b]).strip("\n")
        if chunk.strip():
            out.append((chunk, {}))
    for tok in _parse(text):
        if tok.level != 0 or not tok.map or tok.nesting < 0:
            continue
        d = _directive(tok)
        if d is None or d.name not in ("exercise", "solution"):
            continue
        start, end = tok.map
        prose(pos, start)
        label = d.options.get("label", "") if d.name == "exercise" else d.argument
        out.append(("\n".join(lines[start:end]).strip("\n"), {d.name: label}))
        pos = end
    prose(pos, len(lines))
    return out


# --------------------------------------------------------------------------- the book index

@dataclass
class Target:
    """Where a label points: a page of the book, an anchor and the text a reference shows."""
    doc: str
    anchor: str
    text: str


@dataclass
class BookIndex:
    """Titles, labels, numbers and citations of the whole book, for references across pages."""
    base_url: str
    titles: dict = field(default_factory=dict)        # doc -> title
    targets: dict = field(default_factory=dict)       # label -> Target
    numbers: dict = field(default_factory=dict)       # (doc, kind) -> ["3.1", ...] in order
    citations: dict = field(default_factory=dict)     # bibtex key -> ("Qi et al.", "2025")
    chapters: dict = field(default_factory=dict)      # doc -> the chapter number the book shows
    numfig_format: dict = field(default_factory=dict)

    def url(self, doc: str, anchor: str = "") -> str:
        return f"{self.base_url}{doc}.html" + (f"#{anchor}" if anchor else "")


def base_url(root: Path) -> str:
    """Return the published book's address, ``html.baseurl`` in ``_config.yml`` (ends in /)."""
    path = Path(root) / "_config.yml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    url = (cfg.get("html") or {}).get("baseurl")
    if not url:
        raise DataError("html.baseurl is not set; the Colab copies link to the published book "
                        "there", file=str(path), field="html.baseurl")
    return str(url).rstrip("/") + "/"


def _chapter_numbers(root: Path, multitoc: bool) -> dict:
    """Return doc -> chapter number, as Jupyter Book numbers the parts marked ``numbered``."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8")) or {}
    out, n = {}, 0
    for part in toc.get("parts") or [{"chapters": toc.get("chapters") or [],
                                      "numbered": toc.get("numbered", False)}]:
        if not multitoc:
            n = 0
        for chapter in part.get("chapters") or []:
            if part.get("numbered") and isinstance(chapter.get("file"), str):
                n += 1
                out[chapter["file"].removesuffix(".md")] = str(n)
    return out


def _heading_text(inline) -> str:
    text = inline.content
    return _ROLE_OR_CODE.sub(lambda m: m.group("body") if m.group("role") else m.group(0), text)


def book_index(root: Path) -> BookIndex:
    """Read every page of the book (toc order) into a :class:`BookIndex`."""
    root = Path(root)
    cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    sphinx_cfg = ((cfg.get("sphinx") or {}).get("config") or {})
    index = BookIndex(base_url(root), numfig_format={
        "figure": "Figure %s", "exercise": "Exercise %s", **(sphinx_cfg.get("numfig_format") or {})})
    chapters = _chapter_numbers(root, (cfg.get("html") or {}).get("use_multitoc_numbering", True))
    index.chapters = chapters
    for doc in toc_files(root):
        doc = doc.removesuffix(".md").removesuffix(".ipynb")
        path = root / f"{doc}.md"
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        tokens = _parse(text)
        pending = None
        for i, tok in enumerate(tokens):
            if tok.type == "myst_target":
                pending = tok.content
            elif tok.type == "heading_open":
                title = _heading_text(tokens[i + 1])
                index.titles.setdefault(doc, title)
                if pending:
                    index.targets[pending] = Target(doc, pending, title)
                pending = None
        prefix = chapters.get(doc)
        counts = {"figure": 0, "exercise": 0}
        for d in directives(text):
            kind = ("figure" if d.name in FIGURE_DIRECTIVES and d.body.strip() else
                    "exercise" if d.name == "exercise" and "nonumber" not in d.options else None)
            if kind is None:
                continue
            counts[kind] += 1
            number = f"{prefix}.{counts[kind]}" if prefix else str(counts[kind])
            index.numbers.setdefault((doc, kind), []).append(number)
            label = d.options.get("name") or d.options.get("label")
            if label:
                index.targets[label] = Target(doc, label, index.numfig_format[kind] % number)
    bib = root / "references.bib"
    if bib.is_file():
        from pybtex.database import parse_file
        for key, entry in parse_file(str(bib)).entries.items():
            last = [" ".join(p.last_names).replace("{", "").replace("}", "")
                    for p in entry.persons.get("author", [])]
            who = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
                   else f"{last[0]} et al." if last else key)
            index.citations[key] = (who, entry.fields.get("year", "n.d."))
    return index


# --------------------------------------------------------------------------- glue values

def glue_values(executed) -> dict:
    """Return key -> output data (mime bundle) of every value a notebook glued (myst-nb's rule)."""
    import copy

    from myst_nb.ext.glue import extract_glue_data_cell
    out = {}
    for cell in executed.cells:
        if cell.cell_type == "code":
            for key, output in extract_glue_data_cell(copy.deepcopy(cell)):
                out[key] = output["data"]
    return out


# --------------------------------------------------------------------------- converting Markdown

class Converter:
    """Converts the Markdown cells of one page; *glue* None leaves every value as a wildcard."""

    def __init__(self, index: BookIndex, doc: str, glue: dict | None, *, source: Path | None = None,
                 exact: bool = True):
        self.index, self.doc, self.glue, self.exact = index, doc, glue, exact
        self.source = source
        self._source_text = source.read_text(encoding="utf-8") if source and source.is_file() else ""
        self.counts = {"figure": 0, "exercise": 0}
        self.figures: list[tuple[str, str]] = []      # (glue key, caption Markdown) of this cell
        self.resolved = 0

    # errors name the source file and the line where the construct is
    def error(self, problem: str, snippet: str) -> DataError:
        line = None
        pos = self._source_text.find(snippet.strip().split("\n")[0]) if snippet.strip() else -1
        if pos >= 0:
            line = self._source_text.count("\n", 0, pos) + 1
        return DataError(problem, file=str(self.source or self.doc), line=line)

    def markdown(self, text: str) -> str:
        """Return *text* as plain Markdown; figure fences go to :attr:`figures`."""
        lines = text.split("\n")
        out, pos = [], 0
        for tok in _parse(text):
            if tok.level != 0 or not tok.map or tok.nesting < 0:
                continue
            start, end = tok.map
            if start < pos:
                continue
            out.extend(lines[pos:start])
            chunk = "\n".join(lines[start:end])
            directive = _directive(tok)
            if directive is not None:
                converted = self.directive(directive, chunk)
                if converted is not None:
                    out.append(converted)
            elif tok.type in ("myst_target", "myst_line_comment", "myst_block_break", "front_matter"):
                pass
            elif tok.type in ("fence", "code_block", "html_block"):
                out.append(chunk)
            else:
                out.append(self.inline(chunk))
            pos = end
        out.extend(lines[pos:])
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")

    # ----------------------------------------------------------------- directives

    def directive(self, d: Directive, chunk: str) -> str | None:
        if d.name in ADMONITIONS:
            title = d.argument if d.name == "admonition" else ADMONITIONS[d.name]
            body = self.markdown(d.body)
            if "dropdown" in str(d.options.get("class", "")).split():
                return self.details(self.inline(title or "Details"), body)
            head = f"**{self.inline(title)}**" if title else ""
            quoted = "\n".join(f"> {line}".rstrip() for line in body.split("\n"))
            return f"> {head}\n>\n{quoted}" if head else quoted
        if d.name == "exercise":
            number = self.number("exercise", d)
            title = f" ({self.inline(d.argument)})" if d.argument else ""
            head = f"**Exercise {number}{title}.**" if number else f"**Exercise{title}.**"
            body = self.markdown(d.body)
            # a list, quote, heading, table or code block starts its own paragraph; **bold** does not
            starts_with_text = body and not re.match(r"^(\s*[-*+]\s|\s*[>#|]|\s*\d+[.)]\s|\s{4}|```)",
                                                     body)
            return f"{head} {body}" if starts_with_text else f"{head}\n\n{body}"
        if d.name == "solution":
            target = self.index.targets.get(d.argument)
            summary = f"Solution to {target.text}" if target else "Solution"
            return self.details(summary, self.markdown(self.fenced_code(d.body)))
        if d.name in FIGURE_DIRECTIVES:
            if d.name == "figure":
                raise self.error("a {figure} directive has no Colab form; glue the figure "
                                 "(plotting.glue_figure) and use {glue:figure}", chunk)
            number = self.number("figure", d) if d.body.strip() else None
            caption = " ".join(self.markdown(d.body).split("\n")).strip()
            label = self.index.numfig_format["figure"] % number if number else ""
            self.figures.append((d.argument, f"**{label}.** {caption}".strip() if label else caption))
            return None
        raise self.error(f"directive {{{d.name}}} has no plain-Markdown form for Colab; "
                         "teach kokoro_book.colab_markdown.Converter.directive", chunk)

    def number(self, kind: str, d: Directive) -> str | None:
        if kind == "exercise" and "nonumber" in d.options:
            return None
        numbers = self.index.numbers.get((self.doc, kind), [])
        self.counts[kind] += 1
        return numbers[self.counts[kind] - 1] if self.counts[kind] <= len(numbers) else str(self.counts[kind])

    @staticmethod
    def details(summary: str, body: str) -> str:
        return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"

    @staticmethod
    def fenced_code(body: str) -> str:
        """Turn a solution's indented code blocks into fenced ```python blocks."""
        lines = body.split("\n")
        out = list(lines)
        for tok in reversed([t for t in _parse(body) if t.type == "code_block" and t.level == 0]):
            start, end = tok.map
            out[start:end] = ["```python", *tok.content.rstrip("\n").split("\n"), "```"]
        return "\n".join(out)

    # ----------------------------------------------------------------- inline

    def inline(self, text: str) -> str:
        def code_or_role(m):
            if not m.group("role"):
                return m.group(0)
            return self.role(m.group("name"), m.group("body"), m.group(0))
        parts, last = [], 0
        for m in _ROLE_OR_CODE.finditer(text):    # links only outside code spans
            parts.append(self.links(text[last:m.start()]))
            parts.append(code_or_role(m))
            last = m.end()
        parts.append(self.links(text[last:]))
        return "".join(parts)

    def links(self, text: str) -> str:
        def repl(m):
            target = m.group("target")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):     # http:, mailto: ...
                return m.group(0)
            path, _, anchor = target.partition("#")
            if not path:
                return f"]({self.index.url(self.doc, anchor)})"
            if not re.search(r"\.(md|ipynb)$", path):
                return m.group(0)
            return f"]({self.index.url(self.resolve_doc(path, m.group(0)), anchor)})"
        return _LINK.sub(repl, text)

    def resolve_doc(self, path: str, snippet: str) -> str:
        path = re.sub(r"\.(md|ipynb)$", "", path)
        parts = (path.lstrip("/") if path.startswith("/") else f"{Path(self.doc).parent}/{path}").split("/")
        out: list[str] = []
        for p in parts:
            if p == "..":
                if out:
                    out.pop()
            elif p not in (".", ""):
                out.append(p)
        doc = "/".join(out)
        if doc not in self.index.titles:
            raise self.error(f"{snippet}: no page {doc} in _toc.yml", snippet)
        return doc

    def role(self, name: str, body: str, snippet: str) -> str:
        m = _TEXT_TARGET.match(body)
        text, target = (m.group("text"), m.group("target")) if m else (None, body)
        if name in GLUE_ROLES:
            return self.glue_value(name, body, snippet)
        if name == "doc":
            doc = self.resolve_doc(target, snippet)
            return f"[{text or self.index.titles[doc]}]({self.index.url(doc)})"
        if name in ("ref", "numref"):
            t = self.index.targets.get(target)
            if t is None:
                raise self.error(f"{snippet}: no label {target!r} in the book", snippet)
            shown = t.text
            if name == "numref" and text:
                number = t.text.split(" ", 1)[-1]
                shown = text.replace("%s", number).replace("{number}", number)
            elif text:
                shown = text
            if t.doc == self.doc:          # the figure or section is in this notebook
                return shown
            return f"[{shown}]({self.index.url(t.doc, t.anchor)})"
        if name in CITE_ROLES:
            refs = self.index.url("book/references")
            cites = []
            for key in (k.strip() for k in target.split(",")):
                if key not in self.index.citations:
                    raise self.error(f"{snippet}: no entry {key!r} in references.bib", snippet)
                cites.append(self.index.citations[key])
            if name in ("cite:t", "cite:ts"):
                return "; ".join(f"[{who} ({year})]({refs})" for who, year in cites)
            return "(" + "; ".join(f"[{who} {year}]({refs})" for who, year in cites) + ")"
        if name == "download":
            return f"[{text or Path(target).name}]({self.index.url(self.doc)})"
        if name in CODE_ROLES:
            return f"`{(text or target).lstrip('~')}`"
        raise self.error(f"role {{{name}}} has no plain-Markdown form for Colab; teach "
                         "kokoro_book.colab_markdown.Converter.role", snippet)

    def glue_value(self, name: str, body: str, snippet: str) -> str:
        key, fmt = (body.rsplit(":", 1) if name == "glue:text" and ":" in body else (body, None))
        if name == "glue:md" and ":" in body:
            key = body.rsplit(":", 1)[0]
        if "::" in body:
            raise self.error(f"{snippet}: glue from another page has no Colab form", snippet)
        self.resolved += 1
        if self.glue is None or (not self.exact and MACHINE_DEPENDENT.search(key)):
            return WILDCARD
        data = self.glue.get(key)
        if data is None:
            raise self.error(f"{snippet}: the executed notebook glued no {key!r}", snippet)
        if name in ("glue:md", "glue", "glue:", "glue:any") and "text/markdown" in data:
            return str(data["text/markdown"]).strip()
        if "text/plain" not in data:
            raise self.error(f"{snippet}: {key!r} has no text form to put in the prose", snippet)
        try:
            value = format_glue(data["text/plain"], fmt if fmt is not None else ("s" if name == "glue:text" else ""))
        except (ValueError, TypeError) as exc:
            raise self.error(f"{snippet}: cannot format {key!r} ({exc})", snippet) from None
        return _MD_ESCAPE.sub(r"\\\1", value)


# --------------------------------------------------------------------------- whole notebooks

def _glue_call(key: str) -> re.Pattern:
    return re.compile(r"\bglue(?:_figure)?\(\s*[\"']" + re.escape(key) + r"[\"']")


def form_title(source: str, tags: list[str]) -> str:
    """Return a short description for a Colab form cell holding *source*."""
    first = source.lstrip().split("\n", 1)[0]
    if first.startswith("#") and not first.startswith("#!"):
        title = re.sub(r"\s*\([^)]*\)\s*$", "", first.lstrip("# ").split(". ")[0].rstrip("."))
        return title if len(title) <= 70 else title[:69].rsplit(" ", 1)[0] + "…"
    if re.search(r"\bload_kokorochat\(|^import |^from \S+ import", source, re.M) and \
            re.search(r"^(import|from) ", source, re.M):
        return "Imports and data" if "load_kokorochat(" in source else "Imports"
    glued = re.findall(r"\bglue\(", source)
    if glued and "remove-cell" in tags:
        return "Values quoted in the text"
    if re.search(r"\b(plt|sns|ax)\.", source):
        return "Draw the figure"
    if re.search(r"\.style\b|DataFrame|\.to_frame\(", source):
        return "Build the table"
    return "Code hidden in the book"


def as_form(cell, title: str) -> None:
    """Make *cell* a Colab form: a ``# @title`` first line and ``cellView: form``."""
    cell.source = f"# @title {title}\n{cell.source}"
    cell.metadata["cellView"] = "form"


def stamp_of(executed_path: Path) -> dict:
    """Return the build stamp beside an executed notebook (``NN_slug.stamp.json``)."""
    path = executed_path.with_suffix(".stamp.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError("no readable build stamp beside the executed notebook; run `make book`",
                        file=str(path)) from None


def numbers_note(stamp: dict, book_sample) -> str:
    """Return the one-line note on where the numbers in the prose come from."""
    params = stamp.get("parameters") or {}
    sample = params.get("sample")
    if sample is not None:
        return (f"*Numbers in the text come from the book's build, which runs this chapter on "
                f"{int(sample):,} dialogues (`sample = {sample}`); re-running a cell may change them.*")
    count = ""
    data = params.get("data_dir")
    if data and Path(data).is_dir():
        n = sum(1 for _ in dialogue_folder(Path(data)).glob("*.json"))
        count = f" (all {n:,} dialogues)" if n else ""
    return (f"*Numbers in the text come from the full-data build of the book{count}; re-running a "
            "cell may change them (e.g. with `sample`).*")


def check_executed(name: str, source: Path, executed_path: Path, book_sample) -> dict:
    """Return the stamp of chapter *name*'s executed notebook, or raise one clear error."""
    if not executed_path.is_file():
        raise DataError(f"{name}: no executed notebook {executed_path}; the Colab copies take "
                        "their numbers from the full-data build: run `make book` first")
    stamp = stamp_of(executed_path)
    sample = (stamp.get("parameters") or {}).get("sample")
    if sample is not None and sample != book_sample:
        raise DataError(f"{name}: {executed_path} comes from a --sample {sample} build; the Colab "
                        "copies quote the full data: run `make book` (no --sample) first")
    if stamp.get("source") != source_digest(source.read_text(encoding="utf-8")):
        raise DataError(f"{name}: {executed_path} was run on an older version of {source.name}; "
                        "run `make book` first")
    return stamp


def convert(nb, name: str, source: Path, index: BookIndex, executed=None, note: str | None = None,
            *, exact: bool = True):
    """Convert notebook *nb* (read from *source*) in place for Colab; see the module docstring.

    *executed* is the executed notebook whose glue values the prose quotes; None leaves every
    value (and the note) as :data:`WILDCARD`, for comparing structure without a build.
    """
    import nbformat

    doc = f"notebooks/{name}"
    glue = glue_values(executed) if executed is not None else None
    conv = Converter(index, doc, glue, source=source, exact=exact)
    cells = []
    pending: list[tuple[str, str]] = []
    for cell in _exercise_cells(nb.cells):
        if cell.cell_type == "markdown":
            conv.figures = []
            cell.source = conv.markdown(cell.source)
            pending += conv.figures
            if cell.source.strip():
                cells.append(cell)
            continue
        cells.append(cell)
    # captions go right after the cell that draws their figure; that cell stays visible
    for key, caption in pending:
        owner = next((c for c in cells if c.cell_type == "code" and _glue_call(key).search(c.source)), None)
        if owner is None:
            raise conv.error(f"{{glue:figure}} {key}: no code cell glues {key!r}", f"{key}")
        owner.metadata["kokoro_figure"] = True
        at = cells.index(owner) + 1
        while at < len(cells) and cells[at].metadata.get("kokoro_caption"):
            at += 1
        caption_cell = nbformat.v4.new_markdown_cell(caption)
        caption_cell.metadata["kokoro_caption"] = True
        cells.insert(at, caption_cell)
    for cell in cells:
        cell.metadata.pop("kokoro_caption", None)
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if cell.metadata.pop("kokoro_figure", False):
            continue
        if any(t in tags for t in HIDDEN_TAGS):
            as_form(cell, form_title(cell.source, tags))
    if conv.resolved and cells and cells[0].cell_type == "markdown":
        cells[0].source += "\n\n" + (note if note is not None and executed is not None else WILDCARD)
    number = index.chapters.get(doc)
    if number and cells and cells[0].cell_type == "markdown":
        # the file is named by its place in the sources (20_...), the book numbers chapters in
        # reading order (11): the title carries the book's number, so "chapter 11" is found
        cells[0].source = re.sub(r"\A# ", f"# {number}. ", cells[0].source, count=1)
    nb.cells = cells
    return nb


def _exercise_cells(cells: list) -> list:
    """Return *cells* with each exercise and solution in a markdown cell of its own, marked."""
    import nbformat
    out = []
    for cell in cells:
        chunks = split_exercises(cell.source) if cell.cell_type == "markdown" else []
        if len(chunks) <= 1 and not any(mark for _, mark in chunks):
            out.append(cell)
            continue
        for text, mark in chunks:
            new = nbformat.v4.new_markdown_cell(text, metadata=dict(cell.metadata))
            if mark:
                new.metadata["kokoro_nb"] = mark
            out.append(new)
    return out


def leftovers(markdown: str) -> list[str]:
    """Return the MyST constructs (roles, fences, targets, options) left in *markdown*."""
    return [m.group(0).strip() for m in LEFTOVER.finditer(markdown)]
