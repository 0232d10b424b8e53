"""Statistics: exact values on a hand-made corpus, and the paper's figures on the real data."""
from __future__ import annotations

import json
import random

import pytest

import kokoro_nb
from kokoro_nb import published
from kokoro_nb.data import splits as S
from kokoro_nb.describe import ledger, stats, variables
from kokoro_nb.cli import main
from kokoro_nb.testing.synthetic import kokorochat_record

# Two dialogues whose statistics are easy to compute by hand.
HAND = {
    "1": {"score": 100, "counselor_id": 7, "client_id": 8, "messages": [
        ("counselor", "00:00:00", "こんにちは"),      # 5 chars
        ("client", "00:01:00", "はい"),              # 2
        ("client", "00:01:30", "相談です"),          # 4
        ("counselor", "00:02:00", "どうぞ"),          # 3   reply 30 s after the last client message
        ("client", "00:40:00", "ありがとう"),        # 5
        ("counselor", "00:40:10", "またね")]},        # 3   reply 10 s
    "2": {"score": 50, "counselor_id": 7, "client_id": 9, "messages": [
        ("client", "00:00:00", "あ"),                # 1
        ("counselor", "00:00:20", "いい"),            # 2   reply 20 s
        ("client", "00:10:00", "ううう")]},          # 3
}


@pytest.fixture
def hand_corpus(tmp_path):
    folder = tmp_path / "kokorochat_dialogues"
    folder.mkdir()
    rng = random.Random(0)
    for did, spec in HAND.items():
        rec = kokorochat_record(rng, int(did))
        rec["dialogue"] = [{"role": r, "time": f"2022-05-0{did}T{t}", "utterance": u}
                           for r, t, u in spec["messages"]]
        en = rec["review_by_client_en"]
        en.update(score=spec["score"], counselor_id=spec["counselor_id"], client_id=spec["client_id"],
                  unwilling_to_continue=None)
        (folder / f"{did}.json").write_text(json.dumps(rec, ensure_ascii=False), encoding="utf-8")
    return kokoro_nb.load_kokorochat(tmp_path, cache=False, progress=False)


def test_overall_statistics_by_hand(hand_corpus):
    o = stats.overall_statistics(hand_corpus)
    assert o["dialogues"] == 2
    assert o["speakers"] == {"total": 3, "counselor": 1, "client": 2}
    assert o["utterances"] == {"total": 9, "counselor": 4, "client": 5}
    assert o["avg_utterances_per_dialogue"] == {"total": 4.5, "counselor": 2.0, "client": 2.5}
    assert o["avg_chars_per_utterance"] == {"total": 28 / 9, "counselor": 13 / 4, "client": 15 / 5}
    assert stats.counselor_client_pairs(hand_corpus.dialogues) == 2


def test_features_by_hand(hand_corpus):
    f = variables.dialogue_features(hand_corpus)
    assert f.loc["1"].to_dict() == {"client_total_chars": 11, "counselor_total_chars": 11, "client_utterances": 3,
                                    "counselor_utterances": 3, "counselor_mean_response_seconds": 20.0,
                                    "score": 100.0}
    assert f.loc["2", "counselor_mean_response_seconds"] == 20.0
    assert f.loc["2", "client_total_chars"] == 4


def test_quality_rules_and_splits_by_hand(hand_corpus):
    q = stats.quality_rules(hand_corpus)
    # both have < 30 utterances; dialogue 2 lasts 10 minutes, dialogue 1 lasts 40
    assert q["under_30_utterances"] == 2 and q["under_30_minutes"] == 1
    splits = S.response_splits(hand_corpus.dialogues)
    assert list(splits["test"]) == ["1"] and list(splits["low"]) == ["2"] and list(splits["high"]) == []
    assert S.split_sizes(hand_corpus)["full"] == {"dialogues": 1, "utterances": 3}
    assert stats.collection_window(hand_corpus) == {"first": "2022-05-01", "last": "2022-05-02"}


def test_flags_topics_and_score_summary(synthetic_kokorochat_dir):
    c = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    flags = stats.screening_flag_counts(c.dialogues)
    assert flags["unwilling_to_continue"] == sum(1 for i in range(1, 21) if i % 7 == 3)
    assert flags["any"] == flags["unwilling_to_continue"]
    shares = stats.topic_shares(c.dialogues)
    assert shares["dialogues"].sum() == 20 and abs(shares["percent"].sum() - 100) < 1e-9
    s = stats.score_summary(c.dialogues)
    assert s["min"] <= s["median"] <= s["max"] and s["mean"] == pytest.approx(c.dialogues["score"].mean())


def test_stats_cli_json_keys(synthetic_kokorochat_dir, capsys):
    assert main(["stats", "--data", str(synthetic_kokorochat_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"dialogues", "speakers", "utterances", "avg_utterances_per_dialogue",
                        "avg_chars_per_utterance", "counselor_client_pairs", "score", "topic_share_percent",
                        "screening_flags", "feature_score_spearman", "splits", "quality_rules", "files"}
    assert set(out["splits"]) == {"test", "low", "high", "full"}
    assert out["files"] == {"found": 20, "loaded": 20, "skipped": 0}


# --------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_table3_reproduces_exactly(real_corpus):
    pub = published.value("table3_overall_statistics")
    o = stats.overall_statistics(real_corpus)
    assert o["dialogues"] == pub["dialogues"]
    assert o["speakers"] == pub["speakers"]
    assert o["utterances"] == pub["utterances"]
    for k in ("total", "counselor", "client"):
        assert round(o["avg_utterances_per_dialogue"][k], 2) == pub["avg_utterances_per_dialogue"][k]
        assert round(o["avg_chars_per_utterance"][k], 2) == pub["avg_length_per_utterance_chars"][k]
    assert stats.counselor_client_pairs(real_corpus.dialogues) == pub["distinct_counselor_client_pairs"]
    assert stats.collection_window(real_corpus) == published.value("collection_window")


@pytest.mark.realdata
def test_section4_figures_reproduce_exactly(real_corpus):
    d = real_corpus.dialogues
    s = stats.score_summary(d)
    pub = published.value("figure3_score_distribution")
    assert round(s["mean"], 2) == pub["mean"] and round(s["median"], 2) == pub["median"]
    # The paper calls the shape "slight right skew"; the released totals have a long left tail
    # (zeroed and halved scores), so the moment skewness is negative: the book reports both.
    assert (s["skew"] < 0) == (s["mean"] < s["median"])
    shares = stats.topic_shares(d).set_index("topic")["percent"]
    for topic, pct in published.value("figure2_topic_share_percent").items():
        assert round(shares[topic], 1) == pct, topic
    flags = stats.screening_flag_counts(d)
    pub = published.value("appendix_a3_screening_items")
    assert flags == {**{k: pub[k] for k in ("harmful_due_to_ignorance", "other_potentially_unethical",
                                            "unwilling_to_continue")}, "any": pub["any_flag"]}
    # the released data is what remains after the section-4 filters
    assert stats.quality_rules(real_corpus) == {"under_30_utterances": 0, "under_30_minutes": 0,
                                                "all_items_equal_3": 0}


@pytest.mark.realdata
def test_figure4_spearman_reproduces_to_two_decimals(real_corpus):
    rho = stats.feature_score_spearman(real_corpus)
    pub = published.value("figure4_spearman_feature_vs_score")
    names = dict(zip(variables.FEATURES, ["client_total_characters", "counselor_total_characters",
                                      "client_utterance_count", "counselor_utterance_count",
                                      "counselor_mean_response_time"]))
    for ours, theirs in names.items():
        assert round(rho[ours], 2) == pub[theirs], ours


@pytest.mark.realdata
def test_stats_cli_on_real_data(kokorochat_dir, capsys):
    assert main(["stats", "--data", str(kokorochat_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dialogues"] == 6589 and out["utterances"]["total"] == 600939
    assert out["counselor_client_pairs"] == 4900
    assert out["files"] == {"found": 6589, "loaded": 6589, "skipped": 0}


@pytest.mark.realdata
def test_real_data_matches_the_upstream_manifest(kokorochat_dir):
    from kokoro_nb.data.sources import verify_kokorochat
    check = verify_kokorochat(kokorochat_dir)
    assert check["ok"] and check["match"] == 6589


@pytest.mark.realdata
def test_psy_insight_real_counts(psy_insight_dir):
    c = kokoro_nb.load_psy_insight(psy_insight_dir)
    pub = published.value("psy_insight_published")
    by_lang = c.dialogues.groupby("language").size().to_dict()
    assert by_lang == {"en": pub["english"]["sessions"], "zh": pub["chinese"]["sessions"]}
    turns = c.utterances.merge(c.dialogues[["dialogue_id", "language"]]).groupby("language").size().to_dict()
    assert turns == {"en": pub["english"]["turns"], "zh": pub["chinese"]["turns"]}
