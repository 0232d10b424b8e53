"""show.comparison: chapter 05's tables, label figure, topic check and facts, with and without Psy-Insight."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

import kokoro_nb
from kokoro_nb import published
from kokoro_nb.describe import ledger
from kokoro_nb.show import plotting
from kokoro_nb.show import comparison as dc
from kokoro_nb.testing.synthetic import write_kokorochat, write_psy_insight


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    plotting.setup()
    base = tmp_path_factory.mktemp("dc")
    corpus = kokoro_nb.load_kokorochat(write_kokorochat(base / "kc", n_dialogues=12), cache=False, progress=False)
    psy = kokoro_nb.load_psy_insight(write_psy_insight(base / "psy"))
    return corpus, psy


def test_status_and_strategy_without_psy_insight():
    assert dc.psy_status(object()) == "loaded"
    assert dc.psy_status(None).startswith("not available")
    assert dc.top_strategy(None) == "not available"


def test_table1_shows_flags_as_words_and_splits_the_computed_columns(data):
    corpus, psy = data
    t1 = ledger.table1(corpus, psy)
    shown = dc.table1_shown(t1)
    assert set(shown["human-made"]) <= {"yes", "no", "—"} and "yes" in set(shown["human-made"])
    main = dc.table1_main(t1).data
    assert list(main.columns) == ["dataset", "human-made", "score", "score items", "language", "dialogues",
                                  "avg. utterances", "source"]
    extra = dc.table1_extra(t1).data
    assert list(extra.columns) == ["dataset", "avg. characters", "top-3 topics"]
    assert len(extra) == (t1["source"] == "computed").sum() >= 3      # KokoroChat and both Psy-Insight halves


def test_unit_table_counts_messages_and_turns(data):
    corpus, psy = data
    both = dc.unit_table(corpus, psy)
    assert list(both.index) == ["KokoroChat", "Psy-Insight (en)", "Psy-Insight (zh)"]
    assert (both["messages per turn"] >= 1).all()
    assert both["messages per dialogue"].to_numpy() == pytest.approx(
        (both["turns per dialogue"] * both["messages per turn"]).to_numpy())
    assert list(dc.unit_table(corpus, None).index) == ["KokoroChat"]


def test_label_figure_has_three_panels_or_a_placeholder(data):
    _, psy = data
    fig = dc.label_figure(psy, lang="en")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["psychotherapy (per session)", "strategy (supporter turns)",
                                                  "emotion (seeker turns)"]
    assert all(ax.get_xlabel() == "% of labels" for ax in fig.axes)
    assert dc.label_figure(psy, lang="ja").axes[0].get_title() == "心理療法（対話単位）"
    empty = dc.label_figure(None)
    assert len(empty.axes) == 1 and empty.axes[0].texts[0].get_text() == "Psy-Insight not available in this build"
    plt.close("all")


def test_topic_check_matches_published_names_to_data_labels(data):
    _, psy = data
    shares = published.value("psy_insight_published.top_topics_percent")
    check = dc.topic_check(psy)
    assert list(check.columns) == ["both languages", "en only", "zh only"]
    labels = dict(zip(check.index.get_level_values("topic (paper)"), check.index.get_level_values("label in the data")))
    assert labels["Depression"] == "Ongoing Depression"            # matched by ledger.match_topic
    assert set(labels) == set(shares)
    assert check["both languages"].dropna().between(0, 100).all()
    assert list(dc.topic_check(None).columns) == ["paper %"]


def test_facts_are_the_prose_keys(data, prose_keys):
    corpus, psy = data
    t1 = ledger.table1(corpus, psy)
    facts = dc.facts(t1, dc.unit_table(corpus, psy), psy)
    assert set(facts) == prose_keys("05_dataset_comparison")
    assert facts["dc_kc_dialogues"] == 12 and facts["dc_psy_sessions"] == len(psy.dialogues)
    assert re.fullmatch(r".+ \(en: \d+ %\), .+ \(zh: \d+ %\)", facts["dc_top_strategy"])
    none = dc.facts(ledger.table1(corpus, None), dc.unit_table(corpus, None), None)
    assert (none["dc_psy_sessions"], none["dc_top_strategy"]) == (0, "not available")
