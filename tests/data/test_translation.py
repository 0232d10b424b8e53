"""Multilingual KokoroChat joined to KokoroChat: alignment, exact accounts, download, analyses."""
from __future__ import annotations

import functools
import http.server
import json
import threading

import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb import cli
from kokoro_nb.data import sources, translation
from kokoro_nb.errors import DataError
from kokoro_nb.schema import UTTERANCE_COLUMNS
from kokoro_nb.testing.synthetic import write_kokorochat, write_translation


@pytest.fixture
def pair(tmp_path):
    ja = write_kokorochat(tmp_path / "ja", n_dialogues=8)
    en = write_translation(tmp_path / "en", ja, missing=("3", "7"), empty=(("1", 2), ("5", 0)))
    corpus = kokoro_nb.load_kokorochat(ja, cache=False, progress=False)
    return corpus, ja, en


def test_english_joins_message_by_message_and_accounts_for_every_gap(pair):
    corpus, _, en = pair
    c = corpus.with_english(en)
    assert list(c.utterances.columns) == list(UTTERANCE_COLUMNS)
    r = c.translation
    assert (r.dialogues, r.translated, r.missing) == (8, 6, ["3", "7"])
    assert r.empty == [("1", 2), ("5", 0)]
    u = c.utterances
    untranslated = u["dialogue_id"].isin(["3", "7"])
    assert u.loc[untranslated, "text_en"].isna().all()
    # every other message has English except the two empty ones; Japanese kept as it was
    assert u.loc[~untranslated, "text_en"].isna().sum() == 2
    assert u["text"].equals(corpus.utterances["text"])
    first = u[(u["dialogue_id"] == "1") & (u["position"] == 0)].iloc[0]
    assert first["text_en"] == "Hello. I am the counselor." and first["n_words_en"] == 5
    cov = translation.coverage(c)["count"]
    assert cov["messages with English"] + cov["messages with an empty translation"] + \
        cov["messages of untranslated dialogues"] == cov["messages in KokoroChat"]
    assert list(translation.missing_dialogues(c)["dialogue_id"]) == ["3", "7"]
    assert list(translation.empty_translations(c)["position"]) == [2, 0]


def test_a_sample_keeps_a_consistent_account(pair):
    corpus, _, en = pair
    c = corpus.with_english(en).subset(["1", "3", "4"])
    assert (c.translation.dialogues, c.translation.translated, c.translation.missing) == (3, 2, ["3"])
    assert c.translation.empty == [("1", 2)]
    none = corpus.with_english(en).subset(["2", "4"])        # a sample with no gap at all
    assert translation.missing_dialogues(none).empty
    assert list(translation.empty_translations(none).columns) == ["dialogue_id", "position", "role",
                                                                  "n_chars", "text"]


@pytest.mark.parametrize("edit, field", [
    (lambda rec: rec["dialogue"].pop(), "dialogue"),
    (lambda rec: rec["dialogue"][4].update(origin="違う"), "dialogue[4].origin"),
    (lambda rec: rec["dialogue"][1].update(role="client" if rec["dialogue"][1]["role"] == "counselor"
                                           else "counselor"), "dialogue[1].role"),
    (lambda rec: rec["dialogue"][0].update(content=None), "dialogue[0].content"),
])
def test_a_file_that_does_not_align_is_named(pair, edit, field):
    corpus, _, en = pair
    f = en / "English" / "en2.json"
    rec = json.loads(f.read_text(encoding="utf-8"))
    edit(rec)
    f.write_text(json.dumps(rec, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError) as err:
        corpus.with_english(en)
    assert err.value.field == field and err.value.file.endswith("en2.json")
    c = corpus.with_english(en, lenient=True)
    assert [p.rsplit("/", 1)[-1] for p, _ in c.translation.skipped] == ["en2.json"]
    assert c.translation.translated == 5
    assert c.utterances.loc[c.utterances["dialogue_id"] == "2", "text_en"].isna().all()


def test_word_counts_count_whitespace_words():
    assert list(translation.word_counts(["Hello there.", "", "  one ", "a\nb\tc"])) == [2, 0, 1, 3]


@pytest.mark.parametrize("lang, first_text_column", [("en", "English (Multilingual KokoroChat)"),
                                                     ("ja", "原文（日本語）")])
def test_excerpt_shows_both_languages(pair, lang, first_text_column):
    corpus, _, en = pair
    c = corpus.with_english(en)
    ex = translation.bilingual_excerpt(c, n_messages=4, topic=None, lang=lang)
    assert list(ex.columns)[2] == first_text_column and len(ex.columns) == 4 and len(ex) == 4
    assert ex.attrs["dialogue_id"] not in ("3", "7")      # only translated dialogues are quoted
    with pytest.raises(DataError, match="with_english"):
        translation.bilingual_excerpt(corpus)


def test_length_ratios_and_paired_correlations(tmp_path):
    ja = write_kokorochat(tmp_path / "ja", n_dialogues=40)
    en = write_translation(tmp_path / "en", ja, missing=("3", "7"))
    c = kokoro_nb.load_kokorochat(ja, cache=False, progress=False).with_english(en)
    ratios = translation.length_ratios(c)
    u = c.utterances[c.utterances["text_en"].notna()]
    client = u[u["role"] == "client"]
    assert ratios.loc["client", "en_words_per_ja_char"] == pytest.approx(
        client["n_words_en"].sum() / client["n_chars"].sum())
    feats = translation.length_features(c)
    assert len(feats) == 38 and not {"3", "7"} & set(feats.index)
    corr = translation.length_score_correlations(feats, n_resamples=50)
    assert set(corr.index) == {"counselor", "client"}
    assert (corr["diff_ci_low"] <= corr["diff_ci_high"]).all()
    assert corr["difference"].to_numpy() == pytest.approx((corr["rho_en_words"] - corr["rho_ja_chars"]).to_numpy())


def test_missing_path_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(translation.TRANSLATION_ENV, raising=False)
    with pytest.raises(Exception, match="KOKOROCHAT_EN_DIR"):
        sources.resolve_translation(None, download=False)
    with pytest.raises(Exception, match="no such folder"):
        sources.resolve_translation(tmp_path / "nope")


def test_fetch_downloads_only_the_asked_files_and_checks_them(pair, tmp_path, monkeypatch):
    _, _, en = pair
    monkeypatch.setattr(sources, "TRANSFER_RETRIES", 0)     # the bad hash is not fetched again
    manifest = {f"English/{f.name}": sources.sha256_file(f) for f in (en / "English").glob("*.json")}
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(en))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{{path}}"
    try:
        root = sources.fetch_translation(["1", "2", "3"], tmp_path / "dl", url=url, manifest=manifest,
                                       progress=False)
        # dialogue 3 has no translation: nothing to fetch, nothing invented
        assert sorted(p.name for p in (root / "English").glob("*.json")) == ["en1.json", "en2.json"]
        bad = dict(manifest, **{"English/en4.json": "0" * 64})
        with pytest.raises(DataError, match="SHA-256"):
            sources.fetch_translation(["4"], tmp_path / "dl2", url=url, manifest=bad, progress=False)
    finally:
        server.shutdown()


def test_cli_reports_the_account(pair, capsys):
    _, ja, en = pair
    assert cli.main(["data", "translation", str(en), "--data", str(ja), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["missing"] == ["3", "7"] and out["empty"] == [["1", 2], ["5", 0]]


def test_shipped_manifest_covers_the_english_half():
    m = sources.translation_manifest()
    assert len(m) == 6582 and all(k.startswith("English/en") for k in m)


@pytest.mark.realdata
def test_real_translation_aligns_with_exactly_7_missing_and_78_empty(real_corpus):
    import os
    path = os.environ.get(translation.TRANSLATION_ENV)
    if not path:
        from kokoro_nb import config
        if config.data_required():
            pytest.fail("KOKOROCHAT_EN_DIR is not set (KOKORO_REQUIRE_DATA=1 forbids skipping)")
        pytest.skip("real data not available: set KOKOROCHAT_EN_DIR to Multilingual KokoroChat")
    c = real_corpus.with_english(path)
    r = c.translation
    assert (r.dialogues, r.translated, len(r.empty), r.skipped) == (6589, 6582, 78, [])
    assert r.missing == ["2012", "2243", "3100", "4485", "4665", "5877", "6466"]
    assert int(c.utterances["text_en"].notna().sum()) == len(c.utterances) - 78 - \
        int(c.utterances["dialogue_id"].isin(r.missing).sum())
    assert isinstance(translation.length_ratios(c), pd.DataFrame)


def test_turns_join_english_like_japanese(pair):
    corpus, _, en = pair
    c = corpus.with_english(en)
    t = c.turns()
    multi = t[(t["n_messages"] > 1) & (t["dialogue_id"] == "2")].iloc[0]
    u = c.utterances[c.utterances["dialogue_id"] == "2"]
    parts = u["text_en"].iloc[multi["first_position"]:multi["first_position"] + multi["n_messages"]]
    assert multi["text_en"] == "\n".join(parts)
    assert t.loc[t["dialogue_id"] == "3", "text_en"].isna().all()
    assert corpus.turns()["text_en"].isna().all()          # no translation joined: all <NA>


def test_words_per_char_by_length_sums_within_bins_and_skips_untranslated():
    from types import SimpleNamespace
    u = pd.DataFrame({"n_chars": [3, 5, 6, 100, 2, 50],
                      "n_words_en": pd.array([2, 3, 2, 30, None, 12], dtype="Int64"),
                      "text_en": ["Yes.", "I see, yes.", "Hi there", "long", None, "mid"],
                      "role": pd.Categorical(["client", "client", "counselor", "counselor", "client", "client"])})
    out = translation.words_per_char_by_length(SimpleNamespace(utterances=u))
    assert list(out.columns) == ["ja_len", "role", "n_words_en", "n_chars", "ratio"]
    rows = {(str(r.ja_len), r.role): r for r in out.itertuples()}
    assert set(rows) == {("1–5", "client"), ("6–10", "counselor"), ("41–80", "client"), ("81+", "counselor")}
    assert rows["1–5", "client"].ratio == pytest.approx(5 / 8)       # (2 + 3) words / (3 + 5) characters
    assert rows["81+", "counselor"].ratio == pytest.approx(0.3)
    coarse = translation.words_per_char_by_length(SimpleNamespace(utterances=u), bins=(0, 10, float("inf")),
                                                   names=("short", "long"))
    assert set(coarse["ja_len"].astype(str)) == {"short", "long"}
