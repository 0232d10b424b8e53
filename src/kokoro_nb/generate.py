"""Greedy generation of every counselor turn of the test dialogues (paper 5.1.2), resumable.

The turns are those of :func:`kokoro_nb.baselines.response_turns`: every counselor turn that has
at least one turn before it, generated from its full history (oldest turns dropped only when the
prompt exceeds ``max_length - max_new_tokens``). The output is the responses JSONL of
``kokoro-nb evaluate responses``: one ``{"dialogue_id", "turn", "reference", "hypothesis"}`` per
line, appended batch by batch and flushed, so an interrupted run resumes where it stopped.

Models: a base model (hub id or path), base + LoRA adapter (``adapter=`` a folder written by
:func:`kokoro_nb.train.train`), or ``tiny-random-llama`` for CPU smoke runs. Decoding is greedy
(``do_sample=False``), 4-bit as in Appendix D when ``load_in_4bit``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from . import config, sft
from .errors import DataError

RESPONSE_FIELDS = ("dialogue_id", "turn", "reference", "hypothesis")


def response_prompts(corpus, dialogue_ids: Iterable | None = None, *,
                     system_prompt: str | None = sft.SYSTEM_PROMPT) -> list[dict]:
    """Return ``{"dialogue_id", "turn", "reference", "messages"}`` for every counselor turn with history."""
    out = []
    for did, turns in sft.dialogue_turns(corpus, dialogue_ids).items():
        for k, (role, text) in enumerate(turns):
            if role == "counselor" and k >= 1:
                out.append({"dialogue_id": did, "turn": k, "reference": text,
                            "messages": sft.to_messages(turns[:k], system_prompt)})
    return out


def done_keys(path: str | Path, fields: tuple[str, ...] = ("dialogue_id", "turn")) -> set[tuple]:
    """Return the keys (*fields* of each record) already in a JSONL; a torn last line is cut off."""
    path = Path(path)
    if not path.exists():
        return set()
    keys, offset = set(), 0
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for no, line in enumerate(lines, 1):
        if line.strip():
            try:
                rec = json.loads(line)
                keys.add(_key(rec, fields))
            except (ValueError, KeyError, TypeError):
                if no == len(lines):         # torn last line (interrupted mid-write): cut it, go on
                    with path.open("r+b") as f:
                        f.truncate(offset)
                    break
                raise DataError(f"not a response record: {line[:80]!r}", file=str(path), line=no) from None
        offset += len(line) + 1
    return keys


def _key(rec: dict, fields: tuple[str, ...]) -> tuple:
    return tuple(str(rec[f]) if f == "dialogue_id" else int(rec[f]) for f in fields)


def load_generator(model_name: str = config.BASE_MODEL, adapter: str | Path | None = None, *,
                   load_in_4bit: bool = True, corpus=None, work_dir: str | Path = "outputs/generate",
                   progress: bool = True):
    """Return (model, tokenizer) for greedy decoding: a base model, or base + LoRA adapter.

    ``model_name="tiny-random-llama"`` builds the random smoke model (tokenizer trained on
    *corpus*) unless *adapter* points at an adapter trained from one (its base is read from it).
    """
    from .train import build_tiny_llama, free_memory, hf_token, load_base_model, load_tokenizer, tiny_tokenizer_texts
    free_memory()                                  # whatever a finished training run left on the GPU
    if not progress:
        import transformers
        transformers.utils.logging.disable_progress_bar()
    token = hf_token()
    base = model_name
    if adapter is not None:
        cfg_file = Path(adapter) / "adapter_config.json"
        if not cfg_file.exists():
            raise DataError("not a LoRA adapter folder (no adapter_config.json)", file=str(adapter))
        base = json.loads(cfg_file.read_text(encoding="utf-8"))["base_model_name_or_path"]
    elif model_name == config.TINY_MODEL:
        from .train import limit_cpu_threads, runtime_device
        if runtime_device()["device"] == "cpu":
            limit_cpu_threads()
        if corpus is None:
            raise DataError("tiny-random-llama needs the corpus to train its tokenizer", field="corpus")
        base = Path(work_dir) / "tiny_base_model"
        if not (base / "config.json").exists():
            build_tiny_llama(tiny_tokenizer_texts(corpus), base)
        base = str(base)
    model, _ = load_base_model(base, load_in_4bit=load_in_4bit, token=token)
    tokenizer = load_tokenizer(str(adapter) if adapter is not None else base, token)
    if adapter is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    tokenizer.padding_side = "left"
    return model, tokenizer


def _greedy_jsonl(model, tokenizer, items: list[dict], out_path: str | Path, record, fields: tuple[str, ...], *,
                  batch_size: int, max_new_tokens: int, resume: bool, progress: bool, desc: str) -> dict:
    """Greedy-decode ``item["messages"]`` in batches, appending ``record(item, text)`` lines to *out_path*."""
    import torch
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not resume and out_path.exists():
        out_path.unlink()
    done = done_keys(out_path, fields)
    todo = [p for p in items if _key(p, fields) not in done]
    texts = [sft.prompt_text(p["messages"], tokenizer) for p in todo]   # the model's template, as in training
    order = sorted(range(len(todo)), key=lambda i: -len(texts[i]))     # similar lengths batch together
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")
           if t in tokenizer.get_vocab()] or [tokenizer.eos_token_id]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item")
    device = next(model.parameters()).device
    written = 0
    with out_path.open("a", encoding="utf-8") as f:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                     pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None)
            for i, ids in zip(idx, gen[:, enc["input_ids"].shape[1]:]):
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                f.write(json.dumps(record(todo[i], text), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())                 # a disconnect loses at most the batch in flight
            written += len(idx)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return {"written": written, "skipped": len(items) - len(todo), "total": len(items), "path": str(out_path)}


def generate_responses(model, tokenizer, prompts: list[dict], out_path: str | Path, *, batch_size: int = 8,
                       max_new_tokens: int = 256, max_length: int | None = 4096, resume: bool = True,
                       progress: bool = True) -> dict:
    """Greedy-decode each prompt and append its record to *out_path*; skip records already there.

    Returns ``{"written", "skipped", "total", "shortened", "path"}``.
    """
    shortened = 0
    if max_length is not None:
        prompts, shortened = sft.fit_history(prompts, tokenizer, max_length - max_new_tokens)
    record = lambda p, text: {"dialogue_id": p["dialogue_id"], "turn": int(p["turn"]),
                              "reference": p["reference"], "hypothesis": text}
    info = _greedy_jsonl(model, tokenizer, prompts, out_path, record, ("dialogue_id", "turn"),
                         batch_size=batch_size, max_new_tokens=max_new_tokens, resume=resume,
                         progress=progress, desc="generate")
    return {**info, "shortened": shortened}


def generate_scores(model, tokenizer, examples: list[dict], out_path: str | Path, *, batch_size: int = 4,
                    max_new_tokens: int = 160, max_length: int | None = 8192, resume: bool = True,
                    progress: bool = True) -> dict:
    """Predict the 20 item scores of each example (from :func:`sft.score_examples`) into a scores JSONL.

    Each line: ``{"dialogue_id", "gold", "pred" (20 ints or nulls), "status", "output"}``; the raw
    output is kept so unparseable predictions can be inspected. Returns counts by parse status.
    """
    from .train import _fit_score
    if max_length is not None:
        examples, _ = _fit_score(examples, tokenizer, max_length)
    items = [{**e, "messages": e["messages"][:-1]} for e in examples]     # drop the gold answer

    def record(e, text):
        p = sft.parse_scores(text)
        return {"dialogue_id": e["dialogue_id"], "gold": e["gold"], "pred": p.values, "status": p.status,
                "output": text}

    info = _greedy_jsonl(model, tokenizer, items, out_path, record, ("dialogue_id",), batch_size=batch_size,
                         max_new_tokens=max_new_tokens, resume=resume, progress=progress, desc="scores")
    counts = {"ok": 0, "partial": 0, "unparseable": 0}
    for r in read_responses(out_path):
        counts[r["status"]] += 1
    return {**info, "parsed": counts}


def read_responses(path: str | Path) -> list[dict]:
    """Read a JSONL written here (responses or scores) into a list of dicts (errors name the line)."""
    from .metrics import read_records
    return [obj for _, obj in read_records(path)]


# --------------------------------------------------------------------------- CLI

def register_cli(sub) -> None:
    """Add ``kokoro-nb generate``."""
    p = sub.add_parser("generate", help="greedy responses for the test dialogues (resumable JSONL)",
                       description="Generate every counselor turn of the test dialogues (score 99-100) "
                                   "from its full history and append to a responses JSONL.")
    p.add_argument("--data", "--data-dir", dest="data_dir", metavar="PATH",
                   help=f"KokoroChat folder or archive (default: ${config.KOKOROCHAT_ENV})")
    p.add_argument("--model", default=config.BASE_MODEL, help="hub id, local path, or tiny-random-llama")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (from kokoro-nb train)")
    p.add_argument("--output", default="outputs/generate/responses.jsonl")
    p.add_argument("--dialogues", type=int, default=None, help="only the first N test dialogues")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--no-4bit", action="store_true", help="load the model unquantised")
    p.add_argument("--restart", action="store_true", help="discard the existing output instead of resuming")
    p.set_defaults(func=_cmd_generate)


def evaluation_dialogue_ids(corpus, n: int | None = None, min_score: int = 99) -> list[str]:
    """Return the response test dialogue ids (score *min_score*-100; paper: 99), the first *n* in corpus order."""
    d = corpus.dialogues
    ids = d.loc[d["score"].between(min_score, 100).fillna(False), "dialogue_id"].astype(str).tolist()
    return ids if n is None else ids[:n]


def _cmd_generate(args) -> int:
    from .corpus import load_kokorochat
    if args.batch_size < 1 or args.max_new_tokens < 1:
        raise DataError("--batch-size and --max-new-tokens must be >= 1")
    corpus = load_kokorochat(args.data_dir, progress=not os.environ.get("TQDM_DISABLE"))
    ids = evaluation_dialogue_ids(corpus, args.dialogues)
    model, tok = load_generator(args.model, args.adapter, load_in_4bit=not args.no_4bit, corpus=corpus,
                                work_dir=Path(args.output).parent)
    info = generate_responses(model, tok, response_prompts(corpus, ids), args.output, batch_size=args.batch_size,
                              max_new_tokens=args.max_new_tokens, max_length=args.max_length,
                              resume=not args.restart, progress=not os.environ.get("TQDM_DISABLE"))
    print(f"{info['written']} written, {info['skipped']} already there, {info['total']} turns -> {info['path']}")
    return 0
