"""The per-dialogue variables of section 4: the five Figure-4 features, the item sum, and labels.

What the statistics (:mod:`.stats`) and their inference (:mod:`.inference`) are computed on,
with the English and Japanese names the chapters print. No statistic is computed here.

>>> label("feature", "client_utterances", "ja")
'クライアントの発話数'
"""
from __future__ import annotations

import pandas as pd

from kokoro_nb.data.corpus import Corpus
from kokoro_nb.schema import ITEM_CODES, ITEMS, TOPICS

FEATURES = {
    "client_total_chars": "Client total characters",
    "counselor_total_chars": "Counselor total characters",
    "client_utterances": "Client utterance count",
    "counselor_utterances": "Counselor utterance count",
    "counselor_mean_response_seconds": "Counselor mean response time",
}
FEATURES_JA = {
    "client_total_chars": "クライアントの総文字数",
    "counselor_total_chars": "カウンセラーの総文字数",
    "client_utterances": "クライアントの発話数",
    "counselor_utterances": "カウンセラーの発話数",
    "counselor_mean_response_seconds": "カウンセラーの平均応答時間",
}



def label(kind: str, key: str, lang: str = "en") -> str:
    """Return the display label of a topic, item or feature in English or Japanese.

    >>> label("item", "D1", "ja"), label("topic", "Others", "ja"), label("feature", "client_utterances")
    ('聴いてもらえた、わかってもらえたと感じた', 'その他', 'Client utterance count')
    """
    if lang not in ("en", "ja"):
        raise ValueError(f"lang must be 'en' or 'ja', got {lang!r}")
    ja = lang == "ja"
    if kind == "topic":
        return TOPICS.get(key, key) if ja else key
    if kind == "item":
        it = {i.code: i for i in ITEMS}[key]
        return it.key_jp if ja else it.label_en
    if kind == "feature":
        return (FEATURES_JA if ja else FEATURES)[key]
    raise ValueError(f"kind must be topic, item or feature, got {kind!r}")


def item_sum(dialogues: pd.DataFrame) -> pd.Series:
    """Return the sum of the 20 item scores per dialogue (the total before any screening rule)."""
    return dialogues[list(ITEM_CODES)].astype("Int64").sum(axis=1, min_count=len(ITEM_CODES))


def dialogue_features(corpus: Corpus) -> pd.DataFrame:
    """Return the five per-dialogue features of paper Figure 4 with the total score.

    The counselor's mean response time is, per dialogue, the mean number of seconds from a client
    message to the counselor message that directly follows it.
    """
    u = corpus.utterances
    did = u["dialogue_id"].astype(str)
    role = u["role"].astype(str)
    counts = pd.crosstab(did, role)
    chars = u.pivot_table(index=did, columns=role, values="n_chars", aggfunc="sum", observed=False)
    prev_role, prev_time = role.shift(), u["time"].shift()
    reply = (role == "counselor") & (prev_role == "client") & (did == did.shift())
    gap = (u["time"] - prev_time).dt.total_seconds()[reply]
    rt = gap.groupby(did[reply]).mean()
    feats = pd.DataFrame({
        "client_total_chars": chars.get("client"),
        "counselor_total_chars": chars.get("counselor"),
        "client_utterances": counts.get("client"),
        "counselor_utterances": counts.get("counselor"),
        "counselor_mean_response_seconds": rt,
    })
    d = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))
    feats = feats.reindex(d.index).fillna({c: 0 for c in list(FEATURES)[:4]})
    feats["score"] = d["score"].astype(float)
    feats.index.name = "dialogue_id"
    return feats
