"""The paper's published figures as one machine-readable table (``paper_values.yaml``).

Every chapter compares against this table; prose never types a paper number by hand.
:mod:`kokoro_nb.describe.ledger` checks every descriptive figure of the table against a corpus.

>>> load()["table3_overall_statistics"]["dialogues"]
6589
>>> value("figure4_spearman_feature_vs_score.client_total_characters")
0.42
>>> decimals("figure3_score_distribution.median")   # printed as 64.00
2
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def load() -> dict:
    """Return the whole table of published figures."""
    return yaml.safe_load(_text())


def _text() -> str:
    return resources.files("kokoro_nb").joinpath("paper_values.yaml").read_text(encoding="utf-8")


def value(path: str, values: dict | None = None):
    """Return one published figure by its dotted path, e.g. ``"table3_overall_statistics.dialogues"``."""
    node = load() if values is None else values
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]      # a column of a table row, e.g. Table 1
            continue
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no published figure at {path!r} (stopped at {part!r})")
        node = node[part]
    return node


class _Published(float):
    """A float that remembers how many decimals the paper printed (``64.00`` -> 2)."""
    decimals: int


class _PrecisionLoader(yaml.SafeLoader):
    pass


def _float_with_decimals(loader, node):
    text = loader.construct_scalar(node)
    v = _Published(float(text.replace("_", "")))
    mant = text.lower().split("e")[0]
    v.decimals = len(mant.split(".")[1]) if "." in mant else 0
    return v


_PrecisionLoader.add_constructor("tag:yaml.org,2002:float", _float_with_decimals)


@lru_cache(maxsize=1)
def _load_with_precision() -> dict:
    return yaml.load(_text(), Loader=_PrecisionLoader)  # noqa: S506 (a SafeLoader subclass)


def decimals(path: str) -> int:
    """Return the number of decimals a published number was printed with (0 for integers)."""
    v = value(path, _load_with_precision())
    return getattr(v, "decimals", 0)
