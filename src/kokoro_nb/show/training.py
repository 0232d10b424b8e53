"""What the two training chapters show (10 response generation, 11 score prediction)."""
from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.show import plotting

COLAB_DRIVE = "/content/drive"
SUBSET_PAPER_KEYS = {"low": "kokoro_low", "high": "kokoro_high", "full": "kokoro_full", "test": "test"}
# the y label of each task's loss: what the loss is computed on
LOSS_LABELS = {"response": ("loss (counselor tokens)", "損失（カウンセラーのトークン）"),
               "score": ("loss (answer tokens)", "損失（回答のトークン）")}


def drive_output_dir(drive_dir, output_dir):
    """On Colab with *drive_dir* set, mount Google Drive and return *drive_dir*; else *output_dir*."""
    if not (drive_dir and "google.colab" in sys.modules):
        return output_dir
    from google.colab import drive  # Colab only
    drive.mount(COLAB_DRIVE)
    return drive_dir


def plan_facts(counts: dict) -> dict[str, object]:
    """Glue keys of the planned epoch: training rows, tokens, target tokens."""
    return {"rg_plan_examples": int(counts["examples"]), "rg_plan_tokens": int(counts["tokens"]),
            "rg_plan_targets": int(counts["target_tokens"])}


def split_facts(table) -> dict[str, object]:
    """Glue keys of the Low/High/Full/test sizes (*table*: rows by subset, a ``dialogues`` column) and the paper's."""
    paper_splits = published.load()["response_generation_splits"]
    facts = {f"rg_n_{k}": int(table.loc[k, "dialogues"]) for k in SUBSET_PAPER_KEYS}
    facts |= {f"rg_paper_{k}": int(paper_splits[name]["dialogues"]) for k, name in SUBSET_PAPER_KEYS.items()}
    return facts


def budget_facts(budget) -> dict[str, object]:
    """Glue keys of one epoch's text in both modes (*budget*: ``sft.epoch_budget``)."""
    per_turn, session = budget.loc["per_turn"], budget.loc["session"]
    return {"rg_budget_ratio": float(per_turn["characters"] / session["characters"]),
            "rg_mean_targets": float(per_turn["examples"] / session["examples"]),
            "rg_budget_per_turn": int(per_turn["characters"]),
            "rg_budget_session": int(session["characters"])}


def loss_figure(curves, lang: str = "en", task: str = "response"):
    """Training and validation loss against the optimizer step (*curves*: ``train.training_curves``)."""
    fig, ax = plt.subplots()
    sns.lineplot(data=curves, x="step", y="loss", hue="split", marker="o", ax=ax)
    en, ja = LOSS_LABELS[task]
    ax.set(xlabel=plotting.label(lang, en="optimizer step", ja="ステップ"),
           ylabel=plotting.label(lang, en=en, ja=ja))
    return fig


def run_facts(metrics: dict) -> dict[str, object]:
    """Glue keys of the response-generation run: first and last loss, steps, speed, device."""
    from IPython.display import (
        Markdown,  # notebooks only; IPython is not a core dependency
    )
    return {"rg_loss_first": float(metrics["first_logged_loss"]),
            "rg_loss_last": float(metrics["last_logged_loss"]),
            "rg_steps": int(metrics["global_step"]),
            "rg_tokens_per_s": float(metrics["tokens_per_s"]),
            "rg_device": Markdown(f"`{metrics['device']['name']}`")}


def score_split_facts(split: dict) -> dict[str, object]:
    """Glue keys of the score-prediction split sizes."""
    return {f"sp_{k}": len(split[k]) for k in ("train", "validation", "test")}


def score_run_facts(metrics: dict) -> dict[str, object]:
    """Glue keys of the score-prediction run: first and last loss, best teacher-forced accuracy (%)."""
    return {"sp_loss_first": float(metrics["first_logged_loss"]),
            "sp_loss_last": float(metrics["last_logged_loss"]),
            "sp_best_acc": float(100 * metrics["best_metric"])}


def prediction_facts(pred: dict) -> dict[str, object]:
    """Glue keys of the test predictions: answers, complete ones, and the rest (partial or unparseable)."""
    parsed = pred["parsed"]
    return {"sp_pred_n": pred["total"], "sp_pred_ok": parsed["ok"],
            "sp_pred_bad": parsed["unparseable"] + parsed["partial"]}
