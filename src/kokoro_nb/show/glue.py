"""Glue values into the book when it is built, and show them plainly everywhere else.

Chapters call :func:`glue` instead of ``myst_nb.glue``: inside ``kokoro-nb book build`` (which
sets ``KOKORO_BOOK_BUILD=1`` for the kernels it starts) it is myst-nb's glue, so ``{glue:text}``
roles in the prose resolve; on Colab, in Jupyter or under plain papermill, where myst-nb is
usually not installed, the value is simply displayed, so a reader still sees every number the
prose quotes.

>>> as_gluable(__import__("numpy").float64(0.5))
0.5
"""
from __future__ import annotations

import os

BOOK_BUILD_ENV = "KOKORO_BOOK_BUILD"


def in_book_build() -> bool:
    """Return True inside a kernel started by ``kokoro-nb book build``."""
    return os.environ.get(BOOK_BUILD_ENV) == "1"


def as_gluable(value):
    """Return *value* with numpy scalars turned into Python numbers (myst-nb formats those)."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    return value


def glue(name: str, value, display: bool = True) -> None:
    """Glue *value* as *name* in a book build; elsewhere display it (as ``name = value`` for text)."""
    value = as_gluable(value)
    if in_book_build():
        from myst_nb import (
            glue as myst_glue,  # book-only dependency, present in book builds
        )
        myst_glue(name, value, display=display)
        return
    from IPython.display import display as show
    if display or hasattr(value, "savefig") or hasattr(value, "_repr_html_"):
        show(value)
    else:
        print(f"{name} = {value}")


def glue_all(facts: dict) -> None:
    """Glue every ``key: value`` of *facts* without display (a chapter's numbers and verdicts)."""
    for name, value in facts.items():
        glue(name, value, display=False)
