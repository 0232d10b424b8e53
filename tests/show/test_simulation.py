"""show.simulation: the facts of the simulated-clients chapter (22)."""
from __future__ import annotations

import pytest

from kokoro_nb.evaluate import simulate
from kokoro_nb.show import simulation

USAGE = {"client": {"requests": 13}, "counselor": {"requests": 12}}


def test_facts_cover_the_chapter_prose(prose_keys):
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
