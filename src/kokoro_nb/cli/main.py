"""The ``kokoro-nb`` command line.

Exit codes: 0 success; 1 unexpected failure; 2 bad input or usage (message on stderr, no
traceback). Each stage module registers its own sub-commands through ``register_cli``; command
bodies only hand off to library functions, and heavy imports (torch, transformers) stay inside
them so that ``kokoro-nb --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from kokoro_nb.cli.common import print_json, run  # noqa: F401 (kokoro_nb.cli.print_json)
from kokoro_nb.version import label

# Modules that add sub-commands, in --help order. Each defines register_cli(subparsers).
_COMMAND_MODULES = ("data", "describe", "train", "generate", "evaluate", "simulate", "human_eval")
# Other distributions add command groups through this entry-point group (the book build's `book`):
# kokoro_nb never imports them by name.
PLUGIN_GROUP = "kokoro_nb.commands"


class _Version(argparse.Action):
    """``--version``: the version and the commit (git runs only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {label()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="kokoro-nb",
        description="Companion tools for the KokoroChat paper: data, statistics, SFT data, evaluation.",
        epilog="Exit codes: 0 ok, 1 unexpected error, 2 bad input or usage.")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the version and the commit, as the book's footer does")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(f"kokoro_nb.cli.{name}").register_cli(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # tqdm reads TQDM_DISABLE when it is imported, so -q must act before the stage modules load.
    head = argv[: next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))]
    if "-q" in head or "--quiet" in head:
        import os
        os.environ["TQDM_DISABLE"] = "1"
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args, "kokoro-nb")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
