"""Reference points that run on a CPU, on the real test sets of paper section 5.

Responses (Table 4): a constant reply, a copy of the previous counselor turn, and retrieval of
the counselor reply whose training context is nearest (TF-IDF over character n-grams). The
turns are those of paper 5.1: merged turns (``Corpus.turns()``), every counselor turn of the
test dialogues (score 99-100) that has at least one turn before it.

Scores (Table 5): per-item mode, per-item median, and ridge regression over dialogue features
and character n-grams, on the 8:1:1 split with a fixed test set and five train/validation seeds.
Scored with :mod:`kokoro_nb.evaluate.metrics`; no language model here (those are in :mod:`kokoro_nb.train`).

>>> s = score_split([str(i) for i in range(100)], seed=0)
>>> {k: len(v) for k, v in s.items()}
{'train': 80, 'validation': 10, 'test': 10}
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb import config, published
from kokoro_nb.data.corpus import Corpus
from kokoro_nb.data.splits import (
    check_disjoint,
    response_split_ids,
    response_test_ids,
    response_turns,
    sample_ids,
    score_split,
)
from kokoro_nb.describe.variables import dialogue_features
from kokoro_nb.errors import DataError
from kokoro_nb.evaluate import metrics
from kokoro_nb.evaluate.tokenize import get_tokenizer
from kokoro_nb.schema import ITEM_CODES, ITEM_MAX, ITEM_MIN

RESPONSE_SYSTEMS = ("constant", "copy", "retrieval")
POOL_DIALOGUES = 1500          # retrieval pool: dialogues sampled from the non-test data
RETRIEVAL_NGRAMS = (1, 3)
SCORE_COMPONENTS = 256        # truncated SVD of the char n-gram TF-IDF
RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)


def _progress(it=None, **kw):
    if kw.get("disable"):
        from tqdm.std import (
            tqdm,  # tqdm.auto would warn in notebooks without ipywidgets
        )
    else:
        from tqdm.auto import tqdm
    return tqdm(it, **kw)


# --------------------------------------------------------------------------- response baselines

def retrieve_replies(queries: Sequence[str], contexts: Sequence[str], replies: Sequence[str], *,
                     ngram_range: tuple[int, int] = RETRIEVAL_NGRAMS, chunk: int = 256,
                     progress: bool = True) -> list[str]:
    """Return, for each query, the reply whose context is most similar (cosine of char TF-IDF).

    >>> retrieve_replies(["眠れない"], ["仕事が忙しい", "夜に眠れない"], ["大変ですね", "つらいですね"],
    ...                  progress=False)
    ['つらいですね']
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    if not len(contexts):
        raise DataError("the retrieval pool is empty")
    vec = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True)
    P = vec.fit_transform(contexts).T.tocsr()
    Q = vec.transform(queries)
    best = np.empty(Q.shape[0], dtype=np.int64)
    starts = range(0, Q.shape[0], chunk)
    if progress:
        starts = _progress(starts, desc="retrieval", unit="chunk")
    for s in starts:
        sim = (Q[s:s + chunk] @ P).toarray()
        best[s:s + chunk] = sim.argmax(axis=1)          # ties: the first pool entry
    return [replies[i] for i in best]


def response_baselines(corpus: Corpus, test_ids: Iterable | None = None, *,
                       pool_dialogues: int | None = POOL_DIALOGUES, seed: int = config.SEED,
                       progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Return the test turns with one hypothesis column per baseline, and a description.

    * constant: the most frequent counselor turn of the pool, for every turn;
    * copy: the previous counselor turn of the same dialogue ("" when there is none);
    * retrieval: the pool counselor reply whose previous turn is nearest to this turn's previous
      turn. The pool is *pool_dialogues* non-test dialogues drawn with *seed* (all when None).
    """
    test_ids = [str(i) for i in (response_test_ids(corpus) if test_ids is None else test_ids)]
    test = response_turns(corpus, test_ids)
    if test.empty:
        raise DataError("no counselor turns with a previous turn in the test dialogues")
    others = set(corpus.dialogues["dialogue_id"].astype(str)) - set(test_ids)
    pool_ids = sample_ids(others, pool_dialogues, seed)
    check_disjoint(pool_ids, test_ids, "retrieval pool")
    pool = response_turns(corpus, pool_ids)
    constant = pool["reference"].value_counts().index[0]
    table = test.copy()
    table["constant"] = constant
    table["copy"] = table["previous_counselor"]
    table["retrieval"] = retrieve_replies(table["context"].tolist(), pool["context"].tolist(),
                                          pool["reference"].tolist(), progress=progress)
    info = {"test_dialogues": len(set(test["dialogue_id"])), "test_turns": len(test),
            "pool_dialogues": len(pool_ids), "pool_turns": len(pool), "pool_of": len(others),
            "constant_reply": constant, "copy_empty": int((table["copy"] == "").sum()), "seed": seed}
    return table, info


def subset_retrieval(corpus: Corpus, table: pd.DataFrame, subsets: Sequence[str] = ("low", "high", "full"), *,
                     pool_dialogues: int | None = POOL_DIALOGUES, seed: int = config.SEED,
                     progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Add one retrieval column per training subset of paper 5.1.1 ("retrieval-low", ...).

    Each pool is *pool_dialogues* dialogues drawn with *seed* from that subset's training and
    validation dialogues (the data a Kokoro-Low/High/Full model was fine-tuned on), so the pools
    are the same size and differ only in which sessions they hold. Returns (table, pool sizes).
    """
    table, info = table.copy(), {}
    test_ids = set(table["dialogue_id"].astype(str))
    for name in subsets:
        sp = response_split_ids(corpus, name, seed)
        # Test dialogues are outside every subset on the paper's split; a smoke run with a wider
        # test range (test_min_score < 99) must still keep them out of the pools.
        ids = sample_ids(sorted(set(sp["train"] + sp["validation"]) - test_ids), pool_dialogues, seed)
        if not ids:
            raise DataError(f"the {name} subset has no dialogue outside the test set to retrieve from",
                            field="subset")
        check_disjoint(ids, test_ids | set(sp["test"]), f"{name} retrieval pool")
        pool = response_turns(corpus, ids)
        table[f"retrieval-{name}"] = retrieve_replies(table["context"].tolist(), pool["context"].tolist(),
                                                      pool["reference"].tolist(), progress=progress)
        info[name] = {"pool_dialogues": len(ids), "pool_turns": len(pool),
                      "subset_dialogues": len(sp["train"]) + len(sp["validation"]),
                      "paper_dialogues": paper_subset_size(name)}
    return table, info


def paper_subset_size(subset: str) -> int | None:
    """Return the paper's number of training dialogues of a subset (5.1.1), or None."""
    return published.load().get("response_generation_splits", {}).get(f"kokoro_{subset}", {}).get("dialogues")


def evaluate_response_baselines(table: pd.DataFrame, systems: Sequence[str] = RESPONSE_SYSTEMS, *,
                                tokenizer: str = "ja-unidic", n_boot: int = metrics.BOOTSTRAP_SAMPLES,
                                seed: int = config.SEED, progress: bool = True) -> dict[str, metrics.ResponseResult]:
    """Score each baseline column of *table* against its references."""
    tok = get_tokenizer(tokenizer)
    names = _progress(list(systems), desc=f"scoring ({tok.name})", unit="system", disable=not progress)
    return {name: metrics.evaluate_responses(table["reference"].tolist(), table[name].tolist(),
                                             table["dialogue_id"].tolist(), tokenizer=tok,
                                             n_boot=n_boot, seed=seed)
            for name in names}


def response_table(results: dict[str, metrics.ResponseResult]) -> pd.DataFrame:
    """Return Table-4 columns per system, plus a 'human reference' row with only Distinct."""
    rows = {name: r.row() for name, r in results.items()}
    any_r = next(iter(results.values()))
    rows["human reference"] = pd.Series({"Dist-1": any_r.secondary["reference Dist-1"],
                                         "Dist-2": any_r.secondary["reference Dist-2"]})
    return pd.DataFrame(rows).T[list(metrics.RESPONSE_METRICS)]


def sensitivity_table(table: pd.DataFrame, systems: Sequence[str] = RESPONSE_SYSTEMS, *,
                      tokenizers: Sequence[str] = ("ja-unidic", "char"), progress: bool = True) -> pd.DataFrame:
    """Return how the figures move with the protocol: tokens x BLEU variant x Distinct variant.

    Rows: (system, tokenizer); columns: sentence BLEU-1/4, corpus BLEU-1/4, ROUGE-L,
    Distinct-1/2 pooled over turns and averaged per turn.
    """
    out = {}
    for tok in tokenizers:
        res = evaluate_response_baselines(table, systems, tokenizer=tok, n_boot=0, progress=progress)
        refs = res[systems[0]].secondary
        for name, r in list(res.items()) + [("human reference", None)]:
            s = r.scores if r else {}
            sec = r.secondary if r else {k.replace("reference ", ""): v for k, v in refs.items()
                                         if k.startswith("reference")}
            out[(name, tok)] = {
                "sentence BLEU-1": s.get("BLEU-1"), "sentence BLEU-4": s.get("BLEU-4"),
                "corpus BLEU-1": sec.get("corpus BLEU-1"), "corpus BLEU-4": sec.get("corpus BLEU-4"),
                "ROUGE-L": s.get("ROUGE-L"),
                "Dist-1 pooled": s.get("Dist-1", sec.get("Dist-1")),
                "Dist-1 per turn": sec.get("per-turn Dist-1"),
                "Dist-2 pooled": s.get("Dist-2", sec.get("Dist-2")),
                "Dist-2 per turn": sec.get("per-turn Dist-2")}
    # Per-turn Distinct of the references needs its own pass: same tokens, references as hypotheses.
    for tok in tokenizers:
        t = get_tokenizer(tok)
        toks = [t(x) for x in table["reference"]]
        out[("human reference", tok)]["Dist-1 per turn"] = 100 * metrics.distinct_per_turn(toks, 1)
        out[("human reference", tok)]["Dist-2 per turn"] = 100 * metrics.distinct_per_turn(toks, 2)
    df = pd.DataFrame(out).T.astype(float)
    df.index.names = ["system", "tokens"]
    return df


# --------------------------------------------------------------------------- score baselines

SCORE_SYSTEMS = ("mode", "median", "ridge")


def score_features(corpus: Corpus) -> tuple[pd.DataFrame, list[str]]:
    """Return (dense features per dialogue, dialogue text) in ``corpus.dialogues`` order.

    Dense: the five Figure-4 features (log1p), duration, number of turns, topic one-hot.
    """
    d = corpus.dialogues
    ids = d["dialogue_id"].astype(str)
    f = dialogue_features(corpus).drop(columns="score").reindex(ids)
    f = np.log1p(f.astype(float).clip(lower=0))
    f = f.fillna(f.median())
    f["log_minutes"] = np.log1p(((d["ended_at"] - d["started_at"]).dt.total_seconds() / 60)
                                .clip(lower=0).fillna(0).to_numpy())
    f["log_turns"] = np.log1p(corpus.turns().groupby(corpus.turns()["dialogue_id"].astype(str))
                              .size().reindex(ids).fillna(0).to_numpy())
    topics = pd.get_dummies(d["topic"].astype(str).to_numpy(), prefix="topic", dtype=float)
    topics.index = f.index
    f = pd.concat([f, topics], axis=1)
    u = corpus.utterances
    text = u["text"].astype(str).groupby(u["dialogue_id"].astype(str), sort=False).agg("\n".join)
    return f, text.reindex(ids).fillna("").tolist()


def char_ngram_counts(texts: Sequence[str], fit_rows: np.ndarray | None = None, *, min_df: int = 5):
    """Return (counts (docs, vocab) CSR, vocabulary strings) of character uni- and bigrams.

    Vectorised in numpy (about 4x faster than scikit-learn's char analyzer on this corpus).
    The vocabulary keeps n-grams seen in at least *min_df* of the *fit_rows* documents, so
    documents outside them (the test set) do not shape it. Bigrams do not cross documents.
    """
    from scipy import sparse
    n = len(texts)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    cp = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    doc = np.repeat(np.arange(n, dtype=np.int64), lens)
    same = doc[1:] == doc[:-1]
    grams = np.concatenate([cp, ((cp[:-1] << 21) | cp[1:])[same] + (1 << 42)])   # code points < 2**21
    key = np.concatenate([doc, doc[:-1][same]]) << 44 | grams
    key.sort()
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    count = np.diff(np.r_[starts, len(key)]).astype(np.float32)
    row, gram = key[starts] >> 44, key[starts] & ((1 << 44) - 1)
    fit = np.ones(n, bool) if fit_rows is None else np.isin(np.arange(n), fit_rows)
    vocab, df = np.unique(gram[fit[row]], return_counts=True)      # one entry per (doc, gram)
    vocab = vocab[df >= min_df]
    if not len(vocab):
        raise DataError(f"no character n-gram occurs in {min_df} or more documents; lower min_df")
    col = np.searchsorted(vocab, gram)
    ok = (col < len(vocab)) & (vocab[np.minimum(col, len(vocab) - 1)] == gram)
    X = sparse.csr_matrix((count[ok], (row[ok], col[ok])), shape=(n, len(vocab)))
    low = (1 << 21) - 1
    words = [chr(g) if g < (1 << 42) else chr((g - (1 << 42)) >> 21) + chr((g - (1 << 42)) & low)
             for g in vocab.tolist()]
    return X, words


def score_design(corpus: Corpus, fit_ids: Iterable, *, n_components: int = SCORE_COMPONENTS,
                 seed: int = config.SEED, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Return the standardised design matrix (dialogues x features) for the score baselines.

    Character uni/bigram TF-IDF reduced by truncated SVD to *n_components*, beside the dense
    dialogue features. Vocabulary, IDF, SVD basis and scaling are fitted on *fit_ids* only
    (the non-test dialogues; no labels are used), so the fixed test set never shapes them.
    """
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.utils.extmath import randomized_svd
    bar = _progress(total=3, desc="score features", unit="step", disable=not progress)
    dense, text = score_features(corpus)
    ids = corpus.dialogues["dialogue_id"].astype(str).to_numpy()
    fit = np.flatnonzero(np.isin(ids, [str(i) for i in fit_ids]))
    bar.update()
    counts, vocab = char_ngram_counts(text, fit)
    n_vocab = len(vocab)
    bar.update()
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts[fit]).transform(counts)
    k = min(n_components, len(fit) - 1, n_vocab - 1)
    _, _, vt = randomized_svd(tfidf[fit], k, n_iter=4, random_state=seed)
    Z = np.hstack([np.asarray(tfidf @ vt.T), dense.to_numpy(float)])
    mu, sd = Z[fit].mean(0), Z[fit].std(0)
    Z = (Z - mu) / np.where(sd > 0, sd, 1.0)
    bar.update()
    bar.close()
    return Z, {"char_ngrams": n_vocab, "svd_components": k, "dense_features": dense.shape[1],
               "fit_dialogues": len(fit)}


def _to_items(pred: np.ndarray) -> np.ndarray:
    """Round continuous predictions to the 0-5 item scale."""
    return np.clip(np.rint(pred), ITEM_MIN, ITEM_MAX)


def score_baselines(corpus: Corpus, seeds: Sequence[int] = config.SCORE_SPLIT_SEEDS, *,
                    test_seed: int = config.SEED, alphas: Sequence[float] = RIDGE_ALPHAS,
                    n_boot: int = 0, progress: bool = True) -> dict:
    """Run the score baselines on the 8:1:1 split for each seed.

    Returns ``{"runs": DataFrame (seed, system, ACC, ACC_soft, MAE, alpha, val_ACC), "results":
    {(seed, system): ScoreResult}, "predictions": {(seed, system): array}, "test_ids", "sizes",
    "design"}``. Ridge predictions are rounded and clipped to 0-5; its alpha is chosen per seed
    by validation ACC (paper D.2 selects the epoch by accuracy).
    """
    from sklearn.linear_model import Ridge
    d = corpus.dialogues
    ids = d["dialogue_id"].astype(str).to_numpy()
    Y = d[list(ITEM_CODES)].astype(float).to_numpy()
    bad = np.isnan(Y).any(axis=1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} dialogues lack item scores (e.g. {ids[bad][0]}); "
                        "load without lenient=True or subset to complete dialogues")
    first = score_split(ids, seeds[0], test_seed)
    test_ids = first["test"]
    check_disjoint(first["train"] + first["validation"], test_ids, "score training data")
    Z, design = score_design(corpus, first["train"] + first["validation"], progress=progress)
    pos = {k: i for i, k in enumerate(ids)}
    rows, results, preds = [], {}, {}
    for seed in (_progress(list(seeds), desc="score seeds", unit="seed") if progress else seeds):
        sp = score_split(ids, seed, test_seed)
        check_disjoint(sp["train"] + sp["validation"], sp["test"], "score training data")
        tr, va, te = (np.array([pos[i] for i in sp[k]]) for k in ("train", "validation", "test"))
        gold = Y[te].astype(int)
        mode = pd.DataFrame(Y[tr]).mode().iloc[0].to_numpy()          # ties: the smaller score
        median = np.floor(np.median(Y[tr], axis=0) + 0.5)
        fits = [Ridge(alpha=a).fit(Z[tr], Y[tr]) for a in alphas]
        val_acc = [float((_to_items(m.predict(Z[va])) == Y[va]).mean()) for m in fits]
        best = int(np.argmax(val_acc))
        systems = {"mode": np.tile(mode, (len(te), 1)), "median": np.tile(median, (len(te), 1)),
                   "ridge": _to_items(fits[best].predict(Z[te]))}
        for name, p in systems.items():
            r = metrics.evaluate_scores(gold, p, sp["test"], n_boot=n_boot, seed=seed)
            results[(seed, name)], preds[(seed, name)] = r, p
            rows.append({"seed": seed, "system": name, **{k: r.overall[k] for k in metrics.SCORE_METRICS},
                         "alpha": alphas[best] if name == "ridge" else np.nan,
                         "val_ACC": 100 * val_acc[best] if name == "ridge" else np.nan})
    return {"runs": pd.DataFrame(rows), "results": results, "predictions": preds, "test_ids": test_ids,
            "sizes": {k: len(v) for k, v in first.items()}, "design": design}


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Return mean and sd over seeds of ACC, ACC_soft and MAE per system."""
    g = runs.groupby("system", sort=False)[list(metrics.SCORE_METRICS)]
    mean, sd = g.mean(), g.std(ddof=1)
    return pd.concat({"mean": mean, "sd": sd}, axis=1).swaplevel(axis=1).sort_index(
        axis=1, level=0, sort_remaining=False)[list(metrics.SCORE_METRICS)]


def per_item_table(results: dict, system: str) -> pd.DataFrame:
    """Return per-item ACC, ACC_soft, MAE of one system, averaged over seeds."""
    frames = [r.per_item[list(metrics.SCORE_METRICS)] for (s, name), r in results.items() if name == system]
    return sum(frames) / len(frames)


# --------------------------------------------------------------------------- paper rows

def paper_table4() -> pd.DataFrame:
    """Return the paper's Table 4 rows (cited, not computed here)."""
    t = published.load()["table4_response_generation"]
    return pd.DataFrame({k: v for k, v in t.items() if k != "columns"}, index=t["columns"]).T


def paper_table5() -> pd.DataFrame:
    """Return the paper's Table 5 rows (cited, not computed here)."""
    t = published.load()["table5_score_prediction"]
    return pd.DataFrame({k: v for k, v in t.items() if k not in ("columns", "split")},
                        index=t["columns"]).T


COMPUTED = "computed here"


def compare_table4(ours: pd.DataFrame) -> pd.DataFrame:
    """Return our rows (``response_table``) above the paper's Table 4 rows, with a source column."""
    cited = paper_table4().assign(source="cited: paper Table 4")
    return pd.concat([ours.assign(source=COMPUTED), cited])[["source", *metrics.RESPONSE_METRICS]]


def compare_table5(runs: pd.DataFrame) -> pd.DataFrame:
    """Return our seed-averaged rows above the paper's Table 5 rows, with a source column.

    Our "± sd" columns are over the five seeds; the paper's ± (not in its table of values) is
    over the 20 items.
    """
    s = summarize_runs(runs)
    ours = pd.DataFrame({k: s[(k, "mean")] for k in metrics.SCORE_METRICS})
    ours[[f"{k} sd (seeds)" for k in metrics.SCORE_METRICS]] = np.column_stack(
        [s[(k, "sd")] for k in metrics.SCORE_METRICS])
    cited = paper_table5().assign(source="cited: paper Table 5")
    out = pd.concat([ours.assign(source=COMPUTED), cited])
    return out[["source", *metrics.SCORE_METRICS, *[f"{k} sd (seeds)" for k in metrics.SCORE_METRICS]]]
