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

This module takes texts and arrays, never paths: the tokenizers are in
:mod:`kokoro_nb.evaluate.tokenize`, reading and writing result files in
:mod:`kokoro_nb.evaluate.results`, paired tests between systems in
:mod:`kokoro_nb.evaluate.significance`.

>>> tok = get_tokenizer("space")
>>> round(sentence_bleu(tok("a b c d"), tok("a b c d"), 4), 6)
1.0
>>> distinct([["a", "b", "a"]], 1)
0.6666666666666666
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb.errors import DataError
from kokoro_nb.evaluate.tokenize import Tokenizer, dist_version, get_tokenizer
from kokoro_nb.schema import ITEM_CODES, ITEM_MAX, ITEM_MIN

MAX_ORDER = 4
SMOOTH_EPSILON = 0.1           # Chen & Cherry (2014) method 1, nltk's default epsilon
BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
NULL_POLICY = "null:acc-wrong,mae-answered-only,mae_null_penalised-max-error"


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


def json_safe(x):
    """Make numbers JSON-safe: numpy scalars to Python, NaN to None."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


# --------------------------------------------------------------------------- responses

RESPONSE_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L",
                    "Dist-1", "Dist-2")
PER_TURN_METRICS = RESPONSE_METRICS[:7]        # the per-turn ones (Distinct is a set statistic)


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
        from tqdm.auto import (
            tqdm,  # not at the top: importing it warns in notebooks without ipywidgets
        )
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
        "scale:x100", boot, f"nltk-compatible:{dist_version('nltk')}", f"kokoro-nb:{dist_version('kokoro-nb')}"])


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
        return json_safe({"scores": self.scores, "secondary": self.secondary, "ci": self.ci,
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


def per_turn_table(df: pd.DataFrame, stats: ResponseStats) -> pd.DataFrame:
    """Return one row per turn: dialogue_id, turn, BLEU-1..4 and ROUGE-1/2/L (x100), token counts."""
    out = pd.DataFrame(_sentence_table(stats) * 100, columns=list(PER_TURN_METRICS))
    out.insert(0, "turn", df["turn"].to_numpy())
    out.insert(0, "dialogue_id", df["dialogue_id"].astype(str).to_numpy())
    out["hyp_tokens"] = stats.bleu[:, -2]
    out["ref_tokens"] = stats.bleu[:, -1]
    return out


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
        return json_safe({"overall": self.overall, "ci": self.ci, "per_item": items, "coverage": coverage,
                       "n_dialogues": self.n_dialogues, "n_predictions": self.n_predictions,
                       "n_null": self.n_null, "signature": self.signature})


def score_signature(n_boot: int = 0, seed: int | None = None) -> str:
    """Return the protocol signature printed with every score-prediction result."""
    boot = f"boot:{n_boot},seed={seed},unit=dialogue" if n_boot else "boot:none"
    return "|".join(["items:D1-D20", f"range:{ITEM_MIN}-{ITEM_MAX}", "acc_soft:|pred-gold|<=1",
                     "avg:mean-over-items", NULL_POLICY, "scale:acc-x100,mae-points", boot,
                     f"kokoro-nb:{dist_version('kokoro-nb')}"])


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
