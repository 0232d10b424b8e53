"""The book pipeline: toc and Colab copies of the real repository, stamps and skips, rendering.

Pipeline tests build tiny throw-away books in tmp folders (one small notebook, synthetic data);
the real book on the real data is built by the `realdata` test at the end.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from kokoro_book import build as book
from kokoro_book import cli as book_cli
from kokoro_book import colab, sources, stamps
from kokoro_book import run as book_run
from kokoro_book import sphinx as book_sphinx
from kokoro_book import stage as book_stage
from kokoro_nb import config
from kokoro_nb.cli import build_parser, main
from kokoro_nb.data import sources as data_sources
from kokoro_nb.errors import DataError, KokoroError

ROOT = Path(__file__).resolve().parents[2]
REPO_URL, BRANCH = colab.repository(ROOT)


def notebook_source(body: str, *, front: str = "", prose: str = "",
                    params: str = 'data_dir = None\nsample = None\n'
                    'seed = 42\nlang = "en"\noutput_dir = "outputs"') -> str:
    """Return a jupytext MyST notebook with a parameters cell and *body* as its code cells."""
    cells = "".join(f"```{{code-cell}} ipython3\n{c.strip()}\n```\n\n" for c in body.split("\n---\n") if c.strip())
    return (f"---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
            f"  display_name: Python 3\n  language: python\n  name: python3\n{front}---\n\n"
            f"# Demo chapter\n\nSome prose.\n\n```{{code-cell}} ipython3\n:tags: [parameters]\n\n"
            f"{params}\n```\n\n{cells}{prose}\n")


DEMO = notebook_source(textwrap.dedent("""
    import os, pathlib
    from kokoro_nb.show.glue import glue
    from kokoro_nb.show import plotting
    pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)
    n = len(os.listdir(os.path.join(data_dir, "kokorochat_dialogues")))
    glue("demo_files", n, display=False)
    print("sample", sample)
    """), prose="The data folder has {glue:text}`demo_files` dialogue files.")


@pytest.fixture
def mini_root(tmp_path, synthetic_kokorochat_dir):
    """A throw-away project: the real _config.yml and bib, a toc with one page and one notebook."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    for f in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / f, root / f)
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")     # the book's CSS
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: notebooks/01_demo\n", encoding="utf-8")
    (root / "book" / "intro.md").write_text("# Intro\n\nSee {doc}`../notebooks/01_demo`.\n",
                                            encoding="utf-8")
    (root / "notebooks" / "01_demo.md").write_text(DEMO, encoding="utf-8")
    return root


# --------------------------------------------------------------------------- the real repository

def test_toc_lists_every_notebook_and_nothing_else():
    listed = sources.chapters(ROOT)
    assert len(listed) == len(set(listed)), "a notebook is listed twice in _toc.yml"
    assert set(listed) == {p.stem for p in sources.notebook_sources(ROOT)}, \
        "every notebooks/*.md must be in _toc.yml (and every toc notebook must exist)"


def test_how_to_run_times_as_many_chapters_as_the_toc_lists():
    """The latest timing names the chapter count it covers: a new chapter calls for a new measurement."""
    text = (ROOT / "book" / "how_to_run.md").read_text(encoding="utf-8")
    latest = re.findall(r"with the book's (\d+) chapters", text)
    assert latest == [str(len(sources.chapters(ROOT)))]


def test_toc_pages_exist():
    for entry in sources.toc_files(ROOT):
        stem = ROOT / entry
        assert stem.with_suffix(".md").is_file() or stem.with_suffix(".ipynb").is_file(), entry


@pytest.mark.parametrize("source", sources.notebook_sources(ROOT), ids=lambda p: p.stem)
def test_colab_copy_is_output_free_and_installs_the_package(source):
    copy = ROOT / colab.COLAB_DIR / f"{source.stem}.ipynb"
    nb = nbformat.read(copy, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    setup = [c for c in code if colab.SETUP_TAG in c.metadata.get("tags", [])]
    assert len(setup) == 1 and f'REPO_URL = "{REPO_URL}"' in setup[0].source
    assert '"-c",' in setup[0].source and "/requirements-colab" in setup[0].source
    assert "import myst_nb" not in "".join(c.source for c in code)   # book-only package
    assert code.index(setup[0]) == 0, "the setup cell must be the first code cell"
    assert "jupytext" not in nb.metadata


def test_every_notebook_follows_the_conventions():
    for source in sources.notebook_sources(ROOT):
        nb = sources.read_notebook(source)            # raises on a missing parameters cell
        declared = sources.declared_parameters(sources.parameters_cell(nb).source)
        missing = {"data_dir", "sample", "seed", "lang", "output_dir"} - set(declared)
        assert not missing, f"{source.name}: parameters cell lacks {sorted(missing)}"


# --------------------------------------------------------------------------- reading notebooks

@pytest.mark.parametrize("code, names", [
    ("", []),
    ("data_dir = None", ["data_dir"]),
    ("a = 1\nb: int = 2  # note\nc = d = 3", ["a", "b", "c", "d"]),
    ("x.y = 1\nimport os\nfor i in range(2): pass", []),
    ("a, b = 1, 2\nz = 0", ["z"]),          # tuple targets are not papermill parameters
])
def test_declared_parameters(code, names):
    assert sources.declared_parameters(code) == names


@pytest.mark.parametrize("text, field", [
    (notebook_source("x = 1").replace(":tags: [parameters]\n", ""), "tags"),
    (notebook_source("x = 1", front="kokoro_nb:\n  colour: red\n"), "kokoro_nb"),
    (notebook_source("x = 1", front="kokoro_nb:\n  smoke_parameters: {max_steps: 2}\n"),
     "kokoro_nb.smoke_parameters"),
    (notebook_source("x = 1", front="kokoro_nb:\n  book_parameters: [1]\n"), "kokoro_nb.book_parameters"),
])
def test_read_notebook_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "05_bad.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        sources.read_notebook(path)
    assert err.value.file == str(path) and err.value.field == field


def _nb(tmp_path, text):
    path = tmp_path / "07_p.md"
    path.write_text(text, encoding="utf-8")
    return sources.read_notebook(path)


def test_parameters_precedence(tmp_path):
    nb = _nb(tmp_path, notebook_source("x = 1", params="data_dir = None\nsample = None\nmax_steps = 500",
                                       front="kokoro_nb:\n  book_parameters: {max_steps: 30}\n"))
    p = sources.notebook_parameters(nb, "07_p", data_dir=tmp_path, psy_insight_dir=tmp_path, sample=None,
                                 lang="ja", output_root=tmp_path / "out")
    # declared pipeline values only; book_parameters over the notebook default; sample None: not set
    assert p == {"max_steps": 30, "data_dir": str(tmp_path.resolve())}
    p = sources.notebook_parameters(nb, "07_p", sample=5, output_root=tmp_path, extra={"max_steps": 2})
    assert p == {"max_steps": 2, "data_dir": None, "sample": 5}


def test_book_sample_of_a_chapter_wins_over_preview_sample(tmp_path):
    nb = _nb(tmp_path, notebook_source("x = 1", front="kokoro_nb:\n  book_parameters: {sample: 20}\n"))
    p = sources.notebook_parameters(nb, "07_p", sample=300, lang="ja", output_root=tmp_path)
    assert p["sample"] == 20 and p["lang"] == "ja" and p["output_dir"] == str(tmp_path / "07_p")


# --------------------------------------------------------------------------- stamps

def test_stale_reason_names_what_changed():
    base = stamps.make_stamp("src", {"sample": None}, {"data_dir": "a"}, "c1")
    assert stamps.stale_reason(None, base) == "new"
    assert stamps.stale_reason(base, stamps.make_stamp("src", {"sample": None}, {"data_dir": "a"}, "c1")) is None
    assert stamps.stale_reason(base, stamps.make_stamp("src2", {"sample": None}, {"data_dir": "a"}, "c1")) \
        == "source changed"
    assert stamps.stale_reason(base, stamps.make_stamp("src", {"sample": 3}, {"data_dir": "b"}, "c1")) \
        == "parameters, data changed"
    assert stamps.stale_reason(base, stamps.make_stamp("src", {"sample": None}, {"data_dir": "a"}, "c2")) \
        == "code changed"


def test_tree_fingerprint_sees_edits_additions_and_removals(tmp_path):
    (tmp_path / "a.json").write_text("1")
    fp0 = stamps.tree_fingerprint(tmp_path)
    assert stamps.tree_fingerprint(tmp_path) == fp0
    (tmp_path / "a.json").write_text("22")
    fp1 = stamps.tree_fingerprint(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text("x")
    fp2 = stamps.tree_fingerprint(tmp_path)
    (tmp_path / "sub" / "b.json").unlink()
    assert len({fp0, fp1, fp2}) == 3 and stamps.tree_fingerprint(tmp_path) == fp1


def _statuses(report):
    return [(r.name, r.status, r.reason) for r in report.results]


def test_rebuild_skips_unchanged_and_reruns_what_changed(mini_root, synthetic_kokorochat_dir, tmp_path):
    data, out = synthetic_kokorochat_dir, tmp_path / "build"
    run = lambda **kw: book.build(mini_root, data_dir=data, build_dir=out, html=False, n_jobs=1,
                                  progress=False, **kw)
    assert _statuses(run()) == [("01_demo", "ran", "new")]
    executed = nbformat.read(out / "executed" / "01_demo.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    assert (out / "outputs" / "01_demo").is_dir()          # output_dir was injected

    stamp = json.loads((out / "executed" / "01_demo.stamp.json").read_text())
    # only the code the kernel imported counts: training code edits leave this chapter alone
    assert "kokoro_nb.show.plotting" in stamp["modules"] and "kokoro_nb.train.loop" not in stamp["modules"]
    assert stamp["code"] == stamps.code_fingerprint(stamp["modules"]) != stamps.code_fingerprint()

    t0 = time.perf_counter()
    assert _statuses(run()) == [("01_demo", "skipped", None)]
    assert time.perf_counter() - t0 < 5

    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(src.read_text() + "\nMore prose.\n")
    assert _statuses(run()) == [("01_demo", "ran", "source changed")]
    assert _statuses(run(sample=5)) == [("01_demo", "ran", "parameters changed")]
    cells = nbformat.read(out / "executed" / "01_demo.ipynb", as_version=4).cells
    assert "sample 5" in json.dumps([c.outputs for c in cells if c.cell_type == "code"][-1])
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])][0]
    # readers see the sample this page ran with, not the local paths
    assert "sample = 5" in injected.source and str(data) not in injected.source
    assert "remove-cell" not in injected.metadata["tags"]

    extra = data / "kokorochat_dialogues" / "999.json"
    shutil.copy(next((data / "kokorochat_dialogues").glob("1.json")), extra)
    assert _statuses(run(sample=5)) == [("01_demo", "ran", "data changed")]
    assert _statuses(run(sample=5)) == [("01_demo", "skipped", None)]
    assert _statuses(run(sample=5, force=True)) == [("01_demo", "ran", "forced")]


def test_failed_notebook_is_reported_and_rerun(mini_root, synthetic_kokorochat_dir, tmp_path):
    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(notebook_source("x = 1\n---\nraise ValueError('boom in cell two')"))
    out = tmp_path / "build"
    report = book.build(mini_root, data_dir=synthetic_kokorochat_dir, build_dir=out, n_jobs=1,
                        progress=False)
    (r,) = report.results
    assert not report.ok and r.status == "failed" and report.html is None
    assert "ValueError: boom in cell two" in r.error and "01_demo.failed.ipynb" in r.error
    assert (out / "executed" / "01_demo.failed.ipynb").is_file()
    assert not (out / "executed" / "01_demo.stamp.json").exists()   # so the next build retries


def test_cli_build_exit_codes(mini_root, synthetic_kokorochat_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(mini_root)
    assert main(["book", "build", "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["book", "build", "--data", str(synthetic_kokorochat_dir), "--sample", "0"]) == 2
    assert "--sample 0" in capsys.readouterr().err
    (mini_root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                        "  - file: notebooks/09_missing\n")
    assert main(["book", "build", "--data", str(synthetic_kokorochat_dir)]) == 2
    err = capsys.readouterr().err
    assert "_toc.yml" in err and "09_missing.md" in err


def _actions(parser) -> dict:
    """{action: [(option strings, dest, default, help)]} of a parser's book sub-commands."""
    (sub,) = [a for a in parser._actions if a.dest == "book_command"]
    return {name: [(a.option_strings, a.dest, a.default, a.help) for a in p._actions]
            for name, p in sub.choices.items()}


def test_kokoro_book_has_the_actions_of_kokoro_nb_book():
    (groups,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert _actions(book_cli.build_parser()) == _actions(groups.choices["book"])
    assert set(_actions(book_cli.build_parser())) == {"build", "pdf", "sync-colab", "teaching"}


def test_kokoro_book_bad_input_exits_2_with_one_line(mini_root, synthetic_kokorochat_dir, tmp_path,
                                                     monkeypatch, capsys):
    monkeypatch.chdir(mini_root)
    assert book_cli.main(["build", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kokoro-book: error:") and "nowhere" in err[0]
    assert book_cli.main(["pdf", "--data", str(synthetic_kokorochat_dir), "--sample", "0"]) == 2
    err = capsys.readouterr().err
    assert "--sample 0" in err and "Traceback" not in err
    assert book_cli.main(["sync-colab", "--check"]) == 2          # no build to quote yet
    assert "no executed notebook" in capsys.readouterr().err
    assert book_cli.main(["frobnicate"]) == 2                      # usage error: argparse's message
    assert "invalid choice" in capsys.readouterr().err
    assert book_cli.main(["build", "--help"]) == 0
    assert "--psy-insight" in capsys.readouterr().out


def test_kokoro_book_builds_and_checks_the_colab_copies(mini_root, synthetic_kokorochat_dir, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.chdir(mini_root)
    monkeypatch.setenv("TQDM_DISABLE", "0")         # -q sets it; restored after the test
    out = tmp_path / "build"
    assert book_cli.main(["-q", "build", "--data", str(synthetic_kokorochat_dir), "--no-html",
                          "--jobs", "1", "--build-dir", str(out)]) == 0
    assert os.environ["TQDM_DISABLE"] == "1"
    assert (out / "executed" / "01_demo.ipynb").is_file()
    assert "1 notebooks (1 run, 0 unchanged)" in capsys.readouterr().err
    # a full build wrote the Colab copy: the check passes, then fails once the source changes
    assert book_cli.main(["sync-colab", "--check", "--build-dir", str(out)]) == 0
    assert "up to date" in capsys.readouterr().err
    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(src.read_text() + "\nA new paragraph.\n")
    assert book_cli.main(["sync-colab", "--check", "--build-dir", str(out)]) == 2  # build is older
    assert "older version of 01_demo.md" in capsys.readouterr().err
    assert book_cli.main(["build", "--data", str(synthetic_kokorochat_dir), "--no-html", "--jobs", "1",
                          "--build-dir", str(out)]) == 0
    assert main(["book", "sync-colab", "--check", "--build-dir", str(out)]) == 0


def test_stamp_records_the_code_a_run_imported(tmp_path):
    target = tmp_path / "x.ipynb"
    stamp = stamps.make_stamp("src", {"sample": None}, {}, stamps.code_fingerprint())
    assert stamps.read_stamp(target) is None
    target.write_text("{}")
    stamps.write_stamp(target, stamp, ["kokoro_nb", "kokoro_nb.config"], 1.26)
    got = stamps.read_stamp(target)
    assert got["code"] == stamps.code_fingerprint(["kokoro_nb", "kokoro_nb.config"]) != stamp["code"]
    assert got["seconds"] == 1.3 and got["modules"] == ["kokoro_nb", "kokoro_nb.config"]
    assert got["key"] != stamp["key"] and stamps.stale_reason(got, stamp) == "code changed"
    assert stamps.stale_reason(got, stamps.keyed(got)) is None     # run details are not keyed
    target.unlink()
    assert stamps.read_stamp(target) is None                       # a stamp alone is no run


def test_durations_are_remembered_between_builds():
    stamps.write_durations({"zz_durations_test": 12.34})
    stamps.write_durations({"zz_other_test": 1.0})
    got = stamps.read_durations()
    assert got["zz_durations_test"] == 12.3 and got["zz_other_test"] == 1.0


def test_write_if_changed_leaves_an_unchanged_file_alone(tmp_path):
    path = tmp_path / "a" / "b.txt"
    assert sources.write_if_changed(path, b"one") is True
    os.utime(path, ns=(1, 1))
    assert sources.write_if_changed(path, b"one") is False and path.stat().st_mtime_ns == 1
    assert sources.write_if_changed(path, b"two") is True and path.read_bytes() == b"two"


def test_config_names_the_sphinx_extension_and_it_registers_its_hooks():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    ours = [e for e in cfg["sphinx"]["extra_extensions"] if e.startswith("kokoro_book")]
    assert ours == ["kokoro_book.sphinx"]

    class App:
        def __init__(self):
            self.values, self.events = {}, []

        def add_config_value(self, name, default, rebuild):
            self.values[name] = default

        def connect(self, event, fn, priority=500):
            self.events.append((event, fn.__name__))

    app = App()
    assert book_sphinx.setup(app)["parallel_read_safe"]
    assert app.values == {"kokoro_colab_path": colab.COLAB_PATH, "kokoro_repo_root": ""}
    assert ("html-page-context", "_colab_button") in app.events
    assert ("config-inited", "_require_pipeline") in app.events


def test_a_build_without_psy_insight_leaves_the_colab_copies_alone(mini_root, synthetic_kokorochat_dir,
                                                                  tmp_path, monkeypatch, capsys):
    """A chapter that reads Psy-Insight, built without it (no copy, the download fails), would
    make its copy quote the absence."""
    monkeypatch.delenv("PSY_INSIGHT_DIR", raising=False)
    monkeypatch.setenv(config.MIRROR_ENV, "http://127.0.0.1:9")       # offline: nothing listens there
    monkeypatch.setattr(data_sources, "RETRY_BACKOFF", 0.01)
    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(src.read_text().replace('output_dir = "outputs"',
                                           'output_dir = "outputs"\npsy_insight_dir = None'))
    report = book.build(mini_root, data_dir=synthetic_kokorochat_dir, build_dir=tmp_path / "b",
                        n_jobs=1, html=False)
    assert report.ok
    assert not (mini_root / "notebooks" / "colab" / "01_demo.ipynb").exists()
    err = capsys.readouterr().err
    assert "has no Psy-Insight" in err and "kokoro-nb: Psy-Insight left out: could not download" in err
    report = book.build(mini_root, data_dir=synthetic_kokorochat_dir, build_dir=tmp_path / "b",
                        psy_insight_dir=tmp_path, n_jobs=1, html=False, progress=False)
    assert report.ok and (mini_root / "notebooks" / "colab" / "01_demo.ipynb").is_file()


# --------------------------------------------------------------------------- rendering

def test_html_build_with_colab_button_and_warnings_as_errors(mini_root, synthetic_kokorochat_dir, tmp_path):
    out = tmp_path / "build"
    run = lambda: book.build(mini_root, data_dir=synthetic_kokorochat_dir, build_dir=out,
                             n_jobs=1, progress=False, colab=False)
    report = run()          # no Colab copy yet: the button would 404, a warning, so an error
    assert not report.ok and report.sphinx_rc != 0
    assert "notebooks/colab/01_demo.ipynb" in report.warnings and "sync-colab" in report.warnings

    assert colab.sync(mini_root, build_dir=out) == ["notebooks/colab/01_demo.ipynb"]
    report = run()
    assert report.ok, report.warnings
    # the default (full) build keeps the Colab copies in step with the sources and its numbers
    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(src.read_text() + "\nA new paragraph.\n")
    assert colab.check_structure(mini_root) == ["notebooks/colab/01_demo.ipynb"]
    report = book.build(mini_root, data_dir=synthetic_kokorochat_dir, build_dir=out, n_jobs=1,
                        progress=False)
    assert report.ok and colab.sync(mini_root, build_dir=out, check=True) == []
    copy = (mini_root / "notebooks" / "colab" / "01_demo.ipynb").read_text(encoding="utf-8")
    assert "The data folder has 20 dialogue files." in copy and "{glue" not in copy
    html = (out / "html" / "notebooks" / "01_demo.html").read_text(encoding="utf-8")
    assert colab.colab_url(REPO_URL, BRANCH, "01_demo") in html
    assert f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/{BRANCH}/notebooks/colab/01_demo.ipynb" in html
    assert "The data folder has 20 dialogue files." in re.sub(r"<[^>]+>", "", html)  # glue resolved
    assert "injected-parameters" not in html and str(synthetic_kokorochat_dir) not in html

    (mini_root / "book" / "intro.md").write_text("# Intro\n\nSee {doc}`nonexistent-page`.\n")
    report = run()
    assert not report.ok and "nonexistent-page" in report.warnings


# --------------------------------------------------------------------------- Colab copies

def test_colab_copy_extras_gpu_and_own_setup_cell(tmp_path):
    src = tmp_path / "10_train.md"
    src.write_text(notebook_source("x = 1", front="kokoro_nb:\n  colab_extras: [train]\n  colab_gpu: true\n"))
    nb = nbformat.reads(colab.colab_notebook(src, REPO_URL, BRANCH), as_version=4)
    assert '"{repo}[train]"' in nb.cells[1].source and f'BRANCH = "{BRANCH}"' in nb.cells[1].source
    assert nb.metadata["accelerator"] == "GPU"

    own = notebook_source("x = 1").replace("# Demo chapter\n\nSome prose.\n\n",
                                           "# Demo chapter\n\n```{code-cell} ipython3\n:tags: [colab-setup]\n"
                                           "%pip install something-else\n```\n\n")
    src.write_text(own)
    nb = nbformat.reads(colab.colab_notebook(src, REPO_URL, BRANCH), as_version=4)
    setups = [c for c in nb.cells if colab.SETUP_TAG in c.metadata.get("tags", [])]
    assert [c.source for c in setups] == ["%pip install something-else"]


# --------------------------------------------------------------------------- the real book

@pytest.mark.realdata
@pytest.mark.slow
def test_whole_book_builds_on_real_data(real_book):
    # the build itself (fixture real_book in conftest.py) fails on a failed notebook or a warning
    for name in sources.chapters(ROOT):
        assert (real_book / "html" / "notebooks" / f"{name}.html").is_file()


def test_other_input_folders_join_the_stamp(mini_root, synthetic_kokorochat_dir, tmp_path):
    """A chapter that reads results_dir re-runs when results appear there (GPU runs)."""
    src = mini_root / "notebooks" / "01_demo.md"
    src.write_text(notebook_source("x = 1", params='data_dir = None\nresults_dir = "results"'))
    out = tmp_path / "build"

    def reason():
        (job,) = book_run.plan(mini_root, ["01_demo"], out, data_dir=synthetic_kokorochat_dir)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        job.target.write_text("{}")
        stamp_file = job.target.with_suffix(".stamp.json")
        stamp_file.write_text(json.dumps(job.stamp))        # as if it had run
        return job.reason, job.stamp["data"]["results_dir"]

    assert reason() == ("new", "absent")
    assert reason()[0] is None
    (mini_root / "results").mkdir()
    (mini_root / "results" / "responses.jsonl").write_text("{}\n")
    why, fp = reason()
    assert why == "data changed" and fp != "absent"
    assert reason()[0] is None


@pytest.mark.parametrize("markdown, expected", [
    ("[scores](21_scores.md)", "[scores](21_scores.ipynb)"),
    ("[s](./21_scores.md#table-5)", "[s](21_scores.ipynb#table-5)"),
    ("[perf](../book/performance.md)", "[perf](../book/performance.md)"),   # a page, not a chapter
    ("[other](99_absent.md)", "[other](99_absent.md)"),                     # no such chapter
    ("{doc}`21_scores`", "{doc}`21_scores`"),
])
def test_links_to_chapter_sources_point_at_executed_notebooks(tmp_path, markdown, expected):
    (tmp_path / "21_scores.md").write_text("")
    assert book_run._link_executed(markdown, tmp_path) == expected


def test_bare_jupyter_book_build_stops_at_once_with_one_line(tmp_path):
    """`jupyter-book build .` would render chapters without outputs: it must refuse, not half-build."""
    import subprocess
    import sys
    proj = tmp_path / "proj"
    shutil.copytree(ROOT, proj, ignore=shutil.ignore_patterns(".venv", "_build", ".git", "*.ipynb"))
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(proj)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("kokoro-nb:")]
    assert len(ours) == 1 and "make book" in ours[0]
    assert not (proj / "_build" / "html" / "index.html").exists()


def test_stage_book_publishes_chapter_downloads(tmp_path):
    root, build = tmp_path / "root", tmp_path / "build"
    root.mkdir()
    (root / "_config.yml").write_text("title: t\n", encoding="utf-8")
    (root / "_toc.yml").write_text("format: jb-book\nroot: notebooks/x\n", encoding="utf-8")
    (build / "executed").mkdir(parents=True)
    (build / "executed" / "x.ipynb").write_text("{}", encoding="utf-8")
    dl = build / "outputs" / "x" / book_stage.DOWNLOAD_DIR
    dl.mkdir(parents=True)
    (dl / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (build / "outputs" / "x" / "scratch.txt").write_text("not published", encoding="utf-8")
    stage = book_stage.stage_book(root, build, ["x"])
    published = stage / "notebooks" / book_stage.DOWNLOAD_DIR / "x" / "table.csv"
    assert published.read_text(encoding="utf-8") == "a,b\n1,2\n"
    assert not list(stage.rglob("scratch.txt"))
    (dl / "table.csv").unlink()
    book_stage.stage_book(root, build, ["x"])
    assert not published.exists()


def test_translation_dir_is_injected_where_declared(tmp_path):
    nb = _nb(tmp_path, notebook_source("x = 1", params="data_dir = None\ntranslation_dir = None"))
    p = sources.notebook_parameters(nb, "07_p", data_dir=tmp_path, translation_dir=tmp_path / "en",
                                 output_root=tmp_path / "out")
    assert p["translation_dir"] == str((tmp_path / "en").resolve())
    nb = _nb(tmp_path, notebook_source("x = 1", params="data_dir = None"))
    assert "translation_dir" not in sources.notebook_parameters(nb, "07_p", translation_dir=tmp_path,
                                                             output_root=tmp_path)


def test_pdf_without_tex_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))          # no lualatex, no latexmk
    with pytest.raises(KokoroError, match="apt-get install -y texlive-luatex"):
        from kokoro_book.pdf import render_pdf
        render_pdf(tmp_path, tmp_path)
