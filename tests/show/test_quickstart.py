"""show.quickstart: the numbers chapter 00 glues."""
from __future__ import annotations

import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb.show import quickstart


def chapter_facts(corpus, load_seconds: float) -> dict:
    """Every glue key of chapter 00, composed as the chapter composes them."""
    return {**quickstart.load_facts(corpus, load_seconds),
            **quickstart.turn_facts(corpus.dialogues, corpus.turns()),
            **quickstart.length_facts(corpus.dialogues)}


@pytest.fixture
def corpus(synthetic_kokorochat_dir):
    return kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)


def test_facts_cover_every_reference_of_the_prose(corpus, prose_keys):
    facts = chapter_facts(corpus, 1.234)
    assert set(facts) == prose_keys("00_quickstart")
    assert facts["qs_dialogues"] == 20 and facts["qs_messages"] == len(corpus.utterances)
    assert facts["qs_load_seconds"] == 1.23


def test_turns_are_fewer_than_messages(corpus):
    f = quickstart.turn_facts(corpus.dialogues, corpus.turns())
    assert 0 < f["qs_turns_per_dialogue"] <= f["qs_messages_per_dialogue"]
    assert isinstance(f["qs_turns_per_dialogue"], float)


def test_length_quartiles_on_a_hand_made_table():
    d = pd.DataFrame({"n_utterances": [30, 40, 50, 60, 70]})
    assert quickstart.length_facts(d) == {"qs_min_messages": 30, "qs_q25": 40, "qs_q75": 60}
    assert all(type(v) is int for v in quickstart.length_facts(d).values())
