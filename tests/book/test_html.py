"""The rendered pages, read as a reader would: no plumbing, no raw numbers, alt text, English.

Unit tests feed small hand-written pages to the checks (each check must catch its defect); the
real-data tests run the same checks on every page of the full book built on the released data
(the session fixture ``real_book`` in conftest.py, shared with tests/book/test_book.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kokoro_book import sources

ROOT = Path(__file__).resolve().parents[2]

# Japanese script: hiragana, katakana, CJK ideographs. A "Japanese text" is a run of >= 8 of them;
# shorter ones are labels (役割, 対話数), not quoted speech.
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_ENGLISH_WORDS = re.compile(r"[A-Za-z]{2,}(?:['’][a-z]+)?")
_RAW_FLOAT = re.compile(r"^-?\d[\d,]*\.\d{5,}$")            # 39.245763: describe() unrounded
_NO_THOUSANDS = re.compile(r"^-?\d{5,}(\.\d+)?$")            # 328309161: no separators
_MISSING = {"nan", "NaN", "<NA>", "NaT", "None", "none", "null"}
_HIDDEN = {"tag_hide-input", "tag_hide-cell"}               # folded behind "Show code"
# TeX between dollars, as pandoc reads inline math: "$" then a non-space, a TeX character
# (\ _ ^ { }), a non-space then "$" not followed by a digit; "costs $5 and $6" is no math.
_RAW_TEX = re.compile(r"\$(?=\S)[^$\n]*[\\_^{}][^$\n]*(?<=\S)\$(?!\d)")


def soup_of(html: str):
    from bs4 import BeautifulSoup
    return BeautifulSoup(html, "lxml")


def japanese_chars(text: str) -> int:
    """Return how many Japanese-script characters *text* holds."""
    return len(_JAPANESE.findall(text))


def missing_value_cells(soup) -> list[str]:
    """Return the text of table cells that show a missing value as nan/<NA>/None."""
    return [td.get_text(strip=True) for td in soup.select("article table td")
            if td.get_text(strip=True) in _MISSING]


def raw_float_cells(soup) -> list[str]:
    """Return table cells holding a float with five or more decimals."""
    return [td.get_text(strip=True) for td in soup.select("article table td")
            if _RAW_FLOAT.match(td.get_text(strip=True))]


def unseparated_numbers(soup) -> list[str]:
    """Return table cells holding a number of five or more digits without thousands separators."""
    return [td.get_text(strip=True) for td in soup.select("article table td")
            if _NO_THOUSANDS.match(td.get_text(strip=True))]


def visible_glue_code(soup) -> list[str]:
    """Return the first line of every shown code cell that calls glue(...)."""
    out = []
    for cell in soup.select("div.cell"):
        if _HIDDEN & set(cell.get("class", [])):
            continue
        code = cell.select_one("div.cell_input")
        if code is not None and re.search(r"\bglue\(", code.get_text()):
            out.append(code.get_text().strip().splitlines()[0])
    return out


def images_without_alt(soup) -> list[str]:
    """Return the src of every image in the page's article that has no (or an empty) alt text."""
    return [img.get("src", "?") for img in soup.select("article img") if not (img.get("alt") or "").strip()]


def japanese_rows_without_english(soup) -> list[str]:
    """Return table rows that quote Japanese text (>= 8 Japanese characters in a cell) with no
    English text (>= 2 English words in one other cell of the row)."""
    bad = []
    for row in soup.select("article table tr"):
        cells = [c.get_text(" ", strip=True) for c in row.find_all(["td", "th"])]
        quoted = [c for c in cells if japanese_chars(c) >= 8]
        english = [c for c in cells if len(_ENGLISH_WORDS.findall(c)) >= 2 and japanese_chars(c) == 0]
        if quoted and not english:
            bad.append(" | ".join(cells)[:120])
    return bad


def raw_tex(soup) -> list[str]:
    """Return TeX shown as text in the article's prose and tables (the book has no math
    extension, so $x_i$ is printed with its dollars); code and code output may hold dollars."""
    article = soup.select_one("article") or soup
    prose = soup_of(str(article))
    for el in prose.select("pre, code, script, style"):
        el.decompose()
    return _RAW_TEX.findall(prose.get_text())


CHECKS = {"a missing value shown as nan": missing_value_cells,
          "an unrounded float": raw_float_cells,
          "a large number without thousands separators": unseparated_numbers,
          "glue(...) plumbing shown": visible_glue_code,
          "a figure without alt text": images_without_alt,
          "Japanese without English beside it": japanese_rows_without_english,
          "TeX shown raw": raw_tex}


def problems(html: str) -> dict[str, list[str]]:
    """Return {check: offending items} for one page (only the checks that found something)."""
    soup = soup_of(html)
    found = {name: check(soup) for name, check in CHECKS.items()}
    return {k: v for k, v in found.items() if v}


# --------------------------------------------------------------------------- the checks catch

def _page(body: str) -> str:
    return f"<html><body><article>{body}</article></body></html>"


@pytest.mark.parametrize("body, check", [
    ("<table><tr><td>nan</td></tr></table>", "a missing value shown as nan"),
    ("<table><tr><td>&lt;NA&gt;</td></tr></table>", "a missing value shown as nan"),
    ("<table><tr><td>39.245763</td></tr></table>", "an unrounded float"),
    ("<table><tr><td>600939</td></tr></table>", "a large number without thousands separators"),
    ('<div class="cell docutils container"><div class="cell_input docutils container">'
     '<pre>x = 1\nglue("x", x, display=False)</pre></div></div>', "glue(...) plumbing shown"),
    ('<img src="fig.png">', "a figure without alt text"),
    ('<img src="fig.png" alt=" ">', "a figure without alt text"),
    ("<table><tr><td>client</td><td>仕事で悩んでいて、相談させてください</td></tr></table>",
     "Japanese without English beside it"),
    ("<p>with gold rating $x_i$ and prediction</p>", "TeX shown raw"),
    (r"<li>share with $|p_{id} - g_{id}| \le 1$, ×100;</li>", "TeX shown raw"),
    ("<td>$\\max(g, 5 - g)$</td>", "TeX shown raw"),
])
def test_each_check_catches_its_defect(body, check):
    assert check in problems(_page(body))


@pytest.mark.parametrize("body", [
    "<table><tr><td>—</td><td>39.25</td><td>1,234</td><td>0.0001</td></tr></table>",
    '<div class="cell tag_hide-input docutils container"><div class="cell_input">'
    '<pre>glue("x", x)</pre></div></div>',
    '<img src="fig.png" alt="Histogram of the score">',
    "<table><tr><td>client</td><td>I'm having some trouble with work.</td>"
    "<td>仕事で悩んでいて、相談させてください</td></tr></table>",
    "<table><tr><td>家庭内問題（夫婦以外）</td><td>Family Issues (Non-Spousal)</td></tr></table>",
    "<table><tr><td>対話数</td><td>6,589</td></tr></table>",     # a short label, not a quotation
    "<p>An A100 costs $5 and an H100 $6 an hour (x_i, ^, {} without dollars).</p>",
    "<p>Set $KOKOROCHAT_DIR or $PSY_INSIGHT_DIR first.</p>",    # shell variables, no closing TeX
    "<p>the gold rating <code>$g_{id}$</code></p><pre>plt.title(r\"$\\rho$\")</pre>",  # TeX in code
    "<p>with gold rating <code>g_id</code> and prediction <code>p_id</code></p>",
])
def test_clean_pages_pass(body):
    assert problems(_page(body)) == {}


# --------------------------------------------------------------------------- the real book

# Pages with a known defect, each with what fixes it. strict: the test fails once it is fixed,
# so the entry cannot outlive the defect.
KNOWN: dict[str, str] = {}


def _pages() -> list:
    names = [f"notebooks/{n}.html" for n in sources.chapters(ROOT)]
    pages = names + [f"{e}.html" for e in sources.toc_files(ROOT) if e.startswith("book/")]
    return [pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN[p], strict=True)) if p in KNOWN else p
            for p in pages]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("page", _pages())
def test_built_page_is_clean(real_book, page):
    path = real_book / "html" / page
    assert path.is_file(), f"{page} was not built"
    html = path.read_text(encoding="utf-8")
    assert "_static/kokoro.css" in html, f"{page}: the book's CSS (code wrapping) is not linked"
    cdn = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+\.(?:js|css))"', html)
    assert not cdn, f"{page}: needs the network (MathJax or another CDN): {cdn}"
    found = problems(html)
    assert not found, f"{page}: " + "; ".join(f"{k}: {v[:3]}" for k, v in found.items())
    local = sorted({str(p) for p in (real_book.resolve(), ROOT.resolve()) if str(p) in html})
    assert not local, f"{page}: shows paths of the machine that built it: {local}"


@pytest.mark.realdata
@pytest.mark.slow
def test_every_excerpt_is_bilingual(real_book):
    """The chapters that quote dialogues show them in both languages (the excerpt tables exist)."""
    for page in ("notebooks/01_corpus_overview.html", "notebooks/07_translation.html"):
        soup = soup_of((real_book / "html" / page).read_text(encoding="utf-8"))
        rows = [r for r in soup.select("article table tr") if japanese_chars(r.get_text()) >= 8]
        assert rows, f"{page}: no excerpt found"
        headers = " ".join(th.get_text() for th in soup.select("article table th"))
        assert "English" in headers and "Japanese" in headers, page
