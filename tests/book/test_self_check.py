"""Every chapter ends its prose with a self-check: 2-3 quick questions, each answered on click.

The section ``## Check your understanding`` comes right before ``## Exercises``. Each question
is prose (a paragraph; options of a multiple-choice question as a list) followed by its answer
in a collapsed admonition::

    ```{admonition} Answer
    :class: dropdown

    ...
    ```

which sphinx-togglebutton folds in the book and :mod:`kokoro_book.colab_markdown` turns into a
``<details>`` block on Colab. The checks parse the chapter sources; the Colab side converts each
chapter without a build (numbers as wildcards), which is enough to see the form of every answer.
That every number an answer quotes was glued is checked by tests/book/test_notebooks.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from kokoro_book import colab, frontmatter, sources
from kokoro_book import colab_markdown as cm

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sources.notebook_sources(ROOT)
SECTION, NEXT = "Check your understanding", "Exercises"
ANSWER = "Answer"
MIN_QUESTIONS, MAX_QUESTIONS = 2, 3
# MyST tokens that are neither prose nor an answer: a `+++` cell break, a `(label)=`, a % comment
IGNORED = ("myst_block_break", "myst_target", "myst_line_comment")
DETAILS = re.compile(r"<details>\n<summary>(?P<summary>[^\n]*)</summary>\n\n(?P<body>.*?)\n\n</details>", re.DOTALL)
PRIMER_LINK = re.compile(r"\]\(\.\./book/methods_primer\.md#(?P<anchor>[^)\s]+)\)")


class SelfCheckError(ValueError):
    """A self-check section that breaks the rules; the message names the file and the line."""


@dataclass
class Question:
    line: int          # first line of the question in the file (1-based)
    text: str          # the question's Markdown
    answer: str        # the body of its Answer dropdown


def _blank_front_matter(text: str) -> str:
    """Blank out a leading ``---`` front matter (its closing line would parse as a heading)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            lines[:end + 1] = [""] * (end + 1)
    return "\n".join(lines)


def self_check(text: str, file: str = "<text>") -> list[Question]:
    """Return the questions of the chapter's self-check, or raise :class:`SelfCheckError`."""
    lines = text.split("\n")
    tokens = cm._parse(_blank_front_matter(text))

    def error(line: int, problem: str) -> SelfCheckError:
        return SelfCheckError(f"{file}:{line}: {problem}")

    headings = [(i, tok.map[0] + 1, tok.tag, tokens[i + 1].content.strip())
                for i, tok in enumerate(tokens) if tok.type == "heading_open"]
    found = [h for h in headings if h[3] == SECTION]
    if not found:
        raise SelfCheckError(f"{file}: no '## {SECTION}' section; put {MIN_QUESTIONS}-{MAX_QUESTIONS} "
                             f"questions right before '## {NEXT}'")
    if len(found) > 1:
        raise error(found[1][1], f"a second '{SECTION}' heading")
    at, line, tag, _ = found[0]
    if tag != "h2":
        raise error(line, f"'{SECTION}' must be a level-2 heading (##)")
    after = [h for h in headings if h[0] > at]
    if not after or (after[0][2], after[0][3]) != ("h2", NEXT):
        shown = f"'{after[0][3]}' at line {after[0][1]}" if after else "none"
        raise error(line, f"the '{SECTION}' section must come right before '## {NEXT}' "
                          f"(the next heading is {shown})")
    questions, pending = [], []
    for tok in tokens[at + 3:after[0][0]]:            # after heading_open, inline, heading_close
        if tok.level != 0 or tok.nesting == -1 or not tok.map or tok.type in IGNORED:
            continue
        start = tok.map[0] + 1
        d = cm._directive(tok) if tok.type in ("fence", "colon_fence") else None
        if d is None:                                   # prose of the next question
            pending.append(tok)
            continue
        if d.name != "admonition" or d.argument != ANSWER:
            raise error(start, f"{{{d.name}}} {d.argument}".rstrip() + " in the self-check; an answer "
                               f"is an ```{{admonition}} {ANSWER} with :class: dropdown")
        if "dropdown" not in str(d.options.get("class", "")).split():
            raise error(start, "the answer is shown, not collapsed: add ':class: dropdown'")
        if not pending:
            raise error(start, "an answer without a question before it")
        if not d.body.strip():
            raise error(start, "an empty answer")
        first, last = pending[0].map[0], pending[-1].map[1]
        questions.append(Question(first + 1, "\n".join(lines[first:last]).strip(), d.body))
        pending = []
    if pending:
        raise error(pending[0].map[0] + 1, f"a question without an answer (an ```{{admonition}} "
                                           f"{ANSWER} with :class: dropdown after it)")
    if not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
        raise error(line, f"{len(questions)} question(s); give {MIN_QUESTIONS} to {MAX_QUESTIONS}")
    return questions


def colab_self_check(markdown: str) -> tuple[list[tuple[str, str, str]], str]:
    """Return the (question, summary, answer) triples of a Colab copy's self-check and the section.

    Each answer must be a ``<details>`` block after its question's text; anything left after
    the last one is an error.
    """
    start = markdown.find(f"## {SECTION}\n")
    end = markdown.find(f"## {NEXT}\n", start)
    if start < 0 or end < 0:
        raise SelfCheckError(f"no '## {SECTION}' section before '## {NEXT}' in the Colab Markdown")
    section = markdown[start + len(SECTION) + 4:end]
    found, last = [], 0
    for m in DETAILS.finditer(section):
        found.append((section[last:m.start()].strip(), m["summary"], m["body"].strip()))
        last = m.end()
    if section[last:].strip():
        raise SelfCheckError(f"text after the last <details> answer: {section[last:].strip()[:60]!r}")
    return found, section


# --------------------------------------------------------------------------- the checker

def section(*parts: str, after: str = f"## {NEXT}\n\nDo this.\n") -> str:
    """A chapter with front matter, a first section, the self-check *parts* and *after*."""
    return ("---\njupytext:\n  text_representation:\n    format_name: myst\n---\n\n# Title\n\n"
            "## Results\n\nText.\n\n" + f"## {SECTION}\n\n" + "".join(parts) + after)


def q(text: str = "Why?") -> str:
    return f"{text}\n\n"


def a(body: str = "Because.", options: str = ":class: dropdown\n", name: str = "admonition",
      title: str = ANSWER) -> str:
    return f"```{{{name}}} {title}\n{options}\n{body}\n```\n\n"


def test_a_good_section_gives_its_questions_with_their_lines():
    text = section(q("What is a turn?"), a("Merged messages."),
                   q("Which holds?\n\n- (a) one\n- (b) two"), a("(b), because."))
    got = self_check(text, "x.md")
    assert [g.text for g in got] == ["What is a turn?", "Which holds?\n\n- (a) one\n- (b) two"]
    assert [g.answer for g in got] == ["Merged messages.", "(b), because."]
    assert [text.split("\n")[g.line - 1] for g in got] == ["What is a turn?", "Which holds?"]


@pytest.mark.parametrize("parts, problem", [
    ((q(), a()), r"1 question\(s\); give 2 to 3"),
    ((q(), a()) * 4, r"4 question\(s\); give 2 to 3"),
    ((q(), a(), q(), a(options="")), "not collapsed"),
    ((q(), a(), q(), a(options=":class: tip\n")), "not collapsed"),
    ((q(), a(), q(), a(name="note", title="")), r"\{note\} in the self-check"),
    ((q(), a(), q(), a(title="Solution")), r"\{admonition\} Solution in the self-check"),
    ((q(), a(), q(), "```{code-cell} ipython3\nx = 1\n```\n\n"), r"\{code-cell\} ipython3 in the self-check"),
    ((q(), a(), a()), "an answer without a question"),
    ((a(), q(), a()), "an answer without a question"),
    ((q(), a(), q(), a(), q("Left open?")), "a question without an answer"),
    ((q(), a(), q(), a(body="")), "an empty answer"),
])
def test_a_broken_section_names_file_line_and_problem(parts, problem):
    with pytest.raises(SelfCheckError, match=r"^x\.md:\d+: .*" + problem):
        self_check(section(*parts), "x.md")


def test_the_line_points_at_the_offending_answer():
    text = section(q(), a(), q("Shown?"), a(options=""))
    with pytest.raises(SelfCheckError) as exc:
        self_check(text, "x.md")
    line = int(str(exc.value).split(":")[1])
    assert text.split("\n")[line - 1] == "```{admonition} Answer"


@pytest.mark.parametrize("text, problem", [
    (section(q(), a(), q(), a()).replace(f"## {SECTION}", "## Results again"), "no '## Check"),
    (section(q(), a(), q(), a(), after="## More\n\nx\n\n## Exercises\n"), "next heading is 'More'"),
    (section(q(), a(), q(), a(), after="### Aside\n\n## Exercises\n"), "next heading is 'Aside'"),
    (section(q(), a(), q(), a(), after=""), "next heading is none"),
    (section(q(), a(), q(), a(), after=f"## {NEXT}\n\n## {SECTION}\n"), "a second"),
    (section(q(), a(), q(), a()).replace(f"## {SECTION}", f"### {SECTION}"), "level-2"),
])
def test_the_section_must_sit_right_before_the_exercises(text, problem):
    with pytest.raises(SelfCheckError, match=problem):
        self_check(text, "x.md")


def test_the_front_matter_and_cell_breaks_are_not_questions():
    got = self_check(section("+++\n\n", q(), a(), q(), a()), "x.md")
    assert len(got) == 2 and got[0].text == "Why?"


@pytest.fixture(scope="module")
def index():
    return cm.book_index(ROOT)


def test_the_colab_form_of_a_section_is_questions_and_details(index):
    conv = cm.Converter(index, "notebooks/03_scores", None)
    md = conv.markdown(section(q("Mean? See [it](../book/methods_primer.md#skewness)."),
                               a("It is {glue:text}`sc_mean:.2f`."), q(), a()).split("# Title\n", 1)[1])
    found, _ = colab_self_check(md)
    assert [f[1] for f in found] == [ANSWER, ANSWER]
    assert found[0][0].startswith("Mean? See [it](http") and found[0][2] == f"It is {cm.WILDCARD}."


def test_the_colab_check_fails_on_an_answer_that_is_not_a_dropdown(index):
    conv = cm.Converter(index, "notebooks/03_scores", None)
    md = conv.markdown(section(q(), a(), q(), a(options="")).split("# Title\n", 1)[1])
    with pytest.raises(SelfCheckError, match="text after the last <details>"):
        colab_self_check(md)          # the second answer is a block quote, open for all to read


# --------------------------------------------------------------------------- the chapters

def test_there_are_chapters():
    assert SOURCES, "notebooks/ has no chapter sources"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_chapter_has_a_self_check_before_its_exercises(source):
    questions = self_check(source.read_text(encoding="utf-8"), str(source.relative_to(ROOT)))
    for item in questions:
        assert "$" not in item.text + item.answer, f"{source.name}:{item.line}: no TeX in the book"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_self_check_links_to_the_methods_primer_resolve(source):
    known = frontmatter.primer_methods(ROOT)
    for item in self_check(source.read_text(encoding="utf-8"), source.name):
        for m in PRIMER_LINK.finditer(item.text + "\n" + item.answer):
            assert m["anchor"] in known, f"{source.name}:{item.line}: no section #{m['anchor']} in the primer"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_colab_copy_shows_every_answer_collapsed(source, index):
    questions = self_check(source.read_text(encoding="utf-8"), source.name)
    url, branch = colab.repository(ROOT)
    text = colab.colab_notebook(source, url, branch, index=index,
                                headers=frontmatter.Context(ROOT, index=index))
    nb = nbformat.reads(text, as_version=4)
    md = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    found, part = colab_self_check(md)
    assert len(found) == len(questions), f"{source.name}: {len(questions)} questions, {len(found)} <details>"
    for (question, summary, answer), item in zip(found, questions):
        assert question and answer and summary == ANSWER, f"{source.name}:{item.line}: {summary!r}"
    assert not cm.leftovers(part), f"{source.name}: MyST left in the Colab self-check: {cm.leftovers(part)}"
