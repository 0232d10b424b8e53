"""Human-evaluation kit: blinding, the paper's majority rule, intervals, agreement, bad answers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kokoro_nb import cli
from kokoro_nb.evaluate import human_eval as H


@pytest.mark.parametrize("votes, expected", [
    (["A", "A", "A", "B", "B"], "A"),
    (["B", "B", "B", "tie", "A"], "B"),
    (["A", "A", "B", "B", "tie"], "tie"),          # no side over half
    (["tie", "tie", "tie", "A", "A"], "tie"),      # ties over half
    (["A", "A", "tie", "tie"], "tie"),             # exactly half is not over half
    (["A"], "A"),
    ([], "none"),
])
def test_majority_follows_the_paper(votes, expected):
    assert H.majority(votes) == expected


def _items(n=30):
    return pd.DataFrame({"dialogue_id": [str(i // 3) for i in range(n)], "turn": [i % 3 + 1 for i in range(n)],
                         "context": [f"ctx {i}" for i in range(n)],
                         "sysA": [f"a{i}" for i in range(n)], "sysB": [f"b{i}" for i in range(n)]})


def test_make_kit_blinds_order_and_sides():
    items = _items()
    sheet, key = H.make_kit(items, ("sysA", "sysB"), seed=1)
    assert list(sheet.columns) == list(H.SHEET_COLUMNS) and "sysA" not in sheet.to_csv()
    swapped = key["system_1"] == "sysB"
    assert 0 < swapped.sum() < len(key)                                         # sides randomised
    assert key["dialogue_id"].tolist() != items["dialogue_id"].tolist()         # order randomised
    for s, k in zip(sheet.itertuples(), key.itertuples()):                       # the key undoes it
        row = items[(items["dialogue_id"] == k.dialogue_id) & (items["turn"] == k.turn)].iloc[0]
        assert s.response_1 == row[k.system_1] and s.response_2 == row[k.system_2] and s.context == row["context"]


def test_write_kit_keeps_the_key_apart_and_form_is_offline(tmp_path):
    items = _items(6)
    items.loc[0, "context"] = 'クライアント: </script><b>"x"</b>'
    sheet, key = H.make_kit(items, ("sysA", "sysB"))
    paths = H.write_kit(sheet, key, tmp_path)
    assert paths["key"].parent == tmp_path and paths["sheet"].parent.name == "sheets"
    assert not any(p.name.startswith("key") for p in (tmp_path / "sheets").iterdir())
    page = paths["form"].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<link" not in page and " src=" not in page
    assert "new Blob(" in page and ".download" in page
    assert "</script><b>" not in page                                           # embedded data escaped
    data = page.split('type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)[0]["item_id"] == "q001" and "sysA" not in data


def test_score_recovers_a_planted_preference(tmp_path):
    items = _items(60)
    sheet, key = H.make_kit(items, ("sysA", "sysB"), seed=3)
    answers = H.synthetic_answers(sheet, key, np.full(len(key), 0.8), annotators=5, accuracy=0.9, seed=0)
    files = []
    for df in answers:
        f = tmp_path / f"{df['annotator'][0]}.csv"
        df.to_csv(f, index=False)
        files.append(f)
    H.write_kit(sheet, key, tmp_path)
    r = H.score_files(tmp_path / "key.csv", files)
    wtl = r["win_tie_loss"]
    assert r["annotators"] == 5 and r["items_with_votes"] == 60
    assert sum(v["count"] for v in wtl.values()) == 60
    assert wtl["loss"]["share"] > 0.6 and r["sign_test_p"] < 0.01                # B preferred
    lo, hi = wtl["loss"]["ci"]
    assert lo < wtl["loss"]["share"] < hi
    assert 0.4 < r["fleiss_kappa"] <= 1 and r["kappa_items"] == 60


def test_random_annotators_do_not_agree(tmp_path):
    sheet, key = H.make_kit(_items(200), ("sysA", "sysB"))
    files = []
    for df in H.synthetic_answers(sheet, key, np.full(len(key), 0.5), annotators=4, accuracy=0.0, seed=2):
        files.append(tmp_path / f"{df['annotator'][0]}.csv")
        df.to_csv(files[-1], index=False)
    r = H.score_answers(H.read_answers(files, key), key)
    assert abs(r["fleiss_kappa"]) < 0.1 and r["annotators"] == 4


def test_kappa_matches_statsmodels_by_hand():
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
    raw = np.array([[0, 0, 1], [2, 2, 2], [0, 1, 1], [2, 0, 2]])
    ans = pd.DataFrame([(f"q{i}", f"r{j}", H.OUTCOMES[v]) for i, row in enumerate(raw) for j, v in enumerate(row)],
                       columns=["item_id", "annotator", "outcome"])
    got, n = H.fleiss_kappa(ans)
    assert n == 4 and got == pytest.approx(fleiss_kappa(aggregate_raters(raw, n_cat=3)[0]))


def _key_and_answers(tmp_path, rows, header="item_id,answer,annotator"):
    sheet, key = H.make_kit(_items(3), ("sysA", "sysB"))
    H.write_kit(sheet, key, tmp_path)
    f = tmp_path / "ann.csv"
    f.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path / "key.csv", f


@pytest.mark.parametrize("rows, words", [
    (["q001,1,x", "q009,2,x"], ["ann.csv:3", "item_id", "unknown item 'q009'"]),
    (["q001,left,x"], ["ann.csv:2", "answer", "expected one of 1, 2, tie"]),
    (["q001,1,x", "q001,2,x"], ["ann.csv:3", "answered q001 twice"]),
])
def test_bad_answers_give_exit_2(tmp_path, capsys, rows, words):
    k, f = _key_and_answers(tmp_path, rows)
    assert cli.main(["-q", "human-eval", "score", str(k), str(f)]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and len(err.strip().splitlines()) == 1


def test_answers_csv_from_a_spreadsheet(tmp_path, capsys):
    """Excel writes 'CSV UTF-8' with a BOM: accepted. Shift-JIS is refused with the file named."""
    k, f = _key_and_answers(tmp_path, ["q001,1", "q002,TIE", "q003,"], header="item_id,answer")
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert cli.main(["-q", "human-eval", "score", str(k), str(f), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["annotators"] == 1 and d["blank_answers"] == 1 and d["items_with_votes"] == 2
    f.write_bytes("item_id,answer\nq001,同等\n".encode("shift_jis"))
    assert cli.main(["-q", "human-eval", "score", str(k), str(f)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_make_command_end_to_end(synthetic_kokorochat_dir, tmp_path, capsys):
    import kokoro_nb
    from kokoro_nb.evaluate import results
    c = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)
    from kokoro_nb.data.splits import response_turns
    t = response_turns(c)
    results.write_responses(tmp_path / "copy.jsonl", t.assign(hypothesis=t["previous_counselor"]))
    code = cli.main(["-q", "human-eval", "make", str(tmp_path / "copy.jsonl"), "reference", "--data",
                     str(synthetic_kokorochat_dir), "--out", str(tmp_path / "kit"), "--dialogues", "3",
                     "--per-dialogue", "2"])
    assert code == 0
    sheet = pd.read_csv(tmp_path / "kit" / "sheets" / "sheet.csv", dtype=str, keep_default_na=False)
    key = pd.read_csv(tmp_path / "kit" / "key.csv", dtype=str)
    assert len(sheet) == 6 and key["dialogue_id"].nunique() == 3
    assert set(key["system_1"]) | set(key["system_2"]) == {"copy", "reference"}
    assert all(len(x) for x in sheet["context"])
    assert cli.main(["-q", "human-eval", "make", str(tmp_path / "copy.jsonl"), "reference", "--data",
                     str(synthetic_kokorochat_dir), "--out", str(tmp_path / "k2"), "--dialogues", "0"]) == 2
    results.write_responses(tmp_path / "alien.jsonl", t.assign(hypothesis="x", dialogue_id="nope" + t["dialogue_id"].astype(str)))
    capsys.readouterr()
    assert cli.main(["-q", "human-eval", "make", str(tmp_path / "alien.jsonl"), "reference", "--data",
                     str(synthetic_kokorochat_dir), "--out", str(tmp_path / "k3")]) == 2
    assert "no history in the corpus" in capsys.readouterr().err


_DOM_SHIM = r"""
const els = {};
function el(tag) {
  return {tag, children: [], classList: {add() {}}, style: {}, hidden: false, value: "",
          appendChild(c) { this.children.push(c); return c; }, click() { clicked.push(this.download); }};
}
const clicked = [];
const radios = [];
globalThis.alert = (m) => { throw new Error("alert: " + m); };
globalThis.document = {
  getElementById(id) {
    if (id === "data") return {textContent: DATA};
    if (!els[id]) els[id] = el("div");
    return els[id];
  },
  createElement(tag) { const e = el(tag); if (tag === "input") radios.push(e); return e; },
  createTextNode(t) { return {text: t}; },
};
"""


def test_html_form_saves_answers_as_csv(tmp_path):
    """Run the form's script in node with a minimal DOM: answer, save, read the CSV it builds."""
    import shutil
    import subprocess
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    sheet, key = H.make_kit(_items(4), ("sysA", "sysB"))
    page = H.render_form(sheet)
    data = page.split('type="application/json">')[1].split("</script>")[0]
    script = page.split("<script>")[1].split("</script>")[0]
    driver = """
for (const r of radios) if ((r.name === "q001" && r.value === "2") || (r.name === "q003" && r.value === "tie")) r.onchange();
document.getElementById("annotator").value = "Ann O'Tator";
let blob;
URL.createObjectURL = (b) => { blob = b; return "blob:x"; };
document.getElementById("save").onclick();
blob.text().then((t) => console.log(JSON.stringify({csv: t, file: clicked[0]})));
"""
    js = tmp_path / "form.js"
    js.write_text(f"const DATA = {json.dumps(data)};\n{_DOM_SHIM}\n{script}\n{driver}", encoding="utf-8")
    r = subprocess.run(["node", str(js)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["file"] == "answers-Ann_O_Tator.csv"
    f = tmp_path / got["file"]
    f.write_text(got["csv"], encoding="utf-8")
    rows = pd.read_csv(f, dtype=str, keep_default_na=False)
    assert rows["answer"].tolist() == ["2", "", "tie", ""] and set(rows["annotator"]) == {"Ann O'Tator"}
    ans = H.read_answers([f], key)                                  # the scorer reads what the form saves
    assert ans["outcome"].tolist()[0] in ("A", "B") and ans["outcome"].tolist()[2] == "tie"


def test_reliability_sweep_agreement_grows_with_annotator_accuracy(tmp_path):
    sheet, key = H.make_kit(_items(60), ("sysA", "sysB"), seed=3)
    paths = H.write_kit(sheet, key, tmp_path)
    sweep = H.reliability_sweep(sheet, key, paths["key"], np.full(len(key), 0.8), tmp_path,
                                accuracies=(0.0, 0.95), seed=1)
    assert list(sweep.index) == [0.0, 0.95]
    assert list(sweep.columns) == ["Fleiss kappa", "tie share", "loss share", "sign test p"]
    noisy, reliable = sweep.loc[0.0], sweep.loc[0.95]
    assert reliable["Fleiss kappa"] > 0.6 > 0.2 > noisy["Fleiss kappa"]
    assert reliable["loss share"] > noisy["loss share"] and reliable["sign test p"] < 0.01
    # the same answers as scoring the files by hand
    by_hand = H.synthetic_answers(sheet, key, np.full(len(key), 0.8), annotators=5, accuracy=0.95, seed=1)
    for df in by_hand:
        df.to_csv(tmp_path / f"hand-{df['annotator'][0]}.csv", index=False)
    r = H.score_files(paths["key"], [tmp_path / f"hand-{df['annotator'][0]}.csv" for df in by_hand])
    assert reliable["Fleiss kappa"] == r["fleiss_kappa"]
