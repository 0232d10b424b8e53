"""Errors raised on bad input. The CLI turns them into one message and exit code 2."""
from __future__ import annotations


class KokoroError(Exception):
    """Base class for every error the package raises on purpose."""


class DataError(KokoroError, ValueError):
    """Bad input data: names the file, the line or field, and the problem.

    >>> str(DataError("bad score", file="10.json", field="review_by_client_en.score"))
    '10.json: review_by_client_en.score: bad score'
    """

    def __init__(self, problem: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.problem, self.file, self.line, self.field = problem, file, line, field
        where = []
        if file is not None:
            where.append(f"{file}:{line}" if line is not None else str(file))
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(field)
        super().__init__(": ".join(where + [problem]))


class DataNotFoundError(KokoroError, FileNotFoundError):
    """The data set is not where we looked and could not be downloaded."""


class MissingDependencyError(KokoroError, ImportError):
    """An optional dependency is missing; the message carries the install command."""
