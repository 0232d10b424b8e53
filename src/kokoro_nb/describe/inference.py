"""Inference on the section-4 statistics: bootstrap intervals, variance components, regression, tests.

Each function says how sure a descriptive number (:mod:`.stats`) is, or what explains it:
cluster bootstraps of Spearman's rho, crossed random effects of rater and counselor, a
cluster-robust regression on the Figure-4 features, and the topic test. The numbers
themselves are computed in :mod:`.stats`.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
from scipy import linalg, optimize
from scipy import stats as sps

from kokoro_nb.data.corpus import Corpus
from kokoro_nb.describe.variables import FEATURES, dialogue_features, item_sum


def topic_score_test(dialogues: pd.DataFrame, min_group: int = 5) -> dict:
    """Kruskal-Wallis test of the score across topics (topics with < *min_group* dialogues left out).

    Returns H, its p value, the degrees of freedom, epsilon-squared (H / (n - 1), an effect size
    between 0 and 1) and the topics used; NaN statistics when fewer than two topics qualify.
    """
    d = dialogues[["topic", "score"]].dropna()
    sizes = d.groupby("topic").size()
    used = sorted(sizes[sizes >= min_group].index)
    groups = [d.loc[d["topic"] == t, "score"].astype(float).to_numpy() for t in used]
    n = int(sum(len(g) for g in groups))
    out = {"topics": used, "left_out": sorted(set(sizes.index) - set(used)), "n": n,
           "df": max(len(used) - 1, 0), "H": float("nan"), "p": float("nan"), "epsilon2": float("nan")}
    if len(groups) >= 2 and n > len(groups) and np.ptp(np.concatenate(groups)) > 0:
        h, p = sps.kruskal(*groups)
        out.update(H=float(h), p=float(p), epsilon2=float(h / (n - 1)))
    return out


CLUSTER_UNITS = {"client": "client_id", "counselor": "counselor_id", "dialogue": "dialogue_id"}


def cluster_labels(dialogues: pd.DataFrame, unit: str) -> pd.Series:
    """Return each dialogue's resampling unit (``client``, ``counselor`` or ``dialogue``) by dialogue id.

    A client rates many dialogues and a counselor holds many, so their dialogues are not
    independent draws; a bootstrap that resamples whole clients respects that.
    """
    if unit not in CLUSTER_UNITS:
        raise ValueError(f"cluster must be one of {', '.join(CLUSTER_UNITS)}, got {unit!r}")
    ids = dialogues["dialogue_id"].astype(str)
    return pd.Series(dialogues[CLUSTER_UNITS[unit]].to_numpy(), index=ids.to_numpy(), name=unit)


def bootstrap_spearman(features: pd.DataFrame, target: str = "score", *, clusters: pd.Series | None = None,
                       n_resamples: int = 1000, seed: int = 42, confidence: float = 0.95,
                       chunk: int = 250) -> pd.DataFrame:
    """Return Spearman's rho of each feature with *target* and a percentile bootstrap interval.

    Without *clusters*, dialogues (rows) are resampled with replacement. With *clusters* (a
    label per row, aligned on the index, e.g. :func:`cluster_labels` by ``client``), whole
    clusters are drawn with replacement and all their rows come along, so that rows that share
    a client count as one draw. Every replicate is a true Spearman coefficient: mid-ranks come
    from per-value counts (``bincount``), which avoids sorting each resample. Columns: ``n``
    (rows), ``clusters`` (units resampled), ``rho``, ``lo``, ``hi``; ``attrs["cluster"]`` names
    the unit.
    """
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    unit = "dialogue" if clusters is None else (clusters.name or "cluster")
    rows = []
    for name in [c for c in features.columns if c != target]:
        pair = features[[name, target]].dropna().astype(float)
        x, y = pair[name].to_numpy(), pair[target].to_numpy()
        n = len(x)
        rho = float(sps.spearmanr(x, y).statistic) if n > 2 else float("nan")
        gx, gy = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
        if clusters is None:
            k = n
            reps = [_resample_spearman(gx, gy, rng.integers(0, n, size=(min(chunk, n_resamples - s), n)))
                    for s in range(0, n_resamples if n > 2 else 0, chunk)]
        else:
            labels = clusters.reindex(pair.index)
            if labels.isna().any():
                raise ValueError(f"{labels.isna().sum()} rows of {name!r} have no cluster label")
            codes = pd.factorize(labels)[0]
            k = int(codes.max()) + 1 if n else 0
            reps = [_cluster_spearman(gx, gy, codes, rng, n_resamples)] if n > 2 and k > 1 else []
        reps = np.concatenate(reps) if reps else np.array([np.nan])
        ok = reps[np.isfinite(reps)]
        lo, hi = np.quantile(ok, [alpha, 1 - alpha]) if ok.size else (np.nan, np.nan)
        rows.append({"feature": name, "n": n, "clusters": k, "rho": rho, "lo": float(lo), "hi": float(hi)})
    out = pd.DataFrame(rows).set_index("feature")
    out.attrs.update(cluster=unit, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out


def _cluster_spearman(gx: np.ndarray, gy: np.ndarray, codes: np.ndarray, rng, n_resamples: int) -> np.ndarray:
    """Spearman's rho of *n_resamples* cluster resamples (clusters drawn with replacement)."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    k = len(sizes)
    out = np.empty(n_resamples)
    for b in range(n_resamples):
        draw = rng.integers(0, k, k)
        size = sizes[draw]
        # positions of every member of every drawn cluster in *order*, without a Python loop
        pos = np.repeat(starts[draw] - np.r_[0, np.cumsum(size)[:-1]], size) + np.arange(size.sum())
        out[b] = _resample_spearman(gx, gy, order[pos][None, :])[0]
    return out


def _midranks(codes: np.ndarray) -> np.ndarray:
    """Return, per row of *codes* (value-group indices of one resample), each draw's mid-rank."""
    b, n = codes.shape
    m = int(codes.max()) + 1
    counts = np.bincount((codes + m * np.arange(b)[:, None]).ravel(), minlength=b * m).reshape(b, m)
    upper = np.cumsum(counts, axis=1)
    rank_of_value = upper - (counts - 1) / 2.0        # average rank of the tied block
    return np.take_along_axis(rank_of_value, codes, axis=1)


def _resample_spearman(gx: np.ndarray, gy: np.ndarray, idx: np.ndarray) -> np.ndarray:
    rx, ry = _midranks(gx[idx]), _midranks(gy[idx])
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def figure4_intervals(corpus: Corpus, cluster: str = "client", *, n_resamples: int = 1000,
                      seed: int = 42, confidence: float = 0.95) -> dict:
    """Return each Figure-4 feature as ``{rho, ci: [lo, hi], cluster, n, clusters, ...}``.

    The interval is a percentile bootstrap that resamples *cluster* units (``client`` by
    default: each client rates many dialogues, so dialogues are not independent draws).
    """
    labels = cluster_labels(corpus.dialogues, cluster)
    labels = None if cluster == "dialogue" else labels     # one row per unit: the plain bootstrap
    b = bootstrap_spearman(dialogue_features(corpus), clusters=labels, n_resamples=n_resamples,
                           seed=seed, confidence=confidence)
    return {f: {"rho": float(r["rho"]), "ci": [float(r["lo"]), float(r["hi"])], "cluster": cluster,
                "confidence": confidence, "n_resamples": n_resamples, "seed": seed,
                "n": int(r["n"]), "clusters": int(r["clusters"])} for f, r in b.iterrows()}


# ---- variance components of crossed random effects (REML through the mixed-model equations)

def crossed_variance_components(y, factors: dict[str, np.ndarray], X=None) -> dict:
    """Fit y = X b + sum_k Z_k u_k + e with independent crossed random intercepts by REML.

    The same model as statsmodels ``MixedLM`` with one group and variance components (the tests
    check the two agree), but the REML criterion is evaluated through the mixed-model equations:
    the factor with the most levels has a diagonal block that is eliminated in closed form, so
    only the remaining levels (~420 counselors here) need a dense Cholesky factor. 6,589
    dialogues fit in about a second, where ``MixedLM`` takes minutes. Returns the variances
    (residual last), the fixed effects and the REML log-likelihood.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    X = np.ones((n, 1)) if X is None else np.asarray(X, dtype=float)
    p = X.shape[1]
    names = sorted(factors, key=lambda k: -len(pd.unique(np.asarray(factors[k]))))
    codes, sizes = [], []
    for name in names:
        c, levels = pd.factorize(np.asarray(factors[name]))
        codes.append(c)
        sizes.append(len(levels))
    # Level-by-level cross products, built from counts (Z is never formed).
    a = codes[0]
    na = np.bincount(a, minlength=sizes[0]).astype(float)
    ZaX = np.stack([np.bincount(a, X[:, j], sizes[0]) for j in range(p)], axis=1)
    Zay = np.bincount(a, y, sizes[0])
    off = np.cumsum([0] + sizes[1:])
    qb = int(off[-1])
    rest = np.concatenate([c + o for c, o in zip(codes[1:], off[:-1])]) if qb else np.zeros(0, int)
    rows = np.tile(np.arange(n), len(codes) - 1)
    ZbZb = np.zeros((qb, qb))
    N = np.zeros((sizes[0], qb))
    if qb:
        np.add.at(ZbZb, (rest.reshape(len(codes) - 1, n)[:, None, :].repeat(len(codes) - 1, 1).reshape(-1),
                         np.tile(rest.reshape(len(codes) - 1, n), (len(codes) - 1, 1)).reshape(-1)), 1.0)
        np.add.at(N, (np.tile(a, len(codes) - 1), rest), 1.0)
    ZbX = np.zeros((qb, p))
    Zby = np.zeros(qb)
    if qb:
        for j in range(p):
            ZbX[:, j] = np.bincount(rest, X[rows, j], qb)
        Zby = np.bincount(rest, y[rows], qb)
    XtX, Xty, yty = X.T @ X, X.T @ y, y @ y
    which_b = np.repeat(np.arange(1, len(sizes)), sizes[1:])

    def parts(theta):
        sa, sb = theta[0], theta[which_b]
        da = 1 + sa ** 2 * na                                   # diagonal block, I + sa^2 Za'Za
        C = sa * N * sb[None, :]
        rhs_a = np.column_stack([sa * ZaX, sa * Zay])
        rhs_b = np.column_stack([sb[:, None] * ZbX, sb * Zby])
        logdet = np.log(da).sum()
        sol_b = np.zeros((qb, p + 1))
        if qb:
            S = np.eye(qb) + sb[:, None] * ZbZb * sb[None, :] - C.T @ (C / da[:, None])
            cf = linalg.cho_factor(S, lower=True)
            logdet += 2 * np.log(np.diag(cf[0])).sum()
            sol_b = linalg.cho_solve(cf, rhs_b - C.T @ (rhs_a / da[:, None]))
        sol_a = (rhs_a - C @ sol_b) / da[:, None]
        quad = rhs_a.T @ sol_a + rhs_b.T @ sol_b                 # [sZ'X sZ'y]' M^-1 [sZ'X sZ'y]
        XhX = XtX - quad[:p, :p]
        Xhy = Xty - quad[:p, p]
        yhy = yty - quad[p, p]
        beta = np.linalg.solve(XhX, Xhy)
        rss = yhy - Xhy @ beta
        return logdet, XhX, beta, rss

    def neg_reml(theta):
        logdet, XhX, _, rss = parts(theta)
        return 0.5 * (logdet + np.linalg.slogdet(XhX)[1] + (n - p) * np.log(max(rss, 1e-300)))

    # One BLAS thread: the matrices are small, and on a busy machine threads cost 10x (measured).
    with _one_blas_thread():
        res = optimize.minimize(neg_reml, np.full(len(sizes), 0.5), method="L-BFGS-B",
                                bounds=[(0, None)] * len(sizes))
    _, _, beta, rss = parts(res.x)
    sigma2 = rss / (n - p)
    fitted = dict(zip(names, res.x))
    var = {name: float(sigma2 * fitted[name] ** 2) for name in factors}
    var["residual"] = float(sigma2)
    # res.fun already holds (n - p) / 2 * log(rss); adding (n - p) / 2 * log(sigma2) on top
    # would count the residual scale twice. The REML log-likelihood at the optimum is
    # -1/2 [log|H| + log|X'H^-1 X| + (n - p) (1 + log(2 pi sigma2))], with V = sigma2 H.
    logdet, XhX, _, _ = parts(res.x)
    llf = -0.5 * (logdet + np.linalg.slogdet(XhX)[1] + (n - p) * (1 + np.log(2 * np.pi * sigma2)))
    return {"variances": var, "beta": beta, "reml_llf": float(llf), "converged": bool(res.success),
            "levels": {k: len(pd.unique(np.asarray(factors[k]))) for k in factors}, "n": n}


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return nullcontext()
    return threadpool_limits(1)


def score_variance_decomposition(dialogues: pd.DataFrame, response: str = "score") -> pd.DataFrame:
    """Split the variance of the total score into client-role rater, counselor and residual.

    *response* is ``"score"`` (released totals) or ``"item_sum"`` (before the screening rules).
    Returns one row per component with its variance and share of the total.
    """
    d = dialogues.assign(item_sum=item_sum(dialogues))
    d = d[[response, "client_id", "counselor_id"]].dropna()
    fit = crossed_variance_components(d[response].astype(float).to_numpy(),
                                      {"client-role rater": d["client_id"].to_numpy(),
                                       "counselor": d["counselor_id"].to_numpy()})
    v = pd.Series(fit["variances"], name="variance")
    out = v.to_frame()
    out["share"] = v / v.sum()
    out["levels"] = pd.Series({**fit["levels"], "residual": fit["n"]})
    out.index.name = "component"
    out.attrs.update(n=fit["n"], converged=fit["converged"], mean=float(fit["beta"][0]),
                     reml_llf=fit["reml_llf"])
    return out


def counselor_component_test(dialogues: pd.DataFrame, response: str = "score") -> dict:
    """Likelihood-ratio test of the counselor variance (with vs without the counselor intercepts).

    Both fits are REML with the same fixed effects, so their log-likelihoods are comparable.
    The variance sits on the boundary (0) under the null, so the p value is the 50:50 mixture
    of chi-square(0) and chi-square(1), i.e. half the chi-square(1) tail.
    """
    d = dialogues.assign(item_sum=item_sum(dialogues))[[response, "client_id", "counselor_id"]].dropna()
    y = d[response].astype(float).to_numpy()
    full = crossed_variance_components(y, {"client": d["client_id"].to_numpy(),
                                           "counselor": d["counselor_id"].to_numpy()})
    reduced = crossed_variance_components(y, {"client": d["client_id"].to_numpy()})
    lr = max(0.0, 2 * (full["reml_llf"] - reduced["reml_llf"]))
    return {"llf_full": full["reml_llf"], "llf_without_counselor": reduced["reml_llf"], "lr": lr,
            "p": float(0.5 * sps.chi2.sf(lr, 1)) if lr > 0 else 1.0, "n": full["n"]}


def feature_regression(features: pd.DataFrame, dialogues: pd.DataFrame, *, log: bool = True):
    """OLS of the score on the five standardised (log1p) features with two-way cluster-robust SEs.

    Standard errors are clustered by client-role rater and by counselor (a dialogue shares both
    with others). Falls back to HC3 when there are fewer than 5 clusters of either kind. Returns
    the statsmodels results and a tidy table (coefficient = score points per 1 SD of the feature).
    """
    import statsmodels.api as sm
    ids = dialogues.set_index(dialogues["dialogue_id"].astype(str))[["client_id", "counselor_id"]]
    f = features.join(ids).dropna()
    cols = list(FEATURES)
    Xr = f[cols].astype(float)
    if log:
        Xr = np.log1p(Xr.clip(lower=0))
    sd = Xr.std(ddof=0).replace(0, np.nan)
    Xs = ((Xr - Xr.mean()) / sd).dropna(axis=1)
    X = sm.add_constant(Xs)
    groups = f[["client_id", "counselor_id"]].astype(int).to_numpy()
    enough = min(len(np.unique(groups[:, 0])), len(np.unique(groups[:, 1]))) >= 5
    model = sm.OLS(f["score"].astype(float), X)
    res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}) if enough else model.fit(cov_type="HC3")
    ci = res.conf_int()
    tidy = pd.DataFrame({"coef": res.params, "se": res.bse, "lo": ci[0], "hi": ci[1], "p": res.pvalues})
    tidy.attrs.update(cov_type="two-way cluster (rater, counselor)" if enough else "HC3",
                      n=int(res.nobs), r2=float(res.rsquared))
    return res, tidy


def describe_regression(tidy: pd.DataFrame, rho: dict[str, float]) -> dict[str, str]:
    """Return the sentences the book prints about :func:`feature_regression`, from its numbers.

    ``strongest``: the feature with the largest effect; ``messages``: what client message
    counts add once characters are held fixed, compared with their one-at-a-time *rho*.
    Each sentence is chosen by the signs of the estimates and of their 95 % intervals, so it is
    true on any sample.
    """
    feats = [f for f in FEATURES if f in tidy.index]
    if not feats:
        return {"strongest": "No feature varies enough to be estimated.", "messages": ""}

    def sign(f):
        lo, hi = tidy.loc[f, "lo"], tidy.loc[f, "hi"]
        return 1 if lo > 0 else (-1 if hi < 0 else 0)

    def effect(f):
        r = tidy.loc[f]
        return f"{r['coef']:+.1f} points (95 % interval {r['lo']:+.1f} to {r['hi']:+.1f})"

    top = max(feats, key=lambda f: abs(tidy.loc[f, "coef"]))
    word = {1: "goes with", -1: "goes with", 0: "has no clear effect,"}[sign(top)]
    out = {"strongest": f"The largest effect is the {FEATURES[top].lower()}: an additional standard deviation "
                        f"{word} {effect(top)}, the other four held fixed."}
    f = "client_utterances"
    if f not in tidy.index:
        out["messages"] = ""
        return out
    r = rho.get(f, float("nan"))
    one = "positive" if r > 0 else "negative"
    if sign(f) == -1:
        tail = (f" The {one} one-at-a-time correlation of Figure 4 (ρ = {r:.2f}) is therefore mostly the"
                " overlap of message counts with length." if r > 0 else "")
        out["messages"] = (f"With characters held fixed, more client messages go with a lower score, "
                           f"{effect(f)}: at a given amount of text, many short messages are a worse sign "
                           f"than fewer long ones.{tail}")
    elif sign(f) == 1:
        out["messages"] = (f"Even with characters held fixed, more client messages go with a higher score, "
                           f"{effect(f)}, in the direction of the one-at-a-time correlation (ρ = {r:.2f}).")
    else:
        out["messages"] = (f"With characters held fixed, the number of client messages adds nothing clear, "
                           f"{effect(f)}, although it correlates {one}ly on its own (ρ = {r:.2f}).")
    return out
