"""Shared by the show tests: the glue keys a chapter's prose refers to."""
from __future__ import annotations

from pathlib import Path

import pytest

from kokoro_book.sources import glue_references, read_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="session")
def prose_keys():
    """Return a function: chapter name (``NN_slug``) -> the glue keys its prose refers to.

    Figures are left out: ``plotting.glue_figure`` glues them, not the facts under test.
    """
    def keys(chapter: str) -> set[str]:
        return glue_references(read_notebook(NOTEBOOKS / f"{chapter}.md"), figures=False)
    return keys
