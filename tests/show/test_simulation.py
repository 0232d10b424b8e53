"""show.simulation: the facts of the simulated-clients chapter (22)."""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from kokoro_nb.evaluate import simulate
from kokoro_nb.show import simulation

ROOT = Path(__file__).resolve().parents[2]
_GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")
_GLUE_DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::\w+)?\}\s+(\S+)", re.M)


def prose_keys(chapter: str) -> set[str]:
    """Return the glue keys the chapter's prose refers to, figures left out."""
    nb = jupytext.read(ROOT / "notebooks" / f"{chapter}.md")
    refs = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            refs |= set(_GLUE_ROLE.findall(cell.source)) | set(_GLUE_DIRECTIVE.findall(cell.source))
    return {r for r in refs if not r.startswith("fig-")}


USAGE = {"client": {"requests": 13}, "counselor": {"requests": 12}}


def test_facts_cover_the_chapter_prose():
    facts = (simulation.protocol_facts(simulate.paper_table7())
             | simulation.run_facts({"written": 2, "usage": USAGE}, 0.25)
             | simulation.dialogue_facts([{"client_turns": 13}, {"client_turns": 14}])
             | simulation.rerun_facts({"usage": USAGE}) | simulation.resume_facts(1, 7)
             | simulation.judge_facts({"n_dialogues": 2, "n_scored": 2}))
    assert set(facts) == prose_keys("22_simulated_clients")
    assert facts["sim_requests"] == 25 and facts["sim_mean_client_turns"] == 13.5


def test_protocol_facts_from_table7_and_the_prompt():
    facts = simulation.protocol_facts(simulate.paper_table7())
    assert facts["t7_high_safe"] == pytest.approx(float(simulate.paper_table7().loc["Kokoro-High", "Safety"]))
    assert facts["t7_high_safe"] > facts["sim_cpsy_safe_max"] == 1     # the chapter's point: not the rubric's scale
    assert not facts["sim_start_ja"].startswith("（") and not facts["sim_start_ja"].endswith("）")
    assert facts["sim_start_ja"] in simulate.CLIENT_START_JA


def test_rerun_requests_count_every_endpoint():
    assert simulation.rerun_facts({"usage": {"client": {"requests": 0}, "counselor": {"requests": 0}}}) == \
        {"sim_rerun_requests": 0}
    assert simulation.rerun_facts({"usage": USAGE})["sim_rerun_requests"] == 25
