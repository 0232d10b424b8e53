"""Psy-Insight loading (kokoro_nb.data.psy_insight) on synthetic files the tests write; the
released files against the shipped manifest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import kokoro_nb
from kokoro_nb.data import psy_insight, sources
from kokoro_nb.errors import DataError, DataNotFoundError
from kokoro_nb.schema import DIALOGUE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def test_psy_insight_maps_roles_and_labels(synthetic_psy_insight_dir):
    c = kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)
    assert list(c.dialogues.columns) == list(DIALOGUE_COLUMNS)
    assert set(c.dialogues["language"]) == {"en", "zh"}
    assert c.report.found == c.report.loaded == 12
    u = c.utterances
    assert set(u["role"].astype(str)) == {"counselor", "client"}
    assert u.loc[u["role"] == "counselor", "strategy"].notna().all()
    assert u.loc[u["role"] == "client", "emotion"].notna().all()
    assert u.loc[u["role"] == "client", "strategy"].isna().all()
    assert c.dialogues["score"].isna().all()


def test_psy_insight_bad_speaker_strict_and_lenient(synthetic_psy_insight_dir):
    f = synthetic_psy_insight_dir / "data" / "en_data_version7.json"
    data = json.loads(f.read_text(encoding="utf-8"))
    data[1]["dialog"][0]["speaker"] = "Narrator"
    f.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=r"en_data_version7.json: \[1\]\.dialog\[0\]\.speaker: unknown speaker"):
        kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)
    c = kokoro_nb.load_psy_insight(synthetic_psy_insight_dir, lenient=True)
    assert (c.report.found, c.report.loaded, len(c.report.skipped)) == (12, 11, 1)


def _edit_turn(root, i, j, **fields):
    f = root / "data" / "en_data_version7.json"
    data = json.loads(f.read_text(encoding="utf-8"))
    data[i]["dialog"][j].update(fields)
    f.write_text(json.dumps(data), encoding="utf-8")


def test_psy_insight_text_and_labels_are_checked(synthetic_psy_insight_dir):
    _edit_turn(synthetic_psy_insight_dir, 0, 1, content=7)
    with pytest.raises(DataError, match=r"\[0\]\.dialog\[1\]\.content: expected text, found 7"):
        kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)
    _edit_turn(synthetic_psy_insight_dir, 0, 1, content="ok", strategy=[1])
    with pytest.raises(DataError, match=r"\.strategy: expected a list of labels, found \[1\]"):
        kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)
    assert psy_insight.labels({"x": "one"}, "x", "f", "[0]") == "one"
    assert psy_insight.labels({}, "x", "f", "[0]") is None


def test_psy_insight_malformed_json_names_the_line(synthetic_psy_insight_dir):
    f = synthetic_psy_insight_dir / "data" / "cn_data_version7.json"
    f.write_text('[\n  {"dialog_id": "认知",\n  oops}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"cn_data_version7.json:3: malformed JSON"):
        kokoro_nb.load_psy_insight(synthetic_psy_insight_dir)


def test_psy_insight_missing_path(tmp_path, monkeypatch):
    """A path that is not there is never replaced by the download (tests/data/test_fetch.py)."""
    monkeypatch.delenv("PSY_INSIGHT_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="PSY_INSIGHT_DIR"):
        kokoro_nb.load_psy_insight(download=False)
    with pytest.raises(DataNotFoundError, match="no such folder"):
        kokoro_nb.load_psy_insight(tmp_path / "nope")
    monkeypatch.setenv("PSY_INSIGHT_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataNotFoundError, match="no such folder"):
        kokoro_nb.load_psy_insight()


def test_shipped_manifest_holds_the_two_files_read():
    m = sources.psy_insight_manifest()
    assert sorted(m) == sorted(f"data/{n}" for n in sources.PSY_INSIGHT_FILES.values())
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in m.values())


@pytest.mark.realdata
def test_real_psy_insight_matches_the_manifest_and_the_size_the_docs_give(psy_insight_dir):
    assert sources.verify_psy_insight(psy_insight_dir) == {"ok": True, "match": 2, "mismatch": [],
                                                            "missing": [], "unexpected": []}
    folder = sources.resolve_psy_insight(psy_insight_dir)
    mb = sum((folder / n).stat().st_size for n in sources.PSY_INSIGHT_FILES.values()) / 1e6
    for page in ("README.md", "book/how_to_run.md"):
        assert f"2 requests, {mb:.1f} MB" in " ".join((ROOT / page).read_text(encoding="utf-8").split()), page
