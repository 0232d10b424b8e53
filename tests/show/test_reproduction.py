"""show.reproduction: chapter 06's summary sentences on both sides, its three tables and its facts."""
from __future__ import annotations

import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb import published
from kokoro_nb.describe import ledger
from kokoro_nb.show import reproduction as lg
from kokoro_nb.testing.synthetic import write_kokorochat


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = write_kokorochat(tmp_path_factory.mktemp("lg") / "kc", n_dialogues=12)
    return ledger.ledger(kokoro_nb.load_kokorochat(root, cache=False, progress=False), None)


def known_rows(statuses):
    keys = list(published.value("known_differences"))
    return pd.DataFrame({"key": keys + ["other"], "status": list(statuses) + ["exact"]})


def test_sample_note_both_ways():
    assert lg.sample_note(6589, None) == "the full release"
    assert lg.sample_note(1500, 1500) == "a sample of 1,500 dialogues, so counts differ by design"


def test_known_text_full_release_sentence_only_when_both_still_differ():
    both = known_rows(["differs", "differs"])
    assert lg.known_text(both, None).startswith("On the full release two published numbers differ")
    assert lg.known_text(known_rows(["differs", "exact"]), None) == \
        "1 of the 2 documented differences differ on this data."
    on_sample = lg.known_text(both, 500)
    assert on_sample.startswith("2 of the 2 documented differences") and "counts scale with the sample" in on_sample


def test_check_text_both_ways():
    assert lg.check_text(0) == "every row that should hold does"
    assert lg.check_text(3).startswith("3 row(s) differ without a documented reason")


def test_tables(table):
    checked = lg.checked_table(table)
    assert list(checked.data.columns) == ["section", "quantity", "paper", "reproduced", "difference", "status",
                                          "chapter"]
    assert len(checked.data) == (table["status"] != "not checkable").sum()
    assert checked.data["chapter"].str.startswith('<a href="').any()
    assert "#fde0dd" in checked.to_html()                               # a "differs" row is coloured
    notes = lg.notes_table(table).data
    assert (notes["note"] != "").all() and "not checkable" not in set(notes["status"])
    groups = lg.not_checkable_table(table).data
    assert list(groups.columns) == ["section", "numbers", "example", "why not", "chapter"]
    assert groups["numbers"].sum() == (table["status"] == "not checkable").sum()


def test_facts_are_the_prose_keys(table, prose_keys):
    summary = ledger.ledger_summary(table)
    facts = lg.facts(table, summary, 12, 12)
    refs = prose_keys("06_reproduction_ledger")
    assert refs <= set(facts)
    assert set(facts) - refs <= {f"lg_{k}" for k in summary}           # the summary is glued whole
    assert facts["lg_rows"] == len(table) and facts["lg_sample_note"].startswith("a sample of 12")
    assert facts["lg_nc_model_rows"] == table.loc[table["status"] == "not checkable", "section"].str.startswith(
        tuple(f"Table {i}" for i in range(4, 9))).sum() > 0
