"""What the human-evaluation chapter shows (23): the kit, the synthetic result and how agreement moves."""
from __future__ import annotations

import matplotlib.pyplot as plt

from kokoro_nb.show import plotting

OUTCOMES = ("win", "tie", "loss")
COLORS = {"win": "#e69f00", "tie": "#bbbbbb", "loss": "#56b4e9"}
MIN_LABELLED_SHARE = 0.06   # a narrower segment has no room for its label


def kit_facts(sheet, items, key) -> dict[str, object]:
    """Glue keys of the kit: items, dialogues, and items with the human reply shown as response 1."""
    return {"he_items": len(sheet), "he_dialogues": items["dialogue_id"].nunique(),
            "he_swapped": int((key["system_1"] == "human").sum())}


def result_facts(wtl, res: dict, planted: float) -> dict[str, object]:
    """Glue keys of the scored study (*wtl*: share, ci low, ci high by outcome; *res*: ``score_files``)."""
    facts = {"he_planted": planted}
    for label in OUTCOMES:
        facts |= {f"he_{label}": float(wtl.loc[label, "share"]),
                  f"he_{label}_lo": float(wtl.loc[label, "ci low"]),
                  f"he_{label}_hi": float(wtl.loc[label, "ci high"])}
    return facts | {"he_sign_p": float(res["sign_test_p"]), "he_kappa": float(res["fleiss_kappa"])}


def wtl_figure(wtl, lang: str = "en"):
    """One stacked bar of the win, tie and loss shares, each segment labelled where it is wide enough."""
    fig, ax = plt.subplots(figsize=(6.5, 1.4))
    left = 0.0
    for label in OUTCOMES:
        share = float(wtl.loc[label, "share"])
        ax.barh([0], [share], left=left, color=COLORS[label])
        if share > MIN_LABELLED_SHARE:
            ax.text(left + share / 2, 0, f"{label} {share:.0%}", ha="center", va="center")
        left += share
    ax.set_yticks([0], [plotting.label(lang, en="copy vs human\n(synthetic annotators)",
                                       ja="コピー 対 人間\n（合成評価者）")])
    ax.set_xlim(0, 1)
    ax.set_xlabel(plotting.label(lang, en="share of items (majority of 5)", ja="項目の割合（5人の多数決）"))
    return fig


def sweep_facts(sweep) -> dict[str, object]:
    """Glue keys of Fleiss' kappa for the noisiest and the most reliable annotators (*sweep*: rows by accuracy)."""
    return {"he_kappa_low": float(sweep["Fleiss kappa"].iloc[0]),
            "he_kappa_high": float(sweep["Fleiss kappa"].iloc[-1])}
