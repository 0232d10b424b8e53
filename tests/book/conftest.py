"""Fixtures shared by the book tests that run chapters on synthetic data."""
from __future__ import annotations

import pytest

from kokoro_nb.testing.synthetic import (
    write_kokorochat,
    write_psy_insight,
    write_translation,
)

N_DIALOGUES = 60          # enough for every split and a bootstrap, small enough to stay fast


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """(KokoroChat, Psy-Insight, translation) folders of one small synthetic corpus."""
    base = tmp_path_factory.mktemp("synthetic")
    kokorochat = write_kokorochat(base / "kokorochat", n_dialogues=N_DIALOGUES)
    return (kokorochat, write_psy_insight(base / "psy-insight"),
            write_translation(base / "multilingual-kokorochat", kokorochat))
