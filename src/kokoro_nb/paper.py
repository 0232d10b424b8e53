"""The paper's published figures as one machine-readable table (``paper_values.yaml``).

Every notebook compares against this table; prose never types a paper number by hand.

>>> load()["table3_overall_statistics"]["dialogues"]
6589
>>> value("figure4_spearman_feature_vs_score.client_total_characters")
0.42
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def load() -> dict:
    """Return the whole table of published figures."""
    text = resources.files("kokoro_nb").joinpath("paper_values.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def value(path: str):
    """Return one published figure by its dotted path, e.g. ``"table3_overall_statistics.dialogues"``."""
    node = load()
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no published figure at {path!r} (stopped at {part!r})")
        node = node[part]
    return node
