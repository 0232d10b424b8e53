"""The instructor guide (book/instructor_guide.md) says only what the code and the records hold.

- The course-folder layout it recommends is built from the synthetic corpus, the Colab setup
  cell's own Drive code (from kokoro_book.colab) sets the environment, and the corpus, the
  translation and Psy-Insight load with every network connection refused and nothing written
  into the folder. So do the archives alone in downloads/. An empty folder keeps what the first
  runtime downloads (from a stand-in for GitHub) for the next; the layouts it says are not read
  are downloaded instead; a read-only folder keeps downloads on the runtime, with its warning.
- Its table of Colab run times equals book/_data/colab_run_times.json, its CPU settings equal
  the chapters' book parameters, its archive links are the pinned commits.
- Its grading commands run verbatim, end to end, in a temporary HOME (nbgrader, chapter 5, one
  synthetic submission), through nbgrader export.
- Its Colab links are teaching.links_table(), and every linked notebook exists.
"""
from __future__ import annotations

import csv
import datetime
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import types
import zipfile
from pathlib import Path

import nbformat
import pytest

import kokoro_nb
from kokoro_book import colab, sources, teaching
from kokoro_nb import config
from kokoro_nb.data import sources as data_sources
from kokoro_nb.errors import DataNotFoundError
from kokoro_nb.testing.synthetic import (
    write_kokorochat,
    write_psy_insight,
    write_translation,
)

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "book" / "instructor_guide.md"
TEXT = GUIDE.read_text(encoding="utf-8")
RUN_TIMES = ROOT / "book" / "_data" / "colab_run_times.json"
CELL_ENV = (config.KOKOROCHAT_ENV, config.TRANSLATION_ENV, config.ARCHIVE_CACHE_ENV, config.PSY_INSIGHT_ENV)
needs_nbgrader = pytest.mark.skipif(not (Path(sys.executable).parent / "nbgrader").is_file(),
                                    reason="nbgrader is not installed (the teaching extra)")


def section(title: str) -> str:
    """The text of the guide's section *title* (a ## or ### heading) up to the next heading of its
    level or above; lines in fenced code (Python comments) are not headings."""
    out, level, fenced = None, 0, False
    for line in TEXT.splitlines(keepends=True):
        heading = None if fenced or line.startswith("```") else re.match(r"(#+) (.*)\n", line)
        if line.startswith("```"):
            fenced = not fenced
        if heading and out is not None and len(heading.group(1)) <= level:
            break
        if out is not None:
            out.append(line)
        elif heading and heading.group(2) == title:
            out, level = [], len(heading.group(1))
    assert out is not None, f"the guide has no section {title!r}"
    return "".join(out)


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.M | re.S)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in *text* (header and rule rows left out)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return [r for r in rows if not all(set(c) <= {"-", " "} for c in r)][1:]


# --------------------------------------------------------------------------- the page in the book

def test_the_toc_lists_the_guide_right_after_how_to_run():
    files = sources.toc_files(ROOT)
    assert files[files.index("book/how_to_run") + 1] == "book/instructor_guide"


def test_the_guide_has_no_tex_and_how_to_run_points_to_it():
    assert "$" not in TEXT
    how_to_run = (ROOT / "book" / "how_to_run.md").read_text(encoding="utf-8")
    teaching_part = how_to_run[how_to_run.index("## For teaching"):]
    assert "{doc}`instructor_guide`" in teaching_part


# --------------------------------------------------------------------------- the course folder

def colab_drive_cell(monkeypatch, drive: Path, drive_data: str) -> dict:
    """Run the Drive part of the Colab setup cell, as Colab would with DRIVE_DATA set and *drive*
    as the mount point; return what it set. The code is the cell's own (colab.setup_source)."""
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(drive))
    cell = colab.setup_source("https://github.com/someone/fork", "main")
    drive_part = textwrap.dedent(cell[cell.index("    if DRIVE_DATA:"):])
    mounts = []
    pkg = types.ModuleType("google.colab")
    pkg.drive = types.SimpleNamespace(mount=mounts.append)
    monkeypatch.setitem(sys.modules, "google.colab", pkg)
    for var in CELL_ENV:                # recorded by monkeypatch, so the test leaves them as they were
        monkeypatch.setenv(var, "-")
        monkeypatch.delenv(var)
    exec(compile(drive_part, "<colab setup cell: Drive>", "exec"), {"os": os, "DRIVE_DATA": drive_data})
    assert mounts == [str(drive)]
    return {var: os.environ.get(var) for var in CELL_ENV}


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args[1:] or args}")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def recommended_layout(my_drive: Path) -> Path:
    """The guide's course folder: KokoroChat's repository files at the top, the translation in
    multilingual-kokorochat/, Psy-Insight in psy-insight/."""
    folder = my_drive / "KokoroChat"
    write_kokorochat(folder, n_dialogues=60)
    write_translation(folder / "multilingual-kokorochat", folder)
    write_psy_insight(folder / "psy-insight")
    (folder / "LICENSE").write_text("stands in for the repository's licence file\n", encoding="utf-8")
    return folder


def what_the_guide_says(row: str) -> str:
    """The guide's answer, in its table of what the course folder may hold, for the row starting *row*."""
    table = {r[0]: r[1] for r in table_rows(section("A course folder on Google Drive"))}
    found = [answer for key, answer in table.items() if key.startswith(row)]
    assert len(found) == 1, f"the guide's table has {len(found)} rows starting {row!r}"
    return found[0]


def test_the_guides_layout_is_the_one_tested():
    tree = code_blocks(section("A course folder on Google Drive"), "text")[0]
    for name in ("KokoroChat/", data_sources.DIALOGUE_FOLDER, "multilingual-kokorochat/", "English/",
                 "psy-insight/", "data/", 'DRIVE_DATA = "KokoroChat"'):
        assert name in tree


def test_the_recommended_layout_loads_everything_without_network_or_writes(tmp_path, monkeypatch,
                                                                         no_network):
    drive = tmp_path / "drive"
    folder = recommended_layout(drive / "MyDrive")
    before = snapshot(folder)
    env = colab_drive_cell(monkeypatch, drive, "KokoroChat")
    assert env == {config.KOKOROCHAT_ENV: str(folder),
                   config.TRANSLATION_ENV: str(folder / "multilingual-kokorochat"),
                   config.ARCHIVE_CACHE_ENV: str(folder / "downloads"),
                   config.PSY_INSIGHT_ENV: str(folder / "psy-insight")}
    corpus = kokoro_nb.load_kokorochat(progress=False)           # what a chapter calls: data_dir = None
    assert len(corpus) == 60
    english = corpus.with_english()
    assert english.translation.translated > 0 and english.utterances["text_en"].notna().any()
    psy = kokoro_nb.load_psy_insight()                                  # psy_insight_dir = None
    assert len(psy) > 0
    assert snapshot(folder) == before, "loading wrote into the course folder"
    tables = list((config.cache_dir() / "tables").glob("kokorochat-*"))
    assert tables, "the parsed tables are cached in the runtime's own cache folder"


def test_a_folder_that_is_not_in_my_drive_stops_the_cell_as_the_guide_says(tmp_path, monkeypatch):
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)
    with pytest.raises(SystemExit) as stop:
        colab_drive_cell(monkeypatch, tmp_path / "drive", "KokoroChat")
    assert str(stop.value).startswith(f"DRIVE_DATA: no folder {tmp_path}/drive/MyDrive/KokoroChat;")
    assert 'the cell stops with "DRIVE_DATA: no folder …"' in " ".join(TEXT.split())


def test_the_guide_says_psy_insight_is_read_from_the_folder_or_downloaded():
    row = next(line for line in TEXT.splitlines() if line.startswith("| `psy-insight/` holding `data/`"))
    assert "yes" in row and "download" in row and "7.2 MB" in row
    from kokoro_nb.data.sources import psy_insight_manifest
    assert len(psy_insight_manifest()) == 2, "the guide says Psy-Insight's two data files"


def test_dialogue_files_directly_in_the_folder_are_read(tmp_path, monkeypatch, no_network):
    drive = tmp_path / "drive"
    (drive / "MyDrive").mkdir(parents=True)
    repo = write_kokorochat(tmp_path / "repo", n_dialogues=20)
    shutil.move(repo / data_sources.DIALOGUE_FOLDER, drive / "MyDrive" / "KokoroChat")
    colab_drive_cell(monkeypatch, drive, "KokoroChat")
    assert len(kokoro_nb.load_kokorochat(progress=False)) == 20
    assert what_the_guide_says("the `<id>.json` files directly") == "yes"


def _zip_repository(archive: Path, top: str, files: dict[str, Path]) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for rel, f in files.items():
            zf.write(f, f"{top}/{rel}")


@pytest.fixture
def github(monkeypatch):
    """GitHub without a network: a download of a URL in ``served`` copies the file given for it;
    every URL asked for is logged in ``asked``; any other URL is not found."""
    served, asked = {}, []

    def download(self, url, output_file, pooch_obj=None):
        asked.append(url)
        if url not in served:
            raise DataNotFoundError(f"could not download {url} (404)")
        shutil.copyfile(served[url], output_file)
    monkeypatch.setattr(data_sources.Downloader, "__call__", download)
    return types.SimpleNamespace(served=served, asked=asked)


def pinned_archives(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """The archives of the pinned KokoroChat and translation commits, built from synthetic files
    and named as GitHub names them, with SHA-256 manifests made for them; {url: archive}."""
    repo = write_kokorochat(tmp_path / "upstream" / "kokorochat", n_dialogues=60)
    english = write_translation(tmp_path / "upstream" / "translation", repo) / "English"
    out = {}
    for (rep, commit), files, manifest in (
            ((config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT),
             {f"{data_sources.DIALOGUE_FOLDER}/{f.name}": f
              for f in (repo / data_sources.DIALOGUE_FOLDER).glob("*.json")}, "kokorochat_manifest"),
            ((config.TRANSLATION_REPO, config.TRANSLATION_COMMIT),
             {f"English/{f.name}": f for f in sorted(english.glob("*.json"))}, "translation_manifest")):
        hashes = {k: data_sources.sha256_file(f) for k, f in files.items()}
        monkeypatch.setattr(data_sources, manifest, lambda hashes=hashes: hashes)
        name = data_sources.archive_name(rep, commit)
        _zip_repository(tmp_path / "upstream" / name, name.removesuffix(".zip"), files)
        out[data_sources.archive_url(rep, commit)] = tmp_path / "upstream" / name
    return out


def new_runtime(monkeypatch, tmp_path: Path, n: int) -> None:
    """An empty user cache folder, as in a fresh Colab runtime."""
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / f"runtime{n}"))


def test_only_the_archives_in_downloads_load_without_network_or_writes(tmp_path, monkeypatch, no_network):
    archives = pinned_archives(tmp_path, monkeypatch)
    drive = tmp_path / "drive"
    folder = drive / "MyDrive" / "KokoroChat"
    for archive in archives.values():
        (folder / "downloads").mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, folder / "downloads" / archive.name)
    before = snapshot(folder)
    env = colab_drive_cell(monkeypatch, drive, "KokoroChat")
    assert env[config.KOKOROCHAT_ENV] is None and env[config.TRANSLATION_ENV] is None
    new_runtime(monkeypatch, tmp_path, 1)
    corpus = kokoro_nb.load_kokorochat(progress=False)
    assert len(corpus) == 60 and corpus.with_english().translation.translated > 0
    assert snapshot(folder) == before
    assert what_the_guide_says("KokoroChat's archive, named as GitHub names it, in `downloads/`") == \
        "yes, without a request"


def test_an_empty_folder_keeps_the_downloads_for_the_next_runtime(tmp_path, monkeypatch, no_network, github):
    github.served.update(pinned_archives(tmp_path, monkeypatch))
    drive = tmp_path / "drive"
    folder = drive / "MyDrive" / "KokoroChat"
    folder.mkdir(parents=True)
    colab_drive_cell(monkeypatch, drive, "KokoroChat")
    for n in (1, 2):
        new_runtime(monkeypatch, tmp_path, n)
        corpus = kokoro_nb.load_kokorochat(progress=False)
        assert len(corpus) == 60 and corpus.with_english().translation.translated > 0
        assert github.asked == list(github.served)             # each archive once, in runtime 1
    assert sorted(p.name for p in (folder / "downloads").iterdir()) == sorted(
        a.name for a in github.served.values())
    assert what_the_guide_says("nothing yet").startswith(
        "the first chapter downloads KokoroChat and keeps its archive in `downloads/`")


@pytest.mark.parametrize("where", ["nested top folder", "archive in the folder"])
def test_kokorochat_as_an_archive_or_one_folder_down_is_not_read(tmp_path, monkeypatch, no_network, github,
                                                                 where):
    """Not a KokoroChat folder to the setup cell: KokoroChat is downloaded, kept in downloads/."""
    github.served.update(pinned_archives(tmp_path, monkeypatch))
    kokorochat = next(a for a in github.served.values() if a.name.startswith("KokoroChat-"))
    drive = tmp_path / "drive"
    folder = drive / "MyDrive" / "KokoroChat"
    if where == "nested top folder":
        with zipfile.ZipFile(kokorochat) as zf:
            zf.extractall(folder)
        assert data_sources.verify_kokorochat(folder / kokorochat.name.removesuffix(".zip"))["ok"]
    else:
        folder.mkdir(parents=True)
        shutil.copy(kokorochat, folder / kokorochat.name)
    env = colab_drive_cell(monkeypatch, drive, "KokoroChat")
    assert env[config.KOKOROCHAT_ENV] is None
    new_runtime(monkeypatch, tmp_path, 1)
    assert len(kokoro_nb.load_kokorochat(progress=False)) == 60
    assert github.asked == [data_sources.archive_url(config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT)]
    assert (folder / "downloads" / kokorochat.name).is_file()
    row = {"nested top folder": "KokoroChat's unpacked top folder as a subfolder",
           "archive in the folder": "KokoroChat's archive (`.zip`) in the folder itself"}[where]
    assert what_the_guide_says(row).startswith("no: ") and "downloaded" in what_the_guide_says(row)


def test_a_read_only_folder_with_an_empty_downloads_folder_keeps_downloads_on_the_runtime(
        tmp_path, monkeypatch, no_network, github, read_only):
    """Students with Viewer access (``read_only``: a real read-only folder, see tests/conftest.py):
    the missing translation is downloaded to the runtime, with one warning; the folder is unchanged."""
    github.served.update(pinned_archives(tmp_path, monkeypatch))
    drive = tmp_path / "drive"
    folder = recommended_layout(drive / "MyDrive")
    shutil.rmtree(folder / "multilingual-kokorochat")
    (folder / "downloads").mkdir()
    read_only(folder)
    before = snapshot(folder)
    colab_drive_cell(monkeypatch, drive, "KokoroChat")
    new_runtime(monkeypatch, tmp_path, 1)
    with pytest.warns(UserWarning) as record:
        corpus = kokoro_nb.load_kokorochat(progress=False).with_english()
    said = [str(w.message) for w in record if config.ARCHIVE_CACHE_ENV in str(w.message)]
    refused = errno.EROFS if os.geteuid() == 0 else errno.EACCES      # as read_only makes it
    assert said == [(f"{config.ARCHIVE_CACHE_ENV}={folder / 'downloads'} cannot be written "
                     f"({os.strerror(refused)}): downloads are kept in the local cache instead")]
    assert corpus.translation.translated > 0
    assert github.asked == [data_sources.archive_url(config.TRANSLATION_REPO, config.TRANSLATION_COMMIT)]
    assert snapshot(folder) == before
    reason = said[0][said[0].index("(") + 1:said[0].index(")")]
    shown = said[0].replace(str(folder), "/content/drive/MyDrive/KokoroChat").replace(reason, "…")
    assert f"UserWarning: {shown}\n" in TEXT
    if reason == os.strerror(errno.EROFS):
        assert f'("{reason}" on a read-only mount)' in TEXT


def test_the_translation_archive_in_downloads_needs_no_request(tmp_path, monkeypatch, no_network):
    drive = tmp_path / "drive"
    folder = drive / "MyDrive" / "KokoroChat"
    write_kokorochat(folder, n_dialogues=60)
    english = write_translation(tmp_path / "translation", folder) / "English"
    files = {f"English/{f.name}": f for f in sorted(english.glob("*.json"))}
    manifest = {k: data_sources.sha256_file(f) for k, f in files.items()}
    monkeypatch.setattr(data_sources, "translation_manifest", lambda: manifest)
    name = data_sources.archive_name(config.TRANSLATION_REPO, config.TRANSLATION_COMMIT)
    _zip_repository(folder / "downloads" / name, name.removesuffix(".zip"), files)
    env = colab_drive_cell(monkeypatch, drive, "KokoroChat")
    assert env[config.TRANSLATION_ENV] is None           # no multilingual-kokorochat/ folder
    corpus = kokoro_nb.load_kokorochat(progress=False)
    assert len(corpus) > data_sources.PER_FILE_MAX       # more files than come one by one
    assert corpus.with_english().translation.translated == len(files)
    assert f"{data_sources.PER_FILE_MAX} translation files or fewer" in TEXT


def test_the_archive_links_are_the_pinned_commits(monkeypatch):
    monkeypatch.delenv(config.MIRROR_ENV, raising=False)
    links = set(re.findall(r"<(https://github\.com/[^>]+\.zip)>", TEXT))
    assert links == {data_sources.archive_url(repo, commit) for repo, commit in (
        (config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT),
        (config.TRANSLATION_REPO, config.TRANSLATION_COMMIT),
        (config.PSY_INSIGHT_REPO, config.PSY_INSIGHT_COMMIT))}
    for repo, commit in ((config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT),
                         (config.TRANSLATION_REPO, config.TRANSLATION_COMMIT)):
        assert data_sources.archive_name(repo, commit).removesuffix(".zip") in TEXT


# --------------------------------------------------------------------------- numbers and settings

def test_the_run_time_table_is_the_colab_record():
    record = json.loads(RUN_TIMES.read_text(encoding="utf-8"))["notebooks"]
    part = section("Run times on Colab")
    table = {row[1].strip("`"): row[2] for row in table_rows(part)}
    assert table == {name: f"{entry['seconds']:.1f}" for name, entry in record.items()}
    assert set(table) == {p.stem for p in sources.notebook_sources(ROOT)}, "a chapter without a run time"
    # the conditions the text states are the record's
    said = " ".join(part.split())
    for entry in record.values():
        day = datetime.date.fromisoformat(entry["date"])
        for fact in (f"{day.day} {day:%B %Y}", f"Python {entry['python']}",
                     f"{entry['jobs']} notebooks at a time", f"{entry['cpus']} CPU cores"):
            assert fact in said, f"the text does not say {fact!r}"


def test_numbers_quoted_from_other_pages_are_theirs():
    record = json.loads(RUN_TIMES.read_text(encoding="utf-8"))["notebooks"]
    said = " ".join(TEXT.split())
    assert f"60 × {record['10_train_response_generation']['seconds']:.1f} s" in said
    how_to_run = " ".join((ROOT / "book" / "how_to_run.md").read_text(encoding="utf-8").split())
    download = re.search(r"2 requests and ([\d.]+) MB", how_to_run).group(1)
    assert f"2 requests and {download} MB" in said and f"60 × {download} MB" in said
    assert f"about {60 * float(download) / 1000:.1f} GB" in said
    performance = " ".join((ROOT / "book" / "performance.md").read_text(encoding="utf-8").split())
    t4_colab = re.search(r"\| `colab` \| [^|]+\| 150 \| ([\d.]+) h \|", performance).group(1)
    assert f"150 steps on the High subset, estimated at {t4_colab} hours on a T4" in said


def test_the_cpu_settings_are_the_book_parameters():
    blocks = code_blocks(section("What needs a GPU"), "python")
    shown = {}
    for block in blocks:
        m = re.match(r"# chapter \d+ \((\w+)\) on a CPU", block)
        if m:
            namespace: dict = {}
            exec(block, namespace)
            shown[m.group(1)] = {k: v for k, v in namespace.items() if not k.startswith("__")}
    expected = {}
    for src in sources.notebook_sources(ROOT):
        params = sources.notebook_options(sources.read_notebook(src), src).get("book_parameters")
        if params:
            expected[src.stem] = params
    assert shown == expected


def test_the_nbgrader_config_shown_is_the_books():
    commands = code_blocks(section("How to grade"), "bash")[0]
    config_file = re.search(r"cat > nbgrader_config.py <<'END'\n(.*?)END\n", commands, re.S).group(1)
    assert config_file == teaching.NBGRADER_CONFIG


# --------------------------------------------------------------------------- grading, end to end

@needs_nbgrader
def test_the_grading_commands_run_as_written(tmp_path):
    """The guide's command block, verbatim, in a HOME holding a clone (its notebooks/), synthetic
    data in ~/data and one solved submission in ~/Downloads."""
    commands = code_blocks(section("How to grade"), "bash")[0]
    home = tmp_path / "home"
    kokorochat = write_kokorochat(home / "data" / "kokorochat", n_dialogues=60)
    write_translation(home / "data" / "multilingual-kokorochat", kokorochat)
    write_psy_insight(home / "data" / "psy-insight")
    (home / "kokorochat-companion").mkdir()
    (home / "kokorochat-companion" / "notebooks").symlink_to(ROOT / "notebooks")
    name = "05_dataset_comparison"
    student = nbformat.read(ROOT / teaching.STUDENT_DIR / f"{name}.ipynb", as_version=4)
    instructor = nbformat.read(ROOT / teaching.INSTRUCTOR_DIR / f"{name}.ipynb", as_version=4)
    (home / "Downloads").mkdir()
    nbformat.write(teaching.fill_in(student, instructor), home / "Downloads" / "s001.ipynb")
    bin_dir = Path(sys.executable).parent
    env = {"HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p),
           config.CACHE_ENV: str(tmp_path / "cache")}
    proc = subprocess.run(["bash", "-e", "-c", commands], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    course = home / "kokoro-course"
    with open(course / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    auto = sum(c.metadata["nbgrader"]["points"] for c in instructor.cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
    total = sum(c.metadata["nbgrader"]["points"] for c in instructor.cells
                if c.metadata.get("nbgrader", {}).get("grade"))
    assert [(r["assignment"], r["student_id"]) for r in rows] == [(name, "s001")]
    assert float(rows[0]["score"]) == auto and float(rows[0]["max_score"]) == total, rows
    assert (course / "feedback" / "s001" / name / f"{name}.html").is_file()


# --------------------------------------------------------------------------- links to the notebooks

def test_the_colab_links_follow_the_colab_copies_pattern():
    url, branch = colab.repository(ROOT)
    for edition, folder in teaching.EDITION_DIRS.items():
        assert teaching.colab_url(url, branch, edition, "05_dataset_comparison") == colab.colab_url(
            url, branch, "05_dataset_comparison").replace(f"/{colab.COLAB_DIR}/", f"/{folder}/")


def test_the_links_table_is_current_and_every_linked_notebook_exists():
    """Fails until every chapter's student and instructor notebooks are committed."""
    table = teaching.links_table(ROOT)
    assert table in TEXT, "run kokoro_book.teaching.links_table() and paste it into the guide"
    url, branch = colab.repository(ROOT)
    prefix = teaching.colab_url(url, branch, "student", "x").split("/notebooks/")[0] + "/"
    linked = re.findall(rf"\]\({re.escape(prefix)}([^)]+)\)", TEXT)
    assert len(linked) == 2 * len(sources.notebook_sources(ROOT))
    missing = [path for path in linked if not (ROOT / path).is_file()]
    assert not missing, f"the guide links notebooks that are not in the repository: {missing}"
