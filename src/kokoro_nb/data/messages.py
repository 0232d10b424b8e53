"""Check the fields of one JSON record and of one message: the errors name file, field and problem.

Shared by the KokoroChat and Psy-Insight parsers; not a parser itself (no tables here).

>>> message({"speaker": "Seeker", "content": "hi"}, "f.json", "[0].dialog[0]", role_key="speaker",
...         roles=("Seeker", "Supporter"), text_key="content")
('Seeker', 'hi')
>>> message({"speaker": "Bot", "content": "hi"}, "f.json", "[0].dialog[0]", role_key="speaker",
...         roles=("Seeker", "Supporter"), text_key="content", unknown="speaker",
...         expected="Seeker or Supporter")
Traceback (most recent call last):
...
kokoro_nb.errors.DataError: f.json: [0].dialog[0].speaker: unknown speaker 'Bot' (expected Seeker or Supporter)
"""
from __future__ import annotations

from typing import Callable, Collection

from kokoro_nb.errors import DataError

TIME_FORMAT = "'YYYY-MM-DDTHH:MM:SS'"


def get(obj, key: str, fname: str, where: str):
    """Return ``obj[key]``; raise a DataError when *obj* is no object or has no *key*."""
    if not isinstance(obj, dict):
        raise DataError(f"expected an object, found {type(obj).__name__}", file=fname, field=where)
    if key not in obj:
        raise DataError("missing field", file=fname, field=f"{where}.{key}" if where else key)
    return obj[key]


def text(v, fname: str, where: str) -> str:
    """Return *v* when it is a string; otherwise raise a DataError showing the value."""
    if not isinstance(v, str):
        raise DataError(f"expected text, found {v!r}", file=fname, field=where)
    return v


def _type_name(v) -> str:
    return type(v).__name__


def message(m, fname: str, where: str, *, role_key: str, roles: Collection[str], text_key: str,
            time_key: str | None = None, unknown: str = "role", expected: str | None = None,
            found: Callable[[object], str] = _type_name) -> tuple:
    """Check one message and return (role, text[, time]).

    The role must be one of *roles* (else ``unknown <unknown> 'x' (expected <expected>)``, by
    default ``one of`` the roles); the text must be a string (the error shows ``found(value)``),
    and so must the time when *time_key* is given.
    """
    role = get(m, role_key, fname, where)
    if role not in roles:
        expected = expected or f"one of {', '.join(roles)}"
        raise DataError(f"unknown {unknown} {role!r} (expected {expected})", file=fname,
                        field=f"{where}.{role_key}")
    t = get(m, text_key, fname, where)
    if not isinstance(t, str):
        raise DataError(f"expected text, found {found(t)}", file=fname, field=f"{where}.{text_key}")
    if time_key is None:
        return role, t
    tm = get(m, time_key, fname, where)
    if not isinstance(tm, str):
        raise DataError(f"expected a time {TIME_FORMAT}, found {tm!r}", file=fname, field=f"{where}.{time_key}")
    return role, t, tm
