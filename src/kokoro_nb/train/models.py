"""The model, tokenizer and device of a run: what training and generation load, and where.

Tokenizers (a hub model's own, or the byte-level smoke tokenizer trained in-process), models
(4-bit QLoRA loading, random Llamas of a named shape for smoke runs and GPU measurements), the
device in front of us (name, compute dtype, the GPU row it is timed as, peak memory) and the
processes of a distributed launch. Shared by :mod:`kokoro_nb.train.loop` and
:mod:`kokoro_nb.generate`; it does not train, plan or decode.

>>> gpu_type("Tesla T4", 15.0), gpu_type("NVIDIA A100-SXM4-80GB", 79.2), gpu_type("NVIDIA L40S", 45.0)
('T4', 'A100-80GB', None)
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from kokoro_nb import config
from kokoro_nb.errors import DataError
from kokoro_nb.train import sft

TINY_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                       "<|eot_id|>", "<|finetune_right_pad_id|>")
HF_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hf_token() -> str | None:
    """Return a Hugging Face token from the environment or Colab secrets (never printed)."""
    for name in HF_TOKEN_ENV:
        if os.environ.get(name):
            return os.environ[name]
    try:                                          # Colab: Secrets panel, key HF_TOKEN
        from google.colab import userdata  # type: ignore
        return userdata.get("HF_TOKEN")
    except Exception:                            # not on Colab, or no secret / no access granted
        return None


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer in-process, with the Llama-3.1 special tokens and our template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    # single digits, as Llama-3 tokenizes numbers: the score answer "D1: 4" gets a token per digit
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(TINY_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                 pad_token="<|finetune_right_pad_id|>")
    hf.chat_template = sft.tiny_chat_template()
    return hf


def tiny_tokenizer_texts(corpus, max_dialogues: int = 300) -> list[str]:
    """Return what the smoke tokenizer learns from: turns of up to *max_dialogues* dialogues, our prompts."""
    return (corpus.sample(max_dialogues, seed=config.SEED).turns()["text"].astype(str).tolist()
            + [sft.SYSTEM_PROMPT, sft.SCORE_SYSTEM_PROMPT, sft.score_instruction(), sft.format_scores([0] * 20)])


# Llama shapes: "tiny" for CPU smoke runs; "llama-3.1-8b" is Llama-3.1-8B (and Swallow-8B) for GPU
# measurements with random weights, since no weights can be downloaded there.
ARCHITECTURES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=8192),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0,
                         rms_norm_eps=1e-5, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 8192}),
}


def llama_config(tokenizer, arch: str = "tiny", **overrides):
    """Return a LlamaConfig of shape *arch* (see ARCHITECTURES) for *tokenizer*'s vocabulary."""
    from transformers import LlamaConfig
    if arch not in ARCHITECTURES:
        raise DataError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}", field="arch")
    kw = {"vocab_size": len(tokenizer), **ARCHITECTURES[arch], **overrides}
    return LlamaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, **kw)


def build_tiny_llama(texts: Sequence[str], save_dir: str | Path, *, vocab_size: int = 1024, hidden_size: int = 64,
                     num_layers: int = 2, max_positions: int = 8192, seed: int = config.SEED) -> Path:
    """Build a random-initialised small Llama and a tokenizer trained on *texts*; save both; return the folder."""
    tok = train_tokenizer(texts, vocab_size)
    model = tiny_llama(tok, hidden_size=hidden_size, num_layers=num_layers, max_positions=max_positions, seed=seed)
    save_dir = Path(save_dir)
    model.save_pretrained(save_dir)
    tok.save_pretrained(save_dir)
    return save_dir


def build_random_llama(texts: Sequence[str], save_dir: str | Path, arch: str = "llama-3.1-8b", *,
                       vocab_size: int = 32000, model_vocab_size: int | None = 128256,
                       seed: int = config.SEED) -> Path:
    """Save a random-initialised Llama of shape *arch* (bf16) with a tokenizer trained on *texts*.

    For throughput and memory measurements of the QLoRA path where no weights can be
    downloaded. The embedding and LM head keep Llama 3.1's 128,256 rows (*model_vocab_size*)
    so memory and compute match the real model, although the tokenizer uses fewer ids. The 8B
    shape needs about 16 GB of RAM and of disk.
    """
    import torch
    from transformers import LlamaForCausalLM
    tok = train_tokenizer(texts, vocab_size)
    cfg = llama_config(tok, arch, **({"vocab_size": model_vocab_size} if model_vocab_size else {}))
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    save_dir = Path(save_dir)
    model.save_pretrained(save_dir)
    tok.save_pretrained(save_dir)
    return save_dir


def tiny_llama(tokenizer, *, hidden_size: int = 64, num_layers: int = 2, max_positions: int = 8192,
               seed: int = config.SEED):
    """Return a random-initialised Llama (Llama-3.1 architecture, tiny sizes) for *tokenizer*."""
    import torch
    from transformers import LlamaForCausalLM
    cfg = llama_config(tokenizer, "tiny", hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=num_layers, max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def limit_cpu_threads(n: int = 1) -> str:
    """Use *n* CPU threads: a tiny model gains nothing from more, and OpenMP threads that compete
    with other processes for the cores can slow training twenty-fold."""
    import torch
    torch.set_num_threads(n)
    return f"CPU: {n} thread(s) for the tiny model"


def gpu_type(name: str, memory_gb: float) -> str | None:
    """Return the row of :data:`kokoro_nb.train.plan.GPUS` a CUDA device named *name* is timed as
    (None if not listed)."""
    n = name.upper()
    if re.search(r"\bT4\b", n):
        return "T4"
    if "V100" in n:
        return "V100"
    if re.search(r"\bL4\b", n):                   # not the L40 / L40S
        return "L4"
    if "A100" in n:
        return "A100-80GB" if memory_gb > 60 else "A100-40GB"
    if re.search(r"\b(H100|H200|H800|GH200)\b", n):   # Hopper: timed as the H100 row (a lower bound)
        return "H100-80GB"
    return None


def runtime_device() -> dict:
    """Describe where training runs: device name, compute dtype (bf16 only where the GPU has it natively),
    and the row of :data:`kokoro_nb.train.plan.GPUS` it is timed as (``gpu``; None when not listed)."""
    import torch
    if torch.cuda.is_available():
        # T4 / V100 report bf16 "supported" through emulation, many times slower: fp16 there
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        name = torch.cuda.get_device_name(0)
        memory_gb = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
        return {"device": "cuda", "name": name, "n_gpus": torch.cuda.device_count(), "bf16": bf16,
                "dtype": "bfloat16" if bf16 else "float16", "memory_gb": memory_gb,
                "gpu": gpu_type(name, memory_gb)}
    return {"device": "cpu", "name": "cpu", "n_gpus": 0, "bf16": False, "dtype": "float32", "gpu": None}


def pick_dtype(asked: str, dev: dict | None = None) -> tuple[str, str | None]:
    """Return (dtype to compute in, note) for *asked* on the device: float16 where bf16 is only emulated."""
    dev = dev or runtime_device()
    if asked == "bfloat16" and dev["device"] == "cuda" and not dev["bf16"]:
        return "float16", f"{dev['name']}: no native bfloat16, compute dtype float16 instead"
    if asked == "bfloat16" and dev["device"] == "cpu":
        return "float32", "CPU: compute dtype float32 instead of bfloat16"
    return asked, None


DIST_TIMEOUT_ENV = "KOKORO_DIST_TIMEOUT_S"


def distributed_timeout_s() -> int:
    """Seconds a process waits for the others (default 2 h, ``$KOKORO_DIST_TIMEOUT_S``).

    NCCL's default of 10 minutes is shorter than downloading an 8B model (about 16 GB) while the
    other processes wait at the first barrier.
    """
    raw = os.environ.get(DIST_TIMEOUT_ENV, "7200")
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"must be a whole number of seconds, got {raw!r}", field=DIST_TIMEOUT_ENV) from None


def process_state():
    """Return accelerate's state of this process (rank, world), distributed under torchrun or accelerate launch.

    On CPU, accelerate joins the processes (gloo) only when asked for CPU explicitly. The process
    group waits :func:`distributed_timeout_s` for a slow process.
    """
    from datetime import timedelta

    import torch
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=distributed_timeout_s()))


def prefetch_for_launch(name: str) -> None:
    """Under torchrun / accelerate launch, download *name* in the first process of each machine before
    the process group forms, so that no process waits on a download at a barrier."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        fetch_model(name, hf_token())


def launch_state(name: str):
    """Prepare this process for a run of model *name*: prefetch it (:func:`prefetch_for_launch`), then
    join the other processes; return :func:`process_state`. Once per run, before the first barrier."""
    prefetch_for_launch(name)
    return process_state()


def fetch_model(name: str, token: str | None = None) -> str:
    """Download hub model *name* into the local cache (a local folder is returned as is); return its folder."""
    if name == config.TINY_MODEL or Path(name).exists():
        return name
    from huggingface_hub import snapshot_download
    return snapshot_download(name, token=token, allow_patterns=["*.json", "*.safetensors", "tokenizer*"])


def load_tokenizer(path: str, token: str | None = None):
    """Load a tokenizer with its own chat template (required) and give it a padding token."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path, token=token)
    if not tok.chat_template:
        raise DataError("the tokenizer has no chat template; fine-tune an instruct model", file=str(path),
                        field="chat_template")
    if tok.pad_token is None:
        pad = "<|finetune_right_pad_id|>"
        tok.pad_token = pad if pad in tok.get_vocab() else tok.eos_token
    return tok


def plan_tokenizer(name: str, corpus=None):
    """Return the tokenizer to count with: a local path or hub id, or ``tiny`` (offline, trained on *corpus*)."""
    if name in ("tiny", config.TINY_MODEL):
        if corpus is None:
            raise DataError("the tiny tokenizer is trained on the corpus; pass it", field="corpus")
        return train_tokenizer(tiny_tokenizer_texts(corpus))
    try:
        return load_tokenizer(name, hf_token())
    except OSError as exc:
        raise DataError(f"cannot load the tokenizer {name!r} ({exc.__class__.__name__}); give a local folder, "
                        "or 'tiny' for the offline tokenizer", field="tokenizer") from None


def load_base_model(path: str, *, load_in_4bit: bool = True, quant_type: str = "nf4",
                    compute_dtype: str = "bfloat16", double_quant: bool = True, token: str | None = None):
    """Load a causal LM, 4-bit quantised with bitsandbytes when asked (QLoRA), on the local device.

    The compute dtype follows the device (:func:`pick_dtype`): float16 on GPUs without native
    bf16 (T4, V100), float32 on CPU, where bf16 matmuls are many times slower. Returns (model,
    notes about what actually ran).
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    dev = runtime_device()
    name, note = pick_dtype(compute_dtype, dev)
    dtype = getattr(torch, name)
    notes = [note] if note else []
    kwargs = {"dtype": dtype, "token": token}
    if load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=double_quant)
        notes.append(f"bitsandbytes 4-bit {quant_type} weights{' (double quantisation)' if double_quant else ''} "
                     f"({dev['device']})")
    if dev["device"] == "cuda":
        from accelerate import PartialState
        kwargs["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model, notes


def free_memory(*holders) -> None:
    """Drop the model and optimizer that *holders* (trainers, models) keep, and return GPU memory."""
    import gc

    import torch
    for h in holders:
        for attr in ("model", "model_wrapped", "optimizer", "lr_scheduler"):
            if hasattr(h, attr) and not isinstance(h, torch.nn.Module):
                setattr(h, attr, None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()



def peak_memory_gb() -> dict:
    """Return the process's peak RSS and, when CUDA is used, peak GPU memory allocated by tensors and
    reserved by the allocator (what has to fit on the card), in GiB."""
    import resource

    import torch
    out = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    if torch.cuda.is_available():
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        out["peak_gpu_reserved_gb"] = torch.cuda.max_memory_reserved() / 2 ** 30
    return out
