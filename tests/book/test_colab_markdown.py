"""Colab copies read as notebooks: plain Markdown, numbers from the full-data build, forms.

Colab renders CommonMark, not MyST, and shows every cell the book hides. These tests convert
small chapters written for the purpose (numbers glued into a hand-made "executed" notebook, as
myst-nb stores them) and parse every committed copy for leftover MyST.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from kokoro_book import colab
from kokoro_book import colab_markdown as cm
from kokoro_book.sources import read_notebook
from kokoro_nb.cli import main
from kokoro_nb.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
BASE = cm.base_url(ROOT)
HEAD = ("---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
        "  display_name: Python 3\n  language: python\n  name: python3\n---\n\n")
PARAMS = "```{code-cell} ipython3\n:tags: [parameters]\n\ndata_dir = None\nsample = None\n```\n\n"


def code(src: str, tags: str = "") -> str:
    return f"```{{code-cell}} ipython3\n{f':tags: [{tags}]' + chr(10) if tags else ''}\n{src}\n```\n\n"


def chapter(*blocks: str, title: str = "# Demo chapter\n\nIntro.\n\n") -> str:
    return HEAD + title + PARAMS + "".join(blocks)


@pytest.fixture
def proj(tmp_path):
    """A project with the real _config.yml and references.bib, two numbered chapters."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    for f in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / f, root / f)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    numbered: true\n"
        "    chapters:\n      - file: notebooks/01_demo\n      - file: notebooks/02_other\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "references.md").write_text("# References\n")
    (root / "notebooks" / "02_other.md").write_text(chapter(
        "(sec-other)=\n## Other section\n\nText.\n\n",
        code('glue_figure("fig-o", fig)', "remove-cell"),
        "```{glue:figure} fig-o\n:name: fig-o\n\nOther caption.\n```\n", title="# The other chapter\n\n"))
    return root


def write(root: Path, text: str, name: str = "01_demo") -> Path:
    path = root / "notebooks" / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def executed(root: Path, build: Path, name: str, values: dict, *, params: dict | None = None) -> Path:
    """Write ``<build>/executed/<name>.ipynb`` and its stamp as the book build does, *values*
    glued (display=False) the way myst-nb stores them."""
    src = root / "notebooks" / f"{name}.md"
    nb = read_notebook(src)
    prefix = "application/papermill.record/"
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.outputs = [nbformat.v4.new_output(
        "display_data", data={prefix + mime: v for mime, v in (
            value.items() if isinstance(value, dict) else {"text/plain": repr(value)}.items())},
        metadata={"scrapbook": {"name": key, "mime_prefix": prefix}}) for key, value in values.items()]
    target = build / "executed" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    stamp = {"source": hashlib.sha256(src.read_text(encoding="utf-8").encode()).hexdigest()[:20],
             "parameters": params or {}}
    target.with_suffix(".stamp.json").write_text(json.dumps(stamp))
    return target


def convert(root: Path, values: dict | None, name: str = "01_demo"):
    """Return the Colab copy of *name* (as a notebook), numbers from *values* (None: wildcards)."""
    src = root / "notebooks" / f"{name}.md"
    ex = None
    if values is not None:
        path = executed(root, root / "_build", name, values)
        ex = nbformat.read(path, as_version=4)
    text = colab.colab_notebook(src, "https://github.com/o/r", "main", index=cm.book_index(root),
                                executed=ex, note="NOTE")
    return nbformat.reads(text, as_version=4)


def markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


# --------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("role, value, shown", [
    ("{glue:text}`n:,`", 6589, "6,589"),
    ("{glue:text}`n:.2f`", 63.5779, "63.58"),
    ("{glue:text}`n:.1%`", 0.51234, "51.2%"),
    ("{glue:text}`n:,.0f`", 4113.6, "4,114"),
    ("{glue:text}`n`", 3, "3"),
    ("{glue:text}`n`", "unimodal, slight right skew", "unimodal, slight right skew"),   # quotes go
    ("{glue:text}`n`", "a_b*c", r"a\_b\*c"),                          # Markdown-safe
    ("{glue:md}`n`", {"text/markdown": "**bold** claim", "text/plain": "'x'"}, "**bold** claim"),
])
def test_glued_numbers_are_resolved_and_formatted_as_myst_nb_does(proj, role, value, shown):
    write(proj, chapter(code('glue("n", 1, display=False)', "remove-cell"), f"The value is {role}.\n"))
    nb = convert(proj, {"n": value})
    assert f"The value is {shown}." in markdown(nb)
    assert nb.cells[0].source.endswith("\n\nNOTE"), "the note on where the numbers come from"


def test_a_value_the_build_did_not_glue_names_file_and_line(proj):
    src = write(proj, chapter("Fine.\n\nMissing {glue:text}`nope:.2f` here.\n"))
    with pytest.raises(DataError) as err:
        convert(proj, {})
    assert str(err.value).startswith(f"{src}:{src.read_text().splitlines().index('Missing {glue:text}`nope:.2f` here.') + 1}:")
    assert "'nope'" in str(err.value)


def test_a_chapter_without_glue_gets_no_note(proj):
    write(proj, chapter("Plain prose.\n"))
    assert "NOTE" not in markdown(convert(proj, {}))


# --------------------------------------------------------------------------- directives

def test_exercise_and_solution_become_bold_text_and_collapsed_details(proj):
    write(proj, chapter(
        "## Exercises\n\n```{exercise}\n:label: ex-a\n\nCount the {glue:text}`n` rows.\n```\n\n"
        "```{solution} ex-a\n:class: dropdown\n\n    len(d)\n    d.shape\n\nThat is all.\n```\n\n"
        "```{exercise} Harder one\n:label: ex-b\n\nNow the columns.\n```\n\n"
        "```{exercise}\n:label: ex-c\n\n**GPU.** Train it.\n```\n\n"
        "```{exercise}\n:label: ex-d\n\n* a list item\n```\n"))
    md = markdown(convert(proj, {"n": 7}))
    assert "**Exercise 1.1.** Count the 7 rows." in md
    assert ("<details>\n<summary>Solution to Exercise 1.1</summary>\n\n```python\nlen(d)\nd.shape\n```"
            "\n\nThat is all.\n\n</details>") in md
    assert "**Exercise 1.2 (Harder one).** Now the columns." in md
    assert "**Exercise 1.3.** **GPU.** Train it." in md          # bold text stays in the paragraph
    assert "**Exercise 1.4.**\n\n* a list item" in md             # a list starts its own
    assert cm.leftovers(md) == []


def test_admonitions_become_block_quotes_with_a_bold_title(proj):
    write(proj, chapter("```{admonition} Content note\n:class: warning\n\nHard topics.\n\nSecond "
                        "paragraph.\n```\n\n```{note}\nA plain note.\n```\n\n:::{tip}\nColon fence.\n:::\n"))
    md = markdown(convert(proj, {}))
    assert "> **Content note**\n>\n> Hard topics.\n>\n> Second paragraph." in md
    assert "> **Note**\n>\n> A plain note." in md
    assert "> **Tip**\n>\n> Colon fence." in md
    assert cm.leftovers(md) == []


def test_cross_references_link_to_the_published_book(proj):
    write(proj, chapter(
        "See {doc}`02_other`, {doc}`the intro <../book/intro>`, {ref}`sec-other`, {numref}`fig-o`, "
        "{numref}`Fig. %s <fig-o>`, [that page](02_other.md#other-section), {cite}`qi2025kokorochat` "
        "and {cite:t}`chen2014smoothing`; {func}`kokoro_nb.describe.variables.label`. Code `{doc}` stays.\n\n"
        "(my-target)=\n## A section\n"))
    md = markdown(convert(proj, {}))
    other = f"{BASE}notebooks/02_other.html"
    assert f"See [The other chapter]({other}), [the intro]({BASE}book/intro.html)," in md
    assert f"[Other section]({other}#sec-other), [Figure 2.1]({other}#fig-o), [Fig. 2.1]({other}#fig-o)" in md
    assert f"[that page]({other}#other-section)" in md
    assert f"([Qi et al. 2025]({BASE}book/references.html))" in md
    assert f"[Chen and Cherry (2014)]({BASE}book/references.html)" in md
    assert "`kokoro_nb.describe.variables.label`" in md and "Code `{doc}` stays." in md
    assert "(my-target)=" not in md and "## A section" in md


def test_base_url_is_the_one_in_config():
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert BASE == cfg["html"]["baseurl"] and BASE.startswith("https://")
    owner_repo = cfg["repository"]["url"].split("github.com/")[1].split("/")
    assert BASE == f"https://{owner_repo[0]}.github.io/{owner_repo[1]}/"


@pytest.mark.parametrize("text, what", [
    ("{unknownrole}`x`", "role {unknownrole}"),
    ("```{tab-set}\nx\n```", "directive {tab-set}"),
])
def test_unknown_myst_stops_the_conversion(proj, text, what):
    write(proj, chapter(f"{text}\n"))
    with pytest.raises(DataError, match=what.replace("{", r"\{").replace("}", r"\}")):
        convert(proj, {})


# --------------------------------------------------------------------------- cells

def test_figure_caption_follows_its_visible_cell_and_hidden_cells_become_forms(proj):
    write(proj, chapter(
        code("import pandas as pd\nd = load()", "remove-cell"),
        code("# Colab: keep outputs on Drive. Nothing elsewhere.\nx = 1", "remove-cell"),
        code('fig = draw()\nplotting.glue_figure("fig-a", fig)', "remove-cell"),
        code("table.style", "remove-input"),
        "Before.\n\n```{glue:figure} fig-a\n:name: fig-a\n:alt: Bars.\n\nBars of {glue:text}`n` rows.\n```\n\n"
        "After, see {numref}`fig-a`.\n",
        code("visible = 1")))
    nb = convert(proj, {"n": 3, "fig-a": {"image/png": "iVBO", "text/plain": "<Figure>"}})
    cells = nb.cells
    draw = next(i for i, c in enumerate(cells) if "glue_figure" in c.source)
    assert "cellView" not in cells[draw].metadata and not cells[draw].source.startswith("# @title")
    assert cells[draw + 1].cell_type == "markdown"
    assert cells[draw + 1].source == "**Figure 1.1.** Bars of 3 rows."
    forms = [c for c in cells if c.metadata.get("cellView") == "form"]
    assert [c.source.split("\n")[0] for c in forms] == [
        "# @title Imports", "# @title Colab: keep outputs on Drive", "# @title Build the table"]
    assert cm.form_title("# Keep the outputs on Drive (does nothing elsewhere).\nx = 1", []) == \
        "Keep the outputs on Drive"
    assert all(c.source.split("\n", 1)[1] in ("import pandas as pd\nd = load()",
                                              "# Colab: keep outputs on Drive. Nothing elsewhere.\nx = 1",
                                              "table.style") for c in forms)
    visible = next(c for c in cells if c.source == "visible = 1")
    assert "cellView" not in visible.metadata
    md = markdown(nb)
    assert "Before.\n\nAfter, see Figure 1.1." in md and cm.leftovers(md) == []   # same notebook: no link


def test_a_figure_no_cell_draws_is_an_error(proj):
    write(proj, chapter("```{glue:figure} fig-gone\n\nCaption.\n```\n"))
    with pytest.raises(DataError, match="no code cell glues 'fig-gone'"):
        convert(proj, {})


# --------------------------------------------------------------------------- the leftover check

@pytest.mark.parametrize("text", [
    "The mean is {glue:text}`sc_mean:.2f`.", "```{exercise}", "````{solution} ex-a", ":::{note}",
    "(fig-label)=", ":class: dropdown", "see {numref}`fig-x`", "~~~{admonition} T",
])
def test_leftover_finds_each_myst_construct(text):
    assert cm.leftovers(f"Some text.\n\n{text}\n") != []


def test_leftover_passes_plain_markdown():
    plain = ("# Title\n\n> **Note**\n>\n> Text with `code` and [a link](https://x.org/a.html#b).\n\n"
             "```python\nx = {'a': 1}\n```\n\n<details>\n<summary>Solution</summary>\n\n</details>\n")
    assert cm.leftovers(plain) == []


@pytest.mark.parametrize("copy", sorted((ROOT / colab.COLAB_DIR).glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_colab_copies_hold_no_myst(copy):
    nb = nbformat.read(copy, as_version=4)
    found = {i: cm.leftovers(c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"}
    assert not {i: f for i, f in found.items() if f}, f"{copy.name}: MyST left in Markdown cells"
    source = (ROOT / "notebooks" / f"{copy.stem}.md").read_text(encoding="utf-8")
    figures = [d.argument for d in cm.directives(source) if d.name == "glue:figure"]
    hidden = [c for c in nb.cells if c.cell_type == "code"
              and set(c.metadata.get("tags", [])) & set(cm.HIDDEN_TAGS)]
    for c in hidden:     # a form collapses its code; a figure's cell shows it
        figure = any(f'"{key}"' in c.source for key in figures)
        assert (c.metadata.get("cellView") == "form") != figure, c.source[:80]
        assert figure or c.source.startswith("# @title ")


def test_committed_colab_copies_match_their_sources_but_for_numbers():
    """Without a build: a source edited without `make colab` fails here."""
    assert colab.check_structure(ROOT) == [], "run `make book` and `make colab`"


@pytest.mark.realdata
@pytest.mark.slow
def test_committed_colab_copies_quote_the_full_data_build(real_book):
    """With the real build: the numbers in the copies are this build's (timings aside)."""
    assert colab.sync(ROOT, build_dir=real_book, check=True) == [], "run `make colab` and commit"


# --------------------------------------------------------------------------- sync and the CLI

@pytest.fixture
def built(proj):
    """*proj* with one glued number in chapter 01 and a fake full-data build of both chapters."""
    write(proj, chapter(code('glue("n", 1, display=False)\nglue("load_seconds", 2.0)', "remove-cell"),
                        "There are {glue:text}`n:,` rows, read in {glue:text}`load_seconds:.1f` s.\n"))
    executed(proj, proj / "_build", "01_demo", {"n": 1234, "load_seconds": 2.04})
    executed(proj, proj / "_build", "02_other", {})
    return proj


def test_sync_writes_checks_prunes_and_ignores_timings(built):
    copies = built / "notebooks" / "colab"
    assert colab.sync(built, check=True) == ["notebooks/colab/01_demo.ipynb", "notebooks/colab/02_other.ipynb"]
    assert not copies.exists()                              # --check writes nothing
    assert len(colab.sync(built)) == 2
    first = (copies / "01_demo.ipynb").read_text()
    assert "There are 1,234 rows, read in 2.0 s." in first
    assert "full-data build of the book" in first
    assert colab.sync(built) == [] and colab.check_structure(built) == []
    executed(built, built / "_build", "01_demo", {"n": 1234, "load_seconds": 9.9})   # another machine
    assert colab.sync(built, check=True) == [] and (copies / "01_demo.ipynb").read_text() == first
    executed(built, built / "_build", "01_demo", {"n": 1235, "load_seconds": 2.04})  # a real change
    assert colab.sync(built, check=True) == ["notebooks/colab/01_demo.ipynb"]
    assert colab.check_structure(built) == []               # only a number moved
    (copies / "03_gone.ipynb").write_text(first)
    assert colab.sync(built) == ["notebooks/colab/01_demo.ipynb", "notebooks/colab/03_gone.ipynb"]
    assert sorted(p.name for p in copies.iterdir()) == ["01_demo.ipynb", "02_other.ipynb"]
    src = built / "notebooks" / "01_demo.md"
    src.write_text(src.read_text() + "\nA new paragraph.\n")
    assert colab.check_structure(built) == ["notebooks/colab/01_demo.ipynb"]


def test_sync_refuses_a_missing_sample_or_stale_build(built):
    (built / "_build" / "executed" / "02_other.ipynb").unlink()
    with pytest.raises(DataError, match="02_other: no executed notebook .*run `make book` first"):
        colab.sync(built)
    executed(built, built / "_build", "02_other", {}, params={"sample": 300})
    with pytest.raises(DataError, match="--sample 300 build"):
        colab.sync(built)
    executed(built, built / "_build", "02_other", {})
    src = built / "notebooks" / "02_other.md"
    src.write_text(src.read_text() + "\nMore.\n")
    with pytest.raises(DataError, match="older version of 02_other.md"):
        colab.sync(built)


def test_a_chapter_sample_of_its_own_is_not_a_sample_build(built):
    src = built / "notebooks" / "02_other.md"
    src.write_text(src.read_text().replace("kernelspec:", "kokoro_nb:\n  book_parameters: {sample: 40}\nkernelspec:"))
    executed(built, built / "_build", "02_other", {}, params={"sample": 40})
    assert "notebooks/colab/02_other.ipynb" in colab.sync(built)


def test_cli_sync_colab_takes_the_build_folder_and_fails_in_one_line(built, monkeypatch, capsys):
    monkeypatch.chdir(built)
    assert main(["book", "sync-colab", "--check"]) == 1
    assert "out of date: notebooks/colab/01_demo.ipynb" in capsys.readouterr().err
    assert main(["book", "sync-colab"]) == 0
    assert main(["book", "sync-colab", "--check"]) == 0
    capsys.readouterr()
    assert main(["book", "sync-colab", "--build-dir", str(built / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no executed notebook" in err[0] and "nowhere" in err[0]


def test_the_title_carries_the_chapter_number_the_book_shows(proj):
    """Files are named by their place in the sources, the book numbers chapters in reading order."""
    write(proj, chapter("Text.\n\n", title="# The demo chapter\n\n"))
    assert convert(proj, None, "01_demo").cells[0].source.splitlines()[0] == "# 1. The demo chapter"
    assert convert(proj, None, "02_other").cells[0].source.splitlines()[0] == "# 2. The other chapter"
    # a page outside the numbered parts keeps its bare title
    toc = proj / "_toc.yml"
    toc.write_text(toc.read_text().replace("numbered: true", "numbered: false"))
    assert convert(proj, None, "01_demo").cells[0].source.splitlines()[0] == "# The demo chapter"
