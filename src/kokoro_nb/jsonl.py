"""JSON Lines files: strict reading with file and line in every error, resumable reading that cuts
a torn last line, thread-safe appending, and writing. Every JSONL the project reads or writes goes
through here.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
>>> write_jsonl([{"dialogue_id": 1}, {"dialogue_id": 2}], p)
2
>>> _ = p.open("a").write('{"dialogue_id": 3')          # a run stopped mid-write
>>> [r["dialogue_id"] for r in read_resumable(p)]
[1, 2]
>>> p.read_text().count("\\n"), p.read_text().endswith("}\\n")   # the torn line is gone
(2, True)
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from kokoro_nb.errors import DataError

_BOMS = {b"\xef\xbb\xbf": "UTF-8", b"\xff\xfe": "UTF-16 LE", b"\xfe\xff": "UTF-16 BE"}


def read_records(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a UTF-8 JSONL file.

    DataError, naming the file and line, on: a byte-order mark, bytes that are not UTF-8, a line
    that is not a JSON object, and a last line cut off mid-record (no newline, not valid JSON).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file; pass the JSONL written by the generation notebook", file=str(path))
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if no == 1:
                for bom, enc in _BOMS.items():
                    if raw.startswith(bom):
                        raise DataError(f"the file starts with a {enc} byte-order mark; JSONL must be "
                                        "UTF-8 without one (re-save it as 'UTF-8', not 'UTF-8 with BOM')",
                                        file=str(path), line=1)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of "
                                "the line); re-save the file as UTF-8", file=str(path), line=no) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if not raw.endswith(b"\n") and fh.read(1) == b"":
                    raise DataError("the last line is cut off (no newline at the end and not valid JSON): "
                                    "the file is truncated, perhaps written by a run that was stopped; "
                                    "rerun it to finish the file or delete the line",
                                    file=str(path), line=no) from None
                raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                file=str(path), line=no) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", file=str(path), line=no)
            yield no, obj


def read_resumable(path: str | Path, check: Callable[[dict], object] | None = None, *,
                   what: str = "record of this run") -> list[dict]:
    """Return the records of a JSONL that a resumable run appends to ([] when it does not exist).

    A last line that does not parse (or that *check* rejects by raising ValueError, KeyError or
    TypeError) was torn by an interrupted write: it is cut off the file, so the run appends after
    the last whole record. Such a line anywhere else is a DataError naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    out, offset = [], 0
    for no, raw in enumerate(lines, 1):
        if raw.strip():
            try:
                obj = json.loads(raw)          # bytes: a torn multi-byte character fails here too
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                if check is not None:
                    check(obj)
                out.append(obj)
            except (ValueError, KeyError, TypeError):
                if no == len(lines):           # torn last line: cut it and go on
                    with path.open("r+b") as f:
                        f.truncate(offset)
                    break
                raise DataError(f"not a {what}: {raw[:80].decode('utf-8', 'replace')!r}",
                                file=str(path), line=no) from None
        offset += len(raw) + 1
    return out


class Appender:
    """Append JSON lines to a file from several threads, each line flushed to disk."""

    def __init__(self, path: str | Path):
        self.path, self._lock = Path(path), threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, obj: dict) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def write_jsonl(rows: Iterable[dict], path: str | Path) -> int:
    """Write rows as JSON lines (UTF-8, Japanese kept readable); return the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
