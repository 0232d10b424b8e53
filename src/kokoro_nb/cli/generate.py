"""``kokoro-nb generate``: greedy responses for the test dialogues into a resumable JSONL.

Argument parsing and printing only; the work is :mod:`kokoro_nb.generate`.
"""
from __future__ import annotations

import os
from pathlib import Path

from kokoro_nb import config, generate
from kokoro_nb.cli.common import add_data
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError


def register_cli(sub) -> None:
    """Add ``kokoro-nb generate``."""
    p = sub.add_parser("generate", help="greedy responses for the test dialogues (resumable JSONL)",
                       description="Generate every counselor turn of the test dialogues (score 99-100) "
                                   "from its full history and append to a responses JSONL.")
    add_data(p, f"KokoroChat folder or archive (default: ${config.KOKOROCHAT_ENV})", alias=True)
    p.add_argument("--model", default=config.BASE_MODEL,
                   help="hub id or local path (full weights or a LoRA adapter, e.g. UEC-InabaLab/KokoroChat-Full), "
                        "or tiny-random-llama")
    p.add_argument("--backend", choices=generate.BACKENDS, default="auto",
                   help=f"hf (batched generate), vllm (LLM.generate, bf16 + LoRA), auto: vllm when installed "
                        f"on a GPU with >= {generate.VLLM_MIN_GPU_GB:.0f} GiB")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (from kokoro-nb train)")
    p.add_argument("--output", default="outputs/generate/responses.jsonl")
    p.add_argument("--dialogues", type=int, default=None, help="only the first N test dialogues")
    p.add_argument("--batch-size", type=int, default=8, help=f"hf generate batch (vLLM: {generate.VLLM_CHUNK} per call)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--no-4bit", action="store_true", help="load the model unquantised")
    p.add_argument("--restart", action="store_true", help="discard the existing output instead of resuming")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args) -> int:
    if args.batch_size < 1 or args.max_new_tokens < 1:
        raise DataError("--batch-size and --max-new-tokens must be >= 1")
    corpus = load_kokorochat(args.data_dir, progress=not os.environ.get("TQDM_DISABLE"))
    ids = generate.evaluation_dialogue_ids(corpus, args.dialogues)
    model, tok = generate.load_generator(args.model, args.adapter, load_in_4bit=not args.no_4bit, corpus=corpus,
                                         work_dir=Path(args.output).parent, backend=args.backend,
                                         max_length=args.max_length)
    info = generate.generate_responses(model, tok, generate.response_prompts(corpus, ids), args.output,
                                       batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                       max_length=args.max_length, resume=not args.restart,
                                       progress=not os.environ.get("TQDM_DISABLE"))
    print(f"{info['written']} written, {info['skipped']} already there, {info['total']} turns -> {info['path']}")
    return 0
