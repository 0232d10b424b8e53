"""``kokoro-nb sft-data`` and ``kokoro-nb train``: SFT data, fine-tuning, and the plan of a run.

Argument parsing and printing only; the work is :func:`kokoro_nb.train.sft.write_sft_data`,
:func:`kokoro_nb.train.loop.train`, :func:`kokoro_nb.train.plan.plan_run` and
:func:`kokoro_nb.train.measure.measure_run`.

>>> parse_overrides(["max_steps=40", "model_name=tiny-random-llama"], "response")
{'max_steps': 40, 'model_name': 'tiny-random-llama'}
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import fields
from typing import Sequence

from kokoro_nb import config
from kokoro_nb.cli.common import (
    add_data,
    add_json,
    add_sample,
    add_seed,
    add_tokenizer,
    print_json,
)
from kokoro_nb.data import splits
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError, MissingDependencyError
from kokoro_nb.train import loop, measure, models, plan, sft
from kokoro_nb.train.config import ResponseTrainConfig, ScoreTrainConfig, make_config

DATA_HELP = f"KokoroChat folder or archive (default: ${config.KOKOROCHAT_ENV})"


def register_cli(sub) -> None:
    """Add ``kokoro-nb sft-data`` and ``kokoro-nb train``."""
    _add_sft_data(sub)
    _add_train(sub)


def _add_sft_data(sub) -> None:
    """Add ``kokoro-nb sft-data``."""
    p = sub.add_parser("sft-data", help="write SFT data (JSONL) and print the split sizes",
                       description="Build response-generation or score-prediction SFT examples from "
                                   "KokoroChat, write <task>_<split>.jsonl and print the split sizes.")
    add_data(p, DATA_HELP, alias=True)
    p.add_argument("--task", choices=sft.TASKS, default="response")
    p.add_argument("--subset", choices=splits.SUBSETS, default="full", help="response training subset (paper 5.1.1)")
    p.add_argument("--mode", choices=sft.MODES, default="per_turn", help="one example per counselor turn or per dialogue")
    add_seed(p, f"train/validation seed (default {config.SEED} for response, {config.SCORE_SPLIT_SEEDS[0]} for score)",
             default=None)
    p.add_argument("--validation-fraction", type=float, default=sft.VALIDATION_FRACTION)
    p.add_argument("--system-prompt", default=None, help="replace the Japanese system prompt")
    p.add_argument("--max-chars", type=int, default=None, help="score task: cut dialogues longer than this")
    add_sample(p, "use N random dialogues (smoke runs)")
    p.add_argument("--output-dir", default="outputs/sft", help="where to write JSONL (default outputs/sft)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the sizes and the tokens of one epoch per split, write nothing")
    add_tokenizer(p, "--dry-run: count tokens with this tokenizer, a local path or hub id (default: the "
                     "offline tiny tokenizer trained on the corpus; its counts are indicative only)")
    p.add_argument("--max-length", type=int, default=4096, help="tokens per training row, as in training")
    add_json(p, "print the sizes as JSON")
    p.set_defaults(func=_cmd_sft_data)


def _cmd_sft_data(args) -> int:
    if args.max_chars is not None and args.max_chars < 100:
        raise DataError(f"--max-chars must be at least 100, got {args.max_chars}", field="--max-chars")
    corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
    tok = None
    if args.dry_run:
        tok = models.plan_tokenizer(args.tokenizer, corpus)
    info = sft.write_sft_data(corpus, None if args.dry_run else args.output_dir, task=args.task,
                          subset=args.subset, mode=args.mode, seed=args.seed,
                          validation_fraction=args.validation_fraction,
                          system_prompt=args.system_prompt, max_chars=args.max_chars, tokenizer=tok,
                          max_length=args.max_length)
    if tok is not None:
        info["tokenizer"] = args.tokenizer
    if args.json:
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
        if "tokens" in info and k in info["tokens"]:
            extra += f"  {info['tokens'][k]:>12,} tokens  {info['target_tokens'][k]:>10,} target tokens"
        where = f"  -> {info['files'][k]}" if k in info["files"] else ""
        print(f"  {k:<10} {n:>6,} dialogues{extra}{where}")
    return 0


def _add_train(sub) -> None:
    """Add ``kokoro-nb train`` (works under ``accelerate launch -m kokoro_nb.cli train ...``)."""
    p = sub.add_parser("train", help="QLoRA fine-tuning (Appendix D defaults)",
                       description="Fine-tune with QLoRA; defaults are the paper's Appendix D. Multi-GPU: "
                                   "accelerate launch --num_processes N -m kokoro_nb.cli train ...")
    p.add_argument("task", choices=sft.TASKS)
    add_data(p, DATA_HELP, alias=True)
    add_sample(p, "use N random dialogues")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a TrainConfig field, e.g. --set model_name=tiny-random-llama --set max_steps=40")
    p.add_argument("--profile", default="paper", help="paper (Appendix D, default) or colab (a free T4 session)")
    p.add_argument("--plan", action="store_true",
                   help="print steps, tokens, estimated GPU memory and hours per GPU type; train nothing")
    p.add_argument("--measure", action="store_true",
                   help="--plan: also train a few real steps on this device, on the longest rows, and print the "
                        "measured step time and peak memory beside the estimates")
    p.add_argument("--measure-steps", type=int, default=4, metavar="N", help="--measure: optimizer steps, 2-10 (default 4)")
    add_tokenizer(p, "--plan: count tokens with this tokenizer (local path or hub id; default: the offline "
                     "tiny tokenizer, whose counts are indicative only)")
    add_json(p, "print metrics.json (with --plan: the plan)")
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
    cfg = make_config(args.task, args.profile, **parse_overrides(args.set, args.task))
    if args.measure and not args.plan:
        raise DataError("--measure goes with --plan", field="--measure")
    if args.plan:
        corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
        df, counts = plan.plan_run(cfg, corpus, models.plan_tokenizer(args.tokenizer, corpus))
        measured = None
        if args.measure:
            measured = measure.measure_run(cfg, corpus, args.measure_steps, progress=not os.environ.get("TQDM_DISABLE"))
        if args.json:
            print_json(loop.jsonable({"tokenizer": args.tokenizer, "epoch": counts,
                                       "estimates": df.reset_index().to_dict(orient="records"),
                                       **({"measured": measured} if measured else {})}))
        else:
            print(f"tokens counted with the {args.tokenizer} tokenizer")
            print(plan.format_plan(df, counts, cfg))
            if measured:
                print(measure.format_measure(measured))
        return 0
    try:
        proc = models.launch_state(cfg.model_name)   # prefetch and join once; train() reuses it
        with proc.main_process_first():           # torchrun / accelerate launch: one process downloads and caches
            corpus = load_kokorochat(args.data_dir, sample=args.sample, progress=not os.environ.get("TQDM_DISABLE"))
        # with --json, stdout carries only the JSON
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            metrics = loop.train(cfg, corpus, progress=not os.environ.get("TQDM_DISABLE"), proc=proc)
    except ImportError as exc:
        raise MissingDependencyError(f"{exc}; install the training extras: pip install 'kokoro-nb[train]'") from None
    if not proc.is_main_process:                  # one report, from the main process
        return 0
    if args.json:
        print_json(loop.jsonable(metrics))
    else:
        print(f"done: {metrics['global_step']} steps, train loss {metrics['train_loss']:.4f}, "
              f"artifacts in {cfg.output_dir}")
    return 0
