"""What the simulated-clients chapter shows (22): Table 7, the protocol, and the demo run's counts."""
from __future__ import annotations

import pandas as pd

from kokoro_nb.evaluate import simulate


def protocol_facts(table7) -> dict[str, object]:
    """Glue keys of Table 7 (*table7*: ``simulate.paper_table7``), the client's first message and the rubric's safety maximum."""
    return {"t7_high_auth": float(table7.loc["Kokoro-High", "Authenticity"]),
            "t7_high_safe": float(table7.loc["Kokoro-High", "Safety"]),
            "t7_cpsy_prof": float(table7.loc["CPsyCounX", "Professionalism"]),
            "sim_start_ja": simulate.CLIENT_START_JA.strip("（）"),
            "sim_cpsy_safe_max": simulate.CPSYCOUN_MAX["Safety"]}


def run_facts(info: dict, seconds: float) -> dict[str, object]:
    """Glue keys of a simulation run (*info*: ``simulate_dialogues``): dialogues, requests, seconds."""
    usage = info["usage"]
    return {"sim_seconds": float(seconds), "sim_written": info["written"],
            "sim_requests": usage["client"]["requests"] + usage["counselor"]["requests"]}


def dialogue_facts(records: list[dict]) -> dict[str, object]:
    """Glue key of the mean number of client turns per dialogue."""
    return {"sim_mean_client_turns": float(pd.Series([r["client_turns"] for r in records]).mean())}


def rerun_facts(again: dict) -> dict[str, object]:
    """Glue key of the requests a rerun over finished dialogues sent (it should send none)."""
    return {"sim_rerun_requests": sum(u["requests"] for u in again["usage"].values())}


def resume_facts(kept: int, resume_requests: int) -> dict[str, object]:
    """Glue keys of the interrupted run: dialogues kept, and requests the resumed run needed."""
    return {"sim_kept": kept, "sim_resume_requests": resume_requests}


def judge_facts(summary: dict) -> dict[str, object]:
    """Glue keys of the judge run (*summary*: ``judge_file``): dialogues read, verdicts parsed."""
    return {"sim_judged": summary["n_dialogues"], "sim_scored": summary["n_scored"]}
