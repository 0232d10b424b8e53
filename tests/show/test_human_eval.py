"""show.human_eval: the facts and the win/tie/loss figure of the human-evaluation chapter (23)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kokoro_nb.show import human_eval


def wtl_table(win=0.2, tie=0.05, loss=0.75):
    return pd.DataFrame({"share": [win, tie, loss], "ci low": [0.1, 0.0, 0.6], "ci high": [0.3, 0.1, 0.9]},
                        index=["win", "tie", "loss"])


def test_facts_cover_the_chapter_prose(prose_keys):
    sheet = pd.DataFrame({"item": ["a", "b", "c"]})
    items = pd.DataFrame({"dialogue_id": ["d1", "d1", "d2"]})
    key = pd.DataFrame({"system_1": ["human", "copy", "human"]})
    sweep = pd.DataFrame({"Fleiss kappa": [0.05, 0.2, 0.4, 0.7]}, index=[0.3, 0.5, 0.7, 0.9])
    facts = (human_eval.kit_facts(sheet, items, key)
             | human_eval.result_facts(wtl_table(), {"sign_test_p": 0.001, "fleiss_kappa": 0.41}, 0.8)
             | human_eval.sweep_facts(sweep))
    # the tie share is glued beside win and loss, though the prose quotes only those two
    assert set(facts) - prose_keys("23_human_evaluation") == {"he_tie", "he_tie_lo", "he_tie_hi"}
    assert prose_keys("23_human_evaluation") <= set(facts)
    assert (facts["he_items"], facts["he_dialogues"], facts["he_swapped"]) == (3, 2, 2)
    assert facts["he_loss_hi"] == 0.9 and facts["he_planted"] == 0.8
    assert (facts["he_kappa_low"], facts["he_kappa_high"]) == (0.05, 0.7)


@pytest.mark.parametrize("lang, ylabel", [("en", "copy vs human\n(synthetic annotators)"),
                                          ("ja", "コピー 対 人間\n（合成評価者）")])
def test_wtl_figure_stacks_the_shares(lang, ylabel):
    fig = human_eval.wtl_figure(wtl_table(), lang=lang)
    ax = fig.axes[0]
    assert isinstance(fig, plt.Figure) and len(ax.patches) == 3
    assert [p.get_x() for p in ax.patches] == pytest.approx([0.0, 0.2, 0.25])
    assert ax.get_xlim() == (0, 1) and ax.get_yticklabels()[0].get_text() == ylabel
    # the 5 % tie segment is too narrow for its label; the others are labelled
    assert [t.get_text() for t in ax.texts] == ["win 20%", "loss 75%"]
    plt.close(fig)


def test_wtl_figure_labels_a_segment_just_above_the_threshold():
    fig = human_eval.wtl_figure(wtl_table(win=0.25, tie=0.07, loss=0.68))
    assert [t.get_text() for t in fig.axes[0].texts] == ["win 25%", "tie 7%", "loss 68%"]
    plt.close(fig)
