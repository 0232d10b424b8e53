"""Stamps: what a notebook run depended on (source, parameters, data, the kokoro_nb code it
imported), so that a build re-runs only the chapters whose stamp changed; and the durations of
past runs, which order the next build.

Fingerprints only: nothing here runs a notebook (:mod:`kokoro_book.run`).

>>> a = make_stamp("src", {"sample": None}, {"data_dir": "x"}, "c1")
>>> stale_reason(a, make_stamp("src2", {"sample": 5}, {"data_dir": "x"}, "c1"))
'source, parameters changed'
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import kokoro_nb
from kokoro_book.sources import execution_text
from kokoro_nb import config
from kokoro_nb.data.sources import fingerprint
from kokoro_nb.errors import DataError

PIPELINE_VERSION = "2"          # bump to invalidate every stamp after a pipeline change


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


def source_digest(source: str) -> str:
    """The digest a stamp keeps of a chapter source: its text without the reader-only header
    (:func:`kokoro_book.sources.execution_text`), so editing the header never re-runs it."""
    return hashlib.sha256(execution_text(source).encode()).hexdigest()[:20]


def make_stamp(source: str, params: dict, data: dict, code: str) -> dict:
    """Return the stamp of one notebook run: its parts and one key over all of them."""
    parts = {"pipeline": PIPELINE_VERSION,
             "source": source_digest(source),
             "parameters": params, "data": data, "code": code}
    return keyed(parts)


def keyed(parts: dict) -> dict:
    """Return *parts* (less run details: modules, seconds) with a fresh key over them."""
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


def stamp_path(target: Path) -> Path:
    """Return where the stamp of the executed notebook *target* lives."""
    return Path(target).with_suffix(".stamp.json")


def read_stamp(target: Path) -> dict | None:
    """Return the stamp of *target*'s last successful run (None: never ran, or it is gone)."""
    p = stamp_path(target)
    if not (p.is_file() and Path(target).is_file()):
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_stamp(target: Path, stamp: dict, modules: list[str], seconds: float) -> None:
    """Record a successful run: *stamp* with the code the kernel actually imported (*modules*),
    for the next staleness check, and how long it took."""
    stamp = keyed({**stamp, "code": code_fingerprint(modules)})
    stamp_path(target).write_text(json.dumps({**stamp, "modules": modules, "seconds": round(seconds, 1)},
                                             indent=2, sort_keys=True, default=str), encoding="utf-8")


# --------------------------------------------------------------------------- durations

def durations_path() -> Path:
    # outside _build on purpose: a build from clean still starts the longest notebooks first
    return config.cache_dir() / "book_durations.json"


def read_durations() -> dict:
    """Return {notebook name: seconds} of the last runs (empty when none is recorded)."""
    try:
        return json.loads(durations_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_durations(seconds: dict[str, float]) -> None:
    """Add {notebook name: seconds} of the runs that just happened to the record."""
    durations = read_durations()
    durations.update({name: round(s, 1) for name, s in seconds.items()})
    try:
        durations_path().parent.mkdir(parents=True, exist_ok=True)
        durations_path().write_text(json.dumps(durations, indent=1, sort_keys=True), encoding="utf-8")
    except OSError:
        pass  # only a scheduling hint
