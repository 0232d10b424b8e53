"""QLoRA fine-tuning of paper section 5 with the settings of Appendix D.

Two tasks share one code path (TRL's ``SFTTrainer`` on rows tokenized by
:func:`kokoro_nb.train.sft.iter_rows` with the model's own chat template, loss on the counselor turns):

* ``response``: response generation, :class:`ResponseTrainConfig` (adamw_8bit, lr 1e-3,
  warmup 100, batch 8, 5 epochs, validation every 400 steps, best by validation loss);
* ``score``: score prediction, :class:`ScoreTrainConfig` (adamw_torch_fused, lr 2e-4,
  warmup 100, batch 4, 4 epochs, best by validation accuracy).

``batch_size`` is the effective batch per optimizer step; gradient accumulation fills it from
``per_device_batch_size`` x the number of processes, so the same numbers hold on 1 GPU or under
``accelerate launch --num_processes 4 -m kokoro_nb.cli train ...`` (the paper used 4 GPUs).

``model_name="tiny-random-llama"`` builds a random 2-layer Llama with a byte-level BPE tokenizer
trained in-process on the corpus, saved under ``<output_dir>/base_model`` and then loaded through
the same 4-bit path as the real model: the CPU smoke run of the book and CI.

Artifacts under ``output_dir``: ``adapter/`` (best LoRA adapter + tokenizer), ``config.json``,
``training_log.jsonl``, ``metrics.json``, ``checkpoints/`` (for resuming).

>>> ResponseTrainConfig().learning_rate, ScoreTrainConfig().optim
(0.001, 'adamw_torch_fused')
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from kokoro_nb import config

from kokoro_nb.data import splits
from kokoro_nb.train import sft
from kokoro_nb.train.checkpoints import finished_step, last_checkpoint, remove_incomplete, resumable, save_after_evaluation
from kokoro_nb.errors import DataError, MissingDependencyError

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TINY_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                       "<|eot_id|>", "<|finetune_right_pad_id|>")
HF_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass
class TrainConfig:
    """Settings shared by both tasks; the defaults of the subclasses are Appendix D."""
    task: str = "response"
    model_name: str = config.BASE_MODEL          # hub id, local path, or "tiny-random-llama"
    output_dir: str = "outputs/train/response"
    # data
    subset: str = "full"                         # response: low | high | full (paper 5.1.1)
    mode: str = "per_turn"                       # response: per_turn | session
    max_length: int | None = 4096                # tokens per example
    validation_fraction: float = splits.VALIDATION_FRACTION
    system_prompt: str | None = None             # None: sft.SYSTEM_PROMPT / sft.SCORE_SYSTEM_PROMPT
    max_train_examples: int | None = None        # cap training examples (smoke runs)
    max_eval_examples: int | None = None         # cap validation size (smoke runs)
    eval_sample: int | None = 1000               # validation examples scored during training (fixed, seeded);
                                                 # the whole validation set is scored once at the end
    # QLoRA (Appendix D)
    load_in_4bit: bool = True
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_compute_dtype: str = "bfloat16"     # float16 where the GPU lacks native bf16 (T4, V100)
    bnb_4bit_use_double_quant: bool = True       # not stated in the paper; saves ~0.4 GB on 8B weights
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = LORA_TARGETS
    # optimisation
    optim: str = "adamw_8bit"
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    batch_size: int = 8                          # effective batch per optimizer step
    per_device_batch_size: int = 1
    epochs: float = 5
    max_steps: int = -1                          # > 0 overrides epochs (smoke runs)
    eval_strategy: str = "steps"                 # steps | epoch
    eval_steps: int = 400
    metric_for_best_model: str = "eval_loss"
    greater_is_better: bool = False
    logging_steps: int = 10
    save_steps: int = 50                         # checkpoint every N optimizer steps (and after every validation):
                                                 # ~30 min on a T4 in session mode (estimate: ~16k tokens/step, ~420 tok/s)
    save_total_limit: int | None = 3             # newest N checkpoints, plus the best one
    gradient_checkpointing: bool = True          # on GPU only
    seed: int = config.SEED
    resume: bool = True                          # continue from the last checkpoint in output_dir

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_target_modules"] = list(self.lora_target_modules)
        return d


@dataclass
class ResponseTrainConfig(TrainConfig):
    """Appendix D, response generation."""


@dataclass
class ScoreTrainConfig(TrainConfig):
    """Appendix D, score prediction (QLoRA as for responses; its own optimiser and selection)."""
    task: str = "score"
    output_dir: str = "outputs/train/score"
    max_length: int | None = 8192                # the whole dialogue plus the 20 answer lines
    optim: str = "adamw_torch_fused"
    learning_rate: float = 2e-4
    batch_size: int = 4
    epochs: float = 4
    eval_strategy: str = "epoch"
    metric_for_best_model: str = "eval_item_accuracy"
    greater_is_better: bool = True
    seed: int = config.SCORE_SPLIT_SEEDS[0]      # train/validation re-split; test fixed by config.SEED


def make_config(task: str = "response", profile: str = "paper", **overrides) -> TrainConfig:
    """Return the config of *task*: Appendix D (``profile="paper"``) or a named profile, plus *overrides*.

    ``profile="colab"`` is a run a free Colab T4 finishes in one session (:data:`kokoro_nb.train.plan.PROFILES`);
    unknown names are an error. :func:`kokoro_nb.train.plan.device_plan` chooses the profile for the device.
    """
    from kokoro_nb.train.plan import PROFILES
    sft._check_choice(task, sft.TASKS, "task")
    sft._check_choice(profile, tuple(PROFILES), "profile")
    overrides = {**PROFILES[profile][task], **overrides}
    cls = ResponseTrainConfig if task == "response" else ScoreTrainConfig
    names = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise DataError(f"unknown training parameter(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
    if "lora_target_modules" in overrides:
        overrides["lora_target_modules"] = tuple(overrides["lora_target_modules"])
    cfg = cls(**overrides)
    validate_config(cfg)
    return cfg


def validate_config(cfg: TrainConfig) -> None:
    """Raise DataError naming the field when a setting cannot work."""
    sft._check_choice(cfg.task, sft.TASKS, "task")
    if cfg.task == "response":
        sft._check_choice(cfg.subset, splits.SUBSETS, "subset")
        sft._check_choice(cfg.mode, sft.MODES, "mode")
    sft._check_choice(cfg.eval_strategy, ("steps", "epoch"), "eval_strategy")
    if cfg.eval_sample is not None and cfg.eval_sample < 1:
        raise DataError(f"must be >= 1 or None, got {cfg.eval_sample}", field="eval_sample")
    for name in ("batch_size", "per_device_batch_size", "lora_r", "eval_steps", "logging_steps", "save_steps"):
        if getattr(cfg, name) < 1:
            raise DataError(f"must be >= 1, got {getattr(cfg, name)}", field=name)
    if cfg.max_length is not None and cfg.max_length < 64:
        raise DataError(f"must be >= 64 tokens or None, got {cfg.max_length}", field="max_length")
    if cfg.learning_rate <= 0:
        raise DataError(f"must be > 0, got {cfg.learning_rate}", field="learning_rate")


# --------------------------------------------------------------------------- model and tokenizer

def hf_token() -> str | None:
    """Return a Hugging Face token from the environment or Colab secrets (never printed)."""
    for name in HF_TOKEN_ENV:
        if os.environ.get(name):
            return os.environ[name]
    try:                                          # Colab: Secrets panel, key HF_TOKEN
        from google.colab import userdata        # type: ignore
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


def runtime_device() -> dict:
    """Describe where training runs: device name, compute dtype (bf16 only where the GPU has it natively),
    and the row of :data:`kokoro_nb.train.plan.GPUS` it is timed as (``gpu``; None when not listed)."""
    import torch
    from kokoro_nb.train.plan import gpu_type
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


# --------------------------------------------------------------------------- data

def build_datasets(cfg: TrainConfig, corpus, tokenizer) -> tuple[dict, dict]:
    """Return ({"train", "validation"} lists of tokenized rows, data info) for *cfg*'s task.

    Rows are ``{"input_ids", "labels"}`` from :func:`kokoro_nb.train.sft.iter_rows` (the model's own chat
    template, -100 where no loss), which TRL uses as they are; the info counts examples, tokens and
    target tokens of each split.
    """
    info: dict = {}
    if cfg.task == "response":
        prompt = sft.SYSTEM_PROMPT if cfg.system_prompt is None else cfg.system_prompt
        ids = splits.response_split_ids(corpus, cfg.subset, cfg.seed, cfg.validation_fraction)
        data = _capped({k: sft.response_examples(corpus, ids[k], cfg.mode, system_prompt=prompt)
                        for k in ("train", "validation")}, cfg)
    else:
        prompt = sft.SCORE_SYSTEM_PROMPT if cfg.system_prompt is None else cfg.system_prompt
        ids = splits.score_split(corpus.dialogues["dialogue_id"].astype(str), cfg.seed, config.SEED)
        data = _capped({k: sft.score_examples(corpus, ids[k], system_prompt=prompt)
                        for k in ("train", "validation")}, cfg)
        for k in data:
            data[k], info[f"{k}_transcripts_cut"] = _fit_score(data[k], tokenizer, cfg.max_length)
    info.update({f"{k}_dialogues": len(ids[k]) for k in ("train", "validation")})
    info.update({f"{k}_examples": len(v) for k, v in data.items()})
    if not data["train"]:
        raise DataError(f"no training examples for task={cfg.task} subset={cfg.subset}: "
                        "the corpus (or its sample) has no dialogue in that subset", field="subset")
    # score examples end with their one answer (per_turn = loss on the last assistant message) and
    # already fit; response examples are tokenized in the chosen mode
    mode, max_length = (cfg.mode, cfg.max_length) if cfg.task == "response" else ("per_turn", None)
    rows = {}
    for k, v in data.items():
        counts: dict = {}
        rows[k] = list(sft.iter_rows(v, tokenizer, mode, max_length, info=counts))
        info.update({f"{k}_{c}": n for c, n in counts.items() if cfg.task == "response"})
        info.update({f"{k}_{c}": n for c, n in sft.count_rows(rows[k]).items()})
    return rows, info


def eval_sample(rows: list, n: int | None, seed: int) -> list:
    """Return a fixed, seeded sample of *n* validation rows (all of them when n is None or larger)."""
    if n is None or n >= len(rows):
        return rows
    import numpy as np
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return [rows[i] for i in keep]


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


def _capped(data: dict, cfg: TrainConfig) -> dict:
    """Keep the first max_train_examples / max_eval_examples examples (smoke runs), before any tokenizing."""
    return {"train": data["train"][:cfg.max_train_examples], "validation": data["validation"][:cfg.max_eval_examples]}


def _fit_score(examples: list[dict], tokenizer, max_length: int | None) -> tuple[list[dict], int]:
    """Cut the middle of over-long transcripts so the 20 answer lines always fit."""
    if max_length is None:
        return examples, 0
    out, n_cut = [], 0
    for ex in examples:
        msgs = ex["messages"]
        for _ in range(6):
            head, lens = sft.message_lengths(msgs, tokenizer)
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
            text = sft.cut_middle(text, keep)
            msgs = msgs[:-2] + [{"role": "user", "content": instr + "対話:\n" + text}, msgs[-1]]
        if msgs is not ex["messages"]:
            n_cut += 1
            ex = {**ex, "messages": msgs}
        out.append(ex)
    return out, n_cut


# --------------------------------------------------------------------------- score accuracy during validation

def score_positions(label_ids, tokenizer) -> list[int]:
    """Return positions of the score digits in an answer's labels (a 0-5 digit after ':' or a space)."""
    digits = {tokenizer.convert_tokens_to_ids(str(d)): d for d in range(6)}
    prev = ""
    out = []
    for t, tid in enumerate(label_ids):
        if tid < 0:
            prev = ""
            continue
        if tid in digits and (prev.endswith(":") or prev.endswith("：") or prev.endswith(" ")):
            out.append(t)
        prev = tokenizer.decode([int(tid)])
    return out


def make_score_metrics(tokenizer):
    """Return (compute_metrics, preprocess_logits) for teacher-forced item accuracy on validation.

    The model sees the gold answer up to each item and predicts its digit; ``item_accuracy`` is
    the share of exact digits, ``item_accuracy_soft`` within 1 (paper ACC / ACC_soft, but
    teacher-forced: cheap enough to run at every evaluation; generated scores are evaluated later).
    """
    inv = {tokenizer.convert_tokens_to_ids(str(d)): d for d in range(10)}

    def preprocess(logits, labels):
        return logits.argmax(-1)

    def compute(eval_pred):
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        exact, soft, n = 0, 0, 0
        for p, lab in zip(preds, labels):
            for t in score_positions(lab, tokenizer):
                gold, guess = inv[int(lab[t])], inv.get(int(p[t - 1]))
                n += 1
                exact += guess == gold
                soft += guess is not None and abs(guess - gold) <= 1
        return {"item_accuracy": exact / n if n else float("nan"),
                "item_accuracy_soft": soft / n if n else float("nan"), "items_scored": n}

    return compute, preprocess


# --------------------------------------------------------------------------- progress, throughput, memory

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


def _throughput_callback(log_path: Path, quiet: bool):
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Add tokens/s, peak memory and the estimated time per epoch to every log line."""

        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            self.t0, self.step0, self.tok0 = time.time(), state.global_step, state.num_input_tokens_seen
            n_batches = len(train_dataloader) if train_dataloader is not None else 0
            self.steps_per_epoch = max(1, math.ceil(n_batches / args.gradient_accumulation_steps))

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or logs is None:
                return
            dt = time.time() - self.t0
            steps = state.global_step - self.step0
            rec = {"step": state.global_step, "epoch": state.epoch, **logs, **peak_memory_gb()}
            if steps > 0 and dt > 0:
                rec["tokens_per_s"] = (state.num_input_tokens_seen - self.tok0) / dt
                rec["est_minutes_per_epoch"] = self.steps_per_epoch * dt / steps / 60
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            if not quiet and ("loss" in logs or "eval_loss" in logs):
                from tqdm.auto import tqdm
                if "eval_loss" in logs:
                    extra = {k: v for k, v in logs.items() if k.startswith("eval_item_accuracy")}
                    tqdm.write(f"step {state.global_step}/{state.max_steps}  validation loss {logs['eval_loss']:.4f}"
                               + "".join(f"  {k[5:]} {v:.3f}" for k, v in extra.items()))
                    return
                mem = rec.get("peak_gpu_gb", rec["peak_rss_gb"])
                est = rec.get("est_minutes_per_epoch", float("nan"))
                per_epoch = f"~{est * 60:.0f} s/epoch" if est < 1 else f"~{est:.1f} min/epoch"
                tqdm.write(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                           f"{rec.get('tokens_per_s', 0):,.0f} tok/s  peak {mem:.2f} GiB "
                           f"{'GPU' if 'peak_gpu_gb' in rec else 'RSS'}  {per_epoch}")

    return Throughput()


def amp_flags(dev: dict) -> dict:
    """Return the Trainer's mixed precision for *dev*: bf16 where the GPU has it natively, fp16 on
    other GPUs (T4, V100), none on CPU."""
    cuda = dev["device"] == "cuda"
    return {"bf16": cuda and bool(dev["bf16"]), "fp16": cuda and not dev["bf16"]}


def build_trainer(cfg: TrainConfig, model, tokenizer, train_rows: list, eval_rows: list, *, dev: dict,
                  callbacks: Sequence = (), progress: bool = True):
    """Return (trainer, gradient accumulation steps, world size, notes): TRL's SFTTrainer for *cfg* on *dev*.

    The mixed precision follows the device (:func:`amp_flags`). Under fp16 the trainable LoRA weights
    are float32 (:func:`kokoro_nb.train.checkpoints.resumable`): the fp16 GradScaler cannot unscale bf16
    gradients on CUDA.
    """
    import warnings

    import torch
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from trl import SFTConfig, SFTTrainer
    notes = []
    use_gc = cfg.gradient_checkpointing and dev["device"] == "cuda"
    if cfg.load_in_4bit:
        with warnings.catch_warnings():           # peft still calls a renamed transformers property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gc,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = max(1, cfg.batch_size // (cfg.per_device_batch_size * world))
    if accum * cfg.per_device_batch_size * world != cfg.batch_size:
        notes.append(f"effective batch {accum * cfg.per_device_batch_size * world} (asked {cfg.batch_size})")
    if dev["device"] == "cpu" and "8bit" in cfg.optim:
        notes.append(f"bitsandbytes {cfg.optim} on CPU (8-bit states for tensors >= 4096 elements)")
    amp = amp_flags(dev)
    if amp["fp16"]:
        notes.append(f"{dev['name']}: fp16 mixed precision, LoRA weights kept in float32 for the gradient scaler")
    args = SFTConfig(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"), per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size, gradient_accumulation_steps=accum,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, optim=cfg.optim, eval_strategy=cfg.eval_strategy, eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=False, metric_for_best_model=cfg.metric_for_best_model,  # best: load_best_adapter
        greater_is_better=cfg.greater_is_better, logging_steps=cfg.logging_steps, seed=cfg.seed,
        **amp, use_cpu=not torch.cuda.is_available(), activation_checkpointing=use_gc,
        activation_checkpointing_kwargs={"use_reentrant": False} if use_gc else None,
        assistant_only_loss=False, completion_only_loss=True, max_length=cfg.max_length, report_to="none",
        include_num_input_tokens_seen="non_padding", disable_tqdm=not progress,
        eval_accumulation_steps=8 if cfg.task == "score" else None,
        ddp_find_unused_parameters=False if world > 1 else None, ddp_timeout=distributed_timeout_s())
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    extra = {}
    if cfg.task == "score":
        extra["compute_metrics"], extra["preprocess_logits_for_metrics"] = make_score_metrics(tokenizer)
    trainer = resumable(SFTTrainer)(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                                    eval_dataset=Dataset.from_list(eval_rows), processing_class=tokenizer,
                                    peft_config=lora, callbacks=[save_after_evaluation(), *callbacks], **extra)
    from transformers import PrinterCallback
    trainer.remove_callback(PrinterCallback)      # raw log dicts; our callback prints a readable line
    return trainer, accum, world, notes


# --------------------------------------------------------------------------- training

def train(cfg: TrainConfig, corpus, *, callbacks: Sequence = (), progress: bool = True,
          quiet: bool = False, select_rows=None) -> dict:
    """Fine-tune with QLoRA per *cfg* on *corpus*; write the artifacts; return the metrics.

    *progress* shows progress bars; unless *quiet*, one line per log step gives the loss,
    tokens/s, peak memory and the estimated time per epoch. *select_rows* (tokenized
    ``{"train", "validation"}`` -> the same) picks the rows to train on, e.g. the longest for
    :func:`kokoro_nb.train.plan.measure_run`.
    """
    validate_config(cfg)
    import torch
    from transformers import set_seed

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    if not progress:                              # keep notebook output to our one line per log step
        import datasets
        import transformers
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    dev = runtime_device()
    prefetch_for_launch(cfg.model_name)
    proc = process_state()                        # under torchrun / accelerate launch: this process's rank
    skipped: list = []
    resume_from = last_checkpoint(out, skipped=skipped) if cfg.resume else None
    notes_resume = remove_incomplete(skipped) if proc.is_main_process else []
    proc.wait_for_everyone()
    done = finished_step(resume_from, cfg.max_steps, cfg.epochs) if resume_from else None
    if done is not None and (out / "metrics.json").is_file():
        if not quiet and proc.is_main_process:
            print(f"[train] the run in {out} already finished at step {done}: nothing to train "
                  "(resume=False or another output folder trains again)")
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    token = hf_token()

    path = cfg.model_name
    notes_pre = []
    if cfg.model_name == config.TINY_MODEL and dev["device"] == "cpu":
        notes_pre.append(limit_cpu_threads())
    with proc.main_process_first():              # one process builds or downloads, the others then read
        if cfg.model_name == config.TINY_MODEL:
            path = out / "base_model"
            if not (path / "config.json").exists():     # kept across resumes: same weights, same tokenizer
                build_tiny_llama(tiny_tokenizer_texts(corpus), path, seed=cfg.seed,
                                 max_positions=max(cfg.max_length or 0, 8192))
            path = str(path)
        tokenizer = load_tokenizer(path, token)
        model, notes = load_base_model(path, load_in_4bit=cfg.load_in_4bit, quant_type=cfg.bnb_4bit_quant_type,
                                       compute_dtype=cfg.bnb_4bit_compute_dtype,
                                       double_quant=cfg.bnb_4bit_use_double_quant, token=token)
    data, data_info = build_datasets(cfg, corpus, tokenizer)
    if select_rows is not None:
        data = select_rows(data)
        data_info["measured_row_lengths"] = [len(r["input_ids"]) for r in data["train"]]
    notes = notes_pre + notes_resume + notes
    log_path = out / "training_log.jsonl"
    if resume_from is None and log_path.exists() and proc.is_main_process:
        log_path.unlink()
    throughput = _throughput_callback(log_path, quiet)
    eval_rows = eval_sample(data["validation"], cfg.eval_sample, cfg.seed)
    trainer, accum, world, more = build_trainer(cfg, model, tokenizer, data["train"], eval_rows, dev=dev,
                                                callbacks=[throughput, *callbacks], progress=progress)
    notes += more
    if not quiet and proc.is_main_process:
        for n in notes:
            print(f"[train] {n}")
        if resume_from:
            print(f"[train] resuming from {resume_from}")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.time() - t0
    trainer.load_best_adapter()                   # checkpoints are more frequent than validations: pick ourselves
    tokens_run = trainer.state.num_input_tokens_seen - throughput.tok0   # not the tokens before a resume

    final_eval = None
    if len(eval_rows) < len(data["validation"]):   # the best model on the whole validation set
        final_eval = trainer.evaluate(Dataset.from_list(data["validation"]), metric_key_prefix="final_eval")
    if trainer.is_world_process_zero():
        trainer.save_model(str(out / "adapter"))
        tokenizer.save_pretrained(str(out / "adapter"))
    state = trainer.state
    losses = [(h["step"], h["loss"]) for h in state.log_history if "loss" in h]
    evals = [{k: v for k, v in h.items() if k.startswith("eval_") or k in ("step", "epoch")}
             for h in state.log_history if any(k.startswith("eval_") for k in h)]
    metrics = {
        "task": cfg.task, "model_name": cfg.model_name, "base_model_path": path, "device": dev, "notes": notes,
        "data": data_info, "resumed_from": resume_from, "global_step": state.global_step,
        "epochs_done": state.epoch, "train_loss": result.training_loss,
        "first_logged_loss": losses[0][1] if losses else None, "last_logged_loss": losses[-1][1] if losses else None,
        "best_metric": state.best_metric, "best_model_checkpoint": state.best_model_checkpoint,
        "eval_history": evals, "eval_examples_during_training": len(eval_rows), "final_validation": final_eval,
        "runtime_s": runtime, "tokens_seen": state.num_input_tokens_seen,
        "tokens_this_run": tokens_run, "tokens_per_s": tokens_run / runtime if runtime > 0 else None,
        "effective_batch": accum * cfg.per_device_batch_size * world, "gradient_accumulation_steps": accum,
        **peak_memory_gb(), "optimizer_class": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
    }
    free_memory(trainer, model)
    if trainer.is_world_process_zero():
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=2, ensure_ascii=False),
                                          encoding="utf-8")
    return metrics


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def _training_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / "training_log.jsonl"
    if not path.exists():
        raise DataError("no training log; run training first", file=str(path))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def logged_losses(output_dir: str | Path) -> list[tuple[int, float]]:
    """Return (step, training loss) pairs from ``training_log.jsonl``."""
    return [(r["step"], r["loss"]) for r in _training_log(output_dir) if "loss" in r]


def training_curves(output_dir: str | Path) -> "pd.DataFrame":
    """Return the logged losses in long form: step, split ("train" | "validation"), loss."""
    import pandas as pd
    rows = []
    for r in _training_log(output_dir):
        if "loss" in r:
            rows.append((r["step"], "train", r["loss"]))
        if "eval_loss" in r:
            rows.append((r["step"], "validation", r["eval_loss"]))
    return pd.DataFrame(rows, columns=["step", "split", "loss"]).drop_duplicates(["step", "split"], keep="last")


def config_table(cfg: TrainConfig) -> "pd.DataFrame":
    """Return this run's settings beside the paper's Appendix D, with a flag where they differ."""
    import pandas as pd
    from kokoro_nb import published
    from kokoro_nb.describe import ledger
    d = published.load()["appendix_d_training"]
    task = d["response_generation"] if cfg.task == "response" else d["score_prediction"]
    q, lora = d["response_generation"]["quantization"], d["response_generation"]["lora"]
    eval_every = (f"{task['eval_every_steps']} steps" if "eval_every_steps" in task else "every epoch")
    rows = [
        ("base model", d["base_model"], cfg.model_name),
        ("quantisation", f"{q['bits']}-bit {q['type']}, {q['compute_dtype']} compute",
         f"{'4-bit ' + cfg.bnb_4bit_quant_type if cfg.load_in_4bit else 'none'}, {cfg.bnb_4bit_compute_dtype} compute"),
        ("LoRA r / alpha / dropout", f"{lora['r']} / {lora['alpha']} / {lora['dropout']}",
         f"{cfg.lora_r} / {cfg.lora_alpha} / {cfg.lora_dropout}"),
        ("LoRA targets", ", ".join(lora["target_modules"]), ", ".join(cfg.lora_target_modules)),
        ("optimizer", task["optimizer"], cfg.optim),
        ("learning rate", f"{task['learning_rate']:g}", f"{cfg.learning_rate:g}"),
        ("warmup steps", str(task["warmup_steps"]), str(cfg.warmup_steps)),
        ("batch size", str(task["batch_size"]), str(cfg.batch_size)),
        ("epochs", str(task["epochs"]), str(cfg.epochs) + (f" (capped at {cfg.max_steps} steps)" if cfg.max_steps > 0 else "")),
        ("validation", eval_every, f"{cfg.eval_steps} steps" if cfg.eval_strategy == "steps" else "every epoch"),
        ("model selection", task["model_selection"], f"{'lowest' if not cfg.greater_is_better else 'highest'} "
                                                      f"{cfg.metric_for_best_model}"),
    ]
    df = pd.DataFrame(rows, columns=["setting", "Appendix D", "this run"]).set_index("setting")
    same = {"model selection": not (cfg.greater_is_better ^ ("highest" in task["model_selection"]))}
    df["differs"] = [("" if same.get(k, a == b) else "yes") for k, a, b in
                     zip(df.index, df["Appendix D"], df["this run"])]
    return df


# --------------------------------------------------------------------------- CLI

def register_cli(sub) -> None:
    """Add ``kokoro-nb train`` (works under ``accelerate launch -m kokoro_nb.cli train ...``)."""
    p = sub.add_parser("train", help="QLoRA fine-tuning (Appendix D defaults)",
                       description="Fine-tune with QLoRA; defaults are the paper's Appendix D. Multi-GPU: "
                                   "accelerate launch --num_processes N -m kokoro_nb.cli train ...")
    p.add_argument("task", choices=sft.TASKS)
    p.add_argument("--data", "--data-dir", dest="data_dir", metavar="PATH",
                   help=f"KokoroChat folder or archive (default: ${config.KOKOROCHAT_ENV})")
    p.add_argument("--sample", type=int, default=None, help="use N random dialogues")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a TrainConfig field, e.g. --set model_name=tiny-random-llama --set max_steps=40")
    p.add_argument("--profile", default="paper", help="paper (Appendix D, default) or colab (a free T4 session)")
    p.add_argument("--plan", action="store_true",
                   help="print steps, tokens, estimated GPU memory and hours per GPU type; train nothing")
    p.add_argument("--measure", action="store_true",
                   help="--plan: also train a few real steps on this device, on the longest rows, and print the "
                        "measured step time and peak memory beside the estimates")
    p.add_argument("--measure-steps", type=int, default=4, metavar="N", help="--measure: optimizer steps, 2-10 (default 4)")
    p.add_argument("--tokenizer", default="tiny",
                   help="--plan: count tokens with this tokenizer (local path or hub id; default: the offline "
                        "tiny tokenizer, whose counts are indicative only)")
    p.add_argument("--json", action="store_true", help="print metrics.json (with --plan: the plan)")
    p.set_defaults(func=_cmd_train)


def parse_overrides(pairs: Sequence[str], task: str) -> dict:
    """Turn ``NAME=VALUE`` strings into typed TrainConfig overrides (JSON values, else strings)."""
    out = {}
    names = {f.name for f in fields(ResponseTrainConfig if task == "response" else ScoreTrainConfig)}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in names:
            raise DataError(f"bad --set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(names))}")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _cmd_train(args) -> int:
    from kokoro_nb.data.corpus import load_kokorochat
    cfg = make_config(args.task, args.profile, **parse_overrides(args.set, args.task))
    if args.measure and not args.plan:
        raise DataError("--measure goes with --plan", field="--measure")
    if args.plan:
        from kokoro_nb.train.plan import format_plan, plan_run, plan_tokenizer
        corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
        df, counts = plan_run(cfg, corpus, plan_tokenizer(args.tokenizer, corpus))
        measured = None
        if args.measure:
            from kokoro_nb.train.plan import measure_run
            measured = measure_run(cfg, corpus, args.measure_steps, progress=not os.environ.get("TQDM_DISABLE"))
        if args.json:
            from kokoro_nb.cli.common import print_json
            print_json(_jsonable({"tokenizer": args.tokenizer, "epoch": counts,
                                  "estimates": df.reset_index().to_dict(orient="records"),
                                  **({"measured": measured} if measured else {})}))
        else:
            print(f"tokens counted with the {args.tokenizer} tokenizer")
            print(format_plan(df, counts, cfg))
            if measured:
                from kokoro_nb.train.plan import format_measure
                print(format_measure(measured))
        return 0
    import contextlib
    import sys
    try:
        prefetch_for_launch(cfg.model_name)
        proc = process_state()
        with proc.main_process_first():           # torchrun / accelerate launch: one process downloads and caches
            corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
        # with --json, stdout carries only the JSON
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            metrics = train(cfg, corpus, progress=not os.environ.get("TQDM_DISABLE"))
    except ImportError as exc:
        raise MissingDependencyError(f"{exc}; install the training extras: pip install 'kokoro-nb[train]'") from None
    if not proc.is_main_process:                  # one report, from the main process
        return 0
    if args.json:
        from kokoro_nb.cli.common import print_json
        print_json(_jsonable(metrics))
    else:
        print(f"done: {metrics['global_step']} steps, train loss {metrics['train_loss']:.4f}, "
              f"artifacts in {cfg.output_dir}")
    return 0
