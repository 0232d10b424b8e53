"""``kokoro-nb human-eval make|score``: blinded pairwise human evaluation (paper Figure 5).
The argparse side only; the kit and the scoring are in :mod:`kokoro_nb.evaluate.human_eval`."""
from __future__ import annotations

from pathlib import Path

from kokoro_nb.cli.common import add_data, add_json, add_seed, print_json
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError
from kokoro_nb.evaluate import human_eval
from kokoro_nb.evaluate.metrics import json_safe
from kokoro_nb.evaluate.results import read_responses


def register_cli(sub) -> None:
    """Add ``kokoro-nb human-eval make|score``."""
    p = sub.add_parser("human-eval", help="blinded pairwise human evaluation (paper Figure 5)",
                       description="Write blinded pairwise sheets and score annotators' answers.")
    hv = p.add_subparsers(dest="what", metavar="WHAT")
    hv.required = True
    m = hv.add_parser("make", help="write blinded sheets (CSV, HTML form) and the key apart")
    m.add_argument("a", help="responses JSONL of system A")
    m.add_argument("b", help="responses JSONL of system B ('reference' for the human counselors' turns)")
    m.add_argument("--names", nargs=2, metavar=("A", "B"), help="system names (default: the file names)")
    add_data(m, "KokoroChat folder, for the dialogue histories")
    m.add_argument("--out", required=True, metavar="DIR", help="writes DIR/sheets/ (for annotators) and DIR/key.csv")
    m.add_argument("--dialogues", type=int, default=10, help="dialogues sampled (paper: 10)")
    m.add_argument("--per-dialogue", type=int, default=10, help="turns per dialogue (paper: 10)")
    m.add_argument("--context-turns", type=int, default=8, help="turns of history shown (0: all)")
    add_seed(m)
    m.set_defaults(func=_cmd_make)
    s = hv.add_parser("score", help="majority vote, win/tie/loss with intervals, sign test, Fleiss' kappa")
    s.add_argument("key", help="key.csv written by make")
    s.add_argument("answers", nargs="+", help="answer CSVs (the form's downloads or filled sheets)")
    add_json(s)
    s.set_defaults(func=_cmd_score)


def _cmd_make(args) -> int:
    for k in ("dialogues", "per_dialogue"):
        if getattr(args, k) < 1:
            raise DataError(f"must be 1 or more, got {getattr(args, k)}", field=f"--{k.replace('_', '-')}")
    a = read_responses(args.a)
    names = tuple(args.names or (Path(args.a).stem, "reference" if args.b == "reference" else Path(args.b).stem))
    if args.b == "reference":
        both = a.rename(columns={"hypothesis": names[0]}).assign(**{names[1]: a["reference"]})
    else:
        b = read_responses(args.b)
        both = a.merge(b, on=["dialogue_id", "turn"], suffixes=("", "_b"))
        if both.empty:
            raise DataError("the two files share no (dialogue_id, turn)", file=args.b)
        both = both.rename(columns={"hypothesis": names[0], "hypothesis_b": names[1]})
    corpus = load_kokorochat(args.data, progress=False)
    items = human_eval.sample_items(both, args.dialogues, args.per_dialogue, args.seed)
    tu = corpus.turns()
    items["context"] = [human_eval.context_text(tu, d, t, args.context_turns or None)
                        for d, t in zip(items["dialogue_id"], items["turn"])]
    lost = items[items["context"] == ""]
    if len(lost):
        raise DataError(f"{len(lost)} sampled turn(s) have no history in the corpus at --data (first: "
                        f"{lost['dialogue_id'].iloc[0]}/{lost['turn'].iloc[0]}); the responses file and "
                        "the corpus do not match", file=args.a)
    sheet, key = human_eval.make_kit(items, names, seed=args.seed)
    paths = human_eval.write_kit(sheet, key, args.out)
    print(f"{len(sheet)} items from {items['dialogue_id'].nunique()} dialogues")
    print(f"for annotators: {paths['sheet']} and {paths['form']}")
    print(f"keep apart (do not send): {paths['key']}")
    return 0


def _cmd_score(args) -> int:
    r = human_eval.score_files(args.key, args.answers)
    if args.json:
        print_json(json_safe({**{k: v for k, v in r.items() if k not in ("per_item", "per_annotator")},
                              "per_item": r["per_item"].to_dict(orient="records"),
                              "per_annotator": r["per_annotator"].to_dict(orient="index")}))
        return 0
    print(f"A = {r['A']}, B = {r['B']}: {r['items_with_votes']} of {r['items']} items with votes, "
          f"{r['annotators']} annotators, {r['blank_answers']} blank answers")
    for label, v in r["win_tie_loss"].items():
        ci = f"  95% CI [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" if v["ci"] else ""
        print(f"  A {label:<5}{v['count']:>5}  {v['share']:.3f}{ci}")
    print(f"sign test (A wins vs B wins, ties left out): p = {r['sign_test_p']:.4f}")
    print(f"Fleiss' kappa = {r['fleiss_kappa']:.3f} over {r['kappa_items']} items every annotator answered")
    return 0
