"""Evaluation metrics of paper section 5 (Tables 4 and 5), with a stated protocol.

The paper does not say how it tokenised Japanese or which BLEU it computed. This module fixes
one protocol and prints it with every number (a *signature*, as sacrebleu does):

* tokens: fugashi + unidic-lite surface forms, punctuation kept, whitespace dropped
  (tokenizer ``"ja-unidic"``); the same tokens feed every metric;
* BLEU-1..4: sentence BLEU, uniform weights 1/n, Chen & Cherry smoothing method 1
  (epsilon 0.1 on zero match counts, as ``nltk``'s ``SmoothingFunction().method1``), averaged
  over turns, x100; corpus BLEU (sums of the statistics, no smoothing, as ``sacrebleu``) is a
  secondary figure;
* ROUGE-1/2/L: F-measure per turn, averaged, x100;
* Distinct-1/2: distinct n-grams over all hypotheses / all n-grams, no n-gram across turns, x100.

Score prediction (ACC, ACC_soft, MAE) treats an unparseable prediction (``null``) as *wrong* for
ACC and ACC_soft and leaves it *out* of MAE (which has no distance for a missing number). So that
abstaining cannot look good, the answered share (``coverage``) and ``mae_null_penalised`` (a null
counted as the largest error its gold score allows) are reported beside MAE, per item and overall.

Statistics are kept apart from the final scores: per-turn (or per-dialogue) statistics are
computed once, and a bootstrap over dialogues only re-weights them.

>>> tok = get_tokenizer("space")
>>> round(sentence_bleu(tok("a b c d"), tok("a b c d"), 4), 6)
1.0
>>> distinct([["a", "b", "a"]], 1)
0.6666666666666666
"""
from __future__ import annotations

import importlib.metadata as _md
import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb.errors import DataError, MissingDependencyError
from kokoro_nb.jsonl import read_records
from kokoro_nb.schema import ITEM_CODES, ITEM_MAX, ITEM_MIN

MAX_ORDER = 4
SMOOTH_EPSILON = 0.1           # Chen & Cherry (2014) method 1, nltk's default epsilon
BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
RESPONSE_FIELDS = ("dialogue_id", "turn", "reference", "hypothesis")
SCORE_FIELDS = ("dialogue_id", "gold", "pred")
NULL_POLICY = "null:acc-wrong,mae-answered-only,mae_null_penalised-max-error"


def _version(dist: str) -> str:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return "absent"


# --------------------------------------------------------------------------- tokenizers

_TOKENIZERS: dict[str, type] = {}


def register_tokenizer(cls: type) -> type:
    """Register a tokenizer class under its ``name`` (class decorator)."""
    _TOKENIZERS[cls.name] = cls
    return cls


class Tokenizer:
    """Base class: ``tok(text) -> list[str]`` and ``tok.signature()``.

    ``tokenize`` is an alias so that an instance can be handed to rouge-score directly.
    """
    name = "base"

    def __call__(self, text: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        return self(text)

    def signature(self) -> str:
        return self.name


@register_tokenizer
class JaUnidicTokenizer(Tokenizer):
    """Japanese words: fugashi (MeCab) with unidic-lite, surface forms, whitespace dropped.

    >>> JaUnidicTokenizer()("お話を 聞かせて\\nください。")
    ['お', '話', 'を', '聞か', 'せ', 'て', 'ください', '。']
    """
    name = "ja-unidic"

    def __init__(self):
        try:
            import fugashi
            import unidic_lite
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "the ja-unidic tokenizer needs fugashi and unidic-lite: "
                "pip install fugashi unidic-lite") from exc
        # Name unidic-lite explicitly: fugashi would prefer a full unidic if one were installed.
        d = unidic_lite.DICDIR
        self._tagger = fugashi.Tagger(f'-d "{d}" -r "{d}/mecabrc"')

    def __call__(self, text: str) -> list[str]:
        # Split on whitespace first so no token spans it, then drop whitespace-only tokens
        # (MeCab returns full-width spaces as tokens).
        out: list[str] = []
        for chunk in text.split():
            out.extend(w.surface for w in self._tagger(chunk) if w.surface.strip())
        return out

    def signature(self) -> str:
        return (f"ja-unidic(fugashi-{_version('fugashi')},unidic-lite-{_version('unidic-lite')},"
                "surface,punct-kept,ws-dropped)")


@register_tokenizer
class CharTokenizer(Tokenizer):
    """Characters, whitespace dropped.

    >>> CharTokenizer()("はい、 そう")
    ['は', 'い', '、', 'そ', 'う']
    """
    name = "char"

    def __call__(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]

    def signature(self) -> str:
        return "char(ws-dropped)"


@register_tokenizer
class SpaceTokenizer(Tokenizer):
    """Whitespace-separated tokens, for text that is already tokenised (tests, other languages)."""
    name = "space"

    def __call__(self, text: str) -> list[str]:
        return text.split()


def tokenizer_names() -> tuple[str, ...]:
    """Return the registered tokenizer names."""
    return tuple(_TOKENIZERS)


def get_tokenizer(tokenizer: str | Tokenizer = "ja-unidic") -> Tokenizer:
    """Return a tokenizer instance from a registered name (or pass an instance through)."""
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer not in _TOKENIZERS:
        raise DataError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(_TOKENIZERS)}",
                        field="tokenizer")
    return _TOKENIZERS[tokenizer]()


# --------------------------------------------------------------------------- n-gram statistics

def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Return the n-grams of one token list (none when it is shorter than n)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def bleu_stats(hyp: Sequence[str], ref: Sequence[str], max_order: int = MAX_ORDER) -> np.ndarray:
    """Return BLEU statistics ``[matches_1..n, totals_1..n, hyp_len, ref_len]`` of one pair."""
    out = np.zeros(2 * max_order + 2, dtype=np.int64)
    for n in range(1, max_order + 1):
        h, r = Counter(ngrams(hyp, n)), Counter(ngrams(ref, n))
        out[n - 1] = sum(min(c, r[g]) for g, c in h.items())
        out[max_order + n - 1] = sum(h.values())
    out[-2], out[-1] = len(hyp), len(ref)
    return out


def _brevity(hyp_len: np.ndarray, ref_len: np.ndarray) -> np.ndarray:
    hyp_len, ref_len = np.asarray(hyp_len, float), np.asarray(ref_len, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hyp_len > ref_len, 1.0, np.exp(1.0 - ref_len / np.maximum(hyp_len, 1)))
    return np.where(hyp_len == 0, 0.0, bp)


def sentence_bleu_from_stats(stats: np.ndarray, n: int, epsilon: float = SMOOTH_EPSILON) -> np.ndarray:
    """Return sentence BLEU-n (0-1) for each row of statistics; smoothing method 1.

    As nltk: a precision with zero matches becomes ``epsilon / max(1, total)``; a turn
    without any unigram match scores 0.
    """
    stats = np.atleast_2d(stats)
    k = (stats.shape[1] - 2) // 2
    m = stats[:, :n].astype(float)
    t = np.maximum(stats[:, k:k + n], 1).astype(float)
    p = np.where(m > 0, m / t, epsilon / t)
    score = _brevity(stats[:, -2], stats[:, -1]) * np.exp(np.log(p).mean(axis=1))
    return np.where(stats[:, 0] > 0, score, 0.0)


def corpus_bleu_from_stats(stats: np.ndarray, n: int) -> np.ndarray:
    """Return corpus BLEU-n (0-1) from summed statistics (one row or a batch of rows).

    No smoothing, as sacrebleu's ``smooth_method='none'``: any order without a match gives 0.
    """
    stats = np.atleast_2d(stats).astype(float)
    k = (stats.shape[1] - 2) // 2
    m, t = stats[:, :n], stats[:, k:k + n]
    ok = (m > 0).all(axis=1) & (t > 0).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(ok[:, None], np.log(np.where(m > 0, m, 1) / np.where(t > 0, t, 1)), 0.0)
    return np.where(ok, _brevity(stats[:, -2], stats[:, -1]) * np.exp(logp.mean(axis=1)), 0.0)


def sentence_bleu(hyp: Sequence[str], ref: Sequence[str], n: int = MAX_ORDER) -> float:
    """Return sentence BLEU-n (0-1) of one token list against one reference."""
    return float(sentence_bleu_from_stats(bleu_stats(hyp, ref, n), n)[0])


def corpus_bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], n: int = MAX_ORDER) -> float:
    """Return corpus BLEU-n (0-1) over paired token lists."""
    stats = sum((bleu_stats(h, r, n) for h, r in zip(hyps, refs, strict=True)),
                np.zeros(2 * n + 2, dtype=np.int64))
    return float(corpus_bleu_from_stats(stats, n)[0])


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Return the length of the longest common subsequence (bit-parallel, Allison & Dix 1986).

    >>> lcs_length(list("abcbdab"), list("bdcaba"))
    4
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for tok in a:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_stats(hyp: Sequence[str], ref: Sequence[str]) -> np.ndarray:
    """Return ROUGE statistics ``[[overlap, hyp_count, ref_count]]`` for ROUGE-1, -2 and -L."""
    out = np.zeros((3, 3), dtype=np.int64)
    for row, n in enumerate((1, 2)):
        h, r = Counter(ngrams(hyp, n)), Counter(ngrams(ref, n))
        out[row] = (sum((h & r).values()), sum(h.values()), sum(r.values()))
    out[2] = (lcs_length(hyp, ref), len(hyp), len(ref))
    return out


def f_measure(stats: np.ndarray) -> np.ndarray:
    """Return F1 from ``[..., (overlap, hyp_count, ref_count)]`` as rouge-score computes it."""
    stats = np.asarray(stats, float)
    o, h, r = stats[..., 0], stats[..., 1], stats[..., 2]
    p, rc = o / np.maximum(h, 1), o / np.maximum(r, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p + rc > 0, 2 * p * rc / (p + rc), 0.0)


def distinct(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Return Distinct-n (0-1): distinct n-grams / all n-grams, pooled over turns.

    No n-gram crosses a turn boundary; 0 when there is no n-gram at all.
    """
    seen, total = set(), 0
    for toks in token_lists:
        grams = ngrams(toks, n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def distinct_per_turn(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Return the mean over turns of each turn's own Distinct-n (turns without an n-gram skipped).

    NaN when no turn has an n-gram.
    """
    vals = [len(set(g)) / len(g) for g in (ngrams(t, n) for t in token_lists) if g]
    return float(np.mean(vals)) if vals else float("nan")


# --------------------------------------------------------------------------- bootstrap

def check_n_boot(n_boot) -> int:
    """Return *n_boot* if it is a whole number >= 0; DataError otherwise."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise DataError(f"the number of bootstrap resamples must be 0 (none) or more, got {n_boot!r}",
                        field="--bootstrap")
    return int(n_boot)


def check_resampling_unit(row_weights: np.ndarray, groups: Sequence) -> None:
    """Raise DataError unless every resample weights all rows of one dialogue alike.

    A guard: the bootstrap must draw whole dialogues (their turns are correlated), so a
    resample that weights two turns of one dialogue differently drew turns, not dialogues.
    """
    w = np.atleast_2d(np.asarray(row_weights, dtype=float))
    _, idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    first = np.zeros((w.shape[0], idx.max() + 1))
    first[:, idx[::-1]] = w[:, ::-1]                      # some row's weight of each group
    bad = np.flatnonzero((w != first[:, idx]).any(axis=0))
    if len(bad):
        raise DataError(f"the bootstrap resampled {len(bad)} row(s) apart from the rest of their "
                        f"dialogue (first: row {bad[0]}); resample whole dialogues", field="bootstrap unit")


def _bootstrap_weights(groups: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (per-group counts of each resample (B, G), group index of each row)."""
    check_n_boot(n_boot)
    uniq, idx = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    w = np.zeros((n_boot, len(uniq)))
    np.add.at(w, (np.arange(n_boot)[:, None], draws), 1.0)
    return w, idx


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    a = (1 - confidence) / 2
    lo, hi = np.nanquantile(samples, [a, 1 - a], axis=0)
    return [float(lo), float(hi)]


def _clean(x):
    """Make numbers JSON-safe: numpy scalars to Python, NaN to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


# --------------------------------------------------------------------------- responses

RESPONSE_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L",
                    "Dist-1", "Dist-2")


@dataclass
class ResponseStats:
    """Per-turn sufficient statistics of a set of (reference, hypothesis) pairs."""
    dialogue_ids: np.ndarray          # (T,)
    bleu: np.ndarray                  # (T, 2*MAX_ORDER+2): matches, totals, hyp_len, ref_len
    rouge: np.ndarray                 # (T, 3, 3): ROUGE-1/2/L x (overlap, hyp, ref)
    hyp_tokens: list[list[str]]
    ref_tokens: list[list[str]]
    tokenizer: str                    # the tokenizer's signature


def response_stats(references: Sequence[str], hypotheses: Sequence[str],
                   dialogue_ids: Sequence | None = None, *, tokenizer: str | Tokenizer = "ja-unidic",
                   progress: bool = False) -> ResponseStats:
    """Tokenise every pair once and compute its BLEU and ROUGE statistics."""
    if len(references) != len(hypotheses):
        raise DataError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    tok = get_tokenizer(tokenizer)
    ids = np.asarray(list(dialogue_ids) if dialogue_ids is not None else range(len(references)),
                     dtype=object).astype(str)
    pairs = zip(references, hypotheses)
    if progress:
        from tqdm.auto import tqdm
        pairs = tqdm(pairs, total=len(references), desc="scoring turns", unit="turn")
    hyp_t, ref_t, bl, ro = [], [], [], []
    for ref, hyp in pairs:
        r, h = tok(ref), tok(hyp)
        ref_t.append(r)
        hyp_t.append(h)
        bl.append(bleu_stats(h, r))
        ro.append(rouge_stats(h, r))
    return ResponseStats(ids, np.array(bl).reshape(-1, 2 * MAX_ORDER + 2),
                         np.array(ro).reshape(-1, 3, 3), hyp_t, ref_t, tok.signature())


def response_signature(tokenizer_signature: str, n_boot: int = 0, seed: int | None = None) -> str:
    """Return the protocol signature printed with every response score."""
    boot = f"boot:{n_boot},seed={seed},unit=dialogue" if n_boot else "boot:none"
    return "|".join([
        f"tok:{tokenizer_signature}", "case:as-is", "refs:1",
        f"bleu:sentence-avg,w=1/n,smooth:chen-cherry-1(eps={SMOOTH_EPSILON})",
        "corpus-bleu:sums,smooth:none",
        "rouge:f1,per-turn-avg,lcs", "distinct:pooled-over-turns,no-cross-turn",
        "scale:x100", boot, f"nltk-compatible:{_version('nltk')}", f"kokoro-nb:{_version('kokoro-nb')}"])


@dataclass
class ResponseResult:
    """Response-generation scores (x100) with bootstrap intervals and the protocol signature."""
    scores: dict[str, float]
    secondary: dict[str, float]       # corpus BLEU, per-turn Distinct, reference Distinct
    ci: dict[str, list[float]]
    n_turns: int
    n_dialogues: int
    n_empty_hypotheses: int
    signature: str
    extra: dict = field(default_factory=dict)
    per_turn: pd.DataFrame | None = field(default=None, repr=False)   # dialogue_id, BLEU-1..ROUGE-L

    def as_dict(self) -> dict:
        return _clean({"scores": self.scores, "secondary": self.secondary, "ci": self.ci,
                       "n_turns": self.n_turns, "n_dialogues": self.n_dialogues,
                       "n_empty_hypotheses": self.n_empty_hypotheses,
                       "signature": self.signature, **self.extra})

    def row(self) -> pd.Series:
        """Return the Table-4 columns as one row."""
        return pd.Series(self.scores)[list(RESPONSE_METRICS)]


def _sentence_table(stats: ResponseStats) -> np.ndarray:
    """Return (T, 7) per-turn scores: BLEU-1..4, ROUGE-1/2/L F (0-1)."""
    cols = [sentence_bleu_from_stats(stats.bleu, n) for n in range(1, MAX_ORDER + 1)]
    cols += [f_measure(stats.rouge[:, k]) for k in range(3)]
    return np.column_stack(cols) if len(stats.bleu) else np.zeros((0, 7))


def response_scores(stats: ResponseStats, *, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 42,
                    confidence: float = CONFIDENCE) -> ResponseResult:
    """Turn statistics into Table-4 scores (x100) with dialogue-level bootstrap intervals.

    Distinct is a set statistic: resampling with replacement duplicates n-grams and biases it
    down, so it gets no interval.
    """
    if len(stats.bleu) == 0:
        raise DataError("no turns to score")
    per_turn = _sentence_table(stats) * 100
    names = list(RESPONSE_METRICS[:7])
    scores = dict(zip(names, per_turn.mean(axis=0).tolist()))
    scores["Dist-1"] = 100 * distinct(stats.hyp_tokens, 1)
    scores["Dist-2"] = 100 * distinct(stats.hyp_tokens, 2)
    total = stats.bleu.sum(axis=0)
    secondary = {f"corpus BLEU-{n}": float(100 * corpus_bleu_from_stats(total, n)[0])
                 for n in range(1, MAX_ORDER + 1)}
    secondary.update({f"per-turn Dist-{n}": 100 * distinct_per_turn(stats.hyp_tokens, n) for n in (1, 2)})
    secondary.update({f"reference Dist-{n}": 100 * distinct(stats.ref_tokens, n) for n in (1, 2)})
    secondary["mean hypothesis tokens"] = float(stats.bleu[:, -2].mean())
    secondary["mean reference tokens"] = float(stats.bleu[:, -1].mean())
    ci: dict[str, list[float]] = {}
    if n_boot:
        w, idx = _bootstrap_weights(stats.dialogue_ids, n_boot, seed)
        check_resampling_unit(w[:, idx], stats.dialogue_ids)
        G = w.shape[1]
        sums = np.zeros((G, per_turn.shape[1]))
        np.add.at(sums, idx, per_turn)
        counts = np.bincount(idx, minlength=G).astype(float)
        boot = (w @ sums) / (w @ counts)[:, None]
        for j, name in enumerate(names):
            ci[name] = _interval(boot[:, j], confidence)
        gstats = np.zeros((G, stats.bleu.shape[1]))
        np.add.at(gstats, idx, stats.bleu)
        bstats = w @ gstats
        for n in range(1, MAX_ORDER + 1):
            ci[f"corpus BLEU-{n}"] = _interval(100 * corpus_bleu_from_stats(bstats, n), confidence)
    turns = pd.DataFrame(per_turn, columns=names)
    turns.insert(0, "turn", np.arange(len(turns)))         # row order; files replace it by their turn
    turns.insert(0, "dialogue_id", stats.dialogue_ids)
    return ResponseResult(scores, secondary, ci, n_turns=len(stats.bleu),
                          n_dialogues=len(np.unique(stats.dialogue_ids)),
                          n_empty_hypotheses=int((stats.bleu[:, -2] == 0).sum()),
                          signature=response_signature(stats.tokenizer, n_boot, seed if n_boot else None),
                          per_turn=turns)


def evaluate_responses(references: Sequence[str], hypotheses: Sequence[str],
                       dialogue_ids: Sequence | None = None, *, tokenizer: str | Tokenizer = "ja-unidic",
                       n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 42, confidence: float = CONFIDENCE,
                       progress: bool = False) -> ResponseResult:
    """Score hypotheses against references: BLEU-1..4, ROUGE-1/2/L, Distinct-1/2 (x100).

    >>> r = evaluate_responses(["a b c d"], ["a b c d"], tokenizer="space", n_boot=0)
    >>> round(r.scores["BLEU-4"], 6), r.scores["Dist-1"]
    (100.0, 100.0)
    """
    stats = response_stats(references, hypotheses, dialogue_ids, tokenizer=tokenizer, progress=progress)
    return response_scores(stats, n_boot=n_boot, seed=seed, confidence=confidence)


# --------------------------------------------------------------------------- score prediction

SCORE_METRICS = ("ACC", "ACC_soft", "MAE")


@dataclass
class ScoreResult:
    """Score-prediction metrics: ACC and ACC_soft in percent, MAE in item points."""
    overall: dict[str, float]         # mean over the 20 items, plus the sd over items
    per_item: pd.DataFrame            # index D1..D20; ACC, ACC_soft, MAE, n, n_null (+ _lo/_hi)
    ci: dict[str, list[float]]        # overall metrics
    n_dialogues: int
    n_null: int
    n_predictions: int
    signature: str

    def as_dict(self) -> dict:
        items = {code: row for code, row in self.per_item.to_dict(orient="index").items()}
        coverage = {"overall": self.overall["coverage"], "per_item": self.per_item["coverage"].to_dict()}
        return _clean({"overall": self.overall, "ci": self.ci, "per_item": items, "coverage": coverage,
                       "n_dialogues": self.n_dialogues, "n_predictions": self.n_predictions,
                       "n_null": self.n_null, "signature": self.signature})


def score_signature(n_boot: int = 0, seed: int | None = None) -> str:
    """Return the protocol signature printed with every score-prediction result."""
    boot = f"boot:{n_boot},seed={seed},unit=dialogue" if n_boot else "boot:none"
    return "|".join(["items:D1-D20", f"range:{ITEM_MIN}-{ITEM_MAX}", "acc_soft:|pred-gold|<=1",
                     "avg:mean-over-items", NULL_POLICY, "scale:acc-x100,mae-points", boot,
                     f"kokoro-nb:{_version('kokoro-nb')}"])


def score_stats(gold, pred) -> dict[str, np.ndarray]:
    """Return per-cell statistics (N, 20): exact, soft, abs_err (0 where null), parsed, and
    worst_err (abs_err, or the largest error the gold score allows where null)."""
    gold = np.asarray(gold, dtype=float)
    pred = np.asarray(pred, dtype=float)          # None -> nan
    if gold.shape != pred.shape or gold.ndim != 2:
        raise DataError(f"gold {gold.shape} and pred {pred.shape} must be the same (N, items) shape")
    parsed = ~np.isnan(pred)
    err = np.where(parsed, np.abs(pred - gold), 0.0)
    worst = np.where(parsed, err, np.maximum(gold - ITEM_MIN, ITEM_MAX - gold))
    return {"exact": parsed & (err == 0), "soft": parsed & (err <= 1),
            "abs_err": err, "parsed": parsed, "worst_err": worst}


def _score_table(exact, soft, abs_err, parsed, n):
    """Per-item metrics from (already weighted) column sums; works on batches (B, 20)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100 * exact / n, 100 * soft / n, abs_err / parsed


def evaluate_scores(gold, pred, dialogue_ids: Sequence | None = None, *, n_boot: int = BOOTSTRAP_SAMPLES,
                    seed: int = 42, confidence: float = CONFIDENCE,
                    items: Sequence[str] = ITEM_CODES) -> ScoreResult:
    """Score predicted item ratings against gold: ACC, ACC_soft (|d| <= 1), MAE per item and mean.

    A null prediction counts as wrong for ACC and ACC_soft. MAE is over the answered cells; beside
    it, ``mae_null_penalised`` counts a null as the largest error its gold score allows, and
    ``coverage`` is the answered share. An item with no answer at all has no MAE: the overall MAE
    is then the mean over the other items, and the item is named in ``MAE_items_without_answers``.

    >>> r = evaluate_scores([[3, 4]], [[3, None]], n_boot=0, items=("D1", "D2"))
    >>> r.overall["ACC"], r.overall["MAE"], r.overall["mae_null_penalised"], r.overall["coverage"]
    (50.0, 0.0, 2.0, 0.5)
    >>> r.overall["MAE_items_without_answers"], r.n_null
    (['D2'], 1)
    """
    check_n_boot(n_boot)
    s = score_stats(gold, pred)
    N, K = s["exact"].shape
    if N == 0:
        raise DataError("no dialogues to score")
    if K != len(items):
        raise DataError(f"{K} item columns but {len(items)} item names")
    acc, soft, mae = _score_table(s["exact"].sum(0), s["soft"].sum(0), s["abs_err"].sum(0),
                                  s["parsed"].sum(0), N)
    worst = s["worst_err"].sum(0) / N
    cover = s["parsed"].sum(0) / N
    per_item = pd.DataFrame({"ACC": acc, "ACC_soft": soft, "MAE": mae, "mae_null_penalised": worst,
                             "coverage": cover, "n": N, "n_null": N - s["parsed"].sum(0)},
                            index=pd.Index(list(items), name="item"))
    answered = np.isfinite(mae)
    overall = {"ACC": float(acc.mean()), "ACC_soft": float(soft.mean()),
               "MAE": float(mae[answered].mean()) if answered.any() else float("nan"),
               "mae_null_penalised": float(worst.mean()), "coverage": float(cover.mean()),
               "MAE_items_without_answers": [c for c, a in zip(items, answered) if not a],
               "ACC_sd_items": float(acc.std(ddof=1)) if K > 1 else 0.0,
               "ACC_soft_sd_items": float(soft.std(ddof=1)) if K > 1 else 0.0,
               "MAE_sd_items": float(np.std(mae[answered], ddof=1)) if answered.sum() > 1 else 0.0}
    ci: dict[str, list[float]] = {}
    if n_boot:
        ids = np.asarray(list(dialogue_ids) if dialogue_ids is not None else range(N), dtype=object).astype(str)
        w, idx = _bootstrap_weights(ids, n_boot, seed)
        wt = w[:, idx]                                   # (B, N): how often each dialogue is drawn
        check_resampling_unit(wt, ids)
        f = {k: v.astype(float) for k, v in s.items()}
        n_b = wt.sum(1, keepdims=True)
        b = _score_table(wt @ f["exact"], wt @ f["soft"], wt @ f["abs_err"], wt @ f["parsed"], n_b)
        b = (*b, (wt @ f["worst_err"]) / n_b)
        a = (1 - confidence) / 2
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # an item with every prediction null
            for name, arr in zip((*SCORE_METRICS, "mae_null_penalised"), b):
                # MAE: the mean over the items answered in the full data, as the point value.
                ci[name] = _interval(np.nanmean(arr[:, answered], axis=1) if name == "MAE" else arr.mean(axis=1),
                                     confidence)
                per_item[f"{name}_lo"], per_item[f"{name}_hi"] = np.nanquantile(arr, [a, 1 - a], axis=0)
    n_null = int((~s["parsed"]).sum())
    return ScoreResult(overall, per_item, ci, n_dialogues=N, n_null=n_null, n_predictions=N * K,
                       signature=score_signature(n_boot, seed if n_boot else None))


# --------------------------------------------------------------------------- files

def _field(obj: dict, key: str, types: tuple, file: str, no: int, what: str):
    if key not in obj:
        raise DataError(f"missing field (expected {what})", file=file, line=no, field=key)
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, types):
        raise DataError(f"expected {what}, got {json.dumps(v, ensure_ascii=False)[:60]}",
                        file=file, line=no, field=key)
    return v


def _first(keys, k: int = 3) -> str:
    """Return the first *k* (dialogue_id, turn) keys as ``id/turn`` text, with "…" when more."""
    keys = list(keys)
    shown = ", ".join(f"{d}/{t}" if t is not None else str(d) for d, t in keys[:k])
    return shown + (", …" if len(keys) > k else "")


def read_responses(path: str | Path, *, drop_duplicates: bool = False) -> pd.DataFrame:
    """Read a responses JSONL: one ``{"dialogue_id", "turn", "reference", "hypothesis"}`` per line.

    A (dialogue_id, turn) seen twice is an error; with *drop_duplicates* the first is kept and the
    keys of the others are listed in ``df.attrs["duplicates"]``.
    """
    rows, lines, f = [], [], str(path)
    for no, obj in read_records(path):
        did = _field(obj, "dialogue_id", (str, int), f, no, "a dialogue id (string)")
        turn = _field(obj, "turn", (int,), f, no, "a turn index (integer >= 0)")
        if turn < 0:
            raise DataError(f"expected a turn index >= 0, got {turn}", file=f, line=no, field="turn")
        ref = _field(obj, "reference", (str,), f, no, "the reference text (string)")
        hyp = _field(obj, "hypothesis", (str,), f, no, "the generated text (string, may be empty)")
        rows.append((str(did), turn, ref, hyp))
        lines.append(no)
    if not rows:
        raise DataError("no records in file", file=f)
    df = pd.DataFrame(rows, columns=list(RESPONSE_FIELDS))
    dup = df.duplicated(["dialogue_id", "turn"], keep="first").to_numpy()
    keys = list(zip(df["dialogue_id"][dup], df["turn"][dup]))
    if keys and not drop_duplicates:
        raise DataError(f"{len(keys)} duplicate turn(s) (same dialogue_id and turn), first: {_first(keys)}; "
                        "pass --allow-partial to keep the first of each",
                        file=f, line=lines[int(np.flatnonzero(dup)[0])], field="turn")
    df = df[~dup].reset_index(drop=True)
    df.attrs["duplicates"] = keys
    return df


def check_response_coverage(df: pd.DataFrame, expected: pd.DataFrame, *, allow_partial: bool = False,
                            file: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Match a responses table to the expected test turns; return (matched rows, coverage).

    *expected* has columns dialogue_id, turn, reference. Missing, extra and duplicated turns and
    references that differ from the test set are counted; any of them is an error naming the
    counts and the first ids, unless *allow_partial*: then only the matching turns are kept and
    the coverage says how many of the test turns they are.
    """
    key = ["dialogue_id", "turn"]
    exp = expected.assign(dialogue_id=expected["dialogue_id"].astype(str))[[*key, "reference"]]
    m = df.merge(exp, on=key, how="outer", suffixes=("", "_test"), indicator=True)
    missing = m[m["_merge"] == "right_only"]
    extra = m[m["_merge"] == "left_only"]
    both = m[m["_merge"] == "both"]
    differs = both[both["reference"] != both["reference_test"]]
    dups = df.attrs.get("duplicates", [])
    problems = [(n, what, keys) for n, what, keys in [
        (len(missing), "{n:,} turn(s) missing (in the test set, not in the file)",
         zip(missing["dialogue_id"], missing["turn"])),
        (len(extra), "{n:,} turn(s) extra (in the file, not in the test set)", zip(extra["dialogue_id"], extra["turn"])),
        (len(dups), "{n:,} duplicate turn(s) (same dialogue_id and turn twice)", dups),
        (len(differs), "{n:,} turn(s) with a reference that differs from the test set",
         zip(differs["dialogue_id"], differs["turn"]))]
        if n]
    n_exp = len(exp)
    coverage = {"test_turns": n_exp, "test_dialogues": int(exp["dialogue_id"].nunique()),
                "scored_turns": len(both) - len(differs), "missing": len(missing), "extra": len(extra),
                "duplicate": len(dups), "reference_differs": len(differs),
                "share": (len(both) - len(differs)) / n_exp if n_exp else float("nan"),
                "first_missing": [f"{d}/{t}" for d, t in list(zip(missing["dialogue_id"], missing["turn"]))[:5]]}
    if problems and not allow_partial:
        text = "; ".join(f"{what.format(n=n)}, first: {_first(keys)}" for n, what, keys in problems)
        raise DataError(f"does not match the test set ({n_exp:,} turns): {text}; pass --allow-partial "
                        "to score only the matching turns and report coverage", file=file)
    keep = both[both["reference"] == both["reference_test"]][list(RESPONSE_FIELDS)]
    if keep.empty:
        raise DataError("no turn of the file matches the test set", file=file)
    return keep.sort_values(key, kind="stable").reset_index(drop=True), coverage


def _item_list(obj: dict, key: str, file: str, no: int, allow_null: bool, n_items: int) -> list:
    v = obj.get(key, ...)
    if v is ...:
        raise DataError(f"missing field (expected a list of {n_items} item scores)", file=file, line=no, field=key)
    if v is None and allow_null:          # the whole prediction failed to parse
        return [None] * n_items
    if not isinstance(v, list) or len(v) != n_items:
        got = f"{len(v)} values" if isinstance(v, list) else json.dumps(v, ensure_ascii=False)[:60]
        raise DataError(f"expected a list of {n_items} item scores, got {got}", file=file, line=no, field=key)
    for i, x in enumerate(v):
        if x is None and allow_null:
            continue
        if isinstance(x, bool) or not isinstance(x, int) or not ITEM_MIN <= x <= ITEM_MAX:
            allowed = f"an integer {ITEM_MIN}-{ITEM_MAX}" + (" or null" if allow_null else "")
            raise DataError(f"expected {allowed}, got {json.dumps(x, ensure_ascii=False)}",
                            file=file, line=no, field=f"{key}[{i}] ({ITEM_CODES[i]})")
    return v


def read_scores(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a scores JSONL; return (dialogue ids, gold (N, 20) int, pred (N, 20) float with NaN).

    ``pred`` may hold ``null`` for an item (or be ``null`` as a whole) when the model's output
    could not be parsed.
    """
    ids, gold, pred, seen, f = [], [], [], {}, str(path)
    for no, obj in read_records(path):
        did = str(_field(obj, "dialogue_id", (str, int), f, no, "a dialogue id (string)"))
        if did in seen:
            raise DataError(f"duplicate dialogue_id {did!r} (first on line {seen[did]})",
                            file=f, line=no, field="dialogue_id")
        seen[did] = no
        gold.append(_item_list(obj, "gold", f, no, False, len(ITEM_CODES)))
        pred.append([np.nan if x is None else x for x in _item_list(obj, "pred", f, no, True, len(ITEM_CODES))])
        ids.append(did)
    if not ids:
        raise DataError("no records in file", file=f)
    return ids, np.array(gold, dtype=np.int64), np.array(pred, dtype=float)


def write_responses(path: str | Path, records: pd.DataFrame) -> Path:
    """Write a responses JSONL (columns dialogue_id, turn, reference, hypothesis)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records[list(RESPONSE_FIELDS)].itertuples(index=False):
            fh.write(json.dumps({"dialogue_id": str(r.dialogue_id), "turn": int(r.turn),
                                 "reference": r.reference, "hypothesis": r.hypothesis},
                                ensure_ascii=False) + "\n")
    return path


def write_scores(path: str | Path, dialogue_ids: Sequence, gold, pred) -> Path:
    """Write a scores JSONL; NaN predictions become null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for did, g, p in zip(dialogue_ids, np.asarray(gold), np.asarray(pred, dtype=float), strict=True):
            fh.write(json.dumps({"dialogue_id": str(did), "gold": [int(x) for x in g],
                                 "pred": [None if np.isnan(x) else int(x) for x in p]}) + "\n")
    return path


def find_results(results_dir: str | Path) -> dict[str, list[Path]]:
    """Return the JSONL files under *results_dir* by kind ("responses", "scores"), by first record.

    Files whose first record has neither layout are listed under "other".
    """
    out: dict[str, list[Path]] = {"responses": [], "scores": [], "other": []}
    root = Path(results_dir)
    if not root.is_dir():
        return out
    for p in sorted(root.rglob("*.jsonl")):
        try:
            with p.open(encoding="utf-8") as fh:
                first = next((ln for ln in fh if ln.strip()), "")
            keys = set(json.loads(first)) if first else set()
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            keys = set()
        kind = ("responses" if set(RESPONSE_FIELDS) <= keys else
                "scores" if set(SCORE_FIELDS) <= keys else "other")
        out[kind].append(p)
    return out


def evaluate_responses_file(path: str | Path, *, tokenizer: str = "ja-unidic", n_boot: int = BOOTSTRAP_SAMPLES,
                            seed: int = 42, progress: bool = False, expected: pd.DataFrame | None = None,
                            allow_partial: bool = False, per_turn: str | Path | None = None) -> ResponseResult:
    """Read a responses JSONL and score it.

    With *expected* (the test turns: dialogue_id, turn, reference) the file must cover them
    exactly (see :func:`check_response_coverage`); *per_turn* writes each turn's scores.
    """
    check_n_boot(n_boot)
    # With a test set, duplicates are reported together with missing and extra turns.
    df = read_responses(path, drop_duplicates=allow_partial or expected is not None)
    coverage = None
    if expected is not None:
        df, coverage = check_response_coverage(df, expected, allow_partial=allow_partial, file=str(path))
    elif df.attrs["duplicates"]:
        coverage = {"duplicate": len(df.attrs["duplicates"]), "scored_turns": len(df), "test_turns": None}
    stats = response_stats(df["reference"].tolist(), df["hypothesis"].tolist(), df["dialogue_id"].tolist(),
                           tokenizer=tokenizer, progress=progress)
    res = response_scores(stats, n_boot=n_boot, seed=seed)
    res.extra["file"] = str(path)
    if coverage is not None:
        res.extra["coverage"] = coverage
    if per_turn is not None:
        write_per_turn(per_turn, df, stats)
    return res


PER_TURN_METRICS = RESPONSE_METRICS[:7]


def per_turn_table(df: pd.DataFrame, stats: ResponseStats) -> pd.DataFrame:
    """Return one row per turn: dialogue_id, turn, BLEU-1..4 and ROUGE-1/2/L (x100), token counts."""
    out = pd.DataFrame(_sentence_table(stats) * 100, columns=list(PER_TURN_METRICS))
    out.insert(0, "turn", df["turn"].to_numpy())
    out.insert(0, "dialogue_id", df["dialogue_id"].astype(str).to_numpy())
    out["hyp_tokens"] = stats.bleu[:, -2]
    out["ref_tokens"] = stats.bleu[:, -1]
    return out


def write_per_turn(path: str | Path, df: pd.DataFrame, stats: ResponseStats) -> Path:
    """Write per-turn scores as JSONL (one object per turn, with the tokenizer's signature)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = per_turn_table(df, stats)
    table["tokenizer"] = stats.tokenizer
    table.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def evaluate_scores_file(path: str | Path, *, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 42) -> ScoreResult:
    """Read a scores JSONL and score it."""
    check_n_boot(n_boot)
    ids, gold, pred = read_scores(path)
    return evaluate_scores(gold, pred, ids, n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- CLI

def register_cli(sub) -> None:
    """Add ``kokoro-nb evaluate responses|scores FILE`` and ``evaluate compare A B``."""
    p = sub.add_parser("evaluate", help="score generated responses or predicted item scores",
                       description="Score a responses JSONL (Table 4) or a scores JSONL (Table 5); "
                                   "compare two systems' per-turn scores.")
    ev = p.add_subparsers(dest="what", metavar="WHAT")
    ev.required = True
    r = ev.add_parser("responses", help="BLEU-1..4, ROUGE-1/2/L, Distinct-1/2 of a responses JSONL")
    r.add_argument("file", help='JSONL: {"dialogue_id", "turn", "reference", "hypothesis"} per line')
    r.add_argument("--tokenizer", default="ja-unidic", choices=tokenizer_names())
    r.add_argument("--data", metavar="PATH", help="KokoroChat folder: check that FILE covers the test turns "
                   "exactly (no missing, extra or duplicated turn)")
    r.add_argument("--test-min-score", type=int, default=99, metavar="S",
                   help="with --data: test dialogues are those scored S..100 (paper: 99)")
    r.add_argument("--allow-partial", action="store_true",
                   help="score the turns that match and report coverage instead of refusing")
    r.add_argument("--per-turn", metavar="OUT", help="write per-turn scores (JSONL) for `evaluate compare`")
    s = ev.add_parser("scores", help="ACC, ACC_soft, MAE of a scores JSONL")
    s.add_argument("file", help='JSONL: {"dialogue_id", "gold": [20 ints], "pred": [20 ints or null]} per line')
    for q in (r, s):
        q.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES, metavar="N",
                       help="bootstrap resamples over dialogues for 95%% intervals (0: none)")
        q.add_argument("--seed", type=int, default=42)
        q.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=_cmd_responses)
    s.set_defaults(func=_cmd_scores)
    from kokoro_nb.evaluate.significance import register_compare
    register_compare(ev)


def _print_table(rows: list[tuple[str, float, list | None]], fmt: str, signature: str) -> None:
    for name, v, ci in rows:
        interval = f"  [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else ""
        print(f"{name:<24}{fmt.format(v):>9}{interval}")
    print(signature)


def _expected_turns(data: str, min_score: int) -> pd.DataFrame:
    """Return the test turns (dialogue_id, turn, reference) of the corpus at *data*."""
    from kokoro_nb.data import splits
    from kokoro_nb.data.corpus import load_kokorochat
    corpus = load_kokorochat(data, progress=False)
    return splits.response_turns(corpus, splits.response_test_ids(corpus, min_score=min_score))


def _cmd_responses(args) -> int:
    check_n_boot(args.bootstrap)
    expected = _expected_turns(args.data, args.test_min_score) if args.data else None
    res = evaluate_responses_file(args.file, tokenizer=args.tokenizer, n_boot=args.bootstrap,
                                  seed=args.seed, progress=not (args.json or getattr(args, "quiet", False)),
                                  expected=expected, allow_partial=args.allow_partial, per_turn=args.per_turn)
    if args.json:
        from kokoro_nb.cli.common import print_json
        print_json(res.as_dict())
    else:
        rows = [(k, v, res.ci.get(k)) for k, v in {**res.scores, **res.secondary}.items()]
        print(f"{res.n_turns} turns, {res.n_dialogues} dialogues, {res.n_empty_hypotheses} empty hypotheses")
        cov = res.extra.get("coverage")
        if cov and cov.get("test_turns"):
            share = math.floor(1000 * cov["share"]) / 10            # never shows 100 % unless complete
            print(f"coverage: {cov['scored_turns']:,} of {cov['test_turns']:,} test turns ({share:.1f} %); "
                  f"{cov['missing']} missing, {cov['extra']} extra (not scored), {cov['duplicate']} duplicate "
                  f"(first kept), {cov['reference_differs']} with another reference (not scored)")
        elif cov:
            print(f"{cov['duplicate']} duplicate turn(s) dropped (first kept); no --data, so coverage of the "
                  "test set is unknown")
        _print_table(rows, "{:.2f}", res.signature)
    return 0


def _cmd_scores(args) -> int:
    res = evaluate_scores_file(args.file, n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        from kokoro_nb.cli.common import print_json
        print_json(res.as_dict())
    else:
        o = res.overall
        print(f"{res.n_dialogues} dialogues, {res.n_null} of {res.n_predictions} predictions null "
              f"(coverage {100 * o['coverage']:.1f} %; wrong for ACC/ACC_soft, left out of MAE, "
              "the largest possible error in mae_null_penalised)")
        if o["MAE_items_without_answers"]:
            print(f"no answer at all for item(s) {', '.join(o['MAE_items_without_answers'])}: they have no MAE, "
                  "and the overall MAE is the mean over the other items")
        _print_table([(k, o[k], res.ci.get(k)) for k in (*SCORE_METRICS, "mae_null_penalised", "coverage")],
                     "{:.4f}", res.signature)
        print(res.per_item.round(4).to_string())
    return 0


def evaluate_results(results_dir: str | Path, kind: str, **kw) -> pd.DataFrame:
    """Score every *kind* ("responses" or "scores") JSONL under *results_dir*; one row per file.

    Empty when there is none: a notebook shows "not run yet" instead of numbers.
    """
    if kind not in ("responses", "scores"):
        raise DataError(f"unknown kind {kind!r}; expected 'responses' or 'scores'")
    rows = {}
    for p in find_results(results_dir)[kind]:
        name = str(p.relative_to(results_dir))
        if kind == "responses":
            r = evaluate_responses_file(p, **kw)
            rows[name] = {**r.scores, "turns": r.n_turns, "dialogues": r.n_dialogues,
                          "empty": r.n_empty_hypotheses, "signature": r.signature}
        else:
            r = evaluate_scores_file(p, **kw)
            rows[name] = {**{k: r.overall[k] for k in SCORE_METRICS}, "dialogues": r.n_dialogues,
                          "null": r.n_null, "signature": r.signature}
    return pd.DataFrame.from_dict(rows, orient="index")
