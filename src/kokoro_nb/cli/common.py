"""What the command groups share: the options that recur (``--data``, ``--sample``, ``--seed``,
``--json``, ``--tokenizer``), JSON output and :func:`run`, which turns a command into an exit code.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_data(p, alias=True); add_json(p); add_seed(p)
>>> p.parse_args(["--data-dir", "x", "--json"])
Namespace(data_dir='x', json=True, seed=42)
"""
from __future__ import annotations

import argparse
import json
import sys

from kokoro_nb import config
from kokoro_nb.errors import KokoroError

DATA_HELP = "KokoroChat folder or archive (default: $KOKOROCHAT_DIR, else download)"


def add_data(p: argparse.ArgumentParser, help: str = DATA_HELP, *, alias: bool = False, **kw) -> None:
    """``--data PATH`` (with *alias*: also ``--data-dir``, stored as ``data_dir``)."""
    if alias:
        p.add_argument("--data", "--data-dir", dest="data_dir", metavar="PATH", help=help, **kw)
    else:
        p.add_argument("--data", metavar=kw.pop("metavar", "PATH"), help=help, **kw)


def add_sample(p: argparse.ArgumentParser, help: str = "use N random dialogues", **kw) -> None:
    """``--sample N``: keep N random dialogues."""
    p.add_argument("--sample", type=int, default=None, metavar=kw.pop("metavar", None), help=help, **kw)


def add_seed(p: argparse.ArgumentParser, help: str | None = None, default: int | None = config.SEED) -> None:
    """``--seed N`` (default: the project's seed)."""
    p.add_argument("--seed", type=int, default=default, help=help)


def add_json(p: argparse.ArgumentParser, help: str = "print one JSON object") -> None:
    """``--json``: machine-readable output on stdout."""
    p.add_argument("--json", action="store_true", help=help)


def add_tokenizer(p: argparse.ArgumentParser, help: str, default: str = "tiny", **kw) -> None:
    """``--tokenizer``: which tokenizer counts or splits the text."""
    p.add_argument("--tokenizer", default=default, help=help, **kw)


def print_json(obj) -> None:
    """Print *obj* as one JSON object on stdout (non-ASCII kept readable)."""
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def run(args: argparse.Namespace, prog: str) -> int:
    """Run ``args.func(args)`` and return its exit code (None counts as 0).

    A :class:`KokoroError` prints one line ``PROG: error: ...`` on stderr and returns 2, no
    traceback; Ctrl-C prints ``PROG: interrupted`` and returns 130. Other errors propagate (1).

    >>> def no_data(args):
    ...     raise KokoroError("no data")
    >>> run(argparse.Namespace(func=lambda args: None), "demo"), run(argparse.Namespace(func=no_data), "demo")
    (0, 2)
    """
    try:
        return int(args.func(args) or 0)
    except KokoroError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
