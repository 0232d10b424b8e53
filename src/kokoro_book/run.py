"""Run the chapters: papermill executes each stale notebook (in parallel processes) into the
build folder; :func:`plan` decides which are stale from their stamps.

Layout of the build folder (``<repo>/_build`` unless ``--build-dir``; gitignored)::

    executed/NN_slug.ipynb        executed notebook (what the book renders)
    executed/NN_slug.stamp.json   what it was run with; unchanged stamp = skip
    executed/NN_slug.failed.ipynb the last failed run, with the error, for debugging
    outputs/NN_slug/              the notebook's ``output_dir``

Execution only: staging and rendering the book are :mod:`kokoro_book.stage` and
:mod:`kokoro_book.build`.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from kokoro_book.sources import (
    INPUT_SUFFIXES,
    PATH_PARAMETERS,
    declared_parameters,
    notebook_options,
    notebook_parameters,
    parameter_defaults,
    parameters_cell,
    read_notebook,
    source_path,
)
from kokoro_book.stamps import (
    code_fingerprint,
    data_fingerprints,
    make_stamp,
    read_durations,
    read_stamp,
    stale_reason,
    write_durations,
    write_stamp,
)
from kokoro_nb.errors import KokoroError

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# Appended to every run (and removed from the executed notebook): which kokoro_nb modules ran.
_MODULES_PROBE = ('import sys as _kokoro_sys\n'
                  'print(",".join(sorted(m for m in _kokoro_sys.modules '
                  'if m == "kokoro_nb" or m.startswith("kokoro_nb."))))')


@dataclass
class Job:
    """One notebook to bring up to date."""
    name: str
    source: Path
    target: Path
    parameters: dict
    stamp: dict
    reason: str | None          # None: up to date, skip
    expected: float = 0.0       # seconds the last run took (longest first keeps 2 workers busy)


@dataclass
class Result:
    """What happened to one notebook."""
    name: str
    status: str                 # "ran", "skipped" or "failed"
    seconds: float = 0.0
    reason: str | None = None
    error: str | None = None


def execute_notebook(source: Path, target: Path, parameters: dict, *, cwd: Path,
                     timeout: float | None = None,
                     threads_env: dict | None = None,
                     extra_cells: list | None = None) -> tuple[float, list[str]]:
    """Execute one jupytext source with papermill into *target*.

    *extra_cells* (nbformat cells) run after the chapter's own, in its namespace (the tests
    append the exercise solutions this way).

    Returns the seconds it took and the kokoro_nb modules the kernel imported.

    On failure the partly executed notebook is kept as ``<name>.failed.ipynb`` and
    :class:`NotebookFailed` names the cell and the error.
    """
    import nbformat
    import papermill as pm

    # papermill cannot parse some commented parameter lines and then calls declared ones
    # unknown; harmless for injection (notebook_options checks names), so keep it quiet
    logging.getLogger("papermill").setLevel(logging.ERROR)
    nb = read_notebook(source)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells.extend(extra_cells or [])
    nb.cells.append(nbformat.v4.new_code_cell(_MODULES_PROBE, metadata={"tags": ["remove-cell"]}))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    running = target.with_name(f".{target.stem}.running.ipynb")
    failed = target.with_name(f"{target.stem}.failed.ipynb")
    start = time.perf_counter()
    # The kernel inherits this environment. Figures must reach the notebook as PNG even where
    # CI sets MPLBACKEND=Agg; debugpy's frozen-modules warning is noise.
    env = {**_KERNEL_ENV, **(threads_env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        out = pm.execute_notebook(nb, str(running), parameters=parameters, kernel_name="python3",
                                  progress_bar=False, request_save_on_cell_execute=False,
                                  cwd=str(cwd), execution_timeout=timeout,
                                  extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as exc:
        os.replace(running, failed)
        raise NotebookFailed(f"{source.name}: cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                             f"(executed notebook with the traceback: {failed})") from None
    except Exception as exc:
        if running.exists():
            os.replace(running, failed)
        raise NotebookFailed(f"{source.name}: {type(exc).__name__}: {exc}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    probe = out.cells.pop()
    text = "".join(o.get("text", "") for o in probe.get("outputs", []) if o.get("output_type") == "stream")
    modules = [m for m in text.strip().split(",") if m]
    for cell in out.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            _show_injected(cell, parameters)
        elif cell.cell_type == "markdown":
            cell.source = _link_executed(cell.source, source.parent)
        elif parameters.get("output_dir"):
            _hide_local_paths(cell, str(parameters["output_dir"]))
    nbformat.write(out, str(running))
    os.replace(running, target)
    failed.unlink(missing_ok=True)
    return time.perf_counter() - start, modules


_MD_LINK = re.compile(r"\]\((?:\./)?([\w-]+)\.md(#[^)\s]*)?\)")


def _link_executed(markdown: str, folder: Path) -> str:
    """Point links to sibling chapter sources (``[x](21_scores.md)``) at the executed notebooks."""
    def repl(m):
        name = m.group(1)
        if not (folder / f"{name}.md").is_file():
            return m.group(0)
        return f"]({name}.ipynb{m.group(2) or ''})"
    return _MD_LINK.sub(repl, markdown)


def _hide_local_paths(cell, output_dir: str) -> None:
    """Print this build's output folder as the chapter's own default, ``outputs``, in the page.

    >>> from nbformat.v4 import new_code_cell, new_output
    >>> c = new_code_cell(outputs=[new_output("stream", text="wrote /b/outputs/12_x/r.jsonl")])
    >>> _hide_local_paths(c, "/b/outputs/12_x"); c.outputs[0].text
    'wrote outputs/r.jsonl'
    """
    for out in cell.get("outputs", []):
        if "text" in out:
            out["text"] = out["text"].replace(output_dir, "outputs")
        for mime, value in (out.get("data") or {}).items():
            if mime.startswith("text/") and isinstance(value, str):
                out["data"][mime] = value.replace(output_dir, "outputs")


def _show_injected(cell, parameters: dict) -> None:
    """Show readers the non-path values this page ran with; local paths stay out of the book."""
    shown = {k: v for k, v in parameters.items() if k not in PATH_PARAMETERS}
    if not shown:
        cell.metadata["tags"] = sorted(set(cell.metadata["tags"]) | {"remove-cell"})
        return
    cell.source = "# Parameters of this build (injected by papermill; paths left out)\n" + "\n".join(
        f"{k} = {v!r}" for k, v in shown.items())


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "PYDEVD_DISABLE_FILE_VALIDATION": "1",
               "KOKORO_BOOK_BUILD": "1"}       # kokoro_nb.show.glue.glue -> myst-nb's glue


class NotebookFailed(KokoroError):
    """A notebook raised while papermill executed it."""


def _run_job(job: Job, cwd: Path, timeout: float | None, threads: int | None = None) -> Result:
    # with 2 notebooks at once, 1 BLAS/torch thread each avoids oversubscribing 2 cores
    threads_env = {k: str(threads) for k in _THREAD_VARS} if threads else None
    try:
        secs, modules = execute_notebook(job.source, job.target, job.parameters, cwd=cwd,
                                         timeout=timeout, threads_env=threads_env)
    except NotebookFailed as exc:
        return Result(job.name, "failed", reason=job.reason, error=str(exc))
    # the stamp records the code the kernel actually imported, for the next staleness check
    write_stamp(job.target, job.stamp, modules, secs)
    return Result(job.name, "ran", secs, job.reason)


def plan(root: Path, names: list[str], build_dir: Path, *, data_dir=None, psy_insight_dir=None,
         sample=None, lang=None, force: bool = False, extra: dict | None = None,
         smoke: bool = False, translation_dir=None) -> list[Job]:
    """Return one job per notebook with its parameters, stamp and the reason to run (or None)."""
    data_cache: dict = {}
    durations = read_durations()
    jobs = []
    for name in names:
        src = source_path(root, name)
        nb = read_notebook(src)
        more = dict(extra or {})
        if smoke:
            more.update(notebook_options(nb, src).get("smoke_parameters", {}))
        params = notebook_parameters(nb, name, data_dir=data_dir, psy_insight_dir=psy_insight_dir,
                                     sample=sample, lang=lang, output_root=build_dir / "outputs",
                                     extra=more, translation_dir=translation_dir)
        code_cell = parameters_cell(nb).source
        defaults = parameter_defaults(code_cell)
        inputs = {k: params.get(k, defaults.get(k)) for k in declared_parameters(code_cell)
                  if k.endswith(INPUT_SUFFIXES) and k not in PATH_PARAMETERS}
        inputs = {k: v for k, v in inputs.items() if isinstance(v, str)}
        key = json.dumps([params.get("data_dir"), params.get("psy_insight_dir"),
                          params.get("translation_dir"), inputs], sort_keys=True)
        if key not in data_cache:
            data_cache[key] = data_fingerprints(params, inputs, root)
        target = build_dir / "executed" / f"{name}.ipynb"
        old = read_stamp(target)
        code = code_fingerprint(old.get("modules") if old else None)
        stamp = make_stamp(src.read_text(encoding="utf-8"), params, data_cache[key], code)
        reason = "forced" if force else stale_reason(old, stamp)
        expected = (old or {}).get("seconds") or durations.get(name, 0.0)
        jobs.append(Job(name, src, target, params, stamp, reason, expected))
    return jobs


def run_jobs(jobs: list[Job], *, cwd: Path, n_jobs: int = 2, timeout: float | None = None,
             progress: bool = True) -> list[Result]:
    """Run the stale jobs (in *n_jobs* processes), print one line per notebook, return results."""
    results = {j.name: Result(j.name, "skipped") for j in jobs if j.reason is None}
    todo = sorted((j for j in jobs if j.reason is not None), key=lambda j: -j.expected)
    # the bar only on a terminal; logs (CI) get the one line per notebook alone
    bar = tqdm(total=len(jobs), desc="notebooks", unit="nb", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))

    def report(r: Result) -> None:
        results[r.name] = r
        if r.status == "skipped":
            line = f"  {r.name:<32} skipped (unchanged)"
        else:
            line = f"  {r.name:<32} {r.status:<7} {r.seconds:6.1f} s  ({r.reason})"
        if progress:
            bar.write(line, file=sys.stderr)
        bar.update(1)

    for j in jobs:
        if j.reason is None:
            report(results[j.name])
    if n_jobs <= 1 or len(todo) <= 1:
        for j in todo:
            report(_run_job(j, cwd, timeout))
    else:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            threads = max(1, (os.cpu_count() or 2) // min(n_jobs, len(todo)))
            futures = [pool.submit(_run_job, j, cwd, timeout, threads) for j in todo]
            for fut in as_completed(futures):
                report(fut.result())
    bar.close()
    write_durations({r.name: r.seconds for r in results.values() if r.status == "ran"})
    return [results[j.name] for j in jobs]
