"""Write the per-file SHA-256 manifests shipped with the package (maintainers only).

Run on a verbatim copy of the pinned upstream commit after changing it in ``config``:

    python scripts/write_manifests.py kokorochat PATH/TO/KokoroChat src/kokoro_nb/kokorochat_manifest.json
    python scripts/write_manifests.py translation PATH/TO/Multilingual-KokoroChat src/kokoro_nb/translation_manifest.json
    python scripts/write_manifests.py psy-insight PATH/TO/Psy-Insight src/kokoro_nb/psy_insight_manifest.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from kokoro_nb import config
from kokoro_nb.data.sources import (
    DIALOGUE_FOLDER,
    PSY_INSIGHT_FILES,
    PSY_INSIGHT_FOLDER,
    dialogue_folder,
    sha256_file,
    translation_folder,
)
from kokoro_nb.schema import TRANSLATION_FOLDER


def _write(out: Path, repo: str, commit: str, files: dict[str, str]) -> None:
    out.write_text(json.dumps({"repository": repo, "commit": commit, "files": files}, indent=0) + "\n",
                   encoding="utf-8")


def write_manifest(root: Path, out: Path) -> None:
    """Write the manifest of a verbatim KokoroChat copy (its ``kokorochat_dialogues/*.json``)."""
    files = {f"{DIALOGUE_FOLDER}/{p.name}": sha256_file(p)
             for p in sorted(dialogue_folder(Path(root)).glob("*.json"), key=lambda p: p.name)}
    _write(Path(out), config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT, files)


def write_translation_manifest(root: Path, out: Path) -> None:
    """Write the manifest of a verbatim translation copy (its ``English/*.json``)."""
    files = {f"{TRANSLATION_FOLDER}/{p.name}": sha256_file(p)
             for p in sorted(translation_folder(Path(root)).glob("*.json"), key=lambda p: p.name)}
    _write(Path(out), config.TRANSLATION_REPO, config.TRANSLATION_COMMIT, files)


def write_psy_insight_manifest(root: Path, out: Path) -> None:
    """Write the manifest of the Psy-Insight files the project reads (``data/`` of a verbatim copy)."""
    root = Path(root)
    files = {}
    for name in sorted(PSY_INSIGHT_FILES.values()):
        key = f"{PSY_INSIGHT_FOLDER}/{name}"
        if not (root / key).is_file():
            raise SystemExit(f"write_manifests: {root / key}: no such file (give the repository root)")
        files[key] = sha256_file(root / key)
    _write(Path(out), config.PSY_INSIGHT_REPO, config.PSY_INSIGHT_COMMIT, files)


WRITERS = {"kokorochat": write_manifest, "translation": write_translation_manifest,
           "psy-insight": write_psy_insight_manifest}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", choices=tuple(WRITERS))
    p.add_argument("root", type=Path, help="verbatim copy of the pinned commit")
    p.add_argument("out", type=Path, help="manifest file to write")
    args = p.parse_args(argv)
    WRITERS[args.which](args.root, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
