"""The splits of paper section 5.1.1 (kokoro_nb.data.splits) on synthetic ids and corpora; the
real split sizes against the paper's."""
from __future__ import annotations

import pytest

from kokoro_nb import load_kokorochat, published
from kokoro_nb.data import splits
from kokoro_nb.errors import DataError


@pytest.fixture
def corpus(synthetic_kokorochat_dir):
    return load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)


# --------------------------------------------------------------------------- score prediction (8:1:1)

@pytest.mark.parametrize("n", [10, 101, 6589])
def test_score_split_is_8_1_1_with_a_fixed_test_set(n):
    ids = [str(i) for i in range(n)]
    got = [splits.score_split(ids, seed) for seed in range(5)]
    for sp in got:
        assert len(sp["test"]) == len(sp["validation"]) == round(n / 10)
        assert len(sp["train"]) == n - 2 * round(n / 10)
        assert set(sp["train"]) | set(sp["validation"]) | set(sp["test"]) == set(ids)
        assert not set(sp["train"]) & set(sp["validation"])
        assert not (set(sp["train"]) | set(sp["validation"])) & set(sp["test"])
        assert sp["test"] == got[0]["test"]
    if n > 10:
        assert len({tuple(sp["validation"]) for sp in got}) == 5


def test_score_split_ignores_input_order_and_depends_on_test_seed():
    ids = [str(i) for i in range(200)]
    assert splits.score_split(ids, 3) == splits.score_split(list(reversed(ids)), 3)
    assert splits.score_split(ids, 3)["test"] != splits.score_split(ids, 3, test_seed=7)["test"]


def test_score_split_too_small():
    with pytest.raises(DataError, match="at least 10"):
        splits.score_split(["a", "b"], 0)


# --------------------------------------------------------------------------- response generation

def test_response_turns_match_a_plain_loop(corpus):
    ids = corpus.dialogues["dialogue_id"].astype(str).tolist()[:5]
    got = splits.response_turns(corpus, ids)
    expected = []
    tu = corpus.turns()
    for did in sorted(ids):
        rows = tu[tu["dialogue_id"].astype(str) == did].sort_values("turn")
        last_c = ""
        prev = None
        for r in rows.itertuples():
            if r.role == "counselor" and prev is not None:
                expected.append((did, r.turn, r.text, prev, last_c))
            if r.role == "counselor":
                last_c = r.text
            prev = r.text
    assert list(got.itertuples(index=False, name=None)) == expected
    assert (got["turn"] >= 1).all()



def test_train_validation_split_is_disjoint_seeded_and_order_free():
    ids = [str(i) for i in range(1, 101)]
    a = splits.train_validation_split(ids, seed=1)
    assert len(a["validation"]) == 10 and len(a["train"]) == 90
    assert set(a["train"]).isdisjoint(a["validation"]) and set(a["train"]) | set(a["validation"]) == set(ids)
    assert splits.train_validation_split(list(reversed(ids)), seed=1) == a
    assert splits.train_validation_split(ids, seed=2) != a


def test_response_splits_follow_the_rules_and_sizes_add_up(corpus):
    d = corpus.dialogues
    d.loc[d.index[:2], "score"] = [99, 100]          # two test dialogues
    got = splits.response_splits(d)
    assert set(got) == set(splits.SPLIT_RULES)
    assert sorted(got["test"]) == sorted(d["dialogue_id"].astype(str)[:2])
    assert set(got["full"]) == set(got["low"]) | set(got["high"]) and not set(got["full"]) & set(got["test"])
    sizes = splits.split_sizes(corpus)
    per = d.set_index(d["dialogue_id"].astype(str))["n_utterances"]
    for name, ids in got.items():
        assert sizes[name] == {"dialogues": len(ids), "utterances": int(per.loc[ids].sum())}


def test_response_test_ids_take_the_score_bounds(corpus):
    d = corpus.dialogues
    d.loc[d.index[:3], "score"] = 99
    assert splits.response_test_ids(corpus) == list(splits.response_splits(d)["test"])
    lo = splits.response_test_ids(corpus, min_score=0)
    assert len(lo) == d["score"].between(0, 100).sum()


def test_check_disjoint_and_sample_ids():
    splits.check_disjoint(["1", "2"], ["3"])
    with pytest.raises(DataError, match="2 test dialogue.*also in the pool"):
        splits.check_disjoint([1, 2, 3], ["2", "3"], "pool")
    ids = [str(i) for i in range(50)]
    pick = splits.sample_ids(reversed(ids), 10, seed=1)
    assert len(set(pick)) == 10 and set(pick) <= set(ids) and pick == sorted(pick)
    assert pick == splits.sample_ids(ids, 10, seed=1) != splits.sample_ids(ids, 10, seed=2)
    assert splits.sample_ids(ids, None) == sorted(ids)


# --------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_response_generation_splits_reproduce(real_corpus):
    sizes = splits.split_sizes(real_corpus)
    pub = published.value("response_generation_splits")
    assert sizes["test"]["dialogues"] == pub["test"]["dialogues"]
    for ours, theirs in (("low", "kokoro_low"), ("high", "kokoro_high"), ("full", "kokoro_full")):
        assert sizes[ours]["dialogues"] == pub[theirs]["dialogues"]
        if "utterances" in pub[theirs]:
            assert sizes[ours]["utterances"] == pub[theirs]["utterances"]
