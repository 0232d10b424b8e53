"""A resumable worker loop: run a job per item in a thread pool and append each record to a JSONL.

Both steps of the simulated-client evaluation (``simulate run`` and ``simulate judge``) call
endpoints that may fail half-way through a long run. The loop skips the items already in the
output, appends each record as soon as its job ends (so a stopped run keeps what finished), and
on the first :class:`~kokoro_nb.errors.KokoroError` stops the others and re-raises it with how
far the run got. Reading what a run already wrote, and what a record means, is the caller's.

>>> import tempfile, pathlib
>>> from kokoro_nb.jsonl import read_resumable
>>> out = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
>>> run_resumable(["a", "b", "c"], lambda x, stop: {"id": x}, out, key=str, done=["b"], progress=False)
2
>>> sorted(r["id"] for r in read_resumable(out))
['a', 'c']
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Collection, Sequence

from kokoro_nb.errors import KokoroError
from kokoro_nb.jsonl import Appender


def run_resumable(items: Sequence, work: Callable[[object, threading.Event], dict | None], output: str | Path, *,
                  key: Callable[[object], str], done: Collection[str] = (), max_workers: int = 1,
                  progress: bool = True, desc: str | None = None, unit: str = "dialogue",
                  on_record: Callable[[dict], None] | None = None, stop: threading.Event | None = None,
                  what: str = "items are done") -> int:
    """Run ``work(item, stop)`` for each item whose ``key(item)`` is not in *done*; return how many
    records were appended to *output*.

    Jobs are submitted in the order of *items* and their records appended as they complete; a job
    that returns None (it saw *stop* set) writes nothing. *on_record* is called with each record
    after it is written (token counts, tallies). *done* holds the keys of the records already in
    *output*, one per record: ``len(done)`` counts them. The progress bar counts all *items*,
    starting at the done ones.

    On a :class:`KokoroError` the loop sets *stop* (so jobs still waiting return None and running
    ones stop after their current request), lets the running jobs finish and write, then raises
    the first error again, of the same type, adding ``Stopped: N of M {what} in OUTPUT (kept)``.
    """
    stop = stop if stop is not None else threading.Event()
    seen = set(done)
    todo = [it for it in items if key(it) not in seen]
    log, written, error = Appender(output), 0, None
    bar = None
    if progress:
        from tqdm.auto import (
            tqdm,  # not at the top: importing it warns in notebooks without ipywidgets
        )
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit=unit)
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = [pool.submit(work, it, stop) for it in todo]
        for fut in as_completed(futures):
            try:
                rec = fut.result()
            except KokoroError as exc:
                stop.set()                               # the others stop after their current request
                error = error or exc
                continue
            if rec is None:
                continue
            log.write(rec)
            written += 1
            if on_record is not None:
                on_record(rec)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if error is not None:
        raise type(error)(f"{error}. Stopped: {len(done) + written} of {len(items)} {what} in {output} "
                          "(kept); run the same command again to continue.")
    return written
