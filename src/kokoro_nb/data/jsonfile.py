"""Read one JSON document, naming the file and the line of a syntax error.

Not validation of what the document holds: the parsers (:mod:`~kokoro_nb.data.corpus`,
:mod:`~kokoro_nb.data.psy_insight`, :mod:`~kokoro_nb.data.translation`) check that.

>>> load_json("a.json", b'{"x": 1}')
{'x': 1}
>>> load_json("a.json", b'{"x":\\n 1,,}')
Traceback (most recent call last):
...
kokoro_nb.errors.DataError: a.json:2: malformed JSON (unexpected character, expected a string key)
"""
from __future__ import annotations

import orjson

from kokoro_nb.errors import DataError


def load_json(fname: str, raw: bytes):
    """Parse *raw* (the bytes of *fname*); a syntax error raises :class:`DataError` with its line."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's lineno counts characters, not bytes, so it is right after non-ASCII text too
        raise DataError(f"malformed JSON ({exc.msg})", file=fname, line=exc.lineno) from None
