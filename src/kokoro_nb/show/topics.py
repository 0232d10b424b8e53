"""Chapter 02 (topics): its table, its two figures and the numbers and verdicts its prose quotes."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kokoro_nb.describe import variables
from kokoro_nb.show import plotting


def names_or_none(names) -> str:
    """Join *names* with commas, or say "none" (the prose reads "the ones that do not: none")."""
    return ", ".join(names) or "none"


def share_facts(shares: pd.DataFrame, lang: str = "en") -> dict[str, object]:
    """Largest and smallest issue types, and how many of the paper's printed shares we reproduce.

    *shares* is `ledger.topic_share_comparison` (largest first) with a ``label`` column added.
    """
    top, last = shares.iloc[0], shares.iloc[-1]
    printed = shares.dropna(subset=["paper_percent"])
    same = printed["percent"].round(1) == printed["paper_percent"]
    return {"tp_n_topics": len(shares), "tp_top_topic": variables.label("topic", top["topic"], lang),
            "tp_top_share": float(top["percent"]), "tp_top5_share": float(shares["percent"].head(5).sum()),
            "tp_last_topic": variables.label("topic", last["topic"], lang), "tp_last_n": int(last["dialogues"]),
            "tp_printed": len(printed), "tp_same": int(same.sum()),
            "tp_differ_names": names_or_none(printed.loc[~same, "label"])}


def share_table(shares: pd.DataFrame):
    """The share table beside the paper's values, as a Styler."""
    return (shares[["topic", "topic_ja", "dialogues", "percent", "paper_percent", "paper_source"]]
            .style.format({"dialogues": "{:,}", "percent": "{:.2f}", "paper_percent": "{:.1f}"}, na_rep="—")
            .hide(axis="index"))


def share_figure(shares: pd.DataFrame, lang: str = "en"):
    """Bars of each issue type's share (with counts) and black ticks at the shares the paper prints."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    sns.barplot(data=shares, y="label", x="percent", color=sns.color_palette()[0], ax=ax)
    ax.scatter(shares["paper_percent"], range(len(shares)), marker="|", s=300, color="black", zorder=3,
               label=plotting.label(lang, en="paper", ja="論文の値"))
    for i, (pct, n) in enumerate(zip(shares["percent"], shares["dialogues"])):
        ax.text(pct + 0.3, i, f"{pct:.1f} % ({n:,})", va="center", fontsize=9)
    ax.set_xlabel(plotting.label(lang, en="share of dialogues (%)", ja="対話の割合（%）"))
    ax.set_ylabel("")
    ax.set_xlim(0, max(shares["percent"].max(), shares["paper_percent"].astype(float).max()) * 1.3)
    ax.legend(loc="lower right")
    return fig


def median_order(dialogues: pd.DataFrame) -> list[str]:
    """Topics ordered by median score, highest first."""
    return dialogues.groupby("topic")["score"].median().sort_values(ascending=False).index.tolist()


def score_figure(dialogues: pd.DataFrame, lang: str = "en"):
    """Box plots of the total score per issue type, ordered by median."""
    d = dialogues
    plot = d.assign(label=[variables.label("topic", t, lang) for t in d["topic"]], score=d["score"].astype(float))
    fig, ax = plt.subplots(figsize=(7, 4.8))
    sns.boxplot(data=plot, y="label", x="score", order=[variables.label("topic", t, lang) for t in median_order(d)],
                color=sns.color_palette()[1], fliersize=1.5, ax=ax)
    ax.set_xlabel(plotting.label(lang, en="total score", ja="総合得点"))
    ax.set_ylabel("")
    return fig


def score_facts(dialogues: pd.DataFrame, kw: dict, lang: str = "en") -> dict[str, object]:
    """The Kruskal-Wallis test (*kw* from `inference.topic_score_test`) and the best and worst median."""
    order = median_order(dialogues)
    medians = dialogues.groupby("topic")["score"].median()
    return {"tp_kw_h": kw["H"], "tp_kw_df": kw["df"], "tp_kw_p": kw["p"], "tp_kw_eps": kw["epsilon2"],
            "tp_kw_left_out": names_or_none(kw["left_out"]),
            "tp_best_topic": variables.label("topic", order[0], lang),
            "tp_worst_topic": variables.label("topic", order[-1], lang),
            "tp_best_median": float(medians[order[0]]), "tp_worst_median": float(medians[order[-1]])}
