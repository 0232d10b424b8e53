"""The chapter headers: objectives, prerequisites, time and GPU under every chapter's overview.

The real chapters are checked as they are (every field there and valid, every method a heading
of the primer, every run time measured); small throw-away projects show that each bad header
stops with the file and the field; the staged book and the Colab copy both carry the block, the
copy with links to the published book and no MyST.
"""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from kokoro_book import cli as book_cli
from kokoro_book import colab, frontmatter, sources, stage, stamps
from kokoro_book import colab_markdown as cm
from kokoro_nb.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sources.chapters(ROOT)
BASE = cm.base_url(ROOT)


@pytest.fixture(scope="module")
def ctx():
    return frontmatter.Context(ROOT)


# --------------------------------------------------------------------------- the real chapters

@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_a_valid_header(ctx, name):
    h = frontmatter.read_header(name, ctx)
    assert h is not None, f"{name}: no objectives/prerequisites/gpu in its kokoro_nb front matter"
    assert frontmatter.OBJECTIVES_MIN <= len(h.objectives) <= frontmatter.OBJECTIVES_MAX
    assert all(frontmatter.starts_with_verb(o) for o in h.objectives)
    assert h.gpu in frontmatter.GPU_TEXT
    assert h.read_minutes >= 1
    assert h.run_seconds is not None, (f"{name}: no measured run time in {frontmatter.RUN_TIMES}; run "
                                       "scripts/colab_sim.py --record book/_data/colab_run_times.json")


def test_every_method_key_is_a_heading_of_the_primer(ctx):
    primer = (ROOT / f"{frontmatter.PRIMER}.md").read_text(encoding="utf-8")
    used = {m for n in CHAPTERS for m in frontmatter.read_header(n, ctx).methods}
    assert used <= set(ctx.methods)
    for key, title in ctx.methods.items():
        assert f"\n### {title}\n" in primer, key
    # the times' explanation the header links to is a heading too
    assert "\n## The chapter headers\n" in primer and frontmatter.TIMES_ANCHOR == "the-chapter-headers"
    # every method of the primer says which chapter uses it and which function implements it
    for title in ctx.methods.values():
        section = primer.split(f"\n### {title}\n", 1)[1].split("\n#", 1)[0]
        assert "{doc}`../notebooks/" in section and "`kokoro_nb." in section, title


def test_run_times_cover_exactly_the_chapters_and_say_how_they_were_measured():
    record = json.loads((ROOT / frontmatter.RUN_TIMES).read_text(encoding="utf-8"))
    assert set(record["notebooks"]) == set(CHAPTERS), "re-run scripts/colab_sim.py --record"
    for name, entry in record["notebooks"].items():
        assert entry["seconds"] > 0 and entry["runtime"] and entry["python"] and entry["date"], name
        assert entry["jobs"] >= 1 and entry["cpus"] >= 1, name
    assert "pip install" in record["about"] and "no download" in record["about"]


def test_the_run_times_are_not_pages_of_the_book():
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert "book/_data" in cfg["exclude_patterns"]
    assert "book/methods_primer" in sources.toc_files(ROOT)


def test_the_rendered_block_shows_objectives_prerequisites_times_and_gpu(ctx):
    h = frontmatter.read_header("04_correlations", ctx)
    md = frontmatter.render(h, ctx)
    for o in h.objectives:
        assert f"  - {o}" in md
    assert "[Chapter 3: Client feedback scores](03_scores.md)" in md
    assert "[Crossed random effects](../book/methods_primer.md#crossed-random-effects)" in md
    assert f"about {h.read_minutes} min to read" in md
    assert f"{frontmatter.run_time_text(h.run_seconds)} to run on Colab's free CPU" in md
    assert "**GPU:** not needed." in md
    assert cm.leftovers(md) == []
    gpu = frontmatter.render(frontmatter.read_header("10_train_response_generation", ctx), ctx,
                             chapter_suffix=".ipynb")
    assert "(03_scores.ipynb)" in gpu and "with the tiny model" in gpu and "**GPU:** optional." in gpu


def test_chapters_with_a_colab_gpu_say_the_gpu_is_optional_or_required(ctx):
    for name in CHAPTERS:
        opts = sources.notebook_options(sources.read_notebook(sources.source_path(ROOT, name)))
        assert (frontmatter.read_header(name, ctx).gpu != "no") == bool(opts.get("colab_gpu")), name


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_header_is_left_out_of_what_a_stamp_hashes(name):
    """Stripping recognises every chapter's layout, so a header edit re-renders but never re-runs."""
    text = sources.source_path(ROOT, name).read_text(encoding="utf-8")
    stripped = sources.execution_text(text)
    assert stripped != text
    assert not re.search(r"^  (objectives|prerequisites|gpu):", stripped, re.M)
    edited = text.replace("  objectives:\n", "  objectives:\n    - Explain something else too.\n", 1)
    assert sources.execution_text(edited) == stripped
    assert sources.execution_text(text.replace("\n# ", "\n# X ", 1)) != stripped     # the body counts


def test_execution_text_keeps_what_it_cannot_read_safely():
    odd = "---\nkokoro_nb: {gpu: 'no', colab_gpu: true}\n---\n# T\n"
    assert sources.execution_text(odd) == odd                      # flow style: hashed whole
    src = "---\nkokoro_nb:\n  colab_gpu: true\n  gpu: optional\n---\n# T\n"
    assert sources.execution_text(src) == "---\nkokoro_nb:\n  colab_gpu: true\n---\n# T\n"
    a = stamps.make_stamp(sources.execution_text(src), {}, {}, "c")
    b = stamps.make_stamp(sources.execution_text(src.replace("optional", "required")), {}, {}, "c")
    assert stamps.stale_reason(a, b) is None


def test_reading_time_counts_prose_and_visible_code():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(" ".join(["word"] * 600)),
        nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(20)) + "\n\n"),
        nbformat.v4.new_code_cell("\n".join(["hidden()"] * 500), metadata={"tags": ["remove-cell"]})])
    # 600 words at 200 a minute + 20 lines at 10 a minute
    assert frontmatter.reading_minutes(nb) == 5


# --------------------------------------------------------------------------- bad headers

PRIMER = "# Methods primer\n\n## The chapter headers\n\nText.\n\n## Group\n\n### Sign test\n\nText.\n"


def chapter(body: str = "", *, title: str = "Demo", header: str | None = None) -> str:
    header = header if header is not None else textwrap.dedent("""\
        kokoro_nb:
          objectives:
            - Compute the thing.
            - Explain the thing.
          prerequisites:
            chapters: [01_first]
            methods: [sign-test]
          gpu: "no"
        """)
    return ("---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
            f"  display_name: Python 3\n  language: python\n  name: python3\n{header}---\n\n"
            f"# {title}\n\n**Overview.** What this chapter does.\n\nMore prose.\n\n"
            "```{code-cell} ipython3\n:tags: [parameters]\n\ndata_dir = None\nsample = None\n"
            f"seed = 42\nlang = \"en\"\noutput_dir = \"outputs\"\n```\n\n{body}")


@pytest.fixture
def proj(tmp_path):
    """Two numbered chapters, a primer with one method, and run times for both chapters."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "book" / "_data").mkdir(parents=True)
    for f in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / f, root / f)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    numbered: true\n    chapters:\n"
        "      - file: notebooks/01_first\n      - file: notebooks/02_second\n"
        "  - caption: B\n    chapters:\n      - file: book/methods_primer\n", encoding="utf-8")
    (root / "book" / "intro.md").write_text("# Intro\n", encoding="utf-8")
    (root / "book" / "methods_primer.md").write_text(PRIMER, encoding="utf-8")
    (root / "book" / "_data" / "colab_run_times.json").write_text(json.dumps(
        {"notebooks": {"01_first": {"seconds": 30.0}, "02_second": {"seconds": 200.0}}}), encoding="utf-8")
    (root / "notebooks" / "01_first.md").write_text(chapter(title="First", header=textwrap.dedent("""\
        kokoro_nb:
          objectives: [Load the data., Count the rows.]
          prerequisites: {chapters: [], methods: []}
          gpu: "no"
        """)), encoding="utf-8")
    (root / "notebooks" / "02_second.md").write_text(chapter(title="Second"), encoding="utf-8")
    return root


def header_of(root: Path, name: str = "02_second"):
    return frontmatter.read_header(name, frontmatter.Context(root))


def test_a_good_header_reads_and_renders(proj):
    h = header_of(proj)
    assert (h.objectives, h.chapters, h.methods, h.gpu, h.run_seconds) == (
        ["Compute the thing.", "Explain the thing."], ["01_first"], ["sign-test"], "no", 200.0)
    md = frontmatter.render(h, frontmatter.Context(proj))
    assert "[Chapter 1: First](01_first.md)" in md and "[Sign test](../book/methods_primer.md#sign-test)" in md
    assert "about 4 min to run" in md
    assert "**Prerequisites:** none." in frontmatter.render(header_of(proj, "01_first"), frontmatter.Context(proj))


def _replace(root: Path, old: str, new: str, name: str = "02_second") -> Path:
    path = root / "notebooks" / f"{name}.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize("old, new, field, problem", [
    ('  gpu: "no"\n', "", "kokoro_nb.gpu", "missing or empty"),
    ("    - Explain the thing.\n", "    - Explain the thing.\n" + "".join(f"    - Test case {i}.\n" for i in range(3)),
     "kokoro_nb.objectives", "has 5 objectives; give 2 to 4"),
    ("    - Explain the thing.\n", "    - Explain the thing.\n    - The thing is explained.\n",
     "kokoro_nb.objectives", "does not start with a verb"),
    ("methods: [sign-test]", "methods: [t-test]", "kokoro_nb.prerequisites.methods",
     "'t-test' is not a method heading"),
    ("chapters: [01_first]", "chapters: [01_frist]", "kokoro_nb.prerequisites.chapters",
     "'01_frist' is not a chapter"),
    ('gpu: "no"', "gpu: sometimes", "kokoro_nb.gpu", "must be one of no, optional, required"),
    ("  prerequisites:\n    chapters: [01_first]\n    methods: [sign-test]\n",
     "  prerequisites: [01_first]\n", "kokoro_nb.prerequisites", "exactly `chapters` and `methods`"),
])
def test_a_bad_header_names_the_file_and_the_field(proj, old, new, field, problem):
    path = _replace(proj, old, new)
    with pytest.raises(DataError) as err:
        header_of(proj)
    assert err.value.file == str(path) and err.value.field == field
    assert problem in str(err.value) and str(path) in str(err.value)


def test_a_prerequisite_must_come_earlier(proj):
    path = _replace(proj, "prerequisites: {chapters: []", "prerequisites: {chapters: [02_second]", "01_first")
    with pytest.raises(DataError, match="'02_second' does not come before 01_first") as err:
        header_of(proj, "01_first")
    assert err.value.file == str(path) and err.value.field == "kokoro_nb.prerequisites.chapters"


def test_gpu_must_agree_with_colab_gpu(proj):
    _replace(proj, "kokoro_nb:\n", "kokoro_nb:\n  colab_gpu: true\n")
    with pytest.raises(DataError, match="colab_gpu asks Colab for a GPU"):
        header_of(proj)


def test_a_chapter_without_header_keys_gets_no_header(proj):
    _replace(proj, chapter(title="Second").split("---\n")[1], chapter(title="Second", header="").split("---\n")[1])
    assert header_of(proj) is None


def test_a_primer_heading_whose_anchors_would_differ_is_an_error(proj):
    (proj / "book" / "methods_primer.md").write_text(PRIMER + "\n### Spearman's rho\n\nText.\n",
                                                     encoding="utf-8")
    with pytest.raises(DataError, match="'spearmans-rho' in the book's links but 'spearman-s-rho'") as err:
        frontmatter.primer_methods(proj)
    assert err.value.line == 13


def test_the_build_stops_on_a_bad_header_before_running_anything(proj, synthetic_kokorochat_dir, tmp_path,
                                                                 monkeypatch, capsys):
    _replace(proj, "    - Explain the thing.\n", "    - the thing, explained.\n")
    monkeypatch.chdir(proj)
    out = tmp_path / "build"
    assert book_cli.main(["build", "--data", str(synthetic_kokorochat_dir), "--no-html",
                          "--build-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "02_second.md" in err[0] and "kokoro_nb.objectives" in err[0]
    assert not (out / "executed").exists()


# --------------------------------------------------------------------------- where it is shown

def test_insert_puts_the_header_under_the_overview_and_keeps_what_followed(proj):
    nb = sources.read_notebook(proj / "notebooks" / "02_second.md")
    cell = frontmatter.header_cell("02_second", frontmatter.Context(proj), nb)
    added = frontmatter.insert(nb, cell)
    assert nb.cells[0].source == "# Second\n\n**Overview.** What this chapter does."
    assert nb.cells[1] is cell and nb.cells[2].source == "More prose."
    assert added == [nb.cells[1], nb.cells[2]] and nb.cells[3].cell_type == "code"
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T\n\nNo overview.")])
    with pytest.raises(DataError, match=r"no \*\*Overview\.\*\* paragraph") as err:
        frontmatter.insert(bare, cell, file="x.md")
    assert err.value.file == "x.md"


def test_the_staged_chapter_carries_the_header_the_same_at_every_build(ctx, tmp_path):
    name = "04_correlations"
    nb = sources.read_notebook(sources.source_path(ROOT, name))
    executed = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, executed)
    data = stage.with_header(executed, name, ctx)
    assert data == stage.with_header(executed, name, ctx), "the staged page must not change between builds"
    staged = nbformat.reads(data.decode(), as_version=4)
    nbformat.validate(staged)
    assert staged.cells[0].source.startswith("# Correlations\n\n**Overview.**")
    header = staged.cells[1]
    assert "kokoro-header" in header.metadata["tags"] and header.source.startswith("- **Learning objectives.**")
    assert "(03_scores.ipynb)" in header.source         # the staged chapters are notebooks
    assert "(../book/methods_primer.md#cluster-bootstrap)" in header.source
    assert len(staged.cells) == len(nb.cells) + 1


def test_the_colab_copy_has_the_header_with_links_to_the_published_book(ctx):
    url, branch = colab.repository(ROOT)
    name = "10_train_response_generation"
    nb = nbformat.reads(colab.colab_notebook(ROOT / "notebooks" / f"{name}.md", url, branch,
                                             index=ctx.index, headers=ctx), as_version=4)
    (header,) = [c for c in nb.cells if "kokoro-header" in c.metadata.get("tags", [])]
    at = nb.cells.index(header)
    assert at == 1 and "**Overview.**" in nb.cells[0].source
    assert nb.cells[2].source.startswith("> **What this page ran")     # the rest of the first cell
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert colab.SETUP_TAG in first_code.metadata["tags"] and nb.cells.index(first_code) > at
    assert cm.leftovers(header.source) == []
    links = re.findall(r"\]\(([^)]+)\)", header.source)
    assert links and all(link.startswith(BASE) for link in links), links
    assert f"{BASE}notebooks/03_scores.html" in links
    assert f"{BASE}book/methods_primer.html#lora-and-qlora" in links
    assert f"{BASE}book/methods_primer.html#the-chapter-headers" in links
    assert "**GPU:** optional." in header.source
