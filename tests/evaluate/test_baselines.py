"""Baselines: splits, turn extraction, retrieval, score models; real test set in CI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kokoro_nb.data import splits as S
from kokoro_nb.evaluate import baselines as B
from kokoro_nb import load_kokorochat
from kokoro_nb.evaluate import metrics, tokenize
from kokoro_nb import published
from kokoro_nb.describe import ledger
from kokoro_nb.errors import DataError
from kokoro_nb.schema import ITEM_CODES


@pytest.fixture
def synthetic_corpus(synthetic_kokorochat_dir):
    return load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)


# --------------------------------------------------------------------------- responses

def test_retrieve_replies_picks_the_nearest_context():
    contexts = ["仕事が忙しくて疲れた", "夜に眠れない日が続く", "家族と喧嘩した"]
    replies = ["お仕事大変ですね", "眠れないのはつらいですね", "ご家族とのことなのですね"]
    got = B.retrieve_replies(["最近眠れない", "家族と喧嘩", "仕事で疲れた"], contexts, replies, progress=False)
    assert got == [replies[1], replies[2], replies[0]]


def test_response_baselines_on_synthetic(synthetic_corpus):
    ids = synthetic_corpus.dialogues["dialogue_id"].astype(str).tolist()
    test_ids = ids[:3]
    table, info = B.response_baselines(synthetic_corpus, test_ids, pool_dialogues=10, progress=False)
    assert set(table["dialogue_id"]) == set(test_ids)
    assert info["pool_dialogues"] == 10 and info["test_turns"] == len(table)
    pool = S.response_turns(synthetic_corpus, S.sample_ids(set(ids) - set(test_ids), 10, 42))
    assert (table["constant"] == pool["reference"].value_counts().index[0]).all()
    assert table["copy"].equals(table["previous_counselor"])
    assert set(table["retrieval"]) <= set(pool["reference"])
    res = B.evaluate_response_baselines(table, n_boot=0)
    t = B.response_table(res)
    assert list(t.index) == ["constant", "copy", "retrieval", "human reference"]
    assert t.loc["human reference", "BLEU-1"] != t.loc["human reference", "BLEU-1"]   # NaN: not a system
    assert 0 <= t.loc["copy", "BLEU-1"] <= 100


def test_overlap_guard_catches_a_planted_leak(synthetic_corpus, monkeypatch):
    """Plant a train/test overlap (a test dialogue in the retrieval pool): the guard fails."""
    ids = synthetic_corpus.dialogues["dialogue_id"].astype(str).tolist()
    test_ids = ids[:3]
    S.check_disjoint(ids[3:], test_ids)                                  # the real split passes
    real = B.sample_ids
    monkeypatch.setattr(B, "sample_ids", lambda pool, n, seed: real(pool, n, seed) + [test_ids[0]])
    with pytest.raises(DataError, match="1 test dialogue.*also in the retrieval pool"):
        B.response_baselines(synthetic_corpus, test_ids, pool_dialogues=5, progress=False)


def test_overlap_guard_in_the_score_split(monkeypatch):
    real = B.score_split
    def leaky(ids, seed, test_seed=42):
        s = real(ids, seed, test_seed)
        return {**s, "train": s["train"] + s["test"][:1]}
    monkeypatch.setattr(B, "score_split", leaky)
    with pytest.raises(DataError, match="also in the score training data"):
        from kokoro_nb.testing.synthetic import write_kokorochat
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            c = load_kokorochat(write_kokorochat(d, n_dialogues=30), cache=False, progress=False)
            B.score_baselines(c, seeds=(0,), progress=False)


def test_subset_retrieval_pools(synthetic_corpus):
    ids = synthetic_corpus.dialogues["dialogue_id"].astype(str).tolist()
    synthetic_corpus.dialogues.loc[synthetic_corpus.dialogues.index[:3], "score"] = 99   # the test set
    table, _ = B.response_baselines(synthetic_corpus, ids[:3], pool_dialogues=5, progress=False)
    splits = S.response_splits(synthetic_corpus.dialogues)
    subsets = [s for s in ("low", "high", "full") if len(splits[s])]
    out, info = B.subset_retrieval(synthetic_corpus, table, subsets, pool_dialogues=4, progress=False)
    for s in subsets:
        pool = S.response_turns(synthetic_corpus, S.sample_ids(list(splits[s]), 4, 42))
        assert set(out[f"retrieval-{s}"]) <= set(pool["reference"])
        assert info[s]["pool_dialogues"] == min(4, len(splits[s])) and not set(pool["dialogue_id"]) & set(ids[:3])
        assert info[s]["subset_dialogues"] == len(splits[s])


def test_sensitivity_table_on_synthetic(synthetic_corpus):
    ids = synthetic_corpus.dialogues["dialogue_id"].astype(str).tolist()
    table, _ = B.response_baselines(synthetic_corpus, ids[:3], pool_dialogues=None, progress=False)
    sens = B.sensitivity_table(table, ("copy", "retrieval"))
    assert set(sens.index.get_level_values("tokens")) == {"ja-unidic", "char"}
    ref_char = metrics.distinct([tokenize.get_tokenizer("char")(x) for x in table["reference"]], 1)
    assert sens.loc[("human reference", "char"), "Dist-1 pooled"] == pytest.approx(100 * ref_char)
    # Characters give more matches than words for these Japanese turns.
    assert sens.loc[("copy", "char"), "sentence BLEU-1"] >= sens.loc[("copy", "ja-unidic"), "sentence BLEU-1"]


# --------------------------------------------------------------------------- scores

def test_char_ngram_counts_match_scikit_learn():
    from sklearn.feature_extraction.text import CountVectorizer
    texts = ["こんにちは。よろしく", "眠れない日が続く", "こんにちは、眠れない", "abc abd"]
    X, vocab = B.char_ngram_counts(texts, min_df=1)
    cv = CountVectorizer(analyzer="char", ngram_range=(1, 2), lowercase=False)
    Y = cv.fit_transform(texts)
    ours = pd.DataFrame(X.toarray(), columns=vocab).sort_index(axis=1)
    theirs = pd.DataFrame(Y.toarray(), columns=cv.get_feature_names_out()).sort_index(axis=1)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_char_ngram_vocabulary_comes_from_fit_rows_only():
    X, vocab = B.char_ngram_counts(["あい", "あい", "うえ"], fit_rows=np.array([0, 1]), min_df=2)
    assert sorted(vocab) == ["あ", "あい", "い"]
    assert X[2].sum() == 0


def test_score_baselines_on_synthetic(tmp_path):
    from kokoro_nb.testing.synthetic import write_kokorochat
    corpus = load_kokorochat(write_kokorochat(tmp_path / "k", n_dialogues=40), cache=False, progress=False)
    out = B.score_baselines(corpus, seeds=(0, 1), progress=False)
    runs = out["runs"]
    assert len(runs) == 6 and set(runs["system"]) == set(B.SCORE_SYSTEMS)
    assert out["sizes"] == {"train": 32, "validation": 4, "test": 4}
    d = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))
    sp = S.score_split(d.index, 1)
    mode = d.loc[sp["train"], list(ITEM_CODES)].astype(int).mode().iloc[0].to_numpy()
    assert (out["predictions"][(1, "mode")] == mode).all()
    gold = d.loc[out["test_ids"], list(ITEM_CODES)].astype(int).to_numpy()
    r = metrics.evaluate_scores(gold, out["predictions"][(1, "ridge")], n_boot=0)
    assert r.overall["ACC"] == pytest.approx(runs.query("seed == 1 and system == 'ridge'")["ACC"].item())
    summary = B.summarize_runs(runs)
    assert summary.loc["ridge", ("MAE", "mean")] == pytest.approx(runs.query("system == 'ridge'")["MAE"].mean())
    assert B.per_item_table(out["results"], "mode").shape == (20, 3)


def test_paper_rows_come_from_the_paper_table():
    t4, t5 = B.paper_table4(), B.paper_table5()
    assert t4.loc["Kokoro-High", "BLEU-1"] == published.value("table4_response_generation.Kokoro-High")[0]
    assert list(t5.columns) == ["ACC", "ACC_soft", "MAE"] and "Ours" in t5.index


# --------------------------------------------------------------------------- real data (CI)

@pytest.mark.realdata
@pytest.mark.slow
def test_response_baselines_on_the_real_test_set(real_corpus):
    table, info = B.response_baselines(real_corpus, progress=False)
    assert info["test_dialogues"] == published.value("response_generation_splits.test.dialogues")
    assert info["test_turns"] > 20 * info["test_dialogues"]
    assert info["copy_empty"] <= info["test_dialogues"]
    assert (table["retrieval"].str.len() > 0).all()
    res = B.evaluate_response_baselines(table, n_boot=200)
    t = B.response_table(res)
    assert ((t.drop(index="human reference") >= 0) & (t.drop(index="human reference") <= 100)).all().all()
    # A one-word constant cannot be as diverse or as close to the references as human turns.
    assert t.loc["constant", "Dist-2"] < t.loc["human reference", "Dist-2"]
    assert t.loc["constant", "BLEU-1"] < t.loc["copy", "BLEU-1"]


@pytest.mark.realdata
@pytest.mark.slow
def test_score_baselines_on_the_real_split(real_corpus):
    out = B.score_baselines(real_corpus, progress=False)
    n = len(real_corpus.dialogues)
    assert out["sizes"]["test"] == round(n / 10)
    s = B.summarize_runs(out["runs"])
    # The learned model must beat predicting the training mode.
    assert s.loc["ridge", ("MAE", "mean")] < s.loc["mode", ("MAE", "mean")]
    assert s.loc["ridge", ("ACC_soft", "mean")] > s.loc["mode", ("ACC_soft", "mean")]


def test_comparison_tables_mark_the_source():
    ours = pd.DataFrame([[1.0] * 9], index=["copy"], columns=list(metrics.RESPONSE_METRICS))
    t4 = B.compare_table4(ours)
    assert t4.loc["copy", "source"] == B.COMPUTED
    assert (t4.drop(index="copy")["source"] == "cited: paper Table 4").all() and len(t4) == 6
    runs = pd.DataFrame({"seed": [0, 1], "system": ["mode", "mode"], "ACC": [30.0, 32.0],
                         "ACC_soft": [70.0, 70.0], "MAE": [1.0, 0.9]})
    t5 = B.compare_table5(runs)
    assert t5.loc["mode", "ACC"] == 31.0 and t5.loc["mode", "ACC sd (seeds)"] == pytest.approx(np.sqrt(2))
    assert t5.loc["Ours", "source"] == "cited: paper Table 5"
    assert t5.loc["Ours", "ACC"] == published.value("table5_score_prediction.Ours")[0]
