"""show.training: the facts and the loss figure of the two training chapters (10, 11)."""
from __future__ import annotations

import sys
import types

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kokoro_nb import published
from kokoro_nb.show import training


def metrics_dict():
    return {"first_logged_loss": 3.5, "last_logged_loss": 2.25, "global_step": 60, "tokens_per_s": 812.4,
            "best_metric": 0.31, "device": {"name": "cpu"}}


def response_facts():
    table = pd.DataFrame({"dialogues": [10, 20, 30, 4]}, index=["low", "high", "full", "test"])
    budget = pd.DataFrame({"characters": [9000, 1000], "examples": [120, 10]}, index=["per_turn", "session"])
    return (training.plan_facts({"examples": 8, "tokens": 900, "target_tokens": 300})
            | training.split_facts(table) | training.budget_facts(budget) | training.run_facts(metrics_dict()))


def test_drive_output_dir_outside_colab_keeps_the_output_dir(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert training.drive_output_dir(None, "outputs") == "outputs"
    assert training.drive_output_dir("/content/drive/MyDrive/k", "outputs") == "outputs"


def test_drive_output_dir_on_colab_mounts_drive(monkeypatch):
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert training.drive_output_dir(None, "outputs") == "outputs" and mounted == []
    assert training.drive_output_dir("/content/drive/MyDrive/k", "outputs") == "/content/drive/MyDrive/k"
    assert mounted == [training.COLAB_DRIVE]


def test_response_facts_values():
    facts = response_facts()
    splits = published.load()["response_generation_splits"]
    assert facts["rg_n_high"] == 20 and facts["rg_paper_full"] == splits["kokoro_full"]["dialogues"]
    assert facts["rg_budget_ratio"] == 9.0 and facts["rg_mean_targets"] == 12.0
    assert facts["rg_plan_targets"] == 300 and isinstance(facts["rg_plan_tokens"], int)
    assert facts["rg_steps"] == 60 and facts["rg_device"].data == "`cpu`"


def test_response_facts_cover_the_chapter_prose(prose_keys):
    assert set(response_facts()) == prose_keys("10_train_response_generation")


def test_score_facts_cover_the_chapter_prose(prose_keys):
    facts = (training.score_split_facts({"train": [1] * 8, "validation": [2], "test": [3]})
             | training.score_run_facts(metrics_dict())
             | training.prediction_facts({"total": 4, "parsed": {"ok": 1, "partial": 2, "unparseable": 1}}))
    assert set(facts) == prose_keys("11_train_score_prediction")
    assert facts["sp_train"] == 8 and facts["sp_best_acc"] == pytest.approx(31.0)
    assert (facts["sp_pred_ok"], facts["sp_pred_bad"]) == (1, 3)


@pytest.mark.parametrize("task, lang, ylabel", [("response", "en", "loss (counselor tokens)"),
                                                ("score", "ja", "損失（回答のトークン）")])
def test_loss_figure(task, lang, ylabel):
    curves = pd.DataFrame({"step": [1, 2, 3, 2], "loss": [3.0, 2.5, 2.0, 2.7],
                           "split": ["train", "train", "train", "validation"]})
    fig = training.loss_figure(curves, lang, task=task)
    ax = fig.axes[0]
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    assert ax.get_ylabel() == ylabel
    assert ax.get_xlabel() == ("optimizer step" if lang == "en" else "ステップ")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
    plt.close(fig)
