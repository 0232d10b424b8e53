"""The book as one PDF: Jupyter Book's LaTeX builder, then LuaLaTeX with Japanese fonts, offline.

``kokoro-nb book pdf`` (``make pdf``) renders the staged book that ``kokoro-nb book build``
assembled; Debian's TeX packages (:data:`TEX_PACKAGES`) are all it needs.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from kokoro_book.sources import write_if_changed
from kokoro_book.stage import jupyter_book
from kokoro_nb.errors import KokoroError

# Japanese in the PDF: LuaLaTeX with LuaTeX-ja (texlive-lang-japanese) and Debian's Noto CJK
# fonts (fonts-noto-cjk). XeLaTeX's xeCJK would also need texlive-lang-chinese (ctexhook.sty).
LATEX_PREAMBLE = r"""
\usepackage{luatexja-fontspec}
\setmainjfont{Noto Serif CJK JP}
\setsansjfont{Noto Sans CJK JP}
\setmonojfont{Noto Sans Mono CJK JP}
"""
PDF_NAME = "kokorochat-companion.pdf"
TEX_PACKAGES = ("texlive-luatex", "texlive-lang-japanese", "texlive-latex-recommended",
                "texlive-latex-extra", "texlive-fonts-recommended", "latexmk", "fonts-noto-cjk",
                "fonts-freefont-otf", "tex-gyre")


def pdf_safe_text(tex: str) -> str:
    r"""Replace characters the PDF's fonts do not cover with "?" (e.g. the garbage a tiny random
    model writes: U+FFFD, stray Arabic letters), which otherwise stop LuaLaTeX.

    Control characters other than tab and newline (the tiny model writes those too) stop
    LuaLaTeX with "invalid character" and are replaced as well.

    >>> pdf_safe_text("ok 日本語 ρ — \ufffd\u076d\x0e\x85\n")
    'ok 日本語 ρ — ????\n'
    """
    def covered(ch: str) -> bool:
        o = ord(ch)
        if o < 0x20 or 0x7f <= o < 0xa0:
            return ch in "\t\n\r"
        return (o < 0x400 or 0x2000 <= o < 0x2c00 or 0x3000 <= o < 0xa000 or 0xff00 <= o < 0xfff0)
    return "".join(ch if covered(ch) else "?" for ch in tex)


def render_pdf(stage: Path, build_dir: Path, *, quiet: bool = True) -> tuple[int, str, Path]:
    """Render *stage* to LaTeX with Jupyter Book (LuaLaTeX, Japanese fonts) and compile one PDF.

    Returns (exit code, log tail, PDF path). Needs a TeX installation (:data:`TEX_PACKAGES` on
    Debian); nothing is fetched from the network.
    """
    missing = [exe for exe in ("lualatex", "latexmk") if shutil.which(exe) is None]
    if missing:
        raise KokoroError(f"building the PDF needs {', '.join(missing)}: apt-get install -y "
                          + " ".join(TEX_PACKAGES))
    stage, build_dir = Path(stage).resolve(), Path(build_dir).resolve()
    latex, doctrees = build_dir / "latex", build_dir / ".doctrees-latex"
    staged = yaml.safe_load((stage / "_config.yml").read_text(encoding="utf-8")) or {}
    elements = dict(((staged.get("sphinx") or {}).get("config") or {}).get("latex_elements") or {})
    proc = jupyter_book(stage, latex, doctrees, "latex", overrides={   # keeps the staged version line
        "latex_engine": "lualatex", "latex_elements": {**elements, "preamble": LATEX_PREAMBLE}})
    if proc.returncode:
        return proc.returncode, (proc.stderr or proc.stdout)[-4000:], latex
    texs = sorted(latex.glob("*.tex"))
    if not texs:
        return 1, f"no .tex file in {latex}", latex
    write_if_changed(texs[0], pdf_safe_text(texs[0].read_text(encoding="utf-8")).encode("utf-8"))
    # latexmk reruns LuaLaTeX until cross-references settle; nonstopmode: a log, never a prompt
    make = subprocess.run(["latexmk", "-lualatex", "-interaction=nonstopmode", "-halt-on-error",
                           "-file-line-error", *(["-silent"] if quiet else []), texs[0].name],
                          cwd=latex, capture_output=True, text=True)
    pdf = latex / texs[0].with_suffix(".pdf").name
    if make.returncode or not pdf.is_file():
        return make.returncode or 1, (make.stdout + make.stderr)[-4000:], pdf
    out = Path(build_dir) / PDF_NAME
    shutil.copyfile(pdf, out)
    return 0, "", out
