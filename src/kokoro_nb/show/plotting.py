"""Figure and table defaults for the book: one seaborn theme, a font that renders Japanese,
rounded numbers in tables.

Every chapter calls :func:`setup` once, right after its imports, so that figure defaults live
in one place (not per figure) and Japanese labels never turn into tofu boxes.

>>> from kokoro_nb.show import plotting
>>> plotting.label("ja", en="Score", ja="スコア")
'スコア'
"""
from __future__ import annotations

from kokoro_nb.show.glue import glue

# IPAexGothic ships with matplotlib-fontja (IPA Font License); it covers kana, kanji and Latin.
# DejaVu Sans is matplotlib's own font and backs up anything IPAexGothic lacks.
JAPANESE_FONT = "IPAexGothic"
FONT_STACK = (JAPANESE_FONT, "DejaVu Sans")
LANGS = ("en", "ja")
DPI = 120


def setup(*, style: str = "whitegrid", context: str = "notebook", dpi: int = DPI) -> None:
    """Set the book's seaborn theme and a Japanese-capable font; call once per notebook."""
    import matplotlib_fontja  # noqa: F401  (importing it registers IPAexGothic with matplotlib)
    import seaborn as sns

    sns.set_theme(style=style, context=context, palette="colorblind", font="sans-serif",
                  rc={"font.sans-serif": list(FONT_STACK),
                      # Japanese fonts lack U+2212, the minus sign matplotlib uses by default
                      "axes.unicode_minus": False,
                      "figure.dpi": dpi, "savefig.dpi": dpi,
                      "figure.figsize": (7.0, 4.2),
                      "savefig.bbox": "tight"})
    _register_inline_png()
    set_table_defaults()


def set_table_defaults() -> None:
    """Round floats in tables to 3 significant places and show a missing value as an em dash."""
    import pandas as pd
    pd.set_option("display.precision", 3)            # DataFrame/Series HTML: no 39.245763
    pd.set_option("styler.format.precision", 3)      # .style tables without an explicit format
    pd.set_option("styler.format.na_rep", "—")       # never "nan" in a styled table
    _register_styler_text()


def styler_text(styler) -> str:
    """Return a styled table as aligned plain text, with its number formats (for the PDF)."""
    import pandas as pd
    lines = [line.split("\t") for line in styler.to_string(delimiter="\t").splitlines()]
    width = max(len(line) for line in lines)
    cells = pd.DataFrame([line + [""] * (width - len(line)) for line in lines])
    return cells.to_string(index=False, header=False)


def _register_styler_text() -> None:
    """Give styled tables a text form: the PDF (LaTeX) cannot use their HTML."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from pandas.io.formats.style import Styler
    shell.display_formatter.formatters["text/plain"].for_type(
        Styler, lambda obj, p, cycle: p.text(styler_text(obj)))


def _register_inline_png() -> None:
    """Make figures display (and glue) as PNG even when MPLBACKEND is a non-inline backend."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to register
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats
    set_matplotlib_formats("png", bbox_inches="tight")


def glue_figure(name: str, fig) -> None:
    """Glue a figure for ``{glue:figure}`` and close it, so it is not shown a second time inline.

    *fig* is a matplotlib Figure, an Axes, or a seaborn grid (anything with ``.figure``).
    """
    import matplotlib.pyplot as plt

    fig = getattr(fig, "figure", fig)
    glue(name, fig, display=False)        # outside a book build this shows the figure
    plt.close(fig)


def label(lang: str, *, en: str, ja: str) -> str:
    """Return the English or Japanese text for a label, by the notebook's ``lang`` parameter."""
    if lang not in LANGS:
        raise ValueError(f"lang={lang!r}: expected one of {', '.join(LANGS)}")
    return ja if lang == "ja" else en
