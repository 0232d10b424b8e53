"""Metrics agree with the reference implementations on the same tokens (to TOL)."""
from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest

from kokoro_nb import cli
from kokoro_nb.cli import evaluate as cli_evaluate

from kokoro_nb.evaluate import metrics, results, tokenize
from kokoro_nb.errors import DataError
from kokoro_nb.schema import ITEM_CODES

TOL = 1e-6

# (hypothesis, reference), whitespace-tokenised; degenerate inputs included.
CASES = [
    ("", "a"),                                   # empty hypothesis
    ("a", "a"),                                  # one-token reference, exact
    ("a b", "a"),                                # one-token reference, longer hypothesis
    ("x", "a"),                                  # no overlap
    ("a b c", "a b c d"),                        # hypothesis shorter than 4
    ("the the the the", "the cat"),              # clipping
    ("a b c d e f", "a b c d e f"),              # identical
    ("a x c d y f g", "a b c d e f g"),          # partial overlap
    ("a b a b a b", "b a b a"),                  # repeats, shorter reference
    ("w1 w2 w3 w4 w5", "w5 w4 w3 w2 w1 w0"),     # unigrams only
    ("お 話 を 聞か せ て", "お 話 を 聞か せ て ください 。"),
]
ORDERS = [1, 2, 3, 4]


def _toks(s: str) -> list[str]:
    return s.split()


@pytest.fixture(scope="module")
def ja():
    return tokenize.get_tokenizer("ja-unidic")


# --------------------------------------------------------------------------- tokenizers

@pytest.mark.parametrize("text, expected", [
    ("お話を 聞かせて\nください。", ["お", "話", "を", "聞か", "せ", "て", "ください", "。"]),
    ("はい　そうです！", ["はい", "そう", "です", "！"]),            # full-width space dropped
    ("「つらい」…", ["「", "つらい", "」", "…"]),                      # punctuation kept
    ("", []),
    (" \n\t　", []),
])
def test_ja_unidic_tokens(ja, text, expected):
    assert ja(text) == expected


def test_char_tokenizer_drops_whitespace():
    assert tokenize.get_tokenizer("char")("は い\n。") == ["は", "い", "。"]


def test_tokenizer_signatures_name_versions(ja):
    import importlib.metadata as md
    sig = ja.signature()
    assert md.version("fugashi") in sig and md.version("unidic-lite") in sig
    assert tokenize.get_tokenizer("char").signature().startswith("char")


def test_unknown_tokenizer_names_choices():
    with pytest.raises(DataError, match="ja-unidic"):
        tokenize.get_tokenizer("mecab")


# --------------------------------------------------------------------------- BLEU

@pytest.mark.parametrize("n", ORDERS)
@pytest.mark.parametrize("hyp, ref", CASES)
def test_sentence_bleu_matches_nltk(hyp, ref, n):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    expected = sentence_bleu([_toks(ref)], _toks(hyp), weights=(1 / n,) * n,
                             smoothing_function=SmoothingFunction().method1)
    assert metrics.sentence_bleu(_toks(hyp), _toks(ref), n) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("n", ORDERS)
def test_corpus_bleu_matches_sacrebleu(n):
    from sacrebleu.metrics import BLEU
    hyps, refs = [h for h, _ in CASES], [r for _, r in CASES]
    bleu = BLEU(tokenize="none", smooth_method="none", max_ngram_order=n, force=True)
    expected = bleu.corpus_score(hyps, [refs]).score / 100
    got = metrics.corpus_bleu([_toks(h) for h in hyps], [_toks(r) for r in refs], n)
    assert got == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("n", ORDERS)
def test_corpus_bleu_matches_nltk_when_every_hypothesis_has_n_tokens(n):
    # nltk counts max(1, total) per sentence; with >= n tokens everywhere the two agree.
    from nltk.translate.bleu_score import corpus_bleu
    pairs = [(h, r) for h, r in CASES if len(_toks(h)) >= 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = corpus_bleu([[_toks(r)] for _, r in pairs], [_toks(h) for h, _ in pairs],
                               weights=(1 / n,) * n)
    got = metrics.corpus_bleu([_toks(h) for h, _ in pairs], [_toks(r) for _, r in pairs], n)
    assert got == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", range(3))
def test_sentence_bleu_random_token_lists_match_nltk(seed):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    rng = random.Random(seed)
    for _ in range(200):
        h = [rng.choice("abcde") for _ in range(rng.randint(0, 10))]
        r = [rng.choice("abcde") for _ in range(rng.randint(1, 10))]
        n = rng.randint(1, 4)
        expected = sentence_bleu([r], h, weights=(1 / n,) * n, smoothing_function=SmoothingFunction().method1)
        assert metrics.sentence_bleu(h, r, n) == pytest.approx(expected, abs=TOL)


# --------------------------------------------------------------------------- ROUGE

@pytest.mark.parametrize("hyp, ref", CASES + [("a", ""), ("", "")])
def test_rouge_matches_rouge_score(hyp, ref):
    from rouge_score import rouge_scorer
    tok = tokenize.get_tokenizer("space")
    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tok).score(ref, hyp)
    ours = metrics.f_measure(metrics.rouge_stats(tok(hyp), tok(ref)))
    assert ours == pytest.approx([sc[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")], abs=TOL)


def test_rouge_japanese_needs_our_tokenizer(ja):
    from rouge_score import rouge_scorer
    ref, hyp = "お話を聞かせていただけますか。", "お話を聞かせてください。"
    default = rouge_scorer.RougeScorer(["rouge1"]).score(ref, hyp)["rouge1"].fmeasure
    ours = rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=ja).score(ref, hyp)
    stats = metrics.f_measure(metrics.rouge_stats(ja(hyp), ja(ref)))
    assert default == 0.0                       # the default tokenizer deletes Japanese
    assert stats[0] == pytest.approx(ours["rouge1"].fmeasure, abs=TOL) and stats[0] > 0.5
    assert stats[2] == pytest.approx(ours["rougeL"].fmeasure, abs=TOL)


def _lcs_dp(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            t[i + 1][j + 1] = t[i][j] + 1 if x == y else max(t[i][j + 1], t[i + 1][j])
    return t[-1][-1]


@pytest.mark.parametrize("seed", range(5))
def test_lcs_matches_dynamic_programming(seed):
    rng = random.Random(seed)
    for _ in range(100):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 80))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 80))]
        assert metrics.lcs_length(a, b) == _lcs_dp(a, b)


# --------------------------------------------------------------------------- Distinct

@pytest.mark.parametrize("turns, n, expected", [
    ([["a", "b", "a"]], 1, 2 / 3),
    ([["a", "b"], ["a", "b"]], 2, 1 / 2),
    ([["a"], ["b"]], 2, 0.0),                    # no bigram may cross the turn boundary
    ([["a", "b", "c"], ["c", "d"]], 2, 1.0),
    ([[], []], 1, 0.0),
])
def test_distinct(turns, n, expected):
    assert metrics.distinct(turns, n) == pytest.approx(expected, abs=TOL)


def test_distinct_per_turn_averages_turns():
    assert metrics.distinct_per_turn([["a", "a"], ["a", "b"]], 1) == pytest.approx(0.75)
    assert np.isnan(metrics.distinct_per_turn([["a"]], 2))


# --------------------------------------------------------------------------- response evaluation

def test_evaluate_responses_averages_sentence_scores():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    refs, hyps = [r for _, r in CASES], [h for h, _ in CASES]
    res = metrics.evaluate_responses(refs, hyps, tokenizer="space", n_boot=0)
    for n in ORDERS:
        expected = np.mean([sentence_bleu([_toks(r)], _toks(h), weights=(1 / n,) * n,
                                          smoothing_function=SmoothingFunction().method1)
                            for h, r in CASES])
        assert res.scores[f"BLEU-{n}"] == pytest.approx(100 * expected, abs=TOL)
    assert res.scores["Dist-1"] == pytest.approx(100 * metrics.distinct([_toks(h) for h in hyps], 1))
    assert res.n_empty_hypotheses == 1 and res.n_turns == len(CASES)
    assert "smooth:chen-cherry-1" in res.signature and "tok:space" in res.signature
    assert res.ci == {}


def test_response_bootstrap_is_seeded_and_brackets_the_estimate(ja):
    rng = random.Random(0)
    words = ["はい", "そうですね", "つらかったですね", "お話を聞かせてください", "ありがとうございます"]
    refs = ["".join(rng.choices(words, k=3)) for _ in range(60)]
    hyps = ["".join(rng.choices(words, k=2)) for _ in range(60)]
    dids = [str(i // 6) for i in range(60)]
    a = metrics.evaluate_responses(refs, hyps, dids, tokenizer=ja, n_boot=300, seed=1)
    b = metrics.evaluate_responses(refs, hyps, dids, tokenizer=ja, n_boot=300, seed=1)
    assert a.ci == b.ci
    for name in ("BLEU-1", "ROUGE-L", "corpus BLEU-2"):
        lo, hi = a.ci[name]
        value = a.scores.get(name, a.secondary.get(name))
        assert lo <= value <= hi and lo < hi
    assert a.n_dialogues == 10 and "boot:300,seed=1" in a.signature


# --------------------------------------------------------------------------- score prediction

def test_score_metrics_by_hand():
    gold = [[3, 4, 0], [5, 2, 1]]
    pred = [[3, 2, None], [4, 2, 5]]
    r = metrics.evaluate_scores(gold, pred, n_boot=0, items=("D1", "D2", "D3"))
    it = r.per_item
    assert it["ACC"].tolist() == pytest.approx([50.0, 50.0, 0.0])
    assert it["ACC_soft"].tolist() == pytest.approx([100.0, 50.0, 0.0])   # null counts as wrong
    assert it["MAE"].tolist() == pytest.approx([0.5, 1.0, 4.0])           # MAE on parsed only
    assert it["n_null"].tolist() == [0, 0, 1]
    assert r.overall["ACC"] == pytest.approx(100 / 3)
    assert r.overall["MAE"] == pytest.approx(5.5 / 3)
    assert r.n_null == 1 and r.n_predictions == 6
    assert metrics.NULL_POLICY in r.signature


def test_score_item_all_null_gives_null_mae_in_json():
    r = metrics.evaluate_scores([[3, 4], [2, 2]], [[3, None], [2, None]], n_boot=50, items=("D1", "D2"))
    d = r.as_dict()
    assert d["per_item"]["D2"]["MAE"] is None and d["per_item"]["D2"]["ACC"] == 0.0
    assert d["overall"]["MAE"] == 0.0
    json.dumps(d, allow_nan=False)


def test_score_bootstrap_brackets_estimate():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 6, size=(80, 20))
    pred = np.clip(gold + rng.integers(-2, 3, size=gold.shape), 0, 5).astype(float)
    pred[rng.random(gold.shape) < 0.05] = np.nan
    r = metrics.evaluate_scores(gold, pred, n_boot=400, seed=3)
    for k in metrics.SCORE_METRICS:
        lo, hi = r.ci[k]
        assert lo < r.overall[k] < hi
    assert r.n_null == int(np.isnan(pred).sum())


# --------------------------------------------------------------------------- files and CLI

def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_RESPONSES = [json.dumps({"dialogue_id": str(i // 3), "turn": i % 3 + 1, "reference": r,
                              "hypothesis": h}, ensure_ascii=False)
                  for i, (h, r) in enumerate([("そうなんですね。", "そうだったんですね。"),
                                              ("", "お話を聞かせてください。"),
                                              ("つらかったですね", "それはつらかったですね。"),
                                              ("はい", "はい。"), ("ええ", "そうですね"),
                                              ("ありがとうございます。", "ありがとうございました。")])]


def _scores_line(did="1", gold=None, pred=None):
    return json.dumps({"dialogue_id": did, "gold": gold if gold is not None else [3] * 20,
                       "pred": pred if pred is not None else [3] * 19 + [None]})


@pytest.mark.parametrize("bad, field", [
    ("{not json", None),
    ('["a list"]', None),
    ('{"turn": 1, "reference": "a", "hypothesis": "b"}', "dialogue_id"),
    ('{"dialogue_id": "9", "turn": "1", "reference": "a", "hypothesis": "b"}', "turn"),
    ('{"dialogue_id": "9", "turn": -1, "reference": "a", "hypothesis": "b"}', "turn"),
    ('{"dialogue_id": "9", "turn": 1, "reference": null, "hypothesis": "b"}', "reference"),
    ('{"dialogue_id": "9", "turn": 1, "reference": "a"}', "hypothesis"),
    ('{"dialogue_id": "0", "turn": 1, "reference": "a", "hypothesis": "b"}', "turn"),   # duplicate
])
def test_read_responses_names_the_bad_line(tmp_path, bad, field):
    p = _write(tmp_path / "r.jsonl", GOOD_RESPONSES[:2] + [bad])
    with pytest.raises(DataError) as e:
        results.read_responses(p)
    assert e.value.line == 3 and e.value.file == str(p)
    if field:
        assert e.value.field == field


@pytest.mark.parametrize("bad, field", [
    (_scores_line(gold=[3] * 19), "gold"),
    (_scores_line(gold=[3] * 19 + [None]), "gold[19] (D20)"),        # gold may not be null
    (_scores_line(pred=[3] * 19 + [6]), "pred[19] (D20)"),
    (_scores_line(pred=[True] + [3] * 19), "pred[0] (D1)"),
    (_scores_line(pred=[2.5] + [3] * 19), "pred[0] (D1)"),
    ('{"dialogue_id": "2", "gold": [3]}', "gold"),
    ('{"dialogue_id": "2", "pred": [3]}', "gold"),
    (_scores_line(did="0"), "dialogue_id"),                          # duplicate
])
def test_read_scores_names_the_bad_line(tmp_path, bad, field):
    p = _write(tmp_path / "s.jsonl", [_scores_line(did="0"), "", bad])
    with pytest.raises(DataError) as e:
        results.read_scores(p)
    assert e.value.line == 3 and e.value.field == field


def test_read_scores_accepts_whole_null_prediction(tmp_path):
    p = _write(tmp_path / "s.jsonl", [_scores_line(did="0"), json.dumps({"dialogue_id": "1", "gold": [1] * 20,
                                                                          "pred": None})])
    ids, gold, pred = results.read_scores(p)
    assert ids == ["0", "1"] and gold.shape == (2, 20) and np.isnan(pred[1]).all()
    assert np.isnan(pred[0, 19]) and pred[0, 0] == 3


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no records"):
        results.read_responses(_write(tmp_path / "e.jsonl", [""]))


def test_write_and_read_round_trip(tmp_path):
    import pandas as pd
    df = pd.DataFrame([json.loads(x) for x in GOOD_RESPONSES])
    back = results.read_responses(results.write_responses(tmp_path / "r.jsonl", df))
    assert back.equals(df[list(results.RESPONSE_FIELDS)])
    gold = np.arange(40).reshape(2, 20) % 6
    pred = gold.astype(float)
    pred[1, 3] = np.nan
    ids, g, p = results.read_scores(results.write_scores(tmp_path / "s.jsonl", ["a", "b"], gold, pred))
    assert ids == ["a", "b"] and (g == gold).all() and np.array_equal(p, pred, equal_nan=True)


def test_find_results_sorts_by_layout(tmp_path):
    _write(tmp_path / "gen.jsonl", GOOD_RESPONSES[:1])
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "pred.jsonl", [_scores_line()])
    _write(tmp_path / "notes.jsonl", ['{"x": 1}'])
    found = results.find_results(tmp_path)
    assert [p.name for p in found["responses"]] == ["gen.jsonl"]
    assert [p.name for p in found["scores"]] == ["pred.jsonl"]
    assert [p.name for p in found["other"]] == ["notes.jsonl"]
    assert results.find_results(tmp_path / "missing") == {"responses": [], "scores": [], "other": []}


def test_cli_evaluate_responses_json(tmp_path, capsys):
    p = _write(tmp_path / "r.jsonl", GOOD_RESPONSES)
    assert cli.main(["evaluate", "responses", str(p), "--json", "--bootstrap", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    df = results.read_responses(p)
    lib = metrics.evaluate_responses(df["reference"].tolist(), df["hypothesis"].tolist(),
                                     df["dialogue_id"].tolist(), n_boot=100)
    assert out["scores"]["BLEU-4"] == pytest.approx(lib.scores["BLEU-4"], abs=TOL)
    assert out["n_turns"] == 6 and out["n_empty_hypotheses"] == 1
    assert "ja-unidic" in out["signature"] and len(out["ci"]["BLEU-1"]) == 2


def test_cli_evaluate_scores_text_and_json(tmp_path, capsys):
    p = _write(tmp_path / "s.jsonl", [_scores_line(did=str(i), gold=[i % 6] * 20) for i in range(12)])
    assert cli.main(["evaluate", "scores", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_null"] == 12 and set(out["per_item"]) == set(ITEM_CODES)
    assert out["overall"]["ACC"] == pytest.approx(100 * (2 / 12) * 19 / 20)
    assert cli.main(["evaluate", "scores", str(p), "--bootstrap", "0"]) == 0
    assert "left out of MAE" in capsys.readouterr().out


@pytest.mark.parametrize("what, lines", [
    ("responses", GOOD_RESPONSES[:2] + ['{"dialogue_id": "x", "turn": 1, "reference": 3, "hypothesis": ""}']),
    ("scores", [_scores_line(did="a"), _scores_line(did="b"), _scores_line(did="c", pred=[9] * 20)]),
])
def test_cli_malformed_file_exits_2_naming_the_line(tmp_path, capsys, what, lines):
    p = _write(tmp_path / "bad.jsonl", lines)
    assert cli.main(["evaluate", what, str(p), "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{p}:3" in err and "Traceback" not in err


def test_cli_missing_file_exits_2(tmp_path, capsys):
    assert cli.main(["evaluate", "scores", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_evaluate_results_scores_each_file_or_returns_empty(tmp_path):
    assert results.evaluate_results(tmp_path, "responses").empty
    _write(tmp_path / "a.jsonl", GOOD_RESPONSES)
    _write(tmp_path / "s.jsonl", [_scores_line(did=str(i)) for i in range(3)])
    r = results.evaluate_results(tmp_path, "responses", n_boot=0)
    assert list(r.index) == ["a.jsonl"] and r.loc["a.jsonl", "turns"] == 6
    s = results.evaluate_results(tmp_path, "scores", n_boot=0)
    assert s.loc["s.jsonl", "null"] == 3 and s.loc["s.jsonl", "ACC"] == pytest.approx(95.0)
    with pytest.raises(DataError, match="unknown kind"):
        results.evaluate_results(tmp_path, "other")


def test_score_per_item_intervals_bracket_each_item():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 6, size=(60, 20))
    pred = np.clip(gold + rng.integers(-1, 2, size=gold.shape), 0, 5)
    it = metrics.evaluate_scores(gold, pred, n_boot=300, seed=0).per_item
    for k in metrics.SCORE_METRICS:
        assert (it[f"{k}_lo"] <= it[k]).all() and (it[k] <= it[f"{k}_hi"]).all()
    assert "ACC_lo" not in metrics.evaluate_scores(gold, pred, n_boot=0).per_item


# --------------------------------------------------------------------------- inputs that cannot mislead

def _run_cli(args, capsys):
    code = cli.main(["-q", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("content, words", [
    ("\ufeff" + GOOD_RESPONSES[0] + "\n", ["UTF-8 byte-order mark", ":1:"]),
    (GOOD_RESPONSES[0] + "\n" + GOOD_RESPONSES[1][:-12], ["cut off", ":2:"]),
], ids=["bom", "truncated"])
def test_bad_text_files_give_one_message_and_exit_2(tmp_path, capsys, content, words):
    p = tmp_path / "r.jsonl"
    p.write_text(content, encoding="utf-8")
    code, out, err = _run_cli(["evaluate", "responses", str(p), "--tokenizer", "space"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert all(w in err for w in words) and str(p) in err


def test_non_utf8_names_the_line_and_byte(tmp_path, capsys):
    p = tmp_path / "r.jsonl"
    p.write_bytes((GOOD_RESPONSES[0] + "\n").encode() + GOOD_RESPONSES[1].encode("shift_jis") + b"\n")
    code, out, err = _run_cli(["evaluate", "responses", str(p), "--tokenizer", "space"], capsys)
    assert code == 2 and f"{p}:2: not UTF-8 text" in err and len(err.strip().splitlines()) == 1


def test_utf16_bom_is_named(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes((GOOD_RESPONSES[0] + "\n").encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16 LE byte-order mark"):
        results.read_responses(p)


def test_last_line_without_newline_is_fine_when_complete(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(GOOD_RESPONSES), encoding="utf-8")
    assert len(results.read_responses(p)) == len(GOOD_RESPONSES)


@pytest.mark.parametrize("what", ["responses", "scores"])
def test_negative_bootstrap_is_refused(tmp_path, capsys, what):
    p = _write(tmp_path / "f.jsonl", GOOD_RESPONSES if what == "responses" else [_scores_line()])
    extra = ["--tokenizer", "space"] if what == "responses" else []
    code, out, err = _run_cli(["evaluate", what, str(p), "--bootstrap", "-5", *extra], capsys)
    assert code == 2 and "--bootstrap" in err and "-5" in err and "Traceback" not in err
    with pytest.raises(DataError):
        metrics.evaluate_scores([[1]], [[1]], n_boot=-1, items=("D1",))


def _expected(lines=GOOD_RESPONSES):
    import pandas as pd
    return pd.DataFrame([json.loads(x) for x in lines])[["dialogue_id", "turn", "reference"]]


def _with_test_set(monkeypatch, lines=GOOD_RESPONSES):
    monkeypatch.setattr(cli_evaluate, "_expected_turns", lambda data, min_score: _expected(lines))


@pytest.mark.parametrize("lines, words", [
    (GOOD_RESPONSES[:4], ["2 turn(s) missing", "1/2, 1/3"]),
    (GOOD_RESPONSES + [GOOD_RESPONSES[0].replace('"turn": 1', '"turn": 9')], ["1 turn(s) extra", "0/9"]),
    (GOOD_RESPONSES + [GOOD_RESPONSES[2]], ["1 duplicate", "0/3"]),
    (GOOD_RESPONSES[:5] + [GOOD_RESPONSES[5].replace("ありがとうございました。", "別の文")],
     ["1 turn(s) with a reference that differs", "1/3"]),
], ids=["missing", "extra", "duplicate", "reference"])
def test_responses_must_cover_the_test_set(tmp_path, capsys, monkeypatch, lines, words):
    _with_test_set(monkeypatch)
    p = _write(tmp_path / "r.jsonl", lines)
    args = ["evaluate", "responses", str(p), "--data", "X", "--tokenizer", "space", "--bootstrap", "0"]
    code, out, err = _run_cli(args, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert all(w in err for w in words), err
    code, out, err = _run_cli(args + ["--allow-partial", "--json"], capsys)
    assert code == 0
    cov = json.loads(out)["coverage"]
    assert cov["test_turns"] == 6 and cov["scored_turns"] == json.loads(out)["n_turns"]
    assert cov["share"] == pytest.approx(cov["scored_turns"] / 6)
    assert cov["missing"] + cov["extra"] + cov["duplicate"] + cov["reference_differs"] >= 1


def test_partial_coverage_scores_only_matching_turns(tmp_path, monkeypatch, capsys):
    _with_test_set(monkeypatch)
    p = _write(tmp_path / "r.jsonl", GOOD_RESPONSES[:3] + [GOOD_RESPONSES[0].replace('"turn": 1', '"turn": 7')])
    code, out, _ = _run_cli(["evaluate", "responses", str(p), "--data", "X", "--tokenizer", "space",
                             "--bootstrap", "0", "--allow-partial"], capsys)
    assert code == 0 and "coverage: 3 of 6 test turns (50.0 %); 3 missing, 1 extra" in out
    full = results.evaluate_responses_file(_write(tmp_path / "ok.jsonl", GOOD_RESPONSES[:3]),
                                           tokenizer="space", n_boot=0)
    assert f"{full.scores['BLEU-1']:.2f}" in out               # the extra turn was not scored


def test_duplicates_without_test_set(tmp_path):
    p = _write(tmp_path / "r.jsonl", GOOD_RESPONSES + [GOOD_RESPONSES[1]])
    r = results.evaluate_responses_file(p, tokenizer="space", n_boot=0, allow_partial=True)
    assert r.n_turns == 6 and r.extra["coverage"]["duplicate"] == 1


def test_exact_coverage_passes(tmp_path, monkeypatch, capsys):
    _with_test_set(monkeypatch)
    p = _write(tmp_path / "r.jsonl", list(reversed(GOOD_RESPONSES)))
    code, out, _ = _run_cli(["evaluate", "responses", str(p), "--data", "X", "--tokenizer", "space",
                             "--bootstrap", "0", "--json"], capsys)
    assert code == 0 and json.loads(out)["coverage"]["share"] == 1.0


def test_scores_report_coverage_and_penalised_mae(tmp_path, capsys):
    gold = [[3] * 20, [5] * 20]
    pred = [[3] * 19 + [None], [4] * 19 + [None]]       # D20 never answered
    p = _write(tmp_path / "s.jsonl", [json.dumps({"dialogue_id": str(i), "gold": g, "pred": q})
                                      for i, (g, q) in enumerate(zip(gold, pred))])
    code, out, _ = _run_cli(["evaluate", "scores", str(p), "--json", "--bootstrap", "50"], capsys)
    d = json.loads(out)
    assert code == 0
    assert d["coverage"]["overall"] == pytest.approx(19 / 20) and d["coverage"]["per_item"]["D20"] == 0.0
    assert d["overall"]["MAE"] == pytest.approx(0.5)                      # 19 answered items
    assert d["overall"]["MAE_items_without_answers"] == ["D20"]
    # null = the largest error the gold allows: 3 -> 3, 5 -> 5; D20 averages 4.
    assert d["per_item"]["D20"]["mae_null_penalised"] == pytest.approx(4.0)
    assert d["overall"]["mae_null_penalised"] == pytest.approx((19 * 0.5 + 4.0) / 20)
    assert d["ci"]["mae_null_penalised"][0] <= d["overall"]["mae_null_penalised"] <= d["ci"]["mae_null_penalised"][1]
    code, out, _ = _run_cli(["evaluate", "scores", str(p), "--bootstrap", "0"], capsys)
    assert "no answer at all for item(s) D20" in out and "mae_null_penalised" in out


def test_abstaining_does_not_look_better():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 6, size=(60, 20))
    pred = np.clip(gold + rng.integers(-2, 3, size=gold.shape), 0, 5).astype(float)
    hard = np.abs(pred - gold) >= 2
    abstain = np.where(hard, np.nan, pred)                  # drops exactly its worst answers
    a = metrics.evaluate_scores(gold, pred, n_boot=0).overall
    b = metrics.evaluate_scores(gold, abstain, n_boot=0).overall
    assert b["MAE"] < a["MAE"]                              # what MAE alone would reward
    assert b["mae_null_penalised"] > a["mae_null_penalised"] and b["coverage"] < a["coverage"] == 1.0


# --------------------------------------------------------------------------- guards

def test_resampling_unit_guard_accepts_dialogue_bootstrap():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w, idx = metrics._bootstrap_weights(groups, 50, 0)
    metrics.check_resampling_unit(w[:, idx], groups)


def test_resampling_unit_guard_catches_a_turn_bootstrap():
    """Plant the wrong unit (turns drawn independently) and check that the guard fails."""
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w_turns, idx = metrics._bootstrap_weights(np.arange(len(groups)), 50, 0)   # unit = turn
    with pytest.raises(DataError, match="resample whole dialogues"):
        metrics.check_resampling_unit(w_turns[:, idx], groups)


def test_all_coverage_problems_in_one_message(tmp_path, capsys, monkeypatch):
    _with_test_set(monkeypatch)
    extra = GOOD_RESPONSES[0].replace('"turn": 1', '"turn": 9')
    p = _write(tmp_path / "r.jsonl", GOOD_RESPONSES[1:] + [GOOD_RESPONSES[2], extra])
    code, out, err = _run_cli(["evaluate", "responses", str(p), "--data", "X", "--tokenizer", "space"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "1 turn(s) missing" in err and "1 turn(s) extra" in err and "1 duplicate turn(s)" in err
    assert "first: 0/1" in err and "first: 0/9" in err and "first: 0/3" in err
