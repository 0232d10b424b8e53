"""show.translation: chapter 07's verdict on both sides of its threshold, figure, tables and facts."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from IPython.display import Markdown
from matplotlib.figure import Figure

import kokoro_nb
from kokoro_nb.show import plotting
from kokoro_nb.data import translation
from kokoro_nb.show import translation as tr
from kokoro_nb.testing.synthetic import write_kokorochat, write_translation


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    plotting.setup()
    base = tmp_path_factory.mktemp("tr")
    ja = write_kokorochat(base / "ja", n_dialogues=12)
    en = write_translation(base / "en", ja, missing=("3",), empty=(("1", 2), ("5", 0)))
    return kokoro_nb.load_kokorochat(ja, cache=False, progress=False).with_english(en)


def corr_rows(diff_client, diff_counselor, client_ci=(-0.01, 0.02), counselor_ci=(-0.01, 0.02)):
    return pd.DataFrame({"difference": [diff_client, diff_counselor],
                         "diff_ci_low": [client_ci[0], counselor_ci[0]],
                         "diff_ci_high": [client_ci[1], counselor_ci[1]]}, index=["client", "counselor"])


def test_verdict_on_both_sides_of_the_threshold():
    same = tr.verdict(corr_rows(0.004, -(tr.SAME_THRESHOLD - 0.001)))
    assert same == ("For client and counselor, the 95 % interval of the difference contains zero, and the largest "
                    "difference is 0.019: counting in English words leaves the correlations of Figure 4 as they are.")
    moved = tr.verdict(corr_rows(0.004, tr.SAME_THRESHOLD + 0.001, counselor_ci=(0.01, 0.03)))
    assert moved == ("For client, the 95 % interval of the difference contains zero; for counselor it does not, and "
                     "the largest difference is 0.021: the unit of length moves the correlation noticeably.")
    assert tr.verdict(corr_rows(0.1, 0.1, (0.05, 0.2), (0.05, 0.2))).startswith("For neither role")


def test_by_length_facts_average_the_roles_of_the_end_bins():
    by_len = pd.DataFrame({"ja_len": ["1–5", "1–5", "6–10", "81+"], "role": ["client", "counselor"] * 2,
                           "ratio": [1.0, 0.5, 0.9, 0.3]})
    assert tr.by_length_facts(by_len) == {"tr_short_ratio": 0.75, "tr_long_ratio": 0.3}


def test_figure_ratio_draws_one_bar_per_bin_and_role(corpus):
    by_len = translation.words_per_char_by_length(corpus)
    fig = tr.figure_ratio(by_len, lang="en")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "length of the Japanese message (characters)"
    assert ax.get_ylabel() == "English words per Japanese character"
    assert ax.get_legend().get_title().get_text() == "role"
    assert len([p for p in ax.patches if p.get_height() > 0]) == len(by_len)
    assert tr.figure_ratio(by_len, lang="ja").axes[0].get_legend().get_title().get_text() == "話者"
    plt.close("all")


def test_coverage_and_empty_facts_follow_the_report(corpus):
    cov = translation.coverage(corpus)
    facts = tr.coverage_facts(corpus, cov)
    assert (facts["tr_dialogues"], facts["tr_translated"], facts["tr_missing"], facts["tr_empty"]) == (12, 11, 1, 2)
    assert facts["tr_share_en"] == pytest.approx(100 * facts["tr_messages_en"] / len(corpus.utterances))
    empty = translation.empty_translations(corpus)
    assert tr.empty_facts(empty)["tr_empty_client"] == (empty["role"].astype(str) == "client").sum()
    assert tr.empty_facts(empty.head(0)) == {"tr_empty_median_chars": 0.0, "tr_empty_client": 0}
    shown = tr.empty_table(empty).data
    assert list(shown.columns) == ["dialogue_id", "position", "role", "Japanese (original)", "English"]
    assert (shown["English"] == tr.EXCERPT_PLACEHOLDER).all()
    assert list(tr.missing_table(corpus).data["dialogue_id"]) == ["3"]


def test_facts_cover_every_key_the_prose_uses(corpus, prose_keys):
    ratios = translation.length_ratios(corpus)
    corr = translation.length_score_correlations(translation.length_features(corpus), n_resamples=20, seed=1)
    facts = (tr.coverage_facts(corpus, translation.coverage(corpus))
             | tr.empty_facts(translation.empty_translations(corpus)) | tr.ratio_facts(ratios)
             | tr.by_length_facts(translation.words_per_char_by_length(corpus)) | tr.corr_facts(corr))
    refs = prose_keys("07_translation") - {"tr_excerpt_id"}         # glued beside the excerpt it names
    assert refs <= set(facts)
    assert all(re.match(r"tr_(counselor|client)_", k) for k in set(facts) - refs)
    assert isinstance(facts["tr_verdict"], Markdown) and facts["tr_verdict"].data == tr.verdict(corr)
    assert "ρ, EN words" in tr.corr_table(corr).data.columns
    assert "EN words per JA character" in tr.ratios_table(ratios).data.columns
