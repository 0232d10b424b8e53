"""kokoro_nb: the helper package of the KokoroChat companion book.

>>> import kokoro_nb
>>> kokoro_nb.schema.ITEM_CODES[:3]
('D1', 'D2', 'D3')
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _NotInstalled, version as _version

try:        # pyproject.toml's version, the one source (kokoro_nb.release shows it with the commit)
    __version__ = _version("kokoro-nb")
except _NotInstalled:
    __version__ = "0+unknown"

from . import schema  # noqa: E402
from .corpus import Corpus, LoadReport, load_kokorochat, load_psy_insight  # noqa: E402
from .errors import DataError, DataNotFoundError, KokoroError  # noqa: E402

__all__ = ["Corpus", "LoadReport", "load_kokorochat", "load_psy_insight", "DataError",
           "DataNotFoundError", "KokoroError", "schema", "__version__"]
