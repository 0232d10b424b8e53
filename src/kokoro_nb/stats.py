"""Descriptive statistics of the paper's section 4 and Table 3, computed from a :class:`Corpus`.

Notebooks call these functions and only these; each returns plain numbers or a small DataFrame.

>>> from kokoro_nb.synthetic import write_kokorochat
>>> import tempfile, kokoro_nb
>>> c = kokoro_nb.load_kokorochat(write_kokorochat(tempfile.mkdtemp(), 5), cache=False, progress=False)
>>> overall_statistics(c)["dialogues"]
5
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from .corpus import Corpus
from .schema import FLAG_KEYS, ITEM_CODES, ROLES

# Paper section 5.1.1: test = score 99-100; the training subsets are defined on the rest.
SPLIT_RULES = {
    "test": (99, 100),
    "low": (0, 69),
    "high": (70, 98),
    "full": (0, 98),
}
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


def summary(corpus: Corpus) -> dict:
    """Return everything ``kokoro-nb stats --json`` prints, as one JSON-ready dict."""
    d = corpus.dialogues
    out = overall_statistics(corpus)
    out["counselor_client_pairs"] = counselor_client_pairs(d)
    out["collection_window"] = collection_window(corpus)
    s = score_summary(d)
    out["score"] = {k: s[k] for k in ("mean", "median", "std", "min", "max")}
    shares = topic_shares(d)
    out["topic_share_percent"] = dict(zip(shares["topic"], shares["percent"].astype(float)))
    out["screening_flags"] = screening_flag_counts(d)
    out["feature_score_spearman"] = feature_score_spearman(corpus)
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
    p.set_defaults(func=_cmd_stats)


def _cmd_stats(args) -> int:
    from .cli import print_json
    from .corpus import load_kokorochat
    corpus = load_kokorochat(args.data, lenient=args.lenient, cache=not args.no_cache, progress=not args.json)
    result = summary(corpus)
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
    print("splits: " + ", ".join(f"{k} {v['dialogues']:,} dialogues / {v['utterances']:,} utterances"
                                 for k, v in o["splits"].items()))
    f = o["files"]
    print(f"files: {f['found']} found, {f['loaded']} loaded, {f['skipped']} skipped")
    for s in f.get("skipped_reasons", []):
        print(f"  skipped {s['reason']}")
    return 0
