"""The reproduction ledger: every descriptive figure of the paper against what the data give.

:func:`ledger` checks every figure of :mod:`kokoro_nb.published` against a corpus, with the
statistics of :mod:`.stats` and the Table-1 profiles of :mod:`.profiles`; the side-by-side tables
of the chapters (Table 1, Table 3, Figure 2) are here too. The statistics themselves are not
computed here, nor is the ``kokoro-nb reproduce`` command (:mod:`kokoro_nb.cli.describe`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from kokoro_nb.data import splits
from kokoro_nb.describe import profiles, stats
from kokoro_nb.describe.variables import FEATURES
from kokoro_nb.published import _load_with_precision, value
from kokoro_nb.schema import FLAG_KEYS, ITEM_CODES, ITEM_MAX, ITEM_MIN, ITEMS, ROLES

STATUSES = ("exact", "within rounding", "holds", "differs", "not checkable")
# Ledger chapters by number; ``link`` is the page relative to the ledger's own page.
CHAPTERS = {"01": "01_corpus_overview", "02": "02_topics", "03": "03_scores", "04": "04_correlations",
            "05": "05_dataset_comparison", "06": "06_reproduction_ledger",
            "10": "10_train_response_generation", "11": "11_train_score_prediction",
            "12": "12_generate_responses", "20": "20_evaluation_responses", "21": "21_evaluation_scores"}


# --------------------------------------------------------------------------- the ledger

LEDGER_COLUMNS = ("section", "quantity", "paper", "reproduced", "difference", "status", "note", "key", "chapter",
                  "link")


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
        """A number compared at the precision the paper printed it with.

        ``exact``: equal as printed (a count, or 64.00 for 64); ``within rounding``: equal once
        ours is rounded to the paper's decimals; else ``differs`` with the delta at that precision.
        """
        pub = self._pub(path)
        d = places if places is not None else getattr(pub, "decimals", 0 if isinstance(pub, int) else 2)
        ours = float(reproduced)
        finite = math.isfinite(ours)
        if finite and abs(ours - float(pub)) < 1e-9:
            status = "exact"
        elif finite and round(ours, d) == round(float(pub), d):
            status = "within rounding"
        else:
            status = "differs"
        diff = round(round(ours, d) - float(pub), d) if finite else float("nan")
        self._add(section, quantity, _fmt(pub, d), _fmt(ours, d, extra=0 if d == 0 else 2), diff,
                  status, path, chapter)

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

    def unchecked(self, section, quantity, paper_text, reason, key, chapter=""):
        """A published number the release cannot check; *reason* says why."""
        self._add(section, quantity, paper_text, "", float("nan"), "not checkable", key, chapter, note=reason)

    def _add(self, section, quantity, paper_s, ours_s, diff, status, key, chapter, note=None):
        page = CHAPTERS.get(str(chapter), str(chapter)) if chapter else ""
        self.rows.append({"section": section, "quantity": quantity, "paper": paper_s, "reproduced": ours_s,
                          "difference": diff, "status": status,
                          "note": self.known.get(key, "") if note is None else note,
                          "key": key, "chapter": page, "link": f"{page}.html" if page else ""})


def _fmt(v, d: int, extra: int = 0) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return str(v)
    return f"{v:,.{d + extra}f}" if d + extra else f"{round(v):,}"


# variables.FEATURES name -> key in figure4_spearman_feature_vs_score
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
                "modes of a kernel density at bandwidths " + ", ".join(
                    f"{h:g}: {n}" for h, n in shape["n_modes_by_bandwidth"].items()), shape["unimodal"], "03",
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

    sizes = splits.split_sizes(corpus)
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
        L.number("Figure 4", f"Spearman rho: {FEATURES[ours]} vs score",
                 f"figure4_spearman_feature_vs_score.{theirs}", rho[ours], "04")
    _figure11_rows(L, d)

    cols = L._pub("table1_columns")
    prof = profiles.corpus_profile(corpus)
    for col, label in (("has_score", "has a score"), ("score_items", "score items"), ("language", "language")):
        L.text("Table 1", f"KokoroChat: {label}", f"table1_dataset_comparison.KokoroChat.{cols.index(col)}",
               prof[col], "05", key=f"table1_dataset_comparison.KokoroChat#{col}")
    for col, ours, label in (("dialogues", prof["dialogues"], "dialogues"),
                             ("avg_utterances", prof["avg_utterances"], "utterances per dialogue")):
        idx = cols.index(col)
        L.number("Table 1", f"KokoroChat: {label}", f"table1_dataset_comparison.KokoroChat.{idx}", ours, "05")

    _release_rows(L, corpus)
    if psy is not None:
        _psy_rows(L, psy)
    _unchecked_rows(L)
    return pd.DataFrame(L.rows, columns=list(LEDGER_COLUMNS))


def _release_rows(L: _Ledger, corpus) -> None:
    """Statements of sections 3-4 and the data example of Figure 12, checked against the release."""
    d = corpus.dialogues
    minutes = (d["ended_at"] - d["started_at"]).dt.total_seconds() / 60
    med = float(minutes.median()) if len(d) else float("nan")
    hours = L._pub("session_duration.typical_hours")
    L.claim("Section 3.1", "a session typically lasts one hour", "session_duration.typical_hours",
            f"about {hours} hour", f"median {med:.0f} minutes (first to last message)",
            math.isfinite(med) and round(med / 60) == hours, "01")
    o = stats.overall_statistics(corpus)
    L.number("Section 3.2", "participants", "participants.total", o["speakers"]["total"], "01")
    both = set(d["counselor_id"].dropna()) & set(d["client_id"].dropna())
    share = len(both) / o["speakers"]["total"] if o["speakers"]["total"] else float("nan")
    over = float(L._pub("participants.played_both_roles_share_over"))
    L.claim("Section 3.2", "participants who played both roles", "participants.played_both_roles_share_over",
            f"over {over:.0%}", f"{len(both):,} of {o['speakers']['total']:,} ({share:.1%})", share > over, "01")
    L.number("Section 3.3", "feedback items", "table2_scale.items", len(ITEM_CODES), "03")
    items = d[list(ITEM_CODES)].astype(float)
    lo, hi = L._pub("table2_scale.min"), L._pub("table2_scale.max")
    inside = bool(items.stack().between(lo, hi).all()) and (lo, hi) == (ITEM_MIN, ITEM_MAX)
    L.claim("Section 3.3", "each item rated 0-5", "table2_scale.max", f"{lo}-{hi}",
            f"observed {items.min().min():.0f}-{items.max().max():.0f}", inside, "03")
    top = float(d["score"].max())
    L.claim("Section 3.3", "maximum total score", "table2_scale.total_max", f"{L._pub('table2_scale.total_max')}",
            f"highest released total {top:.0f}", top <= L._pub("table2_scale.total_max"), "03")
    L.number("Section 4.1", "predefined issue types", "issue_types", d["topic"].nunique(), "02")
    _figure12_rows(L, corpus)


def find_figure12_example(utterances, values: dict | None = None) -> list[str]:
    """Return the ids of the dialogues that contain every message the paper quotes in Figure 12.

    Messages are compared without white space (the paper's text drops full-width spaces).
    """
    ex = value("figure12_example", values)
    squash = utterances["text"].astype(str).str.replace(r"\s+", "", regex=True)
    ids = None
    for quote in ex["quoted_utterances"]:
        hit = set(utterances.loc[squash == "".join(str(quote).split()), "dialogue_id"].astype(str))
        ids = hit if ids is None else ids & hit
    return sorted(ids or [])


def figure12_feedback(corpus, values: dict | None = None) -> pd.DataFrame:
    """Return the paper's Figure 12 ratings beside the release's for the dialogue it shows (total last)."""
    ex = value("figure12_example", values)
    ids = find_figure12_example(corpus.utterances, values)
    row = corpus.dialogues[corpus.dialogues["dialogue_id"].astype(str) == ids[0]].iloc[0] if len(ids) == 1 else None
    out = pd.DataFrame({"item": [it.label_en for it in ITEMS] + ["total score"],
                        "paper": list(ex["items"]) + [ex["total_score"]],
                        "release": [int(row[it.code]) if row is not None else pd.NA for it in ITEMS]
                        + [int(row["score"]) if row is not None else pd.NA]},
                       index=[it.code for it in ITEMS] + ["total"])
    out["release"] = out["release"].astype("Int64")
    out.attrs["dialogue_id"] = ids[0] if len(ids) == 1 else None
    out.attrs["matches"] = len(ids)
    return out


def _figure12_rows(L: _Ledger, corpus) -> None:
    """Find the paper's data example (Figure 12) in the release and compare its feedback."""
    ex = L._pub("figure12_example")
    ids = find_figure12_example(corpus.utterances, L.values)
    L.claim("Figure 12", "the example dialogue is in the release", "figure12_example.quoted_utterances",
            f"{len(ex['quoted_utterances'])} quoted messages",
            f"dialogue {ids[0]}" if len(ids) == 1 else f"{len(ids)} dialogues contain all of them",
            len(ids) == 1, "03", key="figure12_example#found")
    fb = figure12_feedback(corpus, L.values) if len(ids) == 1 else None
    L.number("Figure 12", "example: total score", "figure12_example.total_score",
             float(fb.loc["total", "release"]) if fb is not None else float("nan"), "03")
    ours = [int(v) for v in fb["release"].iloc[:-1]] if fb is not None else []
    L.claim("Figure 12", "example: the 20 item ratings", "figure12_example.items",
            " ".join(map(str, ex["items"])), " ".join(map(str, ours)) or "not found", ours == list(ex["items"]), "03")


def _unchecked_rows(L: _Ledger) -> None:
    """One row per published number the release cannot check, with the reason."""
    spec = L._pub("not_checkable")
    for table, info in spec["tables"].items():
        block = L._pub(table)
        cols = block.get("columns") if isinstance(block, dict) else None
        cols = cols or L._pub("table1_columns")
        for name, vals in block.items():
            if name == "columns" or name in info.get("rows_except", []) or not isinstance(vals, (list, dict)):
                continue
            groups = vals.items() if isinstance(vals, dict) else [("", vals)]
            for sub, row in groups:
                for col, v in zip(cols, row):
                    if v is None or isinstance(v, bool):
                        continue
                    who = f"{name} {sub}".strip()
                    L.unchecked(info["section"], f"{who}: {col}", _fmt(v, getattr(v, "decimals", 0))
                                if isinstance(v, (int, float)) else str(v), info["reason"],
                                f"{table}.{who}.{col}", info.get("chapter", ""))
    for i, item in enumerate(spec["items"]):
        L.unchecked(f"Section {item['section']}" if item["section"][0].isdigit() else item["section"],
                    item["quantity"], item["paper"], item["reason"], f"not_checkable.items.{i}",
                    item.get("chapter", ""))


def _figure11_rows(L: _Ledger, d) -> None:
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
    d, u = psy.dialogues, psy.utterances
    by_lang = d.groupby("language").size()
    per_lang = u.merge(d[["dialogue_id", "language"]], on="dialogue_id").groupby("language").size()
    sec = "Psy-Insight"
    L.number(sec, "sessions (all)", "psy_insight_published.sessions_total", len(d), "05")
    for lang, key in (("en", "english"), ("zh", "chinese")):
        L.number(sec, f"sessions ({key})", f"psy_insight_published.{key}.sessions", by_lang.get(lang, 0), "05")
        L.number(sec, f"turns ({key})", f"psy_insight_published.{key}.turns", per_lang.get(lang, 0), "05")
    prof = profiles.corpus_profile(psy, top=len(d))
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
    """Count ledger rows by status; ``reproduced`` = exact + within rounding + holds."""
    counts = table["status"].value_counts().to_dict()
    out = {s.replace(" ", "_"): int(counts.get(s, 0)) for s in STATUSES}
    checked = table["status"] != "not checkable"
    out.update(rows=len(table), checked=int(checked.sum()),
               reproduced=out["exact"] + out["within_rounding"] + out["holds"],
               known_differences=int(((table["note"] != "") & checked).sum()),
               unexpected=len(check_ledger(table)))
    return out


def check_ledger(table: pd.DataFrame, known: dict | None = None) -> list[str]:
    """Return one line per row that breaks the reproduction (empty list: all is as expected).

    A row breaks it when it differs without a documented reason in ``known_differences``,
    or when a documented difference no longer differs (the note is then stale).
    """
    known = value("known_differences") if known is None else known
    problems = []
    for r in table.itertuples(index=False):
        if r.status == "differs" and r.key not in known:
            problems.append(f"{r.section}: {r.quantity}: paper {r.paper}, reproduced {r.reproduced}")
    present = dict(zip(table["key"], table["status"]))
    for key in known:
        if key in present and present[key] != "differs":
            problems.append(f"{key}: documented as a difference but now {present[key]}; update known_differences")
    return problems


def write_ledger(table: pd.DataFrame, out_dir) -> dict:
    """Write the ledger as ``reproduction_ledger.csv`` and ``.json`` into *out_dir*; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "reproduction_ledger.csv", "json": out / "reproduction_ledger.json"}
    table.to_csv(paths["csv"], index=False)
    rows = json.loads(table.to_json(orient="records", force_ascii=False))
    paths["json"].write_text(json.dumps({"summary": ledger_summary(table), "rows": rows}, ensure_ascii=False,
                                        indent=1), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- comparison tables

def table3_comparison(corpus) -> pd.DataFrame:
    """Return paper Table 3 beside the same statistics computed from *corpus* (rows x who x source)."""
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
        p = profiles.corpus_profile(c)
        rows.append({"dataset": name, "human_made": human if name == "KokoroChat" else None,
                     "has_score": p["has_score"], "score_items": p["score_items"], "language": p["language"],
                     "dialogues": p["dialogues"], "avg_utterances": round(p["avg_utterances"], 1),
                     "avg_chars_per_utterance": round(p["avg_chars_per_utterance"], 1),
                     "top_topics": "; ".join(f"{t} ({s:.1f} %)" for t, s in p["top_topics"]),
                     "source": "computed"})
    return pd.DataFrame(rows)
