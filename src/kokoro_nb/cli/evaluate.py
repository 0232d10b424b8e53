"""``kokoro-nb evaluate responses|scores|compare``: score result files (Tables 4 and 5) and
compare two systems' per-turn scores. The argparse side only; the work is in
:mod:`kokoro_nb.evaluate.results` and :mod:`kokoro_nb.evaluate.significance`."""
from __future__ import annotations

import math

import pandas as pd

from kokoro_nb.cli.common import add_data, add_json, add_seed, add_tokenizer, print_json
from kokoro_nb.data import splits
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError
from kokoro_nb.evaluate import significance
from kokoro_nb.evaluate.metrics import (
    BOOTSTRAP_SAMPLES,
    PER_TURN_METRICS,
    SCORE_METRICS,
    check_n_boot,
    json_safe,
)
from kokoro_nb.evaluate.results import evaluate_responses_file, evaluate_scores_file
from kokoro_nb.evaluate.tokenize import tokenizer_names


def register_cli(sub) -> None:
    """Add ``kokoro-nb evaluate responses|scores FILE`` and ``evaluate compare A B``."""
    p = sub.add_parser("evaluate", help="score generated responses or predicted item scores",
                       description="Score a responses JSONL (Table 4) or a scores JSONL (Table 5); "
                                   "compare two systems' per-turn scores.")
    ev = p.add_subparsers(dest="what", metavar="WHAT")
    ev.required = True
    r = ev.add_parser("responses", help="BLEU-1..4, ROUGE-1/2/L, Distinct-1/2 of a responses JSONL")
    r.add_argument("file", help='JSONL: {"dialogue_id", "turn", "reference", "hypothesis"} per line')
    add_tokenizer(r, None, default="ja-unidic", choices=tokenizer_names())
    add_data(r, help="KokoroChat folder: check that FILE covers the test turns "
             "exactly (no missing, extra or duplicated turn)")
    r.add_argument("--test-min-score", type=int, default=99, metavar="S",
                   help="with --data: test dialogues are those scored S..100 (paper: 99)")
    r.add_argument("--allow-partial", action="store_true",
                   help="score the turns that match and report coverage instead of refusing")
    r.add_argument("--per-turn", metavar="OUT", help="write per-turn scores (JSONL) for `evaluate compare`")
    s = ev.add_parser("scores", help="ACC, ACC_soft, MAE of a scores JSONL")
    s.add_argument("file", help='JSONL: {"dialogue_id", "gold": [20 ints], "pred": [20 ints or null]} per line')
    for q in (r, s):
        q.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES, metavar="N",
                       help="bootstrap resamples over dialogues for 95%% intervals (0: none)")
        add_seed(q, default=42)
        add_json(q)
    r.set_defaults(func=_cmd_responses)
    s.set_defaults(func=_cmd_scores)
    register_compare(ev)


def register_compare(ev) -> None:
    """Add ``kokoro-nb evaluate compare A B`` to the ``evaluate`` sub-parsers."""
    c = ev.add_parser("compare", help="paired bootstrap and approximate randomization of two per-turn files",
                      description="Compare two systems scored on the same test turns (files written by "
                                  "`evaluate responses FILE --per-turn OUT`), resampling dialogues.")
    c.add_argument("a", help="per-turn JSONL of system A (the baseline)")
    c.add_argument("b", help="per-turn JSONL of system B")
    c.add_argument("--metric", action="append", choices=PER_TURN_METRICS, help="metric(s) to test (default: all)")
    c.add_argument("--bootstrap", type=int, default=significance.BOOTSTRAP_SAMPLES, metavar="N",
                   help="bootstrap resamples")
    c.add_argument("--trials", type=int, default=significance.AR_TRIALS, metavar="N",
                   help="approximate-randomization trials")
    add_seed(c, default=42)
    add_json(c)
    c.set_defaults(func=_cmd_compare)


def _print_table(rows: list[tuple[str, float, list | None]], fmt: str, signature: str) -> None:
    for name, v, ci in rows:
        interval = f"  [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else ""
        print(f"{name:<24}{fmt.format(v):>9}{interval}")
    print(signature)


def _expected_turns(data: str, min_score: int) -> pd.DataFrame:
    """Return the test turns (dialogue_id, turn, reference) of the corpus at *data*."""
    corpus = load_kokorochat(data, progress=False)
    return splits.response_turns(corpus, splits.response_test_ids(corpus, min_score=min_score))


def _cmd_responses(args) -> int:
    check_n_boot(args.bootstrap)
    expected = _expected_turns(args.data, args.test_min_score) if args.data else None
    res = evaluate_responses_file(args.file, tokenizer=args.tokenizer, n_boot=args.bootstrap,
                                  seed=args.seed, progress=not (args.json or getattr(args, "quiet", False)),
                                  expected=expected, allow_partial=args.allow_partial, per_turn=args.per_turn)
    if args.json:
        print_json(res.as_dict())
    else:
        rows = [(k, v, res.ci.get(k)) for k, v in {**res.scores, **res.secondary}.items()]
        print(f"{res.n_turns} turns, {res.n_dialogues} dialogues, {res.n_empty_hypotheses} empty hypotheses")
        cov = res.extra.get("coverage")
        if cov and cov.get("test_turns"):
            share = math.floor(1000 * cov["share"]) / 10            # never shows 100 % unless complete
            print(f"coverage: {cov['scored_turns']:,} of {cov['test_turns']:,} test turns ({share:.1f} %); "
                  f"{cov['missing']} missing, {cov['extra']} extra (not scored), {cov['duplicate']} duplicate "
                  f"(first kept), {cov['reference_differs']} with another reference (not scored)")
        elif cov:
            print(f"{cov['duplicate']} duplicate turn(s) dropped (first kept); no --data, so coverage of the "
                  "test set is unknown")
        _print_table(rows, "{:.2f}", res.signature)
    return 0


def _cmd_scores(args) -> int:
    res = evaluate_scores_file(args.file, n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        print_json(res.as_dict())
    else:
        o = res.overall
        print(f"{res.n_dialogues} dialogues, {res.n_null} of {res.n_predictions} predictions null "
              f"(coverage {100 * o['coverage']:.1f} %; wrong for ACC/ACC_soft, left out of MAE, "
              "the largest possible error in mae_null_penalised)")
        if o["MAE_items_without_answers"]:
            print(f"no answer at all for item(s) {', '.join(o['MAE_items_without_answers'])}: they have no MAE, "
                  "and the overall MAE is the mean over the other items")
        _print_table([(k, o[k], res.ci.get(k)) for k in (*SCORE_METRICS, "mae_null_penalised", "coverage")],
                     "{:.4f}", res.signature)
        print(res.per_item.round(4).to_string())
    return 0


def _cmd_compare(args) -> int:
    check_n_boot(args.bootstrap)
    if check_n_boot(args.trials) == 0:
        raise DataError("approximate randomization needs at least one trial", field="--trials")
    t = significance.compare_files(args.a, args.b, metrics=args.metric or PER_TURN_METRICS, n_boot=args.bootstrap,
                                   n_trials=args.trials, seed=args.seed)
    if args.json:
        print_json(json_safe({"a": args.a, "b": args.b, **t.attrs, "signature": significance.comparison_signature(t),
                              "metrics": t.rename(columns=dict(zip(t.columns[:2], ("A", "B")))).to_dict(orient="index")}))
        return 0
    print(f"{t.attrs['turns']:,} turns in {t.attrs['dialogues']:,} dialogues; A = {args.a}, B = {args.b}")
    show = t.rename(columns=dict(zip(t.columns[:2], ("A", "B"))))
    print(show.to_string(float_format=lambda v: f"{v:.4f}"))
    print(significance.comparison_signature(t))
    return 0
