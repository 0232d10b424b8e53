"""What the response-evaluation chapter shows (20): test turns, baselines beside Table 4, significance, protocol."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from kokoro_nb import published
from kokoro_nb.evaluate import baselines
from kokoro_nb.evaluate.metrics import PER_TURN_METRICS
from kokoro_nb.show import plotting

FIGURE_METRICS = ["BLEU-1", "BLEU-4", "ROUGE-L", "Dist-2"]


def test_facts(test_ids, turns) -> dict[str, object]:
    """Glue keys of the test set: the paper's size, ours, its turns and their mean length."""
    return {"ev_paper_test": published.value("response_generation_splits.test.dialogues"),
            "ev_n_dialogues": len(test_ids), "ev_n_turns": len(turns),
            "ev_ref_chars": float(turns["reference"].str.len().mean())}


def protocol_facts(tokenizer, example: str, n_boot: int) -> dict[str, object]:
    """Glue keys of the protocol: *example* split by *tokenizer*, and the bootstrap resamples."""
    return {"ev_example_tokens": " | ".join(tokenizer(example)), "ev_n_boot": n_boot}


def pool_facts(info: dict) -> dict[str, object]:
    """Glue keys of the retrieval pool and the constant and copy baselines (*info*: ``response_baselines``)."""
    facts = {f"ev_{k}": info[k] for k in ("pool_dialogues", "pool_of", "pool_turns", "copy_empty")}
    return facts | {"ev_constant": info["constant_reply"]}


def above_or_below(value: float, reference: float) -> str:
    """Return "above" when *value* exceeds *reference*, else "below"."""
    return "above" if value > reference else "below"


def baseline_facts(results: dict) -> dict[str, object]:
    """Glue keys that set the baselines (*results*: name -> ``ResponseResult``) beside the paper's Table 4."""
    p4 = published.value("table4_response_generation")
    cols = p4["columns"]
    cited = lambda row, metric: p4[row][cols.index(metric)]  # noqa: E731
    copy = results["copy"].scores
    return {"ev_copy_b1": copy["BLEU-1"], "ev_copy_rl": copy["ROUGE-L"],
            "ev_retr_b1": results["retrieval"].scores["BLEU-1"],
            "ev_llama_b1": cited("Llama-3.1", "BLEU-1"), "ev_gpt_b1": cited("GPT-4o", "BLEU-1"),
            "ev_high_b1": cited("Kokoro-High", "BLEU-1"), "ev_llama_rl": cited("Llama-3.1", "ROUGE-L"),
            "ev_high_rl": cited("Kokoro-High", "ROUGE-L"),
            "ev_copy_vs_llama": above_or_below(copy["BLEU-1"], cited("Llama-3.1", "BLEU-1")),
            "ev_ref_d1": results["copy"].secondary["reference Dist-1"],
            "ev_ref_d2": results["copy"].secondary["reference Dist-2"],
            "ev_high_d2": cited("Kokoro-High", "Dist-2")}


def table4_figure(both, lang: str = "en"):
    """Four bar panels (BLEU-1, BLEU-4, ROUGE-L, Dist-2), one bar per system (*both*: ``compare_table4``)."""
    long = (both.reset_index(names="system")
            .melt(id_vars=["system", "source"], value_vars=FIGURE_METRICS, var_name="metric").dropna())
    long["system"] = long["system"] + long["source"].map(lambda s: "" if s == baselines.COMPUTED else " (paper)")
    g = sns.catplot(data=long, x="value", y="system", col="metric", kind="bar", sharex=False,
                    height=3.6, aspect=0.8, hue="source", legend=False)
    g.set_titles("{col_name}")
    g.set_axis_labels(plotting.label(lang, en="score (×100)", ja="スコア（×100）"), "")
    return g.figure


def subset_facts(sub_info: dict) -> dict[str, object]:
    """Glue keys of the Low/High/Full pools (*sub_info*: ``subset_retrieval``)."""
    return {"ev_sub_pool": sub_info["full"]["pool_dialogues"],
            "ev_sub_low_n": sub_info["low"]["subset_dialogues"],
            "ev_sub_high_n": sub_info["high"]["subset_dialogues"]}


def significance_word(significant: bool) -> str:
    """Return "is" for a significant difference, else "is not"."""
    return "is" if significant else "is not"


def better_or_worse(delta: float) -> str:
    """Return "worse" when B minus A is negative, else "better"."""
    return "worse" if delta < 0 else "better"


def ahead_or_behind(high: float, low: float) -> str:
    """Return "ahead of" when *high* exceeds *low*, else "behind"."""
    return "ahead of" if high > low else "behind"


def significance_facts(sig, results: dict, paper_rows, n_boot: int, n_trials: int) -> dict[str, object]:
    """Glue keys of the paired tests (*sig*: ``significance.compare_results``) and the Low-High verdicts."""
    lh = sig.loc[("retrieval-low", "retrieval-high", "BLEU-1")]
    high, low = paper_rows.loc["Kokoro-High", "BLEU-1"], paper_rows.loc["Kokoro-Low", "BLEU-1"]
    lo, hi = results["retrieval"].ci["BLEU-1"]
    return {"ev_n_trials": n_trials,
            "ev_sig_lh_b1": float(lh["delta"]), "ev_sig_lh_p": float(lh["p_bootstrap"]),
            "ev_sig_lh_word": significance_word(lh["significant"]),
            "ev_sig_lh_dir": better_or_worse(lh["delta"]),
            "ev_paper_lh_dir": ahead_or_behind(high, low),
            "ev_sig_n": int(sig["significant"].sum()), "ev_p_floor": 1 / (n_boot + 1),
            "ev_sig_total": len(sig), "ev_sig_ci_width": float(hi - lo),
            "ev_paper_lh_b1": float(high - low)}


def sensitivity_facts(sens) -> dict[str, object]:
    """Glue keys of the protocol variants (*sens*: ``sensitivity_table``) for copy and constant."""
    c = sens.loc["copy"]
    const = sens.loc[("constant", "ja-unidic")]
    return {"ev_s_b4_word": float(c.loc["ja-unidic", "sentence BLEU-4"]),
            "ev_s_b4_char": float(c.loc["char", "sentence BLEU-4"]),
            "ev_s_cb4_word": float(c.loc["ja-unidic", "corpus BLEU-4"]),
            "ev_s_d2_pool": float(c.loc["ja-unidic", "Dist-2 pooled"]),
            "ev_s_d2_turn": float(c.loc["ja-unidic", "Dist-2 per turn"]),
            "ev_s_d1_char": float(c.loc["char", "Dist-1 pooled"]),
            "ev_s_const_cb1": float(const["corpus BLEU-1"]),
            "ev_s_const_sb1": float(const["sentence BLEU-1"])}


def significance_table(sig, pairs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 20's two views of the paired tests (*sig* from ``significance.compare_results``).

    Returns (marked, detail): *marked* has one row per pair "B − A" in the order of *pairs* and
    one column per per-turn metric, each cell the difference ×100 with " *" when both p-values
    are below 0.05; *detail* has the difference, its interval and both p-values per pair and metric.
    """
    rows = sig.reset_index()
    rows["pair"] = rows["system_b"] + " − " + rows["system_a"]
    rows["difference"] = [f"{d:+.2f}{' *' if s else ''}" for d, s in zip(rows["delta"], rows["significant"])]
    order = [f"{b} − {a}" for a, b in pairs]
    marked = rows.pivot(index="pair", columns="metric", values="difference").loc[order, list(PER_TURN_METRICS)]
    detail = rows.set_index(["pair", "metric"])[["delta", "delta_lo", "delta_hi", "p_bootstrap",
                                                 "p_randomization", "significant"]]
    return marked, detail
