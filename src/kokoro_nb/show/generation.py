"""What the generation chapter shows (12): the prompts, the run and its score beside Table 4."""
from __future__ import annotations

from kokoro_nb import generate, published
from kokoro_nb.show.training import drive_output_dir  # noqa: F401  (the chapter's Colab Drive cell)

FINE_TUNED = ("Kokoro-Low", "Kokoro-High", "Kokoro-Full")


def prompt_facts(test_ids, prompts) -> dict[str, object]:
    """Glue keys of the generation targets: sessions, turns, mean number of earlier turns per prompt."""
    mean_history = float(sum(len(p["messages"]) - 1 for p in prompts) / max(len(prompts), 1))
    return {"gen_dialogues": len(test_ids), "gen_turns": len(prompts), "gen_mean_history": mean_history}


def run_facts(info: dict, seconds: float) -> dict[str, object]:
    """Glue keys of the generation run: replies written and wall-clock seconds."""
    return {"gen_written": info["written"], "gen_seconds": float(seconds)}


def quote_facts(cut_chars: int) -> dict[str, object]:
    """Glue keys of the quoted references: where they are cut, and what stands for a missing English."""
    return {"gen_cut_chars": cut_chars, "gen_no_english": generate.NO_ENGLISH}


def score_facts(scores: dict) -> dict[str, object]:
    """Glue keys of this run's BLEU-1 and the range of the paper's fine-tuned models' (Table 4)."""
    table4 = published.load()["table4_response_generation"]
    bleu1 = [table4[k][0] for k in FINE_TUNED]
    return {"gen_bleu1": float(scores["BLEU-1"]), "gen_paper_bleu1_min": float(min(bleu1)),
            "gen_paper_bleu1_max": float(max(bleu1))}
