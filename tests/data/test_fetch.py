"""Downloads as a classroom meets them: one archive request per data set and runtime, retries,
the archive cache (Drive on Colab), per-file checks, and `make book` on a fresh clone.

Everything runs against a loopback HTTP server that serves archives built here from synthetic
files, with manifests made for them (``$KOKORO_DOWNLOAD_MIRROR`` points the downloads at it).
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest

import kokoro_nb
from kokoro_book import build as book
from kokoro_book.cli import add_build_args
from kokoro_nb import config
from kokoro_nb.cli.main import main as cli
from kokoro_nb.data import sources
from kokoro_nb.errors import DataError, DataNotFoundError
from kokoro_nb.testing.synthetic import (
    write_kokorochat,
    write_psy_insight,
    write_translation,
)

ROOT = Path(__file__).resolve().parents[2]
TR, KC = config.TRANSLATION_COMMIT, config.KOKOROCHAT_COMMIT
TR_ARCHIVE = f"/{config.TRANSLATION_REPO}/archive/{TR}.zip"
KC_ARCHIVE = f"/{config.KOKOROCHAT_REPO}/archive/{KC}.zip"
PSY = config.PSY_INSIGHT_COMMIT
PSY_RAW = [f"/{config.PSY_INSIGHT_REPO}/raw/{PSY}/data/{n}" for n in sorted(sources.PSY_INSIGHT_FILES.values())]


class Server:
    """Serve a folder on 127.0.0.1, logging (path, status, body bytes) of every request.

    ``fail[path] = n`` answers the next n requests for *path* with 503; ``cut[path] = n`` sends
    half of the next n bodies and hangs up.
    """

    def __init__(self, folder: Path):
        self.folder, self.log, self.fail, self.cut = folder, [], {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                f = server.folder / path.lstrip("/")
                if server.fail.get(path, 0) > 0:
                    server.fail[path] -= 1
                    status, body = 503, b""
                elif f.is_file():
                    status, body = 200, f.read_bytes()
                else:
                    status, body = 404, b""
                length = len(body)
                if server.cut.get(path, 0) > 0:
                    server.cut[path] -= 1
                    body = body[:length // 2]
                server.log.append((path, status, len(body)))   # before the client can see it
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.log]


def _zip_repository(out: Path, top: str, files: dict[str, Path]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, f in files.items():
            zf.write(f, f"{top}/{rel}")
    return out


@pytest.fixture
def site(tmp_path_factory, monkeypatch):
    """Synthetic KokoroChat, translation and Psy-Insight, their manifests, and a mirror serving
    both KokoroChat repositories' archives (with a Chinese half to leave out), the raw English
    files and Psy-Insight's two raw data files."""
    base = tmp_path_factory.mktemp("site")
    ja = write_kokorochat(base / "ja", n_dialogues=60)
    en = write_translation(base / "en", ja, missing=("3",))
    chinese = base / "zh1.json"
    chinese.write_text('{"dialogue": []}', encoding="utf-8")
    english = {f"English/{f.name}": f for f in sorted((en / "English").glob("*.json"))}
    dialogues = {f"kokorochat_dialogues/{f.name}": f for f in (ja / "kokorochat_dialogues").glob("*.json")}
    serve = base / "serve"
    _zip_repository(serve / TR_ARCHIVE.lstrip("/"), f"MultilingualKokoroChat-{TR}",
                    {**english, "Chinese/zh1.json": chinese})
    _zip_repository(serve / KC_ARCHIVE.lstrip("/"), f"KokoroChat-{KC}", dialogues)
    for rel, f in english.items():
        target = serve / config.TRANSLATION_REPO / "raw" / TR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    psy = write_psy_insight(base / "psy")
    shutil.copytree(psy / "data", serve / config.PSY_INSIGHT_REPO / "raw" / PSY / "data")
    server = Server(serve)
    monkeypatch.setenv(config.CACHE_ENV, str(base / "cache"))     # each test a fresh runtime
    monkeypatch.setenv(config.MIRROR_ENV, server.url)
    monkeypatch.delenv(config.ARCHIVE_CACHE_ENV, raising=False)
    monkeypatch.setattr(sources, "RETRY_BACKOFF", 0.01)
    tm = {k: sources.sha256_file(f) for k, f in english.items()}
    km = {k: sources.sha256_file(f) for k, f in dialogues.items()}
    monkeypatch.setattr(sources, "translation_manifest", lambda: tm)
    monkeypatch.setattr(sources, "kokorochat_manifest", lambda: km)
    pm = {f"data/{f.name}": sources.sha256_file(f) for f in sorted((psy / "data").glob("*.json"))}
    monkeypatch.setattr(sources, "psy_insight_manifest", lambda: pm)
    yield argparse.Namespace(server=server, ja=ja, en=en, english=english, tm=tm, km=km, base=base,
                             psy=psy, pm=pm)
    server.httpd.shutdown()


def _names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


# --------------------------------------------------------------------------- the translation

def test_the_whole_translation_is_one_archive_request_and_every_file_is_checked(site, tmp_path):
    root = sources.fetch_translation(None, tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE]
    assert _names(root) == sorted(site.tm)                     # English only: no Chinese half
    assert all((root / k).read_bytes() == f.read_bytes() for k, f in site.english.items())
    # a second chapter on the same runtime, for all files or for many ids: nothing to download
    sources.fetch_translation(None, tmp_path / "runtime", progress=False)
    sources.fetch_translation([str(i) for i in range(60)], tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE]


def test_a_handful_of_ids_come_file_by_file_and_more_as_the_archive(site, tmp_path):
    raw = f"/{config.TRANSLATION_REPO}/raw/{TR}/English"
    sources.fetch_translation(["1", "2", "3"], tmp_path / "few", progress=False)  # 3 has no file
    assert site.server.paths() == [f"{raw}/en1.json", f"{raw}/en2.json"]
    many = [str(i) for i in range(sources.PER_FILE_MAX + 5)]
    sources.fetch_translation(many, tmp_path / "many", progress=False)
    assert site.server.paths()[2:] == [TR_ARCHIVE]


def test_a_503_is_retried_and_a_lasting_one_names_the_url(site, tmp_path):
    site.server.fail[TR_ARCHIVE] = 1
    sources.fetch_translation(None, tmp_path / "a", progress=False)
    assert [(p, s) for p, s, _ in site.server.log] == [(TR_ARCHIVE, 503), (TR_ARCHIVE, 200)]
    site.server.log.clear()
    site.server.fail[TR_ARCHIVE] = 100
    with pytest.raises(DataNotFoundError, match=f"could not download {site.server.url}{TR_ARCHIVE}"):
        sources.fetch_translation(None, tmp_path / "b", progress=False)
    assert len(site.server.log) == sources.RETRIES + 1


def test_a_transfer_cut_off_midway_starts_again(site, tmp_path):
    site.server.cut[TR_ARCHIVE] = 1
    root = sources.fetch_translation(None, tmp_path / "a", progress=False)
    assert site.server.paths() == [TR_ARCHIVE, TR_ARCHIVE]
    assert _names(root) == sorted(site.tm)


def test_the_archive_cache_serves_a_new_runtime_without_a_request(site, tmp_path, monkeypatch):
    drive = tmp_path / "drive"
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    sources.fetch_translation(None, tmp_path / "runtime1" / "en", progress=False)
    sources.fetch_kokorochat(tmp_path / "runtime1", progress=False)
    assert site.server.paths() == [TR_ARCHIVE, KC_ARCHIVE]
    assert sorted(p.name for p in drive.iterdir()) == [f"KokoroChat-{KC}.zip", f"MultilingualKokoroChat-{TR}.zip"]
    # a new runtime: empty local folders, the same Drive
    root = sources.fetch_translation(None, tmp_path / "runtime2" / "en", progress=False)
    top = sources.fetch_kokorochat(tmp_path / "runtime2", progress=False)
    assert site.server.paths() == [TR_ARCHIVE, KC_ARCHIVE]
    assert _names(root) == sorted(site.tm)
    assert len(kokoro_nb.load_kokorochat(top, cache=False, progress=False)) == 60


def test_a_cut_off_copy_in_the_cache_is_downloaded_again(site, tmp_path, monkeypatch):
    drive = tmp_path / "drive"
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    drive.mkdir()
    good = (site.server.folder / TR_ARCHIVE.lstrip("/")).read_bytes()
    (drive / f"MultilingualKokoroChat-{TR}.zip").write_bytes(good[:len(good) // 2])
    root = sources.fetch_translation(None, tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE]
    assert _names(root) == sorted(site.tm)
    assert (drive / f"MultilingualKokoroChat-{TR}.zip").read_bytes() == good


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if config.ARCHIVE_CACHE_ENV in str(w.message)]


def test_a_read_only_cache_is_read_and_what_it_lacks_is_kept_locally(site, tmp_path, monkeypatch,
                                                                     read_only):
    """A Drive folder shared as Viewer (``read_only``: a real read-only folder, see conftest):
    the KokoroChat archive in it is read without a request; the translation and Psy-Insight,
    not in it, are downloaded into the runtime's folders, with one warning for the three."""
    drive = tmp_path / "drive"
    drive.mkdir()
    shutil.copy(site.server.folder / KC_ARCHIVE.lstrip("/"), drive / f"KokoroChat-{KC}.zip")
    read_only(drive)
    before = _snapshot(drive)
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    with pytest.warns(UserWarning) as record:
        top = sources.fetch_kokorochat(tmp_path / "runtime", progress=False)
        root = sources.fetch_translation(None, tmp_path / "runtime" / "en", progress=False)
        psy = sources.fetch_psy_insight(tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE, *PSY_RAW]
    said = _cache_warnings(record)
    assert len(said) == 1 and said[0].startswith(f"{config.ARCHIVE_CACHE_ENV}={drive} cannot be written (")
    assert said[0].endswith("): downloads are kept in the local cache instead")
    assert (root / f"MultilingualKokoroChat-{TR}.zip").is_file()       # kept on the runtime
    assert len(kokoro_nb.load_kokorochat(top, cache=False, progress=False)) == 60
    assert _names(root) == sorted(site.tm) and sources.verify_psy_insight(psy, site.pm)["ok"]
    assert _snapshot(drive) == before
    # the same runtime again: everything is local now, no request and no warning
    sources.fetch_translation(None, tmp_path / "runtime" / "en", progress=False)
    sources.fetch_psy_insight(tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE, *PSY_RAW]


def test_psy_insight_files_in_a_read_only_cache_are_read(site, tmp_path, monkeypatch, read_only):
    drive = tmp_path / "drive"
    shutil.copytree(site.psy / "data", drive / f"Psy-Insight-{PSY}" / "data")
    read_only(drive)
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    data = sources.fetch_psy_insight(tmp_path / "runtime", progress=False)
    assert site.server.log == [] and sources.verify_psy_insight(data, site.pm)["ok"]
    assert data.is_relative_to(tmp_path / "runtime")          # read from the local disk after


def test_a_bad_copy_in_a_read_only_cache_is_downloaded_into_the_local_folder(site, tmp_path, monkeypatch,
                                                                            read_only):
    drive = tmp_path / "drive"
    drive.mkdir()
    good = (site.server.folder / TR_ARCHIVE.lstrip("/")).read_bytes()
    (drive / f"MultilingualKokoroChat-{TR}.zip").write_bytes(good[:len(good) // 2])
    read_only(drive)
    before = _snapshot(drive)
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    with pytest.warns(UserWarning, match=r"MultilingualKokoroChat-.*\.zip cannot be used \(.*\) nor "
                      r"removed \(.*\): downloading it into the local cache"):
        root = sources.fetch_translation(None, tmp_path / "runtime", progress=False)
    assert site.server.paths() == [TR_ARCHIVE]
    assert _names(root) == sorted(site.tm) and _snapshot(drive) == before


def test_a_cache_folder_that_cannot_be_made_warns_and_downloads_locally(site, tmp_path, monkeypatch):
    """A file where the folder would go: no one, root included, can make the folder."""
    (tmp_path / "drive").write_text("not a folder")
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(tmp_path / "drive" / "downloads"))
    with pytest.warns(UserWarning) as record:
        top = sources.fetch_kokorochat(tmp_path / "runtime", progress=False)
    assert _cache_warnings(record) == [(f"{config.ARCHIVE_CACHE_ENV}={tmp_path}/drive/downloads cannot "
                                        "be written (Not a directory): downloads are kept in the local "
                                        "cache instead")]
    assert site.server.paths() == [KC_ARCHIVE] and (tmp_path / "runtime" / f"KokoroChat-{KC}.zip").is_file()
    assert top.name == f"KokoroChat-{KC}"


def test_a_file_that_differs_from_the_manifest_is_named(site, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "TRANSFER_RETRIES", 0)
    bad = dict(site.tm, **{"English/en2.json": "0" * 64})
    with pytest.raises(DataError, match=r"en2\.json.*1 differ, 0 missing"):
        sources.fetch_translation(None, tmp_path / "archive", manifest=bad, progress=False)
    with pytest.raises(DataError, match=r"^English/en2\.json: .*SHA-256"):
        sources.fetch_translation(["2"], tmp_path / "file", manifest=bad, progress=False)


def test_kokorochat_is_one_verified_archive_request(site, tmp_path):
    top = sources.fetch_kokorochat(tmp_path / "dl", progress=False)
    assert site.server.paths() == [KC_ARCHIVE]
    assert top.name == f"KokoroChat-{KC}"
    assert sources.fetch_kokorochat(tmp_path / "dl", progress=False) == top
    assert site.server.paths() == [KC_ARCHIVE]


# --------------------------------------------------------------------------- Psy-Insight

def test_psy_insight_is_its_two_data_files_each_verified(site, tmp_path):
    """Two raw-file requests, not the repository archive (the authors' notebooks and figures)."""
    site.server.fail[PSY_RAW[0]] = 1
    data = sources.fetch_psy_insight(tmp_path / "dl", progress=False)
    assert site.server.paths() == [PSY_RAW[0], *PSY_RAW]          # a 503 retried, then each file once
    assert data == tmp_path / "dl" / f"psy-insight-{PSY[:7]}" / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(sources.PSY_INSIGHT_FILES.values())
    assert sources.verify_psy_insight(data.parent, site.pm)["ok"]
    assert sources.fetch_psy_insight(tmp_path / "dl", progress=False) == data
    assert len(site.server.log) == 3                                # checked again, not downloaded
    assert len(kokoro_nb.load_psy_insight(data)) == len(kokoro_nb.load_psy_insight(site.psy))


def test_load_psy_insight_without_a_path_downloads_and_a_path_or_the_variable_wins(site, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.delenv(config.PSY_INSIGHT_ENV, raising=False)
    n = len(kokoro_nb.load_psy_insight(site.psy))                    # the repository
    assert len(kokoro_nb.load_psy_insight(site.psy / "data")) == n   # or its data/ folder
    monkeypatch.setenv(config.PSY_INSIGHT_ENV, str(site.psy))
    assert len(kokoro_nb.load_psy_insight()) == n
    assert site.server.log == []
    monkeypatch.delenv(config.PSY_INSIGHT_ENV)
    with pytest.raises(DataNotFoundError, match=r"--psy-insight PATH or \$PSY_INSIGHT_DIR"):
        kokoro_nb.load_psy_insight(download=False)
    assert site.server.log == []
    assert len(kokoro_nb.load_psy_insight()) == n
    assert site.server.paths() == PSY_RAW
    assert sources.resolve_psy_insight().is_relative_to(site.base / "cache")    # the user cache folder


def test_a_psy_insight_file_that_differs_is_named_and_the_cli_exits_2(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources, "TRANSFER_RETRIES", 0)
    served = site.server.folder / PSY_RAW[0].lstrip("/")
    served.write_bytes(served.read_bytes().replace(b"}", b"} ", 1))  # one byte more upstream
    with pytest.raises(DataError, match=r"^data/cn_data_version7\.json: download from .* SHA-256"):
        sources.fetch_psy_insight(tmp_path / "dl", progress=False)
    assert not (tmp_path / "dl" / f"psy-insight-{PSY[:7]}" / "data" / "cn_data_version7.json").exists()
    capsys.readouterr()
    assert cli(["data", "fetch", "--psy-insight", "--dest", str(tmp_path / "cli")]) == 2
    out, err = capsys.readouterr()
    said = [line for line in err.replace("\r", "\n").splitlines()
            if line.strip() and not line.startswith("Psy-Insight files:")]      # besides the bar
    assert out == "" and len(said) == 1
    assert "data/cn_data_version7.json" in said[0] and "SHA-256" in said[0] and "Traceback" not in err


def test_cli_fetch_psy_insight_prints_the_data_folder(site, tmp_path, capsys):
    assert cli(["-q", "data", "fetch", "--psy-insight", "--dest", str(tmp_path / "dl")]) == 0
    data = Path(capsys.readouterr().out.strip())
    assert data == tmp_path / "dl" / f"psy-insight-{PSY[:7]}" / "data"
    assert sources.verify_psy_insight(data, site.pm)["ok"] and site.server.paths() == PSY_RAW


def test_without_network_psy_insight_is_not_found_with_the_hint(site, tmp_path, monkeypatch):
    monkeypatch.setenv(config.MIRROR_ENV, "http://127.0.0.1:9")         # nothing listens there
    monkeypatch.delenv(config.PSY_INSIGHT_ENV, raising=False)
    with pytest.raises(DataNotFoundError, match=r"could not download .*Without network, point at a "
                       r"local copy with --psy-insight PATH or \$PSY_INSIGHT_DIR\."):
        kokoro_nb.load_psy_insight()


def test_psy_insight_files_kept_in_the_archive_cache_serve_a_new_runtime(site, tmp_path, monkeypatch):
    drive = tmp_path / "drive"
    monkeypatch.setenv(config.ARCHIVE_CACHE_ENV, str(drive))
    first = sources.fetch_psy_insight(tmp_path / "runtime1", progress=False)
    kept = drive / f"Psy-Insight-{PSY}"
    assert _names(kept) == sorted(site.pm) and site.server.paths() == PSY_RAW
    # a new runtime: an empty local folder, the same Drive
    second = sources.fetch_psy_insight(tmp_path / "runtime2", progress=False)
    assert site.server.paths() == PSY_RAW
    assert all((second / n).read_bytes() == (first / n).read_bytes() for n in sources.PSY_INSIGHT_FILES.values())
    # a copy on Drive cut off midway is downloaded again, the other one is not
    cut = kept / "data" / "en_data_version7.json"
    cut.write_bytes(cut.read_bytes()[:100])
    sources.fetch_psy_insight(tmp_path / "runtime3", progress=False)
    assert site.server.paths() == PSY_RAW + [PSY_RAW[1]]
    assert sources.verify_psy_insight(kept, site.pm)["ok"]


@pytest.mark.parametrize("kind", ["folder", "English", "zip", "tar.gz"])
def test_the_translation_is_read_from_a_folder_or_an_archive(site, tmp_path, monkeypatch, kind):
    """What a Drive copy may be: the repository, its English/ folder, or an archive of it."""
    if kind == "folder":
        path = site.en
    elif kind == "English":
        path = site.en / "English"
    elif kind == "zip":
        path = site.server.folder / TR_ARCHIVE.lstrip("/")
    else:
        path = tmp_path / "en.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            tf.add(site.en / "English", arcname="MultilingualKokoroChat/English")
    monkeypatch.setenv(config.TRANSLATION_ENV, str(path))
    corpus = kokoro_nb.load_kokorochat(site.ja, cache=False, progress=False).with_english()
    assert (corpus.translation.dialogues, corpus.translation.translated) == (60, 59)
    assert corpus.translation.missing == ["3"]
    assert site.server.log == []
    if kind in ("zip", "tar.gz"):
        assert sources.verify_translation(path)["ok"]


# --------------------------------------------------------------------------- make book, fresh clone

ENVS = (config.KOKOROCHAT_ENV, config.PSY_INSIGHT_ENV, config.TRANSLATION_ENV)


def _make_book(tmp_path: Path, shared: dict[str, Path]) -> dict:
    """Run `make book` in a clone-like folder whose ../shared/data holds *shared*; return the
    kokoro-nb command line and data variables it got (a stand-in records them)."""
    clone = tmp_path / "work" / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", clone / "Makefile")
    # the install rule's prerequisites, as the Makefile names them, older than its stamp
    rule = re.search(r"^\$\(VENV\)/\.installed:(.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    for name in rule.group(1).split():
        (clone / name).write_text("", encoding="utf-8")
    later = time.time() + 60
    (clone / ".venv" / ".installed").touch()
    os.utime(clone / ".venv" / ".installed", (later, later))      # `install` is up to date
    record = tmp_path / "call.json"
    stand_in = clone / ".venv" / "bin" / "kokoro-nb"
    stand_in.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                        f"json.dump({{'argv': sys.argv[1:], 'env': {{k: os.environ.get(k) for k in {ENVS!r}}}}}, "
                        f"open({str(record)!r}, 'w'))\n", encoding="utf-8")
    stand_in.chmod(0o755)
    for name, src in shared.items():
        shutil.copytree(src, tmp_path / "work" / "shared" / "data" / name)
    env = {k: v for k, v in os.environ.items()
           if k not in ENVS + ("SHARED_DATA", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    run = subprocess.run(["make", "-s", "book"], cwd=clone, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(record.read_text(encoding="utf-8"))


def _build(call: dict, root: Path, monkeypatch) -> dict:
    """Replay the recorded `kokoro-nb book build` in process up to the chapters; return the data
    locations the chapters would get."""
    assert call["argv"][:2] == ["book", "build"]
    parser = argparse.ArgumentParser()
    add_build_args(parser)
    args = parser.parse_args(call["argv"][2:])
    for k, v in call["env"].items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    got = {}
    monkeypatch.setattr(book, "plan", lambda *a, **kw: got.update(kw) or [])
    book.build(root, data_dir=args.data, psy_insight_dir=args.psy_insight,
               translation_dir=args.translation, html=False, colab=False, progress=False)
    return got


@pytest.fixture
def project(tmp_path):
    """A project with one chapter that reads the translation (the real quickstart)."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "00_quickstart.md", root / "notebooks")
    (root / "_toc.yml").write_text("format: jb-book\nroot: notebooks/00_quickstart\n", encoding="utf-8")
    return root


def test_make_book_with_kokorochat_but_no_translation_folder_downloads_it(site, tmp_path, project,
                                                                         monkeypatch):
    call = _make_book(tmp_path, {"kokorochat": site.ja})
    got = _build(call, project, monkeypatch)     # once: "translation_dir: …: no such folder"
    assert "--translation" not in call["argv"] and not call["env"][config.TRANSLATION_ENV]
    assert site.server.paths() == [TR_ARCHIVE]                   # once for the whole book
    assert Path(got["data_dir"]) == tmp_path / "work" / "shared" / "data" / "kokorochat"
    assert _names(Path(got["translation_dir"]).parent) == sorted(site.tm)


def test_make_book_with_no_shared_data_downloads_everything_verified(site, tmp_path, project,
                                                                    monkeypatch):
    call = _make_book(tmp_path, {})
    assert call["argv"] == ["book", "build"]
    assert not any(call["env"].values())
    got = _build(call, project, monkeypatch)
    assert sorted(site.server.paths()) == sorted([KC_ARCHIVE, TR_ARCHIVE])
    assert sources.verify_kokorochat(Path(got["data_dir"]), site.km)["ok"]
    assert got["psy_insight_dir"] is None


def test_make_book_passes_the_folders_that_exist(site, tmp_path, project, monkeypatch):
    call = _make_book(tmp_path, {"kokorochat": site.ja, "multilingual-kokorochat": site.en})
    data = tmp_path / "work" / "shared" / "data"
    assert call["argv"] == ["book", "build", "--data", str(data / "kokorochat"),
                            "--translation", str(data / "multilingual-kokorochat")]
    got = _build(call, project, monkeypatch)
    assert site.server.log == []
    assert Path(got["translation_dir"]) == data / "multilingual-kokorochat"


@pytest.fixture
def psy_project(project):
    """The same project, its chapter also declaring psy_insight_dir (as chapters 05 and 06 do)."""
    src = project / "notebooks" / "00_quickstart.md"
    src.write_text(src.read_text(encoding="utf-8").replace(
        'output_dir = "outputs"', 'output_dir = "outputs"\npsy_insight_dir = None', 1), encoding="utf-8")
    return project


def test_make_book_without_psy_insight_downloads_it_once_verified(site, tmp_path, psy_project, monkeypatch):
    call = _make_book(tmp_path, {"kokorochat": site.ja, "multilingual-kokorochat": site.en})
    assert "--psy-insight" not in call["argv"] and not call["env"][config.PSY_INSIGHT_ENV]
    got = _build(call, psy_project, monkeypatch)
    assert site.server.paths() == PSY_RAW                          # once for the whole book
    assert sources.verify_psy_insight(Path(got["psy_insight_dir"]), site.pm)["ok"]


def test_make_book_offline_leaves_psy_insight_out_in_one_line(site, tmp_path, psy_project, monkeypatch, capsys):
    call = _make_book(tmp_path, {"kokorochat": site.ja, "multilingual-kokorochat": site.en})
    monkeypatch.setenv(config.MIRROR_ENV, "http://127.0.0.1:9")          # nothing listens there
    got = _build(call, psy_project, monkeypatch)
    assert got["psy_insight_dir"] is None                  # the chapters that read it say so
    said = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
            if "Psy-Insight" in line and not line.startswith("Psy-Insight files:")]   # besides the bar
    assert len(said) == 1 and said[0].startswith("kokoro-nb: Psy-Insight left out: could not download")
    assert said[0].endswith("--psy-insight PATH or $PSY_INSIGHT_DIR.")


def test_make_book_stops_on_a_psy_insight_file_that_differs(site, tmp_path, psy_project, monkeypatch):
    monkeypatch.setattr(sources, "TRANSFER_RETRIES", 0)
    served = site.server.folder / PSY_RAW[1].lstrip("/")
    served.write_bytes(served.read_bytes() + b" ")
    call = _make_book(tmp_path, {"kokorochat": site.ja, "multilingual-kokorochat": site.en})
    with pytest.raises(DataError, match=r"^data/en_data_version7\.json: .*SHA-256"):
        _build(call, psy_project, monkeypatch)
