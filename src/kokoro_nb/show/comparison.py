"""Chapter 05 (dataset comparison): Table 1 as shown, message and turn units, Psy-Insight's
label distributions and its published topic shares, and the numbers the prose quotes."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.describe import ledger, profiles
from kokoro_nb.show import plotting

TABLE1_COLUMNS = {**ledger.TABLE1_HEADER, "avg_chars_per_utterance": "avg. characters", "top_topics": "top-3 topics",
                  "source": "source"}
YES_NO = {True: "yes", False: "no", None: "—"}
LABEL_KINDS = ("psychotherapy", "strategy", "emotion")
LABEL_TITLES = {"psychotherapy": ("psychotherapy (per session)", "心理療法（対話単位）"),
                "strategy": ("strategy (supporter turns)", "方略（支援者の発話）"),
                "emotion": ("emotion (seeker turns)", "感情（相談者の発話）")}
TOP_LABELS = 8
PSY_LANGUAGES = ("en", "zh")


def psy_status(psy) -> str:
    """Whether Psy-Insight joined this build."""
    return "loaded" if psy is not None else \
        "not available in this build (no copy in PSY_INSIGHT_DIR and the download failed)"


def table1_shown(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 with display headers and yes/no/— for the two flags."""
    shown = t1.rename(columns=TABLE1_COLUMNS)
    for col in ("human-made", "score"):
        shown[col] = shown[col].map(lambda v: YES_NO.get(v, "—") if not pd.isna(v) else "—")
    return shown


def table1_main(t1: pd.DataFrame):
    """The paper's columns of Table 1, styled."""
    main = table1_shown(t1)[["dataset", "human-made", "score", "score items", "language", "dialogues",
                             "avg. utterances", "source"]]
    return main.style.format({"dialogues": "{:,.0f}", "avg. utterances": "{:.1f}", "score items": "{:.0f}"},
                             na_rep="—").hide(axis="index")


def table1_extra(t1: pd.DataFrame):
    """What the paper's table does not show, for the computed rows."""
    shown = table1_shown(t1)
    return shown.loc[shown["source"] == "computed", ["dataset", "avg. characters", "top-3 topics"]].style.format(
        {"avg. characters": "{:.1f}"}, na_rep="—").hide(axis="index")


def language_subset(psy, code: str):
    """The Psy-Insight sessions of one language."""
    return psy.subset(psy.dialogues.loc[psy.dialogues["language"] == code, "dialogue_id"])


def units(corpus, name: str) -> dict:
    """Messages and merged turns (consecutive messages of one speaker) per dialogue."""
    turns = corpus.turns()
    n = len(corpus.dialogues)
    return {"dataset": name, "messages per dialogue": len(corpus.utterances) / n,
            "turns per dialogue": len(turns) / n, "messages per turn": len(corpus.utterances) / len(turns)}


def unit_table(corpus, psy) -> pd.DataFrame:
    """:func:`units` for KokoroChat and, when given, each language of Psy-Insight."""
    rows = [units(corpus, "KokoroChat")]
    if psy is not None:
        rows += [units(language_subset(psy, code), f"Psy-Insight ({code})") for code in PSY_LANGUAGES]
    return pd.DataFrame(rows).set_index("dataset")


def label_figure(psy, lang: str = "en"):
    """Psy-Insight's eight most frequent labels of each kind, by language (a placeholder without it)."""
    if psy is None:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "Psy-Insight not available in this build", ha="center", va="center")
        ax.axis("off")
        return fig
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 11))
    for ax, column in zip(axes, LABEL_KINDS):
        dist = profiles.label_distribution(psy, column)
        keep = dist.groupby("label")["count"].sum().sort_values(ascending=False).index[:TOP_LABELS]
        sns.barplot(data=dist[dist["label"].isin(keep)], y="label", x="percent", hue="language",
                    order=list(keep), ax=ax)
        en, ja = LABEL_TITLES[column]
        ax.set_title(plotting.label(lang, en=en, ja=ja))
        ax.set_xlabel(plotting.label(lang, en="% of labels", ja="ラベルの割合（%）"))
        ax.set_ylabel("")
        ax.legend(title="", loc="lower right")
    fig.tight_layout()
    return fig


def top_strategy(psy) -> str:
    """The most frequent strategy label of each language, with its share."""
    if psy is None:
        return "not available"
    strategies = profiles.label_distribution(psy, "strategy", top=1)
    return ", ".join(f"{r.label} ({r.language}: {r.percent:.0f} %)" for r in strategies.itertuples())


def topic_check(psy) -> pd.DataFrame:
    """Published top-topic shares beside the data's, matched by :func:`ledger.match_topic`, per scope."""
    paper_shares = published.value("psy_insight_published.top_topics_percent")
    if psy is None:
        return pd.Series(paper_shares, name="paper %").to_frame()
    rows = []
    scopes = [("both languages", psy)] + [(f"{code} only", language_subset(psy, code)) for code in PSY_LANGUAGES]
    for scope, sub in scopes:
        # the same shares as the ledger's Psy-Insight rows (ledger._psy_rows)
        shares = dict(profiles.corpus_profile(sub, top=len(sub.dialogues))["top_topics"])
        for name, pct in paper_shares.items():
            match = ledger.match_topic(name, shares)
            rows.append({"topic (paper)": name, "label in the data": match, "scope": scope, "paper %": pct,
                         "data %": shares.get(match)})
    return pd.DataFrame(rows).pivot(index=["topic (paper)", "label in the data", "paper %"],
                                    columns="scope", values="data %")


def facts(t1: pd.DataFrame, units_: pd.DataFrame, psy) -> dict:
    """Every glue key of the chapter's prose."""
    mine = t1[t1["dataset"] == "KokoroChat"].iloc[-1]
    cited = t1[t1["source"].str.startswith("cited")]
    human = cited[cited["human_made"] == True]  # noqa: E712  (None marks unknown)
    return {"dc_psy_status": psy_status(psy),
            "dc_kc_dialogues": int(mine["dialogues"]), "dc_kc_utts": float(mine["avg_utterances"]),
            "dc_kc_chars": float(mine["avg_chars_per_utterance"]),
            "dc_largest_human_other": int(human.loc[human["dataset"] != "KokoroChat", "dialogues"].max()),
            "dc_kc_turns": float(units_.loc["KokoroChat", "turns per dialogue"]),
            "dc_top_strategy": top_strategy(psy),
            "dc_psy_unlabelled": int((~psy.dialogues["topic"].notna()).sum()) if psy is not None else 0,
            "dc_psy_sessions": len(psy.dialogues) if psy is not None else 0}
