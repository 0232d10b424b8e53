"""The book's command line: ``kokoro-nb book build|pdf|sync-colab|teaching`` (the ``book`` group
that kokoro_nb loads through its ``kokoro_nb.commands`` entry point) and the same actions as
``kokoro-book build|pdf|sync-colab|teaching``.

Exit codes: 0 ok; 1 a notebook, the render or a ``--check`` failed; 2 bad input or usage (one
line on stderr, no traceback). Argument parsing only: the work is :func:`kokoro_book.build.build`
and :func:`kokoro_book.colab.sync` and :func:`kokoro_book.teaching.generate`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kokoro_book import colab, teaching
from kokoro_book.build import build
from kokoro_book.pdf import PDF_NAME, TEX_PACKAGES
from kokoro_nb.cli.common import add_data, add_sample, run

PROG = "kokoro-book"


def register_cli(sub) -> None:
    """Add ``kokoro-nb book build``, ``book pdf`` and ``book sync-colab``."""
    p = sub.add_parser("book", help="run the notebooks and build the HTML book; sync Colab copies",
                       description="Build the companion book or its Colab notebook copies.")
    add_actions(p)


def add_actions(p: argparse.ArgumentParser) -> None:
    """Add the sub-commands ``build``, ``pdf`` and ``sync-colab`` to *p*."""
    bsub = p.add_subparsers(dest="book_command", metavar="ACTION")
    bsub.required = True
    b = bsub.add_parser("build", help="execute changed notebooks (papermill) and render the HTML",
                        description="Execute every notebook of _toc.yml whose source, parameters, "
                        "data or package code changed, then render _build/html with warnings as "
                        "errors. Exit 1 when a notebook or the render fails.")
    add_build_args(b)
    b.set_defaults(func=_cmd_build, pdf=False)
    pdf = bsub.add_parser("pdf", help="the whole book as one PDF (LuaLaTeX, offline)",
                          description="Execute changed notebooks, render the HTML (warnings are errors) and "
                          "compile the book into <build>/" + PDF_NAME + " with LuaLaTeX and Japanese fonts. "
                          "Needs Debian's TeX: apt-get install -y " + " ".join(TEX_PACKAGES) + ".")
    add_build_args(pdf)
    pdf.set_defaults(func=_cmd_build, pdf=True)
    s = bsub.add_parser("sync-colab", help="write output-free .ipynb copies for Colab",
                        description="Regenerate notebooks/colab/*.ipynb from the jupytext sources, "
                        "quoting the numbers of the executed full-data build (run `make book` "
                        "first). With --check, change nothing and exit 1 when a copy is out of date.")
    s.add_argument("--check", action="store_true", help="only report stale copies (exit 1)")
    s.add_argument("--build-dir", metavar="DIR", help="the full-data build to quote "
                   "(default: <repo>/_build)")
    s.set_defaults(func=_cmd_sync_colab)
    t = bsub.add_parser("teaching", help="write the student and instructor notebooks (nbgrader)",
                        description="Make notebooks/instructor/*.ipynb (solutions, autograder tests, "
                        "rubrics) and notebooks/student/*.ipynb (nbgrader generate_assignment of "
                        "those) from the Colab copies and notebooks/teaching/*.yml. Run after "
                        "sync-colab. With --check, change nothing and exit 1 when one is out of date.")
    t.add_argument("--check", action="store_true", help="only report stale notebooks (exit 1)")
    t.set_defaults(func=_cmd_teaching)


def add_build_args(b: argparse.ArgumentParser) -> None:
    """Add the options that `book build` and `book pdf` share."""
    add_data(b, help="KokoroChat location (default: $KOKOROCHAT_DIR, then the verified download)")
    b.add_argument("--psy-insight", metavar="PATH", help="Psy-Insight repository or data/ folder "
                   "(default: $PSY_INSIGHT_DIR, then the verified download; left out without network)")
    b.add_argument("--translation", metavar="PATH", help="Multilingual KokoroChat (English) "
                   "folder or archive (default: $KOKOROCHAT_EN_DIR, then the verified download)")
    add_sample(b, help="quick preview on N random dialogues", metavar="N")
    b.add_argument("--lang", choices=("en", "ja"), help="label language of figures (default: each "
                   "notebook's own, English)")
    b.add_argument("--force", action="store_true", help="re-run every notebook and re-render all pages")
    b.add_argument("--jobs", type=int, default=2, metavar="N", help="notebooks run in parallel (default 2)")
    b.add_argument("--build-dir", metavar="DIR", help="build folder (default: <repo>/_build)")
    b.add_argument("--no-html", action="store_true", help="only execute the notebooks")
    b.add_argument("--timeout", type=float, metavar="S", help="per-cell time limit in seconds")


def _prog(args) -> str:
    # messages name the command the reader typed: kokoro-nb (book ...) or kokoro-book
    return getattr(args, "prog_name", "kokoro-nb")


def _cmd_build(args) -> int:
    progress = not getattr(args, "quiet", False)
    report = build(data_dir=args.data, psy_insight_dir=args.psy_insight, sample=args.sample,
                   translation_dir=args.translation,
                   lang=args.lang, force=args.force, n_jobs=args.jobs, timeout=args.timeout, html=not args.no_html,
                   build_dir=Path(args.build_dir).resolve() if args.build_dir else None,
                   progress=progress, pdf=args.pdf)
    prog = _prog(args)
    for r in report.results:
        if r.status == "failed":
            print(f"{prog}: notebook failed: {r.error}", file=sys.stderr)
    if report.sphinx_rc:
        print(f"{prog}: the HTML build failed (warnings are errors):\n{report.warnings}",
              file=sys.stderr)
    if report.pdf_rc:
        print(f"{prog}: the PDF build failed:\n{report.warnings}", file=sys.stderr)
    ran = sum(r.status == "ran" for r in report.results)
    print(f"{len(report.results)} notebooks ({ran} run, "
          f"{sum(r.status == 'skipped' for r in report.results)} unchanged) in {report.seconds:.1f} s"
          + (f"; open {report.pdf if report.pdf else report.html}" if report.ok and report.html else ""),
          file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_sync_colab(args) -> int:
    stale = colab.sync(check=args.check,
                       build_dir=Path(args.build_dir).resolve() if args.build_dir else None)
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}", file=sys.stderr)
    if args.check and stale:
        print(f"{_prog(args)}: run `kokoro-nb book sync-colab` and commit notebooks/colab/",
              file=sys.stderr)
        return 1
    if not stale:
        print("Colab copies are up to date", file=sys.stderr)
    return 0


def _cmd_teaching(args) -> int:
    stale = teaching.generate(check=args.check, progress=not getattr(args, "quiet", False))
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}", file=sys.stderr)
    if args.check and stale:
        print(f"{_prog(args)}: run `make teaching` and commit notebooks/student/ and "
              "notebooks/instructor/", file=sys.stderr)
        return 1
    if not stale:
        print("student and instructor notebooks are up to date", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``kokoro-book`` parser: the actions of ``kokoro-nb book``, at the top level."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Build the companion book or its Colab notebook copies "
        "(the same as `kokoro-nb book`).",
        epilog="Exit codes: 0 ok, 1 a notebook, the render or a check failed, 2 bad input or usage.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_actions(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``kokoro-book``; return the exit code instead of raising (usage errors: 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:         # --help (0) or a usage error (2, argparse's message)
        return int(exc.code or 0)
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"      # the notebook kernels inherit it, as with kokoro-nb -q
    args.prog_name = PROG
    return run(args, PROG)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
