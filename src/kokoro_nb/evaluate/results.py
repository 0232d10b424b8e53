"""Result files of the evaluation: reading and writing responses, scores and per-turn JSONL,
checking a responses file against the test turns, and scoring whole files and folders.

Every reader checks each record's fields and names the file, line and field of the first
problem (:class:`~kokoro_nb.errors.DataError`). The metrics themselves are in
:mod:`kokoro_nb.evaluate.metrics`; this module only feeds them and writes what they return.

>>> import tempfile, pathlib, pandas as pd
>>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
>>> _ = write_responses(p, pd.DataFrame({"dialogue_id": ["1"], "turn": [2], "reference": ["a b"],
...                                      "hypothesis": ["a b"]}))
>>> r = evaluate_responses_file(p, tokenizer="space", n_boot=0)
>>> r.n_turns, round(r.scores["BLEU-2"], 6)
(1, 100.0)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kokoro_nb.errors import DataError
from kokoro_nb.evaluate.metrics import (
    BOOTSTRAP_SAMPLES,
    PER_TURN_METRICS,
    SCORE_METRICS,
    ResponseResult,
    ResponseStats,
    ScoreResult,
    check_n_boot,
    evaluate_scores,
    per_turn_table,
    response_scores,
    response_stats,
)
from kokoro_nb.jsonl import read_records
from kokoro_nb.schema import ITEM_CODES, ITEM_MAX, ITEM_MIN

RESPONSE_FIELDS = ("dialogue_id", "turn", "reference", "hypothesis")
SCORE_FIELDS = ("dialogue_id", "gold", "pred")


def _field(obj: dict, key: str, types: tuple, file: str, no: int, what: str):
    if key not in obj:
        raise DataError(f"missing field (expected {what})", file=file, line=no, field=key)
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, types):
        raise DataError(f"expected {what}, got {json.dumps(v, ensure_ascii=False)[:60]}",
                        file=file, line=no, field=key)
    return v


def _first(keys, k: int = 3) -> str:
    """Return the first *k* (dialogue_id, turn) keys as ``id/turn`` text, with "…" when more."""
    keys = list(keys)
    shown = ", ".join(f"{d}/{t}" if t is not None else str(d) for d, t in keys[:k])
    return shown + (", …" if len(keys) > k else "")


def read_responses(path: str | Path, *, drop_duplicates: bool = False) -> pd.DataFrame:
    """Read a responses JSONL: one ``{"dialogue_id", "turn", "reference", "hypothesis"}`` per line.

    A (dialogue_id, turn) seen twice is an error; with *drop_duplicates* the first is kept and the
    keys of the others are listed in ``df.attrs["duplicates"]``.
    """
    rows, lines, f = [], [], str(path)
    for no, obj in read_records(path):
        did = _field(obj, "dialogue_id", (str, int), f, no, "a dialogue id (string)")
        turn = _field(obj, "turn", (int,), f, no, "a turn index (integer >= 0)")
        if turn < 0:
            raise DataError(f"expected a turn index >= 0, got {turn}", file=f, line=no, field="turn")
        ref = _field(obj, "reference", (str,), f, no, "the reference text (string)")
        hyp = _field(obj, "hypothesis", (str,), f, no, "the generated text (string, may be empty)")
        rows.append((str(did), turn, ref, hyp))
        lines.append(no)
    if not rows:
        raise DataError("no records in file", file=f)
    df = pd.DataFrame(rows, columns=list(RESPONSE_FIELDS))
    dup = df.duplicated(["dialogue_id", "turn"], keep="first").to_numpy()
    keys = list(zip(df["dialogue_id"][dup], df["turn"][dup]))
    if keys and not drop_duplicates:
        raise DataError(f"{len(keys)} duplicate turn(s) (same dialogue_id and turn), first: {_first(keys)}; "
                        "pass --allow-partial to keep the first of each",
                        file=f, line=lines[int(np.flatnonzero(dup)[0])], field="turn")
    df = df[~dup].reset_index(drop=True)
    df.attrs["duplicates"] = keys
    return df


def check_response_coverage(df: pd.DataFrame, expected: pd.DataFrame, *, allow_partial: bool = False,
                            file: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Match a responses table to the expected test turns; return (matched rows, coverage).

    *expected* has columns dialogue_id, turn, reference. Missing, extra and duplicated turns and
    references that differ from the test set are counted; any of them is an error naming the
    counts and the first ids, unless *allow_partial*: then only the matching turns are kept and
    the coverage says how many of the test turns they are.
    """
    key = ["dialogue_id", "turn"]
    exp = expected.assign(dialogue_id=expected["dialogue_id"].astype(str))[[*key, "reference"]]
    m = df.merge(exp, on=key, how="outer", suffixes=("", "_test"), indicator=True)
    missing = m[m["_merge"] == "right_only"]
    extra = m[m["_merge"] == "left_only"]
    both = m[m["_merge"] == "both"]
    differs = both[both["reference"] != both["reference_test"]]
    dups = df.attrs.get("duplicates", [])
    problems = [(n, what, keys) for n, what, keys in [
        (len(missing), "{n:,} turn(s) missing (in the test set, not in the file)",
         zip(missing["dialogue_id"], missing["turn"])),
        (len(extra), "{n:,} turn(s) extra (in the file, not in the test set)", zip(extra["dialogue_id"], extra["turn"])),
        (len(dups), "{n:,} duplicate turn(s) (same dialogue_id and turn twice)", dups),
        (len(differs), "{n:,} turn(s) with a reference that differs from the test set",
         zip(differs["dialogue_id"], differs["turn"]))]
        if n]
    n_exp = len(exp)
    coverage = {"test_turns": n_exp, "test_dialogues": int(exp["dialogue_id"].nunique()),
                "scored_turns": len(both) - len(differs), "missing": len(missing), "extra": len(extra),
                "duplicate": len(dups), "reference_differs": len(differs),
                "share": (len(both) - len(differs)) / n_exp if n_exp else float("nan"),
                "first_missing": [f"{d}/{t}" for d, t in list(zip(missing["dialogue_id"], missing["turn"]))[:5]]}
    if problems and not allow_partial:
        text = "; ".join(f"{what.format(n=n)}, first: {_first(keys)}" for n, what, keys in problems)
        raise DataError(f"does not match the test set ({n_exp:,} turns): {text}; pass --allow-partial "
                        "to score only the matching turns and report coverage", file=file)
    keep = both[both["reference"] == both["reference_test"]][list(RESPONSE_FIELDS)]
    if keep.empty:
        raise DataError("no turn of the file matches the test set", file=file)
    return keep.sort_values(key, kind="stable").reset_index(drop=True), coverage


def _item_list(obj: dict, key: str, file: str, no: int, allow_null: bool, n_items: int) -> list:
    v = obj.get(key, ...)
    if v is ...:
        raise DataError(f"missing field (expected a list of {n_items} item scores)", file=file, line=no, field=key)
    if v is None and allow_null:          # the whole prediction failed to parse
        return [None] * n_items
    if not isinstance(v, list) or len(v) != n_items:
        got = f"{len(v)} values" if isinstance(v, list) else json.dumps(v, ensure_ascii=False)[:60]
        raise DataError(f"expected a list of {n_items} item scores, got {got}", file=file, line=no, field=key)
    for i, x in enumerate(v):
        if x is None and allow_null:
            continue
        if isinstance(x, bool) or not isinstance(x, int) or not ITEM_MIN <= x <= ITEM_MAX:
            allowed = f"an integer {ITEM_MIN}-{ITEM_MAX}" + (" or null" if allow_null else "")
            raise DataError(f"expected {allowed}, got {json.dumps(x, ensure_ascii=False)}",
                            file=file, line=no, field=f"{key}[{i}] ({ITEM_CODES[i]})")
    return v


def read_scores(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a scores JSONL; return (dialogue ids, gold (N, 20) int, pred (N, 20) float with NaN).

    ``pred`` may hold ``null`` for an item (or be ``null`` as a whole) when the model's output
    could not be parsed.
    """
    ids, gold, pred, seen, f = [], [], [], {}, str(path)
    for no, obj in read_records(path):
        did = str(_field(obj, "dialogue_id", (str, int), f, no, "a dialogue id (string)"))
        if did in seen:
            raise DataError(f"duplicate dialogue_id {did!r} (first on line {seen[did]})",
                            file=f, line=no, field="dialogue_id")
        seen[did] = no
        gold.append(_item_list(obj, "gold", f, no, False, len(ITEM_CODES)))
        pred.append([np.nan if x is None else x for x in _item_list(obj, "pred", f, no, True, len(ITEM_CODES))])
        ids.append(did)
    if not ids:
        raise DataError("no records in file", file=f)
    return ids, np.array(gold, dtype=np.int64), np.array(pred, dtype=float)


def write_responses(path: str | Path, records: pd.DataFrame) -> Path:
    """Write a responses JSONL (columns dialogue_id, turn, reference, hypothesis)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records[list(RESPONSE_FIELDS)].itertuples(index=False):
            fh.write(json.dumps({"dialogue_id": str(r.dialogue_id), "turn": int(r.turn),
                                 "reference": r.reference, "hypothesis": r.hypothesis},
                                ensure_ascii=False) + "\n")
    return path


def write_scores(path: str | Path, dialogue_ids: Sequence, gold, pred) -> Path:
    """Write a scores JSONL; NaN predictions become null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for did, g, p in zip(dialogue_ids, np.asarray(gold), np.asarray(pred, dtype=float), strict=True):
            fh.write(json.dumps({"dialogue_id": str(did), "gold": [int(x) for x in g],
                                 "pred": [None if np.isnan(x) else int(x) for x in p]}) + "\n")
    return path


def find_results(results_dir: str | Path) -> dict[str, list[Path]]:
    """Return the JSONL files under *results_dir* by kind ("responses", "scores"), by first record.

    Files whose first record has neither layout are listed under "other".
    """
    out: dict[str, list[Path]] = {"responses": [], "scores": [], "other": []}
    root = Path(results_dir)
    if not root.is_dir():
        return out
    for p in sorted(root.rglob("*.jsonl")):
        try:
            with p.open(encoding="utf-8") as fh:
                first = next((ln for ln in fh if ln.strip()), "")
            keys = set(json.loads(first)) if first else set()
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            keys = set()
        kind = ("responses" if set(RESPONSE_FIELDS) <= keys else
                "scores" if set(SCORE_FIELDS) <= keys else "other")
        out[kind].append(p)
    return out


def evaluate_responses_file(path: str | Path, *, tokenizer: str = "ja-unidic", n_boot: int = BOOTSTRAP_SAMPLES,
                            seed: int = 42, progress: bool = False, expected: pd.DataFrame | None = None,
                            allow_partial: bool = False, per_turn: str | Path | None = None) -> ResponseResult:
    """Read a responses JSONL and score it.

    With *expected* (the test turns: dialogue_id, turn, reference) the file must cover them
    exactly (see :func:`check_response_coverage`); *per_turn* writes each turn's scores.
    """
    check_n_boot(n_boot)
    # With a test set, duplicates are reported together with missing and extra turns.
    df = read_responses(path, drop_duplicates=allow_partial or expected is not None)
    coverage = None
    if expected is not None:
        df, coverage = check_response_coverage(df, expected, allow_partial=allow_partial, file=str(path))
    elif df.attrs["duplicates"]:
        coverage = {"duplicate": len(df.attrs["duplicates"]), "scored_turns": len(df), "test_turns": None}
    stats = response_stats(df["reference"].tolist(), df["hypothesis"].tolist(), df["dialogue_id"].tolist(),
                           tokenizer=tokenizer, progress=progress)
    res = response_scores(stats, n_boot=n_boot, seed=seed)
    res.extra["file"] = str(path)
    if coverage is not None:
        res.extra["coverage"] = coverage
    if per_turn is not None:
        write_per_turn(per_turn, df, stats)
    return res


def write_per_turn(path: str | Path, df: pd.DataFrame, stats: ResponseStats) -> Path:
    """Write per-turn scores as JSONL (one object per turn, with the tokenizer's signature)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = per_turn_table(df, stats)
    table["tokenizer"] = stats.tokenizer
    table.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def read_per_turn(path: str | Path, metrics: Sequence[str] = PER_TURN_METRICS) -> pd.DataFrame:
    """Read per-turn scores written by ``evaluate responses --per-turn``."""
    rows, f = [], str(path)
    for no, obj in read_records(path):
        if "hypothesis" in obj and not any(m in obj for m in metrics):
            raise DataError("this is a responses file, not per-turn scores; write those with "
                            "`kokoro-nb evaluate responses FILE --per-turn OUT`", file=f, line=no)
        row = {}
        for key in ("dialogue_id", "turn", *metrics):
            if key not in obj:
                raise DataError("missing field", file=f, line=no, field=key)
            v = obj[key]
            if key != "dialogue_id" and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise DataError(f"expected a number, got {v!r}", file=f, line=no, field=key)
            row[key] = v
        row["dialogue_id"] = str(row["dialogue_id"])
        row["tokenizer"] = obj.get("tokenizer")
        rows.append(row)
    if not rows:
        raise DataError("no records in file", file=f)
    df = pd.DataFrame(rows)
    dup = df.duplicated(["dialogue_id", "turn"])
    if dup.any():
        d = df[dup].iloc[0]
        raise DataError(f"{int(dup.sum())} duplicate turn(s), first: {d['dialogue_id']}/{d['turn']}", file=f)
    return df


def evaluate_scores_file(path: str | Path, *, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 42) -> ScoreResult:
    """Read a scores JSONL and score it."""
    check_n_boot(n_boot)
    ids, gold, pred = read_scores(path)
    return evaluate_scores(gold, pred, ids, n_boot=n_boot, seed=seed)


def evaluate_results(results_dir: str | Path, kind: str, **kw) -> pd.DataFrame:
    """Score every *kind* ("responses" or "scores") JSONL under *results_dir*; one row per file.

    Empty when there is none: a notebook shows "not run yet" instead of numbers.
    """
    if kind not in ("responses", "scores"):
        raise DataError(f"unknown kind {kind!r}; expected 'responses' or 'scores'")
    rows = {}
    for p in find_results(results_dir)[kind]:
        name = str(p.relative_to(results_dir))
        if kind == "responses":
            r = evaluate_responses_file(p, **kw)
            rows[name] = {**r.scores, "turns": r.n_turns, "dialogues": r.n_dialogues,
                          "empty": r.n_empty_hypotheses, "signature": r.signature}
        else:
            r = evaluate_scores_file(p, **kw)
            rows[name] = {**{k: r.overall[k] for k in SCORE_METRICS}, "dialogues": r.n_dialogues,
                          "null": r.n_null, "signature": r.signature}
    return pd.DataFrame.from_dict(rows, orient="index")
