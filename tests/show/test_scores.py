"""show.scores: chapter 03's tables, figures, facts and each verdict sentence in both directions."""
from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb.describe import stats
from kokoro_nb.schema import FLAG_KEYS, ITEM_CODES
from kokoro_nb.data import splits
from kokoro_nb.describe import ledger
from kokoro_nb.show import scores
from kokoro_nb.testing.synthetic import write_kokorochat


def chapter_facts(corpus) -> dict:
    """Every glue key of chapter 03, composed as the chapter composes them."""
    d = corpus.dialogues
    dist = stats.item_distributions(d)
    return {**scores.shape_facts(d), **scores.flag_facts(stats.screening_flag_counts(d)),
            **scores.rule_facts(stats.score_rule_summary(d), stats.score_rule_check(d)),
            **scores.effect_facts(stats.screening_effect(d)),
            **scores.item_facts(scores.item_table(dist), dist),
            **scores.example_facts(ledger.figure12_feedback(corpus)),
            **scores.split_facts(splits.split_sizes(corpus))}

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return kokoro_nb.load_kokorochat(write_kokorochat(tmp_path_factory.mktemp("k") / "k", 40), progress=False)


def test_facts_cover_every_reference_of_the_prose(corpus, prose_keys):
    facts = chapter_facts(corpus)
    assert set(facts) == prose_keys("03_scores")
    assert facts["sc_total"] == 40 == facts["sc_n_plain"] + facts["sc_n_halved"] + facts["sc_n_zeroed"]


# --- verdicts, each in both directions -----------------------------------------------------------

LEFT = {"skew": -0.8, "mean_minus_median": -2.5}


@pytest.mark.parametrize("shape", [{"skew": 0.3, "mean_minus_median": 1.0},
                                   {"skew": -0.3, "mean_minus_median": 0.5},   # skewness alone is not enough
                                   {"skew": 0.2, "mean_minus_median": -0.5}])
def test_skew_sentences_when_not_left_skewed(shape):
    assert not scores.is_left_skewed(shape)
    assert scores.skew_heading(shape) == "The direction of the skew."
    assert scores.skew_text(shape).startswith(f"On this data the moment skewness is {shape['skew']:.2f}")
    assert "not the clear left skew" in scores.skew_text(shape)
    assert scores.skew_verdict(shape).startswith("Run the chapter on the full release")


def test_skew_sentences_when_left_skewed():
    assert scores.is_left_skewed(LEFT)
    assert scores.skew_heading(LEFT) == "The skew goes the other way."
    assert scores.skew_text(LEFT) == ("The released totals are skewed to the left: the moment skewness is -0.80 "
                                      "and the mean lies 2.50 points below the median.")
    assert "slip of terminology" in scores.skew_verdict(LEFT)


def test_unimodal_text_both_ways():
    assert scores.unimodal_text({"unimodal": True}).endswith("as the paper says")
    assert "does not support" in scores.unimodal_text({"unimodal": False})


@pytest.mark.parametrize("odd, floor_n, round_n, start", [
    (4, 4, 1, "The rule is therefore"), (0, 0, 0, "These sessions cannot"),
    (4, 3, 1, "No single rounding rule"), (4, 4, 4, "No single rounding rule")])
def test_rounding_verdict(odd, floor_n, round_n, start):
    assert scores.rounding_verdict(odd, floor_n, round_n).startswith(start)


@pytest.mark.parametrize("shift, text", [(0.99, "hardly for the centre"), (1.0, "and visibly for the centre")])
def test_centre_verdict_at_one_point(shift, text):
    assert scores.centre_verdict(shift) == text


def test_example_text_found_or_not():
    assert scores.example_text("123", 19).startswith("It is dialogue 123: 19 of the 21 numbers")
    assert scores.example_text(None, 0).startswith("The example is not in this data")


# --- facts from hand-made inputs ------------------------------------------------------------------

def flagged() -> pd.DataFrame:
    """Four dialogues: plain, halved (odd sum 61 -> 30), zeroed, and halved (even sum 80 -> 40)."""
    sums = [70, 61, 50, 80]
    d = pd.DataFrame({c: [s // 20 + (i < s % 20) for s in sums] for i, c in enumerate(ITEM_CODES)})
    d["dialogue_id"] = ["a", "b", "c", "d"]
    d["score"] = [70, 30, 0, 40]
    for k, col in zip(FLAG_KEYS, ([False, False, True, False], [False] * 4, [False, True, False, True])):
        d[k] = col
    return d


def test_rule_and_effect_facts_on_hand_made_sessions():
    d = flagged()
    f = scores.rule_facts(stats.score_rule_summary(d), stats.score_rule_check(d))
    assert (f["sc_follow"], f["sc_n_plain"], f["sc_n_halved"], f["sc_n_zeroed"]) == (4, 1, 2, 1)
    assert (f["sc_odd"], f["sc_odd_floor"], f["sc_odd_round"]) == (1, 1, 1)    # 61/2 = 30.5 rounds to even 30
    assert f["sc_rounding_verdict"].startswith("No single")
    e = scores.effect_facts(stats.screening_effect(d))
    assert e["sc_eff_points"] == 31 + 50 + 40 and e["sc_eff_shift"] == pytest.approx(121 / 4)
    assert e["sc_eff_centre"] == "and visibly for the centre"
    assert e["sc_eff_halved_share"] == pytest.approx(100 * 71 / 121)


def test_effect_facts_without_flags_give_no_halved_share():
    d = flagged().iloc[[0]]
    e = scores.effect_facts(stats.screening_effect(d))
    assert e["sc_eff_shift"] == 0 and e["sc_eff_halved_share"] == 0.0 and e["sc_eff_centre"].startswith("hardly")


def test_shape_facts_count_the_tails():
    d = flagged().assign(score=[0, 20, 99, 100])
    f = scores.shape_facts(d)
    assert (f["sc_n_zero"], f["sc_n_low"], f["sc_n_top"]) == (1, 2, 2)
    assert f["sc_mean"] == pytest.approx(54.75) and f["sc_modes_by_bw"].count("points") == 3


def test_item_table_and_facts():
    dist = pd.DataFrame({0: [0, 1], 1: [0, 1], 2: [0, 0], 3: [1, 0], 4: [1, 0], 5: [2, 0], "missing": [0, 3]},
                        index=pd.Index(["D1", "D13"], name="item"))
    items = scores.item_table(dist).loc[["D1", "D13"]]
    assert items.loc["D1", "mean"] == pytest.approx(17 / 4) and items.loc["D13", "% rated 0-1"] == 100
    f = scores.item_facts(items, dist)
    assert f["sc_item_low"].startswith("D13 (") and f["sc_item_low"].endswith("mean 0.50)")
    assert f["sc_item_high"].startswith("D1 (") and f["sc_item_mode3"] == 0 and f["sc_item_missing"] == 3
    assert f["sc_item_groups"].count("mean") == 2


def test_item_title_wraps_to_two_lines():
    title = scores.item_title("D1", "en")
    assert title.startswith("D1 ") and title.count("\n") <= 1
    assert all(len(line) <= 27 for line in title.split("\n"))


def test_split_and_flag_tables_and_facts():
    sizes = {"test": {"dialogues": 3, "utterances": 90}, "low": {"dialogues": 5, "utterances": 150}}
    assert scores.split_facts(sizes) == {"sc_split_test": 3, "sc_split_low": 5}
    html = scores.split_table(sizes).to_html()
    assert "dialogues (ours)" in html and "150" in html
    flags = dict(zip(FLAG_KEYS, (1, 0, 2)), any=7)
    assert scores.flag_facts(flags) == {"sc_any_flag": 7}
    assert "いずれか" in scores.flag_table(flags, lang="ja").to_html()


# --- figures --------------------------------------------------------------------------------------

def test_figure3_bins_of_two_points_with_mean_and_median():
    d = flagged()
    fig = scores.figure3(d)
    ax = fig.axes[0]
    assert len(ax.patches) == 51 and len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mean 35.00", "median 35.00"]
    assert ax.get_xlabel() == "total score (0-100)"
    plt.close(fig)


def test_rules_figure_one_point_per_dialogue():
    d = flagged()
    fig = scores.rules_figure(stats.score_rule_check(d), lang="ja")
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4
    assert ax.get_ylabel() == "公開された総合得点" and ax.get_legend().get_title().get_text() == ""
    plt.close(fig)


def test_items_figure_has_twenty_panels(corpus):
    dist = stats.item_distributions(corpus.dialogues)
    fig = scores.items_figure(scores.item_table(dist), dist)
    assert len(fig.axes) == 20 and all(len(ax.patches) == 6 for ax in fig.axes)
    assert fig.axes[0].get_title().startswith("D1 ") and fig.axes[-1].get_xlabel() == "rating (0-5)"
    assert not math.isnan(fig.axes[0].patches[0].get_height())
    plt.close(fig)
