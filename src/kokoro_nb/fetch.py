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
# One file at a time from the pinned commit: a user asks for some dialogues, or for all of them,
# and never downloads the Chinese half (the repository's archive holds both).
TRANSLATION_FILE_URL = (f"https://raw.githubusercontent.com/{config.TRANSLATION_REPO}/"
                        f"{config.TRANSLATION_COMMIT}/{{path}}")
PSY_INSIGHT_URL = (f"https://github.com/{config.PSY_INSIGHT_REPO}/archive/"
                   f"{config.PSY_INSIGHT_COMMIT}.zip")


@lru_cache(maxsize=1)
def kokorochat_manifest() -> dict[str, str]:
    """Return {relative path: SHA-256} for every dialogue file of the pinned commit."""
    text = resources.files("kokoro_nb").joinpath("kokorochat_manifest.json").read_text(encoding="utf-8")
    return json.loads(text)["files"]


@lru_cache(maxsize=1)
def translation_manifest() -> dict[str, str]:
    """Return {relative path: SHA-256} for every English file of the pinned translation commit."""
    text = resources.files("kokoro_nb").joinpath("translation_manifest.json").read_text(encoding="utf-8")
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
    return compare_with_manifest({f"{DIALOGUE_FOLDER}/{p.name}": p for p in folder.glob("*.json")},
                                 manifest)


def compare_with_manifest(present: dict[str, Path], manifest: dict[str, str]) -> dict:
    """Compare files (manifest key -> path) with their SHA-256 manifest: what matched and what not."""
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


def fetch_translation(ids=None, dest: str | Path | None = None, *, url: str = TRANSLATION_FILE_URL,
                      manifest: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Download the English translation files of dialogue *ids* (all when None), each checked
    against the SHA-256 manifest of the pinned commit; return the root holding ``English/``.

    Files already in *dest* with the right hash are not downloaded again. A dialogue the
    translation does not have (7 of KokoroChat's) is simply not fetched: the loader lists it.
    """
    from tqdm.auto import tqdm

    from .schema import TRANSLATION_FOLDER, TRANSLATION_PREFIX
    manifest = translation_manifest() if manifest is None else manifest
    root = Path(dest) if dest else config.cache_dir() / "downloads" / \
        f"multilingual-kokorochat-{config.TRANSLATION_COMMIT[:7]}"
    if ids is None:
        wanted = sorted(manifest)
    else:
        wanted = [k for k in (f"{TRANSLATION_FOLDER}/{TRANSLATION_PREFIX}{i}.json" for i in ids) if k in manifest]
    todo = [k for k in wanted if not ((root / k).is_file() and sha256_file(root / k) == manifest[k])]
    if todo:
        try:
            import pooch
        except ImportError:  # pragma: no cover - pooch is a dependency
            from .errors import MissingDependencyError
            raise MissingDependencyError("downloading needs pooch: pip install pooch") from None
        for key in tqdm(todo, desc="translation files", unit="file", disable=not progress):
            try:
                pooch.retrieve(url.format(path=key), known_hash=f"sha256:{manifest[key]}",
                               path=root / TRANSLATION_FOLDER, fname=Path(key).name, progressbar=False)
            except ValueError as exc:     # pooch: hash mismatch
                raise DataError(f"download does not match the SHA-256 manifest of commit "
                                f"{config.TRANSLATION_COMMIT[:7]} ({exc})", file=key) from None
            except Exception as exc:      # network errors come in many types
                raise DataNotFoundError(
                    f"could not download {key} from {url.format(path=key)} ({type(exc).__name__}: {exc}). "
                    f"Without network, point at a local copy with --translation PATH or "
                    f"${config.TRANSLATION_ENV}.") from None
    return root


def verify_translation(root: Path, manifest: dict[str, str] | None = None) -> dict:
    """Compare the English files under *root* with the translation manifest."""
    from .schema import TRANSLATION_FOLDER
    from .translation import translation_folder
    manifest = translation_manifest() if manifest is None else manifest
    return compare_with_manifest(
        {f"{TRANSLATION_FOLDER}/{p.name}": p for p in translation_folder(Path(root)).glob("*.json")}, manifest)


def write_translation_manifest(root: Path, out: Path) -> None:
    """Write the per-file SHA-256 manifest of a verbatim copy of the translation (maintainers only)."""
    from .schema import TRANSLATION_FOLDER
    from .translation import translation_folder
    files = {f"{TRANSLATION_FOLDER}/{p.name}": sha256_file(p)
             for p in sorted(translation_folder(Path(root)).glob("*.json"), key=lambda p: p.name)}
    out.write_text(json.dumps({"repository": config.TRANSLATION_REPO, "commit": config.TRANSLATION_COMMIT,
                               "files": files}, indent=0) + "\n", encoding="utf-8")


def write_manifest(root: Path, out: Path) -> None:
    """Write the per-file SHA-256 manifest of a verbatim upstream copy (maintainers only)."""
    from .corpus import DIALOGUE_FOLDER, dialogue_folder
    files = {f"{DIALOGUE_FOLDER}/{p.name}": sha256_file(p)
             for p in sorted(dialogue_folder(root).glob("*.json"), key=lambda p: p.name)}
    out.write_text(json.dumps({"repository": config.KOKOROCHAT_REPO, "commit": config.KOKOROCHAT_COMMIT,
                               "files": files}, indent=0) + "\n", encoding="utf-8")
