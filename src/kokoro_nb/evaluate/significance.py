"""Is system B really better than system A on the same test turns? Paired tests over dialogues.

Two tests, both *paired* (the two systems are always scored on the same units):

* **paired bootstrap resampling** (Koehn 2004), as sacrebleu's ``paired_bs``: one set of
  resampled indices is drawn and used for both systems; the p-value is sacrebleu's
  (the share of resampled absolute differences, centred on their mean, that exceed the
  observed absolute difference, with +1 in numerator and denominator);
* **approximate randomization** (Noreen 1989; Riezler & Maxwell 2005), as sacrebleu's
  ``paired_ar``: each unit's two outputs are swapped with probability 1/2.

The unit is the **dialogue**, not the turn. Turns of one dialogue share a client, a topic and a
counselor, so their scores are correlated; resampling turns as if independent would treat a
dialogue of 60 similar turns as 60 pieces of evidence and give intervals that are too narrow and
p-values that are too small. Each dialogue contributes its per-metric sums and its number of
turns, so a resample's score is still the mean over its turns.

Not the scores themselves (:mod:`kokoro_nb.evaluate.metrics`) nor the per-turn files
(:func:`kokoro_nb.evaluate.results.read_per_turn`).

>>> a = np.array([[1.0, 1], [2.0, 1], [3.0, 1]]); b = a + [1.0, 0]
>>> r = paired_bootstrap(a, b, ratio_score, n_boot=200, seed=0)
>>> r["delta"], r["p_value"] < 0.05
(1.0, True)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb.errors import DataError
from kokoro_nb.evaluate.metrics import CONFIDENCE, PER_TURN_METRICS, check_n_boot
from kokoro_nb.evaluate.results import read_per_turn

BOOTSTRAP_SAMPLES = 1000      # sacrebleu's default for paired_bs
AR_TRIALS = 10000             # sacrebleu's default for paired_ar
ALPHA = 0.05


def ratio_score(sums: np.ndarray) -> np.ndarray:
    """Return the mean over turns from summed ``[metric total, turn count]`` rows."""
    sums = np.atleast_2d(sums)
    return sums[:, 0] / sums[:, 1]


def p_value(stats: np.ndarray, observed: float) -> float:
    """Return (#stats at or above observed + 1) / (len + 1).

    sacrebleu counts only stats strictly above; then a system compared with itself (every
    statistic 0) gets p = 1/(n+1), "significant". Counting ties is the conservative choice and
    agrees with sacrebleu whenever no statistic ties the observed one exactly.
    """
    return (int(np.sum(stats >= observed - 1e-12 * max(1.0, abs(observed)))) + 1) / (len(stats) + 1)


def _percentile(x: np.ndarray, confidence: float) -> list[float]:
    a = (1 - confidence) / 2
    return [float(v) for v in np.quantile(x, [a, 1 - a])]


def _paired(stats_a, stats_b) -> tuple[np.ndarray, np.ndarray]:
    """Return both systems' (units, k) statistics as float arrays, refusing mismatched shapes."""
    A, B = np.asarray(stats_a, float), np.asarray(stats_b, float)
    if A.shape != B.shape or A.ndim != 2 or not len(A):
        raise DataError(f"paired statistics must have the same (units, k) shape, got {A.shape} and {B.shape}")
    return A, B


def paired_bootstrap(stats_a: np.ndarray, stats_b: np.ndarray, score: Callable = ratio_score, *,
                     n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 42,
                     confidence: float = CONFIDENCE) -> dict:
    """Paired bootstrap over units: the same resampled units for A and B (sacrebleu's paired_bs).

    *stats_a*, *stats_b*: (units, k) sufficient statistics per unit; *score* maps summed rows
    (B, k) to scores (B,). Returns a, b, delta = b - a, their percentile intervals and p_value.
    """
    A, B = _paired(stats_a, stats_b)
    if check_n_boot(n_boot) == 0:
        raise DataError("a paired bootstrap needs at least one resample", field="--bootstrap")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(A), size=(n_boot, len(A)), replace=True)   # drawn once, used for both
    w = np.zeros((n_boot, len(A)))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    sa, sb = score(w @ A), score(w @ B)
    a, b = float(score(A.sum(0, keepdims=True))[0]), float(score(B.sum(0, keepdims=True))[0])
    d = np.abs(sb - sa)
    return {"a": a, "b": b, "delta": b - a, "ci_a": _percentile(sa, confidence),
            "ci_b": _percentile(sb, confidence), "ci_delta": _percentile(sb - sa, confidence),
            "p_value": p_value(d - d.mean(), abs(b - a)), "n_boot": n_boot}


def approximate_randomization(stats_a: np.ndarray, stats_b: np.ndarray, score: Callable = ratio_score, *,
                              n_trials: int = AR_TRIALS, seed: int = 42) -> dict:
    """Paired approximate randomization: swap A's and B's statistics per unit with probability 1/2.

    Returns delta = b - a and the two-sided p_value (see :func:`p_value`).
    """
    A, B = _paired(stats_a, stats_b)
    if check_n_boot(n_trials) == 0:
        raise DataError("approximate randomization needs at least one trial", field="--trials")
    rng = np.random.default_rng(seed)
    keep = rng.integers(2, size=(n_trials, len(A)), dtype=bool)
    sa = score(keep @ A + ~keep @ B)
    sb = score(~keep @ A + keep @ B)
    diff = float(score(B.sum(0, keepdims=True))[0] - score(A.sum(0, keepdims=True))[0])
    return {"delta": diff, "p_value": p_value(np.abs(sa - sb), abs(diff)), "n_trials": n_trials}


# --------------------------------------------------------------------------- per-turn tables

def pair_turns(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Join two per-turn tables on (dialogue_id, turn); DataError unless they cover the same turns."""
    key = ["dialogue_id", "turn"]
    m = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    only_a, only_b = m[m["_merge"] == "left_only"], m[m["_merge"] == "right_only"]
    if len(only_a) or len(only_b):
        first = lambda t: ", ".join(f"{d}/{x}" for d, x in zip(t["dialogue_id"][:3], t["turn"][:3]))  # noqa: E731
        raise DataError(f"the two systems were scored on different turns: {len(only_a)} only in {names[0]} "
                        f"(first: {first(only_a) or '-'}), {len(only_b)} only in {names[1]} "
                        f"(first: {first(only_b) or '-'}); a paired test needs the same turns")
    ta, tb = set(a.get("tokenizer", pd.Series(dtype=object)).dropna()), set(b.get("tokenizer", pd.Series(dtype=object)).dropna())
    if ta and tb and ta != tb:
        raise DataError(f"the two files were scored with different tokenizers: {sorted(ta)} vs {sorted(tb)}")
    return m.drop(columns="_merge")


def dialogue_sums(values: np.ndarray, groups: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Return (per-dialogue sums (G, k), per-dialogue turn counts (G,)) of per-turn values (T, k)."""
    _, idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    values = np.asarray(values, float).reshape(len(idx), -1)
    sums = np.zeros((idx.max() + 1, values.shape[1]))
    np.add.at(sums, idx, values)
    return sums, np.bincount(idx).astype(float)


def compare_turns(a: pd.DataFrame, b: pd.DataFrame, metrics: Sequence[str] = PER_TURN_METRICS, *,
                  n_boot: int = BOOTSTRAP_SAMPLES, n_trials: int = AR_TRIALS, seed: int = 42,
                  confidence: float = CONFIDENCE, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Compare two per-turn tables metric by metric, resampling dialogues.

    Returns one row per metric: A, B, delta (B - A), its interval, the paired-bootstrap and the
    approximate-randomization p-values, and ``significant`` (both p < 0.05).
    """
    m = pair_turns(a, b, names)
    rows = {}
    for k in metrics:
        sa, n = dialogue_sums(m[f"{k}_a"].to_numpy(), m["dialogue_id"])
        sb, _ = dialogue_sums(m[f"{k}_b"].to_numpy(), m["dialogue_id"])
        A, B = np.column_stack([sa, n]), np.column_stack([sb, n])
        bs = paired_bootstrap(A, B, n_boot=n_boot, seed=seed, confidence=confidence)
        ar = approximate_randomization(A, B, n_trials=n_trials, seed=seed)
        rows[k] = {names[0]: bs["a"], names[1]: bs["b"], "delta": bs["delta"],
                   "delta_lo": bs["ci_delta"][0], "delta_hi": bs["ci_delta"][1],
                   "p_bootstrap": bs["p_value"], "p_randomization": ar["p_value"],
                   "significant": bool(bs["p_value"] < ALPHA and ar["p_value"] < ALPHA)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "metric"
    out.attrs.update({"turns": len(m), "dialogues": int(m["dialogue_id"].nunique()), "unit": "dialogue",
                      "n_boot": n_boot, "n_trials": n_trials, "seed": seed})
    return out


def compare_results(results: dict, pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = PER_TURN_METRICS,
                    **kw) -> pd.DataFrame:
    """Compare scored systems pairwise (``{name: ResponseResult}`` on the same turns, same order).

    Returns one row per (A, B, metric) with the columns of :func:`compare_turns`.
    """
    frames = []
    for a, b in pairs:
        ta, tb = results[a].per_turn, results[b].per_turn
        if ta is None or tb is None or not ta["dialogue_id"].equals(tb["dialogue_id"]):
            raise DataError(f"{a!r} and {b!r} were not scored on the same turns in the same order")
        t = compare_turns(ta, tb, metrics, names=("A", "B"), **kw)
        frames.append(t.assign(system_a=a, system_b=b).reset_index())
    out = pd.concat(frames, ignore_index=True).set_index(["system_a", "system_b", "metric"])
    out.attrs.update(t.attrs)
    return out


def compare_files(path_a: str | Path, path_b: str | Path, **kw) -> pd.DataFrame:
    """Read two per-turn files and compare them (see :func:`compare_turns`)."""
    return compare_turns(read_per_turn(path_a), read_per_turn(path_b),
                         names=(Path(path_a).name, Path(path_b).name) if Path(path_a).name != Path(path_b).name
                         else ("A", "B"), **kw)


def comparison_signature(table: pd.DataFrame) -> str:
    """Return the protocol of a comparison, printed with it."""
    at = table.attrs
    return "|".join(["test:paired-bootstrap+approx-randomization", f"unit:{at.get('unit')}",
                     f"boot:{at.get('n_boot')}", f"ar-trials:{at.get('n_trials')}", f"seed:{at.get('seed')}",
                     "p:(#>=obs+1)/(n+1)", f"alpha:{ALPHA}", "delta:B-A"])
