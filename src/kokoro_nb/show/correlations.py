"""Chapter 04 (correlations): Figure 4 with its intervals, Figure 11, the variance split and
the regression, each number and verdict sentence the prose quotes."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.describe import inference, ledger, stats, variables
from kokoro_nb.show import plotting

# Cluster intervals this much wider than dialogue intervals (min over features) count as "wider".
WIDER_THRESHOLD = 1.2
CLUSTER_PLURAL = {"client": "clients", "counselor": "counselors", "dialogue": "dialogues"}
CLUSTER_JA = {"client": "クライアント", "counselor": "カウンセラー", "dialogue": "対話"}
VC_KEYS = (("client-role rater", "rater"), ("counselor", "counselor"), ("residual", "residual"))


def with_paper(by_unit: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """Return the bootstrap table with the paper's ρ (``paper``) and display labels (``label``)."""
    pub = published.value("figure4_spearman_feature_vs_score")
    return by_unit.assign(paper=[pub[ledger.FIGURE4_KEYS[f]] for f in by_unit.index],
                          label=[variables.label("feature", f, lang) for f in by_unit.index])


def width_ratio(by_unit: pd.DataFrame, by_dialogue: pd.DataFrame) -> pd.Series:
    """Width of each cluster-bootstrap interval over that of the dialogue-bootstrap interval."""
    return (by_unit["hi"] - by_unit["lo"]) / (by_dialogue["hi"] - by_dialogue["lo"])


def width_verdict(ratio_min: float, ratio_max: float, cluster: str) -> str:
    """The sentence on how much wider the cluster intervals are than the dialogue intervals."""
    if ratio_min > WIDER_THRESHOLD:
        return (f"wider than the dialogue intervals, by a factor of {ratio_min:.1f} to {ratio_max:.1f}: sessions of "
                f"one {cluster} are far from independent draws, and an interval that ignores this claims a precision "
                "the data do not have")
    return (f"{ratio_min:.1f} to {ratio_max:.1f} times as wide as the dialogue intervals: in this sample few "
            f"{cluster}s have more than a session or two, so resampling them changes little (on the full release "
            "the client intervals are up to about four times wider)")


def crossing_verdict(boot: pd.DataFrame) -> str:
    """Name the features whose interval (``lo``, ``hi``) includes zero, or say none does."""
    crossing = [variables.label("feature", f, "en").lower() for f in boot.index
                if boot.loc[f, "lo"] <= 0 <= boot.loc[f, "hi"]]
    if not crossing:
        return "none includes zero"
    return "the interval of the " + " and of the ".join(crossing) + " includes zero"


def feature_facts(by_unit: pd.DataFrame, by_dialogue: pd.DataFrame, cluster: str, n_resamples: int) -> dict:
    """Glue keys of the Figure 4 paragraph."""
    boot, ratio = with_paper(by_unit), width_ratio(by_unit, by_dialogue)
    out = {}
    for f in boot.index:
        out |= {f"co_rho_{f}": float(boot.loc[f, "rho"]), f"co_lo_{f}": float(boot.loc[f, "lo"]),
                f"co_hi_{f}": float(boot.loc[f, "hi"]), f"co_dlo_{f}": float(by_dialogue.loc[f, "lo"]),
                f"co_dhi_{f}": float(by_dialogue.loc[f, "hi"])}
    return out | {
        "co_n_resamples": n_resamples, "co_cluster": cluster, "co_clusters": CLUSTER_PLURAL[cluster],
        "co_n_clusters": int(by_unit["clusters"].max()),
        "co_ratio_min": float(ratio.min()), "co_ratio_max": float(ratio.max()),
        "co_same_2dp": int((boot["rho"].round(2) == boot["paper"]).sum()),
        "co_crossing": crossing_verdict(boot),
        "co_width_text": width_verdict(ratio.min(), ratio.max(), cluster)}


def figure4(by_unit: pd.DataFrame, by_dialogue: pd.DataFrame, cluster: str = "client", lang: str = "en"):
    """Figure 4: ρ of each feature with both bootstrap intervals and the paper's value."""
    boot = with_paper(by_unit, lang)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    y = np.arange(len(boot))
    ax.errorbar(boot["rho"], y - 0.12, xerr=[boot["rho"] - boot["lo"], boot["hi"] - boot["rho"]], fmt="o",
                capsize=4, label=plotting.label(lang, en=f"95 % interval, {cluster}s resampled",
                                                ja=f"95%区間（{CLUSTER_JA[cluster]}単位）"))
    ax.errorbar(by_dialogue["rho"], y + 0.12, xerr=[by_dialogue["rho"] - by_dialogue["lo"],
                by_dialogue["hi"] - by_dialogue["rho"]], fmt="s", markersize=3, capsize=3, color="grey",
                label=plotting.label(lang, en="95 % interval, dialogues resampled", ja="95%区間（対話単位）"))
    ax.scatter(boot["paper"], y, marker="|", s=250, color="black", zorder=3,
               label=plotting.label(lang, en="paper", ja="論文の値"))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(list(y), boot["label"])
    ax.set_xlabel(plotting.label(lang, en="Spearman's ρ with the total score",
                                 ja="総合得点とのスピアマン順位相関 ρ"))
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def figure4_table(by_unit: pd.DataFrame, by_dialogue: pd.DataFrame, cluster: str = "client", lang: str = "en"):
    """The numbers of Figure 4 as a styled table, with the interval width ratio."""
    boot = with_paper(by_unit, lang)
    table = pd.DataFrame({
        "ρ": boot["rho"].to_numpy(), "paper": boot["paper"].to_numpy(),
        f"95 % CI ({cluster}s)": [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(boot["lo"], boot["hi"])],
        "95 % CI (dialogues)": [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(by_dialogue["lo"], by_dialogue["hi"])],
        "width ratio": width_ratio(by_unit, by_dialogue).to_numpy(),
    }, index=boot["label"].rename(""))
    return table.style.format({"ρ": "{:.3f}", "paper": "{:.2f}", "width ratio": "{:.1f}×"})


def d1_verdict(top3: list[str], paper_d1: list[str]) -> str:
    """Whether the items closest to D1 are the paper's."""
    return "as the paper says" if set(top3) == set(paper_d1) else f"where the paper names {', '.join(paper_d1)}"


def split_verdict(groups: pd.Series) -> str:
    """What the first cut of the item tree separates (*groups*: item -> group, 1 = largest)."""
    apart = list(groups[groups != 1].index)
    cat = stats.feedback_items()["category"]          # paper Table 2: D1-D12 against D13-D20
    overall, skills = (list(cat.index[cat == c]) for c in cat.unique())
    names = (f"the overall-impression items ({overall[0]}-{overall[-1]}) from the skill items "
             f"({skills[0]}-{skills[-1]})")
    if set(apart) in (set(overall), set(skills)):
        return f"the first cut of the tree separates {names}, as the paper's grouping does"
    return (f"the first cut of the tree does not separate {names}: it sets apart only {', '.join(apart)} "
            f"({'; '.join(variables.label('item', c, 'en').lower() for c in apart)}), and the other items stay together")


def item_facts(corr: pd.DataFrame) -> dict:
    """Glue keys of the Figure 11 paragraph."""
    facts = stats.item_correlation_facts(corr)
    return {"co_share_above": 100 * facts["share_above"], "co_pairs": facts["pairs"],
            "co_min_rho": facts["min"], "co_median_rho": facts["median"], "co_max_rho": facts["max"],
            "co_d1_top": ", ".join(facts["top3"]["D1"]),
            "co_d1_agree": d1_verdict(facts["top3"]["D1"], published.value("figure11_checks.d1_strongest")),
            "co_split_text": split_verdict(stats.item_clusters(corr, k=2))}


def figure11(corr: pd.DataFrame, lang: str = "en"):
    """Figure 11: the item correlation heat map, reordered by average linkage on 1 − ρ."""
    tree = stats.item_linkage(corr)
    low = stats.item_correlation_facts(corr)["min"]
    names = {c: f"{c} {variables.label('item', c, lang)[:10] if lang == 'ja' else variables.label('item', c, lang)}"
             for c in corr.index}
    grid = sns.clustermap(corr.rename(index=names), row_linkage=tree, col_linkage=tree, cmap="rocket_r",
                          vmin=max(0, low - 0.05), vmax=1, annot=True, fmt=".2f",
                          annot_kws={"fontsize": 6}, figsize=(10, 9),
                          cbar_kws={"label": plotting.label(lang, en="Spearman ρ", ja="スピアマン ρ")})
    grid.ax_heatmap.set_xlabel("")
    grid.ax_heatmap.set_ylabel("")
    return grid.figure


def who_verdict(ratio: float) -> str:
    """Whether the rater's variance share exceeds the counselor's (*ratio* = rater / counselor)."""
    return "who rates matters more than who is rated" if ratio > 1 else \
        "who is rated matters at least as much as who rates"


def p_text(p: float) -> str:
    """A p value as printed: scientific below 0.001."""
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def variance_facts(vc: pd.DataFrame, vc_items: pd.DataFrame, lr: dict, dialogues: pd.DataFrame) -> dict:
    """Glue keys of the variance-components section."""
    out = {f"co_vc_{name}_{key}": 100 * float(table.loc[comp, "share"])
           for name, table in (("score", vc), ("items", vc_items)) for comp, key in VC_KEYS}
    share = vc["share"]
    ratio = float(share["client-role rater"] / share["counselor"]) if share["counselor"] > 0 else float("inf")
    return out | {
        "co_n_dialogues": int(vc.attrs["n"]),
        "co_n_levels": int(vc.loc[["client-role rater", "counselor"], "levels"].sum()),
        "co_n_pairs": stats.counselor_client_pairs(dialogues),
        "co_vc_llf": lr["llf_full"], "co_vc_llf0": lr["llf_without_counselor"],
        "co_vc_total": float(vc["variance"].sum()),
        "co_sample_var": float(dialogues["score"].astype(float).var()),
        "co_lr": lr["lr"], "co_lr_p": p_text(lr["p"]),
        "co_vc_ratio": ratio, "co_vc_who": who_verdict(ratio),
        "co_vc_moved": float((vc["share"] - vc_items["share"]).abs().max() * 100)}


def variance_table(vc: pd.DataFrame, vc_items: pd.DataFrame):
    """Both variance decompositions side by side, styled."""
    cols = ("released total", "item sum (before screening)")
    return pd.concat(dict(zip(cols, (vc, vc_items))), axis=1).style.format(
        {(c, "variance"): "{:,.1f}" for c in cols} | {(c, "share"): "{:.1%}" for c in cols}
        | {(c, "levels"): "{:,.0f}" for c in cols})


def regression_facts(coefs: pd.DataFrame, features: pd.DataFrame) -> dict:
    """Glue keys of the regression paragraph."""
    sentences = inference.describe_regression(coefs, stats.feature_score_spearman(features))
    return {"co_reg_r2": 100 * coefs.attrs["r2"], "co_reg_cov": coefs.attrs["cov_type"],
            "co_reg_n": coefs.attrs["n"], "co_reg_strongest": sentences["strongest"],
            "co_reg_messages": sentences["messages"]}
