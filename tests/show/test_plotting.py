"""Figure defaults: Japanese text renders with real glyphs, labels follow the lang parameter."""
from __future__ import annotations

import logging
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from kokoro_nb import plotting  # noqa: E402

JAPANESE = "家族・友人関係の悩み　スコア −5"


def missing_glyphs(caplog) -> list[str]:
    """Draw a figure with Japanese text; return matplotlib's missing-glyph/font complaints."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "matplotlib"):
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title(JAPANESE)
        ax.set_xlabel("対話数")
        ax.plot([-2, 3])
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "Glyph" in str(w.message)] + \
        [r.getMessage() for r in caplog.records if "findfont" in r.getMessage()]


@pytest.fixture
def restore_rc():
    with matplotlib.rc_context():
        yield


def test_default_font_shows_tofu_so_the_check_can_fail(restore_rc, caplog):
    matplotlib.rcParams.update({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]})
    assert any("missing" in m for m in missing_glyphs(caplog))


def test_setup_renders_japanese_without_missing_glyphs(restore_rc, caplog):
    plotting.setup()
    assert missing_glyphs(caplog) == []
    assert matplotlib.rcParams["font.sans-serif"][0] == plotting.JAPANESE_FONT
    assert matplotlib.rcParams["axes.unicode_minus"] is False


def test_glue_figure_closes_the_figure(restore_rc):
    plotting.setup()
    fig, ax = plt.subplots()
    plotting.glue_figure("fig-test", ax)       # an Axes is accepted, its figure is glued
    assert fig.number not in plt.get_fignums()


@pytest.mark.parametrize("lang, expected", [("en", "Score"), ("ja", "スコア")])
def test_label(lang, expected):
    assert plotting.label(lang, en="Score", ja="スコア") == expected


def test_label_rejects_unknown_language():
    with pytest.raises(ValueError, match="lang='fr'"):
        plotting.label("fr", en="Score", ja="スコア")


def test_styled_tables_have_a_formatted_text_form():
    import pandas as pd

    from kokoro_nb.show.plotting import set_table_defaults, styler_text
    set_table_defaults()
    df = pd.DataFrame({"n": [1234.5, None], "who": ["counselor", "client"]})
    text = styler_text(df.style.format({"n": "{:,.1f}"}, na_rep="—").hide(axis="index"))
    assert text.splitlines()[1].split() == ["1,234.5", "counselor"]
    assert text.splitlines()[2].split() == ["—", "client"]
    plain = styler_text(df.assign(x=[39.245763, 1.0]).style.hide(axis="index"))
    assert plain.splitlines()[2].split() == ["—", "client", "1.000"]   # defaults: em dash, 3 places
    assert "39.246" in plain


def test_glue_all_glues_each_fact_outside_a_book_build(capsys, monkeypatch):
    from kokoro_nb.show.glue import BOOK_BUILD_ENV, glue_all
    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    glue_all({"a": 1, "b": "two"})
    assert capsys.readouterr().out.splitlines() == ["a = 1", "b = two"]
