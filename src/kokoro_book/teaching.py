"""Student and instructor notebooks, made with nbgrader from the Colab copies.

For each chapter, the instructor notebook (``notebooks/instructor/NN_slug.ipynb``) is its Colab copy
with each solution turned into nbgrader cells:

- a code exercise: the solution in a cell whose code sits between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (the solution's prose follows as comments), then a locked cell of
  autograder tests;
- an interpretive exercise: a manually graded answer cell holding the model answer and the rubric.

The tests and rubrics live in ``notebooks/teaching/NN_slug.yml``, keyed by exercise label::

    ex-dc-therapy:
      tests: |              # Python run after the student's cell; an AssertionError fails it
        assert mix.shape == (5, 5), "five therapies by five strategies"
      points: 2             # optional, points for passing the tests (default 1)
    ex-dc-tokens:
      rubric: |             # an answer cell; the rubric shows only in the instructor notebook
        Full marks: ...
      rubric_points: 3      # optional, default 2
      gpu: true             # optional: needs a GPU at the paper's scale; its text names a CPU variant

The student notebook (``notebooks/student/``) is what ``nbgrader generate_assignment`` makes of
the instructor notebook: solutions become ``...  # your code``, answer cells ``_Your answer
here._``, tests stay as cells a student runs to check their work. Grading is nbgrader's own
(``nbgrader autograde``; see the instructor guide). Colab needs no grader installed: the student
notebook is plain Python.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from kokoro_book.colab import COLAB_DIR, repository
from kokoro_book.sources import (exercise_solutions, find_root, notebook_sources, read_notebook,
                                 write_if_changed)
from kokoro_nb.errors import DataError

SPEC_DIR = "notebooks/teaching"
STUDENT_DIR = "notebooks/student"
INSTRUCTOR_DIR = "notebooks/instructor"
ASSIGNMENT = "kokorochat"
CODE_STUB = "...  # your code"
TEXT_STUB = "_Your answer here._"
SPEC_KEYS = {"tests", "rubric", "points", "rubric_points", "gpu"}
EDITION_DIRS = {"student": STUDENT_DIR, "instructor": INSTRUCTOR_DIR}
EDITION = {
    "instructor": ("**Instructor edition.** Solutions, autograder tests and rubrics are in place. "
                   "Students get the student edition of this notebook; grade theirs with nbgrader "
                   "(see the book's instructor guide)."),
    "student": ("**Student edition.** Each exercise has a gap: replace `...  # your code` with "
                "your code, or write in the answer cell. The cell after a code exercise checks "
                "your answer: run it. An error there means the answer is not right yet."),
}
# nbgrader's own configuration for this book; the instructor guide shows the same lines.
# Execute is autograde's preprocessor: 15 minutes a cell, not its 30 s (a CPU training cell)
NBGRADER_CONFIG = f"""c = get_config()
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
c.ClearSolutions.text_stub = {TEXT_STUB!r}
c.Execute.timeout = 900
"""


@dataclass(frozen=True)
class Exercise:
    """What teaching makes of one exercise: autograder tests, a rubric, or both."""
    label: str
    tests: str | None
    rubric: str | None
    points: int
    rubric_points: int
    gpu: bool = False


def spec_path(root: Path, name: str) -> Path:
    return Path(root) / SPEC_DIR / f"{name}.yml"


def read_spec(path: Path, solutions: dict[str, str]) -> dict[str, Exercise]:
    """Read and check one chapter's teaching spec against its ``{label: solution code}``.

    Every exercise needs an entry with ``tests`` (its solution must have code) or ``rubric`` or
    both; a solution with code needs tests or a rubric that says what to look for.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no teaching spec: every chapter with exercises needs {SPEC_DIR}/{path.name}",
                        file=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                        line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict):
        raise DataError("must map exercise labels to tests/rubric", file=str(path))

    def line_of(key: str) -> int | None:
        m = re.search(rf"^{re.escape(key)}:", text, re.M)
        return text.count("\n", 0, m.start()) + 1 if m else None
    for label in raw:
        if label not in solutions:
            raise DataError(f"no exercise with a solution has this label (chapter's: "
                            f"{', '.join(solutions) or 'none'})", file=str(path), line=line_of(label),
                            field=label)
    out = {}
    for label, code in solutions.items():
        entry = raw.get(label)
        if not isinstance(entry, dict):
            raise DataError("exercise has no entry: give it tests or a rubric", file=str(path),
                            field=label)
        unknown = set(entry) - SPEC_KEYS
        if unknown:
            raise DataError(f"unknown key(s) {', '.join(sorted(unknown))}; known: "
                            f"{', '.join(sorted(SPEC_KEYS))}", file=str(path), line=line_of(label),
                            field=label)
        tests, rubric = entry.get("tests"), entry.get("rubric")
        for key, value in (("tests", tests), ("rubric", rubric)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise DataError("must be non-empty text", file=str(path), line=line_of(label),
                                field=f"{label}.{key}")
        if tests is None and rubric is None:
            raise DataError("give tests (an answer that is a number, table or figure property) "
                            "or a rubric (an interpretive answer)", file=str(path),
                            line=line_of(label), field=label)
        if tests is not None:
            if not code:
                raise DataError("tests need a solution with code to test; this solution is prose",
                                file=str(path), line=line_of(label), field=f"{label}.tests")
            try:
                compile(tests, f"{path}:{label}.tests", "exec")
            except SyntaxError as exc:
                raise DataError(f"tests are not valid Python: {exc.msg} (line {exc.lineno} of the "
                                "tests)", file=str(path), line=line_of(label),
                                field=f"{label}.tests") from None
            if "assert" not in tests:
                raise DataError("tests must assert something", file=str(path), line=line_of(label),
                                field=f"{label}.tests")
        points = {}
        for key in ("points", "rubric_points"):
            points[key] = entry.get(key, 1 if key == "points" else 2)
            if not isinstance(points[key], int) or isinstance(points[key], bool) or points[key] < 1:
                raise DataError("must be a whole number of points, at least 1", file=str(path),
                                line=line_of(label), field=f"{label}.{key}")
        if not isinstance(entry.get("gpu", False), bool):
            raise DataError("must be true or false", file=str(path), line=line_of(label),
                            field=f"{label}.gpu")
        out[label] = Exercise(label, tests.strip() if tests else None,
                              rubric.strip() if rubric else None, **points,
                              gpu=entry.get("gpu", False))
    return out


def solution_prose(markdown: str) -> str:
    """The prose of a Colab solution cell: without its ``<details>`` wrapper and code blocks."""
    text = re.sub(r"\A\s*<details>\s*<summary>.*?</summary>\s*", "", markdown, flags=re.S)
    text = re.sub(r"\s*</details>\s*\Z", "", text)
    text = re.sub(r"^```python\n.*?^```[ \t]*$", "", text, flags=re.M | re.S)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def answer_names(solution: str, tests: str) -> list[str]:
    """The names a solution defines that its tests read, in the solution's order.

    >>> answer_names("u = 1\\nbusiest = u + 1\\ndef f(x):\\n    y = x\\na, b = 1, 2",
    ...              "assert f(busiest) == 3 and b")
    ['busiest', 'f', 'b']
    """
    import ast
    defined = []
    for stmt in ast.parse(solution).body:          # top-level statements only
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            defined.append(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            defined += [n.id for t in targets for n in ast.walk(t)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    read = {n.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Name)}
    return list(dict.fromkeys(n for n in defined if n in read))


def _grader(cell, grade_id: str, *, solution: bool, grade: bool, points: int | None = None,
            locked: bool = False) -> None:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta


def instructor_notebook(colab_nb, solutions: dict[str, str], spec: dict[str, Exercise]):
    """Return the instructor notebook: *colab_nb* with its solution cells as nbgrader cells."""
    import nbformat
    nb = nbformat.from_dict(colab_nb)
    cells = []
    for cell in nb.cells:
        mark = cell.metadata.get("kokoro_nb", {}) if cell.cell_type == "markdown" else {}
        if "solution" not in mark:
            cells.append(cell)
            continue
        ex = spec[mark["solution"]]
        prose = solution_prose(cell.source)
        if ex.tests:
            # the solution's prose goes with its code, unless a rubric shows it as the model answer
            comments = ("\n".join(f"# {line}".rstrip() for line in prose.split("\n"))
                        if prose and not ex.rubric else "")
            body = "\n".join(x for x in (solutions[ex.label], comments) if x)
            names = answer_names(solutions[ex.label], ex.tests)
            head = (f"# Your answer: define {', '.join(f'`{n}`' for n in names)} (the next cell "
                    f"checks {'it' if len(names) == 1 else 'them'})\n" if names else "")
            code = nbformat.v4.new_code_cell(f"{head}### BEGIN SOLUTION\n{body}\n### END SOLUTION",
                                             metadata={"kokoro_nb": {"answer": ex.label}})
            _grader(code, f"{ex.label}-code", solution=True, grade=False)
            check = nbformat.v4.new_code_cell(
                f"# Check your answer (autograded, {_points(ex.points)}); "
                f"do not edit this cell\n{ex.tests}", metadata={"kokoro_nb": {"tests": ex.label}})
            _grader(check, f"{ex.label}-tests", solution=False, grade=True, points=ex.points,
                    locked=True)
            cells += [code, check]
        if ex.rubric:
            model = prose or "See the code above."
            answer = nbformat.v4.new_markdown_cell(
                f"**Model answer.** {model}\n\n**Rubric ({_points(ex.rubric_points)}).** {ex.rubric}",
                metadata={"kokoro_nb": {"answer": ex.label}})
            _grader(answer, f"{ex.label}-answer", solution=True, grade=True, points=ex.rubric_points)
            cells.append(answer)
    nb.cells = cells
    _edition(nb, "instructor")
    return nb


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _edition(nb, edition: str) -> None:
    """Put the edition note after the title cell (replacing the other edition's)."""
    import nbformat
    for cell in nb.cells:
        if cell.metadata.get("kokoro_nb", {}).get("edition"):
            cell.source, cell.metadata["kokoro_nb"]["edition"] = EDITION[edition], edition
            return
    note = nbformat.v4.new_markdown_cell(EDITION[edition], metadata={"kokoro_nb": {"edition": edition}})
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, note)


def _text(nb) -> str:
    import nbformat
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"            # stable ids keep the notebooks diff-free
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def nbgrader_command() -> list[str]:
    """The ``nbgrader`` command of this environment; a clear error when it is missing."""
    exe = Path(sys.executable).parent / "nbgrader"
    if not exe.is_file():
        raise DataError("nbgrader is not installed: pip install 'kokoro-nb[teaching]' "
                        "(make install does)", file=str(exe))
    return [str(exe)]


def run_nbgrader(course: Path, *args: str, timeout: float | None = None) -> None:
    """Run ``nbgrader ARGS`` in course folder *course* (its config is this book's)."""
    course.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if not config.is_file():
        config.write_text(NBGRADER_CONFIG + f'c.CourseDirectory.root = {str(course)!r}\n'
                          f'c.CourseDirectory.db_url = "sqlite:///{course}/gradebook.db"\n')
    env = dict(os.environ)
    # nbgrader runs alembic and the kernel from this environment's bin folder
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([*nbgrader_command(), *args, "--log-level=WARN"], cwd=course, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if proc.returncode:
        raise DataError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}", file=str(course))


def generate(root: Path | None = None, *, check: bool = False, names: list[str] | None = None,
             progress: bool = False) -> list[str]:
    """Write (or with *check*, only compare) the instructor and student notebooks; return the
    stale paths. Reads the committed Colab copies, the sources and ``notebooks/teaching/*.yml``.
    """
    import nbformat
    from tqdm.auto import tqdm
    root = find_root(root)
    chapters = [s for s in notebook_sources(root) if names is None or s.stem in names]
    instructor = {}
    for src in tqdm(chapters, desc="instructor notebooks", disable=not progress):
        colab_path = root / COLAB_DIR / f"{src.stem}.ipynb"
        if not colab_path.is_file():
            raise DataError("no Colab copy: run `make colab` first", file=str(colab_path))
        solutions = exercise_solutions(read_notebook(src))
        spec = read_spec(spec_path(root, src.stem), solutions)
        instructor[src.stem] = instructor_notebook(nbformat.read(colab_path, as_version=4),
                                                   solutions, spec)
    stale = []
    with tempfile.TemporaryDirectory(prefix="kokoro-teaching-") as tmp:
        course = Path(tmp)
        for name, nb in instructor.items():
            path = course / "source" / ASSIGNMENT / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_text(nb), encoding="utf-8")
        if progress:
            print(f"nbgrader generate_assignment: {len(instructor)} notebooks", file=sys.stderr)
        run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        for name, nb in instructor.items():
            student = nbformat.read(course / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
            _edition(student, "student")
            for folder, text in ((INSTRUCTOR_DIR, _text(nb)), (STUDENT_DIR, _text(student))):
                path = root / folder / f"{name}.ipynb"
                if path.is_file() and path.read_text(encoding="utf-8") == text:
                    continue
                stale.append(str(path.relative_to(root)))
                if not check:
                    write_if_changed(path, text.encode())
    return stale


def colab_url(repo_url: str, branch: str, edition: str, name: str) -> str:
    """Return the Colab address that opens the committed *edition* (``student`` or
    ``instructor``) of chapter *name*; the pattern of :func:`kokoro_book.colab.colab_url`."""
    gh = repo_url.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{gh}/blob/{branch}/{EDITION_DIRS[edition]}/{name}.ipynb"


def links_table(root: Path | None = None) -> str:
    """Return the instructor guide's table of every chapter's student and instructor notebooks
    on Colab, in book order, numbered as the book numbers them."""
    from kokoro_book.colab_markdown import book_index
    from kokoro_book.sources import toc_files
    root = find_root(root)
    url, branch = repository(root)
    numbers = book_index(root).chapters
    names = {s.stem for s in notebook_sources(root)}
    rows = ["| chapter | title | notebook | on Colab |", "| --- | --- | --- | --- |"]
    for doc in (d.removesuffix(".md") for d in toc_files(root)):
        name = doc.rsplit("/", 1)[-1]
        if doc.startswith("notebooks/") and name in names:
            links = ", ".join(f"[{edition}]({colab_url(url, branch, edition, name)})"
                               for edition in EDITION_DIRS)
            rows.append(f"| {numbers.get(doc, '')} | {{doc}}`../{doc}` | `{name}` | {links} |")
    return "\n".join(rows) + "\n"


def fill_in(student, instructor):
    """Return a copy of *student* with the instructor's solutions in its answer cells."""
    import nbformat
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in instructor.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    filled = nbformat.from_dict(student)
    for cell in filled.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return filled
