"""show.scoring: facts, verdicts and the per-item figure of the score-evaluation chapter (21)."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from kokoro_nb import published
from kokoro_nb.schema import ITEM_CODES, ITEMS
from kokoro_nb.show import scoring

P5 = published.value("table5_score_prediction")
OURS = dict(zip(P5["columns"], P5["Ours"]))


def per_item(offset):
    acc = np.arange(len(ITEM_CODES), dtype=float) + offset
    return pd.DataFrame({"ACC": acc, "ACC_soft": acc + 20, "MAE": 1 - acc / 100}, index=list(ITEM_CODES))


def runs_out(ridge_acc=50.0, ridge_mae=0.5):
    rows = [{"seed": s, "system": name, "ACC": acc, "ACC_soft": 80.0, "MAE": mae}
            for s in (0, 1) for name, acc, mae in (("mode", 40.0, 0.9), ("median", 42.0, 0.8),
                                                   ("ridge", ridge_acc, ridge_mae))]
    ci = {"ACC": [45.0, 55.0], "ACC_soft": [75.0, 85.0], "MAE": [0.4, 0.6]}
    results = {(s, name): SimpleNamespace(ci=ci, per_item=per_item(10 * i))
               for s in (0, 1) for i, name in enumerate(("mode", "median", "ridge"))}
    return {"runs": pd.DataFrame(rows), "results": results,
            "sizes": {"train": 80, "validation": 10, "test": 10},
            "design": {"svd_components": 64, "char_ngrams": 5000, "dense_features": 12}}


def test_facts_cover_the_chapter_prose(prose_keys):
    out = runs_out()
    facts = (scoring.split_facts(out, (0, 1)) | scoring.baseline_facts(out, 0)
             | scoring.item_facts(scoring.item_table(out["results"])))
    # the whole grid (system x metric, paper and Llama-3.1 rows) is glued; the prose quotes part of it
    prose = prose_keys("21_evaluation_scores")
    assert prose <= set(facts)
    assert set(facts) - prose == {"sp_median_ACC", "sp_median_ACC_soft", "sp_median_MAE",
                                  "sp_llama_ACC_soft", "sp_llama_MAE"}
    assert facts["sp_seeds"] == "0, 1" and facts["sp_test"] == 10 and facts["sp_ngrams"] == 5000
    assert facts["sp_ridge_ACC"] == 50.0 and facts["sp_paper_MAE"] == OURS["MAE"]


def test_ridge_vs_paper_both_ways():
    assert scoring.ridge_vs_paper({"ACC": OURS["ACC"] + 1, "MAE": OURS["MAE"] - 0.01}, OURS) == \
        "higher accuracy and lower error than"
    assert scoring.ridge_vs_paper({"ACC": OURS["ACC"] + 1, "MAE": OURS["MAE"] + 0.01}, OURS) == "does not beat"
    assert scoring.ridge_vs_paper({"ACC": OURS["ACC"], "MAE": OURS["MAE"] - 0.01}, OURS) == "does not beat"


def test_outside_verdict_both_ways():
    cited = {"ACC": 60.0, "ACC_soft": 90.0, "MAE": 0.3}
    assert scoring.outside_verdict({"ACC": [45, 55], "ACC_soft": [75, 85], "MAE": [0.4, 0.6]}, cited) == "lie outside"
    # one value on the interval's edge counts as inside
    assert scoring.outside_verdict({"ACC": [45, 60], "ACC_soft": [75, 85], "MAE": [0.4, 0.6]}, cited) == \
        "do not all lie outside"


def test_mode_vs_llama_and_ridge_verdicts_from_the_runs():
    llama = dict(zip(P5["columns"], P5["Llama-3.1"]))
    facts = scoring.baseline_facts(runs_out(ridge_acc=OURS["ACC"] + 5, ridge_mae=OURS["MAE"] - 0.1), 0)
    assert facts["sp_ridge_vs_paper"] == "higher accuracy and lower error than"
    assert facts["sp_mode_vs_llama"] == ("above" if 40.0 > llama["ACC"] else "below")
    assert scoring.baseline_facts(runs_out(), 0)["sp_ridge_vs_paper"] == scoring.ridge_vs_paper(
        {"ACC": 50.0, "MAE": 0.5}, OURS)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_item_table_and_facts(lang):
    table = scoring.item_table(runs_out()["results"], lang)
    assert len(table) == 3 * len(ITEMS) and set(table["system"]) == {"mode", "median", "ridge"}
    first = ITEMS[0].key_jp if lang == "ja" else ITEMS[0].label_en
    facts = scoring.item_facts(table)
    last = ITEMS[-1].key_jp if lang == "ja" else ITEMS[-1].label_en
    assert facts["sp_worst_item"] == f"{ITEMS[0].code} {first}" and facts["sp_worst_acc"] == 20.0
    assert facts["sp_best_item"] == f"{ITEMS[-1].code} {last}" and facts["sp_best_acc"] == 20.0 + len(ITEMS) - 1


@pytest.mark.parametrize("lang, xlabel", [("en", "ACC (%), mean over five seeds"), ("ja", "正解率（%）、5シードの平均")])
def test_items_figure(lang, xlabel):
    fig = scoring.items_figure(scoring.item_table(runs_out()["results"], lang), lang=lang)
    ax = fig.axes[0]
    assert isinstance(fig, plt.Figure) and tuple(fig.get_size_inches()) == (7, 7)
    assert ax.get_xlabel() == xlabel and ax.get_ylabel() == ""
    assert len(ax.patches) >= 3 * len(ITEMS) and len(ax.get_yticklabels()) == len(ITEMS)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mode", "median", "ridge"]
    plt.close(fig)
