"""scripts/write_manifests.py: the maintainer's manifests are what verification then accepts."""
from __future__ import annotations

import json
import runpy
from pathlib import Path

from kokoro_nb import config
from kokoro_nb.data import sources
from kokoro_nb.testing.synthetic import write_kokorochat, write_psy_insight, write_translation

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "write_manifests.py"


def test_written_manifests_verify_their_own_copy(tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    ja = write_kokorochat(tmp_path / "ja", n_dialogues=5)
    en = write_translation(tmp_path / "en", ja, missing=("2",))
    assert main(["kokorochat", str(ja), str(tmp_path / "k.json")]) == 0
    assert main(["translation", str(en), str(tmp_path / "t.json")]) == 0
    k = json.loads((tmp_path / "k.json").read_text(encoding="utf-8"))
    t = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert (k["repository"], k["commit"]) == (config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT)
    assert (t["repository"], t["commit"]) == (config.TRANSLATION_REPO, config.TRANSLATION_COMMIT)
    assert len(k["files"]) == 5 and len(t["files"]) == 4
    assert sources.verify_kokorochat(ja, k["files"])["ok"]
    assert sources.verify_translation(en, t["files"])["ok"]
    (sources.dialogue_folder(ja) / "3.json").write_text("{}", encoding="utf-8")
    assert sources.verify_kokorochat(ja, k["files"])["mismatch"] == ["kokorochat_dialogues/3.json"]


def test_written_psy_insight_manifest_holds_the_two_files_read(tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    psy = write_psy_insight(tmp_path / "psy")
    (psy / "data" / "README.md").write_text("not read", encoding="utf-8")
    assert main(["psy-insight", str(psy), str(tmp_path / "p.json")]) == 0
    p = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert (p["repository"], p["commit"]) == (config.PSY_INSIGHT_REPO, config.PSY_INSIGHT_COMMIT)
    assert sorted(p["files"]) == ["data/cn_data_version7.json", "data/en_data_version7.json"]
    assert sources.verify_psy_insight(psy, p["files"])["ok"]
    assert sources.verify_psy_insight(psy / "data", p["files"])["ok"]      # or its data/ folder
    (psy / "data" / "en_data_version7.json").write_text("[]", encoding="utf-8")
    assert sources.verify_psy_insight(psy, p["files"])["mismatch"] == ["data/en_data_version7.json"]
