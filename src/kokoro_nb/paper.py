"""The paper's published figures as one machine-readable table (``paper_values.yaml``).

Every notebook compares against this table; prose never types a paper number by hand.
:func:`ledger` checks every descriptive figure of the table against a corpus.

>>> load()["table3_overall_statistics"]["dialogues"]
6589
>>> value("figure4_spearman_feature_vs_score.client_total_characters")
0.42
>>> decimals("figure3_score_distribution.median")   # printed as 64.00
2
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import pandas as pd
import yaml

STATUSES = ("exact", "holds", "differs")


@lru_cache(maxsize=1)
def load() -> dict:
    """Return the whole table of published figures."""
    return yaml.safe_load(_text())


def _text() -> str:
    return resources.files("kokoro_nb").joinpath("paper_values.yaml").read_text(encoding="utf-8")


def value(path: str, values: dict | None = None):
    """Return one published figure by its dotted path, e.g. ``"table3_overall_statistics.dialogues"``."""
    node = load() if values is None else values
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]      # a column of a table row, e.g. Table 1
            continue
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no published figure at {path!r} (stopped at {part!r})")
        node = node[part]
    return node


class _Published(float):
    """A float that remembers how many decimals the paper printed (``64.00`` -> 2)."""
    decimals: int


class _PrecisionLoader(yaml.SafeLoader):
    pass


def _float_with_decimals(loader, node):
    text = loader.construct_scalar(node)
    v = _Published(float(text.replace("_", "")))
    mant = text.lower().split("e")[0]
    v.decimals = len(mant.split(".")[1]) if "." in mant else 0
    return v


_PrecisionLoader.add_constructor("tag:yaml.org,2002:float", _float_with_decimals)


@lru_cache(maxsize=1)
def _load_with_precision() -> dict:
    return yaml.load(_text(), Loader=_PrecisionLoader)  # noqa: S506 (a SafeLoader subclass)


def decimals(path: str) -> int:
    """Return the number of decimals a published number was printed with (0 for integers)."""
    v = value(path, _load_with_precision())
    return getattr(v, "decimals", 0)


# --------------------------------------------------------------------------- the ledger

LEDGER_COLUMNS = ("section", "quantity", "paper", "reproduced", "difference", "status", "note", "key", "chapter")


class _Ledger:
    def __init__(self, values: dict | None):
        self.values = values
        self.rows: list[dict] = []
        self.known = value("known_differences", values) if values is None or "known_differences" in values else {}

    def _pub(self, path):
        if self.values is not None:
            return value(path, self.values)
        return value(path, _load_with_precision())

    def number(self, section, quantity, path, reproduced, chapter, *, places=None):
        """A number compared at the precision the paper printed it with."""
        pub = self._pub(path)
        d = places if places is not None else getattr(pub, "decimals", 0 if isinstance(pub, int) else 2)
        ours = float(reproduced)
        exact = math.isfinite(ours) and round(ours, d) == round(float(pub), d)
        diff = round(round(ours, d) - float(pub), d) if math.isfinite(ours) else float("nan")
        self._add(section, quantity, _fmt(pub, d), _fmt(ours, d, extra=0 if d == 0 else 2), diff,
                  "exact" if exact else "differs", path, chapter)

    def text(self, section, quantity, path, reproduced, chapter, key=None):
        """A value compared as text (dates, names, yes/no)."""
        pub = self._pub(path)
        pub, reproduced = (_fmt(v, 0) if isinstance(v, (bool, int)) else str(v) for v in (pub, reproduced))
        self._add(section, quantity, pub, reproduced, float("nan"),
                  "exact" if pub == reproduced else "differs", key or path, chapter)

    def claim(self, section, quantity, path, paper_text, reproduced_text, holds, chapter, key=None):
        """A statement of the paper checked against the data."""
        self._add(section, quantity, paper_text, reproduced_text, float("nan"),
                  "holds" if holds else "differs", key or path, chapter)

    def _add(self, section, quantity, paper_s, ours_s, diff, status, key, chapter):
        self.rows.append({"section": section, "quantity": quantity, "paper": paper_s, "reproduced": ours_s,
                          "difference": diff, "status": status, "note": self.known.get(key, ""),
                          "key": key, "chapter": chapter})


def _fmt(v, d: int, extra: int = 0) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return str(v)
    return f"{v:,.{d + extra}f}" if d + extra else f"{round(v):,}"


# stats.FEATURES name -> key in figure4_spearman_feature_vs_score
FIGURE4_KEYS = {"client_total_chars": "client_total_characters",
                 "counselor_total_chars": "counselor_total_characters",
                 "client_utterances": "client_utterance_count",
                 "counselor_utterances": "counselor_utterance_count",
                 "counselor_mean_response_seconds": "counselor_mean_response_time"}
_SPLIT_KEYS = {"test": "test", "low": "kokoro_low", "high": "kokoro_high", "full": "kokoro_full"}


def ledger(corpus, psy=None, *, values: dict | None = None) -> pd.DataFrame:
    """Return one row per published descriptive figure: paper value, reproduced value, status.

    *corpus* is KokoroChat, *psy* Psy-Insight (its rows are left out when None). *values*
    replaces the packaged table of published figures (tests use it). Numbers are compared at
    the precision the paper printed them with; statements (a shape, "most pairs") are checked
    and marked ``holds`` or ``differs``. ``note`` explains every known difference.
    """
    from . import stats
    from .schema import FLAG_KEYS, ROLES
    L = _Ledger(values)
    d = corpus.dialogues

    o = stats.overall_statistics(corpus)
    t3 = "Table 3"
    L.number(t3, "dialogues", "table3_overall_statistics.dialogues", o["dialogues"], "01")
    for key, pub_key, label in (("speakers", "speakers", "speakers"), ("utterances", "utterances", "utterances"),
                                ("avg_utterances_per_dialogue", "avg_utterances_per_dialogue",
                                 "utterances per dialogue"),
                                ("avg_chars_per_utterance", "avg_length_per_utterance_chars",
                                 "characters per utterance")):
        for who in ("total", *ROLES):
            L.number(t3, f"{label} ({who})", f"table3_overall_statistics.{pub_key}.{who}", o[key][who], "01")
    L.number("Section 4", "distinct counselor-client pairs", "table3_overall_statistics.distinct_counselor_client_pairs",
             stats.counselor_client_pairs(d), "01")
    w = stats.collection_window(corpus)
    L.text("Section 4", "first message", "collection_window.first", w["first"], "01")
    L.text("Section 4", "last message", "collection_window.last", w["last"], "01")
    rules = L._pub("filtering_rules")
    q = stats.quality_rules(corpus, min_utterances=rules["min_utterances"], min_minutes=rules["min_duration_minutes"])
    for k, path, what in (("under_30_utterances", "filtering_rules.min_utterances",
                           f"fewer than {rules['min_utterances']} utterances"),
                          ("under_30_minutes", "filtering_rules.min_duration_minutes",
                           f"shorter than {rules['min_duration_minutes']} minutes"),
                          ("all_items_equal_3", "filtering_rules.drop_if_all_20_items_equal_3",
                           "all 20 items rated 3")):
        L.claim("Section 4 filters", f"dialogues {what}", path, "none (removed before release)",
                f"{q[k]:,}", q[k] == 0, "01")

    shares = stats.topic_shares(d).set_index("topic")["percent"]
    for block, where in (("figure2_topic_share_percent", "Figure 2 (text)"),
                         ("figure2_topic_share_percent_image", "Figure 2 (figure)")):
        for topic in L._pub(block):
            L.number(where, f"share of {topic} (%)", f"{block}.{topic}", shares.get(topic, float("nan")), "02")

    s = stats.score_summary(d)
    L.number("Figure 3", "mean score", "figure3_score_distribution.mean", s["mean"], "03")
    L.number("Figure 3", "median score", "figure3_score_distribution.median", s["median"], "03")
    shape_text = str(L._pub("figure3_score_distribution.shape"))
    shape = stats.score_shape(d)
    if "unimodal" in shape_text:
        L.claim("Figure 3", "shape: unimodal", "figure3_score_distribution.shape", "unimodal",
                f"{shape['n_modes']} mode(s) of the kernel density", shape["n_modes"] == 1, "03",
                key="figure3_score_distribution.shape#unimodal")
    if "skew" in shape_text:
        right = "right skew" in shape_text
        sign = "right (positive)" if shape["skew"] > 0 else "left (negative)"
        L.claim("Figure 3", "shape: direction of skew", "figure3_score_distribution.shape",
                "right" if right else "left",
                f"{sign}: skewness {shape['skew']:+.2f}, mean - median {shape['mean_minus_median']:+.2f}",
                (shape["skew"] > 0) == right, "03", key="figure3_score_distribution.shape#skew")

    rules_pub = L._pub("appendix_a3_adjustment_rules")
    check = stats.score_rule_check(d)
    said = {"zero": "total set to 0", "halve": "total halved", "sum": "total = sum of the 20 items"}
    for rule, name, pub in (("zero (flag 1 or 2)", "flag (1) or (2)", rules_pub["flag_1_or_2"]),
                            ("halve (flag 3)", "flag (3)", rules_pub["flag_3"]),
                            ("item sum (no flag)", "no flag", "sum")):
        part = check[check["rule"] == rule]
        L.claim("Appendix A.3", f"released totals follow the rule: {name}",
                f"appendix_a3_adjustment_rules.{rule}", said.get(str(pub), str(pub)),
                f"{int(part['follows'].sum()):,} of {len(part):,} dialogues",
                len(part) > 0 and bool(part["follows"].all()), "03")
    flags = stats.screening_flag_counts(d)
    for k in FLAG_KEYS:
        L.number("Appendix A.3", f"dialogues flagged {k}", f"appendix_a3_screening_items.{k}", flags[k], "03")
    L.number("Appendix A.3", "dialogues with any flag", "appendix_a3_screening_items.any_flag", flags["any"], "03")

    sizes = stats.split_sizes(corpus)
    for ours, theirs in _SPLIT_KEYS.items():
        for what in ("dialogues", "utterances"):
            try:
                L._pub(f"response_generation_splits.{theirs}.{what}")
            except KeyError:
                continue
            L.number("Section 5.1.1", f"{theirs} split: {what}", f"response_generation_splits.{theirs}.{what}",
                     sizes[ours][what], "03")

    rho = stats.feature_score_spearman(corpus)
    for ours, theirs in FIGURE4_KEYS.items():
        L.number("Figure 4", f"Spearman rho: {stats.FEATURES[ours]} vs score",
                 f"figure4_spearman_feature_vs_score.{theirs}", rho[ours], "04")
    _figure11_rows(L, d)

    cols = L._pub("table1_columns")
    prof = stats.corpus_profile(corpus)
    for col, label in (("has_score", "has a score"), ("score_items", "score items"), ("language", "language")):
        L.text("Table 1", f"KokoroChat: {label}", f"table1_dataset_comparison.KokoroChat.{cols.index(col)}",
               prof[col], "05", key=f"table1_dataset_comparison.KokoroChat#{col}")
    for col, ours, label in (("dialogues", prof["dialogues"], "dialogues"),
                             ("avg_utterances", prof["avg_utterances"], "utterances per dialogue")):
        idx = cols.index(col)
        L.number("Table 1", f"KokoroChat: {label}", f"table1_dataset_comparison.KokoroChat.{idx}", ours, "05")

    if psy is not None:
        _psy_rows(L, psy)
    return pd.DataFrame(L.rows, columns=list(LEDGER_COLUMNS))


def _figure11_rows(L: _Ledger, d) -> None:
    import numpy as np
    from . import stats
    chk = L._pub("figure11_checks")
    corr = stats.item_correlations(d)
    facts = stats.item_correlation_facts(corr, threshold=float(chk["most_pairs_above"]))
    L.claim("Figure 11", f"most item pairs have rho > {chk['most_pairs_above']}", "figure11_checks.most_pairs_above",
            "most pairs", f"{facts['share_above']:.0%} of {facts['pairs']} pairs", facts["share_above"] > 0.5, "04")
    top = facts["top3"]["D1"]
    L.claim("Figure 11", "D1's strongest partners", "figure11_checks.d1_strongest", ", ".join(chk["d1_strongest"]),
            ", ".join(top), set(top) == set(chk["d1_strongest"]), "04")
    off = corr.to_numpy()[np.triu_indices(len(corr), 1)]
    q3 = float(np.nanquantile(off, 0.75)) if off.size else float("nan")
    for a, b in chk["high_pairs"]:
        r = float(corr.loc[a, b])
        L.claim("Figure 11", f"{a}-{b} correlation is high (above the upper quartile of pairs)",
                "figure11_checks.high_pairs", "high", f"rho {r:.2f} (upper quartile {q3:.2f})", r > q3, "04",
                key=f"figure11_checks.high_pairs#{a}-{b}")


def _psy_rows(L: _Ledger, psy) -> None:
    from . import stats
    d, u = psy.dialogues, psy.utterances
    by_lang = d.groupby("language").size()
    per_lang = u.merge(d[["dialogue_id", "language"]], on="dialogue_id").groupby("language").size()
    sec = "Psy-Insight"
    L.number(sec, "sessions (all)", "psy_insight_published.sessions_total", len(d), "05")
    for lang, key in (("en", "english"), ("zh", "chinese")):
        L.number(sec, f"sessions ({key})", f"psy_insight_published.{key}.sessions", by_lang.get(lang, 0), "05")
        L.number(sec, f"turns ({key})", f"psy_insight_published.{key}.turns", per_lang.get(lang, 0), "05")
    prof = stats.corpus_profile(psy, top=len(d))
    shares = dict(prof["top_topics"])
    for name in L._pub("psy_insight_published.top_topics_percent"):
        match = match_topic(name, shares)
        L.number(sec, f"share of {name} (%; data label {match!r})" if match and match != name else f"share of {name} (%)",
                 f"psy_insight_published.top_topics_percent.{name}", shares.get(match, float("nan")), "05")


def match_topic(published: str, labels) -> str | None:
    """Return the data label a published topic name refers to ('Depression' -> 'Ongoing Depression').

    >>> match_topic("Partner Relationship", ["Ongoing Depression", "Partner Relationship Issues"])
    'Partner Relationship Issues'
    """
    labels = list(labels)
    if published in labels:
        return published
    hits = [x for x in labels if published.lower() in str(x).lower()]
    return min(hits, key=len) if hits else None


def ledger_summary(table: pd.DataFrame) -> dict:
    """Count ledger rows by status; ``reproduced`` = exact + holds."""
    counts = table["status"].value_counts().to_dict()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    out.update(rows=len(table), reproduced=out["exact"] + out["holds"],
               known_differences=int((table["note"] != "").sum()))
    return out


# --------------------------------------------------------------------------- comparison tables

def table3_comparison(corpus) -> pd.DataFrame:
    """Return paper Table 3 beside the same statistics computed from *corpus* (rows x who x source)."""
    from . import stats
    from .schema import ROLES
    o = stats.overall_statistics(corpus)
    pub = value("table3_overall_statistics")
    rows = {}
    for key, pub_key, label in (("speakers", "speakers", "speakers"), ("utterances", "utterances", "utterances"),
                                ("avg_utterances_per_dialogue", "avg_utterances_per_dialogue",
                                 "avg. utterances per dialogue"),
                                ("avg_chars_per_utterance", "avg_length_per_utterance_chars",
                                 "avg. characters per utterance")):
        rows[label] = {(who, src): v for who in ("total", *ROLES)
                       for src, v in (("paper", pub[pub_key][who]), ("ours", o[key][who]))}
    rows["dialogues"] = {("total", "paper"): pub["dialogues"], ("total", "ours"): o["dialogues"]}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.loc[["dialogues", "speakers", "utterances", "avg. utterances per dialogue",
                    "avg. characters per utterance"]]


def topic_share_comparison(dialogues) -> pd.DataFrame:
    """Return each topic's count and share beside the share the paper prints (text or figure)."""
    from . import stats
    t = stats.topic_shares(dialogues)
    text, image = value("figure2_topic_share_percent"), value("figure2_topic_share_percent_image")
    t["paper_percent"] = t["topic"].map(lambda x: text.get(x, image.get(x)))
    t["paper_source"] = t["topic"].map(lambda x: "text" if x in text else ("figure" if x in image else ""))
    return t


TABLE1_HEADER = {"human_made": "human-made", "has_score": "score", "score_items": "score items",
                 "language": "language", "dialogues": "dialogues", "avg_utterances": "avg. utterances"}


def table1(corpus=None, psy=None) -> pd.DataFrame:
    """Return paper Table 1: cited rows from the paper, and computed rows for KokoroChat and
    Psy-Insight (English and Chinese separately) when their corpora are given.

    Computed rows add characters per utterance and the top-3 topics; ``source`` says which is which.
    """
    from . import stats
    cols = value("table1_columns")
    rows = []
    for name, vals in value("table1_dataset_comparison").items():
        rows.append({"dataset": name, **dict(zip(cols, vals)), "source": "cited"})
    computed = []
    if corpus is not None:
        computed.append(("KokoroChat", corpus, True))
    if psy is not None:
        for lang in sorted(psy.dialogues["language"].dropna().unique()):
            ids = psy.dialogues.loc[psy.dialogues["language"] == lang, "dialogue_id"]
            computed.append((f"Psy-Insight ({lang})", psy.subset(ids), True))
    for name, c, human in computed:
        p = stats.corpus_profile(c)
        rows.append({"dataset": name, "human_made": human if name == "KokoroChat" else None,
                     "has_score": p["has_score"], "score_items": p["score_items"], "language": p["language"],
                     "dialogues": p["dialogues"], "avg_utterances": round(p["avg_utterances"], 1),
                     "avg_chars_per_utterance": round(p["avg_chars_per_utterance"], 1),
                     "top_topics": "; ".join(f"{t} ({s:.1f} %)" for t, s in p["top_topics"]),
                     "source": "computed"})
    return pd.DataFrame(rows)
