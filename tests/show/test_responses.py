"""show.responses: facts, verdicts and the Table-4 figure of the response-evaluation chapter (20)."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kokoro_nb.evaluate import baselines, metrics
from kokoro_nb import published
from kokoro_nb.show import responses


def result(b1, rl=10.0, ci=(4.0, 6.5)):
    return SimpleNamespace(scores={"BLEU-1": b1, "ROUGE-L": rl}, ci={"BLEU-1": list(ci)},
                           secondary={"reference Dist-1": 7.5, "reference Dist-2": 40.0})


def sig_table(delta, significant):
    index = pd.MultiIndex.from_tuples([("retrieval-low", "retrieval-high", "BLEU-1"),
                                       ("copy", "retrieval", "BLEU-1")], names=["system_a", "system_b", "metric"])
    return pd.DataFrame({"delta": [delta, 1.0], "p_bootstrap": [0.02, 0.5], "significant": [significant, False]},
                        index=index)


def sens_table():
    index = pd.MultiIndex.from_product([["constant", "copy"], ["ja-unidic", "char"]])
    cols = ["sentence BLEU-1", "sentence BLEU-4", "corpus BLEU-1", "corpus BLEU-4", "Dist-1 pooled",
            "Dist-2 pooled", "Dist-2 per turn"]
    return pd.DataFrame([[float(10 * i + j) for j in range(len(cols))] for i in range(4)], index=index, columns=cols)


def all_facts(delta=-0.5, significant=True):
    turns = pd.DataFrame({"reference": ["ab", "abcd"]})
    results = {"copy": result(12.0), "retrieval": result(9.0)}
    info = {"pool_dialogues": 5, "pool_of": 50, "pool_turns": 80, "copy_empty": 2, "constant_reply": "はい"}
    sub_info = {s: {"pool_dialogues": 3, "subset_dialogues": n} for s, n in (("low", 7), ("high", 9), ("full", 16))}
    return (responses.test_facts(["d1"], turns) | responses.protocol_facts(str.split, "a b", 50)
            | responses.pool_facts(info) | responses.baseline_facts(results) | responses.subset_facts(sub_info)
            | responses.significance_facts(sig_table(delta, significant), results, baselines.paper_table4(), 99, 200)
            | responses.sensitivity_facts(sens_table()))


def test_facts_cover_the_chapter_prose(prose_keys):
    assert set(all_facts()) == prose_keys("20_evaluation_responses")


def test_facts_values():
    facts = all_facts()
    assert facts["ev_ref_chars"] == 3.0 and facts["ev_example_tokens"] == "a | b"
    assert facts["ev_paper_test"] == published.value("response_generation_splits.test.dialogues")
    assert facts["ev_constant"] == "はい" and facts["ev_sub_high_n"] == 9
    assert facts["ev_p_floor"] == 0.01 and facts["ev_sig_total"] == 2 and facts["ev_sig_n"] == 1
    assert facts["ev_sig_ci_width"] == 2.5
    assert facts["ev_s_b4_char"] == 31.0 and facts["ev_s_const_sb1"] == 0.0 and facts["ev_s_const_cb1"] == 2.0


def test_paper_lh_gap_is_high_minus_low():
    rows = baselines.paper_table4()
    facts = all_facts()
    assert facts["ev_paper_lh_b1"] == pytest.approx(rows.loc["Kokoro-High", "BLEU-1"] - rows.loc["Kokoro-Low", "BLEU-1"])
    assert facts["ev_paper_lh_dir"] == responses.ahead_or_behind(rows.loc["Kokoro-High", "BLEU-1"],
                                                                 rows.loc["Kokoro-Low", "BLEU-1"])


@pytest.mark.parametrize("delta, significant, word, direction", [(-0.5, True, "is", "worse"),
                                                                 (0.8, False, "is not", "better")])
def test_low_high_verdicts(delta, significant, word, direction):
    facts = all_facts(delta, significant)
    assert (facts["ev_sig_lh_word"], facts["ev_sig_lh_dir"]) == (word, direction)


def test_verdict_words_both_ways():
    assert responses.above_or_below(10.01, 10.0) == "above"
    assert responses.above_or_below(10.0, 10.0) == "below"
    assert responses.ahead_or_behind(5.1, 5.0) == "ahead of" and responses.ahead_or_behind(4.9, 5.0) == "behind"
    assert responses.better_or_worse(0.0) == "better" and responses.better_or_worse(-0.01) == "worse"
    assert responses.significance_word(True) == "is" and responses.significance_word(False) == "is not"


def test_copy_vs_llama_follows_the_copy_score():
    llama = published.value("table4_response_generation")["Llama-3.1"][0]
    above = responses.baseline_facts({"copy": result(llama + 1), "retrieval": result(1.0)})
    below = responses.baseline_facts({"copy": result(llama - 1), "retrieval": result(1.0)})
    assert (above["ev_copy_vs_llama"], below["ev_copy_vs_llama"]) == ("above", "below")


@pytest.mark.parametrize("lang, xlabel", [("en", "score (×100)"), ("ja", "スコア（×100）")])
def test_table4_figure(lang, xlabel):
    ours = pd.DataFrame([[float(i + j) for j in range(len(metrics.RESPONSE_METRICS))] for i in range(2)],
                        index=["constant", "copy"], columns=list(metrics.RESPONSE_METRICS))
    fig = responses.table4_figure(baselines.compare_table4(ours), lang=lang)
    assert isinstance(fig, plt.Figure)
    assert [ax.get_title() for ax in fig.axes] == responses.FIGURE_METRICS
    assert fig.axes[0].get_xlabel() == xlabel
    systems = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "copy" in systems and "Kokoro-High (paper)" in systems
    plt.close(fig)


def test_significance_table_marks_and_orders_the_pairs():
    pairs = [("copy", "retrieval"), ("a", "b")]
    rows = [(a, b, m, d, s) for (a, b), base in zip(pairs, (1.0, -2.0))
            for m, d, s in zip(metrics.PER_TURN_METRICS, [base + i for i in range(len(metrics.PER_TURN_METRICS))],
                               [True] + [False] * (len(metrics.PER_TURN_METRICS) - 1))]
    sig = pd.DataFrame(rows, columns=["system_a", "system_b", "metric", "delta", "significant"]).assign(
        delta_lo=-9.0, delta_hi=9.0, p_bootstrap=0.01, p_randomization=0.02).set_index(["system_a", "system_b", "metric"])
    marked, detail = responses.significance_table(sig.iloc[::-1], pairs)     # any input order
    assert list(marked.index) == ["retrieval − copy", "b − a"]
    assert list(marked.columns) == list(metrics.PER_TURN_METRICS)
    first = metrics.PER_TURN_METRICS[0]
    assert marked.loc["retrieval − copy", first] == "+1.00 *" and marked.loc["b − a", first] == "-2.00 *"
    assert marked.loc["b − a", metrics.PER_TURN_METRICS[1]] == "-1.00"           # not significant: no star
    assert list(detail.columns) == ["delta", "delta_lo", "delta_hi", "p_bootstrap", "p_randomization", "significant"]
    assert detail.loc[("b − a", first), "delta"] == -2.0
