"""The dataset comparison of paper Table 1: a corpus's profile, its label shares, an excerpt.

Works on any :class:`Corpus` (KokoroChat or Psy-Insight); the published Table 1 rows and
their comparison with these profiles are in :mod:`.ledger`.
"""
from __future__ import annotations

import pandas as pd

from kokoro_nb.data.corpus import Corpus
from kokoro_nb.describe.stats import _div
from kokoro_nb.schema import ITEM_CODES

LANGUAGE_NAMES = {"ja": "Japanese", "en": "English", "zh": "Chinese"}


def corpus_profile(corpus: Corpus, top: int = 3) -> dict:
    """Return the Table 1 columns computed from a corpus, plus characters per utterance and top topics.

    Topic shares are over dialogues with a topic label.
    """
    d, u = corpus.dialogues, corpus.utterances
    items_present = [c for c in ITEM_CODES if d[c].notna().any()]
    langs = sorted(d["language"].dropna().unique())
    shares = d["topic"].dropna().value_counts(normalize=True).mul(100)
    shares = shares.sort_index().sort_values(ascending=False, kind="stable")
    return {"dialogues": len(d), "language": ", ".join(LANGUAGE_NAMES.get(x, x) for x in langs),
            "has_score": bool(d["score"].notna().any()), "score_items": len(items_present) or None,
            "avg_utterances": _div(len(u), len(d)), "avg_chars_per_utterance": _div(u["n_chars"].sum(), len(u)),
            "top_topics": [(str(t), float(p)) for t, p in shares.head(top).items()]}


def label_distribution(corpus: Corpus, column: str, by: str = "language", top: int | None = None) -> pd.DataFrame:
    """Return counts and shares of a label column ('|'-joined multi-labels exploded), per *by* group.

    *column* may be a dialogue column (``psychotherapy``, ``topic``) or an utterance column
    (``strategy``, ``emotion``).
    """
    d = corpus.dialogues
    if column in ("strategy", "emotion"):
        src = corpus.utterances[["dialogue_id", column]].merge(d[["dialogue_id", by]], on="dialogue_id")
    else:
        src = d[["dialogue_id", column, by]]
    lab = src[column].dropna().astype(str).str.split("|")
    df = src.loc[lab.index, [by]].assign(label=lab).explode("label")
    counts = df.groupby([by, "label"]).size().rename("count").reset_index()
    counts["percent"] = 100 * counts["count"] / counts.groupby(by)["count"].transform("sum")
    counts = counts.sort_values([by, "count", "label"], ascending=[True, False, True])
    if top is not None:
        counts = counts.groupby(by).head(top)
    return counts.reset_index(drop=True)


def example_excerpt(corpus: Corpus, n_messages: int = 6, topic: str | None = "Career and Educational Issues",
                    seed: int = 42, max_chars: int = 120) -> pd.DataFrame:
    """Return the opening messages of one dialogue (chosen with *seed*), texts cut to *max_chars*."""
    d = corpus.dialogues
    pool = d[d["topic"] == topic] if topic is not None and (d["topic"] == topic).any() else d
    did = str(pool["dialogue_id"].sample(n=1, random_state=seed).iloc[0])
    u = corpus.utterances
    u = u[u["dialogue_id"] == did].head(n_messages)
    text = u["text"].astype(str)
    text = text.where(text.str.len() <= max_chars, text.str.slice(0, max_chars) + "…")
    return pd.DataFrame({"dialogue_id": did, "role": u["role"].astype(str).to_numpy(),
                         "time": u["time"].dt.strftime("%H:%M:%S").to_numpy(), "text": text.to_numpy()})
