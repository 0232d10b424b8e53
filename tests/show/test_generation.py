"""show.generation: the facts of the generation chapter (12)."""
from __future__ import annotations

from kokoro_nb import generate
from kokoro_nb import published
from kokoro_nb.show import generation, training

PROMPTS = [{"messages": [{"role": "system"}, {"role": "user"}]},
           {"messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}, {"role": "user"}]}]


def all_facts():
    return (generation.prompt_facts(["d1"], PROMPTS) | generation.run_facts({"written": 2}, 1.5)
            | generation.quote_facts(60) | generation.score_facts({"BLEU-1": 3.25}))


def test_facts_cover_the_chapter_prose(prose_keys):
    assert set(all_facts()) == prose_keys("12_generate_responses")


def test_prompt_facts_mean_history_and_no_prompts():
    facts = generation.prompt_facts(["d1"], PROMPTS)
    assert (facts["gen_dialogues"], facts["gen_turns"], facts["gen_mean_history"]) == (1, 2, 2.0)
    assert generation.prompt_facts([], [])["gen_mean_history"] == 0.0   # no division by zero


def test_score_facts_range_of_the_fine_tuned_models():
    table4 = published.load()["table4_response_generation"]
    bleu1 = [table4[k][0] for k in generation.FINE_TUNED]
    facts = all_facts()
    assert facts["gen_paper_bleu1_min"] == min(bleu1) < facts["gen_paper_bleu1_max"] == max(bleu1)
    assert facts["gen_bleu1"] == 3.25 and facts["gen_no_english"] == generate.NO_ENGLISH


def test_drive_helper_is_the_training_one():
    assert generation.drive_output_dir is training.drive_output_dir
