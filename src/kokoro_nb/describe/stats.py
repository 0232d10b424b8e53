"""Descriptive statistics of the paper's section 4 and Table 3, computed from a :class:`Corpus`.

Table 3, the topics, the score and its screening rules, the feedback items and their
correlations, the Figure-4 correlations, and :func:`summary` (what ``kokoro-nb stats`` prints).
Each returns plain numbers or a small DataFrame. Not here: the variables they are computed on
(:mod:`.variables`), intervals and models (:mod:`.inference`), Table 1 (:mod:`.profiles`).

>>> from kokoro_nb.testing.synthetic import write_kokorochat
>>> import tempfile, kokoro_nb
>>> c = kokoro_nb.load_kokorochat(write_kokorochat(tempfile.mkdtemp(), 5), cache=False, progress=False)
>>> overall_statistics(c)["dialogues"]
5
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.signal import find_peaks
from scipy.spatial.distance import squareform

from kokoro_nb.data.corpus import Corpus
from kokoro_nb.data.splits import split_sizes
from kokoro_nb.describe.inference import figure4_intervals
from kokoro_nb.describe.variables import FEATURES, dialogue_features, item_sum
from kokoro_nb.published import value
from kokoro_nb.schema import FLAG_KEYS, ITEM_CODES, ITEM_MAX, ITEM_MIN, ITEMS, ROLES


def overall_statistics(corpus: Corpus) -> dict:
    """Return paper Table 3: dialogues, speakers, utterances, averages by role, characters."""
    d, u = corpus.dialogues, corpus.utterances
    n = len(d)
    by_role = u.groupby("role", observed=False)["n_chars"].agg(["size", "sum"])
    utt = {r: int(by_role.loc[r, "size"]) for r in ROLES}
    chars = {r: int(by_role.loc[r, "sum"]) for r in ROLES}
    total_u, total_c = sum(utt.values()), sum(chars.values())
    speakers = {"counselor": int(d["counselor_id"].nunique()), "client": int(d["client_id"].nunique())}
    speakers["total"] = int(len(set(d["counselor_id"].dropna()) | set(d["client_id"].dropna())))
    return {
        "dialogues": n,
        "speakers": {"total": speakers["total"], **speakers},
        "utterances": {"total": total_u, **utt},
        "avg_utterances_per_dialogue": {"total": _div(total_u, n), **{r: _div(utt[r], n) for r in ROLES}},
        "avg_chars_per_utterance": {"total": _div(total_c, total_u), **{r: _div(chars[r], utt[r]) for r in ROLES}},
    }


def _div(a: float, b: float) -> float:
    return float(a) / b if b else float("nan")


def counselor_client_pairs(dialogues: pd.DataFrame) -> int:
    """Return the number of distinct (counselor id, client id) pairs (paper section 4)."""
    return int(dialogues[["counselor_id", "client_id"]].drop_duplicates().shape[0])


def collection_window(corpus: Corpus) -> dict:
    """Return the dates of the first and the last message in the corpus."""
    t = corpus.utterances["time"]
    return {"first": str(t.min().date()), "last": str(t.max().date())}


def score_summary(dialogues: pd.DataFrame) -> dict:
    """Return mean, median, standard deviation, min, max and skewness of the total score."""
    s = dialogues["score"].dropna().astype(float)
    return {"mean": float(s.mean()), "median": float(s.median()), "std": float(s.std(ddof=1)),
            "min": float(s.min()), "max": float(s.max()), "skew": float(sps.skew(s))}


def topic_shares(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Return dialogue counts and percent shares of the main topics, largest first."""
    g = dialogues.groupby(["topic", "topic_ja"], dropna=False).size().rename("dialogues").reset_index()
    g["percent"] = 100 * g["dialogues"] / g["dialogues"].sum()
    return g.sort_values(["dialogues", "topic"], ascending=[False, True]).reset_index(drop=True)


def screening_flag_counts(dialogues: pd.DataFrame) -> dict:
    """Return the number of dialogues with each screening flag of Appendix A.3, and with any."""
    flags = dialogues[list(FLAG_KEYS)].fillna(False).astype(bool)
    return {**{k: int(flags[k].sum()) for k in FLAG_KEYS}, "any": int(flags.any(axis=1).sum())}


def quality_rules(corpus: Corpus, *, min_utterances: int = 30, min_minutes: float = 30) -> dict:
    """Count dialogues the section-4 filters would remove: < 30 utterances, < 30 minutes, all items 3."""
    d = corpus.dialogues
    minutes = (d["ended_at"] - d["started_at"]).dt.total_seconds() / 60
    items = d[list(ITEM_CODES)]
    return {"under_30_utterances": int((d["n_utterances"] < min_utterances).sum()),
            "under_30_minutes": int((minutes < min_minutes).sum()),
            "all_items_equal_3": int(items.eq(3).all(axis=1).sum())}




def feature_score_spearman(corpus: Corpus | pd.DataFrame) -> dict:
    """Return Spearman's rho of each Figure-4 feature with the total score (pairwise complete)."""
    f = dialogue_features(corpus) if isinstance(corpus, Corpus) else corpus
    out = {}
    for name in FEATURES:
        pair = f[[name, "score"]].dropna()
        out[name] = float(sps.spearmanr(pair[name], pair["score"]).statistic)
    return out


def summary(corpus: Corpus, *, cluster: str = "client", n_resamples: int = 1000, seed: int = 42) -> dict:
    """Return everything ``kokoro-nb stats --json`` prints, as one JSON-ready dict.

    ``feature_score_spearman`` holds one object per Figure-4 feature (see :func:`figure4_intervals`).
    """
    d = corpus.dialogues
    out = overall_statistics(corpus)
    out["counselor_client_pairs"] = counselor_client_pairs(d)
    out["collection_window"] = collection_window(corpus)
    s = score_summary(d)
    out["score"] = {k: s[k] for k in ("mean", "median", "std", "min", "max")}
    shares = topic_shares(d)
    out["topic_share_percent"] = dict(zip(shares["topic"], shares["percent"].astype(float)))
    out["screening_flags"] = screening_flag_counts(d)
    out["feature_score_spearman"] = figure4_intervals(corpus, cluster, n_resamples=n_resamples, seed=seed)
    out["splits"] = split_sizes(corpus)
    out["quality_rules"] = quality_rules(corpus)
    out["files"] = corpus.report.as_dict()
    return out


def feedback_items() -> pd.DataFrame:
    """Return paper Table 2: each item's code, category, aspect and wording in English and Japanese.

    The grouping comes from the table of published values; the Japanese wording is the
    release's own key in ``review_by_client_jp``.

    >>> t = feedback_items(); len(t), t.loc["D13", "aspect"]
    (20, 'Counseling Skills')
    """
    where = {code: (cat, aspect) for cat, aspects in value("table2_feedback_groups").items()
             for aspect, codes in aspects.items() for code in codes}
    rows = [{"code": it.code, "category": where[it.code][0], "aspect": where[it.code][1],
             "item_en": it.label_en, "item_ja": it.key_jp} for it in ITEMS]
    return pd.DataFrame(rows).set_index("code")


def item_distributions(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Return the number of dialogues giving each score 0-5 to each item (items x scores).

    Missing ratings are counted in a ``missing`` column, never dropped silently.
    """
    items = dialogues[list(ITEM_CODES)]
    scores = list(range(ITEM_MIN, ITEM_MAX + 1))
    out = pd.DataFrame({c: items[c].value_counts().reindex(scores, fill_value=0) for c in ITEM_CODES}).T
    out.columns = scores
    out["missing"] = items.isna().sum().to_numpy()
    out.index.name = "item"
    return out.astype(int)


def screening_effect(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Return, per screening rule, how the flags change the totals: dialogues, mean item sum,
    mean released total, points removed, and the change of the corpus mean they cause.
    """
    check = score_rule_check(dialogues)
    n = len(check)
    check = check.assign(item_sum=check["item_sum"].astype(float), score=check["score"].astype(float))
    g = check.groupby("rule").agg(dialogues=("score", "size"), mean_item_sum=("item_sum", "mean"),
                                  mean_released=("score", "mean"))
    g["points_removed"] = check.assign(d=check["item_sum"] - check["score"]).groupby("rule")["d"].sum()
    g["effect_on_corpus_mean"] = -g["points_removed"] / n if n else float("nan")
    order = ["item sum (no flag)", "halve (flag 3)", "zero (flag 1 or 2)"]
    g = g.reindex([r for r in order if r in g.index])
    g.loc["all dialogues"] = [n, check["item_sum"].mean(), check["score"].mean(),
                              g["points_removed"].sum(), g["effect_on_corpus_mean"].sum()]
    g["dialogues"] = g["dialogues"].astype(int)
    return g


HALVING_RULES = {"floor": lambda s: s // 2, "ceil": lambda s: -(-s // 2),
                 "round_half_even": lambda s: np.round(s / 2).astype("Int64")}


def score_rule_check(dialogues: pd.DataFrame, halving: str = "floor") -> pd.DataFrame:
    """Classify each dialogue by the Appendix A.3 rule that applies and check its released score.

    Rules: flag (1) or (2) -> total 0; else flag (3) -> item sum halved (rounded by *halving*);
    else the total is the item sum. Returns one row per dialogue with ``rule``, ``item_sum``,
    ``expected``, ``score`` and ``follows``.
    """
    flags = dialogues[list(FLAG_KEYS)].fillna(False).astype(bool)
    zero = flags[FLAG_KEYS[0]] | flags[FLAG_KEYS[1]]
    halve = flags[FLAG_KEYS[2]] & ~zero
    total = item_sum(dialogues)
    expected = total.copy()
    expected[halve] = HALVING_RULES[halving](total[halve])
    expected[zero] = 0
    rule = np.select([zero.to_numpy(), halve.to_numpy()], ["zero (flag 1 or 2)", "halve (flag 3)"],
                     "item sum (no flag)")
    score = dialogues["score"].astype("Int64")
    return pd.DataFrame({"dialogue_id": dialogues["dialogue_id"].astype(str).to_numpy(), "rule": rule,
                         "item_sum": total.to_numpy(), "expected": expected.to_numpy(),
                         "score": score.to_numpy(),
                         "follows": (score == expected).fillna(False).to_numpy(bool)})


def score_rule_summary(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Count dialogues per screening rule, and how many released totals follow it.

    Also counts, for the halved dialogues with an odd item sum, which rounding reproduces them.
    """
    check = score_rule_check(dialogues)
    out = check.groupby("rule").agg(dialogues=("follows", "size"), follows=("follows", "sum"))
    out["differs"] = out["dialogues"] - out["follows"]
    halved = check[check["rule"] == "halve (flag 3)"]
    odd = halved["item_sum"] % 2 == 1
    out["odd_item_sum"] = 0
    if len(halved):
        out.loc["halve (flag 3)", "odd_item_sum"] = int(odd.sum())
        for name, fn in HALVING_RULES.items():
            out[f"odd_{name}"] = 0
            out.loc["halve (flag 3)", f"odd_{name}"] = int(
                (fn(halved.loc[odd, "item_sum"]).astype("Int64") == halved.loc[odd, "score"]).sum())
    order = ["item sum (no flag)", "halve (flag 3)", "zero (flag 1 or 2)"]
    return out.reindex([r for r in order if r in out.index]).astype(int)


MODE_BANDWIDTHS = (5.0, 7.5, 10.0)  # score points: the kernel widths the mode count is checked at
MODE_PROMINENCE = 0.05              # a mode must rise 5 % of the highest density above its valleys


def count_modes(values, bandwidth: float = 5.0, min_prominence: float = MODE_PROMINENCE) -> list[float]:
    """Return the modes of a Gaussian kernel density of *values* with a fixed *bandwidth*.

    A local maximum counts only if its prominence (height above the higher of its two
    valleys) is at least *min_prominence* times the highest density, so ripples of a finite
    sample and small spikes (the few sanctioned totals at 0) are not counted as modes.

    >>> import numpy as np
    >>> len(count_modes(np.r_[np.random.default_rng(0).normal(20, 4, 500), np.random.default_rng(1).normal(80, 4, 500)]))
    2
    """
    s = np.asarray(values, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 3 or np.ptp(s) == 0:
        return [float(s[0])] if len(s) else []
    grid = np.linspace(SCORE_RANGE[0] - 3 * bandwidth, SCORE_RANGE[1] + 3 * bandwidth, 2001)
    y = sps.gaussian_kde(s, bw_method=bandwidth / s.std(ddof=1))(grid)
    peaks, _ = find_peaks(np.r_[0, y, 0], prominence=min_prominence * y.max())
    return [float(grid[i - 1]) for i in peaks]


def score_shape(dialogues: pd.DataFrame, bandwidth: float = 5.0) -> dict:
    """Describe the shape of the score distribution: skewness, modes, and the skew without flags.

    ``modes`` are the prominent modes of a Gaussian kernel density with a fixed *bandwidth* of
    5 score points (:func:`count_modes`); ``n_modes_by_bandwidth`` repeats the count at 5, 7.5
    and 10 points (narrower kernels turn the noise of a few hundred integer scores into bumps),
    and ``unimodal`` is true only when every one of them finds a single mode.
    """
    s = dialogues["score"].dropna().astype(float).to_numpy()
    flagged = dialogues[list(FLAG_KEYS)].fillna(False).astype(bool).any(axis=1).to_numpy()
    unflagged = dialogues["score"].astype(float).to_numpy()[~flagged]
    unflagged = unflagged[~np.isnan(unflagged)]
    modes = count_modes(s, bandwidth)
    by_bw = {float(h): len(count_modes(s, h)) for h in MODE_BANDWIDTHS}
    return {"skew": float(sps.skew(s)) if len(s) > 2 else float("nan"),
            "skew_unflagged": float(sps.skew(unflagged)) if len(unflagged) > 2 else float("nan"),
            "mean_minus_median": float(np.mean(s) - np.median(s)) if len(s) else float("nan"),
            "modes": modes, "n_modes": len(modes), "bandwidth": float(bandwidth),
            "n_modes_by_bandwidth": by_bw, "unimodal": bool(len(s) > 2 and set(by_bw.values()) == {1}),
            "share_at_zero": float(np.mean(s == 0)) if len(s) else float("nan")}


SCORE_RANGE = (0, 100)


def item_correlations(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Return the 20 x 20 Spearman correlation matrix of the feedback items D1..D20 (Figure 11)."""
    return dialogues[list(ITEM_CODES)].astype(float).corr(method="spearman")


def item_correlation_facts(corr: pd.DataFrame, threshold: float = 0.6) -> dict:
    """Summarise an item correlation matrix: share of pairs above *threshold*, min/median/max,
    and each item's three strongest partners."""
    codes = list(corr.index)
    r = corr.to_numpy()
    iu = np.triu_indices(len(codes), 1)
    off = r[iu]
    partners = {c: list(corr[c].drop(c).sort_values(ascending=False).index[:3]) for c in codes}
    return {"pairs": int(off.size), "share_above": float(np.mean(off > threshold)) if off.size else float("nan"),
            "threshold": threshold, "min": float(np.nanmin(off)), "median": float(np.nanmedian(off)),
            "max": float(np.nanmax(off)), "top3": partners}


def item_linkage(corr: pd.DataFrame, method: str = "average"):
    """Return a hierarchical clustering of the items on the distance 1 - rho (scipy linkage matrix).

    1 - rho is 0 for items that always move together and grows as they part; Euclidean
    distance between rows of the matrix would instead compare whole correlation profiles.
    """
    dist = (1 - corr.to_numpy(dtype=float)).clip(min=0)
    np.fill_diagonal(dist, 0)
    return linkage(squareform((dist + dist.T) / 2, checks=False), method=method)


def item_clusters(corr: pd.DataFrame, k: int = 2, method: str = "average") -> pd.Series:
    """Cut the 1 - rho item tree into *k* groups; return each item's group (1 = the largest)."""
    raw = pd.Series(fcluster(item_linkage(corr, method), k, criterion="maxclust"), index=corr.index)
    order = raw.value_counts().sort_index().sort_values(ascending=False, kind="stable").index
    return raw.map({g: i + 1 for i, g in enumerate(order)}).rename("group")
