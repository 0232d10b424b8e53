"""Greedy generation of every counselor turn of the test dialogues (paper 5.1.2), resumable.

The turns are those of :func:`kokoro_nb.data.splits.response_turns`: every counselor turn that has
at least one turn before it, generated from its full history (oldest turns dropped only when the
prompt exceeds ``max_length - max_new_tokens``). The output is the responses JSONL of
``kokoro-nb evaluate responses``: one ``{"dialogue_id", "turn", "reference", "hypothesis"}`` per
line, appended batch by batch and flushed, so an interrupted run resumes where it stopped.

Models: a base model (hub id or path), the authors' released models
(``UEC-InabaLab/KokoroChat-Low`` / ``-High`` / ``-Full``, :data:`kokoro_nb.config.RELEASED_MODELS`),
base + LoRA adapter (``adapter=`` a folder written by :func:`kokoro_nb.train.loop.train`), or
``tiny-random-llama`` for CPU smoke runs. A *model_name* that holds ``adapter_config.json`` is
loaded as an adapter on the base it names, anything else as full weights. Decoding is greedy
(``do_sample=False``), with Hugging Face ``generate`` (batched, left-padded; 4-bit as in Appendix D
when ``load_in_4bit``) or vLLM's offline ``LLM.generate`` (``backend="vllm"``: bf16 weights, the adapter
as a ``LoRARequest``, since vLLM has no bitsandbytes 4-bit). Both decode the same prompt ids with the
same settings (:func:`greedy_settings`); ``backend="auto"`` picks vLLM only where the GPU holds the
bf16 weights (:func:`choose_backend`) and says why in one line.

Decoding only: models load through :mod:`kokoro_nb.train.models`, scoring the outputs is
:mod:`kokoro_nb.evaluate`, and the command line is :mod:`kokoro_nb.cli.generate`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from kokoro_nb import config
from kokoro_nb.errors import DataError, MissingDependencyError
from kokoro_nb.jsonl import read_records, read_resumable
from kokoro_nb.train import models, sft

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
    return {_key(rec, fields) for rec in read_resumable(path, lambda rec: _key(rec, fields), what="response record")}


def _key(rec: dict, fields: tuple[str, ...]) -> tuple:
    return tuple(str(rec[f]) if f == "dialogue_id" else int(rec[f]) for f in fields)


def is_adapter(name_or_path: str | Path, token: str | None = None) -> bool:
    """True when *name_or_path* (a folder or hub id) is a LoRA adapter: it has ``adapter_config.json``."""
    path = Path(name_or_path)
    if path.exists():
        return (path / "adapter_config.json").is_file()
    from huggingface_hub import file_exists
    try:
        return file_exists(str(name_or_path), "adapter_config.json", token=token)
    except Exception as exc:                       # offline, gated, or no such repository
        raise DataError(f"cannot inspect {name_or_path!r} on the Hugging Face hub ({exc.__class__.__name__}); "
                        "check the name, your connection and HF_TOKEN", field="model_name") from None


def adapter_base(adapter: str | Path, token: str | None = None) -> str:
    """Return the base model an adapter was trained on (``base_model_name_or_path``)."""
    from peft import PeftConfig
    try:
        return PeftConfig.from_pretrained(str(adapter), token=token).base_model_name_or_path
    except (OSError, ValueError) as exc:
        raise DataError(f"not a LoRA adapter ({exc.__class__.__name__}: no readable adapter_config.json)",
                        file=str(adapter)) from None


def load_generator(model_name: str = config.BASE_MODEL, adapter: str | Path | None = None, *,
                   load_in_4bit: bool = True, corpus=None, work_dir: str | Path = "outputs/generate",
                   progress: bool = True, backend: str = "hf", max_length: int = 4096):
    """Return (model, tokenizer) for greedy decoding: a model, or base + LoRA adapter.

    *model_name* may itself be an adapter (folder or hub id with ``adapter_config.json``, such as a
    released KokoroChat model if published that way): its base is read from it. Full weights load
    directly. ``model_name="tiny-random-llama"`` builds the random smoke model (tokenizer trained on
    *corpus*) unless *adapter* points at an adapter trained from one. *backend* ``"vllm"`` returns a
    :class:`VllmModel` (bf16; *load_in_4bit* applies to ``"hf"`` only); ``"auto"`` prints which it
    chose and why (:func:`choose_backend`).
    """
    models.free_memory()                                  # whatever a finished training run left on the GPU
    if not progress:
        import transformers
        transformers.utils.logging.disable_progress_bar()
    token = models.hf_token()
    base = model_name
    if adapter is None and model_name != config.TINY_MODEL and is_adapter(model_name, token):
        adapter = model_name                       # e.g. a released model published as an adapter
    if adapter is not None:
        if Path(adapter).exists() and not (Path(adapter) / "adapter_config.json").exists():
            raise DataError("not a LoRA adapter folder (no adapter_config.json)", file=str(adapter))
        base = adapter_base(adapter, token)
    elif model_name == config.TINY_MODEL:
        if models.runtime_device()["device"] == "cpu":
            models.limit_cpu_threads()
        if corpus is None:
            raise DataError("tiny-random-llama needs the corpus to train its tokenizer", field="corpus")
        base = Path(work_dir) / "tiny_base_model"
        if not (base / "config.json").exists():
            models.build_tiny_llama(models.tiny_tokenizer_texts(corpus), base)
        base = str(base)
    tokenizer = models.load_tokenizer(str(adapter) if adapter is not None else base, token)
    sft._check_choice(backend, BACKENDS, "backend")
    if backend == "auto":
        backend, why = choose_backend()
        print(f"backend auto: {why}")
    if backend == "vllm":
        return _load_vllm(base, adapter, max_length), tokenizer
    model, _ = models.load_base_model(base, load_in_4bit=load_in_4bit, token=token)
    if adapter is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    tokenizer.padding_side = "left"
    return model, tokenizer


BACKENDS = ("auto", "hf", "vllm")


def greedy_settings(tokenizer, max_new_tokens: int) -> dict:
    """Return the decoding both backends use: greedy, at most *max_new_tokens*, these stop ids."""
    stop = [tokenizer.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")
            if t in tokenizer.get_vocab()] or [tokenizer.eos_token_id]
    return {"greedy": True, "max_new_tokens": int(max_new_tokens), "stop_token_ids": stop}


def hf_generate_kwargs(settings: dict, tokenizer) -> dict:
    """Translate :func:`greedy_settings` into ``model.generate`` arguments (Appendix D: greedy, temperature None)."""
    return {"do_sample": not settings["greedy"], "max_new_tokens": settings["max_new_tokens"],
            "eos_token_id": settings["stop_token_ids"], "pad_token_id": tokenizer.pad_token_id,
            "temperature": None, "top_p": None}


def vllm_sampling_kwargs(settings: dict) -> dict:
    """Translate :func:`greedy_settings` into ``vllm.SamplingParams`` arguments (temperature 0 = greedy)."""
    return {"temperature": 0.0 if settings["greedy"] else 1.0, "max_tokens": settings["max_new_tokens"],
            "stop_token_ids": settings["stop_token_ids"], "skip_special_tokens": True}


def encode_prompts(items: list[dict], tokenizer) -> list[list[int]]:
    """Return the prompt ids of each item's messages: the model's template plus the assistant header."""
    return [sft.prompt_ids(p["messages"], tokenizer) for p in items]


# vLLM's LoRAConfig.max_lora_rank accepts only these (vllm/config/lora.py, MaxLoRARanks, 0.30)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# bf16 Llama-3.1-8B weights are ~15 GiB; vLLM also needs room for its KV cache and CUDA graphs
VLLM_MIN_GPU_GB = 24.0
# prompts per LLM.generate call: large enough for vLLM's scheduler, small enough to save progress often
VLLM_CHUNK = 512


def vllm_lora_rank(r: int) -> int:
    """Return the smallest rank vLLM accepts (:data:`VLLM_LORA_RANKS`) that holds a LoRA of rank *r*.

    >>> vllm_lora_rank(4), vllm_lora_rank(8), vllm_lora_rank(48), vllm_lora_rank(300)
    (8, 8, 64, 320)
    """
    for allowed in VLLM_LORA_RANKS:
        if allowed >= r:
            return allowed
    raise DataError(f"LoRA rank {r} is above vLLM's largest ({VLLM_LORA_RANKS[-1]}); use backend='hf'",
                    field="r")


class VllmModel:
    """A vLLM engine (and LoRA adapter, if any) standing where a transformers model would."""

    chunk_size = VLLM_CHUNK

    def __init__(self, llm, lora_request=None, name: str = ""):
        self.llm, self.lora_request, self.name = llm, lora_request, name

    def decode(self, prompts: list[list[int]], settings: dict) -> tuple[list[str], list[int]]:
        """Greedy-decode token-id prompts with one ``LLM.generate`` call; return texts and generated id counts."""
        from vllm import SamplingParams
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts],
                                 SamplingParams(**vllm_sampling_kwargs(settings)),
                                 lora_request=self.lora_request, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs], [len(o.outputs[0].token_ids) for o in outs]


def vllm_installed() -> bool:
    """True when the ``vllm`` package can be imported."""
    import importlib.util
    return importlib.util.find_spec("vllm") is not None


def vllm_available() -> bool:
    """True when vLLM is installed and a CUDA GPU is visible."""
    if not vllm_installed():
        return False
    import torch
    return torch.cuda.is_available()


def choose_backend(dev: dict | None = None, installed: bool | None = None) -> tuple[str, str]:
    """Return the backend ``auto`` uses here and a one-line reason.

    vLLM when it is installed and the GPU has :data:`VLLM_MIN_GPU_GB` GiB for bf16 8B weights
    plus KV cache; otherwise Hugging Face ``generate``, which can load the weights in 4 bits.
    *dev* is :func:`kokoro_nb.train.models.runtime_device` (detected when None).
    """
    if dev is None:
        dev = models.runtime_device()
    installed = vllm_installed() if installed is None else installed
    if not installed:
        return "hf", "hf (Hugging Face generate): vLLM is not installed"
    if dev.get("device") != "cuda":
        return "hf", "hf (Hugging Face generate): vLLM needs a CUDA GPU and none is visible"
    gb, name = float(dev.get("memory_gb") or 0), dev.get("name", "the GPU")
    if gb < VLLM_MIN_GPU_GB:
        return "hf", (f"hf (Hugging Face generate, 4-bit): {name} has {gb:.0f} GiB, vLLM needs about "
                      f"{VLLM_MIN_GPU_GB:.0f} GiB for bf16 weights and its KV cache")
    return "vllm", (f"vllm: {name} has {gb:.0f} GiB (>= {VLLM_MIN_GPU_GB:.0f}) for bf16 weights, "
                    "the adapter as a LoRA request")


def generated_length(ids, stop_ids) -> int:
    """Count the ids one sequence generated: up to and including the first stop id, padding after it excluded.

    >>> generated_length([5, 9, 2, 0, 0], stop_ids=[2]), generated_length([5, 9, 7], stop_ids=[2])
    (3, 3)
    """
    ids = [int(i) for i in ids]
    stops = set(int(s) for s in stop_ids)
    for k, i in enumerate(ids):
        if i in stops:
            return k + 1
    return len(ids)


def _hf_decode(model, tokenizer, prompts: list[list[int]], settings: dict) -> tuple[list[str], list[int]]:
    """Greedy-decode token-id prompts with ``model.generate``, left-padded in one batch; texts and id counts."""
    import torch
    tokenizer.padding_side = "left"
    enc = tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(next(model.parameters()).device)
    with torch.no_grad():
        gen = model.generate(**enc, **hf_generate_kwargs(settings, tokenizer))
    new = gen[:, enc["input_ids"].shape[1]:].tolist()
    return ([tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new],
            [generated_length(ids, settings["stop_token_ids"]) for ids in new])


def _load_vllm(base: str, adapter, max_length: int) -> VllmModel:
    """Start a vLLM engine on *base* in bf16, with the adapter (if any) as a LoRA request.

    Never bitsandbytes: vLLM 0.30+ has no such quantization method. Greedy text can therefore
    differ from the 4-bit Hugging Face path of Appendix D.
    """
    try:
        from vllm import LLM
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise MissingDependencyError("backend='vllm' needs vLLM on a CUDA GPU, in its own environment: "
                                     "pip install -r requirements-vllm.txt") from None
    kw, lora = {}, None
    if adapter is not None:
        from peft import PeftConfig
        kw.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_lora_rank(PeftConfig.from_pretrained(str(adapter)).r))
        lora = LoRARequest("adapter", 1, str(adapter))
    llm = LLM(model=base, tokenizer=base, dtype="bfloat16", max_model_len=max_length, seed=0, **kw)
    return VllmModel(llm, lora, name=str(adapter or base))


def _greedy_jsonl(model, tokenizer, items: list[dict], out_path: str | Path, record, fields: tuple[str, ...], *,
                  batch_size: int, max_new_tokens: int, resume: bool, progress: bool, desc: str) -> dict:
    """Greedy-decode ``item["messages"]`` in batches, appending ``record(item, text)`` lines to *out_path*."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not resume and out_path.exists():
        out_path.unlink()
    done = done_keys(out_path, fields)
    todo = [p for p in items if _key(p, fields) not in done]
    prompts = encode_prompts(todo, tokenizer)
    settings = greedy_settings(tokenizer, max_new_tokens)
    order = sorted(range(len(todo)), key=lambda i: -len(prompts[i]))     # similar lengths batch together
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item")
    vllm = isinstance(model, VllmModel)
    step = max(batch_size, model.chunk_size) if vllm else batch_size     # vLLM schedules its own batches
    written = new_tokens = 0
    with out_path.open("a", encoding="utf-8") as f:
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            batch = [prompts[i] for i in idx]
            texts, lengths = (model.decode(batch, settings) if vllm
                              else _hf_decode(model, tokenizer, batch, settings))
            for i, text in zip(idx, texts):
                f.write(json.dumps(record(todo[i], text), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())                 # a disconnect loses at most the chunk in flight
            written += len(idx)
            new_tokens += sum(lengths)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return {"written": written, "skipped": len(items) - len(todo), "total": len(items), "path": str(out_path),
            "new_tokens": new_tokens}


def generate_responses(model, tokenizer, prompts: list[dict], out_path: str | Path, *, batch_size: int = 8,
                       max_new_tokens: int = 256, max_length: int | None = 4096, resume: bool = True,
                       progress: bool = True) -> dict:
    """Greedy-decode each prompt and append its record to *out_path*; skip records already there.

    Returns ``{"written", "skipped", "total", "shortened", "path", "new_tokens"}`` (*new_tokens*: ids
    generated in this call, counted from the model's output ids). *batch_size* is the HF ``generate``
    batch; vLLM gets :data:`VLLM_CHUNK` prompts per call and schedules them itself.
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
    if max_length is not None:
        examples, _ = sft.fit_transcripts(examples, tokenizer, max_length)
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
    return [obj for _, obj in read_records(path)]


NO_ENGLISH = "(no English translation in the release)"

_REFERENCE_LABELS = {
    "en": ("dialogue", "turn", "reference (English, Multilingual KokoroChat)", "reference (Japanese)",
           "model reply (untranslated)"),
    "ja": ("対話", "ターン", "参照（英訳）", "参照（日本語）", "モデルの応答（未翻訳）"),
}


def with_reference_english(rows, english, *, max_chars: int = 60, lang: str = "en"):
    """Return responses *rows* with each reference's English beside it, for display.

    *english* holds ``dialogue_id``, ``turn`` and ``text_en`` (``corpus.with_english(...).turns()``);
    a turn without English (dialogue not translated, empty translation) shows :data:`NO_ENGLISH`.
    Texts longer than *max_chars* are cut with "…". With ``lang="ja"`` the Japanese comes first.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"dialogue_id": ["1", "1"], "turn": [1, 3], "reference": ["はい", "ええ"],
    ...                      "hypothesis": ["x", "y"]})
    >>> en = pd.DataFrame({"dialogue_id": ["1"], "turn": [1], "text_en": ["Yes"]})
    >>> with_reference_english(rows, en).iloc[:, 2].tolist()
    ['Yes', '(no English translation in the release)']
    """
    import pandas as pd
    keys = pd.DataFrame({"dialogue_id": rows["dialogue_id"].astype(str).to_numpy(),
                         "turn": rows["turn"].astype("int64").to_numpy()})
    en = pd.DataFrame({"dialogue_id": english["dialogue_id"].astype(str).to_numpy(),
                       "turn": english["turn"].astype("int64").to_numpy(),
                       "text_en": english["text_en"].astype(object).to_numpy()})
    if en.duplicated(["dialogue_id", "turn"]).any():
        raise DataError("the English turns have a (dialogue_id, turn) twice", field="turn")
    text_en = keys.merge(en, on=["dialogue_id", "turn"], how="left")["text_en"]
    text_en = text_en.where(text_en.notna() & (text_en.astype(str).str.strip() != ""), NO_ENGLISH)
    cut = lambda s: s.where(s.str.len() <= max_chars, s.str.slice(0, max_chars) + "…")
    did, turn, ref_en, ref_ja, hyp = _REFERENCE_LABELS["ja" if lang == "ja" else "en"]
    out = pd.DataFrame({did: keys["dialogue_id"], turn: keys["turn"],
                        ref_en: cut(text_en.astype(str)).to_numpy(),
                        ref_ja: cut(rows["reference"].astype(str)).to_numpy(),
                        hyp: cut(rows["hypothesis"].astype(str)).to_numpy()})
    return out[[did, turn, ref_ja, ref_en, hyp]] if lang == "ja" else out


def evaluation_dialogue_ids(corpus, n: int | None = None, min_score: int = 99) -> list[str]:
    """Return the response test dialogue ids (score *min_score*-100; paper: 99), the first *n* in corpus order."""
    d = corpus.dialogues
    ids = d.loc[d["score"].between(min_score, 100).fillna(False), "dialogue_id"].astype(str).tolist()
    return ids if n is None else ids[:n]
