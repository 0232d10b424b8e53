"""Every dialogue split of paper section 5.1.1, in one place.

Response generation: test = total score 99-100; the training subsets ``low`` (0-69), ``high``
(70-98) and ``full`` (0-98) are cut 90/10 into train and validation. Score prediction: 8:1:1
with a fixed test tenth and five train/validation seeds. Also the turns the response test
predicts and the guard that keeps test dialogues out of any training data.

Not the training examples built from a split (:mod:`kokoro_nb.train.sft`) nor the baselines.

>>> s = score_split([str(i) for i in range(100)], seed=0)
>>> {k: len(v) for k, v in s.items()}
{'train': 80, 'validation': 10, 'test': 10}
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb import config
from kokoro_nb.data.corpus import Corpus
from kokoro_nb.errors import DataError

# Paper section 5.1.1: test = score 99-100; the training subsets are defined on the rest.
SPLIT_RULES = {
    "test": (99, 100),
    "low": (0, 69),
    "high": (70, 98),
    "full": (0, 98),
}
SUBSETS = ("low", "high", "full")
VALIDATION_FRACTION = 0.1


def _id_order(s: str) -> tuple:
    return (len(s), s)


# --------------------------------------------------------------------------- response generation

def response_splits(dialogues: pd.DataFrame) -> dict[str, pd.Index]:
    """Return the dialogue ids of the response-generation splits (test, low, high, full)."""
    s = dialogues["score"]
    return {name: pd.Index(dialogues.loc[s.between(lo, hi).fillna(False), "dialogue_id"].astype(str))
            for name, (lo, hi) in SPLIT_RULES.items()}


def split_sizes(corpus: Corpus) -> dict:
    """Return {split: {dialogues, utterances}} for the response-generation splits."""
    per_dialogue = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))["n_utterances"]
    return {name: {"dialogues": len(ids), "utterances": int(per_dialogue.loc[ids].sum())}
            for name, ids in response_splits(corpus.dialogues).items()}


def train_validation_split(dialogue_ids: Iterable, seed: int = config.SEED,
                           validation_fraction: float = VALIDATION_FRACTION) -> dict[str, list[str]]:
    """Split dialogue ids into train and validation (paper: 90/10), independent of input order.

    >>> s = train_validation_split([str(i) for i in range(20)], seed=0)
    >>> len(s["train"]), len(s["validation"])
    (18, 2)
    """
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {validation_fraction}",
                        field="validation_fraction")
    ids = sorted({str(i) for i in dialogue_ids}, key=_id_order)
    n_val = max(1, round(len(ids) * validation_fraction)) if len(ids) > 1 else 0
    order = np.random.default_rng(seed).permutation(len(ids))
    return {"train": sorted((ids[i] for i in order[n_val:]), key=_id_order),
            "validation": sorted((ids[i] for i in order[:n_val]), key=_id_order)}


def response_split_ids(corpus: Corpus, subset: str = "full", seed: int = config.SEED,
                       validation_fraction: float = VALIDATION_FRACTION) -> dict[str, list[str]]:
    """Return train / validation / test dialogue ids for one training subset (paper 5.1.1)."""
    if subset not in SUBSETS:
        raise DataError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}", field="subset")
    splits = response_splits(corpus.dialogues)
    out = train_validation_split(splits[subset], seed, validation_fraction)
    out["test"] = [str(i) for i in splits["test"]]
    return out


def response_test_ids(corpus: Corpus, min_score: int = 99, max_score: int = 100) -> list[str]:
    """Return the ids of the response-generation test dialogues (score 99-100, paper 5.1.1).

    Other bounds are for smoke runs on synthetic data, which rarely scores 99.
    """
    s = corpus.dialogues["score"]
    keep = s.between(min_score, max_score).fillna(False).to_numpy(bool)
    return corpus.dialogues.loc[keep, "dialogue_id"].astype(str).tolist()


def response_turns(corpus: Corpus, dialogue_ids: Iterable | None = None) -> pd.DataFrame:
    """Return the counselor turns to predict, with their context.

    Columns: dialogue_id, turn, reference, context (the turn just before), previous_counselor
    (the last earlier counselor turn, "" if none). Turn 0 is never a target.
    """
    tu = corpus.turns()
    if dialogue_ids is not None:
        tu = tu[tu["dialogue_id"].astype(str).isin({str(i) for i in dialogue_ids})]
    tu = tu.sort_values(["dialogue_id", "turn"], kind="stable")
    did = tu["dialogue_id"].astype(str)
    text = tu["text"].astype(str)
    is_c = tu["role"].astype(str) == "counselor"
    context = text.groupby(did, sort=False).shift(1)
    prev_c = text.where(is_c).groupby(did, sort=False).ffill().groupby(did, sort=False).shift(1)
    keep = is_c & context.notna()
    return pd.DataFrame({"dialogue_id": did[keep].to_numpy(), "turn": tu["turn"][keep].to_numpy(),
                         "reference": text[keep].to_numpy(), "context": context[keep].to_numpy(),
                         "previous_counselor": prev_c[keep].fillna("").to_numpy()})


# --------------------------------------------------------------------------- score prediction

def score_split(dialogue_ids: Iterable, seed: int, test_seed: int = config.SEED) -> dict[str, list[str]]:
    """Split dialogue ids 8:1:1; the test tenth is fixed by *test_seed*, train/validation by *seed*.

    The ids are sorted first, so the split does not depend on the order they come in.
    """
    ids = sorted({str(i) for i in dialogue_ids}, key=_id_order)
    n = len(ids)
    if n < 10:
        raise DataError(f"need at least 10 dialogues for an 8:1:1 split, got {n}")
    n_test = n_val = round(n / 10)
    order = np.random.default_rng(test_seed).permutation(n)
    test = [ids[i] for i in order[:n_test]]
    rest = [ids[i] for i in order[n_test:]]
    order = np.random.default_rng(seed).permutation(len(rest))
    return {"train": [rest[i] for i in order[n_val:]],
            "validation": [rest[i] for i in order[:n_val]],
            "test": test}


# --------------------------------------------------------------------------- shared

def check_disjoint(train: Iterable, test: Iterable, what: str = "training pool") -> None:
    """Raise DataError when a test dialogue is also in *train* (a guard against leakage)."""
    both = sorted({str(i) for i in train} & {str(i) for i in test}, key=_id_order)
    if both:
        raise DataError(f"{len(both)} test dialogue(s) also in the {what} (first: {', '.join(both[:3])}); "
                        "train and test must not overlap", field="dialogue_id")


def sample_ids(ids: Sequence, n: int | None, seed: int = config.SEED) -> list[str]:
    """Return *n* ids drawn without replacement (all of them, sorted, when n is None or larger)."""
    ids = sorted(str(i) for i in ids)
    if n is None or n >= len(ids):
        return ids
    pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]
