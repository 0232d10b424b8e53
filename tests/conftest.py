"""Shared fixtures: synthetic corpora for unit tests, the real data for integration tests.

Real-data tests skip with a visible reason when the data is absent, and fail instead of
skipping when KOKORO_REQUIRE_DATA=1 (CI sets it).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kokoro_nb import config
from kokoro_nb.testing.synthetic import write_kokorochat, write_psy_insight


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's parsed-table cache out of the user's real cache folder."""
    if not os.environ.get("KOKORO_TEST_SHARED_CACHE"):
        monkeypatch.setenv(config.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))
    # downloads in tests go where the test says, never to a developer's Drive or mirror
    monkeypatch.delenv(config.ARCHIVE_CACHE_ENV, raising=False)
    monkeypatch.delenv(config.MIRROR_ENV, raising=False)


def _real(env: str, marker_file: str) -> Path:
    path = os.environ.get(env)
    if path and (Path(path) / marker_file).exists():
        return Path(path)
    reason = f"real data not available: set {env} to the released data set"
    if config.data_required():
        pytest.fail(f"{reason} (KOKORO_REQUIRE_DATA=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kokorochat_dir() -> Path:
    """Return the real KokoroChat folder, or skip (fail under KOKORO_REQUIRE_DATA=1)."""
    return _real(config.KOKOROCHAT_ENV, "kokorochat_dialogues")


@pytest.fixture(scope="session")
def psy_insight_dir() -> Path:
    """Return the real Psy-Insight folder, or skip (fail under KOKORO_REQUIRE_DATA=1)."""
    return _real(config.PSY_INSIGHT_ENV, "data")


@pytest.fixture(scope="session")
def kokorochat_en_dir() -> Path:
    """Return the real Multilingual KokoroChat folder, or skip (fail under KOKORO_REQUIRE_DATA=1)."""
    return _real(config.TRANSLATION_ENV, "English")


@pytest.fixture(scope="session")
def real_book(kokorochat_dir, psy_insight_dir, kokorochat_en_dir, tmp_path_factory):
    """Build the whole book once per session on the real data; return its build folder.

    The HTML, browser and PDF tests all read this one build. ``KOKORO_TEST_BUILD_DIR`` points it
    at a persistent folder (e.g. ``_build``), so stamps skip the unchanged chapters.
    """
    from kokoro_book import build as book
    root = Path(__file__).resolve().parents[1]
    out = Path(os.environ.get("KOKORO_TEST_BUILD_DIR") or tmp_path_factory.mktemp("book") / "build")
    report = book.build(root, data_dir=kokorochat_dir, psy_insight_dir=psy_insight_dir,
                        translation_dir=kokorochat_en_dir, build_dir=out, n_jobs=2, progress=False,
                        colab=False)
    failed = [r.error for r in report.results if r.status == "failed"]
    assert not failed, failed
    assert report.ok, report.warnings                   # Sphinx warnings are errors
    return out


@pytest.fixture(scope="session")
def real_corpus(kokorochat_dir, tmp_path_factory):
    """The real KokoroChat corpus, loaded once per test session."""
    import kokoro_nb
    os.environ.setdefault(config.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))
    return kokoro_nb.load_kokorochat(kokorochat_dir, progress=False)


@pytest.fixture
def synthetic_kokorochat_dir(tmp_path) -> Path:
    """A fresh synthetic KokoroChat folder (20 dialogues, upstream layout)."""
    return write_kokorochat(tmp_path / "kokorochat", n_dialogues=20)


@pytest.fixture
def synthetic_psy_insight_dir(tmp_path) -> Path:
    """A fresh synthetic Psy-Insight folder (data/en_… and data/cn_…)."""
    return write_psy_insight(tmp_path / "psy-insight")


@pytest.fixture
def read_only():
    """Make folders read-only for the test, for real: ``read_only(folder)``, undone afterwards.

    Not by permission bits alone, which root ignores: as root, a read-only bind mount of the
    folder onto itself (writes fail with EROFS, "Read-only file system", as on a read-only
    mount); otherwise chmod a-w on it and every folder under it (EACCES). Skips when neither
    can be done (root without the right to mount).
    """
    undo = []

    def make(folder: Path) -> None:
        folder = Path(folder)
        if os.geteuid() != 0:
            dirs = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
            for d in dirs:
                d.chmod(0o555)
            undo.append(lambda: [d.chmod(0o755) for d in dirs])
            return
        bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True,
                              check=False)
        if bind.returncode:
            pytest.skip(f"cannot make a folder read-only as root here: {bind.stderr.strip()}")
        undo.append(lambda: subprocess.run(["umount", str(folder)], check=True))
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True,
                            check=False)
        if ro.returncode:
            pytest.skip(f"cannot make a folder read-only as root here: {ro.stderr.strip()}")

    yield make
    for step in reversed(undo):
        step()
