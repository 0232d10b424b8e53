"""``kokoro-nb data fetch|translation|validate``: download or check the data sets."""
from __future__ import annotations

import sys
from pathlib import Path

from kokoro_nb.cli.common import add_data, add_json, print_json
from kokoro_nb.data import sources
from kokoro_nb.data.corpus import load_kokorochat
from kokoro_nb.errors import DataError


def register_cli(sub) -> None:
    """Add ``kokoro-nb data fetch|validate``."""
    p = sub.add_parser("data", help="fetch or validate the data sets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    f = dsub.add_parser("fetch", help="download KokoroChat (pinned commit, SHA-256 verified) into the cache")
    f.add_argument("--dest", help="folder to download into (default: the user cache folder)")
    f.add_argument("--psy-insight", action="store_true",
                   help="fetch Psy-Insight's two data files instead (pinned commit, SHA-256 verified); "
                   "prints their data/ folder")
    f.add_argument("--translation", action="store_true",
                   help="fetch the English translation (Multilingual KokoroChat) instead: the pinned "
                   "commit's archive, one request (with --ids, up to 50 files one by one)")
    f.add_argument("--ids", metavar="ID,ID,...",
                   help="with --translation: only these dialogues (default: all 6,582 files)")
    f.set_defaults(func=_cmd_fetch)
    t = dsub.add_parser("translation", help="check the English translation against KokoroChat",
                        description="Join Multilingual KokoroChat to KokoroChat and report, exactly, "
                        "the dialogues without a translation and the messages with an empty one. "
                        "Exit 2 when a file does not align (strict) or a checksum differs.")
    t.add_argument("path", help="translation folder (upstream root or its English/ folder)")
    add_data(t, help="KokoroChat location (default: $KOKOROCHAT_DIR)")
    t.add_argument("--lenient", action="store_true", help="list files that do not align instead of failing")
    t.add_argument("--checksums", action="store_true",
                   help="also compare every file with the SHA-256 manifest of the pinned commit")
    add_json(t, help="print the result as JSON")
    t.set_defaults(func=_cmd_translation)
    v = dsub.add_parser("validate", help="check every dialogue file against the schema")
    v.add_argument("path", help="KokoroChat folder (upstream root or kokorochat_dialogues/) or archive")
    v.add_argument("--lenient", action="store_true", help="skip bad files and list each one instead of failing")
    v.add_argument("--checksums", action="store_true",
                   help="also compare every file with the SHA-256 manifest of upstream commit 44aa9d8")
    add_json(v, help="print the result as JSON")
    v.set_defaults(func=_cmd_validate)


def _cmd_fetch(args) -> int:
    if args.ids and not args.translation:
        raise DataError("--ids needs --translation", field="ids")
    if args.translation:
        ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
        out = sources.fetch_translation(ids, args.dest)
    else:
        out = sources.fetch_psy_insight(args.dest) if args.psy_insight else sources.fetch_kokorochat(args.dest)
    print(out)
    return 0


def _cmd_translation(args) -> int:
    corpus = load_kokorochat(args.data, progress=False, download=False)
    tr = corpus.with_english(args.path, lenient=args.lenient, download=False, progress=not args.json).translation
    result = tr.as_dict()
    if args.checksums:
        result["checksums"] = sources.verify_translation(Path(args.path))
    if args.json:
        print_json(result)
    else:
        print(f"{tr.source}: {tr.translated} of {tr.dialogues} dialogues translated; "
              f"{len(tr.missing)} without a file ({', '.join(tr.missing) or 'none'}); "
              f"{len(tr.empty)} empty translations; {len(tr.skipped)} files skipped")
        for fname, reason in tr.skipped:
            print(f"  skipped {reason}", file=sys.stderr)
        if args.checksums:
            _print_checksums(result["checksums"])
    return 2 if args.checksums and not result["checksums"]["ok"] else 0


def _print_checksums(c: dict) -> None:
    print(f"checksums: {c['match']} match, {len(c['mismatch'])} differ, "
          f"{len(c['missing'])} missing, {len(c['unexpected'])} not in the manifest")


def _cmd_validate(args) -> int:
    corpus = load_kokorochat(args.path, lenient=args.lenient, cache=False, download=False,
                             progress=not args.json)
    result = {"path": str(args.path), "files": corpus.report.as_dict(),
              "dialogues": len(corpus), "utterances": len(corpus.utterances)}
    if args.checksums:
        result["checksums"] = sources.verify_kokorochat(Path(args.path))
    if args.json:
        print_json(result)
    else:
        r = corpus.report
        print(f"{args.path}: {r.found} files found, {r.loaded} loaded, {len(r.skipped)} skipped")
        for fname, reason in r.skipped:
            print(f"  skipped {reason}", file=sys.stderr)
        if args.checksums:
            _print_checksums(result["checksums"])
    if args.checksums and not result["checksums"]["ok"]:
        return 2
    return 0
