"""Measure QLoRA training and generation cost on this machine's GPU: the figures of book/performance.md.

The prepared run (one A100 or H100; estimated 7-10 minutes, not yet timed on either; the data in
$KOKOROCHAT_DIR; run it in the vLLM environment of README.md to get the vLLM row too):

    python scripts/gpu_bench.py --out outputs/bench --generate

trains 5 optimizer steps (batch 8, max_length 4096) in ``per_turn`` and in ``session`` mode with the
package's own QLoRA path (``kokoro_nb.train.loop.train``), then greedy-generates 128 new tokens for 32
test prompts with HF ``generate`` (4-bit) and, where ``backend="auto"`` would choose it, vLLM
(bf16, requirements-vllm.txt). Nothing is downloaded: the model is Llama-3.1-8B's exact shape
with random weights, written to disk one layer at a time from an empty (``meta``) model, so RAM
never holds more than one layer (16 GB of disk, written once and reused by later runs); 4-bit
quantisation then happens shard by shard as transformers loads it onto the GPU. ``--model ID`` measures real weights instead (HF_TOKEN
for gated ones).

Per phase it records tokens/s, ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``
(reset at the start of each phase; reserved is what the GPU has to hold). Generated tokens are the
output ids the model produced, counted before any decoding. Hours per epoch of Full use the
Llama-3.1 token counts in ``kokoro_nb.train.plan.LLAMA31_EPOCH``, not the random model's tokenizer.
``<out>/bench.json`` is rewritten after every phase; a phase that raises is recorded there (type,
message) and the others still run.

Check (CPU):   python scripts/gpu_bench.py --data $KOKOROCHAT_DIR --dry-run   (tiny model, a few steps)

Prints one Markdown row per measurement (date, device). Exit codes: 0 done, 1 a phase failed
(see bench.json), 2 bad input (message on stderr).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="gpu_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="KokoroChat folder (default: $KOKOROCHAT_DIR)")
    p.add_argument("--out", default="outputs/bench", help="where models, runs and bench.json go")
    p.add_argument("--arch", default="llama-3.1-8b", help="model shape (kokoro_nb.train.models.ARCHITECTURES)")
    p.add_argument("--model", default=None, help="real weights (hub id or folder) instead of a random model")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--steps", type=int, default=5, help="optimizer steps per mode (batch 8; 5 fits the 10 minutes)")
    p.add_argument("--sample", type=int, default=400, help="dialogues the runs draw from")
    p.add_argument("--modes", nargs="+", default=["per_turn", "session"], choices=["per_turn", "session"])
    p.add_argument("--generate", action="store_true", help="also measure generation (HF, and vLLM where auto picks it)")
    p.add_argument("--gen-prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128, help="new tokens per prompt")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny model, max_length 256, 2 steps, 12 dialogues: checks the script on a CPU")
    return p


def device_name() -> str:
    """Return the GPU's name, or 'cpu'."""
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- the model

def shard_plan(cfg) -> dict[str, list[tuple[str, tuple]]]:
    """Return the model's tensors (name, shape) grouped one shard per layer, from a ``meta`` model (no memory)."""
    from accelerate import init_empty_weights
    from transformers import LlamaForCausalLM
    with init_empty_weights():
        meta = LlamaForCausalLM(cfg)
    groups: dict[str, list] = {}
    for name, t in meta.state_dict().items():
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[1] == "layers" else name       # model.layers.<i> together
        groups.setdefault(key, []).append((name, tuple(t.shape)))
    return groups


def write_random_model(texts, path: str | Path, arch: str = "llama-3.1-8b", *, vocab_size: int = 32000,
                       model_vocab_size: int | None = 128256, seed: int = 0) -> Path:
    """Save a random bf16 Llama of shape *arch* and a tokenizer trained on *texts*, one layer per shard.

    The model is built on the ``meta`` device (no memory); each layer's tensors are then drawn
    (on the GPU when there is one), written as a safetensors shard and dropped, so the process
    holds one layer at a time (~0.5 GB for 8B; the 128,256-row embedding and head ~1 GB each)
    instead of 16 GB. The embedding and head keep *model_vocab_size* rows, as Llama 3.1, so memory
    and compute match the real model although the tokenizer has fewer ids.
    """
    import torch
    from safetensors.torch import save_file
    from kokoro_nb.train import models
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = models.train_tokenizer(texts, vocab_size)
    cfg = models.llama_config(tok, arch, **({"vocab_size": model_vocab_size} if model_vocab_size else {}))
    cfg.dtype = torch.bfloat16
    groups = shard_plan(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(seed)
    weight_map, total = {}, 0
    for k, (key, tensors) in enumerate(groups.items(), 1):
        shard = {}
        for name, shape in tensors:
            if name.endswith("norm.weight"):
                t = torch.ones(shape, dtype=torch.bfloat16)
            else:            # initializer_range, as transformers' own init
                t = torch.empty(shape, dtype=torch.bfloat16, device=device).normal_(0, cfg.initializer_range,
                                                                                   generator=gen).cpu()
            shard[name] = t
            total += t.numel() * t.element_size()
        fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        save_file(shard, path / fname, metadata={"format": "pt"})
        weight_map.update({name: fname for name in shard})
        del shard
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1), encoding="utf-8")
    cfg.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def prepare_model(corpus, out: Path, arch: str) -> str:
    """Build (once) the random-weights model of shape *arch* with a tokenizer trained on the dialogues."""
    from kokoro_nb.train import models
    path = out / f"random-{arch}"
    if not (path / "config.json").exists():
        texts = models.tiny_tokenizer_texts(corpus, 1000)
        if arch == "tiny":
            models.build_tiny_llama(texts, path)
        else:
            write_random_model(texts, path, arch)
    return str(path)


# --------------------------------------------------------------------------- measurements

def reset_gpu_peaks() -> None:
    """Free what earlier phases left and start the peak counters afresh."""
    import gc
    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def gpu_peaks() -> dict:
    """Return peak GPU memory since the last reset, allocated and reserved (GiB); empty on CPU."""
    import torch
    if not torch.cuda.is_available():
        return {}
    return {"max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 2 ** 30,
            "max_memory_reserved_gb": torch.cuda.max_memory_reserved() / 2 ** 30}


def epoch_hours(tokens_per_s: float | None, mode: str, max_length: int, subset: str = "full") -> dict:
    """Return the hours of one epoch of *subset* at *tokens_per_s*, from the Llama-3.1 counts of plan.LLAMA31_EPOCH.

    Throughput is a property of the model's shape, so the random model's tokens/s applies to the
    real tokenizer's token count. Empty when the counts for (subset, mode, max_length) were not made.
    """
    from kokoro_nb.train import plan
    counts = plan.LLAMA31_EPOCH.get((subset, mode, max_length))
    if counts is None or not tokens_per_s:
        return {}
    return {f"{subset}_epoch_tokens": counts["tokens"], f"{subset}_epoch_hours": counts["tokens"] / tokens_per_s / 3600,
            "epoch_tokens_source": plan.LLAMA31_SOURCE}


def bench_training(corpus, model: str, out: Path, mode: str, args) -> dict:
    """Run a few QLoRA steps in *mode*; return tokens/s, peak memory and the run's metrics."""
    from kokoro_nb.train import loop
    from kokoro_nb.train.config import make_config
    cfg = make_config("response", model_name=model, mode=mode, max_length=args.max_length,
                      max_steps=args.steps, batch_size=8, per_device_batch_size=1, eval_steps=10 ** 6,
                      eval_sample=4, max_eval_examples=4, logging_steps=max(1, args.steps // 4),
                      resume=False, output_dir=str(out / f"run-{mode}"))
    m = loop.train(cfg, corpus, progress=False, quiet=True)
    row = {"mode": mode, "steps": m["global_step"], "tokens": m["tokens_seen"], "runtime_s": m["runtime_s"],
           "tokens_per_s": m["tokens_per_s"], "peak_rss_gb": m["peak_rss_gb"], "device": m["device"]}
    return {**row, **epoch_hours(row["tokens_per_s"], mode, args.max_length)}


def bench_prompts(corpus, n: int) -> list[dict]:
    """Return *n* counselor-turn prompts of the test dialogues (of any dialogues where there are none, as in synthetic data)."""
    from kokoro_nb import generate
    ids = generate.evaluation_dialogue_ids(corpus) or corpus.dialogues["dialogue_id"].astype(str).tolist()
    return generate.response_prompts(corpus, ids)[:n]


def bench_generation(corpus, model: str, out: Path, backend: str, args) -> dict:
    """Greedy-generate for test prompts with *backend*; return generated ids per second.

    The count is of the ids the model produced (``generate_responses``' ``new_tokens``): decoding
    and re-tokenizing would drop ids the tokenizer lacks, and the random model's 128,256 output
    rows are four times the bench tokenizer's vocabulary.
    """
    import torch
    from kokoro_nb import generate
    prompts = bench_prompts(corpus, args.gen_prompts)
    llm, tok = generate.load_generator(model, backend=backend, progress=False, max_length=args.max_length,
                                       load_in_4bit=torch.cuda.is_available())
    path = out / f"gen-{backend}.jsonl"
    t0 = time.time()
    info = generate.generate_responses(llm, tok, prompts, path, batch_size=8, max_new_tokens=args.new_tokens,
                                       max_length=args.max_length, resume=False, progress=False)
    secs = time.time() - t0
    del llm
    return {"backend": backend, "prompts": len(prompts), "seconds": secs, "new_tokens": info["new_tokens"],
            "new_tokens_per_s": info["new_tokens"] / secs if secs else None,
            "batch": 8 if backend == "hf" else generate.VLLM_CHUNK}


def write_json(result: dict, path: Path) -> None:
    """Replace *path* with *result* atomically, so a crash mid-write leaves the last complete file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def run_phase(result: dict, name: str, fn, path: Path):
    """Run one phase with fresh peak counters; record its peaks or its error; write the JSON; return its value."""
    reset_gpu_peaks()
    t0 = time.time()
    value = None
    try:
        value = fn()
        rec = {"phase": name, "ok": True}
    except Exception as exc:                 # one failing phase must not lose the others' figures
        rec = {"phase": name, "ok": False, "error": f"{exc.__class__.__name__}: {exc}",
               "traceback": traceback.format_exc(limit=-4)}
        print(f"gpu_bench.py: phase {name} failed: {rec['error']}", file=sys.stderr)
    rec.update(seconds=time.time() - t0, **gpu_peaks())
    if isinstance(value, dict):
        value.update(gpu_peaks())
    result["phases"].append(rec)
    write_json(result, path)
    return value


def markdown(result: dict, max_length: int) -> list[str]:
    """Return the Markdown rows of the performance page's tables."""
    gb = lambda v: f"{v:.1f}" if v is not None else "—"
    lines = ["| date | device | mode | max length | tokens/s | peak allocated GiB | peak reserved GiB | Full epoch (h) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["training"]:
        hours = f"{r['full_epoch_hours']:.1f}" if "full_epoch_hours" in r else "—"
        lines.append(f"| {result['date']} | {result['device']} | `{r['mode']}` | {max_length:,} | "
                     f"{r['tokens_per_s']:,.0f} | {gb(r.get('max_memory_allocated_gb'))} | "
                     f"{gb(r.get('max_memory_reserved_gb'))} | {hours} |")
    for g in result["generation"]:
        lines.append(f"generation {g['backend']}: {g['new_tokens_per_s']:,.0f} generated ids/s "
                     f"({g['prompts']} prompts, {g['new_tokens']} ids, {g['seconds']:.0f} s, "
                     f"peak reserved {gb(g.get('max_memory_reserved_gb'))} GiB)")
    return lines


def main(argv=None) -> int:
    """Run the benchmark phase by phase; print Markdown rows; keep bench.json current."""
    args = build_parser().parse_args(argv)
    if args.dry_run:
        args.arch, args.max_length, args.steps, args.sample, args.gen_prompts, args.new_tokens = \
            "tiny", 256, 2, 12, 4, 16
    # vLLM's engine in this process, so the torch peak counters include it
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    import kokoro_nb
    from kokoro_nb import generate
    from kokoro_nb.errors import KokoroError
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    try:
        corpus = kokoro_nb.load_kokorochat(args.data, progress=False)
    except KokoroError as exc:
        print(f"gpu_bench.py: {exc}", file=sys.stderr)
        return 2
    sample = corpus.sample(args.sample, seed=0)
    result = {"date": dt.date.today().isoformat(), "device": device_name(), "arch": args.arch,
              "model": args.model, "max_length": args.max_length, "steps": args.steps,
              "argv": sys.argv[1:] if argv is None else list(argv), "phases": [], "training": [], "generation": []}
    write_json(result, path)
    model = args.model or run_phase(result, "build model", lambda: prepare_model(corpus, out, args.arch), path)
    if model is not None:
        for mode in args.modes:
            r = run_phase(result, f"train {mode}", lambda: bench_training(sample, model, out, mode, args), path)
            if r is not None:
                result["training"].append(r)
                write_json(result, path)
        if args.generate:
            backend, why = generate.choose_backend()
            result["auto_backend"] = why
            for b in ["hf"] + (["vllm"] if backend == "vllm" else []):
                g = run_phase(result, f"generate {b}", lambda: bench_generation(corpus, model, out, b, args), path)
                if g is not None:
                    result["generation"].append(g)
                    write_json(result, path)
    print("\n".join(markdown(result, args.max_length)))
    print(f"-> {path}")
    return 0 if all(p["ok"] for p in result["phases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
