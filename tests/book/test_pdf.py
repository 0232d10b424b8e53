"""The whole book as one PDF (LuaLaTeX, offline): every chapter and every figure is in it.

Needs Debian's TeX (see ``kokoro_book.pdf.TEX_PACKAGES``) and poppler-utils (pdftotext,
pdfimages); without them the test skips and says what to install, unless ``KOKORO_REQUIRE_PDF=1``
(then it fails). The PDF is compiled from the session's real-data book build (``real_book``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kokoro_book import sources
from kokoro_book import pdf as book_pdf
from kokoro_nb import version

ROOT = Path(__file__).resolve().parents[2]


def _need(*exes: str) -> None:
    missing = [e for e in exes if shutil.which(e) is None]
    if not missing:
        return
    reason = (f"the PDF test needs {', '.join(missing)}: apt-get install -y poppler-utils "
              + " ".join(book_pdf.TEX_PACKAGES))
    if os.environ.get("KOKORO_REQUIRE_PDF", "") not in ("", "0"):
        pytest.fail(reason + " (KOKORO_REQUIRE_PDF=1 forbids skipping)")
    pytest.skip(reason)


def page_titles() -> dict[str, str]:
    """Return {page: its first-level heading} for every page of the table of contents."""
    out = {}
    for entry in sources.toc_files(ROOT):
        path = ROOT / (entry if entry.endswith(".md") else entry + ".md")
        m = re.search(r"^# (.+)$", path.read_text(encoding="utf-8"), re.M)
        if m:
            out[entry] = m.group(1).strip()
    return out


def html_figures(html_dir: Path) -> int:
    """Return how many figure images the HTML book shows (matplotlib PNGs in _images/)."""
    n = 0
    for page in html_dir.rglob("*.html"):
        n += len(re.findall(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', page.read_text(encoding="utf-8")))
    return n


@pytest.fixture(scope="module")
def real_pdf(real_book):
    _need("lualatex", "latexmk", "pdftotext", "pdfimages")
    rc, log, path = book_pdf.render_pdf(real_book / "stage", real_book)
    assert rc == 0, log
    return path


def test_titles_are_read_from_every_page():
    titles = page_titles()
    assert titles["notebooks/07_translation"] == "The English translation"
    assert len(titles) == len(sources.toc_files(ROOT))


@pytest.mark.realdata
@pytest.mark.slow
def test_pdf_has_every_chapter_and_figure(real_pdf, real_book):
    text = subprocess.run(["pdftotext", "-layout", str(real_pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = re.sub(r"\s+", " ", text)
    # LaTeX typesets ' as ’ and pdftotext may put a space after it: compare without either
    def bare(s: str) -> str:
        return re.sub(r"\s+", "", s.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"'))
    body = bare(text)
    missing = [t for t in page_titles().values() if bare(t) not in body]
    assert not missing, f"chapters missing from the PDF: {missing}"
    assert "原文" in flat or "Japanese (original)" in flat        # the bilingual excerpts, in CJK fonts
    listing = subprocess.run(["pdfimages", "-list", str(real_pdf)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    images = [line for line in listing if line.split()[2] == "image"]
    assert len(images) >= html_figures(real_book / "html"), "figures missing from the PDF"
    assert "Styler object" not in flat                     # tables come out as text, not reprs


@pytest.mark.realdata
@pytest.mark.slow
def test_pdf_title_page_shows_version_and_commit(real_pdf):
    """The same version line as the HTML footer and `kokoro-nb --version` (kokoro_book.release)."""
    from kokoro_book import release
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(real_pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    assert f"Version {version.label(ROOT)}" in re.sub(r"\s+", " ", first)
