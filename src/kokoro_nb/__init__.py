"""kokoro_nb: the helper package of the KokoroChat companion book.

>>> import kokoro_nb
>>> kokoro_nb.schema.ITEM_CODES[:3]
('D1', 'D2', 'D3')
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import schema  # noqa: E402
from .corpus import Corpus, LoadReport, load_kokorochat, load_psy_insight  # noqa: E402
from .errors import DataError, DataNotFoundError, KokoroError  # noqa: E402

__all__ = ["Corpus", "LoadReport", "load_kokorochat", "load_psy_insight", "DataError",
           "DataNotFoundError", "KokoroError", "schema", "__version__"]
