"""Every chapter in notebooks/ runs top to bottom under papermill on a small synthetic corpus.

New chapters are picked up by the glob. Parameters are the ones the book build injects
(data_dir, psy_insight_dir, translation_dir, output_dir; sample=None) plus the chapter's own front matter:
``kokoro_nb.book_parameters`` (also used by the book) and ``kokoro_nb.smoke_parameters`` (only
here), e.g. fewer training steps. The test also checks that every ``{glue}`` reference in the
prose was glued, which the book build would otherwise only catch at render time, and runs every
exercise solution with code as an extra cell at the end of its chapter, in the chapter's namespace.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from kokoro_book import run, sources
from kokoro_book.sources import glue_references

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sources.notebook_sources(ROOT)
CELL_TIMEOUT = 600


def glued_keys(nb) -> dict[str, str]:
    """Return {key: text/plain value} for every key glued by an executed notebook."""
    keys = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook", {})
            if meta.get("name"):
                keys[meta["name"]] = out.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain", "")
    return keys


def formatted_references(nb) -> set[str]:
    """Return the glue keys referenced with a number format, e.g. {glue:text}`mean:.2f`."""
    return {m.group(1) for cell in nb.cells if cell.cell_type == "markdown"
            for m in re.finditer(r"\{glue:text\}`([^`:]+):[^`]+`", cell.source)}


def test_glue_reference_patterns():
    md = nbformat.v4.new_markdown_cell(
        "A {glue:text}`n_dialogues:,` and {glue}`mean` and {glue:md}`tbl`.\n\n"
        "```{glue:figure} fig-topics\n:name: fig-topics\n```\n:::{glue:figure} fig-b\n:::\n")
    nb = nbformat.v4.new_notebook(cells=[md])
    assert glue_references(nb) == {"n_dialogues", "mean", "tbl", "fig-topics", "fig-b"}
    assert glue_references(nb, figures=False) == {"n_dialogues", "mean", "tbl"}
    # without figures: a figure directive under any name, and any fig- key even in a role
    odd = nbformat.v4.new_markdown_cell(
        "{glue}`fig-c` {glue}`n`\n\n```{glue:figure} loss\n```\n```{glue:md} tbl\n```\n")
    assert glue_references(nbformat.v4.new_notebook(cells=[odd]), figures=False) == {"n", "tbl"}


def test_glued_values_and_double_figures_are_detected():
    glue_out = lambda name, data: nbformat.v4.new_output(
        "display_data", data={f"application/papermill.record/{k}": v for k, v in data.items()},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}})
    fig_cell = nbformat.v4.new_code_cell("glue('fig-a', fig)", execution_count=3, outputs=[
        glue_out("fig-a", {"image/png": "iVBO", "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBO", "text/plain": "<Figure>"})])
    num_cell = nbformat.v4.new_code_cell("glue('rho', x)", execution_count=4, outputs=[
        glue_out("rho", {"text/plain": "np.float64(0.42)"})])
    md = nbformat.v4.new_markdown_cell("rho = {glue:text}`rho:.2f`, n = {glue:text}`n`")
    nb = nbformat.v4.new_notebook(cells=[fig_cell, num_cell, md])
    assert shown_and_glued(nb) == [3]
    assert glued_keys(nb) == {"fig-a": "<Figure>", "rho": "np.float64(0.42)"}
    assert formatted_references(nb) == {"rho"} and glue_references(nb) == {"rho", "n"}


def test_there_are_notebooks():
    assert SOURCES, "notebooks/ has no chapter sources"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_on_synthetic_corpus(source, synthetic_data, tmp_path):
    kokorochat, psy, english = synthetic_data
    nb = sources.read_notebook(source)
    smoke = sources.notebook_options(nb, source).get("smoke_parameters", {})
    params = sources.notebook_parameters(nb, source.stem, data_dir=kokorochat, psy_insight_dir=psy,
                                      sample=None, output_root=tmp_path / "outputs", extra=smoke,
                                      translation_dir=english)
    target = tmp_path / f"{source.stem}.ipynb"
    solutions = solution_cells(nb)
    try:
        run.execute_notebook(source, target, params, cwd=ROOT, timeout=CELL_TIMEOUT, extra_cells=solutions)
    except run.NotebookFailed as exc:
        failed = target.with_name(f"{target.stem}.failed.ipynb")
        labels = failed_solutions(nbformat.read(failed, as_version=4)) if failed.exists() else []
        pytest.fail(f"solutions {labels} failed: {exc}" if labels else str(exc))
    executed = nbformat.read(target, as_version=4)
    ran = {cell.metadata["kokoro_nb"]["solution"]: cell for cell in executed.cells
           if "solution" in cell.metadata.get("tags", [])}
    assert list(ran) == [c.metadata["kokoro_nb"]["solution"] for c in solutions]
    for label, cell in ran.items():
        assert cell.execution_count is not None, f"{source.name}: solution {label} did not run"
    assert not failed_solutions(executed), f"{source.name}: solutions {failed_solutions(executed)} raised"
    glued = glued_keys(executed)
    missing = glue_references(executed) - set(glued)
    assert not missing, f"{source.name}: prose refers to keys never glued: {sorted(missing)}"
    for key in formatted_references(executed):
        try:
            float(glued[key].replace(",", ""))
        except ValueError:
            pytest.fail(f"{source.name}: {{glue:text}}`{key}:...` formats {glued[key]!r}, which the "
                        "book cannot read as a number; glue float(x) or int(x), not a numpy scalar")
    twice = shown_and_glued(executed)
    assert not twice, (f"{source.name}: cells {twice} glue a figure and also show it inline; "
                       "use kokoro_nb.show.plotting.glue_figure(name, fig), which closes it")


def solution_cells(nb) -> list:
    """Return one code cell per exercise solution of *nb* that has code, tagged ``solution``."""
    return [nbformat.v4.new_code_cell(f"# solution {label} (appended by the tests)\n{code}",
                                      metadata={"tags": ["solution"],
                                                "kokoro_nb": {"solution": label}})
            for label, code in sources.exercise_solutions(nb).items() if code]


def failed_solutions(nb) -> list[str]:
    """Return the labels of the solution cells of an executed notebook with an error output."""
    return [cell.metadata["kokoro_nb"]["solution"] for cell in nb.cells
            if "solution" in cell.metadata.get("tags", [])
            and any(o.get("output_type") == "error" for o in cell.get("outputs", []))]


def test_solution_cells_are_tagged_and_errors_found():
    md = nbformat.v4.new_markdown_cell("```{solution} ex-a\n\n    1 / 0\n```\n```{solution} ex-b\nWords.\n```\n")
    cells = solution_cells(nbformat.v4.new_notebook(cells=[md]))
    assert len(cells) == 1 and cells[0].metadata["kokoro_nb"]["solution"] == "ex-a"
    assert "solution" in cells[0].metadata["tags"] and cells[0].source.endswith("1 / 0")
    cells[0].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    assert failed_solutions(nbformat.v4.new_notebook(cells=cells)) == ["ex-a"]


def shown_and_glued(nb) -> list[int]:
    """Return the execution counts of cells that glue a figure and also display a PNG inline."""
    bad = []
    for cell in nb.cells:
        outs = cell.get("outputs", [])
        glued = [o for o in outs if "scrapbook" in o.get("metadata", {})
                 and any(k.endswith("image/png") for k in o.get("data", {}))]
        shown = [o for o in outs if "scrapbook" not in o.get("metadata", {}) and "image/png" in o.get("data", {})]
        if glued and shown:
            bad.append(cell.get("execution_count"))
    return bad


@pytest.mark.parametrize("name", ["01_corpus_overview", "07_translation"])
def test_lang_ja_puts_the_japanese_first(name, synthetic_data, tmp_path):
    """The book's `lang` parameter switches the excerpt's labels and which language leads."""
    kokorochat, psy, english = synthetic_data
    source = ROOT / "notebooks" / f"{name}.md"
    nb = sources.read_notebook(source)
    params = sources.notebook_parameters(nb, name, data_dir=kokorochat, psy_insight_dir=psy, lang="ja",
                                      output_root=tmp_path / "outputs", translation_dir=english,
                                      extra=sources.notebook_options(nb, source).get("smoke_parameters", {}))
    target = tmp_path / f"{name}.ipynb"
    run.execute_notebook(source, target, params, cwd=ROOT, timeout=CELL_TIMEOUT)
    html = "".join(out.get("data", {}).get("text/html", "") for cell in nbformat.read(target, as_version=4).cells
                   for out in cell.get("outputs", []))
    assert "原文（日本語）" in html and "英訳（Multilingual KokoroChat）" in html
    assert html.index("原文（日本語）") < html.index("英訳（Multilingual KokoroChat）")
    assert "カウンセラー" in html
