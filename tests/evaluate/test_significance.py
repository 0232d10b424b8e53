"""Paired significance tests: agree with sacrebleu's paired_bs/paired_ar, resample dialogues."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kokoro_nb import cli

from kokoro_nb.evaluate import metrics, results
from kokoro_nb.evaluate import significance as S
from kokoro_nb.errors import DataError


def _sacrebleu_bleu():
    from sacrebleu.metrics import BLEU
    return BLEU(tokenize="none", smooth_method="none", effective_order=False)


def _toy(seed=0, n=40):
    rng = np.random.default_rng(seed)
    vocab = list("abcdefgh")
    refs = [" ".join(rng.choice(vocab, size=rng.integers(4, 9))) for _ in range(n)]
    sys_a = [" ".join(w if rng.random() < 0.5 else "z" for w in r.split()) for r in refs]
    sys_b = [" ".join(w if rng.random() < 0.7 else "z" for w in r.split()) for r in refs]
    return refs, sys_a, sys_b


@pytest.mark.parametrize("seed", [1, 7])
def test_paired_bootstrap_matches_sacrebleu_paired_bs(seed):
    """One sentence per unit and sacrebleu's corpus BLEU as the score: the same p-value."""
    from sacrebleu.significance import _paired_bs_test
    refs, a, b = _toy(seed)
    bleu = _sacrebleu_bleu()
    st_a = np.array(bleu._extract_corpus_statistics(a, [refs]), float)
    st_b = np.array(bleu._extract_corpus_statistics(b, [refs]), float)
    res_a = bleu._aggregate_and_compute(st_a.tolist())
    _, got = _paired_bs_test({"BLEU": (st_a.tolist(), res_a)}, "b", b, [refs], {"BLEU": bleu},
                             n_samples=300, seed=seed)
    score = lambda rows: np.array([bleu._compute_score_from_stats(list(r)).score for r in rows])  # noqa: E731
    ours = S.paired_bootstrap(st_a, st_b, score, n_boot=300, seed=seed)
    assert ours["b"] == pytest.approx(got["BLEU"].score)
    assert ours["p_value"] == pytest.approx(got["BLEU"].p_value)
    assert ours["delta"] > 0 and ours["p_value"] < 0.05


def test_approximate_randomization_matches_sacrebleu_paired_ar():
    from sacrebleu.significance import _paired_ar_test
    refs, a, b = _toy(3)
    bleu = _sacrebleu_bleu()
    st_a = np.array(bleu._extract_corpus_statistics(a, [refs]), float)
    st_b = np.array(bleu._extract_corpus_statistics(b, [refs]), float)
    res_a = bleu._aggregate_and_compute(st_a.tolist())
    _, got = _paired_ar_test({"BLEU": (st_a.tolist(), res_a)}, "b", b, [refs], {"BLEU": bleu},
                             n_samples=500, seed=3)
    score = lambda rows: np.array([bleu._compute_score_from_stats(list(r)).score for r in rows])  # noqa: E731
    ours = S.approximate_randomization(st_a, st_b, score, n_trials=500, seed=3)
    assert ours["p_value"] == pytest.approx(got["BLEU"].p_value)


def test_same_system_is_not_significant():
    a = np.column_stack([np.arange(20.0), np.ones(20)])
    bs = S.paired_bootstrap(a, a, n_boot=200, seed=0)
    ar = S.approximate_randomization(a, a, n_trials=200, seed=0)
    assert bs["delta"] == 0 and bs["p_value"] == 1.0 and ar["p_value"] == 1.0


def _per_turn(n_dialogues, turns, shift, noise, seed):
    """Per-turn table whose turns share a strong dialogue effect (correlated within dialogues)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_dialogues):
        level = rng.normal(30, 10)
        for t in range(turns):
            rows.append({"dialogue_id": str(d), "turn": t + 1,
                         **{m: level + shift + rng.normal(0, noise) for m in metrics.PER_TURN_METRICS}})
    return pd.DataFrame(rows)


def test_dialogue_unit_is_wider_than_turn_unit():
    """With correlated turns, resampling turns would understate the uncertainty."""
    a = _per_turn(12, 30, 0.0, 1.0, 0)
    b = a.copy()
    rng = np.random.default_rng(1)
    eff = rng.normal(0, 3, size=12)                          # the difference varies by dialogue
    for m in metrics.PER_TURN_METRICS:
        b[m] = a[m] + 1.0 + eff[a["dialogue_id"].astype(int)]
    by_dialogue = S.compare_turns(a, b, ["BLEU-1"], n_boot=400, n_trials=400)
    by_turn = S.compare_turns(a.assign(dialogue_id=a.index.astype(str)), b.assign(dialogue_id=b.index.astype(str)),
                              ["BLEU-1"], n_boot=400, n_trials=400)
    w = lambda t: t.loc["BLEU-1", "delta_hi"] - t.loc["BLEU-1", "delta_lo"]  # noqa: E731
    assert w(by_dialogue) > 3 * w(by_turn)
    assert by_dialogue.attrs["dialogues"] == 12 and by_dialogue.loc["BLEU-1", "delta"] == pytest.approx(
        float((b["BLEU-1"] - a["BLEU-1"]).mean()))


def test_pair_turns_refuses_different_turns():
    a = _per_turn(3, 2, 0, 1, 0)
    with pytest.raises(DataError, match="1 only in A"):
        S.pair_turns(a, a.iloc[1:])


def test_compare_cli_prints_p_values(tmp_path, capsys):
    lines_a, lines_b = [], []
    rng = np.random.default_rng(0)
    for d in range(8):
        for t in range(1, 4):
            ref = " ".join(rng.choice(list("abcdef"), size=6))
            lines_a.append({"dialogue_id": str(d), "turn": t, "reference": ref, "hypothesis": "a b"})
            lines_b.append({"dialogue_id": str(d), "turn": t, "reference": ref, "hypothesis": ref})
    fa, fb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for f, rows in ((fa, lines_a), (fb, lines_b)):
        f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pa, pb = tmp_path / "a_turns.jsonl", tmp_path / "b_turns.jsonl"
    for f, p in ((fa, pa), (fb, pb)):
        assert cli.main(["-q", "evaluate", "responses", str(f), "--tokenizer", "space", "--bootstrap", "0",
                         "--per-turn", str(p)]) == 0
    per = results.read_per_turn(pb)
    assert len(per) == 24 and per["BLEU-4"].eq(100).all()
    capsys.readouterr()
    assert cli.main(["evaluate", "compare", str(pa), str(pb), "--bootstrap", "200", "--trials", "200",
                     "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["unit"] == "dialogue" and d["dialogues"] == 8
    row = d["metrics"]["BLEU-1"]
    assert row["B"] == pytest.approx(100) and row["delta"] > 0 and row["p_bootstrap"] < 0.05
    assert row["p_randomization"] < 0.05 and row["significant"]
    assert cli.main(["-q", "evaluate", "compare", str(fa), str(pb)]) == 2        # a responses file
    assert "--per-turn" in capsys.readouterr().err
    assert cli.main(["-q", "evaluate", "compare", str(pa), str(pb), "--trials", "0"]) == 2
