"""Descriptive statistics of the paper's section 4 and Table 3, computed from a :class:`Corpus`.

Notebooks call these functions and only these; each returns plain numbers or a small DataFrame.

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

from kokoro_nb.data.corpus import Corpus
from kokoro_nb.data.splits import split_sizes
from kokoro_nb.schema import FLAG_KEYS, ITEM_CODES, ROLES

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


def feature_score_spearman(corpus: Corpus | pd.DataFrame) -> dict:
    """Return Spearman's rho of each Figure-4 feature with the total score (pairwise complete)."""
    f = dialogue_features(corpus) if isinstance(corpus, Corpus) else corpus
    out = {}
    for name in FEATURES:
        pair = f[[name, "score"]].dropna()
        out[name] = float(sps.spearmanr(pair[name], pair["score"]).statistic)
    return out


def figure4_intervals(corpus: Corpus, cluster: str = "client", *, n_resamples: int = 1000,
                      seed: int = 42, confidence: float = 0.95) -> dict:
    """Return each Figure-4 feature as ``{rho, ci: [lo, hi], cluster, n, clusters, ...}``.

    The interval is a percentile bootstrap that resamples *cluster* units (``client`` by
    default: each client rates many dialogues, so dialogues are not independent draws).
    """
    labels = cluster_labels(corpus.dialogues, cluster)
    labels = None if cluster == "dialogue" else labels     # one row per unit: the plain bootstrap
    b = bootstrap_spearman(dialogue_features(corpus), clusters=labels, n_resamples=n_resamples,
                           seed=seed, confidence=confidence)
    return {f: {"rho": float(r["rho"]), "ci": [float(r["lo"]), float(r["hi"])], "cluster": cluster,
                "confidence": confidence, "n_resamples": n_resamples, "seed": seed,
                "n": int(r["n"]), "clusters": int(r["clusters"])} for f, r in b.iterrows()}


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


def register_cli(sub) -> None:
    """Add ``kokoro-nb stats``."""
    p = sub.add_parser("stats", help="corpus statistics of the paper (Table 3, section 4, Figure 4)")
    p.add_argument("--data", help="KokoroChat folder or archive (default: $KOKOROCHAT_DIR, else download)")
    p.add_argument("--lenient", action="store_true", help="skip bad files (each is listed under files.skipped_reasons)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-cache", action="store_true", help="parse the JSON files even if a cached table exists")
    p.add_argument("--cluster", choices=list(CLUSTER_UNITS), default="client",
                   help="unit the Figure 4 bootstrap resamples (default: client)")
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed (default: 42)")
    p.set_defaults(func=_cmd_stats)


def _cmd_stats(args) -> int:
    from kokoro_nb.cli.common import print_json
    from kokoro_nb.data.corpus import load_kokorochat
    corpus = load_kokorochat(args.data, lenient=args.lenient, cache=not args.no_cache, progress=not args.json)
    if args.n_resamples < 1:
        from kokoro_nb.errors import KokoroError
        raise KokoroError(f"--n-resamples must be at least 1, got {args.n_resamples}")
    result = summary(corpus, cluster=args.cluster, n_resamples=args.n_resamples, seed=args.seed)
    if args.json:
        print_json(result)
        return 0
    o = result
    print(f"{'':28}{'total':>10}{'counselor':>12}{'client':>10}")
    print(f"{'dialogues':28}{o['dialogues']:>10,}")
    for key, label, fmt in (("speakers", "speakers", ",.0f"), ("utterances", "utterances", ",.0f"),
                            ("avg_utterances_per_dialogue", "avg utterances/dialogue", ".2f"),
                            ("avg_chars_per_utterance", "avg chars/utterance", ".2f")):
        v = o[key]
        print(f"{label:28}{v['total']:>10{fmt}}{v['counselor']:>12{fmt}}{v['client']:>10{fmt}}")
    print(f"counselor-client pairs: {o['counselor_client_pairs']:,}; collection window "
          f"{o['collection_window']['first']} .. {o['collection_window']['last']}")
    sc = o["score"]
    print(f"score: mean {sc['mean']:.2f}, median {sc['median']:.2f}, sd {sc['std']:.2f}")
    for name, r in o["feature_score_spearman"].items():
        print(f"rho {FEATURES[name]:<30} {r['rho']:+.3f}  95 % CI [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"
              f" ({r['cluster']} bootstrap, {r['clusters']:,} units)")
    print("splits: " + ", ".join(f"{k} {v['dialogues']:,} dialogues / {v['utterances']:,} utterances"
                                 for k, v in o["splits"].items()))
    f = o["files"]
    print(f"files: {f['found']} found, {f['loaded']} loaded, {f['skipped']} skipped")
    for s in f.get("skipped_reasons", []):
        print(f"  skipped {s['reason']}")
    return 0


# --------------------------------------------------------------------------- book chapters 1-5
# Helpers for the descriptive chapters: labels, score rules, bootstrap intervals, item
# correlations, variance components, regression, and the dataset comparison of Table 1.

def label(kind: str, key: str, lang: str = "en") -> str:
    """Return the display label of a topic, item or feature in English or Japanese.

    >>> label("item", "D1", "ja"), label("topic", "Others", "ja"), label("feature", "client_utterances")
    ('聴いてもらえた、わかってもらえたと感じた', 'その他', 'Client utterance count')
    """
    from kokoro_nb.schema import ITEMS, TOPICS
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


def feedback_items() -> pd.DataFrame:
    """Return paper Table 2: each item's code, category, aspect and wording in English and Japanese.

    The grouping comes from the table of published values; the Japanese wording is the
    release's own key in ``review_by_client_jp``.

    >>> t = feedback_items(); len(t), t.loc["D13", "aspect"]
    (20, 'Counseling Skills')
    """
    from kokoro_nb.published import value
    from kokoro_nb.schema import ITEMS
    where = {code: (cat, aspect) for cat, aspects in value("table2_feedback_groups").items()
             for aspect, codes in aspects.items() for code in codes}
    rows = [{"code": it.code, "category": where[it.code][0], "aspect": where[it.code][1],
             "item_en": it.label_en, "item_ja": it.key_jp} for it in ITEMS]
    return pd.DataFrame(rows).set_index("code")


def item_distributions(dialogues: pd.DataFrame) -> pd.DataFrame:
    """Return the number of dialogues giving each score 0-5 to each item (items x scores).

    Missing ratings are counted in a ``missing`` column, never dropped silently.
    """
    from kokoro_nb.schema import ITEM_MAX, ITEM_MIN
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
    from scipy.signal import find_peaks
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


def topic_score_test(dialogues: pd.DataFrame, min_group: int = 5) -> dict:
    """Kruskal-Wallis test of the score across topics (topics with < *min_group* dialogues left out).

    Returns H, its p value, the degrees of freedom, epsilon-squared (H / (n - 1), an effect size
    between 0 and 1) and the topics used; NaN statistics when fewer than two topics qualify.
    """
    d = dialogues[["topic", "score"]].dropna()
    sizes = d.groupby("topic").size()
    used = sorted(sizes[sizes >= min_group].index)
    groups = [d.loc[d["topic"] == t, "score"].astype(float).to_numpy() for t in used]
    n = int(sum(len(g) for g in groups))
    out = {"topics": used, "left_out": sorted(set(sizes.index) - set(used)), "n": n,
           "df": max(len(used) - 1, 0), "H": float("nan"), "p": float("nan"), "epsilon2": float("nan")}
    if len(groups) >= 2 and n > len(groups) and np.ptp(np.concatenate(groups)) > 0:
        h, p = sps.kruskal(*groups)
        out.update(H=float(h), p=float(p), epsilon2=float(h / (n - 1)))
    return out


CLUSTER_UNITS = {"client": "client_id", "counselor": "counselor_id", "dialogue": "dialogue_id"}


def cluster_labels(dialogues: pd.DataFrame, unit: str) -> pd.Series:
    """Return each dialogue's resampling unit (``client``, ``counselor`` or ``dialogue``) by dialogue id.

    A client rates many dialogues and a counselor holds many, so their dialogues are not
    independent draws; a bootstrap that resamples whole clients respects that.
    """
    if unit not in CLUSTER_UNITS:
        raise ValueError(f"cluster must be one of {', '.join(CLUSTER_UNITS)}, got {unit!r}")
    ids = dialogues["dialogue_id"].astype(str)
    return pd.Series(dialogues[CLUSTER_UNITS[unit]].to_numpy(), index=ids.to_numpy(), name=unit)


def bootstrap_spearman(features: pd.DataFrame, target: str = "score", *, clusters: pd.Series | None = None,
                       n_resamples: int = 1000, seed: int = 42, confidence: float = 0.95,
                       chunk: int = 250) -> pd.DataFrame:
    """Return Spearman's rho of each feature with *target* and a percentile bootstrap interval.

    Without *clusters*, dialogues (rows) are resampled with replacement. With *clusters* (a
    label per row, aligned on the index, e.g. :func:`cluster_labels` by ``client``), whole
    clusters are drawn with replacement and all their rows come along, so that rows that share
    a client count as one draw. Every replicate is a true Spearman coefficient: mid-ranks come
    from per-value counts (``bincount``), which avoids sorting each resample. Columns: ``n``
    (rows), ``clusters`` (units resampled), ``rho``, ``lo``, ``hi``; ``attrs["cluster"]`` names
    the unit.
    """
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    unit = "dialogue" if clusters is None else (clusters.name or "cluster")
    rows = []
    for name in [c for c in features.columns if c != target]:
        pair = features[[name, target]].dropna().astype(float)
        x, y = pair[name].to_numpy(), pair[target].to_numpy()
        n = len(x)
        rho = float(sps.spearmanr(x, y).statistic) if n > 2 else float("nan")
        gx, gy = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
        if clusters is None:
            k = n
            reps = [_resample_spearman(gx, gy, rng.integers(0, n, size=(min(chunk, n_resamples - s), n)))
                    for s in range(0, n_resamples if n > 2 else 0, chunk)]
        else:
            labels = clusters.reindex(pair.index)
            if labels.isna().any():
                raise ValueError(f"{labels.isna().sum()} rows of {name!r} have no cluster label")
            codes = pd.factorize(labels)[0]
            k = int(codes.max()) + 1 if n else 0
            reps = [_cluster_spearman(gx, gy, codes, rng, n_resamples)] if n > 2 and k > 1 else []
        reps = np.concatenate(reps) if reps else np.array([np.nan])
        ok = reps[np.isfinite(reps)]
        lo, hi = np.quantile(ok, [alpha, 1 - alpha]) if ok.size else (np.nan, np.nan)
        rows.append({"feature": name, "n": n, "clusters": k, "rho": rho, "lo": float(lo), "hi": float(hi)})
    out = pd.DataFrame(rows).set_index("feature")
    out.attrs.update(cluster=unit, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out


def _cluster_spearman(gx: np.ndarray, gy: np.ndarray, codes: np.ndarray, rng, n_resamples: int) -> np.ndarray:
    """Spearman's rho of *n_resamples* cluster resamples (clusters drawn with replacement)."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    k = len(sizes)
    out = np.empty(n_resamples)
    for b in range(n_resamples):
        draw = rng.integers(0, k, k)
        size = sizes[draw]
        # positions of every member of every drawn cluster in *order*, without a Python loop
        pos = np.repeat(starts[draw] - np.r_[0, np.cumsum(size)[:-1]], size) + np.arange(size.sum())
        out[b] = _resample_spearman(gx, gy, order[pos][None, :])[0]
    return out


def _midranks(codes: np.ndarray) -> np.ndarray:
    """Return, per row of *codes* (value-group indices of one resample), each draw's mid-rank."""
    b, n = codes.shape
    m = int(codes.max()) + 1
    counts = np.bincount((codes + m * np.arange(b)[:, None]).ravel(), minlength=b * m).reshape(b, m)
    upper = np.cumsum(counts, axis=1)
    rank_of_value = upper - (counts - 1) / 2.0        # average rank of the tied block
    return np.take_along_axis(rank_of_value, codes, axis=1)


def _resample_spearman(gx: np.ndarray, gy: np.ndarray, idx: np.ndarray) -> np.ndarray:
    rx, ry = _midranks(gx[idx]), _midranks(gy[idx])
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


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
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    dist = (1 - corr.to_numpy(dtype=float)).clip(min=0)
    np.fill_diagonal(dist, 0)
    return linkage(squareform((dist + dist.T) / 2, checks=False), method=method)


def item_clusters(corr: pd.DataFrame, k: int = 2, method: str = "average") -> pd.Series:
    """Cut the 1 - rho item tree into *k* groups; return each item's group (1 = the largest)."""
    from scipy.cluster.hierarchy import fcluster
    raw = pd.Series(fcluster(item_linkage(corr, method), k, criterion="maxclust"), index=corr.index)
    order = raw.value_counts().sort_index().sort_values(ascending=False, kind="stable").index
    return raw.map({g: i + 1 for i, g in enumerate(order)}).rename("group")


# ---- variance components of crossed random effects (REML through the mixed-model equations)

def crossed_variance_components(y, factors: dict[str, np.ndarray], X=None) -> dict:
    """Fit y = X b + sum_k Z_k u_k + e with independent crossed random intercepts by REML.

    The same model as statsmodels ``MixedLM`` with one group and variance components (the tests
    check the two agree), but the REML criterion is evaluated through the mixed-model equations:
    the factor with the most levels has a diagonal block that is eliminated in closed form, so
    only the remaining levels (~420 counselors here) need a dense Cholesky factor. 6,589
    dialogues fit in about a second, where ``MixedLM`` takes minutes. Returns the variances
    (residual last), the fixed effects and the REML log-likelihood.
    """
    from scipy import linalg, optimize
    y = np.asarray(y, dtype=float)
    n = len(y)
    X = np.ones((n, 1)) if X is None else np.asarray(X, dtype=float)
    p = X.shape[1]
    names = sorted(factors, key=lambda k: -len(pd.unique(np.asarray(factors[k]))))
    codes, sizes = [], []
    for name in names:
        c, levels = pd.factorize(np.asarray(factors[name]))
        codes.append(c)
        sizes.append(len(levels))
    # Level-by-level cross products, built from counts (Z is never formed).
    a = codes[0]
    na = np.bincount(a, minlength=sizes[0]).astype(float)
    ZaX = np.stack([np.bincount(a, X[:, j], sizes[0]) for j in range(p)], axis=1)
    Zay = np.bincount(a, y, sizes[0])
    off = np.cumsum([0] + sizes[1:])
    qb = int(off[-1])
    rest = np.concatenate([c + o for c, o in zip(codes[1:], off[:-1])]) if qb else np.zeros(0, int)
    rows = np.tile(np.arange(n), len(codes) - 1)
    ZbZb = np.zeros((qb, qb))
    N = np.zeros((sizes[0], qb))
    if qb:
        np.add.at(ZbZb, (rest.reshape(len(codes) - 1, n)[:, None, :].repeat(len(codes) - 1, 1).reshape(-1),
                         np.tile(rest.reshape(len(codes) - 1, n), (len(codes) - 1, 1)).reshape(-1)), 1.0)
        np.add.at(N, (np.tile(a, len(codes) - 1), rest), 1.0)
    ZbX = np.zeros((qb, p))
    Zby = np.zeros(qb)
    if qb:
        for j in range(p):
            ZbX[:, j] = np.bincount(rest, X[rows, j], qb)
        Zby = np.bincount(rest, y[rows], qb)
    XtX, Xty, yty = X.T @ X, X.T @ y, y @ y
    which_b = np.repeat(np.arange(1, len(sizes)), sizes[1:])

    def parts(theta):
        sa, sb = theta[0], theta[which_b]
        da = 1 + sa ** 2 * na                                   # diagonal block, I + sa^2 Za'Za
        C = sa * N * sb[None, :]
        rhs_a = np.column_stack([sa * ZaX, sa * Zay])
        rhs_b = np.column_stack([sb[:, None] * ZbX, sb * Zby])
        logdet = np.log(da).sum()
        sol_b = np.zeros((qb, p + 1))
        if qb:
            S = np.eye(qb) + sb[:, None] * ZbZb * sb[None, :] - C.T @ (C / da[:, None])
            cf = linalg.cho_factor(S, lower=True)
            logdet += 2 * np.log(np.diag(cf[0])).sum()
            sol_b = linalg.cho_solve(cf, rhs_b - C.T @ (rhs_a / da[:, None]))
        sol_a = (rhs_a - C @ sol_b) / da[:, None]
        quad = rhs_a.T @ sol_a + rhs_b.T @ sol_b                 # [sZ'X sZ'y]' M^-1 [sZ'X sZ'y]
        XhX = XtX - quad[:p, :p]
        Xhy = Xty - quad[:p, p]
        yhy = yty - quad[p, p]
        beta = np.linalg.solve(XhX, Xhy)
        rss = yhy - Xhy @ beta
        return logdet, XhX, beta, rss

    def neg_reml(theta):
        logdet, XhX, _, rss = parts(theta)
        return 0.5 * (logdet + np.linalg.slogdet(XhX)[1] + (n - p) * np.log(max(rss, 1e-300)))

    # One BLAS thread: the matrices are small, and on a busy machine threads cost 10x (measured).
    with _one_blas_thread():
        res = optimize.minimize(neg_reml, np.full(len(sizes), 0.5), method="L-BFGS-B",
                                bounds=[(0, None)] * len(sizes))
    _, _, beta, rss = parts(res.x)
    sigma2 = rss / (n - p)
    fitted = dict(zip(names, res.x))
    var = {name: float(sigma2 * fitted[name] ** 2) for name in factors}
    var["residual"] = float(sigma2)
    # res.fun already holds (n - p) / 2 * log(rss); adding (n - p) / 2 * log(sigma2) on top
    # would count the residual scale twice. The REML log-likelihood at the optimum is
    # -1/2 [log|H| + log|X'H^-1 X| + (n - p) (1 + log(2 pi sigma2))], with V = sigma2 H.
    logdet, XhX, _, _ = parts(res.x)
    llf = -0.5 * (logdet + np.linalg.slogdet(XhX)[1] + (n - p) * (1 + np.log(2 * np.pi * sigma2)))
    return {"variances": var, "beta": beta, "reml_llf": float(llf), "converged": bool(res.success),
            "levels": {k: len(pd.unique(np.asarray(factors[k]))) for k in factors}, "n": n}


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(1)


def score_variance_decomposition(dialogues: pd.DataFrame, response: str = "score") -> pd.DataFrame:
    """Split the variance of the total score into client-role rater, counselor and residual.

    *response* is ``"score"`` (released totals) or ``"item_sum"`` (before the screening rules).
    Returns one row per component with its variance and share of the total.
    """
    d = dialogues.assign(item_sum=item_sum(dialogues))
    d = d[[response, "client_id", "counselor_id"]].dropna()
    fit = crossed_variance_components(d[response].astype(float).to_numpy(),
                                      {"client-role rater": d["client_id"].to_numpy(),
                                       "counselor": d["counselor_id"].to_numpy()})
    v = pd.Series(fit["variances"], name="variance")
    out = v.to_frame()
    out["share"] = v / v.sum()
    out["levels"] = pd.Series({**fit["levels"], "residual": fit["n"]})
    out.index.name = "component"
    out.attrs.update(n=fit["n"], converged=fit["converged"], mean=float(fit["beta"][0]),
                     reml_llf=fit["reml_llf"])
    return out


def counselor_component_test(dialogues: pd.DataFrame, response: str = "score") -> dict:
    """Likelihood-ratio test of the counselor variance (with vs without the counselor intercepts).

    Both fits are REML with the same fixed effects, so their log-likelihoods are comparable.
    The variance sits on the boundary (0) under the null, so the p value is the 50:50 mixture
    of chi-square(0) and chi-square(1), i.e. half the chi-square(1) tail.
    """
    d = dialogues.assign(item_sum=item_sum(dialogues))[[response, "client_id", "counselor_id"]].dropna()
    y = d[response].astype(float).to_numpy()
    full = crossed_variance_components(y, {"client": d["client_id"].to_numpy(),
                                           "counselor": d["counselor_id"].to_numpy()})
    reduced = crossed_variance_components(y, {"client": d["client_id"].to_numpy()})
    lr = max(0.0, 2 * (full["reml_llf"] - reduced["reml_llf"]))
    return {"llf_full": full["reml_llf"], "llf_without_counselor": reduced["reml_llf"], "lr": lr,
            "p": float(0.5 * sps.chi2.sf(lr, 1)) if lr > 0 else 1.0, "n": full["n"]}


def feature_regression(features: pd.DataFrame, dialogues: pd.DataFrame, *, log: bool = True):
    """OLS of the score on the five standardised (log1p) features with two-way cluster-robust SEs.

    Standard errors are clustered by client-role rater and by counselor (a dialogue shares both
    with others). Falls back to HC3 when there are fewer than 5 clusters of either kind. Returns
    the statsmodels results and a tidy table (coefficient = score points per 1 SD of the feature).
    """
    import statsmodels.api as sm
    ids = dialogues.set_index(dialogues["dialogue_id"].astype(str))[["client_id", "counselor_id"]]
    f = features.join(ids).dropna()
    cols = list(FEATURES)
    Xr = f[cols].astype(float)
    if log:
        Xr = np.log1p(Xr.clip(lower=0))
    sd = Xr.std(ddof=0).replace(0, np.nan)
    Xs = ((Xr - Xr.mean()) / sd).dropna(axis=1)
    X = sm.add_constant(Xs)
    groups = f[["client_id", "counselor_id"]].astype(int).to_numpy()
    enough = min(len(np.unique(groups[:, 0])), len(np.unique(groups[:, 1]))) >= 5
    model = sm.OLS(f["score"].astype(float), X)
    res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}) if enough else model.fit(cov_type="HC3")
    ci = res.conf_int()
    tidy = pd.DataFrame({"coef": res.params, "se": res.bse, "lo": ci[0], "hi": ci[1], "p": res.pvalues})
    tidy.attrs.update(cov_type="two-way cluster (rater, counselor)" if enough else "HC3",
                      n=int(res.nobs), r2=float(res.rsquared))
    return res, tidy


def describe_regression(tidy: pd.DataFrame, rho: dict[str, float]) -> dict[str, str]:
    """Return the sentences the book prints about :func:`feature_regression`, from its numbers.

    ``strongest``: the feature with the largest effect; ``messages``: what client message
    counts add once characters are held fixed, compared with their one-at-a-time *rho*.
    Each sentence is chosen by the signs of the estimates and of their 95 % intervals, so it is
    true on any sample.
    """
    feats = [f for f in FEATURES if f in tidy.index]
    if not feats:
        return {"strongest": "No feature varies enough to be estimated.", "messages": ""}

    def sign(f):
        lo, hi = tidy.loc[f, "lo"], tidy.loc[f, "hi"]
        return 1 if lo > 0 else (-1 if hi < 0 else 0)

    def effect(f):
        r = tidy.loc[f]
        return f"{r['coef']:+.1f} points (95 % interval {r['lo']:+.1f} to {r['hi']:+.1f})"

    top = max(feats, key=lambda f: abs(tidy.loc[f, "coef"]))
    word = {1: "goes with", -1: "goes with", 0: "has no clear effect,"}[sign(top)]
    out = {"strongest": f"The largest effect is the {FEATURES[top].lower()}: an additional standard deviation "
                        f"{word} {effect(top)}, the other four held fixed."}
    f = "client_utterances"
    if f not in tidy.index:
        out["messages"] = ""
        return out
    r = rho.get(f, float("nan"))
    one = "positive" if r > 0 else "negative"
    if sign(f) == -1:
        tail = (f" The {one} one-at-a-time correlation of Figure 4 (ρ = {r:.2f}) is therefore mostly the"
                " overlap of message counts with length." if r > 0 else "")
        out["messages"] = (f"With characters held fixed, more client messages go with a lower score, "
                           f"{effect(f)}: at a given amount of text, many short messages are a worse sign "
                           f"than fewer long ones.{tail}")
    elif sign(f) == 1:
        out["messages"] = (f"Even with characters held fixed, more client messages go with a higher score, "
                           f"{effect(f)}, in the direction of the one-at-a-time correlation (ρ = {r:.2f}).")
    else:
        out["messages"] = (f"With characters held fixed, the number of client messages adds nothing clear, "
                           f"{effect(f)}, although it correlates {one}ly on its own (ρ = {r:.2f}).")
    return out


# ---- dataset comparison (paper Table 1)

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
