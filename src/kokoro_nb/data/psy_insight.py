"""Psy-Insight (Chinese and English counseling sessions) as a :class:`~kokoro_nb.data.corpus.Corpus`.

Not where its files are (:func:`kokoro_nb.data.sources.resolve_psy_insight`), not KokoroChat.
Supporter = counselor, seeker = client; strategy (supporter) and emotion (seeker) labels are
kept per message, joined by ``|``.
"""
from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

from kokoro_nb.data.corpus import Corpus, LoadReport, typed_columns
from kokoro_nb.data.jsonfile import load_json
from kokoro_nb.data.messages import get, message
from kokoro_nb.data.sources import PSY_INSIGHT_FILES, resolve_psy_insight
from kokoro_nb.errors import DataError
from kokoro_nb.schema import DIALOGUE_COLUMNS, FLAG_KEYS, UTTERANCE_COLUMNS

SPEAKERS = {"Supporter": "counselor", "Seeker": "client"}


def labels(turn: dict, key: str, fname: str, where: str) -> str | None:
    """Return the labels of *turn* under *key* joined by ``|`` (None when absent).

    >>> labels({"strategy": ["Question", "Restatement"]}, "strategy", "f.json", "[0]")
    'Question|Restatement'
    """
    v = turn.get(key)
    if v is None:
        return None
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DataError(f"expected a list of labels, found {v!r}", file=fname, field=f"{where}.{key}")
    return "|".join(v)


def load_psy_insight(path: str | os.PathLike | None = None, *, languages: Iterable[str] = ("en", "zh"),
                     lenient: bool = False, download: bool = True) -> Corpus:
    """Load Psy-Insight (supporter = counselor, seeker = client) into a :class:`Corpus`.

    *path* (the repository or its ``data/`` folder) > ``$PSY_INSIGHT_DIR`` > the verified
    download of the pinned commit's two data files (not with *download* False). Sessions are the
    dialogues; ``language`` is ``en`` or ``zh``; psychotherapy and topic are kept per dialogue,
    strategy (supporter) and emotion (seeker) labels per message.
    """
    folder = resolve_psy_insight(path, download=download)
    report = LoadReport(source=str(folder))
    drows: list[dict] = []
    urows: list[dict] = []
    for lang in languages:
        f = folder / PSY_INSIGHT_FILES[lang]
        fname = str(f)
        if not f.exists():
            raise DataError("missing file", file=fname)
        sessions = load_json(fname, f.read_bytes())
        if not isinstance(sessions, list):
            raise DataError("expected a list of sessions", file=fname)
        seen: set[str] = set()
        for i, s in enumerate(sessions):
            report.found += 1
            where = f"[{i}]"
            try:
                sid = get(s, "dialog_id", fname, where)
                did = f"{lang}-{sid}"
                if did in seen:
                    raise DataError(f"duplicate dialog_id {sid!r}", file=fname, field=f"{where}.dialog_id")
                turns = get(s, "dialog", fname, where)
                if not isinstance(turns, list) or not turns:
                    raise DataError("expected a non-empty list of turns", file=fname, field=f"{where}.dialog")
                rows = []
                for j, t in enumerate(turns):
                    tw = f"{where}.dialog[{j}]"
                    spk, text = message(t, fname, tw, role_key="speaker", roles=SPEAKERS, text_key="content",
                                        unknown="speaker", expected="Seeker or Supporter", found=repr)
                    rows.append({"dialogue_id": did, "position": j, "role": SPEAKERS[spk], "time": None,
                                 "text": text, "n_chars": len(text),
                                 "strategy": labels(t, "strategy", fname, tw),
                                 "emotion": labels(t, "emotional label", fname, tw)})
            except DataError as exc:
                if not lenient:
                    raise
                report.skipped.append((f"{fname}{where}", str(exc)))
                continue
            seen.add(did)
            report.loaded += 1
            urows.extend(rows)
            drows.append({"dialogue_id": did, "corpus": "psy-insight", "language": lang,
                          "topic": s.get("topic") or None, "psychotherapy": s.get("psychotherapy") or None,
                          "n_utterances": len(rows), "source_file": fname,
                          **{k: None for k in FLAG_KEYS}})
    d = typed_columns(pd.DataFrame(drows), DIALOGUE_COLUMNS)
    u = typed_columns(pd.DataFrame(urows), UTTERANCE_COLUMNS)
    return Corpus("psy-insight", d, u, report)
