"""The teaching edition: specs, the committed student/instructor notebooks, and nbgrader grading.

The grading test runs each chapter's student notebook twice through ``nbgrader autograde`` on a
small synthetic corpus: as handed out every autograder test must fail, with the reference
solutions filled in every one must pass.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from kokoro_book import colab_markdown, sources, teaching
from kokoro_nb.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sources.notebook_sources(ROOT)
needs_nbgrader = pytest.mark.skipif(not (Path(teaching.sys.executable).parent / "nbgrader").is_file(),
                                    reason="nbgrader is not installed (the teaching extra)")


def write_spec(tmp_path, text: str) -> Path:
    path = tmp_path / "01_x.yml"
    path.write_text(text, encoding="utf-8")
    return path


SOLUTIONS = {"ex-a": "x = 2", "ex-b": ""}


def test_a_spec_gives_tests_rubrics_and_points(tmp_path):
    path = write_spec(tmp_path, "ex-a:\n  tests: |\n    assert x == 2\n  points: 3\n"
                                "ex-b:\n  rubric: Names the caveat.\n")
    spec = teaching.read_spec(path, SOLUTIONS)
    assert spec["ex-a"] == teaching.Exercise("ex-a", "assert x == 2", None, 3, 2)
    assert spec["ex-b"].tests is None and spec["ex-b"].rubric == "Names the caveat."


@pytest.mark.parametrize("text, field, message", [
    ("ex-a:\n  tests: assert x\n", "ex-b", "no entry"),
    ("ex-a:\n  tests: assert x\nex-b:\n  rubric: r\nex-c:\n  rubric: r\n", "ex-c", "no exercise"),
    ("ex-a:\n  tests: assert x\nex-b:\n  tests: assert y\n", "ex-b.tests", "prose"),
    ("ex-a:\n  tests: 'assert x ==('\nex-b:\n  rubric: r\n", "ex-a.tests", "not valid Python"),
    ("ex-a:\n  tests: print(x)\nex-b:\n  rubric: r\n", "ex-a.tests", "assert"),
    ("ex-a:\n  points: 2\nex-b:\n  rubric: r\n", "ex-a", "tests"),
    ("ex-a:\n  tests: assert x\n  points: 0\nex-b:\n  rubric: r\n", "ex-a.points", "at least 1"),
    ("ex-a:\n  tests: assert x\n  hint: h\nex-b:\n  rubric: r\n", "ex-a", "unknown key"),
    ("ex-a:\n  tests: assert x\nex-b:\n  rubric: ''\n", "ex-b.rubric", "non-empty"),
])
def test_a_bad_spec_names_the_file_and_field(tmp_path, text, field, message):
    path = write_spec(tmp_path, text)
    with pytest.raises(DataError) as err:
        teaching.read_spec(path, SOLUTIONS)
    assert err.value.field == field and message in str(err.value) and str(path) in str(err.value)


def test_bad_yaml_and_a_missing_spec_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not valid YAML") as err:
        teaching.read_spec(write_spec(tmp_path, "ex-a: [\n"), SOLUTIONS)
    assert err.value.line is not None
    with pytest.raises(DataError, match="no teaching spec"):
        teaching.read_spec(tmp_path / "missing.yml", SOLUTIONS)


def test_solution_prose_drops_the_wrapper_and_the_code():
    cell = ("<details>\n<summary>Solution to Exercise 5.1</summary>\n\n```python\nx = 1\n```\n\n"
            "Even then it **depends**.\n\n</details>")
    assert teaching.solution_prose(cell) == "Even then it **depends**."


def test_instructor_notebook_turns_solutions_into_nbgrader_cells():
    md = nbformat.v4.new_markdown_cell
    colab = nbformat.v4.new_notebook(cells=[
        md("# 1. Title"),
        md("**Exercise 1.1.** Compute x.", metadata={"kokoro_nb": {"exercise": "ex-a"}}),
        md("<details>\n<summary>Solution</summary>\n\n```python\nx = 2\n```\n\nBecause.\n\n</details>",
           metadata={"kokoro_nb": {"solution": "ex-a"}}),
        md("**Exercise 1.2.** Why?", metadata={"kokoro_nb": {"exercise": "ex-b"}}),
        md("<details>\n<summary>Solution</summary>\n\nIt is.\n\n</details>",
           metadata={"kokoro_nb": {"solution": "ex-b"}})])
    spec = {"ex-a": teaching.Exercise("ex-a", "assert x == 2", None, 1, 2),
            "ex-b": teaching.Exercise("ex-b", None, "Says it is.", 1, 2)}
    nb = teaching.instructor_notebook(colab, SOLUTIONS, spec)
    grader = [(c.cell_type, c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"]["solution"],
               c.metadata["nbgrader"]["grade"]) for c in nb.cells if "nbgrader" in c.metadata]
    assert grader == [("code", "ex-a-code", True, False), ("code", "ex-a-tests", False, True),
                      ("markdown", "ex-b-answer", True, True)]
    code = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex-a-code")
    assert code.source == ("# Your answer: define `x` (the next cell checks it)\n"
                           "### BEGIN SOLUTION\nx = 2\n# Because.\n### END SOLUTION")
    answer = nb.cells[-1].source
    assert "**Model answer.** It is." in answer and "**Rubric (2 points).** Says it is." in answer
    assert nb.cells[1].metadata["kokoro_nb"]["edition"] == "instructor"


@needs_nbgrader
def test_the_nbgrader_config_gives_each_autograded_cell_fifteen_minutes(tmp_path):
    """Read as nbgrader reads it: the config reaches autograde's execution preprocessor."""
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader
    (tmp_path / "nbgrader_config.py").write_text(teaching.NBGRADER_CONFIG)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert Execute in Autograde.class_traits()["autograde_preprocessors"].default()
    assert Execute(config=config).timeout == 900 and Execute().timeout == 30


@needs_nbgrader
def test_the_committed_teaching_notebooks_are_current():
    stale = teaching.generate(ROOT, check=True)
    assert not stale, f"run `make teaching` and commit: {stale}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_student_notebook_hides_every_solution(source):
    student = nbformat.read(ROOT / teaching.STUDENT_DIR / f"{source.stem}.ipynb", as_version=4)
    instructor = nbformat.read(ROOT / teaching.INSTRUCTOR_DIR / f"{source.stem}.ipynb", as_version=4)
    solutions = sources.exercise_solutions(sources.read_notebook(source))
    code = [c.source for c in student.cells if c.cell_type == "code"]
    for label, solution in solutions.items():
        for line in (ln.strip() for ln in solution.splitlines()):
            if len(line) > 25:          # a line long enough to be the answer, not `return x`
                assert not any(line in c for c in code), f"{label}: student notebook shows {line!r}"
    answers = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert answers and all(c.source == teaching.TEXT_STUB if c.cell_type == "markdown"
                           else c.source.endswith(teaching.CODE_STUB) for c in answers)
    assert "Rubric" not in "".join(c.source for c in student.cells)
    for nb in (student, instructor):
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                assert not colab_markdown.leftovers(cell.source), (source.stem, cell.source[:80])


def with_parameters(nb, params: dict):
    """*nb* with papermill's injected-parameters cell after its parameters cell."""
    from papermill.translators import translate_parameters
    nb = nbformat.from_dict(nb)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    code = translate_parameters("python3", "python", params, "Parameters")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]}))
    return nb


def grades(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    """{grade_id: (score, max score)} of the autograded cells of one submission."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        sub = gb.find_submission_notebook(name, name, student)
        return {g.name: (g.score, g.max_score) for g in sub.grades if g.auto_score is not None}


def errors(course: Path, name: str, student: str, grade_id: str) -> str:
    """The error a graded cell of an autograded submission raised (for the failure message)."""
    nb = nbformat.read(course / "autograded" / student / name / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return " ".join(f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                    if o.get("output_type") == "error")


@needs_nbgrader
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_autograder_fails_as_handed_out_and_passes_with_the_solutions(source, synthetic_data, tmp_path):
    kokorochat, psy, english = synthetic_data
    name = source.stem
    nb = sources.read_notebook(source)
    smoke = sources.notebook_options(nb, source).get("smoke_parameters", {})
    params = sources.notebook_parameters(nb, name, data_dir=kokorochat, psy_insight_dir=psy,
                                         sample=None, output_root=tmp_path / "outputs", extra=smoke,
                                         translation_dir=english)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
    instructor = nbformat.read(ROOT / teaching.INSTRUCTOR_DIR / f"{name}.ipynb", as_version=4)
    student = nbformat.read(ROOT / teaching.STUDENT_DIR / f"{name}.ipynb", as_version=4)
    tests = [c.metadata["nbgrader"]["grade_id"] for c in instructor.cells
             if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    course = tmp_path / "course"
    (course / "source" / name).mkdir(parents=True)
    shutil.copy(ROOT / teaching.INSTRUCTOR_DIR / f"{name}.ipynb", course / "source" / name / f"{name}.ipynb")
    teaching.run_nbgrader(course, "generate_assignment", name, "--force")
    for who, sub in (("handout", student), ("solved", teaching.fill_in(student, instructor))):
        folder = course / "submitted" / who / name
        folder.mkdir(parents=True)
        nbformat.write(with_parameters(sub, params), folder / f"{name}.ipynb")
    teaching.run_nbgrader(course, "autograde", name, "--force")     # the config's timeout
    handout, solved = grades(course, name, "handout"), grades(course, name, "solved")
    assert sorted(solved) == sorted(tests)
    failing = {t: errors(course, name, "solved", t) for t, s in solved.items() if s[0] != s[1]}
    assert not failing, f"{name}: with the reference solutions these tests fail: {failing}"
    passing = {t: s for t, s in handout.items() if s[0] != 0}
    assert not passing, f"{name}: these tests pass on the handed-out notebook, so they cannot fail: {passing}"


def exercise_texts(nb) -> dict[str, str]:
    """{label: text} of the exercises of a chapter."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for text, mark in colab_markdown.split_exercises(cell.source):
            if "exercise" in mark:
                body = next(colab_markdown.directives(text)).body
                out[mark["exercise"]] = body.strip()
    return out


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_gpu_exercises_say_so_and_name_a_cpu_variant(source):
    spec = teaching.read_spec(teaching.spec_path(ROOT, source.stem),
                              sources.exercise_solutions(sources.read_notebook(source)))
    texts = exercise_texts(sources.read_notebook(source))
    for label, ex in spec.items():
        labelled = texts[label].startswith("**GPU.**")
        assert labelled == ex.gpu, (f"{source.name} {label}: `gpu: {str(ex.gpu).lower()}` in the spec, but "
                                    f"the text {'starts' if labelled else 'does not start'} with **GPU.**")
        if ex.gpu:
            assert "CPU" in texts[label], f"{source.name} {label}: a GPU exercise names its CPU variant"


def test_exercise_texts_are_read_from_the_markdown():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# T\n\n```{exercise}\n:label: ex-a\n\n**GPU.** Train. CPU variant: the tiny model.\n```\n")])
    assert exercise_texts(nb) == {"ex-a": "**GPU.** Train. CPU variant: the tiny model."}
