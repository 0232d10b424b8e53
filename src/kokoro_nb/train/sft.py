"""Supervised fine-tuning data of paper section 5: response generation and score prediction.

Response generation (5.1): merged turns (:meth:`Corpus.turns`), client -> ``user``, counselor ->
``assistant``, a Japanese counselor system prompt first. Two ways to cut a dialogue into examples:

* ``per_turn`` (the paper): one example per counselor turn, the full history as the prompt and
  the loss on that last counselor turn only (a prompt/completion split);
* ``session``: one example per dialogue with the loss on every counselor turn, each exactly once.

Both are tokenized by one function, :func:`encode_rows`, with the model's own chat template
(``tokenizer.chat_template``), so training, generation (:func:`prompt_ids`) and the counts of
:func:`epoch_budget` see the same tokens. Under causal attention every target token sees the same
prefix in both modes, so for the same weights the per-token losses are identical
(``tests/train/test_sft.py``); what differs is the batching, hence the optimisation path: ``per_turn``
averages over one turn per example and takes many more optimizer steps, ``session`` over whole
dialogues.

Every counselor turn is a training target, including a first greeting that has no history.

Score prediction (5.2): the whole dialogue -> the 20 item scores as lines ``D1: 4`` ... ``D20: 3``
(:func:`format_scores`); :func:`parse_scores` reads model outputs and reports what it could not
parse instead of hiding it; :func:`fit_transcripts` cuts over-long dialogues so the answer fits.
The 8:1:1 split is :func:`kokoro_nb.data.splits.score_split`.

Data only: no model is loaded and nothing is trained here (:mod:`kokoro_nb.train.loop`).

>>> format_scores([3] * 20).splitlines()[:2]
['D1: 3', 'D2: 3']
>>> parse_scores("D1: 4\\nD2: 9").status
'partial'
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb import config
from kokoro_nb.data.corpus import Corpus
from kokoro_nb.data.splits import (
    VALIDATION_FRACTION,
    response_split_ids,
    score_split,
)
from kokoro_nb.errors import DataError
from kokoro_nb.jsonl import write_jsonl
from kokoro_nb.schema import ITEM_CODES, ITEM_MAX, ITEM_MIN, ITEMS

MODES = ("per_turn", "session")
TASKS = ("response", "score")
ROLE_MAP = {"client": "user", "counselor": "assistant"}
TINY_TEMPLATE_FILE = "templates/tiny_chat.jinja"
IGNORE_INDEX = -100                       # label of tokens without loss (PyTorch / TRL convention)

SYSTEM_PROMPT = (
    "あなたは経験豊富な心理カウンセラーです。オンラインのテキストチャットで相談者の話を丁寧に聴き、"
    "受容と共感を示しながら、相談者が自分の悩みを整理し、前に進めるよう支援してください。")
SCORE_SYSTEM_PROMPT = (
    "あなたは心理カウンセリングの評価者です。カウンセラーとクライアントの対話を読み、"
    "クライアントが付けた評価を予測してください。")
SPEAKER_JA = {"counselor": "カウンセラー", "client": "クライアント"}
_SCORE_LINE = re.compile(r"^\s*D\s*(\d{1,2})\s*[:：]\s*(\S+)\s*$")


def tiny_chat_template() -> str:
    """Return the chat template of the tiny smoke model (Llama 3 format); real models bring their own."""
    return resources.files("kokoro_nb").joinpath(TINY_TEMPLATE_FILE).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- response generation

def _check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise DataError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}", field=what)
    return value


def dialogue_turns(corpus: Corpus, dialogue_ids: Iterable | None = None) -> dict[str, list[tuple[str, str]]]:
    """Return ``{dialogue_id: [(role, text), ...]}`` of merged turns, in corpus order."""
    tu = corpus.turns()
    if dialogue_ids is not None:
        wanted = {str(i) for i in dialogue_ids}
        tu = tu[tu["dialogue_id"].astype(str).isin(wanted)]
    ids = tu["dialogue_id"].astype(str).to_numpy()
    roles = tu["role"].astype(str).to_numpy()
    texts = tu["text"].astype(str).to_numpy()
    out: dict[str, list[tuple[str, str]]] = {}
    for did, role, text in zip(ids, roles, texts):
        out.setdefault(did, []).append((role, text))
    return out


def to_messages(turns: Sequence[tuple[str, str]], system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    """Return chat messages: the system prompt (if any), then client -> user, counselor -> assistant."""
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return msgs + [{"role": ROLE_MAP[r], "content": t} for r, t in turns]


def response_examples(corpus: Corpus, dialogue_ids: Iterable | None = None, mode: str = "per_turn", *,
                      system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    """Return conversational SFT examples ``{"dialogue_id", "turn", "messages"}``.

    ``per_turn``: one example per counselor turn (``turn`` = its index), ending with it.
    ``session``: one example per dialogue (``turn`` = its last counselor turn), trailing client
    turns dropped since they carry no loss.
    """
    _check_choice(mode, MODES, "mode")
    out = []
    for did, turns in dialogue_turns(corpus, dialogue_ids).items():
        targets = [k for k, (role, _) in enumerate(turns) if role == "counselor"]
        if not targets:
            continue
        ends = targets if mode == "per_turn" else targets[-1:]
        for k in ends:
            out.append({"dialogue_id": did, "turn": k, "messages": to_messages(turns[:k + 1], system_prompt)})
    return out


def response_datasets(corpus: Corpus, subset: str = "full", mode: str = "per_turn", *,
                      seed: int = config.SEED, validation_fraction: float = VALIDATION_FRACTION,
                      system_prompt: str | None = SYSTEM_PROMPT) -> dict[str, list[dict]]:
    """Return ``{"train", "validation"}`` example lists for response-generation SFT."""
    ids = response_split_ids(corpus, subset, seed, validation_fraction)
    return {k: response_examples(corpus, ids[k], mode, system_prompt=system_prompt)
            for k in ("train", "validation")}


def epoch_budget(corpus: Corpus, dialogue_ids: Iterable | None = None, *, tokenizer=None,
                 max_length: int | None = None, modes: Sequence[str] = MODES,
                 system_prompt: str | None = SYSTEM_PROMPT, progress: bool = False) -> pd.DataFrame:
    """Return what one epoch reads in each mode: examples, characters, target characters, tokens.

    Characters count the turn texts and the system prompt (no template markup). Tokens (only with
    a *tokenizer*) are those of the training rows themselves (:func:`encode_rows` with
    *max_length*): ``tokens`` every input token, ``target_tokens`` those with a loss.
    """
    rows = {}
    for m in modes:
        exs = response_examples(corpus, dialogue_ids, m, system_prompt=system_prompt)
        r = {"examples": len(exs), "characters": sum(len(x["content"]) for e in exs for x in e["messages"]),
             "target_characters": sum(len(e["messages"][-1]["content"]) if m == "per_turn" else
                                      sum(len(x["content"]) for x in e["messages"] if x["role"] == "assistant")
                                      for e in exs)}
        if tokenizer is not None:
            c = count_rows(iter_rows(exs, tokenizer, m, max_length, progress=progress))
            r.update(tokens=c["tokens"], target_tokens=c["target_tokens"])
        rows[m] = r
    df = pd.DataFrame(rows).T
    df.index.name = "mode"
    return df.astype("int64")


# --------------------------------------------------------------------------- score prediction

def format_scores(scores: Sequence[int]) -> str:
    """Return the expected model output: one line ``D<k>: <score>`` per item, in paper order."""
    if len(scores) != len(ITEM_CODES):
        raise DataError(f"need {len(ITEM_CODES)} item scores, got {len(scores)}")
    return "\n".join(f"{code}: {int(v)}" for code, v in zip(ITEM_CODES, scores))


def score_instruction() -> str:
    """Return the user instruction that lists the 20 items and the exact output format."""
    items = "\n".join(f"{it.code}: {it.key_jp}" for it in ITEMS)
    return ("以下の対話について、クライアントが付けた20項目の評価（各0〜5の整数）を予測してください。\n"
            f"評価項目:\n{items}\n"
            f"出力形式: 1行に1項目ずつ「D1: 3」のように、D1からD20まで順に{len(ITEMS)}行だけ出力してください。")


def transcript(turns: Sequence[tuple[str, str]], max_chars: int | None = None) -> str:
    """Return the dialogue as ``カウンセラー: ...`` / ``クライアント: ...`` lines.

    With *max_chars*, the middle is cut (head and tail kept, marked ``（中略）``) so the answer
    still fits the context; None keeps everything.
    """
    return cut_middle("\n".join(f"{SPEAKER_JA[r]}: {t}" for r, t in turns), max_chars)


def cut_middle(text: str, max_chars: int | None) -> str:
    """Keep the first and last *max_chars* / 2 characters, joined by ``（中略）`` (None: keep all)."""
    if max_chars is None or len(text) <= max_chars:
        return text
    head = max_chars // 2
    return text[:head] + "\n（中略）\n" + text[len(text) - (max_chars - head):]


# --------------------------------------------------------------------------- tokenizing with the model's template

_PH = "\ue000{}\ue001"                     # private-use placeholders: never in the data, untouched by trim


def render(messages: Sequence[dict], tokenizer, add_generation_prompt: bool = False) -> str:
    """Render *messages* with the tokenizer's own chat template (what the model sees)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the tokenizer has no chat template; use an instruct model's tokenizer",
                        field="tokenizer.chat_template")
    if not messages:                  # a greeting with no history: transformers refuses empty conversations
        from transformers.utils.chat_template_utils import render_jinja_template
        rendered, _ = render_jinja_template(conversations=[[]], chat_template=tokenizer.chat_template,
                                            add_generation_prompt=add_generation_prompt,
                                            **tokenizer.special_tokens_map)
        return rendered[0]
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def prompt_ids(messages: Sequence[dict], tokenizer) -> list[int]:
    """Return the token ids of a generation prompt: *messages* plus the assistant header."""
    return tokenizer(prompt_text(messages, tokenizer), add_special_tokens=False)["input_ids"]


def prompt_text(history: Sequence[dict], tokenizer) -> str:
    """Return the generation prompt after *history* as it appears inside the whole conversation."""
    prompt = render(history, tokenizer, True)
    if not history and tokenizer.bos_token and not prompt.startswith(tokenizer.bos_token):
        prompt = tokenizer.bos_token + prompt      # templates put BOS on the first message only
    return prompt


def _exact_bounds(messages: Sequence[dict], tokenizer) -> tuple[list[int], list[int | None]]:
    """Return, per message, the character end of its block and (assistant) where its completion starts.

    Definitions: message i ends where ``render(messages[:i+1])`` ends; an assistant message's
    completion starts where ``render(messages[:i], add_generation_prompt=True)`` ends.
    """
    full = render(messages, tokenizer)
    ends, starts = [], []
    for i, m in enumerate(messages):
        upto = render(messages[:i + 1], tokenizer)
        start = None
        if m["role"] == "assistant":
            prompt = prompt_text(messages[:i], tokenizer)
            if not upto.startswith(prompt):
                raise DataError("the chat template renders a prompt that is not a prefix of the same "
                                "conversation with its answer; per-turn targets are undefined",
                                field="tokenizer.chat_template")
            start = len(prompt)
        if not full.startswith(upto):
            raise DataError("the chat template renders a conversation prefix differently from the whole "
                            "conversation", field="tokenizer.chat_template")
        ends.append(len(upto))
        starts.append(start)
    return ends, starts


def _layout(tokenizer, first_role: str) -> dict | None:
    """Learn, on a probe conversation, where blocks end and completions start relative to contents."""
    cache = tokenizer.__dict__.setdefault("_kokoro_layout", {})
    key = (tokenizer.chat_template, first_role)
    if key in cache:
        return cache[key]
    d_end, d_start, out = {}, set(), None
    for rest in (["assistant", "user"] * 3, ["user", "assistant"] * 3):     # each role at odd and even places
        probe = [{"role": r, "content": _PH.format(i)} for i, r in enumerate([first_role] + rest)]
        text = render(probe, tokenizer)
        ends, starts = _exact_bounds(probe, tokenizer)
        for i, m in enumerate(probe):
            c0 = text.index(m["content"])
            d_end.setdefault(m["role"], set()).add(ends[i] - (c0 + len(m["content"])))
            if starts[i] is not None:
                d_start.add(starts[i] - c0)
    if all(len(v) == 1 for v in d_end.values()) and len(d_start) == 1:   # position-independent template
        out = {"end": {r: v.pop() for r, v in d_end.items()}, "start": d_start.pop()}
    cache[key] = out
    return out


def _fast_bounds(messages: Sequence[dict], tokenizer) -> tuple[list[int], list[int | None]] | None:
    """As :func:`_exact_bounds` in three renders (placeholders); None when the template is irregular."""
    lay = _layout(tokenizer, messages[0]["role"])
    if lay is None or any(r not in lay["end"] for r in {m["role"] for m in messages}):
        return None
    ph = render([{"role": m["role"], "content": _PH.format(i)} for i, m in enumerate(messages)], tokenizer)
    pieces, cursor, ends, starts, pos = [], 0, [], [], 0
    for i, m in enumerate(messages):
        mark = _PH.format(i)
        at = ph.index(mark, cursor)
        pieces.append(ph[cursor:at])
        pos += at - cursor
        content = m["content"].strip()
        starts.append(pos + lay["start"] if m["role"] == "assistant" else None)
        pieces.append(content)
        pos += len(content)
        ends.append(pos + lay["end"][m["role"]])
        cursor = at + len(mark)
    pieces.append(ph[cursor:])
    full = render(messages, tokenizer)
    if "".join(pieces) != full or ends[-1] != len(full):          # e.g. a template that does not trim
        return None
    assistants = [i for i, s in enumerate(starts) if s is not None]
    for i in {assistants[0], assistants[-1]} if assistants else ():       # spot checks of the definition
        if (len(prompt_text(messages[:i], tokenizer)) != starts[i]
                or len(render(messages[:i + 1], tokenizer)) != ends[i]):
            return None
    return ends, starts


def encode_dialogue(messages: Sequence[dict], tokenizer) -> dict:
    """Tokenize a conversation once; return ids and, per message, token bounds.

    ``ends[i]``: tokens up to the end of message i; ``starts[i]`` (assistant messages): tokens of
    its generation prompt, so ``input_ids[:starts[i]] == prompt_ids(messages[:i])`` and the
    completion is ``input_ids[starts[i]:ends[i]]`` (its text and the end-of-turn token).
    """
    bounds = _fast_bounds(messages, tokenizer) or _exact_bounds(messages, tokenizer)
    text = render(messages, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    off = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    first = np.searchsorted(off[:, 0], np.asarray([b for b in bounds[0]] + [b for b in bounds[1] if b is not None]),
                            side="left")
    n_end = len(bounds[0])
    ends = first[:n_end].tolist()
    it = iter(first[n_end:].tolist())
    starts = [next(it) if b is not None else None for b in bounds[1]]
    return {"input_ids": list(enc["input_ids"]), "ends": ends, "starts": starts}


def _session_windows(messages: Sequence[dict], enc: dict, tokenizer, max_length: int, info: dict):
    """Yield rows that train each assistant turn of *messages* once, each row within *max_length*."""
    has_sys = messages[0]["role"] == "system"
    head = enc["ends"][0] if has_sys else 0
    ends = enc["ends"]
    targets = [i for i, s in enumerate(enc["starts"]) if s is not None]
    before = lambda j: ends[j - 1] if j else 0            # tokens before message j
    windows, j, cur = [], has_sys, []
    for t in targets:
        if cur and head + ends[t] - before(j) > max_length:
            windows.append((j, cur))
            j, cur = cur[-1] + 1, []
        if not cur:                                        # as much history as fits before turn t
            while j < t and head + ends[t] - before(j) > max_length:
                j += 1
        cur.append(t)
    windows.append((j, cur))
    for j, turns in windows:
        msgs = list(messages[:has_sys]) + list(messages[j:turns[-1] + 1])
        e = encode_dialogue(msgs, tokenizer)
        shift = j - has_sys
        spans = [(e["starts"][t - shift], e["ends"][t - shift]) for t in turns]
        row = _row(e["input_ids"], spans)
        if len(row["input_ids"]) > max_length:             # a single turn longer than max_length
            info["targets_past_max_length"] += sum(b > max_length for _, b in spans)
            row = {key: v[:max_length] for key, v in row.items()}
        info["session_windows"] += 1
        yield row


def _row(ids: Sequence[int], spans: Iterable[tuple[int, int]]) -> dict:
    # TRL >= 1.16 takes "labels" as they are; earlier 1.x builds them in the collator from
    # "completion_mask" (completion_only_loss=True): both say the same thing
    labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    for a, b in spans:
        labels[a:b] = np.asarray(ids[a:b])
    return {"input_ids": list(ids), "labels": labels.tolist(),
            "completion_mask": (labels != IGNORE_INDEX).astype(np.int8).tolist()}


def _fitted_turn(messages: Sequence[dict], enc: dict, k: int, tokenizer, max_length: int,
                 verified: dict) -> tuple[dict, bool]:
    """Row for assistant message *k* with the oldest history dropped until it fits *max_length*.

    The row is cut from the dialogue's tokens (system block + the kept messages) once a first
    such cut of the dialogue has been checked against tokenizing the shortened conversation;
    a template whose blocks depend on their position falls back to tokenizing every row.
    """
    has_sys = messages[0]["role"] == "system"
    head = enc["ends"][0] if has_sys else 0
    before = lambda j: enc["ends"][j - 1] if j else 0
    j = has_sys
    while j < k and head + enc["ends"][k] - before(j) > max_length:
        j += 1
    ids = enc["input_ids"]
    cut = ids[:head] + ids[before(j):enc["ends"][k]]
    start = len(cut) - (enc["ends"][k] - enc["starts"][k])
    if verified.get("ok") is None:
        e = encode_dialogue(list(messages[:has_sys]) + list(messages[j:k + 1]), tokenizer)
        verified["ok"] = e["input_ids"] == cut and e["starts"][-1] == start
    if verified["ok"]:
        return _row(cut, [(start, len(cut))]), j > has_sys
    while True:
        e = encode_dialogue(list(messages[:has_sys]) + list(messages[j:k + 1]), tokenizer)
        if len(e["input_ids"]) <= max_length or j >= k:
            return _row(e["input_ids"], [(e["starts"][-1], e["ends"][-1])]), j > has_sys
        j += 1


def iter_rows(examples: Sequence[dict], tokenizer, mode: str, max_length: int | None = None, *,
              info: dict | None = None, progress: bool = False):
    """Tokenize response examples into training rows ``{"input_ids", "labels"}`` (-100: no loss).

    ``per_turn``: the loss on the example's last counselor turn only; the oldest history is dropped
    when the example exceeds *max_length*. ``session``: the loss on every counselor turn, each once;
    a dialogue longer than *max_length* becomes consecutive windows, each starting with the system
    prompt and as much history as fits (context only) before its own turns. A per-turn example is a prefix of its
    dialogue, so each dialogue is tokenized once. Yields rows; adds counts to *info*.
    """
    _check_choice(mode, MODES, "mode")
    groups: dict = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.get("dialogue_id", i), []).append(ex)
    info = {} if info is None else info
    for key in ("history_shortened", "targets_past_max_length", "session_windows"):
        info.setdefault(key, 0)
    items = groups.values()
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="tokenize", unit="dlg")
    for exs in items:
        longest = max(exs, key=lambda e: len(e["messages"]))["messages"]
        enc = encode_dialogue(longest, tokenizer)
        verified: dict = {}
        ids = enc["input_ids"]
        for ex in exs:
            k = len(ex["messages"]) - 1
            if mode == "per_turn":
                if max_length is not None and enc["ends"][k] > max_length:
                    row, cut = _fitted_turn(longest, enc, k, tokenizer, max_length, verified)
                    info["history_shortened"] += cut
                else:
                    row = _row(ids[:enc["ends"][k]], [(enc["starts"][k], enc["ends"][k])])
            elif max_length is None or enc["ends"][k] <= max_length:
                spans = [(a, b) for a, b in zip(enc["starts"][:k + 1], enc["ends"][:k + 1]) if a is not None]
                row = _row(ids[:enc["ends"][k]], spans)
            else:
                for row in _session_windows(longest[:k + 1], enc, tokenizer, max_length, info):
                    yield row
                continue
            yield row


def encode_rows(examples: Sequence[dict], tokenizer, mode: str, max_length: int | None = None, *,
                progress: bool = False) -> tuple[list[dict], dict]:
    """Return (rows, counts) of :func:`iter_rows` as a list."""
    info: dict = {}
    rows = list(iter_rows(examples, tokenizer, mode, max_length, info=info, progress=progress))
    return rows, info


def mark_targets(row: dict, tokenizer, left: str = "⟦", right: str = "⟧") -> str:
    """Decode a training row with the tokens that carry loss between *left* and *right*.

    >>> from kokoro_nb.train.models import train_tokenizer
    >>> tok = train_tokenizer(["はい", "そうですね"], 300)
    >>> msgs = [{"role": "user", "content": "はい"}, {"role": "assistant", "content": "そうですね"}]
    >>> mark_targets(encode_rows([{"messages": msgs}], tok, "per_turn")[0][0], tok).endswith("⟦そうですね<|eot_id|>⟧")
    True
    """
    out, ids, labels = [], row["input_ids"], row["labels"]
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (labels[i] == IGNORE_INDEX) != (labels[start] == IGNORE_INDEX):
            text = tokenizer.decode(ids[start:i])
            out.append(text if labels[start] == IGNORE_INDEX else left + text + right)
            start = i
    return "".join(out)


def count_rows(rows: Iterable[dict]) -> dict:
    """Return ``{"examples", "tokens", "target_tokens"}`` of tokenized rows."""
    n = t = y = 0
    for r in rows:
        n += 1
        t += len(r["input_ids"])
        y += sum(v != IGNORE_INDEX for v in r["labels"])
    return {"examples": n, "tokens": t, "target_tokens": y}


def message_lengths(messages: Sequence[dict], tokenizer) -> tuple[int, list[int]]:
    """Return (tokens up to the end of the system message, tokens of each later message)."""
    ends = encode_dialogue(messages, tokenizer)["ends"]
    has_sys = bool(messages) and messages[0]["role"] == "system"
    head = ends[0] if has_sys else 0
    rest = ends[has_sys:]
    return head, np.diff([head] + rest).tolist()


def fit_history(examples: list[dict], tokenizer, max_length: int | None) -> tuple[list[dict], int]:
    """Drop the oldest messages (never the system prompt or the last one) until each example fits.

    Returns (examples, how many were shortened). Each example keeps its last message, so a
    per-turn target is never cut; an example whose last message alone is too long is kept as is.
    Generation prompts are measured with the assistant header they end with.
    """
    if max_length is None:
        return examples, 0
    out, n_cut = [], 0
    for ex in examples:
        msgs = ex["messages"]
        has_sys = msgs[0]["role"] == "system"
        head, lens = message_lengths(msgs, tokenizer)
        total, start = head + sum(lens), 0
        if msgs[-1]["role"] != "assistant":            # a generation prompt: count its header too
            total = len(prompt_ids(msgs, tokenizer))
        while total > max_length and start < len(lens) - 1:
            total -= lens[start]
            start += 1
        if start:
            n_cut += 1
            ex = {**ex, "messages": msgs[:has_sys] + msgs[has_sys + start:]}
        out.append(ex)
    return out, n_cut


def score_examples(corpus: Corpus, dialogue_ids: Iterable | None = None, *,
                   system_prompt: str | None = SCORE_SYSTEM_PROMPT,
                   max_chars: int | None = None) -> list[dict]:
    """Return ``{"dialogue_id", "gold", "messages"}``: system, user (instruction + dialogue), assistant."""
    d = corpus.dialogues
    gold = d.set_index(d["dialogue_id"].astype(str))[list(ITEM_CODES)]
    out = []
    for did, turns in dialogue_turns(corpus, dialogue_ids).items():
        g = gold.loc[did]
        if g.isna().any():
            raise DataError("missing item scores", file=f"{did}.json", field=",".join(g.index[g.isna()]))
        scores = [int(v) for v in g]
        user = score_instruction() + "\n\n対話:\n" + transcript(turns, max_chars)
        msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": format_scores(scores)}]
        out.append({"dialogue_id": did, "gold": scores, "messages": msgs})
    return out


def fit_transcripts(examples: list[dict], tokenizer, max_length: int | None) -> tuple[list[dict], int]:
    """Cut the middle of over-long score transcripts so the prompt and the 20 answer lines fit *max_length*.

    Returns (examples, how many were cut); None keeps everything. Training and generation both
    use it, so a model is asked the prompt it was trained on.
    """
    if max_length is None:
        return examples, 0
    out, n_cut = [], 0
    for ex in examples:
        msgs = ex["messages"]
        for _ in range(6):
            head, lens = message_lengths(msgs, tokenizer)
            total = head + sum(lens)
            if total <= max_length:
                break
            user = msgs[-2]["content"]
            instr, _, text = user.partition("対話:\n")
            allowed_chars = (max_length - (total - lens[-2])) * len(user) / max(lens[-2], 1)
            keep = int(0.97 * allowed_chars) - len(instr) - 20
            if keep < 100 or len(text) <= 100:
                raise DataError(f"{max_length} tokens cannot hold the score prompt, the answer and 100 "
                                f"characters of dialogue ({total} tokens now); raise max_length",
                                field="max_length")
            text = cut_middle(text, keep)
            msgs = msgs[:-2] + [{"role": "user", "content": instr + "対話:\n" + text}, msgs[-1]]
        if msgs is not ex["messages"]:
            n_cut += 1
            ex = {**ex, "messages": msgs}
        out.append(ex)
    return out, n_cut


def score_datasets(corpus: Corpus, seed: int = config.SCORE_SPLIT_SEEDS[0], *, test_seed: int = config.SEED,
                   system_prompt: str | None = SCORE_SYSTEM_PROMPT,
                   max_chars: int | None = None) -> dict[str, list[dict]]:
    """Return train / validation / test score examples on the 8:1:1 split (test fixed by *test_seed*)."""
    split = score_split(corpus.dialogues["dialogue_id"].astype(str), seed, test_seed)
    return {k: score_examples(corpus, ids, system_prompt=system_prompt, max_chars=max_chars)
            for k, ids in split.items()}


@dataclass(frozen=True)
class ParsedScores:
    """One parsed model output: 20 values (None where missing) and ok | partial | unparseable."""
    values: list
    status: str
    problem: str = ""


def parse_scores(text: str) -> ParsedScores:
    """Read ``D<k>: <0-5>`` lines from a model output.

    Lines that are not item lines are ignored; an item given twice with different values, or out
    of range, becomes None. ``ok`` = all 20 items; ``partial`` = some; ``unparseable`` = none.

    >>> p = parse_scores(format_scores(range(20)))
    >>> p.status, p.values[:3], p.values[6:8]
    ('partial', [0, 1, 2], [None, None])
    """
    values: dict[int, int | None] = {}
    problems = []
    for line in (text or "").splitlines():
        m = _SCORE_LINE.match(line)
        if not m:
            continue
        k, raw = int(m.group(1)), m.group(2)
        if not 1 <= k <= len(ITEM_CODES):
            problems.append(f"unknown item D{k}")
            continue
        v = int(raw) if raw.isdigit() and ITEM_MIN <= int(raw) <= ITEM_MAX else None
        if v is None:
            problems.append(f"D{k}={raw!r} not in {ITEM_MIN}-{ITEM_MAX}")
        if k in values and values[k] != v:
            problems.append(f"D{k} given twice")
            v = None
        values[k] = v
    out = [values.get(k) for k in range(1, len(ITEM_CODES) + 1)]
    n = sum(v is not None for v in out)
    status = "ok" if n == len(out) else "partial" if n else "unparseable"
    if n < len(out) and not problems:
        problems.append(f"{len(out) - n} items missing")
    return ParsedScores(out, status, "; ".join(problems))


def parse_score_outputs(texts: Iterable[str]) -> tuple[list[list], dict[str, int]]:
    """Parse many outputs; return (values per output, counts of ok / partial / unparseable)."""
    counts = {"ok": 0, "partial": 0, "unparseable": 0}
    values = []
    for t in texts:
        p = parse_scores(t)
        counts[p.status] += 1
        values.append(p.values)
    return values, counts


# --------------------------------------------------------------------------- files

def write_sft_data(corpus: Corpus, output_dir: str | Path | None, *, task: str = "response",
                   subset: str = "full", mode: str = "per_turn", seed: int | None = None,
                   validation_fraction: float = VALIDATION_FRACTION,
                   system_prompt: str | None = None, max_chars: int | None = None, tokenizer=None,
                   max_length: int | None = 4096) -> dict:
    """Build the SFT data of *task*, write ``<split>.jsonl`` under *output_dir* (None: don't write).

    Returns ``{"task", "dialogues": {split: n}, "examples": {split: n}, "files": {split: path}}``;
    with a *tokenizer*, also ``tokens`` and ``target_tokens`` per split (one epoch), counted on
    the training rows themselves (:func:`iter_rows`, *max_length* as in training).
    """
    _check_choice(task, TASKS, "task")
    if task == "response":
        seed = config.SEED if seed is None else seed
        ids = response_split_ids(corpus, subset, seed, validation_fraction)
        prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
        data = {k: response_examples(corpus, ids[k], mode, system_prompt=prompt) for k in ("train", "validation")}
        info = {"task": task, "subset": subset, "mode": mode, "seed": seed,
                "dialogues": {k: len(v) for k, v in ids.items()}}
    else:
        if validation_fraction != VALIDATION_FRACTION:
            raise DataError("the score split is the paper's fixed 8:1:1; --validation-fraction applies "
                            "to the response task only", field="validation_fraction")
        seed = config.SCORE_SPLIT_SEEDS[0] if seed is None else seed
        ids = score_split(corpus.dialogues["dialogue_id"].astype(str), seed, config.SEED)
        prompt = SCORE_SYSTEM_PROMPT if system_prompt is None else system_prompt
        data = {k: score_examples(corpus, v, system_prompt=prompt, max_chars=max_chars) for k, v in ids.items()}
        info = {"task": task, "seed": seed, "test_seed": config.SEED,
                "dialogues": {k: len(v) for k, v in ids.items()}}
    info["examples"] = {k: len(v) for k, v in data.items()}
    if tokenizer is not None:
        mode_, max_len = (mode, max_length) if task == "response" else ("per_turn", None)
        counts = {k: count_rows(iter_rows(v, tokenizer, mode_, max_len)) for k, v in data.items()}
        info["max_length"] = max_len
        info["rows"] = {k: c["examples"] for k, c in counts.items()}   # session: windows past max_length
        info["tokens"] = {k: c["tokens"] for k, c in counts.items()}
        info["target_tokens"] = {k: c["target_tokens"] for k, c in counts.items()}
    info["files"] = {}
    if output_dir is not None:
        for k, rows in data.items():
            path = Path(output_dir) / f"{task}_{k}.jsonl"
            write_jsonl(rows, path)
            info["files"][k] = str(path)
    return info
