"""Measure QLoRA training and generation cost on this machine's GPU: the figures of book/performance.md.

A randomly initialised model with Llama-3.1-8B's exact architecture (a config, no download) is
trained with the package's own QLoRA path (``kokoro_nb.train.train``) at max_length 4096, in
``per_turn`` and ``session`` mode on the same dialogues. For each mode: tokens/s, peak GPU memory,
and seconds per epoch of the Full subset extrapolated from that throughput and the epoch's token
count (``kokoro_nb.sft.epoch_budget`` with the benchmark's tokenizer). With ``--generate``: greedy
generation throughput with HF ``generate`` and, when installed, vLLM.

Usage (GPU):   python scripts/gpu_bench.py --data $KOKOROCHAT_DIR --out outputs/bench
Check (CPU):   python scripts/gpu_bench.py --data $KOKOROCHAT_DIR --dry-run   (tiny model, a few steps)

Prints one Markdown row per measurement (date, device) and writes ``<out>/bench.json``.
Exit codes: 0 done, 2 bad input (message on stderr).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="gpu_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="KokoroChat folder (default: $KOKOROCHAT_DIR)")
    p.add_argument("--out", default="outputs/bench", help="where models, runs and bench.json go")
    p.add_argument("--arch", default="llama-3.1-8b", help="model shape (kokoro_nb.train.ARCHITECTURES)")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per mode (batch 8)")
    p.add_argument("--sample", type=int, default=400, help="dialogues the runs draw from")
    p.add_argument("--modes", nargs="+", default=["per_turn", "session"], choices=["per_turn", "session"])
    p.add_argument("--generate", action="store_true", help="also measure generation (HF, and vLLM if installed)")
    p.add_argument("--gen-prompts", type=int, default=64)
    p.add_argument("--no-extrapolate", action="store_true", help="skip counting the Full epoch's tokens")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny model, max_length 256, 2 steps, 12 dialogues: checks the script on a CPU")
    return p


def device_name() -> str:
    """Return the GPU's name, or 'cpu'."""
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def prepare_model(corpus, out: Path, arch: str) -> str:
    """Build (once) the random-weights model of shape *arch* with a tokenizer trained on the dialogues."""
    from kokoro_nb import train
    path = out / f"random-{arch}"
    if not (path / "config.json").exists():
        texts = train.tiny_tokenizer_texts(corpus, 1000)
        if arch == "tiny":
            train.build_tiny_llama(texts, path)
        else:
            train.build_random_llama(texts, path, arch)
    return str(path)


def bench_training(corpus, model: str, out: Path, mode: str, args) -> dict:
    """Run a few QLoRA steps in *mode*; return tokens/s, peak memory and the run's metrics."""
    from kokoro_nb import train
    cfg = train.make_config("response", model_name=model, mode=mode, max_length=args.max_length,
                            max_steps=args.steps, batch_size=8, per_device_batch_size=1, eval_steps=10 ** 6,
                            eval_sample=4, max_eval_examples=4, logging_steps=max(1, args.steps // 5),
                            resume=False, output_dir=str(out / f"run-{mode}"))
    m = train.train(cfg, corpus, progress=False, quiet=True)
    return {"mode": mode, "steps": m["global_step"], "tokens": m["tokens_seen"], "runtime_s": m["runtime_s"],
            "tokens_per_s": m["tokens_per_s"], "peak_gpu_gb": m.get("peak_gpu_gb"), "peak_rss_gb": m["peak_rss_gb"],
            "device": m["device"]}


def full_epoch_tokens(corpus, model: str, mode: str, max_length: int) -> int:
    """Count the tokens of one epoch of the Full training split in *mode* (benchmark tokenizer)."""
    from kokoro_nb import sft, train
    tok = train.load_tokenizer(model)
    ids = sft.response_split_ids(corpus, "full")["train"]
    return int(sft.epoch_budget(corpus, ids, tokenizer=tok, max_length=max_length, modes=[mode],
                                progress=True).loc[mode, "tokens"])


def bench_generation(corpus, model: str, out: Path, backend: str, args) -> dict:
    """Greedy-generate for test prompts with *backend*; return generated tokens per second."""
    from kokoro_nb import generate
    prompts = generate.response_prompts(corpus, generate.evaluation_dialogue_ids(corpus))[:args.gen_prompts]
    new = 16 if args.dry_run else 128
    llm, tok = generate.load_generator(model, backend=backend, progress=False, max_length=args.max_length)
    path = out / f"gen-{backend}.jsonl"
    t0 = time.time()
    generate.generate_responses(llm, tok, prompts, path, batch_size=8 if backend == "hf" else 256,
                                max_new_tokens=new, max_length=args.max_length, resume=False, progress=False)
    secs = time.time() - t0
    n_new = sum(len(tok(r["hypothesis"], add_special_tokens=False)["input_ids"])
                for r in generate.read_responses(path))
    del llm
    return {"backend": backend, "prompts": len(prompts), "seconds": secs, "new_tokens": n_new,
            "new_tokens_per_s": n_new / secs if secs else None}


def main(argv=None) -> int:
    """Run the benchmark; print Markdown rows; write bench.json."""
    args = build_parser().parse_args(argv)
    if args.dry_run:
        args.arch, args.max_length, args.steps, args.sample, args.gen_prompts = "tiny", 256, 2, 12, 4
        args.no_extrapolate = True
    import kokoro_nb
    from kokoro_nb import generate
    from kokoro_nb.errors import KokoroError
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        corpus = kokoro_nb.load_kokorochat(args.data, progress=False)
        sample = corpus.sample(args.sample, seed=0)
        model = prepare_model(corpus, out, args.arch)
        result = {"date": dt.date.today().isoformat(), "device": device_name(), "arch": args.arch,
                  "max_length": args.max_length, "training": [], "generation": []}
        for mode in args.modes:
            r = bench_training(sample, model, out, mode, args)
            if not args.no_extrapolate:
                r["full_epoch_tokens"] = full_epoch_tokens(corpus, model, mode, args.max_length)
                r["full_epoch_hours"] = r["full_epoch_tokens"] / r["tokens_per_s"] / 3600
            result["training"].append(r)
        if args.generate:
            for backend in ["hf"] + (["vllm"] if generate.vllm_available() else []):
                result["generation"].append(bench_generation(corpus, model, out, backend, args))
    except KokoroError as exc:
        print(f"gpu_bench.py: {exc}", file=sys.stderr)
        return 2
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print("| date | device | mode | max length | tokens/s | peak GPU GB | Full epoch (h) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in result["training"]:
        peak = f"{r['peak_gpu_gb']:.1f}" if r["peak_gpu_gb"] is not None else "—"
        hours = f"{r['full_epoch_hours']:.1f}" if "full_epoch_hours" in r else "—"
        print(f"| {result['date']} | {result['device']} | `{r['mode']}` | {args.max_length:,} | "
              f"{r['tokens_per_s']:,.0f} | {peak} | {hours} |")
    for g in result["generation"]:
        print(f"generation {g['backend']}: {g['new_tokens_per_s']:,.0f} new tokens/s "
              f"({g['prompts']} prompts, {g['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
