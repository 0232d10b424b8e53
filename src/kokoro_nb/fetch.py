"""Download the data sets for users with a network, verified file by file.

KokoroChat is fetched as the GitHub archive of the pinned upstream commit. GitHub does not
promise byte-stable archives, so instead of one archive hash every extracted dialogue file is
checked against ``kokorochat_manifest.json`` (SHA-256 per file, computed from a verbatim copy of
that commit). Downloads land in the user cache folder, never inside the project.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import config
from .errors import DataError, DataNotFoundError

KOKOROCHAT_URL = (f"https://github.com/{config.KOKOROCHAT_REPO}/archive/"
                  f"{config.KOKOROCHAT_COMMIT}.zip")
PSY_INSIGHT_URL = (f"https://github.com/{config.PSY_INSIGHT_REPO}/archive/"
                   f"{config.PSY_INSIGHT_COMMIT}.zip")


@lru_cache(maxsize=1)
def kokorochat_manifest() -> dict[str, str]:
    """Return {relative path: SHA-256} for every dialogue file of the pinned commit."""
    text = resources.files("kokoro_nb").joinpath("kokorochat_manifest.json").read_text(encoding="utf-8")
    return json.loads(text)["files"]


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_kokorochat(root: Path, manifest: dict[str, str] | None = None) -> dict:
    """Compare the dialogue files under *root* with the manifest; return what matched and what not."""
    from .corpus import DIALOGUE_FOLDER, dialogue_folder
    manifest = kokorochat_manifest() if manifest is None else manifest
    folder = dialogue_folder(Path(root))
    present = {f"{DIALOGUE_FOLDER}/{p.name}": p for p in folder.glob("*.json")}
    mismatch = sorted(k for k, p in present.items() if k in manifest and sha256_file(p) != manifest[k])
    missing = sorted(set(manifest) - set(present))
    unexpected = sorted(set(present) - set(manifest))
    match = sum(1 for k in present if k in manifest) - len(mismatch)
    return {"ok": not (mismatch or missing or unexpected), "match": match, "mismatch": mismatch,
            "missing": missing, "unexpected": unexpected}


def _download_zip(url: str, dest: Path, what: str) -> Path:
    try:
        import pooch
    except ImportError:  # pragma: no cover - pooch is a dependency
        from .errors import MissingDependencyError
        raise MissingDependencyError("downloading needs pooch: pip install pooch") from None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        files = pooch.retrieve(url, known_hash=None, path=dest, fname=f"{what}.zip",
                               processor=pooch.Unzip(extract_dir=what), progressbar=True)
    except Exception as exc:  # network errors come in many types (requests, OSError, HTTPError)
        raise DataNotFoundError(
            f"could not download {what} from {url} ({type(exc).__name__}: {exc}). Without network, "
            f"point at a local copy with --data PATH or ${config.KOKOROCHAT_ENV} / ${config.PSY_INSIGHT_ENV}."
        ) from None
    # The archive holds one top folder named <repo>-<commit>.
    top = {Path(f).relative_to(dest / what).parts[0] for f in files}
    return dest / what / sorted(top)[0]


def fetch_kokorochat(dest: str | Path | None = None, *, url: str = KOKOROCHAT_URL,
                     manifest: dict[str, str] | None = None) -> Path:
    """Download KokoroChat at the pinned commit, verify every file, and return its root folder."""
    dest = Path(dest) if dest else config.cache_dir() / "downloads"
    what = f"kokorochat-{config.KOKOROCHAT_COMMIT[:7]}"
    root = dest / what
    if root.is_dir():
        candidates = [p for p in root.iterdir() if p.is_dir()]
        if candidates and verify_kokorochat(candidates[0], manifest)["ok"]:
            return candidates[0]
    root = _download_zip(url, dest, what)
    check = verify_kokorochat(root, manifest)
    if not check["ok"]:
        bad = (check["mismatch"] + check["missing"] + check["unexpected"])[:5]
        raise DataError(f"download does not match the SHA-256 manifest of commit "
                        f"{config.KOKOROCHAT_COMMIT[:7]}: {len(check['mismatch'])} differ, "
                        f"{len(check['missing'])} missing, {len(check['unexpected'])} unexpected "
                        f"(first: {', '.join(bad)})", file=str(root))
    return root


def fetch_psy_insight(dest: str | Path | None = None, *, url: str = PSY_INSIGHT_URL) -> Path:
    """Download Psy-Insight at the pinned commit and return its ``data/`` folder."""
    dest = Path(dest) if dest else config.cache_dir() / "downloads"
    root = _download_zip(url, dest, f"psy-insight-{config.PSY_INSIGHT_COMMIT[:7]}")
    return root / "data"


def write_manifest(root: Path, out: Path) -> None:
    """Write the per-file SHA-256 manifest of a verbatim upstream copy (maintainers only)."""
    from .corpus import DIALOGUE_FOLDER, dialogue_folder
    files = {f"{DIALOGUE_FOLDER}/{p.name}": sha256_file(p)
             for p in sorted(dialogue_folder(root).glob("*.json"), key=lambda p: p.name)}
    out.write_text(json.dumps({"repository": config.KOKOROCHAT_REPO, "commit": config.KOKOROCHAT_COMMIT,
                               "files": files}, indent=0) + "\n", encoding="utf-8")
