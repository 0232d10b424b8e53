"""Loading, validation and caching of corpora, on synthetic data the tests write."""
from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb.data import corpus as corpus_mod
from kokoro_nb.cli import main
from kokoro_nb.errors import DataError, DataNotFoundError
from kokoro_nb.schema import DIALOGUE_COLUMNS, TURN_COLUMNS, UTTERANCE_COLUMNS


def _load(path, **kw):
    return kokoro_nb.load_kokorochat(path, progress=False, **kw)


def _edit(root: Path, name: str, fn) -> Path:
    """Apply *fn* to the parsed JSON of one dialogue file and write it back."""
    f = root / "kokorochat_dialogues" / name
    rec = json.loads(f.read_text(encoding="utf-8"))
    fn(rec)
    f.write_text(json.dumps(rec, ensure_ascii=False), encoding="utf-8")
    return f


def test_tables_follow_the_schema(synthetic_kokorochat_dir):
    c = _load(synthetic_kokorochat_dir)
    assert list(c.dialogues.columns) == list(DIALOGUE_COLUMNS)
    assert list(c.utterances.columns) == list(UTTERANCE_COLUMNS)
    assert len(c) == 20 and c.report.found == c.report.loaded == 20
    # dialogue order is numeric, not lexical: 1, 2, ..., 10, 11 ...
    assert list(c.dialogues["dialogue_id"][:11]) == [str(i) for i in range(1, 12)]
    assert c.utterances.groupby("dialogue_id").size().sum() == c.dialogues["n_utterances"].sum()
    first = json.loads((synthetic_kokorochat_dir / "kokorochat_dialogues" / "1.json").read_text())
    u1 = c.utterances[c.utterances["dialogue_id"] == "1"]
    assert list(u1["text"]) == [m["utterance"] for m in first["dialogue"]]
    assert list(u1["role"].astype(str)) == [m["role"] for m in first["dialogue"]]
    assert list(u1["n_chars"]) == [len(m["utterance"]) for m in first["dialogue"]]
    assert list(u1["position"]) == list(range(len(first["dialogue"])))
    row = c.dialogues.iloc[0]
    assert row["score"] == first["review_by_client_en"]["score"]
    assert row["D17"] == first["review_by_client_en"]["clarified_issues_cleraly"]


def test_turns_merge_consecutive_messages_of_one_speaker(synthetic_kokorochat_dir):
    c = _load(synthetic_kokorochat_dir)
    t = c.turns()
    assert list(t.columns) == list(TURN_COLUMNS)
    assert t["n_messages"].sum() == len(c.utterances)
    assert (t["n_messages"] > 1).any(), "synthetic data must contain same-speaker runs"
    for did, g in t.groupby("dialogue_id", sort=False):
        roles = list(g["role"].astype(str))
        assert all(a != b for a, b in zip(roles, roles[1:])), did
        u = c.utterances[c.utterances["dialogue_id"] == did]
        assert "\n".join(g["text"]) == "\n".join(u["text"])
        assert list(g["turn"]) == list(range(len(g)))


def test_subset_and_sample(synthetic_kokorochat_dir):
    c = _load(synthetic_kokorochat_dir)
    s = c.subset(["3", "5"])
    assert list(s.dialogues["dialogue_id"]) == ["3", "5"]
    assert set(s.utterances["dialogue_id"]) == {"3", "5"}
    a, b = c.sample(5, seed=1), c.sample(5, seed=1)
    assert list(a.dialogues["dialogue_id"]) == list(b.dialogues["dialogue_id"]) and len(a) == 5
    assert len(_load(synthetic_kokorochat_dir, sample=7)) == 7


def test_dialogue_folder_and_archives_give_the_same_tables(synthetic_kokorochat_dir, tmp_path):
    ref = _load(synthetic_kokorochat_dir, cache=False)
    folder = synthetic_kokorochat_dir / "kokorochat_dialogues"
    zpath = tmp_path / "kokoro.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in folder.glob("*.json"):
            zf.write(f, f"KokoroChat-44aa9d8/kokorochat_dialogues/{f.name}")
    tpath = tmp_path / "kokoro.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(folder, arcname="kokorochat_dialogues")
    for p in (folder, zpath, tpath):
        c = _load(p, cache=False)
        pd.testing.assert_frame_equal(c.utterances, ref.utterances)
        pd.testing.assert_frame_equal(c.dialogues.drop(columns="source_file"),
                                      ref.dialogues.drop(columns="source_file"))


def test_second_load_comes_from_the_cache_and_edits_invalidate_it(synthetic_kokorochat_dir, monkeypatch):
    first = _load(synthetic_kokorochat_dir)
    assert not first.report.from_cache
    monkeypatch.setattr(corpus_mod, "_parse_kokorochat", lambda *a, **k: pytest.fail("parsed again"))
    second = _load(synthetic_kokorochat_dir)
    assert second.report.from_cache
    pd.testing.assert_frame_equal(first.utterances, second.utterances)
    pd.testing.assert_frame_equal(first.dialogues, second.dialogues)
    monkeypatch.undo()
    _edit(synthetic_kokorochat_dir, "2.json", lambda r: r["review_by_client_en"].update(score=1))
    third = _load(synthetic_kokorochat_dir)
    assert not third.report.from_cache and third.dialogues.loc[1, "score"] == 1


def test_cache_lives_in_the_cache_dir_not_the_data_folder(synthetic_kokorochat_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KOKORO_CACHE_DIR", str(tmp_path / "c"))
    before = sorted(p.name for p in synthetic_kokorochat_dir.rglob("*"))
    _load(synthetic_kokorochat_dir)
    assert sorted(p.name for p in synthetic_kokorochat_dir.rglob("*")) == before
    assert list((tmp_path / "c" / "tables").glob("*.parquet"))


def test_parallel_and_serial_parsing_agree(synthetic_kokorochat_dir, monkeypatch):
    monkeypatch.setattr(corpus_mod, "_PARALLEL_MIN_FILES", 1)
    par = _load(synthetic_kokorochat_dir, cache=False)
    monkeypatch.setattr(corpus_mod, "_PARALLEL_MIN_FILES", 10**9)
    ser = _load(synthetic_kokorochat_dir, cache=False)
    pd.testing.assert_frame_equal(par.utterances, ser.utterances)
    pd.testing.assert_frame_equal(par.dialogues, ser.dialogues)


# --------------------------------------------------------------------------- bad input

def _set_item(r):
    r["review_by_client_en"]["felt_respected"] = 6


def _set_score(r):
    r["review_by_client_en"]["score"] = 101


def _del_score(r):
    del r["review_by_client_en"]["score"]


def _bad_role(r):
    r["dialogue"][3]["role"] = "therapist"


def _bad_time(r):
    r["dialogue"][2]["time"] = "yesterday"


def _nat_time(r):
    r["dialogue"][2]["time"] = "NaT"


def _text_not_str(r):
    r["dialogue"][1]["utterance"] = 5


def _no_topic(r):
    del r["topic"]


def _bad_flag(r):
    r["review_by_client_en"]["unwilling_to_continue"] = "yes"


def _bool_item(r):
    r["review_by_client_en"]["felt_respected"] = True


def _missing_time(r):
    del r["dialogue"][0]["time"]


BAD_CASES = [
    # (edit, expected fragments of the message)
    (_set_item, ["3.json", "felt_respected (D2)", "value 6 outside 0-5"]),
    (_bool_item, ["3.json", "felt_respected (D2)", "expected an integer"]),
    (_set_score, ["3.json", "review_by_client_en.score", "value 101 outside 0-100"]),
    (_del_score, ["3.json", "review_by_client_en.score", "missing field"]),
    (_bad_role, ["3.json", "dialogue[3].role", "unknown role 'therapist'"]),
    (_bad_time, ["3.json", "dialogue[2].time", "unparseable time 'yesterday'"]),
    (_nat_time, ["3.json", "dialogue[2].time", "unparseable time 'NaT'"]),
    (_missing_time, ["3.json", "dialogue[0].time", "missing field"]),
    (_text_not_str, ["3.json", "dialogue[1].utterance", "expected text"]),
    (_no_topic, ["3.json", "topic", "missing field"]),
    (_bad_flag, ["3.json", "unwilling_to_continue", "expected null or 'チェックあり'"]),
]


@pytest.mark.parametrize("edit,fragments", BAD_CASES, ids=[f.__name__ for f, _ in BAD_CASES])
def test_strict_mode_names_file_field_and_problem(synthetic_kokorochat_dir, edit, fragments, capsys):
    _edit(synthetic_kokorochat_dir, "3.json", edit)
    with pytest.raises(DataError) as err:
        _load(synthetic_kokorochat_dir, cache=False)
    for frag in fragments:
        assert frag in str(err.value)
    # the CLI says the same in one line on stderr, exit code 2, no traceback
    assert main(["data", "validate", str(synthetic_kokorochat_dir)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.err and all(f in out.err for f in fragments)
    assert "\nkokoro-nb: error: " in "\n" + out.err.replace("\r", "\n")  # after any progress bar


@pytest.mark.parametrize("edit,fragments", BAD_CASES, ids=[f.__name__ for f, _ in BAD_CASES])
def test_lenient_mode_skips_and_accounts_for_every_file(synthetic_kokorochat_dir, edit, fragments):
    _edit(synthetic_kokorochat_dir, "3.json", edit)
    c = _load(synthetic_kokorochat_dir, lenient=True, cache=False)
    r = c.report
    assert (r.found, r.loaded, len(r.skipped)) == (20, 19, 1)
    assert r.loaded + len(r.skipped) == r.found
    assert "3" not in set(c.dialogues["dialogue_id"]) and "3" not in set(c.utterances["dialogue_id"])
    assert r.skipped[0][0].endswith("3.json") and fragments[-1] in r.skipped[0][1]
    assert len(c.utterances) == c.dialogues["n_utterances"].sum()


def test_malformed_json_names_the_line(synthetic_kokorochat_dir):
    f = synthetic_kokorochat_dir / "kokorochat_dialogues" / "4.json"
    lines = f.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].rstrip(",") + " ,,"
    f.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"4\.json:6: malformed JSON"):
        _load(synthetic_kokorochat_dir, cache=False)


def test_duplicate_evaluation_id_is_an_error(synthetic_kokorochat_dir):
    src = synthetic_kokorochat_dir / "kokorochat_dialogues" / "5.json"
    shutil.copy(src, src.with_name("105.json"))
    with pytest.raises(DataError, match=r"105\.json: review_by_client_en.evaluation_id: duplicate evaluation id 5"):
        _load(synthetic_kokorochat_dir, cache=False)
    c = _load(synthetic_kokorochat_dir, cache=False, lenient=True)
    assert (c.report.found, c.report.loaded) == (21, 20)


def test_duplicate_dialogue_id_in_an_archive_is_an_error(synthetic_kokorochat_dir, tmp_path):
    folder = synthetic_kokorochat_dir / "kokorochat_dialogues"
    zpath = tmp_path / "dup.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(folder / "1.json", "kokorochat_dialogues/1.json")
        zf.write(folder / "2.json", "x/kokorochat_dialogues/1.json")
    with pytest.raises(DataError, match="duplicate dialogue id '1'"):
        _load(zpath, cache=False)


def test_empty_folder_and_missing_path(tmp_path, capsys, monkeypatch):
    (tmp_path / "kokorochat_dialogues").mkdir()
    with pytest.raises(DataError, match="no dialogue files"):
        _load(tmp_path, cache=False)
    with pytest.raises(DataNotFoundError, match="no such file or folder"):
        _load(tmp_path / "nowhere")
    monkeypatch.delenv("KOKOROCHAT_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="KOKOROCHAT_DIR"):
        kokoro_nb.load_kokorochat(download=False)
    assert main(["data", "validate", str(tmp_path)]) == 2
    assert "no dialogue files" in capsys.readouterr().err


def test_broken_archive(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read archive"):
        _load(bad, cache=False)


def test_validate_cli_lenient_lists_each_skip(synthetic_kokorochat_dir, capsys):
    _edit(synthetic_kokorochat_dir, "3.json", _set_score)
    _edit(synthetic_kokorochat_dir, "8.json", _bad_role)
    assert main(["data", "validate", str(synthetic_kokorochat_dir), "--lenient", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"]["found"] == 20 and out["files"]["loaded"] == 18 and out["files"]["skipped"] == 2
    reasons = [s["reason"] for s in out["files"]["skipped_reasons"]]
    assert "value 101 outside 0-100" in reasons[0] and "unknown role" in reasons[1]


# --------------------------------------------------------------------------- fetch

def test_fetch_verifies_every_file_against_the_manifest(synthetic_kokorochat_dir, tmp_path, monkeypatch):
    """Serve a zip on loopback, download it, and check the per-file SHA-256 verification."""
    import functools
    import http.server
    import threading

    from kokoro_nb.data import sources
    monkeypatch.setattr(sources, "RETRY_BACKOFF", 0.01)      # the refused connection is retried

    root_name = "KokoroChat-44aa9d8ad21f17413973f5ccfc45970659a2fb16"
    folder = synthetic_kokorochat_dir / "kokorochat_dialogues"
    serve = tmp_path / "serve"
    serve.mkdir()
    with zipfile.ZipFile(serve / "a.zip", "w") as zf:
        for f in folder.glob("*.json"):
            zf.write(f, f"{root_name}/kokorochat_dialogues/{f.name}")
    manifest = {f"kokorochat_dialogues/{f.name}": sources.sha256_file(f) for f in folder.glob("*.json")}
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/a.zip"
    try:
        root = sources.fetch_kokorochat(tmp_path / "dl", url=url, manifest=manifest)
        assert root.name == root_name
        assert len(_load(root, cache=False)) == 20
        bad = dict(manifest, **{"kokorochat_dialogues/1.json": "0" * 64})
        with pytest.raises(DataError, match="1 differ"):
            sources.fetch_kokorochat(tmp_path / "dl2", url=url, manifest=bad)
    finally:
        server.shutdown()
    with pytest.raises(DataNotFoundError, match="could not download"):
        sources.fetch_kokorochat(tmp_path / "dl3", url="http://127.0.0.1:9/none.zip", manifest=manifest)
