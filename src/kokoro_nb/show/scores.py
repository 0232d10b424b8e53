"""Chapter 03 (client feedback scores): its tables, figures and the numbers and verdicts its prose quotes."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.describe import stats, variables
from kokoro_nb.schema import FLAGS
from kokoro_nb.show import plotting

RULE_PLAIN, RULE_HALVE, RULE_ZERO = "item sum (no flag)", "halve (flag 3)", "zero (flag 1 or 2)"


# --- Figure 3: the shape of the total score ---------------------------------------------------

def is_left_skewed(shape: dict) -> bool:
    """Left skew: negative moment skewness and the mean below the median (both, to be safe)."""
    return shape["skew"] < 0 and shape["mean_minus_median"] < 0


def skew_heading(shape: dict) -> str:
    """The bold lead of the skew paragraph."""
    return "The skew goes the other way." if is_left_skewed(shape) else "The direction of the skew."


def skew_text(shape: dict) -> str:
    """The sentence stating the direction of the skew on this data."""
    if is_left_skewed(shape):
        return ("The released totals are skewed to the left: the moment skewness is {:.2f} and the mean lies "
                "{:.2f} points below the median.".format(shape["skew"], -shape["mean_minus_median"]))
    return ("On this data the moment skewness is {:.2f} and the mean minus the median {:+.2f}: not the clear "
            "left skew of the full release.".format(shape["skew"], shape["mean_minus_median"]))


def skew_verdict(shape: dict) -> str:
    """What the skew says about the paper's "right skew"."""
    if is_left_skewed(shape):
        return ("The paper's sentence (\"most dialogues received moderate to high client feedback\") "
                "fits a left skew; \"right skew\" is most likely a slip of terminology.")
    return "Run the chapter on the full release to see the left skew."


def unimodal_text(shape: dict) -> str:
    """The clause on the paper's "unimodal" (`stats.score_shape` decides it at every bandwidth)."""
    if shape["unimodal"]:
        return "so the distribution is unimodal, as the paper says"
    return ("so this data does not support the paper's \"unimodal\" (on a small sample, a density has bumps that "
            "are noise; on the full release every bandwidth finds one mode)")


def shape_facts(dialogues: pd.DataFrame) -> dict[str, object]:
    """Centre, spread, modes and skew of the total score, beside the paper's description."""
    d, s, shape = dialogues, stats.score_summary(dialogues), stats.score_shape(dialogues)
    pub = published.value("figure3_score_distribution")
    return {**{f"sc_{k}": s[k] for k in ("mean", "median", "std")},
            "sc_paper_mean": pub["mean"], "sc_paper_median": pub["median"], "sc_paper_shape": pub["shape"],
            "sc_skew_unflagged": shape["skew_unflagged"], "sc_skew_heading": skew_heading(shape),
            "sc_skew_text": skew_text(shape), "sc_skew_verdict": skew_verdict(shape),
            "sc_n_modes": shape["n_modes"],
            "sc_modes_by_bw": ", ".join(f"{n} at {h:g} points" for h, n in shape["n_modes_by_bandwidth"].items()),
            "sc_unimodal_text": unimodal_text(shape),
            "sc_mode_at": shape["modes"][0] if shape["modes"] else float("nan"),
            "sc_n_zero": int((d["score"] == 0).sum()), "sc_n_low": int((d["score"] < 30).sum()),
            "sc_n_top": int((d["score"] >= 99).sum())}


def figure3(dialogues: pd.DataFrame, lang: str = "en"):
    """Histogram of the total score in bins of 2 points, with the mean and the median (paper Figure 3)."""
    s = stats.score_summary(dialogues)
    fig, ax = plt.subplots()
    sns.histplot(dialogues["score"].astype(float), binwidth=2, binrange=(0, 102), ax=ax)
    for value, style, name in ((s["mean"], "-", plotting.label(lang, en="mean", ja="平均")),
                               (s["median"], "--", plotting.label(lang, en="median", ja="中央値"))):
        ax.axvline(value, color="black", linestyle=style, label=f"{name} {value:.2f}")
    ax.set_xlabel(plotting.label(lang, en="total score (0-100)", ja="総合得点（0〜100）"))
    ax.set_ylabel(plotting.label(lang, en="dialogues", ja="対話数"))
    ax.legend()
    return fig


# --- Appendix A.3: the screening items and the rules ------------------------------------------

def flag_table(flags: dict, lang: str = "en"):
    """The screening counts (*flags* from `stats.screening_flag_counts`) beside the paper's, as a Styler."""
    pub = published.value("appendix_a3_screening_items")
    names = {f.key: f.label_ja if lang == "ja" else f.label_en for f in FLAGS}
    table = pd.DataFrame({
        "item": [names[f.key] for f in FLAGS] + [plotting.label(lang, en="any of the three", ja="いずれか")],
        "rule": [f.rule for f in FLAGS] + [""],
        "paper": [pub[f.key] for f in FLAGS] + [pub["any_flag"]],
        "ours": [flags[f.key] for f in FLAGS] + [flags["any"]],
    })
    return table.style.format("{:,}", subset=["paper", "ours"], na_rep="—").hide(axis="index")


def flag_facts(flags: dict) -> dict[str, object]:
    """How many sessions carry any screening flag."""
    return {"sc_any_flag": flags["any"]}


def rounding_verdict(odd: int, floor_n: int, round_n: int) -> str:
    """Which halving rule the *odd* halved sums support (*floor_n*, *round_n*: how many each reproduces)."""
    if odd and floor_n == odd > round_n:
        return "The rule is therefore \"halve and round down\"."
    if odd == 0:
        return "These sessions cannot tell the rounding rules apart."
    return "No single rounding rule reproduces every odd sum."


def rule_facts(rules: pd.DataFrame, check: pd.DataFrame) -> dict[str, object]:
    """Whether the released totals follow the rules.

    *rules* is `stats.score_rule_summary`, *check* `stats.score_rule_check`.
    """
    odd = int(rules["odd_item_sum"].sum())
    floor_n = int(rules.get("odd_floor", pd.Series([0])).sum())
    round_n = int(rules.get("odd_round_half_even", pd.Series([0])).sum())
    return {"sc_follow": int(check["follows"].sum()), "sc_total": len(check),
            "sc_n_plain": int((check["rule"] == RULE_PLAIN).sum()),
            "sc_n_halved": int((check["rule"] == RULE_HALVE).sum()),
            "sc_n_zeroed": int((check["rule"] == RULE_ZERO).sum()),
            "sc_odd": odd, "sc_odd_floor": floor_n, "sc_odd_round": round_n,
            "sc_rounding_verdict": rounding_verdict(odd, floor_n, round_n)}


def rules_figure(check: pd.DataFrame, lang: str = "en"):
    """Released total against the sum of the 20 items, coloured by the rule that applies."""
    names = {RULE_PLAIN: plotting.label(lang, en="no flag: item sum", ja="チェックなし：項目の合計"),
             RULE_HALVE: plotting.label(lang, en="flag 3: halved", ja="離脱：半分"),
             RULE_ZERO: plotting.label(lang, en="flag 1 or 2: zero", ja="倫理上の問題：0点")}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    sns.scatterplot(data=check.assign(rule=check["rule"].map(names)).astype({"item_sum": float, "score": float}),
                    x="item_sum", y="score", hue="rule", style="rule", s=14, alpha=0.6, linewidth=0, ax=ax)
    ax.set_xlabel(plotting.label(lang, en="sum of the 20 item scores", ja="20項目の合計"))
    ax.set_ylabel(plotting.label(lang, en="released total score", ja="公開された総合得点"))
    ax.legend(title="")
    return fig


def centre_verdict(shift: float) -> str:
    """Whether a shift of the corpus mean by *shift* points matters for the centre (1 point or more)."""
    return "hardly for the centre" if shift < 1 else "and visibly for the centre"


def effect_facts(effect: pd.DataFrame) -> dict[str, object]:
    """Points the rules remove and how much of the shift of the mean comes from halving.

    *effect* is `stats.screening_effect`.
    """
    eff = effect.reindex([RULE_HALVE, RULE_ZERO, "all dialogues"])
    total = eff.loc["all dialogues"]
    shift = -total["effect_on_corpus_mean"]
    halved = eff["effect_on_corpus_mean"].get(RULE_HALVE, 0)
    return {"sc_eff_points": float(total["points_removed"]), "sc_eff_mean_items": float(total["mean_item_sum"]),
            "sc_eff_mean_released": float(total["mean_released"]), "sc_eff_shift": float(shift),
            "sc_eff_centre": centre_verdict(shift),
            "sc_eff_halved_share": (float(100 * halved / total["effect_on_corpus_mean"])
                                    if total["effect_on_corpus_mean"] else 0.0)}


# --- Table 2: the 20 items --------------------------------------------------------------------

def item_table(dist: pd.DataFrame) -> pd.DataFrame:
    """`stats.feedback_items` with each item's mean rating and the percent rated 5 and rated 0-1
    (*dist* from `stats.item_distributions`)."""
    items = stats.feedback_items()
    rated = dist[[0, 1, 2, 3, 4, 5]]
    items["mean"] = (rated * np.arange(6)).sum(axis=1) / rated.sum(axis=1)
    items["% rated 5"] = 100 * rated[5] / rated.sum(axis=1)
    items["% rated 0-1"] = 100 * (rated[0] + rated[1]) / rated.sum(axis=1)
    return items


def item_facts(items: pd.DataFrame, dist: pd.DataFrame) -> dict[str, object]:
    """Lowest and highest item, items most often rated 3, group means (*items* with a ``mean`` column,
    *dist* from `stats.item_distributions`)."""
    rated = dist[[0, 1, 2, 3, 4, 5]]
    low, high = items["mean"].idxmin(), items["mean"].idxmax()
    by_group = items.groupby("category", sort=False)["mean"].mean()
    return {"sc_item_low": f"{low} ({items.loc[low, 'item_en'].lower()}, mean {items['mean'].min():.2f})",
            "sc_item_high": f"{high} ({items.loc[high, 'item_en'].lower()}, mean {items['mean'].max():.2f})",
            "sc_item_mode3": int((rated.idxmax(axis=1) == 3).sum()),
            "sc_item_missing": int(dist["missing"].sum()),
            "sc_item_groups": "; ".join(f"{k.lower()}: mean {v:.2f}" for k, v in by_group.items())}


def item_title(code: str, lang: str = "en") -> str:
    """A panel title: code and item name wrapped to two lines, cut with "…" if longer."""
    lines = textwrap.wrap(f"{code} {variables.label('item', code, lang)}", 13 if lang == "ja" else 26)
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def items_figure(items: pd.DataFrame, dist: pd.DataFrame, lang: str = "en"):
    """Twenty bar charts, percent of dialogues per rating 0-5; blue overall impression, orange skills."""
    rated = dist[[0, 1, 2, 3, 4, 5]]
    fig, axes = plt.subplots(4, 5, figsize=(11, 9), sharex=True, sharey=True)
    share = rated.div(rated.sum(axis=1), axis=0) * 100
    for ax, code in zip(axes.flat, share.index):
        ax.bar(range(6), share.loc[code], color="C0" if items.loc[code, "category"].startswith("Overall") else "C1")
        ax.set_title(item_title(code, lang), fontsize=7.5)
        ax.set_xticks(range(6))
    for ax in axes[:, 0]:
        ax.set_ylabel(plotting.label(lang, en="% of dialogues", ja="対話の割合（%）"), fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel(plotting.label(lang, en="rating (0-5)", ja="評価（0〜5）"), fontsize=8)
    fig.tight_layout()
    return fig


# --- Figure 12 and the splits -----------------------------------------------------------------

def example_text(found: str | None, same: int) -> str:
    """The sentence on the paper's example dialogue: found (with how many numbers agree) or not."""
    if found:
        return (f"It is dialogue {found}: {same} of the 21 numbers (20 items and the total) are the same in "
                "the paper and the release.")
    return "The example is not in this data (a sample keeps it only by chance)."


def example_facts(example: pd.DataFrame) -> dict[str, object]:
    """The example sentence for *example* from `ledger.figure12_feedback`."""
    same = int((example["paper"] == example["release"]).fillna(False).sum())
    return {"sc_ex_text": example_text(example.attrs["dialogue_id"], same)}


SPLIT_PAPER_NAMES = {"test": "test", "low": "kokoro_low", "high": "kokoro_high", "full": "kokoro_full"}


def split_table(sizes: dict):
    """The response-generation splits (*sizes* from `splits.split_sizes`) beside the paper's, as a Styler."""
    pub = published.value("response_generation_splits")
    table = pd.DataFrame([
        {"split": name, "rule": pub[SPLIT_PAPER_NAMES[name]]["rule"],
         "dialogues (paper)": pub[SPLIT_PAPER_NAMES[name]].get("dialogues"), "dialogues (ours)": v["dialogues"],
         "utterances (paper)": pub[SPLIT_PAPER_NAMES[name]].get("utterances"), "utterances (ours)": v["utterances"]}
        for name, v in sizes.items()])
    return table.style.format("{:,.0f}", subset=[c for c in table.columns if "(" in c], na_rep="—")


def split_facts(sizes: dict) -> dict[str, object]:
    """Dialogues per split."""
    return {f"sc_split_{name}": v["dialogues"] for name, v in sizes.items()}
