"""A pairwise human-evaluation kit, as paper 5.1.3 and Figure 5 ran one.

The paper sampled 10 test dialogues and 10 histories of varying length in each, had two models
reply, and asked five counselors which reply was more suitable (win, lose, tie). An item's result
is the majority: a side wins when more than half of the annotators chose it; otherwise (or when
more than half said tie) the item is a tie.

``make`` writes what annotators see (the *sheet*: CSV, and a self-contained HTML form that saves
the answers to a file without any network) and, apart from it, the *key* that says which system
is behind "1" and "2" of each item. Item order and sides are randomised, so an annotator can
tell neither which system wrote a reply nor, from its position, how often one system appeared.
``score`` reads the key and any number of answer files and gives the majority vote per item,
win/tie/loss with exact (Clopper-Pearson) intervals, a two-sided sign test on the decided items
(scipy), and agreement between annotators (Fleiss' kappa, statsmodels). The command line is
:mod:`kokoro_nb.cli.human_eval`.

>>> majority(["A", "A", "tie", "B", "A"]), majority(["A", "A", "B", "B", "tie"])
('A', 'tie')
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from kokoro_nb import config
from kokoro_nb.errors import DataError

ANSWERS = ("1", "2", "tie")              # what an annotator writes in the sheet
OUTCOMES = ("A", "tie", "B")             # what it means once the key is applied
SPEAKER = {"counselor": "カウンセラー", "client": "クライアント"}
SHEET_COLUMNS = ("item_id", "context", "response_1", "response_2", "answer")
KEY_COLUMNS = ("item_id", "dialogue_id", "turn", "system_1", "system_2", "system_A", "system_B")


def majority(votes: Iterable[str]) -> str:
    """Return the item's result by the paper's rule: a side with more than half the votes, else tie."""
    votes = [v for v in votes if v in OUTCOMES]
    if not votes:
        return "none"
    for side in ("A", "B"):
        if votes.count(side) * 2 > len(votes):
            return side
    return "tie"


# --------------------------------------------------------------------------- make

def sample_items(turns: pd.DataFrame, n_dialogues: int = 10, per_dialogue: int = 10,
                 seed: int = config.SEED) -> pd.DataFrame:
    """Draw *n_dialogues* dialogues, then *per_dialogue* of their turns (paper 5.1.3: 10 x 10)."""
    dids = sorted(turns["dialogue_id"].astype(str).unique(), key=lambda s: (len(s), s))
    if not dids:
        raise DataError("no turns to sample human-evaluation items from")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(dids), size=min(n_dialogues, len(dids)), replace=False)
    frames = []
    for did in sorted((dids[i] for i in pick), key=lambda s: (len(s), s)):
        t = turns[turns["dialogue_id"].astype(str) == did]
        frames.append(t.iloc[np.sort(rng.choice(len(t), size=min(per_dialogue, len(t)), replace=False))])
    return pd.concat(frames, ignore_index=True)


def context_text(corpus_turns: pd.DataFrame, dialogue_id: str, turn: int, max_turns: int | None = 8) -> str:
    """Return the history before *turn* as "speaker: text" lines (the last *max_turns* turns)."""
    t = corpus_turns[(corpus_turns["dialogue_id"].astype(str) == str(dialogue_id)) & (corpus_turns["turn"] < turn)]
    t = t.sort_values("turn")
    if max_turns:
        t = t.tail(max_turns)
    return "\n".join(f"{SPEAKER.get(str(r), str(r))}: {x}" for r, x in zip(t["role"], t["text"]))


def make_kit(items: pd.DataFrame, names: tuple[str, str], *, seed: int = config.SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Blind *items* (columns dialogue_id, turn, context, and one reply column per name).

    Returns (sheet, key): items in random order with opaque ids, each pair's sides swapped at
    random; the key alone maps "1"/"2" back to the systems.
    """
    a, b = names
    if a == b:
        raise DataError(f"the two systems need different names, got {a!r} twice")
    for col in ("dialogue_id", "turn", "context", a, b):
        if col not in items:
            raise DataError(f"items lack the column {col!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    swap = rng.integers(2, size=len(items)).astype(bool)
    it = items.iloc[order].reset_index(drop=True)
    sw = swap[: len(it)]
    ids = [f"q{i + 1:03d}" for i in range(len(it))]
    sheet = pd.DataFrame({"item_id": ids, "context": it["context"].to_numpy(),
                          "response_1": np.where(sw, it[b], it[a]), "response_2": np.where(sw, it[a], it[b]),
                          "answer": ""})
    key = pd.DataFrame({"item_id": ids, "dialogue_id": it["dialogue_id"].astype(str).to_numpy(),
                        "turn": it["turn"].to_numpy(), "system_1": np.where(sw, b, a), "system_2": np.where(sw, a, b),
                        "system_A": a, "system_B": b})
    return sheet, key


_FORM = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>
body{{font-family:sans-serif;max-width:60em;margin:1em auto;line-height:1.5}}
.item{{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:1em 0}}
.ctx{{white-space:pre-wrap;background:#f6f6f6;padding:.5em}}
.resp{{display:grid;grid-template-columns:1fr 1fr;gap:1em}}
.resp div{{white-space:pre-wrap;border-left:4px solid #888;padding-left:.5em}}
.done{{border-color:#2a7}}
</style></head><body>
<h1>{title}</h1>
<p>{instructions}</p>
<p><label>Annotator / 評価者: <input id="annotator" required></label>
<span id="progress"></span></p>
<div id="items"></div>
<p><button id="save">Save answers / 回答を保存</button> <a id="link" hidden></a></p>
<script id="data" type="application/json">{data}</script>
<script>
const items = JSON.parse(document.getElementById("data").textContent);
const box = document.getElementById("items");
const answers = {{}};
const labels = {{"1": "Response 1 / 応答1", "2": "Response 2 / 応答2", "tie": "Tie / 同等"}};
function progress() {{
  document.getElementById("progress").textContent =
    Object.keys(answers).length + " / " + items.length + " answered";
}}
for (const it of items) {{
  const d = document.createElement("div"); d.className = "item"; d.id = it.item_id;
  const h = document.createElement("h3"); h.textContent = it.item_id; d.appendChild(h);
  const c = document.createElement("div"); c.className = "ctx"; c.textContent = it.context; d.appendChild(c);
  const r = document.createElement("div"); r.className = "resp";
  for (const k of ["1", "2"]) {{
    const x = document.createElement("div"); x.textContent = labels[k] + "\\n" + it["response_" + k]; r.appendChild(x);
  }}
  d.appendChild(r);
  for (const k of ["1", "2", "tie"]) {{
    const l = document.createElement("label"); const i = document.createElement("input");
    i.type = "radio"; i.name = it.item_id; i.value = k;
    i.onchange = () => {{ answers[it.item_id] = k; d.classList.add("done"); progress(); }};
    l.appendChild(i); l.appendChild(document.createTextNode(" " + labels[k] + "  ")); d.appendChild(l);
  }}
  box.appendChild(d);
}}
progress();
function cell(s) {{ return '"' + String(s).replace(/"/g, '""') + '"'; }}
document.getElementById("save").onclick = () => {{
  const who = document.getElementById("annotator").value.trim();
  if (!who) {{ alert("Please enter your name / 名前を入力してください"); return; }}
  const rows = ["item_id,answer,annotator"];
  for (const it of items) rows.push([it.item_id, answers[it.item_id] || "", who].map(cell).join(","));
  const blob = new Blob([rows.join("\\n") + "\\n"], {{type: "text/csv;charset=utf-8"}});
  const a = document.getElementById("link");
  a.href = URL.createObjectURL(blob);
  a.download = "answers-" + who.replace(/[^\\w-]+/g, "_") + ".csv";
  a.textContent = "download " + a.download; a.hidden = false; a.click();
}};
</script></body></html>
"""

INSTRUCTIONS = ("Read the conversation, then the two candidate counselor replies. Choose the reply that is "
                "more suitable as the counselor's next turn, or Tie. Save when done and send the file back. / "
                "対話を読み、カウンセラーの次の発話としてより適切な応答を選んでください（同等なら Tie）。")


def render_form(sheet: pd.DataFrame, title: str = "Pairwise evaluation / 応答の比較評価") -> str:
    """Return a self-contained HTML form (no network) that saves the answers as a CSV file."""
    data = json.dumps(sheet[["item_id", "context", "response_1", "response_2"]].to_dict(orient="records"),
                      ensure_ascii=False).replace("</", "<\\/")
    return _FORM.format(title=html.escape(title), instructions=html.escape(INSTRUCTIONS), data=data)


def write_kit(sheet: pd.DataFrame, key: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write sheets/sheet.csv and sheets/form.html (for annotators) and key.csv (not for them)."""
    out = Path(out_dir)
    (out / "sheets").mkdir(parents=True, exist_ok=True)
    paths = {"sheet": out / "sheets" / "sheet.csv", "form": out / "sheets" / "form.html", "key": out / "key.csv"}
    sheet[list(SHEET_COLUMNS)].to_csv(paths["sheet"], index=False, encoding="utf-8")
    paths["form"].write_text(render_form(sheet), encoding="utf-8")
    key[list(KEY_COLUMNS)].to_csv(paths["key"], index=False, encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- score

def _read_csv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV as strings (UTF-8, a spreadsheet's BOM allowed); DataError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", file=str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1}); "
                        "save the CSV as UTF-8", file=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"not a readable CSV ({str(exc).strip().splitlines()[-1]})", file=str(path)) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; found {', '.join(df.columns) or 'none'}",
                        file=str(path))
    return df


def read_key(path: str | Path) -> pd.DataFrame:
    """Read a key written by ``make``."""
    key = _read_csv(path, KEY_COLUMNS)
    dup = key["item_id"].duplicated()
    if dup.any():
        raise DataError(f"item {key['item_id'][dup].iloc[0]!r} appears twice", file=str(path), field="item_id")
    return key


def read_answers(paths: Sequence[str | Path], key: pd.DataFrame) -> pd.DataFrame:
    """Read answer files (the form's CSV or a filled sheet); return item_id, annotator, outcome.

    The annotator is the file's ``annotator`` column, else the file name. Blank answers are
    kept as outcome "none" and counted; unknown items, bad answers and an item answered twice
    by one annotator are errors naming the file and line.
    """
    known = dict(zip(key["item_id"], zip(key["system_1"], key["system_2"])))
    names = _names(key)
    rows, seen = [], {}
    for path in paths:
        df = _read_csv(path, ("item_id", "answer"))
        for i, r in enumerate(df.itertuples(index=False), start=2):          # line 1 is the header
            who = (getattr(r, "annotator", "") or "").strip() or Path(path).stem
            item, ans = r.item_id.strip(), r.answer.strip().lower()
            if item not in known:
                raise DataError(f"unknown item {item!r}: not in the key", file=str(path), line=i, field="item_id")
            if ans not in (*ANSWERS, ""):
                raise DataError(f"expected one of {', '.join(ANSWERS)} (or blank), got {r.answer!r}",
                                file=str(path), line=i, field="answer")
            if (who, item) in seen:
                raise DataError(f"annotator {who!r} answered {item} twice (first in {seen[(who, item)]})",
                                file=str(path), line=i, field="item_id")
            seen[(who, item)] = f"{path}:{i}"
            system = known[item][int(ans) - 1] if ans in ("1", "2") else None
            outcome = "tie" if ans == "tie" else "none" if not ans else ("A" if system == names[0] else "B")
            rows.append((item, who, outcome))
    if not rows:
        raise DataError("no answers in the files given")
    return pd.DataFrame(rows, columns=["item_id", "annotator", "outcome"])


def _names(key: pd.DataFrame) -> tuple[str, str]:
    """Return the names of systems (A, B) of a key; A's wins are the "win" of the results."""
    names = set(key["system_A"]) | set(key["system_B"])
    pair = (key["system_A"].iloc[0], key["system_B"].iloc[0])
    if len(names) != 2 or set(key["system_1"]) | set(key["system_2"]) != names:
        raise DataError(f"a key must name the same two systems throughout, found {sorted(names)}")
    return pair


def fleiss_kappa(answers: pd.DataFrame) -> tuple[float, int]:
    """Return (Fleiss' kappa over the three outcomes, number of items every annotator answered)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as _fk
    wide = answers[answers["outcome"] != "none"].pivot(index="item_id", columns="annotator", values="outcome")
    full = wide.dropna()
    if full.shape[1] < 2 or not len(full):
        return float("nan"), len(full)
    table = np.stack([(full == o).sum(axis=1).to_numpy() for o in OUTCOMES], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(_fk(table, method="fleiss")), len(full)


def score_answers(answers: pd.DataFrame, key: pd.DataFrame, *, confidence: float = 0.95) -> dict:
    """Majority vote per item, win/tie/loss of A against B with exact intervals, sign test, kappa."""
    from scipy.stats import binomtest
    a, b = _names(key)
    votes = answers[answers["outcome"] != "none"].groupby("item_id")["outcome"].agg(list)
    result = votes.map(majority).reindex(key["item_id"]).fillna("none")
    n = int((result != "none").sum())
    counts = {o: int((result == o).sum()) for o in OUTCOMES}
    shares = {}
    for o, label in (("A", "win"), ("tie", "tie"), ("B", "loss")):
        ci = binomtest(counts[o], n).proportion_ci(confidence, method="exact") if n else None
        shares[label] = {"count": counts[o], "share": counts[o] / n if n else float("nan"),
                         "ci": [ci.low, ci.high] if ci else None}
    decided = counts["A"] + counts["B"]
    sign_p = binomtest(counts["A"], decided, 0.5).pvalue if decided else float("nan")
    kappa, kappa_items = fleiss_kappa(answers)
    per_annotator = answers.groupby("annotator")["outcome"].value_counts().unstack(fill_value=0)
    return {"A": a, "B": b, "items": len(key), "items_with_votes": n,
            "items_without_votes": int((result == "none").sum()),
            "annotators": int(answers["annotator"].nunique()),
            "blank_answers": int((answers["outcome"] == "none").sum()),
            "win_tie_loss": shares, "sign_test_p": sign_p,
            "fleiss_kappa": kappa, "kappa_items": kappa_items,
            "per_item": result.rename("majority").reset_index(),
            "per_annotator": per_annotator.reindex(columns=[*OUTCOMES, "none"], fill_value=0)}


def score_files(key_path: str | Path, answer_paths: Sequence[str | Path]) -> dict:
    """Read a key and answer files and score them (see :func:`score_answers`)."""
    key = read_key(key_path)
    return score_answers(read_answers(answer_paths, key), key)


# --------------------------------------------------------------------------- synthetic annotators

def synthetic_answers(sheet: pd.DataFrame, key: pd.DataFrame, p_prefer_b: Sequence[float], *,
                      annotators: int = 5, accuracy: float = 0.75, seed: int = config.SEED) -> list[pd.DataFrame]:
    """Return SYNTHETIC answer sheets (for examples and tests, not people).

    Each item has a true outcome drawn with P(B better) = *p_prefer_b* [item] (and the rest
    split between A and tie); each synthetic annotator reports it with probability *accuracy*
    and otherwise picks one of the three answers at random.
    """
    rng = np.random.default_rng(seed)
    a, b = _names(key)
    pb = np.asarray(p_prefer_b, float)
    truth = np.where(rng.random(len(key)) < pb, "B", np.where(rng.random(len(key)) < 0.7, "A", "tie"))
    out = []
    for k in range(annotators):
        noisy = np.where(rng.random(len(key)) < accuracy, truth, rng.choice(OUTCOMES, size=len(key)))
        ans = [("tie" if o == "tie" else "1" if s1 == (a if o == "A" else b) else "2")
               for o, s1 in zip(noisy, key["system_1"])]
        out.append(pd.DataFrame({"item_id": key["item_id"], "answer": ans,
                                 "annotator": f"synthetic-{k + 1}"}))
    return out


def reliability_sweep(sheet: pd.DataFrame, key: pd.DataFrame, key_path: str | Path,
                      p_prefer_b: Sequence[float], out_dir: str | Path, *,
                      accuracies: Sequence[float] = (0.3, 0.5, 0.7, 0.9), annotators: int = 5,
                      seed: int = config.SEED) -> pd.DataFrame:
    """Score SYNTHETIC annotators of each *accuracy* on the same items, as a real study would be
    scored (answer files written to *out_dir*, read back with the key at *key_path*).

    Returns one row per accuracy: Fleiss' kappa, the tie and loss shares, the sign test's p.
    """
    rows = []
    for acc in accuracies:
        files = []
        for df in synthetic_answers(sheet, key, p_prefer_b, annotators=annotators, accuracy=acc, seed=seed):
            files.append(Path(out_dir) / f"sweep-{df['annotator'][0]}.csv")
            df.to_csv(files[-1], index=False)
        r = score_files(key_path, files)
        rows.append({"accuracy": acc, "Fleiss kappa": r["fleiss_kappa"],
                     "tie share": r["win_tie_loss"]["tie"]["share"],
                     "loss share": r["win_tie_loss"]["loss"]["share"], "sign test p": r["sign_test_p"]})
    return pd.DataFrame(rows).set_index("accuracy")
