"""The chapter helpers of kokoro_nb.describe.stats: hand-made cases with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import kokoro_nb
from kokoro_nb.describe import inference, profiles, stats, variables
from kokoro_nb.schema import FLAG_KEYS, ITEM_CODES

TOL = 1e-9


def dialogues(rows):
    """Build a dialogue table from (items_sum_spec, flags, score) rows; items fill D1..D20."""
    out = []
    for i, (items, flags, score) in enumerate(rows):
        rec = {"dialogue_id": str(i), "score": score, **dict(zip(ITEM_CODES, items))}
        rec.update({k: k in flags for k in FLAG_KEYS})
        out.append(rec)
    df = pd.DataFrame(out)
    df[list(ITEM_CODES)] = df[list(ITEM_CODES)].astype("Int8")
    df["score"] = df["score"].astype("Int16")
    return df


FIVE = [5] * 20                 # sum 100
ODD = [3] * 19 + [4]            # sum 61


@pytest.mark.parametrize("items, flags, score, rule, follows", [
    (FIVE, (), 100, "item sum (no flag)", True),
    (FIVE, (), 99, "item sum (no flag)", False),
    (ODD, ("unwilling_to_continue",), 30, "halve (flag 3)", True),            # floor(61 / 2)
    (ODD, ("unwilling_to_continue",), 31, "halve (flag 3)", False),           # ceil is not the rule
    (FIVE, ("harmful_due_to_ignorance",), 0, "zero (flag 1 or 2)", True),
    (FIVE, ("other_potentially_unethical", "unwilling_to_continue"), 0, "zero (flag 1 or 2)", True),
    (FIVE, ("harmful_due_to_ignorance",), 50, "zero (flag 1 or 2)", False),
])
def test_score_rule_check_cases(items, flags, score, rule, follows):
    row = stats.score_rule_check(dialogues([(items, flags, score)])).iloc[0]
    assert row["rule"] == rule and bool(row["follows"]) is follows


def test_score_rule_summary_counts_rounding():
    d = dialogues([(FIVE, (), 100), (ODD, ("unwilling_to_continue",), 30), (ODD, ("unwilling_to_continue",), 31),
                   (FIVE, ("harmful_due_to_ignorance",), 0)])
    s = stats.score_rule_summary(d)
    assert s.loc["halve (flag 3)", "dialogues"] == 2 and s.loc["halve (flag 3)", "follows"] == 1
    assert s.loc["halve (flag 3)", "odd_item_sum"] == 2
    assert s.loc["halve (flag 3)", "odd_floor"] == 1 and s.loc["halve (flag 3)", "odd_ceil"] == 1
    assert s.loc["item sum (no flag)", "differs"] == 0 and s.loc["zero (flag 1 or 2)", "follows"] == 1


def test_score_shape_left_skew_and_modes():
    rng = np.random.default_rng(0)
    left = np.clip(100 - rng.exponential(15, 2000), 0, 100).round()
    d = pd.DataFrame({"score": left, **{k: False for k in FLAG_KEYS}})
    shape = stats.score_shape(d)
    assert shape["skew"] < 0 and shape["mean_minus_median"] < 0 and shape["n_modes"] >= 1
    two = np.concatenate([rng.normal(20, 4, 1000), rng.normal(80, 4, 1000)]).clip(0, 100)
    assert stats.score_shape(pd.DataFrame({"score": two, **{k: False for k in FLAG_KEYS}}))["n_modes"] == 2
    one = rng.normal(60, 10, 2000).clip(0, 100)
    assert stats.score_shape(pd.DataFrame({"score": one, **{k: False for k in FLAG_KEYS}}))["n_modes"] == 1


def test_topic_score_test_detects_a_difference_and_guards_small_groups():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"topic": ["a"] * 50 + ["b"] * 50 + ["c"] * 2,
                      "score": np.concatenate([rng.normal(40, 5, 50), rng.normal(70, 5, 50), [50, 60]])})
    kw = inference.topic_score_test(d)
    assert kw["left_out"] == ["c"] and kw["df"] == 1 and kw["p"] < 1e-10 and 0 < kw["epsilon2"] <= 1
    assert np.isnan(inference.topic_score_test(d[d["topic"] == "a"])["H"])


@pytest.mark.parametrize("seed", range(5))
def test_resampled_spearman_equals_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 6, 40), rng.integers(0, 9, 40)
    idx = rng.integers(0, 40, (6, 40))
    gx, gy = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
    ours = inference._resample_spearman(gx, gy, idx)
    theirs = [sps.spearmanr(x[i], y[i]).statistic for i in idx]
    np.testing.assert_allclose(ours, theirs, atol=TOL)


def test_bootstrap_spearman_interval_and_seed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    f = pd.DataFrame({"x": x, "noise": rng.normal(size=300), "score": x + rng.normal(size=300)})
    f.loc[:9, "noise"] = np.nan
    a = inference.bootstrap_spearman(f, n_resamples=300, seed=3)
    b = inference.bootstrap_spearman(f, n_resamples=300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc["x", "lo"] < a.loc["x", "rho"] < a.loc["x", "hi"] and a.loc["x", "lo"] > 0.4
    assert a.loc["noise", "n"] == 290 and a.loc["noise", "lo"] < 0 < a.loc["noise", "hi"]


def test_item_correlation_facts():
    rng = np.random.default_rng(4)
    base = rng.integers(0, 6, 200)
    d = pd.DataFrame({c: base if i < 10 else rng.integers(0, 6, 200) for i, c in enumerate(ITEM_CODES)})
    facts = stats.item_correlation_facts(stats.item_correlations(d))
    assert facts["pairs"] == 190
    assert facts["share_above"] == pytest.approx(45 / 190)   # the 10 identical items form 45 pairs
    assert set(facts["top3"]["D1"]) <= set(ITEM_CODES[:10])


def _crossed_sample(seed=0, n=400, raters=20, counselors=15, sd=(6.0, 3.0, 5.0)):
    rng = np.random.default_rng(seed)
    r, c = rng.integers(0, raters, n), rng.integers(0, counselors, n)
    y = 60 + rng.normal(0, sd[0], raters)[r] + rng.normal(0, sd[1], counselors)[c] + rng.normal(0, sd[2], n)
    return pd.DataFrame({"y": y, "r": r, "c": c})


def test_crossed_variance_components_match_statsmodels():
    import statsmodels.formula.api as smf
    df = _crossed_sample()
    ours = inference.crossed_variance_components(df["y"], {"r": df["r"].to_numpy(), "c": df["c"].to_numpy()})
    df["g"] = 1
    sm = smf.mixedlm("y ~ 1", df, groups="g", vc_formula={"r": "0 + C(r)", "c": "0 + C(c)"}).fit(reml=True)
    theirs = dict(zip(sm.model.exog_vc.names, sm.vcomp))
    assert ours["converged"]
    assert ours["variances"]["r"] == pytest.approx(theirs["r"], rel=2e-3)
    assert ours["variances"]["c"] == pytest.approx(theirs["c"], rel=2e-3)
    assert ours["variances"]["residual"] == pytest.approx(sm.scale, rel=2e-3)
    assert ours["beta"][0] == pytest.approx(sm.fe_params["Intercept"], rel=1e-4)


def test_variance_decomposition_shares_follow_the_simulation():
    df = _crossed_sample(seed=1, n=3000, raters=60, counselors=50, sd=(8.0, 1.0, 4.0))
    d = pd.DataFrame({"score": df["y"], "client_id": df["r"], "counselor_id": df["c"],
                      **{k: [3] * len(df) for k in ITEM_CODES}})
    vc = inference.score_variance_decomposition(d)
    assert list(vc.index) == ["client-role rater", "counselor", "residual"]
    assert vc["share"].sum() == pytest.approx(1)
    assert vc.loc["client-role rater", "share"] > 0.6 > vc.loc["counselor", "share"]


def test_feature_regression_recovers_sign_and_uses_clusters():
    rng = np.random.default_rng(5)
    n = 600
    f = pd.DataFrame({name: rng.lognormal(3, 0.5, n) for name in variables.FEATURES}, index=[str(i) for i in range(n)])
    f["score"] = 60 + 5 * np.log1p(f["client_total_chars"]) + rng.normal(0, 2, n)
    d = pd.DataFrame({"dialogue_id": f.index, "client_id": rng.integers(0, 30, n), "counselor_id": rng.integers(0, 25, n)})
    res, tidy = inference.feature_regression(f, d)
    assert tidy.attrs["cov_type"].startswith("two-way cluster")
    assert tidy.loc["client_total_chars", "lo"] > 0
    assert tidy.loc["counselor_total_chars", "lo"] < 0 < tidy.loc["counselor_total_chars", "hi"]
    few = d.assign(client_id=d["client_id"] % 3)
    assert inference.feature_regression(f, few)[1].attrs["cov_type"] == "HC3"


def test_labels():
    assert variables.label("topic", "School Issues", "ja") == "学校問題"
    assert variables.label("item", "D17", "en") == "Clarified issues clearly"
    assert variables.label("feature", "client_total_chars", "ja") == variables.FEATURES_JA["client_total_chars"]
    with pytest.raises(ValueError, match="lang"):
        variables.label("topic", "School Issues", "fr")


def test_profile_labels_and_excerpt(synthetic_kokorochat_dir, synthetic_psy_insight_dir):
    kc = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    p = profiles.corpus_profile(kc)
    assert p["dialogues"] == 20 and p["score_items"] == 20 and p["language"] == "Japanese" and p["has_score"]
    assert p["avg_utterances"] == pytest.approx(len(kc.utterances) / 20)
    psy = kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)
    pp = profiles.corpus_profile(psy)
    assert pp["score_items"] is None and not pp["has_score"] and pp["language"] == "English, Chinese"
    assert sum(s for _, s in profiles.corpus_profile(psy, top=99)["top_topics"]) == pytest.approx(100)
    dist = profiles.label_distribution(psy, "strategy")
    manual = psy.utterances["strategy"].dropna().str.split("|").explode().value_counts()
    assert dist["count"].sum() == manual.sum()
    assert dist.groupby("language")["percent"].sum().round(9).eq(100).all()
    ex = profiles.example_excerpt(kc, n_messages=4, max_chars=5)
    assert len(ex) == 4 and ex["dialogue_id"].nunique() == 1 and (ex["text"].str.len() <= 6).all()
