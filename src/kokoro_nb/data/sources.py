"""Where the releases are: find, download and verify them (every folder layout lives here).

Not parsing: :mod:`~kokoro_nb.data.corpus`, :mod:`~kokoro_nb.data.psy_insight` and
:mod:`~kokoro_nb.data.translation` read what this module finds. The maintainer-only manifest
writer is ``scripts/write_manifests.py``.

Each release is found from an explicit path, then its environment variable, then a verified
download (``resolve_*``).

KokoroChat and the translation arrive as the repository archive of their pinned upstream
commit: one request per data set and runtime. GitHub does not promise byte-stable archives, so
instead of one archive hash every extracted file is checked against a SHA-256 manifest shipped
with the package (``kokorochat_manifest.json``, ``translation_manifest.json``,
``psy_insight_manifest.json``, computed from verbatim copies of those commits). A handful of
translation files (at most :data:`PER_FILE_MAX`) come one request each instead, each checked
too; so do Psy-Insight's two data files, a smaller request than its repository archive, which
also holds the authors' notebooks and figures.

Every request retries with exponential backoff (urllib3's ``Retry``: 429 and 5xx answers and
failed connections; a server's ``Retry-After`` wins), and pooch starts a transfer cut off midway
again. Downloads land in the user cache folder, never inside the project. With
``$KOKORO_ARCHIVE_CACHE`` set (Colab sets it to a Drive folder), archives are looked up there
before any request and kept there after one, named by commit (Psy-Insight's two files too): a
new runtime downloads nothing. A cache folder that cannot be written (a Drive folder shared
read-only) is still read; what is not in it is downloaded into the local folder, with one
warning.
``$KOKORO_DOWNLOAD_MIRROR`` replaces ``https://github.com`` with a server of the same paths.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from kokoro_nb import config
from kokoro_nb.errors import DataError, DataNotFoundError
from kokoro_nb.schema import TRANSLATION_FOLDER, TRANSLATION_PREFIX

GITHUB = "https://github.com"
RAW = "https://raw.githubusercontent.com"
PER_FILE_MAX = 50        # more translation files to fetch than this: the archive, one request
RETRIES = 4              # per request: 429/5xx answers, failed connections and reads
RETRY_BACKOFF = 1.0      # seconds: waits 0, 2, 4, 8 s (plus jitter, so a class spreads out)
TRANSFER_RETRIES = 2     # a transfer cut off midway is started again (pooch)
TIMEOUT = 60             # seconds without a byte before a request counts as failed
_RETRY_STATUS = (429, 500, 502, 503, 504)
DIALOGUE_FOLDER = "kokorochat_dialogues"
CACHE_VERSION = "2"          # bump when parsing or the schema changes: it keys the cached tables
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
PSY_INSIGHT_FOLDER = "data"     # the repository's folder holding PSY_INSIGHT_FILES
PSY_INSIGHT_FILES = {"en": "en_data_version7.json", "zh": "cn_data_version7.json"}


def _mirror() -> str | None:
    return os.environ.get(config.MIRROR_ENV, "").strip().rstrip("/") or None


def archive_url(repo: str, commit: str) -> str:
    """Return the URL of the zip archive of *repo* at *commit*."""
    return f"{_mirror() or GITHUB}/{repo}/archive/{commit}.zip"


def file_url(repo: str, commit: str, path: str) -> str:
    """Return the URL of one file of *repo* at *commit*."""
    mirror = _mirror()
    return f"{mirror}/{repo}/raw/{commit}/{path}" if mirror else f"{RAW}/{repo}/{commit}/{path}"


def archive_name(repo: str, commit: str) -> str:
    """Return the file name an archive is kept under: GitHub's, ``<name>-<full commit>.zip``."""
    return f"{repo.rsplit('/', 1)[-1]}-{commit}.zip"


def archive_cache() -> Path | None:
    """Return the folder of ``$KOKORO_ARCHIVE_CACHE``, None when unset. It may not exist yet, or
    be read-only: :func:`cache_writable` says whether a download can be kept there."""
    env = os.environ.get(config.ARCHIVE_CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else None


_WARNED: set[str] = set()       # cache folders already warned about: one warning each


def cache_writable(folder: Path) -> bool:
    """Return whether a download can be kept in *folder* (created if needed); warn once when not.

    Asked only before a download, never when what is needed is there already. Writing is tried
    (a file created and removed), as the permission bits do not tell: root ignores them, and a
    mount (read-only, or Drive's for a folder shared as Viewer) may refuse whatever they say.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kokoro-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        return True
    except OSError as exc:
        if str(folder) not in _WARNED:
            _WARNED.add(str(folder))
            warnings.warn(f"{config.ARCHIVE_CACHE_ENV}={folder} cannot be written "
                          f"({exc.strerror or exc}): downloads are kept in the local cache instead",
                          stacklevel=2)
        return False


# --------------------------------------------------------------------------- folders

def is_archive(p: Path) -> bool:
    """Return whether *p* is a zip/tar archive file (by its name)."""
    return p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)


def dialogue_folder(root: Path) -> Path:
    """Return the folder holding the ``<id>.json`` files for an upstream root or the folder itself."""
    root = Path(root)
    if (root / DIALOGUE_FOLDER).is_dir():
        return root / DIALOGUE_FOLDER
    return root


def has_dialogues(root: str | os.PathLike) -> bool:
    """Return whether folder *root* holds KokoroChat: ``<id>.json`` files in its
    ``kokorochat_dialogues/`` folder, or in *root* itself (what :func:`dialogue_folder` reads).

    >>> has_dialogues("/no/such/folder")
    False
    """
    folder = dialogue_folder(Path(root))
    return folder.is_dir() and next(folder.glob("*.json"), None) is not None


def translation_folder(root: str | os.PathLike) -> Path:
    """Return the folder holding ``en<id>.json``: the upstream root's ``English/`` or *root* itself."""
    root = Path(root)
    return root / TRANSLATION_FOLDER if (root / TRANSLATION_FOLDER).is_dir() else root


def fingerprint(path: str | os.PathLike) -> str:
    """Return a cheap fingerprint of a data location: names, sizes and mtimes of its files.

    Any edit, addition or removal of a dialogue file changes it; reading no file content keeps
    it fast (one directory scan).
    """
    p = Path(path)
    h = hashlib.sha256(CACHE_VERSION.encode())
    if p.is_file():
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        folder = dialogue_folder(p)
        h.update(str(folder.resolve()).encode())
        with os.scandir(folder) as it:
            entries = sorted((e.name, e.stat()) for e in it if e.name.endswith(".json"))
        h.update("".join(f"{n}|{st.st_size}|{st.st_mtime_ns}\n" for n, st in entries).encode())
    return h.hexdigest()[:20]


_NOT_FOUND = ("KokoroChat not found. Point at a local copy with --data PATH (CLI), "
              "load_kokorochat(PATH), or the environment variable KOKOROCHAT_DIR; "
              "or run `kokoro-nb data fetch` on a machine with network access.")


def resolve_kokorochat(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Return the KokoroChat location: explicit *path* > ``$KOKOROCHAT_DIR`` > verified download."""
    if path is None:
        path = os.environ.get(config.KOKOROCHAT_ENV) or None
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataNotFoundError(f"{p}: no such file or folder (KokoroChat path)")
        return p
    if download:
        return fetch_kokorochat()
    raise DataNotFoundError(_NOT_FOUND)


def resolve_psy_insight(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Return the Psy-Insight ``data/`` folder: explicit *path* (the repository or its ``data/``
    folder) > ``$PSY_INSIGHT_DIR`` > verified download."""
    if path is None:
        path = os.environ.get(config.PSY_INSIGHT_ENV) or None
    if path is not None:
        p = Path(path).expanduser()
        if (p / PSY_INSIGHT_FOLDER).is_dir():
            p = p / PSY_INSIGHT_FOLDER
        if not p.is_dir():
            raise DataNotFoundError(f"{p}: no such folder (Psy-Insight path)")
        return p
    if download:
        return fetch_psy_insight()
    raise DataNotFoundError("Psy-Insight not found. Point at a local copy (the repository or its "
                            f"data/ folder) with --psy-insight PATH or ${config.PSY_INSIGHT_ENV}, or "
                            "run `kokoro-nb data fetch --psy-insight` on a machine with network access.")


def resolve_translation(path: str | os.PathLike | None = None, *, ids: Iterable[str] | None = None,
                        download: bool = True) -> Path:
    """Return the translation folder: explicit *path* > ``$KOKOROCHAT_EN_DIR`` > verified download.

    A path is the repository (or its ``English/`` folder) or a zip/tar archive of either, which
    is extracted once into the cache folder. A download fetches only the files of *ids* (all
    when None; many come as one archive).
    """
    if path is None:
        path = os.environ.get(config.TRANSLATION_ENV) or None
    if path is not None:
        p = Path(path).expanduser()
        if is_archive(p):
            return translation_folder(extract_translation(p))
        if not p.is_dir():
            raise DataNotFoundError(f"{p}: no such folder or zip/tar archive (Multilingual KokoroChat path)")
        return translation_folder(p)
    if download:
        return translation_folder(fetch_translation(ids=ids))
    raise DataNotFoundError("Multilingual KokoroChat not found. Point at a local copy with "
                            f"--translation PATH or ${config.TRANSLATION_ENV}, or run "
                            "`kokoro-nb data fetch --translation` on a machine with network access.")


# --------------------------------------------------------------------------- manifests

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


@lru_cache(maxsize=1)
def psy_insight_manifest() -> dict[str, str]:
    """Return {relative path: SHA-256} for the Psy-Insight files the project reads, pinned commit."""
    text = resources.files("kokoro_nb").joinpath("psy_insight_manifest.json").read_text(encoding="utf-8")
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
    manifest = kokorochat_manifest() if manifest is None else manifest
    folder = dialogue_folder(Path(root))
    return compare_with_manifest({f"{DIALOGUE_FOLDER}/{p.name}": p for p in folder.glob("*.json")},
                                 manifest)


def verify_psy_insight(root: str | os.PathLike, manifest: dict[str, str] | None = None) -> dict:
    """Compare the files the project reads under *root* (the repository or its ``data/`` folder)
    with the Psy-Insight manifest; the repository's other files are not in it."""
    manifest = psy_insight_manifest() if manifest is None else manifest
    folder = resolve_psy_insight(root, download=False)
    return compare_with_manifest({f"{PSY_INSIGHT_FOLDER}/{p.name}": p for p in folder.glob("*.json")
                                  if p.name in PSY_INSIGHT_FILES.values()}, manifest)


def compare_with_manifest(present: dict[str, Path], manifest: dict[str, str]) -> dict:
    """Compare files (manifest key -> path) with their SHA-256 manifest: what matched and what not."""
    mismatch = sorted(k for k, p in present.items() if k in manifest and sha256_file(p) != manifest[k])
    missing = sorted(set(manifest) - set(present))
    unexpected = sorted(set(present) - set(manifest))
    match = sum(1 for k in present if k in manifest) - len(mismatch)
    return {"ok": not (mismatch or missing or unexpected), "match": match, "mismatch": mismatch,
            "missing": missing, "unexpected": unexpected}


# --------------------------------------------------------------------------- requests

class Downloader:
    """A pooch downloader on one requests session whose requests retry with exponential backoff.

    ``requests`` comes with pooch; its adapter takes urllib3's ``Retry``, which waits
    ``RETRY_BACKOFF * 2**(n-1)`` seconds before retry n (the first at once) or what the server's
    ``Retry-After`` says.
    """

    def __init__(self, progressbar: bool = False):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry
        retry = Retry(total=None, connect=RETRIES, read=RETRIES, status=RETRIES, other=0, redirect=5,
                      backoff_factor=RETRY_BACKOFF, backoff_jitter=RETRY_BACKOFF,
                      status_forcelist=_RETRY_STATUS, allowed_methods=("GET",), raise_on_status=False)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.progressbar = progressbar

    def __call__(self, url: str, output_file: str, pooch_obj=None) -> None:
        import requests
        try:
            response = self.session.get(url, stream=True, timeout=TIMEOUT)
            if not response.ok:
                response.close()            # give the pooled connection back
            response.raise_for_status()
        except requests.RequestException as exc:
            # not a requests error any more: pooch would start all the retries over again
            raise DataNotFoundError(f"could not download {url} ({type(exc).__name__}: {exc})") from None
        size = int(response.headers.get("content-length") or 0) or None
        with response, open(output_file, "wb") as out, \
                tqdm(total=size, unit="B", unit_scale=True, desc=PurePosixPath(url).name,
                     disable=not self.progressbar) as bar:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def _fetch_files(folder: Path, entries: dict[str, tuple[str, str | None]], downloader: Downloader,
                 hint: str, *, progress: bool = False, desc: str = "files") -> list[Path]:
    """Fetch each {name: (url, known hash or None)} into *folder* with pooch, which skips a file
    already there (with the known hash) and checks the hash of a new one."""
    import pooch
    import requests
    store = pooch.create(path=folder, base_url="", registry={k: h for k, (_, h) in entries.items()},
                         urls={k: u for k, (u, _) in entries.items()}, retry_if_failed=TRANSFER_RETRIES)
    logger = pooch.get_logger()
    level = logger.level
    if len(entries) > 1:        # the bar says it; a line per file would bury it
        logger.setLevel(logging.WARNING)
    out = []
    try:
        for name in tqdm(list(entries), desc=desc, unit="file", disable=not progress or len(entries) < 2):
            url = entries[name][0]
            try:
                out.append(Path(store.fetch(name, downloader=downloader)))
            except DataNotFoundError as exc:
                raise DataNotFoundError(f"{exc}. {hint}") from None
            except ValueError as exc:           # pooch: the hash differs, after its retries
                raise DataError(f"download from {url} does not match the SHA-256 manifest ({exc})",
                                file=name) from None
            except (requests.RequestException, OSError) as exc:   # cut off, after the retries
                raise DataNotFoundError(f"could not download {url} ({type(exc).__name__}: {exc}). "
                                        f"{hint}") from None
    finally:
        logger.setLevel(level)
    return out


# --------------------------------------------------------------------------- archives

def _members(archive: Path) -> Iterator[tuple[str, Callable]]:
    """Yield (member name, opener) for every regular file of a zip or tar archive."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, lambda i=info: zf.open(i)
    else:
        with tarfile.open(archive) as tf:
            for m in tf:
                if m.isfile():
                    yield m.name, lambda m=m: tf.extractfile(m)


def extract(archive: Path, dest: Path, select: Callable[[tuple[str, ...]], str | None], *,
            progress: bool = False, desc: str = "extracting") -> list[str]:
    """Write each member for which ``select(path parts)`` gives a relative path to *dest*; return
    those paths. Each file is replaced in one step, so a parallel reader never sees half of one."""
    written = []
    try:
        with tqdm(desc=desc, unit="file", disable=not progress) as bar:
            for name, opener in _members(archive):
                parts = PurePosixPath(name.replace("\\", "/")).parts
                rel = select(parts) if parts and ".." not in parts and not name.startswith("/") else None
                if rel is None:
                    continue
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                part = out.with_name(f"{out.name}.part{os.getpid()}")
                try:
                    with opener() as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    os.replace(part, out)
                finally:
                    part.unlink(missing_ok=True)
                written.append(rel)
                bar.update()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive ({type(exc).__name__}: {exc})", file=str(archive)) from None
    return written


def _archive(repo: str, commit: str, url: str | None, folder: Path, hint: str,
             progress: bool, kept: bool = True) -> tuple[Path, bool]:
    """Return the archive of *repo* at *commit* and whether it was there already (no request):
    in ``$KOKORO_ARCHIVE_CACHE`` when it is there or can be kept there (and *kept*), else in
    *folder*."""
    name = archive_name(repo, commit)
    cache = archive_cache() if kept else None
    if cache is not None and ((cache / name).is_file() or cache_writable(cache)):
        folder = cache
    cached = (folder / name).is_file()
    url = url or archive_url(repo, commit)
    path, = _fetch_files(folder, {name: (url, None)}, Downloader(progressbar=progress), hint)
    return path, cached


def _from_archive(repo: str, commit: str, url: str | None, folder: Path, hint: str, progress: bool,
                  unpack: Callable[[Path], Path], check: Callable[[Path], None]) -> Path:
    """Get the archive, *unpack* it, *check* the result (both raise DataError). A kept archive
    that fails is downloaded again once: it may be cut off or older than the manifest. One
    that cannot be removed (a read-only cache) stays; the new copy goes to *folder*."""
    kept = True
    for attempt in range(2):
        path, cached = _archive(repo, commit, url, folder, hint, progress, kept)
        try:
            out = unpack(path)
            check(out)
            return out
        except DataError as exc:
            if not cached or attempt:
                raise
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                kept = False
                warnings.warn(f"{path} cannot be used ({exc}) nor removed ({err.strerror or err}): "
                              "downloading it into the local cache", stacklevel=2)
    raise AssertionError("unreachable")  # pragma: no cover


def _manifest_error(what: str, commit: str, check: dict, where: Path) -> DataError:
    bad = (check["mismatch"] + check["missing"] + check["unexpected"])[:5]
    return DataError(f"{what} does not match the SHA-256 manifest of commit {commit[:7]}: "
                     f"{len(check['mismatch'])} differ, {len(check['missing'])} missing, "
                     f"{len(check['unexpected'])} unexpected (first: {', '.join(bad)})",
                     file=str(where / bad[0]) if bad else str(where))


def _whole(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _unpack_repository(archive: Path, dest: Path, progress: bool, desc: str) -> Path:
    """Extract a whole repository archive into *dest*; return its top folder (``<repo>-<commit>``)."""
    written = extract(archive, dest, _whole, progress=progress, desc=desc)
    tops = {PurePosixPath(p).parts[0] for p in written if len(PurePosixPath(p).parts) > 1}
    if len(tops) != 1:
        raise DataError(f"expected one top folder in the archive, found {len(tops)}", file=str(archive))
    return dest / tops.pop()


# --------------------------------------------------------------------------- the data sets

def fetch_kokorochat(dest: str | Path | None = None, *, url: str | None = None,
                     manifest: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Download KokoroChat at the pinned commit, verify every file, and return its root folder."""
    dest = Path(dest) if dest else config.cache_dir() / "downloads"
    root = dest / f"kokorochat-{config.KOKOROCHAT_COMMIT[:7]}"
    if root.is_dir():
        candidates = [p for p in root.iterdir() if p.is_dir()]
        if candidates and verify_kokorochat(candidates[0], manifest)["ok"]:
            return candidates[0]

    def check(top: Path) -> None:
        result = verify_kokorochat(top, manifest)
        if not result["ok"]:
            raise _manifest_error("download", config.KOKOROCHAT_COMMIT, result, top)

    hint = (f"Without network, point at a local copy with --data PATH or ${config.KOKOROCHAT_ENV}.")
    return _from_archive(config.KOKOROCHAT_REPO, config.KOKOROCHAT_COMMIT, url, dest, hint, progress,
                         lambda a: _unpack_repository(a, root, progress, "KokoroChat files"), check)


def fetch_psy_insight(dest: str | Path | None = None, *, url: str | None = None,
                      manifest: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Download the Psy-Insight files the project reads at the pinned commit, each checked
    against the SHA-256 manifest; return their ``data/`` folder.

    Two requests, one per file (*url*: a template with ``{path}``), not the repository archive:
    that also holds the authors' notebooks and figures, several times the data's size. With
    ``$KOKORO_ARCHIVE_CACHE`` set the files are looked up there first and kept there, in
    ``Psy-Insight-<commit>/`` beside the archives; a copy there that fails the check is
    downloaded again (into the local folder when the cache cannot be written).
    """
    manifest = psy_insight_manifest() if manifest is None else manifest
    dest = Path(dest) if dest else config.cache_dir() / "downloads"
    root = dest / f"psy-insight-{config.PSY_INSIGHT_COMMIT[:7]}"

    def check(folder: Path) -> dict:
        return compare_with_manifest({k: folder / k for k in manifest if (folder / k).is_file()}, manifest)

    if check(root)["ok"]:
        return root / PSY_INSIGHT_FOLDER
    kept, store = archive_cache(), root
    if kept is not None:
        there = kept / archive_name(config.PSY_INSIGHT_REPO, config.PSY_INSIGHT_COMMIT).removesuffix(".zip")
        if check(there)["ok"] or cache_writable(kept):
            store = there
    template = url or file_url(config.PSY_INSIGHT_REPO, config.PSY_INSIGHT_COMMIT, "{path}")
    hint = f"Without network, point at a local copy with --psy-insight PATH or ${config.PSY_INSIGHT_ENV}."
    # pooch skips a file already in *store* with the manifest's hash and checks a new one
    files = _fetch_files(store, {k: (template.format(path=k), f"sha256:{h}") for k, h in manifest.items()},
                         Downloader(), hint, progress=progress, desc="Psy-Insight files")
    if store != root:           # read from the local disk, not from Drive
        for k, path in zip(manifest, files):
            out = root / k
            out.parent.mkdir(parents=True, exist_ok=True)
            part = out.with_name(f"{out.name}.part{os.getpid()}")
            try:
                shutil.copyfile(path, part)
                os.replace(part, out)
            finally:
                part.unlink(missing_ok=True)
    result = check(root)
    if not result["ok"]:
        raise _manifest_error("the Psy-Insight download", config.PSY_INSIGHT_COMMIT, result, root)
    return root / PSY_INSIGHT_FOLDER


def _english(parts: tuple[str, ...], keep: set[str] | None = None) -> str | None:
    """The ``English/en<id>.json`` key of an archive member: ``<repo>-<commit>/English/…`` (the
    repository's archive, whose Chinese half is left out), ``English/…``, or a bare file."""
    name = parts[-1]
    if not (name.startswith(TRANSLATION_PREFIX) and name.endswith(".json")):
        return None
    if len(parts) > 1 and parts[-2] != TRANSLATION_FOLDER:
        return None
    key = f"{TRANSLATION_FOLDER}/{name}"
    return key if keep is None or key in keep else None


def fetch_translation(ids=None, dest: str | Path | None = None, *, url: str | None = None,
                      archive: str | None = None, manifest: dict[str, str] | None = None,
                      progress: bool = True) -> Path:
    """Download the English translation files of dialogue *ids* (all when None), each checked
    against the SHA-256 manifest of the pinned commit; return the root holding ``English/``.

    Files already in *dest* with the right hash are not downloaded again. Up to
    :data:`PER_FILE_MAX` missing files come one request each (*url*: a template with
    ``{path}``); more, or all, come as the repository archive of the pinned commit (*archive*),
    one request or none when ``$KOKORO_ARCHIVE_CACHE`` holds it, and every English file in it
    is checked. A dialogue the translation does not have (7 of KokoroChat's) is simply not
    fetched: the loader lists it.
    """
    manifest = translation_manifest() if manifest is None else manifest
    root = Path(dest) if dest else config.cache_dir() / "downloads" / \
        f"multilingual-kokorochat-{config.TRANSLATION_COMMIT[:7]}"
    if ids is None:
        wanted = sorted(manifest)
    else:
        wanted = [k for k in (f"{TRANSLATION_FOLDER}/{TRANSLATION_PREFIX}{i}.json" for i in ids) if k in manifest]
    todo = [k for k in wanted if not ((root / k).is_file() and sha256_file(root / k) == manifest[k])]
    if not todo:
        return root
    hint = (f"Without network, point at a local copy with --translation PATH or "
            f"${config.TRANSLATION_ENV}.")
    if ids is not None and len(todo) <= PER_FILE_MAX:
        template = url or file_url(config.TRANSLATION_REPO, config.TRANSLATION_COMMIT, "{path}")
        _fetch_files(root, {k: (template.format(path=k), f"sha256:{manifest[k]}") for k in todo},
                     Downloader(), hint, progress=progress, desc="translation files")
        return root

    def unpack(path: Path) -> Path:
        extract(path, root, lambda parts: _english(parts, set(manifest)), progress=progress,
                desc="translation files")
        return root

    def check(root: Path) -> None:
        result = compare_with_manifest({k: root / k for k in manifest if (root / k).is_file()}, manifest)
        if not result["ok"]:
            raise _manifest_error("the translation archive", config.TRANSLATION_COMMIT, result, root)

    return _from_archive(config.TRANSLATION_REPO, config.TRANSLATION_COMMIT, archive, root, hint,
                         progress, unpack, check)


def extract_translation(archive: str | os.PathLike, *, progress: bool = True) -> Path:
    """Return a folder holding ``English/`` from a local zip/tar archive of the translation (the
    repository's archive, or one of ``English/``), extracted once into the cache folder."""
    archive = Path(archive)
    out = config.cache_dir() / "extracted" / f"multilingual-kokorochat-{fingerprint(archive)}"
    done = out / ".complete"
    if not done.is_file():
        if not extract(archive, out, _english, progress=progress, desc="translation files"):
            raise DataError("no English/en<id>.json file in this archive", file=str(archive))
        done.touch()
    return out


def verify_translation(root: Path, manifest: dict[str, str] | None = None) -> dict:
    """Compare the English files under *root* with the translation manifest."""
    manifest = translation_manifest() if manifest is None else manifest
    folder = resolve_translation(root, download=False)       # a folder or an archive
    return compare_with_manifest({f"{TRANSLATION_FOLDER}/{p.name}": p for p in folder.glob("*.json")},
                                 manifest)

