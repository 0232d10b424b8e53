"""Supervised fine-tuning data of paper section 5: response generation and score prediction.

Response generation (5.1): merged turns (:meth:`Corpus.turns`), client -> ``user``, counselor ->
``assistant``, a Japanese counselor system prompt first. Two ways to cut a dialogue into examples:

* ``per_turn`` (the paper): one example per counselor turn, the full history as the prompt;
* ``session``: one example per dialogue with the loss on every counselor turn (assistant-only
  mask). Under causal attention every target token sees exactly the same prefix in both modes, so
  the per-token losses are identical (``tests/test_sft.py`` proves it on a tiny model) while
  ``session`` reads each dialogue once instead of once per counselor turn.

Every counselor turn is a training target, including a first greeting that has no history.

Score prediction (5.2): the whole dialogue -> the 20 item scores as lines ``D1: 4`` ... ``D20: 3``
(:func:`format_scores`); :func:`parse_scores` reads model outputs and reports what it could not
parse instead of hiding it. The 8:1:1 split is :func:`kokoro_nb.baselines.score_split`.

>>> format_scores([3] * 20).splitlines()[:2]
['D1: 3', 'D2: 3']
>>> parse_scores("D1: 4\\nD2: 9").status
'partial'
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import config
from .corpus import Corpus
from .errors import DataError
from .schema import ITEM_CODES, ITEM_MAX, ITEM_MIN, ITEMS

MODES = ("per_turn", "session")
SUBSETS = ("low", "high", "full")
TASKS = ("response", "score")
ROLE_MAP = {"client": "user", "counselor": "assistant"}
VALIDATION_FRACTION = 0.1
TEMPLATE_FILE = "templates/llama31_training.jinja"

SYSTEM_PROMPT = (
    "あなたは経験豊富な心理カウンセラーです。オンラインのテキストチャットで相談者の話を丁寧に聴き、"
    "受容と共感を示しながら、相談者が自分の悩みを整理し、前に進めるよう支援してください。")
SCORE_SYSTEM_PROMPT = (
    "あなたは心理カウンセリングの評価者です。カウンセラーとクライアントの対話を読み、"
    "クライアントが付けた評価を予測してください。")
SPEAKER_JA = {"counselor": "カウンセラー", "client": "クライアント"}
_SCORE_LINE = re.compile(r"^\s*D\s*(\d{1,2})\s*[:：]\s*(\S+)\s*$")


def chat_template() -> str:
    """Return the Llama-3.1 training chat template with ``{% generation %}`` markers."""
    return resources.files("kokoro_nb").joinpath(TEMPLATE_FILE).read_text(encoding="utf-8")


def render_marked(messages: Sequence[dict], left: str = "⟦", right: str = "⟧") -> str:
    """Render *messages* with our template, wrapping the text the loss trains on in *left*/*right*.

    >>> render_marked([{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]).endswith(
    ...     "<|start_header_id|>assistant<|end_header_id|>\\n\\n⟦A<|eot_id|>⟧")
    True
    """
    from transformers.utils.chat_template_utils import render_jinja_template
    rendered, spans = render_jinja_template(conversations=[list(messages)], chat_template=chat_template(),
                                            return_assistant_tokens_mask=True, bos_token="<|begin_of_text|>")
    text, out, last = rendered[0], [], 0
    for a, b in spans[0]:
        out += [text[last:a], left, text[a:b], right]
        last = b
    return "".join(out + [text[last:]])


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


def train_validation_split(dialogue_ids: Iterable, seed: int = config.SEED,
                           validation_fraction: float = VALIDATION_FRACTION) -> dict[str, list[str]]:
    """Split dialogue ids into train and validation (paper: 90/10), independent of input order.

    >>> s = train_validation_split([str(i) for i in range(20)], seed=0)
    >>> len(s["train"]), len(s["validation"])
    (18, 2)
    """
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {validation_fraction}",
                        field="validation_fraction")
    ids = sorted({str(i) for i in dialogue_ids}, key=lambda s: (len(s), s))
    n_val = max(1, round(len(ids) * validation_fraction)) if len(ids) > 1 else 0
    order = np.random.default_rng(seed).permutation(len(ids))
    return {"train": sorted((ids[i] for i in order[n_val:]), key=lambda s: (len(s), s)),
            "validation": sorted((ids[i] for i in order[:n_val]), key=lambda s: (len(s), s))}


def response_split_ids(corpus: Corpus, subset: str = "full", seed: int = config.SEED,
                       validation_fraction: float = VALIDATION_FRACTION) -> dict[str, list[str]]:
    """Return train / validation / test dialogue ids for one training subset (paper 5.1.1)."""
    from .stats import response_splits
    _check_choice(subset, SUBSETS, "subset")
    splits = response_splits(corpus.dialogues)
    out = train_validation_split(splits[subset], seed, validation_fraction)
    out["test"] = [str(i) for i in splits["test"]]
    return out


def response_datasets(corpus: Corpus, subset: str = "full", mode: str = "per_turn", *,
                      seed: int = config.SEED, validation_fraction: float = VALIDATION_FRACTION,
                      system_prompt: str | None = SYSTEM_PROMPT) -> dict[str, list[dict]]:
    """Return ``{"train", "validation"}`` example lists for response-generation SFT."""
    ids = response_split_ids(corpus, subset, seed, validation_fraction)
    return {k: response_examples(corpus, ids[k], mode, system_prompt=system_prompt)
            for k in ("train", "validation")}


def epoch_budget(corpus: Corpus, dialogue_ids: Iterable | None = None, *, tokenizer=None,
                 system_prompt: str | None = SYSTEM_PROMPT, progress: bool = False) -> pd.DataFrame:
    """Return what one epoch reads in each mode: examples, characters, target characters, tokens.

    Characters count the turn texts and the system prompt (no template markup). Tokens (only with
    a *tokenizer*) count the rendered chat template; a per-turn example is a prefix of the session
    sequence, so both modes' counts come from one tokenization per dialogue.
    """
    sys_chars = len(system_prompt or "")
    rows = {m: {"examples": 0, "characters": 0, "target_characters": 0, "tokens": 0, "target_tokens": 0}
            for m in MODES}
    items = dialogue_turns(corpus, dialogue_ids).items()
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="dialogues", unit="dlg")
    for did, turns in items:
        targets = [k for k, (role, _) in enumerate(turns) if role == "counselor"]
        if not targets:
            continue
        cum = np.cumsum([len(t) for _, t in turns])
        tgt = sum(len(turns[k][1]) for k in targets)
        rows["per_turn"]["examples"] += len(targets)
        rows["per_turn"]["characters"] += int(cum[targets].sum()) + sys_chars * len(targets)
        rows["session"]["examples"] += 1
        rows["session"]["characters"] += int(cum[targets[-1]]) + sys_chars
        for m in MODES:
            rows[m]["target_characters"] += tgt
        if tokenizer is not None:
            enc = tokenizer.apply_chat_template(to_messages(turns[:targets[-1] + 1], system_prompt),
                                                chat_template=chat_template(), tokenize=True,
                                                return_dict=True, return_assistant_tokens_mask=True)
            mask = np.asarray(enc["assistant_masks"], dtype=np.int8)
            span_ends = np.flatnonzero(np.diff(np.append(mask, 0)) == -1) + 1
            n_target = int(mask.sum())
            rows["per_turn"]["tokens"] += int(span_ends.sum())
            rows["session"]["tokens"] += len(mask)
            for m in MODES:
                rows[m]["target_tokens"] += n_target
    df = pd.DataFrame(rows).T
    if tokenizer is None:
        df = df.drop(columns=["tokens", "target_tokens"])
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


# --------------------------------------------------------------------------- fitting a context length

def _block(message: dict) -> str:
    # One message as the template renders it; special tokens split the text, so blocks tokenize
    # independently and their lengths add up (checked in tests/test_sft.py).
    return f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n{message['content'].strip()}<|eot_id|>"


def message_lengths(messages: Sequence[dict], tokenizer) -> tuple[int, list[int]]:
    """Return (tokens of BOS + system block, tokens of each later message) under our template."""
    first = messages[0] if messages and messages[0]["role"] == "system" else {"role": "system", "content": ""}
    head_text = tokenizer.apply_chat_template([first], chat_template=chat_template(), tokenize=False)
    rest = messages[1:] if messages and messages[0]["role"] == "system" else messages
    enc = tokenizer([head_text] + [_block(m) for m in rest], add_special_tokens=False)["input_ids"]
    return len(enc[0]), [len(e) for e in enc[1:]]


def fit_history(examples: list[dict], tokenizer, max_length: int | None) -> tuple[list[dict], int]:
    """Drop the oldest messages (never the system prompt or the last one) until each example fits.

    Returns (examples, how many were shortened). Each example keeps its last message, so a
    per-turn target is never cut; an example whose last message alone is too long is kept as is.
    """
    if max_length is None:
        return examples, 0
    longest: dict = {}                       # per dialogue, the example with the most messages
    for i, ex in enumerate(examples):
        key = ex.get("dialogue_id", i)
        if key not in longest or len(ex["messages"]) > len(examples[longest[key]]["messages"]):
            longest[key] = i
    lengths = {key: message_lengths(examples[i]["messages"], tokenizer) for key, i in longest.items()}
    out, n_cut = [], 0
    for i, ex in enumerate(examples):
        msgs = ex["messages"]
        has_sys = msgs[0]["role"] == "system"
        head, lens = lengths[ex.get("dialogue_id", i)]
        lens = lens[:len(msgs) - has_sys]
        total, start = head + sum(lens), 0
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


def score_datasets(corpus: Corpus, seed: int = config.SCORE_SPLIT_SEEDS[0], *, test_seed: int = config.SEED,
                   system_prompt: str | None = SCORE_SYSTEM_PROMPT,
                   max_chars: int | None = None) -> dict[str, list[dict]]:
    """Return train / validation / test score examples on the 8:1:1 split (test fixed by *test_seed*)."""
    from .baselines import score_split
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


# --------------------------------------------------------------------------- files and CLI

def write_jsonl(rows: Iterable[dict], path: str | Path) -> int:
    """Write rows as JSON lines (UTF-8, Japanese kept readable); return the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_sft_data(corpus: Corpus, output_dir: str | Path | None, *, task: str = "response",
                   subset: str = "full", mode: str = "per_turn", seed: int | None = None,
                   validation_fraction: float = VALIDATION_FRACTION,
                   system_prompt: str | None = None, max_chars: int | None = None) -> dict:
    """Build the SFT data of *task*, write ``<split>.jsonl`` under *output_dir* (None: don't write).

    Returns ``{"task", "dialogues": {split: n}, "examples": {split: n}, "files": {split: path}}``.
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
        from .baselines import score_split
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
    info["files"] = {}
    if output_dir is not None:
        for k, rows in data.items():
            path = Path(output_dir) / f"{task}_{k}.jsonl"
            write_jsonl(rows, path)
            info["files"][k] = str(path)
    return info


def register_cli(sub) -> None:
    """Add ``kokoro-nb sft-data``."""
    p = sub.add_parser("sft-data", help="write SFT data (JSONL) and print the split sizes",
                       description="Build response-generation or score-prediction SFT examples from "
                                   "KokoroChat, write <task>_<split>.jsonl and print the split sizes.")
    p.add_argument("--data", "--data-dir", dest="data_dir", metavar="PATH",
                   help=f"KokoroChat folder or archive (default: ${config.KOKOROCHAT_ENV})")
    p.add_argument("--task", choices=TASKS, default="response")
    p.add_argument("--subset", choices=SUBSETS, default="full", help="response training subset (paper 5.1.1)")
    p.add_argument("--mode", choices=MODES, default="per_turn", help="one example per counselor turn or per dialogue")
    p.add_argument("--seed", type=int, default=None,
                   help=f"train/validation seed (default {config.SEED} for response, "
                        f"{config.SCORE_SPLIT_SEEDS[0]} for score)")
    p.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
    p.add_argument("--system-prompt", default=None, help="replace the Japanese system prompt")
    p.add_argument("--max-chars", type=int, default=None, help="score task: cut dialogues longer than this")
    p.add_argument("--sample", type=int, default=None, help="use N random dialogues (smoke runs)")
    p.add_argument("--output-dir", default="outputs/sft", help="where to write JSONL (default outputs/sft)")
    p.add_argument("--dry-run", action="store_true", help="print the sizes, write nothing")
    p.add_argument("--json", action="store_true", help="print the sizes as JSON")
    p.set_defaults(func=_cmd_sft_data)


def _cmd_sft_data(args) -> int:
    from .corpus import load_kokorochat
    import os
    if args.max_chars is not None and args.max_chars < 100:
        raise DataError(f"--max-chars must be at least 100, got {args.max_chars}", field="--max-chars")
    corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
    info = write_sft_data(corpus, None if args.dry_run else args.output_dir, task=args.task,
                          subset=args.subset, mode=args.mode, seed=args.seed,
                          validation_fraction=args.validation_fraction,
                          system_prompt=args.system_prompt, max_chars=args.max_chars)
    if args.json:
        from .cli import print_json
        print_json(info)
        return 0
    head = f"task={info['task']}" + (f" subset={info['subset']} mode={info['mode']}" if args.task == "response" else "")
    print(f"{head} seed={info['seed']}")
    if args.task == "response":
        n = info["dialogues"]["train"] + info["dialogues"]["validation"]
        print(f"  {args.subset:<10} {n:>6,} dialogues (train + validation)")
    for k, n in info["dialogues"].items():
        ex = info["examples"].get(k)
        extra = f"  {ex:>8,} examples" if ex is not None else "  (test: every counselor turn is generated)"
        where = f"  -> {info['files'][k]}" if k in info["files"] else ""
        print(f"  {k:<10} {n:>6,} dialogues{extra}{where}")
    return 0
