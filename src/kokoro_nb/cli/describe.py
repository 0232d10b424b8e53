"""``kokoro-nb stats`` and ``kokoro-nb reproduce``: the corpus statistics and the reproduction ledger.

Only argument parsing and printing; the numbers come from :mod:`kokoro_nb.describe`.
"""
from __future__ import annotations

import json
import sys

import pandas as pd

from kokoro_nb.cli.common import add_data, add_json, add_seed, print_json
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.data.psy_insight import load_psy_insight
from kokoro_nb.describe.inference import CLUSTER_UNITS
from kokoro_nb.describe.ledger import check_ledger, ledger, ledger_summary, write_ledger
from kokoro_nb.describe.stats import summary
from kokoro_nb.describe.variables import FEATURES
from kokoro_nb.errors import DataNotFoundError, KokoroError


def register_cli(sub) -> None:
    """Add ``kokoro-nb stats`` and ``kokoro-nb reproduce``."""
    p = sub.add_parser("stats", help="corpus statistics of the paper (Table 3, section 4, Figure 4)")
    add_data(p, metavar=None)       # metavar None: the help keeps showing ``--data DATA``
    p.add_argument("--lenient", action="store_true", help="skip bad files (each is listed under files.skipped_reasons)")
    add_json(p)
    p.add_argument("--no-cache", action="store_true", help="parse the JSON files even if a cached table exists")
    p.add_argument("--cluster", choices=list(CLUSTER_UNITS), default="client",
                   help="unit the Figure 4 bootstrap resamples (default: client)")
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    add_seed(p, help="bootstrap seed (default: 42)")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("reproduce", help="recompute the reproduction ledger; --check exits 1 on any drift")
    add_data(p, metavar=None)
    p.add_argument("--psy-insight", help="Psy-Insight folder (default: $PSY_INSIGHT_DIR, then the "
                   "verified download; rows left out without either)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a row that should hold does not (a difference without a documented reason)")
    p.add_argument("--out", help="write reproduction_ledger.csv and .json into this folder")
    add_json(p, help="print the ledger as JSON instead of a table")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_stats(args) -> int:
    corpus = load_kokorochat(args.data, lenient=args.lenient, cache=not args.no_cache, progress=not args.json)
    if args.n_resamples < 1:
        raise KokoroError(f"--n-resamples must be at least 1, got {args.n_resamples}")
    result = summary(corpus, cluster=args.cluster, n_resamples=args.n_resamples, seed=args.seed)
    if args.json:
        print_json(result)
        return 0
    o = result
    print(f"{'':28}{'total':>10}{'counselor':>12}{'client':>10}")
    print(f"{'dialogues':28}{o['dialogues']:>10,}")
    for key, label, fmt in (("speakers", "speakers", ",.0f"), ("utterances", "utterances", ",.0f"),
                            ("avg_utterances_per_dialogue", "avg utterances/dialogue", ".2f"),
                            ("avg_chars_per_utterance", "avg chars/utterance", ".2f")):
        v = o[key]
        print(f"{label:28}{v['total']:>10{fmt}}{v['counselor']:>12{fmt}}{v['client']:>10{fmt}}")
    print(f"counselor-client pairs: {o['counselor_client_pairs']:,}; collection window "
          f"{o['collection_window']['first']} .. {o['collection_window']['last']}")
    sc = o["score"]
    print(f"score: mean {sc['mean']:.2f}, median {sc['median']:.2f}, sd {sc['std']:.2f}")
    for name, r in o["feature_score_spearman"].items():
        print(f"rho {FEATURES[name]:<30} {r['rho']:+.3f}  95 % CI [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"
              f" ({r['cluster']} bootstrap, {r['clusters']:,} units)")
    print("splits: " + ", ".join(f"{k} {v['dialogues']:,} dialogues / {v['utterances']:,} utterances"
                                 for k, v in o["splits"].items()))
    f = o["files"]
    print(f"files: {f['found']} found, {f['loaded']} loaded, {f['skipped']} skipped")
    for s in f.get("skipped_reasons", []):
        print(f"  skipped {s['reason']}")
    return 0


def _cmd_reproduce(args) -> int:
    corpus = load_kokorochat(args.data, progress=not (args.json or args.check))
    try:
        psy = load_psy_insight(args.psy_insight)
    except DataNotFoundError as exc:
        psy = None
        print(f"kokoro-nb reproduce: Psy-Insight rows left out ({exc})", file=sys.stderr)
    table = ledger(corpus, psy)
    if args.out:
        for path in write_ledger(table, args.out).values():
            print(f"wrote {path}", file=sys.stderr)
    s = ledger_summary(table)
    counts = (f"{s['rows']} rows: {s['exact']} exact, {s['within_rounding']} within rounding, "
              f"{s['holds']} statements hold, {s['differs']} different ({s['known_differences']} documented), "
              f"{s['not_checkable']} not checkable")
    if args.check:
        problems = check_ledger(table)
        print(counts)
        for line in problems:
            print(f"  DRIFT {line}")
        print("reproduction holds" if not problems else f"{len(problems)} row(s) broke the reproduction")
        return 1 if problems else 0
    if args.json:
        print(json.dumps({"summary": s, "rows": json.loads(table.to_json(orient="records", force_ascii=False))},
                         ensure_ascii=False, indent=1))
        return 0
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 60, "display.width", 200):
        print(table[["section", "quantity", "paper", "reproduced", "status"]].to_string(index=False))
    print(counts)
    return 0
