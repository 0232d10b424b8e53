"""English beside Japanese: Multilingual KokoroChat (LREC 2026) joined to KokoroChat.

Not where the files are (:func:`kokoro_nb.data.sources.resolve_translation`) and not the Corpus
type: this module works on any corpus and returns a copy (``dataclasses.replace``), so
:mod:`~kokoro_nb.data.corpus` can import it and not the other way round.

The translation ships one file per dialogue, ``English/en<id>.json``, whose messages pair the
Japanese ``origin`` with its English ``content``. :func:`attach_english` reads the files of a
corpus's dialogues, checks that every file aligns message by message with KokoroChat (same
count, same role, ``origin`` equal to the KokoroChat text), and fills the schema's ``text_en`` and
``n_words_en`` columns. Nothing is dropped silently: dialogues without a file and messages with
an empty translation stay ``<NA>`` and are listed in the :class:`TranslationReport`.

>>> import tempfile, pathlib
>>> from kokoro_nb import load_kokorochat
>>> from kokoro_nb.testing import synthetic
>>> base = pathlib.Path(tempfile.mkdtemp())
>>> c = load_kokorochat(synthetic.write_kokorochat(base / "ja", n_dialogues=4), cache=False, progress=False)
>>> c = c.with_english(synthetic.write_translation(base / "en", base / "ja", missing=("2",)))
>>> c.translation.missing
['2']
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from kokoro_nb import config
from kokoro_nb.data.jsonfile import load_json
from kokoro_nb.data.sources import resolve_translation
from kokoro_nb.errors import DataError
from kokoro_nb.schema import ROLES, TRANSLATION_PREFIX

TRANSLATION_ENV = config.TRANSLATION_ENV


@dataclass
class TranslationReport:
    """What joining the translation saw, dialogue by dialogue and message by message."""
    source: str
    dialogues: int = 0                                   # dialogues of the corpus
    translated: int = 0                                  # of which a file aligned and joined
    missing: list[str] = field(default_factory=list)     # dialogue ids with no file
    empty: list[tuple[str, int]] = field(default_factory=list)   # (dialogue id, position)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), lenient only

    def as_dict(self) -> dict:
        """Return the counts and the exact lists (for JSON or a table)."""
        return {"source": self.source, "dialogues": self.dialogues, "translated": self.translated,
                "missing": list(self.missing), "empty": [list(e) for e in self.empty],
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped]}

    def untranslated(self) -> set[str]:
        """Return the ids of dialogues without English: no file, or (lenient) a file that did not align."""
        return set(self.missing) | {_id_from_name(Path(f).name) for f, _ in self.skipped}

    def restrict(self, dialogue_ids: Iterable[str]) -> "TranslationReport":
        """Return the report for a subset of the dialogues."""
        keep = set(map(str, dialogue_ids))
        skipped_ids = {_id_from_name(Path(f).name) for f, _ in self.skipped}
        missing = [m for m in self.missing if m in keep]
        n_skipped = len(keep & skipped_ids)
        return TranslationReport(self.source, len(keep), len(keep) - len(missing) - n_skipped, missing,
                                 [e for e in self.empty if e[0] in keep],
                                 [s for s in self.skipped if _id_from_name(Path(s[0]).name) in keep])


# --------------------------------------------------------------------------- file names

def file_name(dialogue_id: str) -> str:
    """Return the translation file name of a KokoroChat dialogue id (``12`` -> ``en12.json``)."""
    return f"{TRANSLATION_PREFIX}{dialogue_id}.json"


def _id_from_name(name: str) -> str:
    return name.removesuffix(".json").removeprefix(TRANSLATION_PREFIX)


# --------------------------------------------------------------------------- parsing

def parse_file(fname: str, raw: bytes) -> tuple[list, list, list]:
    """Validate one translation file; return its roles, Japanese origins and English contents."""
    rec = load_json(fname, raw)
    if not isinstance(rec, dict) or not isinstance(rec.get("dialogue"), list) or not rec["dialogue"]:
        raise DataError("expected an object with a non-empty list of messages", file=fname,
                        field="dialogue")
    roles, origins, contents = [], [], []
    for i, m in enumerate(rec["dialogue"]):
        where = f"dialogue[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"expected an object, found {type(m).__name__}", file=fname, field=where)
        for key in ("role", "origin", "content"):
            if not isinstance(m.get(key), str):
                raise DataError(f"expected text, found {m.get(key)!r}", file=fname, field=f"{where}.{key}")
        if m["role"] not in ROLES:
            raise DataError(f"unknown role {m['role']!r} (expected one of {', '.join(ROLES)})",
                            file=fname, field=f"{where}.role")
        roles.append(m["role"])
        origins.append(m["origin"])
        contents.append(m["content"])
    return roles, origins, contents


def word_counts(texts) -> np.ndarray:
    """Return the number of whitespace-separated words of each text (0 for an empty one)."""
    arr = pa.array(list(texts) if not isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts,
                   type=pa.large_string())
    words = pc.list_value_length(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(arr)))
    n = words.to_numpy(zero_copy_only=False).astype("int64")
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0).to_numpy(zero_copy_only=False)
    n[empty] = 0
    return n


def attach_english(corpus, path: str | os.PathLike | None = None, *, lenient: bool = False,
                   download: bool = True, progress: bool = False):
    """Return *corpus* with ``text_en`` and ``n_words_en`` filled and ``.translation`` set.

    Strict by default: a file that does not align with KokoroChat raises :class:`DataError`
    naming the file and the message; *lenient* leaves that dialogue untranslated and records why.
    """
    ids = corpus.dialogues["dialogue_id"].astype(str).tolist()
    folder = resolve_translation(path, ids=ids, download=download)
    report = TranslationReport(source=str(folder), dialogues=len(ids))
    u = corpus.utterances
    did = u["dialogue_id"].astype(str).to_numpy()
    # first row and row count of every dialogue (utterances are grouped by dialogue, in order)
    starts = dict(zip(*np.unique(did, return_index=True)))
    sizes = dict(zip(*np.unique(did, return_counts=True)))
    text = u["text"].astype(object).to_numpy()
    role = u["role"].astype(str).to_numpy()
    english = np.full(len(u), None, dtype=object)
    for dialogue_id in tqdm(ids, desc="translation", unit="file", disable=not progress):
        f = folder / file_name(dialogue_id)
        if not f.is_file():
            report.missing.append(dialogue_id)
            continue
        try:
            roles, origins, contents = parse_file(str(f), f.read_bytes())
            lo, n = starts.get(dialogue_id, 0), sizes.get(dialogue_id, 0)
            _check_alignment(str(f), roles, origins, role[lo:lo + n], text[lo:lo + n])
        except DataError as exc:
            if not lenient:
                raise
            report.skipped.append((str(f), str(exc)))
            continue
        report.translated += 1
        for i, c in enumerate(contents):
            if c.strip():
                english[lo + i] = c
            else:
                report.empty.append((dialogue_id, i))
    u = u.copy()
    u["text_en"] = pd.array(english, dtype="string")
    counts = word_counts([e if e is not None else "" for e in english])
    u["n_words_en"] = pd.array(np.where(pd.isna(english), None, counts), dtype="Int32")
    # a copy of the same type; its merged turns are made again, now with the English
    return dataclasses.replace(corpus, utterances=u, translation=report, _turns=None)


def _check_alignment(fname: str, roles: list, origins: list, ja_roles, ja_texts) -> None:
    """Raise a DataError unless the file pairs message i with KokoroChat message i, for every i."""
    if len(roles) != len(ja_roles):
        raise DataError(f"{len(roles)} messages, but the KokoroChat dialogue has {len(ja_roles)}",
                        file=fname, field="dialogue")
    for i, (r, o, jr, jt) in enumerate(zip(roles, origins, ja_roles, ja_texts)):
        if r != jr:
            raise DataError(f"role {r!r}, but KokoroChat message {i} is by the {jr}", file=fname,
                            field=f"dialogue[{i}].role")
        if o != jt:
            raise DataError(f"origin {o[:30]!r} differs from KokoroChat message {i} {jt[:30]!r}",
                            file=fname, field=f"dialogue[{i}].origin")


# --------------------------------------------------------------------------- what the book shows

_EXCERPT_LABELS = {
    "en": {"role": "speaker", "time": "time", "text_en": "English (Multilingual KokoroChat)",
           "text": "Japanese (original)", "counselor": "counselor", "client": "client"},
    "ja": {"role": "話者", "time": "時刻", "text_en": "英訳（Multilingual KokoroChat）",
           "text": "原文（日本語）", "counselor": "カウンセラー", "client": "クライアント"},
}


def bilingual_excerpt(corpus, n_messages: int = 6, topic: str | None = "Career and Educational Issues",
                      seed: int = config.SEED, max_chars: int = 120, lang: str = "en") -> pd.DataFrame:
    """Return the opening messages of one translated dialogue, Japanese and English side by side.

    With ``lang="en"`` the English column comes first and labels are English; with ``"ja"`` the
    Japanese does. Texts longer than *max_chars* are cut with "…"; an empty translation shows
    "(no translation)" rather than a blank.
    """
    if corpus.translation is None:
        raise DataError("the corpus has no English; call corpus.with_english(PATH) first",
                        field="translation")
    labels = _EXCERPT_LABELS["ja" if lang == "ja" else "en"]
    d = corpus.dialogues
    translated = ~d["dialogue_id"].astype(str).isin(corpus.translation.untranslated())
    pool = d[translated]
    if topic is not None and (pool["topic"] == topic).any():
        pool = pool[pool["topic"] == topic]
    if pool.empty:
        raise DataError("no dialogue of the corpus has a translation", field="translation")
    did = str(pool["dialogue_id"].sample(n=1, random_state=seed).iloc[0])
    u = corpus.utterances
    u = u[u["dialogue_id"] == did].head(n_messages)
    cut = lambda s: s.where(s.str.len() <= max_chars, s.str.slice(0, max_chars) + "…")
    out = pd.DataFrame({
        labels["role"]: [labels[r] for r in u["role"].astype(str)],
        labels["time"]: u["time"].dt.strftime("%H:%M:%S").to_numpy(),
        labels["text"]: cut(u["text"].astype(str)).to_numpy(),
        labels["text_en"]: cut(u["text_en"].fillna("(no translation)").astype(str)).to_numpy(),
    })
    if lang != "ja":
        out = out[[labels["role"], labels["time"], labels["text_en"], labels["text"]]]
    out.attrs["dialogue_id"] = did
    return out


def coverage(corpus) -> pd.DataFrame:
    """Return the coverage of the translation: dialogues and messages, with and without English."""
    r = corpus.translation
    u = corpus.utterances
    skipped = len(r.skipped)
    untranslated = u["dialogue_id"].astype(str).isin(r.untranslated())
    rows = [
        ("dialogues in KokoroChat", r.dialogues),
        ("dialogues translated", r.translated),
        ("dialogues without a translation file", len(r.missing)),
        ("dialogues whose file did not align (lenient load)", skipped),
        ("messages in KokoroChat", len(u)),
        ("messages with English", int(u["text_en"].notna().sum())),
        ("messages with an empty translation", len(r.empty)),
        ("messages of untranslated dialogues", int(untranslated.sum())),
    ]
    return pd.DataFrame(rows, columns=["what", "count"]).set_index("what")


def missing_dialogues(corpus) -> pd.DataFrame:
    """Return the dialogues without a translation, with what KokoroChat says about them."""
    d = corpus.dialogues
    miss = d[d["dialogue_id"].astype(str).isin(corpus.translation.missing)]
    return miss[["dialogue_id", "topic", "n_utterances", "score"]].reset_index(drop=True)


def empty_translations(corpus) -> pd.DataFrame:
    """Return every message whose translation is empty: dialogue, position, role, Japanese length."""
    if not corpus.translation.empty:
        return pd.DataFrame(columns=["dialogue_id", "position", "role", "n_chars", "text"])
    keys = pd.DataFrame(corpus.translation.empty, columns=["dialogue_id", "position"])
    u = corpus.utterances[["dialogue_id", "position", "role", "n_chars", "text"]].copy()
    u["dialogue_id"] = u["dialogue_id"].astype(str)
    return keys.merge(u, on=["dialogue_id", "position"], how="left")


def length_ratios(corpus) -> pd.DataFrame:
    """Return, per role, Japanese characters and English words per message and their ratio.

    Only messages with an English translation count, so both lengths describe the same messages.
    """
    u = corpus.utterances
    u = u[u["text_en"].notna()]
    g = u.assign(en_chars=u["text_en"].str.len()).groupby("role", observed=False)
    out = pd.DataFrame({
        "messages": g.size(),
        "ja_chars_per_message": g["n_chars"].mean(),
        "en_words_per_message": g["n_words_en"].mean().astype(float),
        "en_chars_per_message": g["en_chars"].mean().astype(float),
    })
    out["en_words_per_ja_char"] = g["n_words_en"].sum().astype(float) / g["n_chars"].sum()
    out["en_chars_per_ja_char"] = g["en_chars"].sum().astype(float) / g["n_chars"].sum()
    out.index = out.index.astype(str)
    return out


LENGTH_BINS = (0, 5, 10, 20, 40, 80, np.inf)
LENGTH_BIN_NAMES = ("1–5", "6–10", "11–20", "21–40", "41–80", "81+")


def words_per_char_by_length(corpus, bins=LENGTH_BINS, names=LENGTH_BIN_NAMES) -> pd.DataFrame:
    """Return English words per Japanese character by Japanese message length bin and role.

    Only messages with English count. A bin's ratio is its English words over its Japanese
    characters (sums, not a mean of per-message ratios). Columns: ``ja_len`` (bin name), ``role``,
    ``n_words_en``, ``n_chars``, ``ratio``; bins without messages are left out.
    """
    u = corpus.utterances[corpus.utterances["text_en"].notna()]
    u = u.assign(ja_len=pd.cut(u["n_chars"], bins=list(bins), labels=list(names)), role=u["role"].astype(str))
    return (u.groupby(["ja_len", "role"], observed=True)[["n_words_en", "n_chars"]].sum()
            .astype(float).assign(ratio=lambda t: t["n_words_en"] / t["n_chars"]).reset_index())


def length_features(corpus) -> pd.DataFrame:
    """Return per translated dialogue the total length of each role in Japanese characters and
    English words, with the total score (the two length features of paper Figure 4)."""
    u = corpus.utterances
    ok = ~u["dialogue_id"].astype(str).isin(corpus.translation.untranslated())
    u = u[ok]
    did, role = u["dialogue_id"].astype(str), u["role"].astype(str)
    ja = u.pivot_table(index=did, columns=role, values="n_chars", aggfunc="sum", observed=False)
    en = u.assign(w=u["n_words_en"].fillna(0).astype("int64")).pivot_table(
        index=did, columns=role, values="w", aggfunc="sum", observed=False)
    d = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))
    out = pd.DataFrame({f"{r}_ja_chars": ja.get(r) for r in ROLES}
                       | {f"{r}_en_words": en.get(r) for r in ROLES}).reindex(ja.index).fillna(0)
    out["client_id"] = d.loc[out.index, "client_id"].astype("int64")
    out["score"] = d.loc[out.index, "score"].astype(float)
    out.index.name = "dialogue_id"
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho; NaN where an input is constant (a degenerate resample)."""
    from scipy.stats import spearmanr
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def length_score_correlations(features: pd.DataFrame, *, n_resamples: int = 1000,
                              seed: int = config.SEED, cluster: str = "client_id") -> pd.DataFrame:
    """Return Spearman's rho of each role's length with the score, measured in Japanese characters
    and in English words, and a paired bootstrap of the difference resampling *cluster* units.

    Both measures are computed on the same resampled clients in every replicate (paired
    resampling), so the interval of the difference reflects how much the unit of length matters,
    not how much the sample varies.
    """
    rng = np.random.default_rng(seed)
    groups = features.groupby(cluster).indices
    members = list(groups.values())
    rows = []
    for r in ROLES:
        x_ja, x_en, y = (features[f"{r}_ja_chars"].to_numpy(), features[f"{r}_en_words"].to_numpy(),
                         features["score"].to_numpy())
        diffs = np.empty(n_resamples)
        for b in range(n_resamples):
            idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
            diffs[b] = _spearman(x_en[idx], y[idx]) - _spearman(x_ja[idx], y[idx])
        lo, hi = np.nanquantile(diffs, [0.025, 0.975]) if np.isfinite(diffs).any() else (np.nan, np.nan)
        rho_ja, rho_en = _spearman(x_ja, y), _spearman(x_en, y)
        rows.append({"role": r, "rho_ja_chars": rho_ja, "rho_en_words": rho_en,
                     "difference": rho_en - rho_ja, "diff_ci_low": float(lo), "diff_ci_high": float(hi),
                     "rho_ja_vs_en_length": _spearman(x_ja, x_en), "dialogues": len(features),
                     "clusters": len(members)})
    return pd.DataFrame(rows).set_index("role")
