"""Chapter 00 (quick start): the numbers its prose quotes."""
from __future__ import annotations

import pandas as pd


def load_facts(corpus, load_seconds: float) -> dict[str, object]:
    """Size of the loaded corpus and how long loading took."""
    return {"qs_dialogues": len(corpus.dialogues), "qs_messages": len(corpus.utterances),
            "qs_load_seconds": round(load_seconds, 2)}


def turn_facts(dialogues: pd.DataFrame, turns: pd.DataFrame) -> dict[str, object]:
    """Mean messages and mean turns (merged messages of one speaker) per dialogue."""
    return {"qs_turns_per_dialogue": round(float(turns.groupby("dialogue_id").size().mean()), 1),
            "qs_messages_per_dialogue": round(float(dialogues["n_utterances"].mean()), 1)}


def length_facts(dialogues: pd.DataFrame) -> dict[str, object]:
    """Shortest dialogue and the quartiles of messages per dialogue."""
    lengths = dialogues["n_utterances"]
    return {"qs_min_messages": int(lengths.min()), "qs_q25": int(lengths.quantile(0.25)),
            "qs_q75": int(lengths.quantile(0.75))}
