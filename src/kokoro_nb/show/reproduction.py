"""Chapter 06 (reproduction ledger): the ledger's three tables and the sentences that sum it up."""
from __future__ import annotations

import pandas as pd

from kokoro_nb import published

STATUS_COLOURS = {"exact": "background-color: #d9f0d3", "within rounding": "background-color: #edf8e9",
                  "holds": "background-color: #e5f5f9", "differs": "background-color: #fde0dd"}
# On the full release exactly these many documented differences still differ (prose of known_text).
FULL_RELEASE_KNOWN = 2
MODEL_TABLES = r"Table [4-8]"


def sample_note(n_dialogues: int, sample) -> str:
    """What the ledger was computed on."""
    return f"a sample of {n_dialogues:,} dialogues, so counts differ by design" if sample else "the full release"


def known_text(table: pd.DataFrame, sample) -> str:
    """The sentence on the documented differences (``paper_values.yaml: known_differences``)."""
    known = table[table["key"].isin(published.value("known_differences"))]
    still = known[known["status"] == "differs"]
    if len(still) == len(known) == FULL_RELEASE_KNOWN and not sample:
        return ("On the full release two published numbers differ for a known reason: the paper calls the "
                "score distribution right-skewed where the released scores are skewed left, and one share printed "
                "only in the paper's Figure 2 is a tenth of a percentage point off.")
    return (f"{len(still)} of the {len(known)} documented differences differ on this data"
            + ("" if not sample else "; on a sample many more rows differ, because counts scale with the sample")
            + ".")


def check_text(unexpected: int) -> str:
    """Whether every row that should hold does (*unexpected*: rows that differ without a note)."""
    if unexpected == 0:
        return "every row that should hold does"
    return f"{unexpected} row(s) differ without a documented reason, and `kokoro-nb reproduce --check` fails"


def not_checkable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the release cannot check."""
    return table[table["status"] == "not checkable"]


def facts(table: pd.DataFrame, summary: dict, n_dialogues: int, sample) -> dict:
    """Every glue key of the chapter's prose."""
    return {f"lg_{key}": value for key, value in summary.items()} | {
        "lg_sample_note": sample_note(n_dialogues, sample),
        "lg_known_text": known_text(table, sample),
        "lg_check_text": check_text(summary["unexpected"]),
        "lg_nc_model_rows": int(not_checkable(table)["section"].str.match(MODEL_TABLES).sum())}


def checked_table(table: pd.DataFrame):
    """The rows the release checks, coloured by status, each linked to its chapter."""
    checked = table[table["status"] != "not checkable"].copy()
    checked["chapter"] = [f'<a href="{link}">{name.split("_", 1)[0]}</a>' if link else ""
                          for name, link in zip(checked["chapter"], checked["link"])]
    shown = checked[["section", "quantity", "paper", "reproduced", "difference", "status", "chapter"]]
    return (shown.style.map(lambda s: STATUS_COLOURS.get(s, ""), subset=["status"])
            .format({"difference": lambda v: "" if v != v else (f"{v:+g}" if v else "0")}).hide(axis="index"))


def notes_table(table: pd.DataFrame):
    """Checked rows that carry a note (the known differences)."""
    notes = table.loc[(table["note"] != "") & (table["status"] != "not checkable"),
                      ["quantity", "paper", "reproduced", "status", "note"]]
    return notes.style.hide(axis="index")


def not_checkable_table(table: pd.DataFrame):
    """The unchecked numbers grouped by section and reason, with an example and the chapter."""
    groups = not_checkable(table).groupby(["section", "note"], sort=False).agg(
        numbers=("quantity", "size"), example=("quantity", "first"), chapter=("chapter", "first")).reset_index()
    groups["chapter"] = [f'<a href="{c}.html">{c.split("_", 1)[0]}</a>' if c else "" for c in groups["chapter"]]
    groups = groups.rename(columns={"note": "why not"})
    return groups[["section", "numbers", "example", "why not", "chapter"]].style.hide(axis="index")
