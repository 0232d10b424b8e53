"""What the score-evaluation chapter shows (21): the split, the baselines beside Table 5, accuracy per item."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kokoro_nb import config, published
from kokoro_nb.evaluate import baselines, metrics
from kokoro_nb.schema import ITEMS
from kokoro_nb.show import plotting
from kokoro_nb.show.responses import above_or_below


def split_facts(runs_out: dict, seeds=config.SCORE_SPLIT_SEEDS) -> dict[str, object]:
    """Glue keys of the split (seeds and sizes) and the ridge design (*runs_out*: ``score_baselines``)."""
    design = runs_out["design"]
    facts = {"sp_seeds": ", ".join(map(str, seeds))}
    facts |= {f"sp_{k}": v for k, v in runs_out["sizes"].items()}
    return facts | {"sp_components": design["svd_components"], "sp_ngrams": design["char_ngrams"],
                    "sp_dense": design["dense_features"]}


def ridge_vs_paper(ridge: dict, cited: dict) -> str:
    """Say whether the ridge means beat the paper's model on both ACC (higher) and MAE (lower)."""
    better = (ridge["ACC"] > cited["ACC"]) and (ridge["MAE"] < cited["MAE"])
    return "higher accuracy and lower error than" if better else "does not beat"


def outside_verdict(ci: dict, cited: dict, keys=metrics.SCORE_METRICS) -> str:
    """Say whether every cited value of *keys* lies outside its interval in *ci*."""
    outside = all(not (ci[k][0] <= cited[k] <= ci[k][1]) for k in keys)
    return "lie outside" if outside else "do not all lie outside"


def baseline_facts(runs_out: dict, first_seed: int) -> dict[str, object]:
    """Glue keys of the seed-averaged baselines beside the paper's Table 5, with the three verdicts."""
    mean = runs_out["runs"].groupby("system")[list(metrics.SCORE_METRICS)].mean()
    p5 = published.value("table5_score_prediction")
    ours_paper, llama = dict(zip(p5["columns"], p5["Ours"])), dict(zip(p5["columns"], p5["Llama-3.1"]))
    facts = {f"sp_{name}_{k}": float(mean.loc[name, k])
             for name in baselines.SCORE_SYSTEMS for k in metrics.SCORE_METRICS}
    for k in metrics.SCORE_METRICS:
        facts |= {f"sp_paper_{k}": ours_paper[k], f"sp_llama_{k}": llama[k]}
    ridge_ci = runs_out["results"][(first_seed, "ridge")].ci
    return facts | {"sp_ridge_vs_paper": ridge_vs_paper(mean.loc["ridge"], ours_paper),
                    "sp_outside": outside_verdict(ridge_ci, ours_paper),
                    "sp_mode_vs_llama": above_or_below(mean.loc["mode", "ACC"], llama["ACC"])}


def item_table(results: dict, lang: str = "en") -> pd.DataFrame:
    """Per-item ACC, ACC_soft, MAE of each baseline (mean over seeds), items named in *lang*."""
    per_item = pd.concat({name: baselines.per_item_table(results, name) for name in baselines.SCORE_SYSTEMS},
                         names=["system", "item"]).reset_index()
    names = {it.code: f"{it.code} {it.key_jp if lang == 'ja' else it.label_en}" for it in ITEMS}
    per_item["item"] = per_item["item"].map(names)
    return per_item


def items_figure(per_item: pd.DataFrame, lang: str = "en"):
    """Horizontal bars of ACC per item, one colour per baseline (*per_item*: :func:`item_table`)."""
    fig, ax = plt.subplots(figsize=(7, 7))
    sns.barplot(data=per_item, y="item", x="ACC", hue="system", ax=ax)
    ax.set_xlabel(plotting.label(lang, en="ACC (%), mean over five seeds", ja="正解率（%）、5シードの平均"))
    ax.set_ylabel("")
    sns.move_legend(ax, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, title=None, frameon=False)
    return fig


def item_facts(per_item: pd.DataFrame) -> dict[str, object]:
    """Glue keys of the ridge model's most and least accurate items."""
    ridge = per_item[per_item["system"] == "ridge"].sort_values("ACC")
    best, worst = ridge.iloc[-1], ridge.iloc[0]
    return {"sp_best_item": best["item"], "sp_best_acc": float(best["ACC"]),
            "sp_worst_item": worst["item"], "sp_worst_acc": float(worst["ACC"])}
