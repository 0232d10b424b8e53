"""Chapter 07 (the English translation): coverage, lengths by role and by message length, the
Figure 4 correlations in English words, with the tables and sentences the prose quotes."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kokoro_nb.data import translation
from kokoro_nb.show import plotting

# Largest |ρ(EN words) − ρ(JA characters)| still called "leaves the correlations as they are".
SAME_THRESHOLD = 0.02
CORR_COLUMNS = ("rho_ja_chars", "rho_en_words", "difference", "diff_ci_low", "diff_ci_high", "rho_ja_vs_en_length")
EXCERPT_PLACEHOLDER = "— (empty in the release)"
N_EMPTY_SHOWN = 8


def coverage_facts(corpus, cov: pd.DataFrame) -> dict:
    """Glue keys of the coverage paragraph (*cov*: :func:`translation.coverage`)."""
    r = corpus.translation
    return {"tr_dialogues": r.dialogues, "tr_translated": r.translated, "tr_missing": len(r.missing),
            "tr_skipped": len(r.skipped), "tr_empty": len(r.empty),
            "tr_messages_en": int(cov.loc["messages with English", "count"]),
            "tr_messages": int(cov.loc["messages in KokoroChat", "count"]),
            "tr_share_en": 100 * float(cov.loc["messages with English", "count"] / max(1, len(corpus.utterances)))}


def missing_table(corpus):
    """The dialogues without English, styled."""
    return (translation.missing_dialogues(corpus).style.hide(axis="index")
            .format({"n_utterances": "{:,}", "score": "{:,}"})
            .set_caption("KokoroChat dialogues without an English translation"))


def empty_facts(empty: pd.DataFrame) -> dict:
    """Glue keys of the empty-translation paragraph (*empty*: :func:`translation.empty_translations`)."""
    return {"tr_empty_median_chars": float(empty["n_chars"].median()) if len(empty) else 0.0,
            "tr_empty_client": int((empty["role"].astype(str) == "client").sum())}


def empty_table(empty: pd.DataFrame, n: int = N_EMPTY_SHOWN):
    """The first *n* empty translations beside their Japanese, styled."""
    shown = empty.head(n).assign(english=EXCERPT_PLACEHOLDER)
    return (shown[["dialogue_id", "position", "role", "text", "english"]]
            .rename(columns={"text": "Japanese (original)", "english": "English"})
            .style.hide(axis="index").set_caption("Messages with an empty English translation"))


def ratios_table(ratios: pd.DataFrame):
    """:func:`translation.length_ratios` with readable headers, styled."""
    return (ratios.rename(columns={"messages": "messages", "ja_chars_per_message": "JA characters / message",
                                   "en_words_per_message": "EN words / message",
                                   "en_chars_per_message": "EN characters / message",
                                   "en_words_per_ja_char": "EN words per JA character",
                                   "en_chars_per_ja_char": "EN characters per JA character"})
            .style.format("{:,.2f}").format("{:,}", subset=["messages"])
            .set_caption("Length of the Japanese and the English, by role"))


def ratio_facts(ratios: pd.DataFrame) -> dict:
    """Glue keys of the length paragraph, per role."""
    out = {}
    for role in ratios.index:
        out |= {f"tr_ratio_{role}": float(ratios.loc[role, "en_words_per_ja_char"]),
                f"tr_ja_{role}": float(ratios.loc[role, "ja_chars_per_message"]),
                f"tr_en_{role}": float(ratios.loc[role, "en_words_per_message"])}
    return out


def by_length_facts(by_len: pd.DataFrame, names=translation.LENGTH_BIN_NAMES) -> dict:
    """The ratio of the shortest and of the longest bin (mean over roles)."""
    return {"tr_short_ratio": float(by_len[by_len["ja_len"] == names[0]]["ratio"].mean()),
            "tr_long_ratio": float(by_len[by_len["ja_len"] == names[-1]]["ratio"].mean())}


def figure_ratio(by_len: pd.DataFrame, lang: str = "en"):
    """English words per Japanese character by length bin and role (bars)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(data=by_len, x="ja_len", y="ratio", hue="role", ax=ax)
    ax.set_xlabel(plotting.label(lang, en="length of the Japanese message (characters)",
                                 ja="日本語の発話の長さ（文字）"))
    ax.set_ylabel(plotting.label(lang, en="English words per Japanese character",
                                 ja="日本語1文字あたりの英単語数"))
    ax.legend(title=plotting.label(lang, en="role", ja="話者"))
    return fig


def corr_table(corr: pd.DataFrame):
    """:func:`translation.length_score_correlations` with readable headers, styled."""
    return (corr.drop(columns=["dialogues", "clusters"])
            .rename(columns={"rho_ja_chars": "ρ, JA characters", "rho_en_words": "ρ, EN words",
                             "difference": "difference (EN − JA)", "diff_ci_low": "95 % CI low",
                             "diff_ci_high": "95 % CI high", "rho_ja_vs_en_length": "ρ between the two lengths"})
            .style.format("{:.3f}").set_caption("Spearman correlation of each role's total length with the score"))


def verdict(corr: pd.DataFrame) -> str:
    """Whether counting in English words changes the length–score correlations.

    Names the roles whose 95 % interval of the difference contains zero, and calls the change
    negligible when the largest |difference| is below :data:`SAME_THRESHOLD`.
    """
    holds = [role for role in corr.index if corr.loc[role, "diff_ci_low"] <= 0 <= corr.loc[role, "diff_ci_high"]]
    biggest = float(corr["difference"].abs().max())
    rest = "" if len(holds) == len(corr) else f"; for {', '.join(sorted(set(corr.index) - set(holds)))} it does not"
    return (f"For {' and '.join(holds) if holds else 'neither role'}, the 95 % interval of the "
            f"difference contains zero{rest}, and the largest difference is {biggest:.3f}: "
            + ("counting in English words leaves the correlations of Figure 4 as they are."
               if biggest < SAME_THRESHOLD else "the unit of length moves the correlation noticeably."))


def corr_facts(corr: pd.DataFrame) -> dict:
    """Glue keys of the correlation paragraph, with the verdict as Markdown (``{glue:md}``)."""
    from IPython.display import (
        Markdown,  # optional (book/Jupyter) dependency, present where chapters run
    )
    out = {f"tr_{role}_{col}": float(corr.loc[role, col]) for role in corr.index for col in CORR_COLUMNS}
    return out | {"tr_corr_n": int(corr["dialogues"].iloc[0]), "tr_corr_clients": int(corr["clusters"].iloc[0]),
                  "tr_verdict": Markdown(verdict(corr))}
