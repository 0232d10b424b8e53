"""The package face: the public names of the README, and the old flat module names."""
from __future__ import annotations

import importlib

import pytest

import kokoro_nb


def test_readme_names_import_from_their_homes():
    from kokoro_nb.data.corpus import Corpus, load_kokorochat
    from kokoro_nb.data.psy_insight import load_psy_insight
    assert kokoro_nb.Corpus is Corpus and kokoro_nb.load_kokorochat is load_kokorochat
    assert kokoro_nb.load_psy_insight is load_psy_insight
    assert callable(kokoro_nb.stats.summary) and kokoro_nb.stats.summary is kokoro_nb.describe.stats.summary


@pytest.mark.parametrize("old, new", sorted(kokoro_nb._MOVED.items()))
def test_every_old_module_name_is_its_new_module(old, new):
    assert getattr(kokoro_nb, old) is importlib.import_module(f"kokoro_nb.{new}")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        kokoro_nb.nonsense  # noqa: B018
