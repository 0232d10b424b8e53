"""Build the book: jupytext sources -> papermill-executed notebooks -> Jupyter Book HTML.

``kokoro-nb book build`` takes every notebook that ``_toc.yml`` lists under ``notebooks/``,
converts its jupytext source to a notebook, executes it with papermill (data path, sample and
output folder injected), and renders the book from the executed notebooks with execution off
and warnings as errors. A notebook runs again only when its stamp changed: the hash of its
source, its parameters, the fingerprints of the data it reads and the ``kokoro_nb`` code.

Layout of the build folder (``<repo>/_build`` unless ``--build-dir``; gitignored)::

    executed/NN_slug.ipynb        executed notebook (what the book renders)
    executed/NN_slug.stamp.json   what it was run with; unchanged stamp = skip
    executed/NN_slug.failed.ipynb the last failed run, with the error, for debugging
    outputs/NN_slug/              the notebook's ``output_dir``
    outputs/NN_slug/download/     files offered for download on the chapter's page (staged as
                                  notebooks/download/NN_slug/, linked with MyST's {download} role)
    stage/                        the book sources Jupyter Book renders
    html/index.html               the book

Notebook front matter may carry a ``kokoro_nb`` mapping (see :data:`OPTION_KEYS`)::

    kokoro_nb:
      book_parameters: {model_name: tiny-random-llama}   # used by the book build and the tests
      smoke_parameters: {max_steps: 4}                   # only for the synthetic-data tests
      colab_extras: [train]                              # pip extras the Colab copy installs
      colab_gpu: true                                    # the Colab copy asks for a GPU

This module is also a small Sphinx extension (listed in ``_config.yml``): it points the Colab
launch button at the committed output-free copy ``notebooks/colab/NN_slug.ipynb``, because
Colab cannot open the MyST sources.

>>> declared_parameters("data_dir = None\\nsample = None  # all\\nseed: int = 42")
['data_dir', 'sample', 'seed']
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import kokoro_nb
from kokoro_nb import config, version

from kokoro_book import colab, release
from kokoro_nb.errors import DataError, KokoroError

PIPELINE_VERSION = "2"          # bump to invalidate every stamp after a pipeline change
NOTEBOOK_DIR = "notebooks"
BOOK_PAGES_DIR = "book"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
DOWNLOAD_DIR = "download"       # <output_dir>/download/* -> stage/notebooks/download/<name>/*
# Parameters the pipeline injects, each only into notebooks whose parameters cell declares it.
PIPELINE_PARAMETERS = ("data_dir", "psy_insight_dir", "translation_dir", "sample", "lang", "output_dir")
# Other parameters named like these are inputs too (e.g. results_dir): their files join the stamp.
INPUT_SUFFIXES = ("_dir", "_path", "_file")
PATH_PARAMETERS = ("data_dir", "psy_insight_dir", "translation_dir", "output_dir")
OPTION_KEYS = ("book_parameters", "smoke_parameters", "colab_extras", "colab_gpu")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# --------------------------------------------------------------------------- locating things

def find_root(start: str | os.PathLike | None = None) -> Path:
    """Return the project root: the first folder upwards holding ``_toc.yml`` and ``notebooks/``."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [here, *here.parents, Path(__file__).resolve().parents[2]]
    for c in candidates:
        if (c / "_toc.yml").is_file() and (c / NOTEBOOK_DIR).is_dir():
            return c
    raise KokoroError(f"{here}: no _toc.yml with a notebooks/ folder here or above; run "
                      "`kokoro-nb book` from the project checkout")


def toc_files(root: Path) -> list[str]:
    """Return every ``file:``/``root:`` entry of ``_toc.yml``, in reading order."""
    path = Path(root) / "_toc.yml"
    try:
        toc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the table of contents ({exc})", file=str(path)) from None
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return out


def chapters(root: Path) -> list[str]:
    """Return the notebook names (``NN_slug``) that ``_toc.yml`` lists, checking each has a source."""
    root = Path(root)
    names = []
    for entry in toc_files(root):
        entry = entry.removesuffix(".md").removesuffix(".ipynb")
        if not entry.startswith(NOTEBOOK_DIR + "/"):
            continue
        name = entry[len(NOTEBOOK_DIR) + 1:]
        if not source_path(root, name).is_file():
            raise DataError(f"lists {entry}, but {NOTEBOOK_DIR}/{name}.md does not exist",
                            file=str(root / "_toc.yml"))
        names.append(name)
    return names


def source_path(root: Path, name: str) -> Path:
    """Return the jupytext source of notebook *name*."""
    return Path(root) / NOTEBOOK_DIR / f"{name}.md"


def notebook_sources(root: Path) -> list[Path]:
    """Return every notebook source in ``notebooks/`` (sorted), listed in the toc or not."""
    return sorted((Path(root) / NOTEBOOK_DIR).glob("*.md"))


# --------------------------------------------------------------------------- reading notebooks

def read_notebook(path: Path):
    """Read a jupytext MyST source into a notebook, checking the book's conventions."""
    import jupytext
    path = Path(path)
    try:
        nb = jupytext.read(path, fmt="md:myst")
    except Exception as exc:  # jupytext raises many types on malformed sources
        raise DataError(f"cannot read as a jupytext MyST notebook ({exc})", file=str(path)) from None
    if "kernelspec" not in nb.metadata:
        raise DataError("no kernelspec in the front matter; is the jupytext header there?",
                        file=str(path), field="kernelspec")
    if parameters_cell(nb) is None:
        raise DataError("no code cell tagged `parameters` (papermill needs one)", file=str(path),
                        field="tags")
    notebook_options(nb, path)  # validate early
    return nb


def parameters_cell(nb):
    """Return the code cell tagged ``parameters``, or None."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    return None


def declared_parameters(code: str) -> list[str]:
    """Return the names assigned at top level in a parameters cell's code."""
    names = []
    for node in ast.parse(code).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def parameter_defaults(code: str) -> dict:
    """Return the literal default values of a parameters cell (non-literals are left out)."""
    out = {}
    for node in ast.parse(code).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            out.update({t.id: value for t in targets if isinstance(t, ast.Name)})
    return out


def notebook_options(nb, path: Path | str = "?") -> dict:
    """Return the notebook's ``kokoro_nb`` front-matter options, validated."""
    opts = nb.metadata.get("kokoro_nb") or {}
    if not isinstance(opts, dict):
        raise DataError("front matter `kokoro_nb` must be a mapping", file=str(path), field="kokoro_nb")
    for key, value in opts.items():
        if key not in OPTION_KEYS:
            raise DataError(f"unknown option {key!r}; allowed: {', '.join(OPTION_KEYS)}",
                            file=str(path), field="kokoro_nb")
        if key.endswith("_parameters") and not isinstance(value, dict):
            raise DataError("must be a mapping of parameter name to value", file=str(path),
                            field=f"kokoro_nb.{key}")
    declared = set(declared_parameters(parameters_cell(nb).source)) if parameters_cell(nb) else set()
    for key in ("book_parameters", "smoke_parameters"):
        unknown = sorted(set(opts.get(key, {})) - declared)
        if unknown:
            raise DataError(f"sets {', '.join(unknown)}, which the parameters cell does not declare",
                            file=str(path), field=f"kokoro_nb.{key}")
    return opts


def notebook_parameters(nb, name: str, *, data_dir=None, psy_insight_dir=None, sample=None,
                        lang=None, output_root: Path, extra: dict | None = None,
                        translation_dir=None) -> dict:
    """Return the parameters papermill injects into notebook *name* in the book build.

    Precedence: notebook defaults < ``book_parameters`` < pipeline values (data, sample,
    label language, output folder; only those the notebook declares, sample and lang only when
    set, sample not when ``book_parameters`` has one) < *extra* (the tests' smoke parameters).
    """
    declared = set(declared_parameters(parameters_cell(nb).source))
    params = dict(notebook_options(nb, name).get("book_parameters", {}))
    pipeline = {"data_dir": _str_or_none(data_dir), "psy_insight_dir": _str_or_none(psy_insight_dir),
                "translation_dir": _str_or_none(translation_dir), "sample": sample, "lang": lang, "output_dir": str(Path(output_root) / name)}
    if sample is None or "sample" in params:  # a chapter's own book sample wins (smoke training)
        del pipeline["sample"]
    if lang is None:
        del pipeline["lang"]
    params.update({k: v for k, v in pipeline.items() if k in declared})
    params.update(extra or {})
    return params


def _str_or_none(p) -> str | None:
    return None if p is None else str(Path(p).expanduser().resolve())


# --------------------------------------------------------------------------- stamps

def tree_fingerprint(path: str | os.PathLike) -> str:
    """Return a cheap fingerprint of a file or folder: names, sizes and mtimes of its files."""
    p = Path(path)
    h = hashlib.sha256(str(p.resolve()).encode())
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def data_fingerprints(params: dict, inputs: dict | None = None, root: Path = Path(".")) -> dict:
    """Return a fingerprint per data parameter (``data_dir``, ``psy_insight_dir``) that is set.

    *inputs* maps other path parameters a notebook reads (``results_dir``...; injected or default
    values, relative to *root*) to their value; a missing one fingerprints as "absent", so the
    chapter re-runs when, say, GPU results appear.
    """
    from kokoro_nb.data.sources import fingerprint
    out = {}
    for key, value in sorted((inputs or {}).items()):
        p = Path(root, value)
        out[key] = tree_fingerprint(p) if p.exists() else "absent"
    for key, fp in (("data_dir", fingerprint), ("psy_insight_dir", tree_fingerprint),
                    ("translation_dir", tree_fingerprint)):
        value = params.get(key)
        if value is None:
            continue
        if not Path(value).exists():
            raise DataError(f"{value}: no such file or folder", field=key)
        out[key] = fp(value)
    return out


def code_fingerprint(modules: list[str] | None = None) -> str:
    """Return a hash of the kokoro_nb code a notebook ran: the *modules* it imported (all when
    None) plus the package's data files (paper values, templates, manifests).

    Tracking the imported modules means an edit to, say, the training code does not re-run the
    descriptive chapters.
    """
    pkg = Path(kokoro_nb.__file__).resolve().parent
    files = [f for f in pkg.rglob("*") if f.is_file() and "__pycache__" not in f.parts
             and f.suffix in (".yaml", ".json", ".jinja")]
    if modules is None:
        files += pkg.rglob("*.py")
    else:
        for mod in modules:
            parts = mod.split(".")[1:]
            candidates = [pkg.joinpath(*parts, "__init__.py")]
            if parts:
                candidates.append(pkg.joinpath(*parts[:-1], parts[-1] + ".py"))
            files += [f for f in candidates if f.is_file()]
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


# Appended to every run (and removed from the executed notebook): which kokoro_nb modules ran.
_MODULES_PROBE = ('import sys as _kokoro_sys\n'
                  'print(",".join(sorted(m for m in _kokoro_sys.modules '
                  'if m == "kokoro_nb" or m.startswith("kokoro_nb."))))')


def make_stamp(source: str, params: dict, data: dict, code: str) -> dict:
    """Return the stamp of one notebook run: its parts and one key over all of them."""
    parts = {"pipeline": PIPELINE_VERSION,
             "source": hashlib.sha256(source.encode()).hexdigest()[:20],
             "parameters": params, "data": data, "code": code}
    return _keyed(parts)


def _keyed(parts: dict) -> dict:
    parts = {k: v for k, v in parts.items() if k not in ("key", "modules", "seconds")}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return {"key": key, **parts}


def stale_reason(old: dict | None, new: dict) -> str | None:
    """Return why a notebook must run again (None when its stamp is unchanged)."""
    if old is None:
        return "new"
    if old.get("key") == new["key"]:
        return None
    changed = [k for k in ("source", "parameters", "data", "code", "pipeline") if old.get(k) != new[k]]
    return ", ".join(changed) + " changed" if changed else "stamp changed"


# --------------------------------------------------------------------------- execution

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
                     threads_env: dict | None = None) -> tuple[float, list[str]]:
    """Execute one jupytext source with papermill into *target*.

    Returns the seconds it took and the kokoro_nb modules the kernel imported.

    On failure the partly executed notebook is kept as ``<name>.failed.ipynb`` and
    :class:`NotebookFailed` names the cell and the error.
    """
    import logging

    import nbformat
    import papermill as pm

    # papermill cannot parse some commented parameter lines and then calls declared ones
    # unknown; harmless for injection (notebook_options checks names), so keep it quiet
    logging.getLogger("papermill").setLevel(logging.ERROR)
    nb = read_notebook(source)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
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
    stamp = _keyed({**job.stamp, "code": code_fingerprint(modules)})
    _stamp_path(job.target).write_text(json.dumps({**stamp, "modules": modules, "seconds": round(secs, 1)},
                                                  indent=2, sort_keys=True, default=str), encoding="utf-8")
    return Result(job.name, "ran", secs, job.reason)


def _durations_path() -> Path:
    # outside _build on purpose: a build from clean still starts the longest notebooks first
    return config.cache_dir() / "book_durations.json"


def _read_durations() -> dict:
    try:
        return json.loads(_durations_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_durations(results: list[Result]) -> None:
    durations = _read_durations()
    durations.update({r.name: round(r.seconds, 1) for r in results if r.status == "ran"})
    try:
        _durations_path().parent.mkdir(parents=True, exist_ok=True)
        _durations_path().write_text(json.dumps(durations, indent=1, sort_keys=True), encoding="utf-8")
    except OSError:
        pass  # only a scheduling hint


def _stamp_path(target: Path) -> Path:
    return target.with_suffix(".stamp.json")


def _read_stamp(target: Path) -> dict | None:
    p = _stamp_path(target)
    if not (p.is_file() and target.is_file()):
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def plan(root: Path, names: list[str], build_dir: Path, *, data_dir=None, psy_insight_dir=None,
         sample=None, lang=None, force: bool = False, extra: dict | None = None,
         smoke: bool = False, translation_dir=None) -> list[Job]:
    """Return one job per notebook with its parameters, stamp and the reason to run (or None)."""
    data_cache: dict = {}
    durations = _read_durations()
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
        old = _read_stamp(target)
        code = code_fingerprint(old.get("modules") if old else None)
        stamp = make_stamp(src.read_text(encoding="utf-8"), params, data_cache[key], code)
        reason = "forced" if force else stale_reason(old, stamp)
        expected = (old or {}).get("seconds") or durations.get(name, 0.0)
        jobs.append(Job(name, src, target, params, stamp, reason, expected))
    return jobs


def run_jobs(jobs: list[Job], *, cwd: Path, n_jobs: int = 2, timeout: float | None = None,
             progress: bool = True) -> list[Result]:
    """Run the stale jobs (in *n_jobs* processes), print one line per notebook, return results."""
    from tqdm.auto import tqdm

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
        import multiprocessing
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            threads = max(1, (os.cpu_count() or 2) // min(n_jobs, len(todo)))
            futures = [pool.submit(_run_job, j, cwd, timeout, threads) for j in todo]
            for fut in as_completed(futures):
                report(fut.result())
    bar.close()
    _write_durations(list(results.values()))
    return [results[j.name] for j in jobs]


# --------------------------------------------------------------------------- rendering

def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write *data* unless the file already holds it (unchanged mtimes keep Sphinx incremental)."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def stage_book(root: Path, build_dir: Path, names: list[str], *, banner: str | None = None,
               label: str | None = None) -> Path:
    """Assemble the sources Jupyter Book renders in ``<build>/stage`` and return that folder."""
    root, stage = Path(root), Path(build_dir) / "stage"
    wanted: dict[Path, bytes] = {}
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    sphinx_cfg = config.setdefault("sphinx", {}).setdefault("config", {}) or {}
    config["sphinx"]["config"] = sphinx_cfg
    sphinx_cfg["kokoro_repo_root"] = str(root.resolve())
    if banner:
        html = config.setdefault("html", {})
        html["announcement"] = banner + (" " + html["announcement"] if html.get("announcement") else "")
    # what a reader cites: the version and commit, in every page's footer and on the PDF's title page
    version = "Version " + (label or version.label(root))
    html = config.setdefault("html", {})
    html["extra_footer"] = (html.get("extra_footer") or "") + f'<p class="kokoro-version">{version}</p>'
    sphinx_cfg.setdefault("latex_elements", {})["releasename"] = version
    wanted[stage / "_config.yml"] = yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()
    for f in BOOK_FILES[1:]:
        if (root / f).is_file():
            wanted[stage / f] = (root / f).read_bytes()
    pages = root / BOOK_PAGES_DIR
    for f in sorted(pages.rglob("*")) if pages.is_dir() else []:
        if f.is_file():
            wanted[stage / f.relative_to(root)] = f.read_bytes()
    for name in names:
        wanted[stage / NOTEBOOK_DIR / f"{name}.ipynb"] = (
            Path(build_dir) / "executed" / f"{name}.ipynb").read_bytes()
        downloads = Path(build_dir) / "outputs" / name / DOWNLOAD_DIR
        for f in sorted(downloads.iterdir()) if downloads.is_dir() else []:
            if f.is_file():
                wanted[stage / NOTEBOOK_DIR / DOWNLOAD_DIR / name / f.name] = f.read_bytes()
    for path, data in wanted.items():
        _write_if_changed(path, data)
    if stage.is_dir():  # drop pages that left the book
        for f in stage.rglob("*"):
            if f.is_file() and f not in wanted:
                f.unlink()
    return stage


def _jupyter_book(stage: Path, out: Path, doctrees: Path, builder: str, *, overrides: dict | None = None,
                  warnings_as_errors: bool = False, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run Jupyter Book's Sphinx *builder* on *stage* in a subprocess (Sphinx keeps global state)."""
    code = ("import json, sys; from pathlib import Path; from jupyter_book.sphinx import build_sphinx; "
            "s, a = Path(sys.argv[1]), json.loads(sys.argv[4]); "
            "sys.exit(build_sphinx(s, sys.argv[2], noconfig=True, path_config=s / '_config.yml', "
            "builder=a['builder'], confoverrides={'external_toc_path': (s / '_toc.yml').as_posix(), "
            "'latex_individualpages': False, **a['overrides']}, doctreedir=sys.argv[3], "
            "warningiserror=a['werror'], keep_going=True, freshenv=a['fresh'], quiet=True))")
    args = json.dumps({"builder": builder, "overrides": overrides or {}, "werror": warnings_as_errors,
                       "fresh": fresh})
    return subprocess.run([sys.executable, "-c", code, str(stage), str(out), str(doctrees), args],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))


def render_html(stage: Path, build_dir: Path, *, warnings_as_errors: bool = True,
                fresh: bool = False, quiet: bool = False) -> tuple[int, str]:
    """Render *stage* with Jupyter Book (Sphinx, execution off) into ``<build>/html``.

    Runs in a subprocess (Sphinx keeps global state); returns (exit code, warnings text).
    """
    stage, build_dir = Path(stage).resolve(), Path(build_dir).resolve()
    proc = _jupyter_book(stage, build_dir / "html", build_dir / ".doctrees", "html",
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

    *data_dir* None reads ``$KOKOROCHAT_DIR`` (then the verified download); *psy_insight_dir*
    None reads ``$PSY_INSIGHT_DIR`` (or stays None: chapters that need it say so); likewise
    *translation_dir* and ``$KOKOROCHAT_EN_DIR`` (None: the verified download, once, when a
    chapter reads the translation). With *colab*, a build without *sample* brings the Colab
    copies in ``notebooks/colab/`` up to date from its executed notebooks (commit them).
    """
    from kokoro_nb.data.sources import resolve_kokorochat
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
    label = version.label(root)     # before the build rewrites any Colab copy (tracked files)
    declared = set().union(*(declared_parameters(parameters_cell(read_notebook(
        source_path(root, n))).source) for n in names)) if names else set()
    if translation_dir is None and "translation_dir" in declared:
        # one verified download here rather than one per chapter process, running in parallel
        from kokoro_nb.data.sources import resolve_translation
        translation_dir = resolve_translation(None)
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
            from kokoro_book.colab import sync as sync_colab
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
        from kokoro_book.pdf import render_pdf
        report.pdf_rc, log, report.pdf = render_pdf(stage, build_dir)
        if report.pdf_rc:
            report.warnings = log
        if progress:
            print(f"  {'(pdf)':<32} {'ok' if report.pdf_rc == 0 else 'FAILED':<7} "
                  f"{time.perf_counter() - t2:6.1f} s", file=sys.stderr)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- Sphinx extension

def setup(app):
    """Sphinx hook: point the Colab launch button at ``notebooks/colab/<name>.ipynb``."""
    app.add_config_value("kokoro_colab_path", colab.COLAB_PATH, "html")
    app.add_config_value("kokoro_repo_root", "", "html")
    app.connect("html-page-context", _colab_button, priority=502)  # after the theme's (501)
    app.connect("config-inited", _require_pipeline)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("config-inited", _theme_defaults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


NOT_STAGED = ("kokoro-nb: this book renders executed notebooks: run `make book` (or `kokoro-nb "
              "book build`), which executes the chapters with papermill and then renders; "
              "`jupyter-book build .` alone would publish chapters without their numbers")


def _require_pipeline(app, config) -> None:
    """Stop a direct ``jupyter-book build .`` at once: only the staged build has outputs to show."""
    if not config.kokoro_repo_root:       # set by stage_book for every pipeline render
        print(NOT_STAGED, file=sys.stderr)
        raise SystemExit(1)


def _theme_defaults(app, config):
    """Give the theme a colour mode: with none, a first visit logs 'Got invalid theme mode'."""
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")      # follows the reader's system setting
    config.html_context = context


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated inline scripts: sphinx-thebe adds its config twice, and the second
    ``const THEBE_JS_URL`` is a SyntaxError in the browser console."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:              # same file and attributes, whatever the priority: a repeat
        # an inline script's filename is None or "" depending on who added it
        key = (getattr(js, "filename", js) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def _colab_button(app, pagename, templatename, context, doctree):
    from sphinx.util import logging
    for group in context.get("header_buttons") or []:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") != "Colab" or "/blob/" not in button.get("url", ""):
                continue
            name = pagename.rsplit("/", 1)[-1]
            rel = app.config.kokoro_colab_path.format(name=name)
            branch = app.config.html_theme_options.get("repository_branch") or "main"
            button["url"] = f"{button['url'].split('/blob/', 1)[0]}/blob/{branch}/{rel}"
            root = app.config.kokoro_repo_root
            if root and not (Path(root) / rel).is_file():
                logging.getLogger(__name__).warning(
                    f"{pagename}: no Colab copy {rel}; run `kokoro-nb book sync-colab`")


# --------------------------------------------------------------------------- CLI

def register_cli(sub) -> None:
    """Add ``kokoro-nb book build`` and ``kokoro-nb book sync-colab``."""
    p = sub.add_parser("book", help="run the notebooks and build the HTML book; sync Colab copies",
                       description="Build the companion book or its Colab notebook copies.")
    bsub = p.add_subparsers(dest="book_command", metavar="ACTION")
    bsub.required = True
    b = bsub.add_parser("build", help="execute changed notebooks (papermill) and render the HTML",
                        description="Execute every notebook of _toc.yml whose source, parameters, "
                        "data or package code changed, then render _build/html with warnings as "
                        "errors. Exit 1 when a notebook or the render fails.")
    _add_build_args(b)
    b.set_defaults(func=_cmd_build, pdf=False)
    from kokoro_book.pdf import PDF_NAME, TEX_PACKAGES
    pdf = bsub.add_parser("pdf", help="the whole book as one PDF (LuaLaTeX, offline)",
                          description="Execute changed notebooks, render the HTML (warnings are errors) and "
                          "compile the book into <build>/" + PDF_NAME + " with LuaLaTeX and Japanese fonts. "
                          "Needs Debian's TeX: apt-get install -y " + " ".join(TEX_PACKAGES) + ".")
    _add_build_args(pdf)
    pdf.set_defaults(func=_cmd_build, pdf=True)
    s = bsub.add_parser("sync-colab", help="write output-free .ipynb copies for Colab",
                        description="Regenerate notebooks/colab/*.ipynb from the jupytext sources, "
                        "quoting the numbers of the executed full-data build (run `make book` "
                        "first). With --check, change nothing and exit 1 when a copy is out of date.")
    s.add_argument("--check", action="store_true", help="only report stale copies (exit 1)")
    s.add_argument("--build-dir", metavar="DIR", help="the full-data build to quote "
                   "(default: <repo>/_build)")
    s.set_defaults(func=_cmd_sync_colab)


def _add_build_args(b) -> None:
    """Add the options that `book build` and `book pdf` share."""
    b.add_argument("--data", metavar="PATH", help="KokoroChat location (default: $KOKOROCHAT_DIR, "
                   "then the verified download)")
    b.add_argument("--psy-insight", metavar="PATH", help="Psy-Insight data (default: $PSY_INSIGHT_DIR)")
    b.add_argument("--translation", metavar="PATH", help="Multilingual KokoroChat (English) "
                   "folder or archive (default: $KOKOROCHAT_EN_DIR, then the verified download)")
    b.add_argument("--sample", type=int, metavar="N", help="quick preview on N random dialogues")
    b.add_argument("--lang", choices=("en", "ja"), help="label language of figures (default: each "
                   "notebook's own, English)")
    b.add_argument("--force", action="store_true", help="re-run every notebook and re-render all pages")
    b.add_argument("--jobs", type=int, default=2, metavar="N", help="notebooks run in parallel (default 2)")
    b.add_argument("--build-dir", metavar="DIR", help="build folder (default: <repo>/_build)")
    b.add_argument("--no-html", action="store_true", help="only execute the notebooks")
    b.add_argument("--timeout", type=float, metavar="S", help="per-cell time limit in seconds")


def _cmd_build(args) -> int:
    progress = not getattr(args, "quiet", False)
    report = build(data_dir=args.data, psy_insight_dir=args.psy_insight, sample=args.sample,
                   translation_dir=args.translation,
                   lang=args.lang, force=args.force, n_jobs=args.jobs, timeout=args.timeout, html=not args.no_html,
                   build_dir=Path(args.build_dir).resolve() if args.build_dir else None,
                   progress=progress, pdf=args.pdf)
    for r in report.results:
        if r.status == "failed":
            print(f"kokoro-nb: notebook failed: {r.error}", file=sys.stderr)
    if report.sphinx_rc:
        print(f"kokoro-nb: the HTML build failed (warnings are errors):\n{report.warnings}",
              file=sys.stderr)
    if report.pdf_rc:
        print(f"kokoro-nb: the PDF build failed:\n{report.warnings}", file=sys.stderr)
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
        print("kokoro-nb: run `kokoro-nb book sync-colab` and commit notebooks/colab/",
              file=sys.stderr)
        return 1
    if not stale:
        print("Colab copies are up to date", file=sys.stderr)
    return 0
