"""Cluster bootstrap, the Figure 4 JSON, the REML log-likelihood and the mode count of kokoro_nb.describe.stats."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kokoro_nb.describe import inference, stats, variables
from kokoro_nb.cli import main


def planted_clusters(seed=0, clients=60, per_client=40, within_sd=0.3):
    """Rows that share a client share most of x and y: a planted cluster structure.

    The client effect drives both x and y, so rho is clearly positive, but there are only
    *clients* independent draws behind the ``clients * per_client`` rows.
    """
    rng = np.random.default_rng(seed)
    client = np.repeat(np.arange(clients), per_client)
    u = rng.normal(size=clients)[client]
    x = u + rng.normal(0, within_sd, len(client))
    y = 0.5 * u + rng.normal(0, 1.0, clients)[client] + rng.normal(0, within_sd, len(client))
    idx = [str(i) for i in range(len(client))]
    f = pd.DataFrame({"x": x, "score": y}, index=idx)
    return f, pd.Series(client, index=idx, name="client")


def width(table, feature="x"):
    return float(table.loc[feature, "hi"] - table.loc[feature, "lo"])


def test_client_resampling_widens_the_interval_under_planted_clusters():
    f, client = planted_clusters()
    by_row = inference.bootstrap_spearman(f, n_resamples=400, seed=1)
    by_client = inference.bootstrap_spearman(f, clusters=client, n_resamples=400, seed=1)
    assert by_row.loc["x", "rho"] == by_client.loc["x", "rho"]            # same point estimate
    assert by_client.loc["x", "clusters"] == 60 and by_row.loc["x", "clusters"] == 2400
    assert by_client.attrs["cluster"] == "client" and by_row.attrs["cluster"] == "dialogue"
    assert width(by_client) > 3 * width(by_row)                           # rows are not independent
    assert by_client.loc["x", "lo"] < by_client.loc["x", "rho"] < by_client.loc["x", "hi"]


def test_without_cluster_structure_both_intervals_agree():
    rng = np.random.default_rng(3)
    n = 2000
    x = rng.normal(size=n)
    idx = [str(i) for i in range(n)]
    f = pd.DataFrame({"x": x, "score": x + rng.normal(0, 2, n)}, index=idx)
    client = pd.Series(rng.integers(0, 200, n), index=idx, name="client")  # labels unrelated to the data
    a = inference.bootstrap_spearman(f, n_resamples=400, seed=2)
    b = inference.bootstrap_spearman(f, clusters=client, n_resamples=400, seed=2)
    assert 0.7 < width(b) / width(a) < 1.4


def test_singleton_clusters_are_the_row_bootstrap():
    f, _ = planted_clusters(clients=30, per_client=5)
    one_each = pd.Series(np.arange(len(f)), index=f.index, name="dialogue")
    a = inference.bootstrap_spearman(f, n_resamples=600, seed=4)
    b = inference.bootstrap_spearman(f, clusters=one_each, n_resamples=600, seed=4)
    assert abs(width(a) - width(b)) < 0.25 * width(a)


def test_cluster_replicates_are_spearman_of_the_drawn_rows():
    f, client = planted_clusters(clients=8, per_client=3)
    gx = np.unique(f["x"], return_inverse=True)[1]
    gy = np.unique(f["score"], return_inverse=True)[1]
    codes = pd.factorize(client)[0]
    reps = inference._cluster_spearman(gx, gy, codes, np.random.default_rng(7), 5)
    rng = np.random.default_rng(7)
    for r in reps:
        draw = rng.integers(0, 8, 8)
        rows = np.concatenate([np.flatnonzero(codes == c) for c in draw])
        assert r == pytest.approx(sps.spearmanr(f["x"].to_numpy()[rows], f["score"].to_numpy()[rows]).statistic)


def test_missing_cluster_label_and_unknown_unit_are_errors():
    f, client = planted_clusters(clients=5, per_client=4)
    with pytest.raises(ValueError, match="no cluster label"):
        inference.bootstrap_spearman(f, clusters=client.iloc[:-1], n_resamples=10)
    with pytest.raises(ValueError, match="client, counselor, dialogue"):
        inference.cluster_labels(pd.DataFrame({"dialogue_id": ["a"]}), "pair")


@pytest.mark.parametrize("unit", ["client", "counselor", "dialogue"])
def test_stats_json_reports_each_figure4_feature_as_an_object(synthetic_kokorochat_dir, capsys, unit):
    assert main(["stats", "--data", str(synthetic_kokorochat_dir), "--json", "--cluster", unit,
                 "--n-resamples", "50"]) == 0
    out = json.loads(capsys.readouterr().out)["feature_score_spearman"]
    assert set(out) == set(variables.FEATURES)
    for r in out.values():
        assert r["cluster"] == unit and len(r["ci"]) == 2 and r["n_resamples"] == 50
        assert r["ci"][0] <= r["ci"][1] and -1 <= r["rho"] <= 1
    with pytest.raises(SystemExit) as exc:          # argparse: usage error, exit 2
        main(["stats", "--data", str(synthetic_kokorochat_dir), "--cluster", "pair"])
    assert exc.value.code == 2


def test_reml_loglikelihood_matches_statsmodels_and_the_dense_formula():
    import statsmodels.formula.api as smf
    rng = np.random.default_rng(0)
    n = 300
    r, c = rng.integers(0, 15, n), rng.integers(0, 12, n)
    y = 60 + rng.normal(0, 6, 15)[r] + rng.normal(0, 3, 12)[c] + rng.normal(0, 5, n)
    ours = inference.crossed_variance_components(y, {"r": r, "c": c})
    df = pd.DataFrame({"y": y, "r": r, "c": c, "g": 1})
    sm = smf.mixedlm("y ~ 1", df, groups="g", vc_formula={"r": "0 + C(r)", "c": "0 + C(c)"}).fit(reml=True)
    assert ours["reml_llf"] == pytest.approx(sm.llf, abs=1e-4)
    v = ours["variances"]
    Zr, Zc = np.eye(15)[r], np.eye(12)[c]
    V = v["r"] * Zr @ Zr.T + v["c"] * Zc @ Zc.T + v["residual"] * np.eye(n)
    Vi = np.linalg.inv(V)
    XVX = Vi.sum()
    e = y - Vi.sum(axis=0) @ y / XVX
    dense = -0.5 * ((n - 1) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + np.log(XVX) + e @ Vi @ e)
    assert ours["reml_llf"] == pytest.approx(dense, abs=1e-6)


@pytest.mark.parametrize("bandwidth", stats.MODE_BANDWIDTHS)
def test_mode_count_ignores_a_small_spike_and_finds_two_humps(bandwidth):
    rng = np.random.default_rng(5)
    one = np.r_[rng.normal(62, 15, 3000).clip(0, 100), np.zeros(12)]       # a few sanctioned zeros
    assert len(stats.count_modes(one, bandwidth)) == 1
    two = np.r_[rng.normal(25, 6, 1500), rng.normal(75, 6, 1500)]
    assert len(stats.count_modes(two, bandwidth)) == 2


@pytest.mark.realdata
def test_real_client_intervals_are_wider_as_the_chapter_says(real_corpus):
    """Chapter 4 prints these numbers; on the release the client bootstrap is 1.2-5 times wider."""
    f = variables.dialogue_features(real_corpus)
    by_client = inference.bootstrap_spearman(f, clusters=inference.cluster_labels(real_corpus.dialogues, "client"),
                                         n_resamples=1000, seed=42)
    by_dialogue = inference.bootstrap_spearman(f, n_resamples=1000, seed=42)
    ratio = (by_client["hi"] - by_client["lo"]) / (by_dialogue["hi"] - by_dialogue["lo"])
    assert ratio.min() > 1.2 and 3 < ratio.max() < 5
    lo, hi = by_client.loc["client_total_chars", ["lo", "hi"]]
    assert 0.32 < lo < 0.36 and 0.48 < hi < 0.52                   # about [0.335, 0.505]
    assert by_client["clusters"].eq(463).all()
