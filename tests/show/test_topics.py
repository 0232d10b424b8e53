"""show.topics: chapter 02's table, figures, facts and verdicts."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb.describe import inference, ledger, variables
from kokoro_nb.show import topics


def chapter_facts(dialogues: pd.DataFrame, lang: str = "en") -> dict:
    """Every glue key of chapter 02, composed as the chapter composes them."""
    shares = ledger.topic_share_comparison(dialogues)
    shares["label"] = [variables.label("topic", t, lang) for t in shares["topic"]]
    return {**topics.share_facts(shares, lang),
            **topics.score_facts(dialogues, inference.topic_score_test(dialogues), lang)}

matplotlib.use("Agg")


def shares(paper_percent=(50.0, 30.0, np.nan)) -> pd.DataFrame:
    """Three topics, largest first, as `paper.topic_share_comparison` returns them, plus labels."""
    return pd.DataFrame({"topic": ["Career and Educational Issues", "Family Issues", "Other"],
                         "topic_ja": ["進路", "家族", "その他"], "dialogues": [50, 30, 20],
                         "percent": [50.0, 30.0, 20.0], "paper_percent": list(paper_percent),
                         "paper_source": ["text", "figure", None], "label": ["Career", "Family", "Other"]})


def scored() -> pd.DataFrame:
    return pd.DataFrame({"topic": ["Family Issues (Spouse)"] * 3 + ["Others"] * 3, "score": [80, 90, 85, 40, 50, 60]})


@pytest.fixture
def synthetic_dialogues(synthetic_kokorochat_dir):
    return kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False).dialogues


def test_facts_cover_every_reference_of_the_prose(synthetic_dialogues, prose_keys):
    facts = chapter_facts(synthetic_dialogues)
    assert set(facts) == prose_keys("02_topics")
    assert facts["tp_n_topics"] == synthetic_dialogues["topic"].nunique()


def test_names_or_none_says_none_for_nothing():
    assert topics.names_or_none([]) == "none"
    assert topics.names_or_none(["A", "B"]) == "A, B"


def test_share_facts_when_every_printed_share_agrees():
    f = topics.share_facts(shares())
    assert (f["tp_printed"], f["tp_same"], f["tp_differ_names"]) == (2, 2, "none")
    assert f["tp_top_share"] == 50.0 and f["tp_last_n"] == 20 and f["tp_top5_share"] == 100.0


def test_share_facts_name_the_shares_that_differ():
    f = topics.share_facts(shares((50.0, 30.2, np.nan)))
    assert (f["tp_same"], f["tp_differ_names"]) == (1, "Family")


def test_share_table_hides_the_label_column():
    html = topics.share_table(shares()).to_html()
    assert "paper_source" in html and ">label<" not in html and "—" in html


def test_share_figure_draws_a_bar_and_a_count_per_topic():
    fig = topics.share_figure(shares())
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.texts][0] == "50.0 % (50)"
    assert ax.get_xlabel() == "share of dialogues (%)" and ax.get_xlim()[1] == pytest.approx(65.0)
    plt.close(fig)


def test_score_facts_order_topics_by_median():
    kw = {"H": 3.9, "df": 1, "p": 0.05, "epsilon2": 0.8, "left_out": []}
    f = topics.score_facts(scored(), kw)
    assert (f["tp_best_topic"], f["tp_best_median"], f["tp_worst_median"]) == ("Family Issues (Spouse)", 85.0, 50.0)
    assert f["tp_kw_left_out"] == "none"


def test_score_figure_orders_boxes_by_median():
    fig = topics.score_figure(scored(), lang="ja")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["家庭内問題（夫婦）", "その他"]
    assert ax.get_xlabel() == "総合得点"
    plt.close(fig)
