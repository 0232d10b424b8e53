"""Chapter 01 (corpus overview): its figure and the numbers its prose quotes."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.describe import stats
from kokoro_nb.show import plotting

DURATION_CLIP = 150   # minutes: longer sessions are pooled in the last bin


def session_minutes(dialogues: pd.DataFrame) -> pd.Series:
    """Minutes from the first to the last message of each dialogue."""
    return (dialogues["ended_at"] - dialogues["started_at"]).dt.total_seconds() / 60


def corpus_facts(dialogues: pd.DataFrame, overall: dict, window: dict) -> dict[str, object]:
    """The corpus in numbers: *overall* from `stats.overall_statistics`, *window* from `stats.collection_window`."""
    o, d = overall, dialogues
    return {"ov_dialogues": o["dialogues"], "ov_utterances": o["utterances"]["total"],
            "ov_speakers": o["speakers"]["total"], "ov_counselors": o["speakers"]["counselor"],
            "ov_clients": o["speakers"]["client"],
            "ov_both_roles": len(set(d["counselor_id"]) & set(d["client_id"])),
            "ov_pairs": stats.counselor_client_pairs(d),
            "ov_pairs_paper": published.value("table3_overall_statistics.distinct_counselor_client_pairs"),
            "ov_first": window["first"], "ov_last": window["last"],
            "ov_avg_utt": o["avg_utterances_per_dialogue"]["total"],
            "ov_chars_counselor": o["avg_chars_per_utterance"]["counselor"],
            "ov_chars_client": o["avg_chars_per_utterance"]["client"]}


def rule_facts(dialogues: pd.DataFrame, violations: dict, rules: dict) -> dict[str, object]:
    """The quality rules of section 4: *violations* from `stats.quality_rules`, *rules* the paper's thresholds."""
    minutes = session_minutes(dialogues)
    return {"ov_rule_violations": sum(violations.values()),
            "ov_rule_min_utt": int(rules["min_utterances"]),
            "ov_rule_min_minutes": int(rules["min_duration_minutes"]),
            "ov_min_utt": int(dialogues["n_utterances"].min()),
            "ov_min_minutes": float(minutes.min()), "ov_median_minutes": float(minutes.median())}


def excerpt_facts(excerpt: pd.DataFrame) -> dict[str, object]:
    """The id of the quoted dialogue (`translation.bilingual_excerpt` keeps it in ``attrs``)."""
    return {"ov_excerpt_id": excerpt.attrs["dialogue_id"]}


def duration_figure(dialogues: pd.DataFrame, min_minutes: float, lang: str = "en"):
    """Histogram of session length in minutes, with a dashed line at the paper's minimum duration."""
    fig, ax = plt.subplots()
    sns.histplot(session_minutes(dialogues).clip(upper=DURATION_CLIP), bins=60, ax=ax)
    ax.axvline(min_minutes, color="black", linestyle="--")
    ax.set_xlabel(plotting.label(lang, en="session length (minutes, first to last message; 150+ pooled)",
                                 ja="対話時間（分、最初から最後の発話まで。150分以上はまとめて表示）"))
    ax.set_ylabel(plotting.label(lang, en="dialogues", ja="対話数"))
    return fig
