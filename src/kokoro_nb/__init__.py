"""kokoro_nb: the helper package of the KokoroChat companion book.

Its layers import one way, each only from those before it (``lint-imports`` checks this):

======== ===========================================================================
base     ``config``, ``errors``, ``schema``, ``published`` (the paper's values), ``jsonl``,
         ``version``
data     finding, downloading and parsing the releases; the paper's splits (section 5.1.1)
describe section 4 and Table 3: statistics, their inference, the reproduction ledger
train    SFT data, configuration and profiles, models, the run plan, the loop, checkpoints
generate greedy replies and score predictions (transformers or vLLM)
evaluate metrics with protocol signatures, result files, significance, baselines, simulation
show     each chapter's figures and verdict sentences
cli      the ``kokoro-nb`` command line
======== ===========================================================================

The old flat names (``kokoro_nb.stats``, ``kokoro_nb.metrics``, ...) still resolve to their new
homes, so ``kokoro_nb.stats.summary(corpus)`` keeps working.

>>> import kokoro_nb
>>> kokoro_nb.schema.ITEM_CODES[:3]
('D1', 'D2', 'D3')
>>> kokoro_nb.stats.__name__
'kokoro_nb.describe.stats'
"""
from __future__ import annotations

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:        # pyproject.toml's version, the one source (kokoro_nb.version shows it with the commit)
    __version__ = _version("kokoro-nb")
except _NotInstalled:
    __version__ = "0+unknown"

from kokoro_nb import schema  # noqa: E402
from kokoro_nb.data.corpus import Corpus, LoadReport, load_kokorochat  # noqa: E402
from kokoro_nb.data.psy_insight import load_psy_insight  # noqa: E402
from kokoro_nb.errors import DataError, DataNotFoundError, KokoroError  # noqa: E402

# Where the modules of the flat layout (0.1.0) live now; imported on first use.
_MOVED = {"corpus": "data.corpus", "fetch": "data.sources", "translation": "data.translation",
          "stats": "describe.stats", "paper": "describe.ledger", "sft": "train.sft",
          "plan": "train.plan", "checkpoints": "train.checkpoints", "metrics": "evaluate.metrics",
          "significance": "evaluate.significance", "baselines": "evaluate.baselines",
          "simulate": "evaluate.simulate", "human_eval": "evaluate.human_eval",
          "plotting": "show.plotting", "notebook": "show.glue", "synthetic": "testing.synthetic",
          "fakeserver": "testing.fakeserver"}


def __getattr__(name: str):
    if name in _MOVED:
        return _import_module(f"kokoro_nb.{_MOVED[name]}")
    raise AttributeError(f"module 'kokoro_nb' has no attribute {name!r}")


__all__ = ["Corpus", "LoadReport", "load_kokorochat", "load_psy_insight", "DataError",
           "DataNotFoundError", "KokoroError", "schema", "__version__"]
