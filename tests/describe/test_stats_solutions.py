"""Every hidden exercise solution of the statistics chapters (3, 4 and the ledger) runs, and
on the real data gives the answer its text claims."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kokoro_nb
from kokoro_book import sources
from kokoro_nb import published
from kokoro_nb.describe import inference, ledger, stats, variables

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ("03_scores", "04_correlations", "06_reproduction_ledger")


def solutions(name: str) -> dict[str, str]:
    """Return {exercise label: code} for the solutions of a chapter (the book's one extractor)."""
    return sources.exercise_solutions((ROOT / "notebooks" / f"{name}.md").read_text(encoding="utf-8"))


ALL = {label: code for name in CHAPTERS for label, code in solutions(name).items()}


def run(code: str, namespace: dict):
    """Execute *code*; return the value of its last line if that is an expression (as Jupyter shows it)."""
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<solution>", "exec"), namespace)  # noqa: S102 (the book's own code)
    return eval(compile(ast.Expression(last.value), "<solution>", "eval"), namespace) if last else None


def namespace(corpus, data_dir) -> dict:
    """The names a chapter has defined when its exercises come (see each chapter's set-up cell)."""
    return {"kokoro_nb": kokoro_nb, "stats": stats, "inference": inference, "variables": variables,
            "published": published, "ledger": ledger, "pd": pd, "np": np, "corpus": corpus,
            "d": corpus.dialogues, "features": variables.dialogue_features(corpus), "seed": 42,
            "data_dir": str(data_dir), "lang": "en"}


def test_every_chapter_has_its_solutions_found():
    assert set(solutions("03_scores")) == {"ex-sc-unflagged", "ex-sc-items", "ex-sc-boundary"}
    assert set(solutions("04_correlations")) == {"ex-co-kendall", "ex-co-halves", "ex-co-boot-vc"}
    assert set(solutions("06_reproduction_ledger")) == {"ex-lg-sample", "ex-lg-add"}
    assert all(ALL.values())                  # every solution has code a student can run


@pytest.mark.parametrize("label", sorted(k for k, v in ALL.items() if v))
def test_solution_runs_on_synthetic_data(label, synthetic_kokorochat_dir):
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    ns = namespace(corpus, synthetic_kokorochat_dir)
    if label == "ex-lg-sample":
        ns["data_dir"] = str(synthetic_kokorochat_dir)
    run(ALL[label].replace("sample=500", "sample=10"), ns)


def test_ex_lg_add_claims_hold_in_the_table_of_published_values():
    items = published.value("not_checkable.items")
    assert any("gender" in i["quantity"] and "no gender" in i["reason"] for i in items)
    assert published.value("participants.played_both_roles_share_over") == 0.8


def test_ex_lg_add_shows_the_gender_rows_and_the_both_roles_claim(synthetic_kokorochat_dir):
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    t = run(ALL["ex-lg-add"], namespace(corpus, synthetic_kokorochat_dir)).set_index("quantity")
    gender = t[t.index.str.contains("gender")]
    assert len(gender) >= 1 and (gender["status"] == "not checkable").all()
    assert gender["key"].str.startswith("not_checkable.items.").all()
    assert t.loc["participants who played both roles", "key"] == "participants.played_both_roles_share_over"


def test_ex_co_halves_splits_as_table_2(synthetic_kokorochat_dir):
    """The paper's Table 2: overall impression D1-D12 (12 items), counseling skills D13-D20 (8)."""
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    ns = namespace(corpus, synthetic_kokorochat_dir)
    rho = run(ALL["ex-co-halves"], ns)
    assert (len(ns["overall"]), len(ns["skills"])) == (12, 8)
    assert ns["overall"] == [f"D{i}" for i in range(1, 13)] and ns["skills"] == [f"D{i}" for i in range(13, 21)]
    groups = published.value("table2_feedback_groups")
    assert set(ns["skills"]) == {c for codes in groups["Evaluation of Counseling Skills"].values() for c in codes}
    assert -1 <= rho <= 1


# --------------------------------------------------------------------------- the claims, on real data

@pytest.fixture(scope="module")
def real_ns(real_corpus, kokorochat_dir):
    return namespace(real_corpus, kokorochat_dir)


@pytest.mark.realdata
def test_ex_sc_unflagged_centre_up_unimodal_skew_negative(real_ns):
    clean_summary = run(ALL["ex-sc-unflagged"], real_ns)
    full = stats.score_summary(real_ns["d"])
    assert clean_summary["mean"] > full["mean"] and clean_summary["median"] >= full["median"]
    assert clean_summary["skew"] < 0
    assert stats.score_shape(real_ns["clean"])["unimodal"]


@pytest.mark.realdata
def test_ex_sc_items_and_boundary_return_what_they_say(real_ns):
    means = run(ALL["ex-sc-items"], real_ns)
    assert means.is_monotonic_increasing and len(means) == 20
    assert means.index[0] == variables.label("item", "D4", "en")          # the chapter's lowest item
    ns = dict(real_ns)
    at_boundary, sizes = run(ALL["ex-sc-boundary"], ns)
    assert at_boundary == int(real_ns["d"]["score"].isin([69, 70]).sum())
    assert sizes[70] == (published.value("response_generation_splits.kokoro_low.dialogues"),
                         published.value("response_generation_splits.kokoro_high.dialogues"))


@pytest.mark.realdata
def test_ex_co_kendall_smaller_but_same_order(real_ns):
    tau = run(ALL["ex-co-kendall"], real_ns)
    f = real_ns["features"]
    rho = f.drop(columns="score").corrwith(f["score"], method="spearman").reindex(tau.index)
    assert (tau.abs() < rho.abs()).all()
    assert list(tau.abs().sort_values().index) == list(rho.abs().sort_values().index)
    assert list(tau.sort_values().index) == list(rho.sort_values().index)


@pytest.mark.realdata
def test_ex_co_halves_correlate_strongly(real_ns):
    assert 0.8 < run(ALL["ex-co-halves"], real_ns) < 1


@pytest.mark.realdata
def test_ex_lg_add_both_roles_holds(real_ns):
    t = run(ALL["ex-lg-add"], real_ns).set_index("quantity")
    assert t.loc["participants who played both roles", "status"] == "holds"


@pytest.mark.realdata
def test_ex_lg_sample_what_survives_sampling(real_ns):
    survived = run(ALL["ex-lg-sample"], real_ns)
    sections = set(survived["section"])
    assert {"Section 4 filters", "Appendix A.3", "Section 3.3", "Section 3.1", "Table 1", "Figure 11"} <= sections
    assert "Table 3" not in sections                                   # counts scale with the sample
    assert not survived["quantity"].isin(["first message", "last message"]).all()
    kept = set(survived["quantity"])
    assert "first message" not in kept or "last message" not in kept   # rarely both dates


def test_ex_co_boot_vc_gives_an_interval(synthetic_kokorochat_dir):
    """Fifty refits: run on the synthetic corpus only (on the release it takes about a minute)."""
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    lo, hi = run(ALL["ex-co-boot-vc"], namespace(corpus, synthetic_kokorochat_dir))
    assert 0 <= lo <= hi <= 1
