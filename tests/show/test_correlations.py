"""show.correlations: Figure 4 and 11, and every verdict sentence of chapter 04 on both sides."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure

import kokoro_nb
from kokoro_nb.show import plotting
from kokoro_nb.describe import inference, stats, variables
from kokoro_nb.show import correlations as co
from kokoro_nb.testing.synthetic import write_kokorochat


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    plotting.setup()                                   # the Japanese font, as in the chapter
    return _data(tmp_path_factory)


def _data(tmp_path_factory):
    root = write_kokorochat(tmp_path_factory.mktemp("co") / "kc", n_dialogues=20)
    corpus = kokoro_nb.load_kokorochat(root, cache=False, progress=False)
    d, features = corpus.dialogues, variables.dialogue_features(corpus)
    by_unit = inference.bootstrap_spearman(features, clusters=inference.cluster_labels(d, "client"), n_resamples=50, seed=1)
    by_dialogue = inference.bootstrap_spearman(features, n_resamples=50, seed=1)
    return d, features, by_unit, by_dialogue


def test_width_verdict_on_both_sides_of_the_threshold():
    wider = co.width_verdict(co.WIDER_THRESHOLD + 0.01, 3.96, "client")
    assert wider.startswith("wider than the dialogue intervals, by a factor of 1.2 to 4.0")
    assert "sessions of one client" in wider
    alike = co.width_verdict(co.WIDER_THRESHOLD - 0.01, 1.5, "counselor")
    assert alike.startswith("1.2 to 1.5 times as wide") and "few counselors" in alike


def test_crossing_verdict_names_the_intervals_that_include_zero():
    boot = pd.DataFrame({"lo": [0.1, -0.1, -0.3], "hi": [0.3, 0.2, -0.05]},
                        index=["client_total_chars", "counselor_utterances", "counselor_mean_response_seconds"])
    assert co.crossing_verdict(boot) == "the interval of the counselor utterance count includes zero"
    assert co.crossing_verdict(boot.drop(index="counselor_utterances")) == "none includes zero"
    assert co.crossing_verdict(boot.assign(lo=-0.5, hi=0.5)).count(" and of the ") == 2


def test_item_verdicts_both_ways():
    assert co.d1_verdict(["D2", "D9", "D10"], ["D10", "D2", "D9"]) == "as the paper says"
    assert co.d1_verdict(["D2", "D3", "D10"], ["D2", "D9", "D10"]) == "where the paper names D2, D9, D10"
    table2 = pd.Series([1] * 12 + [2] * 8, index=[f"D{i}" for i in range(1, 21)])
    assert "as the paper's grouping does" in co.split_verdict(table2)
    assert "(D1-D12) from the skill items (D13-D20)" in co.split_verdict(table2)
    tens = pd.Series([1] * 10 + [2] * 10, index=table2.index)          # not the paper's grouping
    assert "does not separate" in co.split_verdict(tens)
    one = pd.Series([1] * 19 + [2], index=[f"D{i}" for i in range(1, 21)])
    assert "does not separate" in co.split_verdict(one) and "sets apart only D20" in co.split_verdict(one)


def test_variance_verdicts_both_ways():
    assert co.who_verdict(2.8) == "who rates matters more than who is rated"
    assert co.who_verdict(1.0) == "who is rated matters at least as much as who rates"
    assert co.p_text(0.0004) == "4.0e-04" and co.p_text(0.001) == "0.001"


def test_figure4_draws_both_intervals_and_the_paper(data):
    _, _, by_unit, by_dialogue = data
    fig = co.figure4(by_unit, by_dialogue, cluster="client", lang="en")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Spearman's ρ with the total score"
    assert [t.get_text() for t in ax.get_yticklabels()] == [variables.label("feature", f) for f in by_unit.index]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "95 % interval, clients resampled", "95 % interval, dialogues resampled", "paper"]
    ja = co.figure4(by_unit, by_dialogue, lang="ja").axes[0].get_legend().get_texts()
    assert "95%区間（クライアント単位）" in [t.get_text() for t in ja]
    plt.close("all")


def test_figure4_table_has_the_width_ratio(data):
    _, _, by_unit, by_dialogue = data
    table = co.figure4_table(by_unit, by_dialogue, "client").data
    assert list(table.columns) == ["ρ", "paper", "95 % CI (clients)", "95 % CI (dialogues)", "width ratio"]
    assert table["width ratio"].to_numpy() == pytest.approx(co.width_ratio(by_unit, by_dialogue).to_numpy())


def test_figure11_is_a_20_by_20_heat_map(data):
    corr = stats.item_correlations(data[0])
    fig = co.figure11(corr)
    assert isinstance(fig, Figure)
    assert fig.axes[-1].get_ylabel() == "Spearman ρ"                 # the colour bar
    heat = [ax for ax in fig.axes if len(ax.get_yticklabels()) == 20]
    assert heat and heat[0].get_xlabel() == ""
    plt.close("all")


def test_facts_cover_every_key_the_prose_uses(data, prose_keys):
    d, features, by_unit, by_dialogue = data
    vc = inference.score_variance_decomposition(d)
    vc_items = inference.score_variance_decomposition(d, response="item_sum")
    _, coefs = inference.feature_regression(features, d)
    facts = (co.feature_facts(by_unit, by_dialogue, "client", 50) | co.item_facts(stats.item_correlations(d))
             | co.variance_facts(vc, vc_items, inference.counselor_component_test(d), d)
             | co.regression_facts(coefs, features))
    refs = prose_keys("04_correlations")
    assert refs <= set(facts)
    # the rest: per-feature siblings of the quoted client numbers, and the ratio range behind co_width_text
    assert all(re.match(r"co_(rho|lo|hi|dlo|dhi|ratio)_", k) for k in set(facts) - refs)
    assert facts["co_n_resamples"] == 50 and facts["co_clusters"] == "clients"
    assert facts["co_width_text"] == co.width_verdict(facts["co_ratio_min"], facts["co_ratio_max"], "client")
    assert facts["co_vc_score_rater"] + facts["co_vc_score_counselor"] + facts["co_vc_score_residual"] == \
        pytest.approx(100)
    assert isinstance(co.variance_table(vc, vc_items).to_html(), str)
