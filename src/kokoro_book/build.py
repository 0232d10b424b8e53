"""Build the book: jupytext sources -> papermill-executed notebooks -> Jupyter Book HTML (and PDF).

``kokoro-nb book build`` (or ``kokoro-book build``) takes every notebook that ``_toc.yml`` lists
under ``notebooks/``, executes the stale ones with papermill (:mod:`kokoro_book.run`; data path,
sample and output folder injected; a notebook runs again only when its stamp changed, see
:mod:`kokoro_book.stamps`), brings the Colab copies up to date after a full build
(:mod:`kokoro_book.colab`), stages the book (:mod:`kokoro_book.stage`) and renders it with
execution off and warnings as errors into ``<build>/html`` (and with *pdf* into one PDF,
:mod:`kokoro_book.pdf`).

The orchestration only: the command line is :mod:`kokoro_book.cli`, the Sphinx extension
:mod:`kokoro_book.sphinx`.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kokoro_book import frontmatter
from kokoro_book.colab import sync as sync_colab
from kokoro_book.pdf import render_pdf
from kokoro_book.run import Result, plan, run_jobs
from kokoro_book.sources import (
    chapters,
    declared_parameters,
    find_root,
    parameters_cell,
    read_notebook,
    source_path,
)
from kokoro_book.stage import jupyter_book, stage_book
from kokoro_nb import config, version
from kokoro_nb.data.sources import resolve_kokorochat, resolve_psy_insight, resolve_translation
from kokoro_nb.errors import DataError, DataNotFoundError


def render_html(stage: Path, build_dir: Path, *, warnings_as_errors: bool = True,
                fresh: bool = False, quiet: bool = False) -> tuple[int, str]:
    """Render *stage* with Jupyter Book (Sphinx, execution off) into ``<build>/html``.

    Runs in a subprocess (Sphinx keeps global state); returns (exit code, warnings text).
    """
    stage, build_dir = Path(stage).resolve(), Path(build_dir).resolve()
    proc = jupyter_book(stage, build_dir / "html", build_dir / ".doctrees", "html",
                        warnings_as_errors=warnings_as_errors, fresh=fresh)
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    warnings = "\n".join(ansi.sub("", line) for line in proc.stderr.splitlines() if line.strip())
    if proc.returncode and not warnings:
        warnings = proc.stdout[-4000:]
    return proc.returncode, warnings


# --------------------------------------------------------------------------- the whole build

@dataclass
class BuildReport:
    """Outcome of :func:`build`."""
    results: list[Result] = field(default_factory=list)
    html: Path | None = None
    sphinx_rc: int | None = None
    warnings: str = ""
    seconds: float = 0.0
    pdf: Path | None = None
    pdf_rc: int | None = None

    @property
    def ok(self) -> bool:
        return (all(r.status != "failed" for r in self.results) and self.sphinx_rc in (0, None)
                and self.pdf_rc in (0, None))


def build(root: Path | None = None, *, data_dir=None, psy_insight_dir=None, sample: int | None = None,
          lang: str | None = None, force: bool = False, n_jobs: int = 2, build_dir: Path | None = None, html: bool = True,
          timeout: float | None = None, progress: bool = True, fresh_html: bool = False,
          colab: bool = True, translation_dir=None, pdf: bool = False) -> BuildReport:
    """Bring every notebook of the toc up to date, then render the HTML book.

    *data_dir* None reads ``$KOKOROCHAT_DIR`` (then the verified download); likewise
    *translation_dir* and ``$KOKOROCHAT_EN_DIR``, and *psy_insight_dir* and ``$PSY_INSIGHT_DIR``
    (each downloaded once, verified, when a chapter reads it). Psy-Insight alone may be missing:
    when its download fails (no network) the build goes on and the chapters that read it say so.
    With *colab*, a build without *sample* brings the Colab copies in ``notebooks/colab/`` up to
    date from its executed notebooks (commit them).
    """
    t0 = time.perf_counter()
    root = find_root(root)
    build_dir = Path(build_dir) if build_dir else root / "_build"
    data_dir = resolve_kokorochat(data_dir)
    if psy_insight_dir is None:
        env = os.environ.get(config.PSY_INSIGHT_ENV) or None
        if env and not Path(env).exists():
            print(f"kokoro-nb: {config.PSY_INSIGHT_ENV}={env} does not exist; chapters that read "
                  "Psy-Insight get psy_insight_dir=None", file=sys.stderr)
            env = None
        psy_insight_dir = env
    if translation_dir is None:
        translation_dir = os.environ.get(config.TRANSLATION_ENV) or None
    if translation_dir is not None and not Path(translation_dir).exists():
        raise DataError(f"{translation_dir}: no such folder or archive (Multilingual KokoroChat)",
                        field="translation_dir")
    if sample is not None and sample < 1:
        raise DataError(f"--sample {sample}: must be a positive number of dialogues", field="sample")
    names = chapters(root)
    headers = frontmatter.Context(root)
    for name in names:      # a bad chapter header stops the build before anything runs
        frontmatter.read_header(name, headers)
    label = version.label(root)     # before the build rewrites any Colab copy (tracked files)
    declared = set().union(*(declared_parameters(parameters_cell(read_notebook(
        source_path(root, n))).source) for n in names)) if names else set()
    if translation_dir is None and "translation_dir" in declared:
        # one verified download here rather than one per chapter process, running in parallel
        translation_dir = resolve_translation(None)
    if psy_insight_dir is None and "psy_insight_dir" in declared \
            and not os.environ.get(config.PSY_INSIGHT_ENV):       # set but not there: said above
        try:
            psy_insight_dir = resolve_psy_insight(None)
        except DataNotFoundError as exc:      # a DataError (a file that differs) stops the build
            print(f"kokoro-nb: Psy-Insight left out: {exc}", file=sys.stderr)
    jobs = plan(root, names, build_dir, data_dir=data_dir, psy_insight_dir=psy_insight_dir,
                sample=sample, lang=lang, force=force, translation_dir=translation_dir)
    report = BuildReport(run_jobs(jobs, cwd=root, n_jobs=n_jobs, timeout=timeout, progress=progress))
    if colab and report.ok and sample is None:
        # the copies quote this build's numbers, so only a full build with every data set
        # updates them (a chapter reading Psy-Insight without it would quote its absence)
        if psy_insight_dir is None and "psy_insight_dir" in declared:
            if progress:
                print("  Colab copies left as they are: this build has no Psy-Insight",
                      file=sys.stderr)
        else:
            for path in sync_colab(root, build_dir=build_dir):
                if progress:
                    print(f"  updated Colab copy {path}", file=sys.stderr)
    if not report.ok or not html:
        report.seconds = time.perf_counter() - t0
        return report
    banner = (f"Preview build on a random sample of {sample} dialogues: numbers differ from the "
              "paper's. Run <code>make book</code> for the full corpus." if sample else None)
    stage = stage_book(root, build_dir, names, banner=banner, label=label)
    t1 = time.perf_counter()
    # Sphinx reports a page's warnings only when it re-reads the page: after a failed render,
    # re-read everything, or a second build would pass without looking again.
    failed_marker = build_dir / ".html_failed"
    report.sphinx_rc, report.warnings = render_html(
        stage, build_dir, fresh=fresh_html or force or failed_marker.exists())
    if report.sphinx_rc:
        failed_marker.write_text(report.warnings, encoding="utf-8")
    else:
        failed_marker.unlink(missing_ok=True)
    report.html = build_dir / "html" / "index.html"
    if progress:
        print(f"  {'(html)':<32} {'ok' if report.sphinx_rc == 0 else 'FAILED':<7} "
              f"{time.perf_counter() - t1:6.1f} s", file=sys.stderr)
    if pdf and report.sphinx_rc == 0:
        t2 = time.perf_counter()
        report.pdf_rc, log, report.pdf = render_pdf(stage, build_dir)
        if report.pdf_rc:
            report.warnings = log
        if progress:
            print(f"  {'(pdf)':<32} {'ok' if report.pdf_rc == 0 else 'FAILED':<7} "
                  f"{time.perf_counter() - t2:6.1f} s", file=sys.stderr)
    report.seconds = time.perf_counter() - t0
    return report
