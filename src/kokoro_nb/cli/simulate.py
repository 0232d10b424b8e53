"""``kokoro-nb simulate run|judge``: simulated-client evaluation (paper Appendix E, Table 7).
The argparse side only; the dialogues and the judging are in :mod:`kokoro_nb.evaluate.simulate`."""
from __future__ import annotations

import os

from kokoro_nb.cli.common import add_data, add_seed, print_json
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError
from kokoro_nb.evaluate import simulate
from kokoro_nb.train.sft import SYSTEM_PROMPT


def register_cli(sub) -> None:
    """Add ``kokoro-nb simulate run|judge``."""
    p = sub.add_parser("simulate", help="simulated-client evaluation (paper Appendix E, Table 7)",
                       description="An LLM client talks to a counselor model, an LLM judge scores the dialogues. "
                                   "Endpoints are OpenAI-compatible base URLs (vLLM, transformers serve, Ollama, "
                                   "OpenAI); the key comes from OPENAI_API_KEY (any value for local servers).")
    s = p.add_subparsers(dest="simulate_command", metavar="STEP")
    s.required = True
    r = s.add_parser("run", help="simulate dialogues (resumable JSONL)",
                     description="Simulate client-counselor dialogues and append each finished one to --output.")
    r.add_argument("--counselor-url", required=True, help="base URL, e.g. http://localhost:8000/v1")
    r.add_argument("--counselor-model", required=True)
    r.add_argument("--client-url", required=True, help="base URL, e.g. https://api.openai.com/v1")
    r.add_argument("--client-model", required=True, help="the paper used gpt-4o")
    r.add_argument("--dialogues", type=int, required=True, help="number of dialogues (paper: 50 per model)")
    r.add_argument("--output", required=True, help="JSONL of finished dialogues")
    add_data(r, "KokoroChat, to seed clients from held-out test dialogues (with --seed-from-test)", alias=True)
    r.add_argument("--seed-from-test", action="store_true",
                   help="beyond the paper: give each client a test dialogue's topic and opening turns")
    r.add_argument("--seed-turns", type=int, default=1, help="client turns of the test dialogue to copy (default 1)")
    add_seed(r, "sampling seed sent to the endpoints; orders the seeds", default=42)
    r.add_argument("--min-turns", type=int, default=10, help="client turns before <end> is honoured (paper: 10)")
    r.add_argument("--max-turns", type=int, default=20, help="forced stop after this many exchanges (paper: 20)")
    r.add_argument("--concurrency", type=int, default=1, help="dialogues run at once")
    r.add_argument("--client-temperature", type=float, default=0.7)
    r.add_argument("--counselor-temperature", type=float, default=0.0, help="0: greedy, as Appendix D")
    r.add_argument("--max-tokens", type=int, default=256, help="per reply, both sides")
    r.add_argument("--counselor-system", default=None,
                   help="counselor system prompt (default: the one the fine-tuned models saw; 'none' for none)")
    _endpoint_options(r, ("counselor", "client"))
    r.add_argument("--restart", action="store_true", help="discard the existing output instead of resuming")
    r.set_defaults(func=_cmd_run)

    j = s.add_parser("judge", help="score simulated dialogues on the CPsyCoun dimensions",
                     description="Score each dialogue of FILE on comprehensiveness, professionalism, authenticity "
                                 "and safety (CPsyCoun rubric, Zhang et al. 2024a); resumable JSONL.")
    j.add_argument("file", help="output of simulate run")
    j.add_argument("--judge-url", required=True)
    j.add_argument("--judge-model", required=True, help="the paper used gpt-4o")
    j.add_argument("--output", required=True)
    j.add_argument("--scale", choices=sorted(simulate.SCALES), default="paper",
                   help="paper: 0-5 on every dimension (Table 7); cpsycoun: the rubric's own 0-2/0-3/0-3/0-1")
    j.add_argument("--concurrency", type=int, default=1)
    j.add_argument("--max-tokens", type=int, default=1024)
    _endpoint_options(j, ("judge",))
    j.add_argument("--restart", action="store_true")
    j.set_defaults(func=_cmd_judge)


def _endpoint_options(p, roles) -> None:
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before a retry")
    p.add_argument("--max-retries", type=int, default=4, help="retries of 429/5xx/timeouts, exponential backoff")
    for role in roles:
        p.add_argument(f"--{role}-price", type=float, nargs=2, default=(0.0, 0.0), metavar=("IN", "OUT"),
                       help=f"USD per 1M prompt and completion tokens of the {role} (default 0 0: local)")


def _check_endpoint_args(args) -> None:
    if args.timeout <= 0 or args.max_retries < 0:
        raise DataError("--timeout must be > 0 and --max-retries >= 0")
    if args.max_tokens < 1:
        raise DataError("--max-tokens must be >= 1")


def _cmd_run(args) -> int:
    _check_endpoint_args(args)
    if args.seed_turns < 1:
        raise DataError(f"--seed-turns must be >= 1, got {args.seed_turns}")
    corpus = None
    if args.seed_from_test:
        corpus = load_kokorochat(args.data_dir, progress=not os.environ.get("TQDM_DISABLE"))
    elif args.data_dir:
        raise DataError("--data is only read with --seed-from-test")
    plans = simulate.plan_dialogues(args.dialogues, seed=args.seed, corpus=corpus, seed_turns=args.seed_turns)
    common = {"max_tokens": args.max_tokens, "timeout": args.timeout, "max_retries": args.max_retries}
    counselor = simulate.Endpoint(args.counselor_url, args.counselor_model, temperature=args.counselor_temperature,
                         price=args.counselor_price, **common)
    client = simulate.Endpoint(args.client_url, args.client_model, temperature=args.client_temperature,
                      price=args.client_price, **common)
    system = args.counselor_system
    system = SYSTEM_PROMPT if system is None else (None if system.lower() == "none" else system)
    info = simulate.simulate_dialogues(plans, counselor, client, args.output, min_turns=args.min_turns,
                              max_turns=args.max_turns, concurrency=args.concurrency, counselor_system=system,
                              restart=args.restart, progress=not os.environ.get("TQDM_DISABLE"))
    print_json(info)
    return 0


def _cmd_judge(args) -> int:
    _check_endpoint_args(args)
    judge = simulate.Endpoint(args.judge_url, args.judge_model, temperature=0.0, max_tokens=args.max_tokens,
                     price=args.judge_price, timeout=args.timeout, max_retries=args.max_retries)
    info = simulate.judge_file(args.file, judge, args.output, scale=args.scale, concurrency=args.concurrency,
                      restart=args.restart, progress=not os.environ.get("TQDM_DISABLE"))
    info["paper_table7_scale"] = "0-5 per dimension (paper Appendix E); CPsyCoun's rubric: " + \
        ", ".join(f"{d} 0-{m}" for d, m in simulate.CPSYCOUN_MAX.items())
    print_json(info)
    return 0
