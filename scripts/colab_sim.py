#!/usr/bin/env python3
"""Run every Colab copy (notebooks/colab/*.ipynb) on a simulation of Colab's published runtime.

Colab publishes its runtime (googlecolab/backend-info): ``os-info-gpu.txt`` names the Python,
``pip-freeze.gpu.txt`` lists what is preinstalled. A copy lives in scripts/colab-runtime/ (the
folder is --colab-runtime; ../shared/colab-runtime is the fallback). From it this script builds:

- a root file system with that Python minor version: Debian 13 (Python 3.13) by debootstrap, or,
  for a pinned 3.12 runtime, a CPython 3.12 found on this machine bind-mounted into it. The run
  stops (exit 2) when the interpreter's minor version is not the runtime's;
- a base environment: the freeze's version of every distribution that the notebooks' installs
  pull in (their dependency closure, resolved by pip for that Python) plus the Jupyter kernel's
  packages. Local versions are stripped (torch 2.11.0+cu128 becomes PyPI's torch 2.11.0, a CUDA
  build that also runs on the CPU). Nothing here is a hand-written version list.

Both are cached in $KOKORO_COLAB_SIM_CACHE (default ~/.cache/kokoro-nb/colab-sim), keyed by the
runtime files. Each notebook then runs in a fresh virtual environment over the base (the base's
site-packages on its path; pip installs only what changes into the notebook's own environment),
in a kernel started inside the root file system (chroot), with a stub ``google.colab`` (drive,
userdata) imported at kernel start, a fresh HOME, and git sending the repository's URL
(``repository.url`` in _config.yml) to a bare copy of this checkout. Papermill executes the
notebook unchanged with its book parameters. Afterwards the script lists, per notebook, which
preinstalled packages the notebook's install replaced; a notebook fails if that includes numpy,
pandas, scipy or torch (Colab's kernel keeps the versions it has imported, and Colab's other
packages are built against them).

Needs root (chroot, mount) and debootstrap (apt-get install debootstrap).

    python scripts/colab_sim.py                             # all notebooks, 2 at a time
    python scripts/colab_sim.py 00_quickstart 03_*          # some
    python scripts/colab_sim.py --runtime 2026.07 '0*'      # the pinnable past runtime (Python 3.12)
    python scripts/colab_sim.py --record book/_data/colab_run_times.json   # and keep the run times

When Colab changes: copy os-info-gpu.txt, pip-freeze.gpu.txt and README.md (as
BACKEND-INFO-README.md) of a newer backend-info commit into scripts/colab-runtime/, then
`make lock` and `make colab-sim`. The new files make new cache keys, so both are rebuilt.

Exit 0 when every notebook ran and kept Colab's numpy, pandas, scipy and torch; 1 otherwise (the
executed notebooks are kept in --out with summary.json); 2 on bad input or a wrong Python.
"""
from __future__ import annotations

import argparse
import atexit
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DIRS = (ROOT / "scripts" / "colab-runtime", ROOT.parent / "shared" / "colab-runtime")
OS_INFO, FREEZE, README = "os-info-gpu.txt", "pip-freeze.gpu.txt", "BACKEND-INFO-README.md"
# Colab's builds of these are what its kernel imports and what its other packages are built
# against: a notebook's install must leave them alone (the list the constraint files are held to).
sys.path.insert(0, str(ROOT / "src"))
from kokoro_book.colab_runtime import PROTECTED  # noqa: E402
# The kernel Colab starts: these distributions (and what they need) come at the freeze's versions.
KERNEL_ROOTS = ("ipykernel", "ipython", "jupyter_client", "jupyter_core")
DEBIAN_SUITE = "trixie"
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip,git,ca-certificates"
BASE_RECIPE = "2"                  # bump when the way the base is derived changes: rebuilds caches
BASE_MOUNT = "/opt/colab"          # where the base environment appears inside the root fs
EXTRA_RE = re.compile(r"\{repo\}\[([^\]]*)\]")
RECORD_ABOUT = ("Wall-clock seconds of each Colab copy on the Colab simulation (scripts/colab_sim.py "
                "--record): a fresh runtime, the copy's pip install, then every cell on the full "
                "data read from a local folder (no download), `jobs` notebooks at a time with "
                "`threads` BLAS threads each.")

STUB_COLAB = {
    "__init__.py": '"""Stub of google.colab for the Colab simulation (drive, userdata)."""\n'
                   "from . import drive, userdata  # noqa: F401\n",
    "drive.py": '''"""drive.mount: link <mountpoint>/MyDrive to $COLAB_SIM_DRIVE (a local folder)."""
import os

mounted = []


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    source = os.environ.get("COLAB_SIM_DRIVE")
    if not source:
        raise ValueError("mount failed: no Drive in this simulation (set COLAB_SIM_DRIVE)")
    os.makedirs(mountpoint, exist_ok=True)
    link = os.path.join(mountpoint, "MyDrive")
    if not os.path.exists(link):
        os.symlink(source, link)
    mounted.append(mountpoint)
    print(f"Mounted at {mountpoint}")
''',
    "userdata.py": '''"""userdata.get: Colab secrets, read from $COLAB_SIM_SECRET_<NAME>."""
import os


class SecretNotFoundError(Exception):
    pass


def get(key):
    value = os.environ.get(f"COLAB_SIM_SECRET_{key}")
    if value is None:
        raise SecretNotFoundError(key)
    return value
''',
}


class SimError(Exception):
    """Bad input or a wrong environment: one line, exit 2."""


def log(msg: str) -> None:
    print(f"colab-sim: {msg}", file=sys.stderr, flush=True)


def canon(name: str) -> str:
    from packaging.utils import canonicalize_name
    return str(canonicalize_name(name))


# ---------------------------------------------------------------------------------------------
# Colab's runtime description


@dataclass(frozen=True)
class Pin:
    """One preinstalled distribution: its version and the line that installs it from PyPI."""
    name: str
    version: str | None       # None: not installable from a package index (git or file URL)
    line: int
    local: str = ""           # the build label Colab's version had (cu128), dropped in version

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def python_minor(os_info: str, file: str = OS_INFO) -> str:
    """The Python minor version named in Colab's os-info file.

    >>> python_minor("Ubuntu 22.04.5 LTS\\nPython 3.13.15\\n")
    '3.13'
    """
    m = re.search(r"^Python (\d+)\.(\d+)\.\d+", os_info, re.M)
    if not m:
        raise SimError(f"{file}: no 'Python X.Y.Z' line")
    return f"{m[1]}.{m[2]}"


def parse_freeze(text: str, file: str = FREEZE) -> dict[str, Pin]:
    """Parse ``pip freeze`` output into {canonical name: Pin}.

    Local versions are dropped (``torch==2.11.0+cu128`` -> 2.11.0, which PyPI has); a wheel URL
    gives the version in its file name; git and file URLs have no installable version.

    >>> pins = parse_freeze("# c\\ntorch==2.11.0+cu128\\nfoo @ git+https://x/y@abc\\n")
    >>> pins["torch"].requirement, pins["foo"].version
    ('torch==2.11.0', None)
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    pins: dict[str, Pin] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise SimError(f"{file}:{no}: not a pip freeze line ({exc})") from None
        version, local = None, ""
        if req.url:
            tail = req.url.split("#", 1)[0].rsplit("/", 1)[-1]
            if tail.endswith(".whl"):
                try:
                    version = str(parse_wheel_filename(tail)[1])
                except InvalidWheelFilename:
                    version = None
        else:
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator not in ("==", "==="):
                raise SimError(f"{file}:{no}: {req.name}: expected name==version")
            try:
                parsed = Version(specs[0].version)
                version, local = parsed.public, parsed.local or ""
            except InvalidVersion:
                raise SimError(f"{file}:{no}: {req.name}: bad version {specs[0].version!r}") from None
        key = canon(req.name)
        if key in pins:
            raise SimError(f"{file}:{no}: {req.name} listed twice (first on line {pins[key].line})")
        pins[key] = Pin(req.name, version, no, local)
    if not pins:
        raise SimError(f"{file}: no packages")
    return pins


def pinned_runtime(readme: str, name: str, file: str = README) -> dict[str, str]:
    """Python and numpy versions of a pinnable past runtime, from backend-info's README.

    >>> pinned_runtime("### 2026.07\\n\\n*   Python 3.12.13\\n*   numpy 2.0.2\\n### 2026.04\\n", "2026.07")
    {'python': '3.12.13', 'numpy': '2.0.2'}
    """
    m = re.search(rf"^### {re.escape(name)}\s*$(.*?)(?=^### |\Z)", readme, re.M | re.S)
    if not m:
        known = re.findall(r"^### (\d{4}\.\d\d)", readme, re.M)
        raise SimError(f"{file}: no runtime {name!r} (listed: {', '.join(known) or 'none'})")
    out = {}
    for key, pat in (("python", r"Python (\d+\.\d+\.\d+)"), ("numpy", r"numpy (\S+)")):
        v = re.search(pat, m[1])
        if not v:
            raise SimError(f"{file}: runtime {name}: no {pat.split()[0]} version")
        out[key] = v[1]
    return out


@dataclass
class Runtime:
    name: str                 # "current" or a pinned runtime such as "2026.07"
    python: str               # minor version, "3.13"
    pins: dict[str, Pin]
    key_text: str             # what the cache keys hash


def load_runtime(folder: Path, name: str) -> Runtime:
    files = {f: folder / f for f in (OS_INFO, FREEZE)}
    for f in files.values():
        if not f.is_file():
            raise SimError(f"{f}: no such file (the Colab runtime description)")
    os_info, freeze = (files[f].read_text(encoding="utf-8") for f in (OS_INFO, FREEZE))
    pins = parse_freeze(freeze, str(files[FREEZE]))
    python = python_minor(os_info, str(files[OS_INFO]))
    key_text = os_info + freeze
    if name != "current":
        readme = folder / README
        if not readme.is_file():
            raise SimError(f"{readme}: no such file (it lists the pinnable runtimes)")
        past = pinned_runtime(readme.read_text(encoding="utf-8"), name, str(readme))
        # backend-info keeps a past runtime's full freeze in its history only; the README gives its
        # Python and numpy, and the rest is taken from the current freeze.
        python = ".".join(past["python"].split(".")[:2])
        pins["numpy"] = Pin("numpy", past["numpy"], 0)
        key_text += json.dumps(past)
    return Runtime(name, python, pins, key_text)


def check_python(found: str, wanted: str, interpreter: str) -> None:
    """Fail unless *found* (X.Y.Z) has the runtime's minor version *wanted* (X.Y)."""
    if ".".join(found.split(".")[:2]) != wanted:
        raise SimError(f"{interpreter} is Python {found}, but Colab's runtime is Python {wanted}")


def base_requirements(closure: list[str], pins: dict[str, Pin],
                      unpinned: set[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Freeze pins of the closure's distributions (but *unpinned*); and those PyPI can't give."""
    reqs, skipped = [], []
    for name in sorted({canon(n) for n in closure}):
        pin = pins.get(name)
        if pin is None or name in unpinned:
            continue
        (reqs if pin.version else skipped).append(pin.requirement if pin.version else pin.name)
    return reqs, skipped


def conflicting_pins(report: list[dict], pins: dict[str, Pin], roots: set[str],
                     python: str) -> set[str]:
    """Freeze pins that PyPI's builds of *roots* cannot use, following what they need.

    *report* is pip's installation report of the roots; a requirement of a root (or of a
    distribution already let go) that the freeze's version does not satisfy lets that pin go.
    """
    from packaging.requirements import Requirement
    env = {"python_version": ".".join(python.split(".")[:2]), "python_full_version": python}
    items = {canon(i["metadata"]["name"]): i for i in report}
    free, todo = set(), [r for r in roots if r in items]
    while todo:
        item = items[todo.pop()]
        extras = item.get("requested_extras") or []
        for text in item["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({**env, "extra": e})
                                      for e in (extras or [""])):
                continue
            name = canon(req.name)
            pin = pins.get(name)
            if pin and pin.version and name not in free and not req.specifier.contains(
                    pin.version, prereleases=True):
                free.add(name)
                if name in items:
                    todo.append(name)
    return free


def constraints(pins: dict[str, Pin], unpinned: set[str] = frozenset()) -> str:
    return "".join(f"{p.requirement}\n" for n, p in pins.items()
                   if p.version and n not in unpinned)


def notebook_extras(nb_path: Path) -> set[str]:
    """Extras the notebook's install cell asks for (``"{repo}[train]"`` -> {"train"})."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        if "pip" in src and "install" in src and "{repo}" in src:
            return {e.strip() for m in EXTRA_RE.finditer(src) for e in m[1].split(",") if e.strip()}
    return set()


def project_roots(extras: set[str]) -> list[str]:
    """Requirement strings of this package with *extras*, from pyproject.toml."""
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    roots = list(project.get("dependencies", []))
    for extra in sorted(extras):
        roots += project.get("optional-dependencies", {}).get(extra, [])
    return roots


def colab_locks(extras: set[str]) -> list[Path]:
    """The Colab constraint files the install cells use for *extras* (resolved against the freeze)."""
    names = ["requirements-colab.txt"] + [f"requirements-colab-{e}.txt" for e in sorted(extras)]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def requirement_names(path: Path) -> list[str]:
    from packaging.requirements import Requirement
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if line and not line.startswith("-"):
            names.append(Requirement(line.split(";")[0].strip()).name)
    return names


# ---------------------------------------------------------------------------------------------
# The root file system and its mounts


def cache_root() -> Path:
    env = os.environ.get("KOKORO_COLAB_SIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kokoro-nb" / "colab-sim"


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target.startswith(prefix):
            found.append(target)
    return sorted(set(found), key=len, reverse=True)


class Chroot:
    """A root file system with bind mounts at identical paths; everything is unmounted at exit."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.mounted: list[Path] = []
        atexit.register(self.unmount)

    def clear_stale(self) -> None:
        """Unmount what a killed run left mounted under the root."""
        for target in mounts_under(self.root):
            subprocess.run(["umount", "-R", target], capture_output=True)
            if target in mounts_under(self.root):
                subprocess.run(["umount", "-l", target], capture_output=True)
        left = mounts_under(self.root)
        if left:
            raise SimError(f"{left[0]}: still mounted from an earlier run; unmount it by hand")

    def bind(self, src: Path | str, dst: str | None = None, readonly: bool = False) -> None:
        src = Path(src).resolve()
        target = self.root / (dst or str(src)).lstrip("/")
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        subprocess.run(["mount", "--rbind", str(src), str(target)], check=True)
        self.mounted.append(target)
        # a slave mount: unmounting it later never propagates back to the host's tree
        subprocess.run(["mount", "--make-rslave", str(target)], check=True)
        if readonly:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)

    def mount_system(self) -> None:
        self.clear_stale()
        (self.root / "proc").mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(self.root / "proc")], check=True)
        self.mounted.append(self.root / "proc")
        self.bind("/dev")
        self.bind("/sys", readonly=True)
        for f in ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"):
            if Path(f).is_file():
                shutil.copyfile(f, self.root / f.lstrip("/"))
        # this machine's pip settings (local wheel folders, caps) apply inside too
        for f in ("/etc/pip.conf", "/etc/xdg/pip"):
            dst = self.root / f.lstrip("/")
            if dst.is_dir():
                shutil.rmtree(dst)
            elif dst.exists():
                dst.unlink()
            if Path(f).is_dir():
                shutil.copytree(f, dst)
            elif Path(f).is_file():
                shutil.copyfile(f, dst)

    def release(self, src: Path | str) -> None:
        """Unmount what bind() mounted for *src*."""
        target = self.root / str(Path(src).resolve()).lstrip("/")
        if target in self.mounted:
            self.mounted.remove(target)
            subprocess.run(["umount", "-R", str(target)], check=True)

    def unmount(self) -> None:
        while self.mounted:
            target = self.mounted.pop()
            if subprocess.run(["umount", "-R", str(target)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(target)], capture_output=True)

    def argv(self, *cmd: str, env: dict[str, str] | None = None, cwd: str = "/") -> list[str]:
        """A command line that runs *cmd* inside the root with exactly *env* (and no other)."""
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        return (["chroot", str(self.root), "/usr/bin/env", "-i", "-C", cwd]
                + [f"{k}={v}" for k, v in env.items()] + list(cmd))

    def run(self, *cmd: str, env: dict[str, str] | None = None, capture: bool = False,
            cwd: str = "/") -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*cmd, env=env, cwd=cwd), capture_output=capture, text=True)
        if proc.returncode:
            detail = (proc.stderr or "").strip().splitlines()[-1:] if capture else []
            raise SimError(f"in the root file system, `{shlex.join(cmd)}` failed "
                           f"(exit {proc.returncode}){': ' + detail[0] if detail else ''}")
        return proc


def pip_env() -> dict[str, str]:
    """This machine's pip settings (index, certificates, timeouts), for pip inside the root."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    env["PIP_CACHE_DIR"] = str(pip_cache())
    return env


def pip_cache() -> Path:
    env = os.environ.get("PIP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pip"


def local_pip_folders() -> list[Path]:
    """Local folders that pip's settings point at (find-links, file:// indexes), to bind inside."""
    text = " ".join(v for k, v in os.environ.items() if k.startswith("PIP_"))
    for conf in (Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"),
                 Path.home() / ".config" / "pip" / "pip.conf"):
        if conf.is_file():
            text += " " + conf.read_text(errors="replace")
    found = []
    for word in re.split(r"[\s=]+", text):
        path = Path(word.removeprefix("file://"))
        if word.startswith(("/", "file:///")) and path.is_dir() and path not in found:
            found.append(path)
    return found


class Timer:
    """``with Timer() as t:`` ... ``t.seconds``."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
                  legacy: Path = Path("/etc/apt/sources.list")) -> str:
    """The Debian mirror this machine's apt uses (not its security archive)."""
    uris = []
    if sources.is_file():
        uris += re.findall(r"^URIs:\s*(\S+)", sources.read_text(), re.M)
    if legacy.is_file():
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", legacy.read_text(), re.M)
    for uri in uris:
        if "security" not in uri:
            return uri.rstrip("/")
    raise SimError(f"{sources}: no Debian mirror found for debootstrap")


def build_rootfs(cache: Path) -> tuple[Path, str]:
    """The cached Debian root file system (built once); and whether it was 'cached' or 'built'."""
    key = hashlib.sha256(f"{DEBIAN_SUITE} {DEBIAN_PACKAGES}".encode()).hexdigest()[:12]
    root = cache / f"rootfs-{DEBIAN_SUITE}-{key}"
    if (root / ".complete").exists():
        return root, "cached"
    if not shutil.which("debootstrap"):
        raise SimError("debootstrap is not installed (apt-get install debootstrap)")
    partial = cache / f"{root.name}.partial"
    Chroot(partial).clear_stale()
    shutil.rmtree(partial, ignore_errors=True)
    log(f"building the Debian {DEBIAN_SUITE} root file system in {root} (debootstrap)")
    proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}",
                           DEBIAN_SUITE, str(partial), debian_mirror()], capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SimError(f"debootstrap {DEBIAN_SUITE} failed (exit {proc.returncode})")
    (partial / ".complete").write_text(DEBIAN_SUITE)
    partial.rename(root)
    return root, "built"


def interpreter_version(chroot: Chroot, python: str) -> str:
    out = chroot.run(python, "-c", "import platform; print(platform.python_version())", capture=True)
    return out.stdout.strip()


def find_python(minor: str, given: str | None) -> str:
    """Host path of a CPython *minor* to bind into the root (a pinned runtime's Python)."""
    candidates = [given] if given else [shutil.which(f"python{minor}") or ""] + sorted(
        str(p) for p in (Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
                         / "versions").glob(f"{minor}.*/bin/python{minor}"))
    for cand in filter(None, candidates):
        # the interpreter itself, not a wrapper such as pyenv's shims
        proc = subprocess.run([cand, "-c", "import sys; print(sys.executable)"],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return str(Path(proc.stdout.strip()).resolve())
    raise SimError(f"no Python {minor} on this machine (give one with --python; Debian has none)")


def build_base(chroot: Chroot, cache: Path, runtime: Runtime, python: str, version: str,
               extras: set[str], base_dir: Path) -> tuple[list[str], str]:
    """Install the freeze's versions of the closure into *base_dir* (mounted at BASE_MOUNT)."""
    work = cache / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(base_dir, ignore_errors=True)
    base_dir.mkdir(parents=True)
    chroot.bind(base_dir, BASE_MOUNT)
    chroot.run(python, "-m", "venv", BASE_MOUNT)
    pip = [f"{BASE_MOUNT}/bin/python", "-m", "pip"]
    env = pip_env()
    chroot.run(*pip, "install", "--quiet", "--upgrade", "pip", env=env)
    kernel = [runtime.pins[canon(n)].requirement for n in KERNEL_ROOTS
              if canon(n) in runtime.pins and runtime.pins[canon(n)].version]
    # the closure: the package's own ranges as pip resolves them for this Python, and whatever
    # the Colab constraint files (make lock) name
    locks = colab_locks(extras)
    names = [n for f in locks for n in requirement_names(f)]
    source = " + ".join([f"pyproject.toml [{','.join(sorted(extras))}]"] + [f.name for f in locks])
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp_path = Path(tmp)
        chroot.bind(tmp_path)
        (tmp_path / "roots.txt").write_text("\n".join(project_roots(extras) + kernel) + "\n")
        log(f"resolving the dependency closure ({source} + the kernel's packages)")
        chroot.run(*pip, "install", "--quiet", "--dry-run", "--ignore-installed",
                   "--ignore-requires-python", "--report", f"{tmp}/report.json",
                   "-r", f"{tmp}/roots.txt", env=env)
        report = json.loads((tmp_path / "report.json").read_text())
        closure = [i["metadata"]["name"] for i in report["install"]] + names
        # Colab's local builds (torch 2.11.0+cu128) come from PyPI without the label, and PyPI's
        # build needs its own CUDA libraries: the freeze's pins of those must not apply.
        builds = [runtime.pins[n] for n in {canon(c) for c in closure}
                  if n in runtime.pins and runtime.pins[n].local]
        unpinned: set[str] = set()
        if builds:
            (tmp_path / "builds.txt").write_text("".join(f"{p.requirement}\n" for p in builds))
            chroot.run(*pip, "install", "--quiet", "--dry-run", "--ignore-installed",
                       "--report", f"{tmp}/builds.json", "-r", f"{tmp}/builds.txt", env=env)
            needs = json.loads((tmp_path / "builds.json").read_text())["install"]
            unpinned = conflicting_pins(needs, runtime.pins, {canon(p.name) for p in builds},
                                        version)
            log(f"PyPI's {', '.join(p.requirement for p in builds)} in place of Colab's "
                f"+{builds[0].local} build; its own versions of: {', '.join(sorted(unpinned)) or 'none'}")
        reqs, skipped = base_requirements(closure, runtime.pins, unpinned)
        if skipped:
            log(f"not installable from PyPI, left out of the base: {', '.join(skipped)}")
        (tmp_path / "base.txt").write_text("\n".join(reqs) + "\n")
        (tmp_path / "constraints.txt").write_text(constraints(runtime.pins, unpinned))
        log(f"installing {len(reqs)} of Colab's preinstalled packages at the freeze's versions")
        chroot.run(*pip, "install", "--quiet", "-r", f"{tmp}/base.txt",
                   "-c", f"{tmp}/constraints.txt", env=env)
        (base_dir / "base-requirements.txt").write_text("\n".join(reqs) + "\n")
        chroot.release(tmp_path)
    return reqs, source


def site_packages(env_dir: Path) -> Path:
    return next((env_dir / "lib").glob("python3*/site-packages"))


def installed(site: Path) -> dict[str, str]:
    """{canonical name: version} of the distributions installed in one site-packages folder."""
    from importlib.metadata import distributions
    return {canon(d.metadata["Name"]): d.version for d in distributions(path=[str(site)])
            if d.metadata["Name"]}


def changes(base: dict[str, str], overlay: dict[str, str]) -> dict[str, dict]:
    """What a notebook's install did to the preinstalled packages.

    >>> changes({"numpy": "2.1.3", "six": "1.17.0"}, {"numpy": "2.4.6", "orjson": "3.1", "six": "1.17.0"})
    {'changed': {'numpy': '2.1.3 -> 2.4.6'}, 'added': ['orjson'], 'protected': ['numpy']}
    """
    changed = {n: f"{base[n]} -> {v}" for n, v in sorted(overlay.items())
               if n in base and v != base[n]}
    added = sorted(n for n in overlay if n not in base)
    return {"changed": changed, "added": added,
            "protected": [n for n in PROTECTED if n in changed]}


# ---------------------------------------------------------------------------------------------
# Notebooks


def repository() -> tuple[str, str]:
    sys.path.insert(0, str(ROOT / "src"))
    from kokoro_book.colab import repository as repo
    return repo(ROOT)


def publish_checkout(remote: Path, branch: str) -> str:
    """Push this checkout (HEAD, plus uncommitted changes to tracked files) as *branch* of *remote*."""
    commit = subprocess.run(["git", "stash", "create"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    commit = commit or "HEAD"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    subprocess.run(["git", "push", "--quiet", "--force", str(remote), f"{commit}:refs/heads/{branch}"],
                   cwd=ROOT, check=True)
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True).stdout.split()
    if untracked:
        log(f"note: {len(untracked)} untracked files are not in the simulated clone "
            f"(first: {untracked[0]})")
    return commit


def chapter_parameters(name: str) -> dict:
    """The chapter's book parameters (the CPU smoke settings of training and generation)."""
    from kokoro_book import sources
    nb = sources.read_notebook(sources.source_path(ROOT, name))
    return dict(sources.notebook_options(nb, name).get("book_parameters") or {})


@dataclass
class Setup:
    chroot: Chroot
    python: str
    base_site: dict[str, str]
    base_path: str            # the base's site-packages inside the root
    work: Path
    remote_url: str
    remote: Path
    threads: int
    timeout: float | None


def run_one(nb_path: Path, s: Setup) -> dict:
    name = nb_path.stem
    d = s.work / name
    shutil.rmtree(d, ignore_errors=True)
    home, env_dir, ipython, jupyter = d / "home", d / "venv", d / "ipython", d / "jupyter"
    out_dir = d / "outputs"
    for p in (home, ipython / "profile_default" / "startup", jupyter / "kernels" / "colab", out_dir,
              d / "runtime"):
        p.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # pip comes from the base, and installs into this environment (the base is "outside" it)
    s.chroot.run(s.python, "-m", "venv", "--without-pip", str(env_dir))
    site = site_packages(env_dir)
    (site / "colab-base.pth").write_text(f"{s.base_path}\n")
    stub = site / "google" / "colab"
    stub.mkdir(parents=True)
    for fname, text in STUB_COLAB.items():
        (stub / fname).write_text(text)
    before = installed(site)
    # Colab's kernel has google.colab imported before the first cell runs
    (ipython / "profile_default" / "startup" / "00-colab.py").write_text("import google.colab\n")
    gitconfig = d / "gitconfig"
    gitconfig.write_text(f'[url "file://{s.remote}"]\n\tinsteadOf = {s.remote_url}\n'
                         "[protocol \"file\"]\n\tallow = always\n")
    kernel_env = {
        **pip_env(), "HOME": str(home), "IPYTHONDIR": str(ipython),
        "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": f"{env_dir / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "KOKORO_CACHE_DIR": str(d / "cache"),
        **{k: str(s.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
    for var in ("KOKOROCHAT_DIR", "PSY_INSIGHT_DIR", "KOKOROCHAT_EN_DIR", "COLAB_SIM_DRIVE"):
        if os.environ.get(var):
            kernel_env[var] = str(Path(os.environ[var]).resolve())
    kernel_env.update({k: v for k, v in os.environ.items() if k.startswith("COLAB_SIM_SECRET_")})
    argv = s.chroot.argv(str(env_dir / "bin" / "python"), "-m", "ipykernel_launcher",
                         "-f", "{connection_file}", env=kernel_env, cwd=str(home))
    (jupyter / "kernels" / "colab" / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Colab (simulated)", "language": "python"}))
    params = {**chapter_parameters(name), "output_dir": str(out_dir)}
    executed = s.work / f"{name}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(nb_path), str(executed), "-k", "colab",
           "--cwd", str(home), "-y", json.dumps(params), "--no-progress-bar", "--log-level", "ERROR"]
    if s.timeout:
        cmd += ["--execution-timeout", str(int(s.timeout))]
    # jupyter_client writes the connection file with mkstemp: into a folder the kernel sees too
    env = {**os.environ, "JUPYTER_PATH": str(jupyter), "TMPDIR": str(d / "runtime")}
    env.pop("KOKORO_BOOK_BUILD", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    after = installed(site)
    diff = changes(s.base_site, {n: v for n, v in after.items() if n not in before})
    ok = proc.returncode == 0 and not diff["protected"]
    if proc.returncode:
        error = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    elif diff["protected"]:
        error = f"the install replaced Colab's {', '.join(diff['protected'])}"
    else:
        error = ""
    shutil.rmtree(env_dir, ignore_errors=True)
    if ok:
        shutil.rmtree(d, ignore_errors=True)
    return {"notebook": name, "ok": ok, "seconds": round(secs, 1), "error": error,
            "changed": diff["changed"], "added": diff["added"], "executed": str(executed)}


def select(patterns: list[str]) -> list[Path]:
    notebooks = sorted((ROOT / "notebooks" / "colab").glob("*.ipynb"))
    if patterns:
        notebooks = [p for p in notebooks if any(fnmatch.fnmatch(p.stem, pat) or p.stem == pat
                                                 for pat in patterns)]
    if not notebooks:
        raise SimError("no notebook matches " + " ".join(patterns))
    return notebooks


def runtime_folder(given: Path | None) -> Path:
    given = given or (Path(os.environ["KOKORO_COLAB_RUNTIME"])
                      if os.environ.get("KOKORO_COLAB_RUNTIME") else None)
    if given:
        return given
    for folder in RUNTIME_DIRS:
        if (folder / FREEZE).is_file():
            return folder
    raise SimError(f"no Colab runtime description in {' or '.join(map(str, RUNTIME_DIRS))}")


def simulate(args: argparse.Namespace) -> int:
    if not os.environ.get("KOKOROCHAT_DIR"):
        raise SimError("set KOKOROCHAT_DIR to the data (the simulation cannot download it)")
    folder = runtime_folder(args.colab_runtime)
    runtime = load_runtime(folder, args.runtime)
    if args.python:     # a wrong interpreter stops the run before anything is built
        try:
            found = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SimError(f"{args.python}: cannot run it ({exc})") from None
        check_python(found, runtime.python, args.python)
    if os.geteuid() != 0:
        raise SimError("the simulation needs root (chroot and mount)")
    notebooks = select(args.patterns)
    extras = set().union(*(notebook_extras(p) for p in notebooks))
    log(f"Colab runtime {runtime.name} from {folder}: Python {runtime.python}, "
        f"{len(runtime.pins)} preinstalled packages")
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    lock = open(cache / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SimError(f"{cache}: another colab_sim run is using this cache") from None

    t_all = time.perf_counter()
    with Timer() as t:
        root, how = build_rootfs(cache)
    log(f"root file system {how}: {root} ({t.seconds:.0f} s)")
    chroot = Chroot(root)
    try:
        chroot.mount_system()
        if runtime.python == "3.13" and args.python is None:
            python = "/usr/bin/python3"
        else:
            host_python = find_python(runtime.python, args.python)
            prefix = Path(host_python).parents[1]
            chroot.bind(prefix, readonly=True)
            python = host_python
        version = interpreter_version(chroot, python)
        check_python(version, runtime.python, python)
        for folder_ in local_pip_folders():
            chroot.bind(folder_, readonly=True)
        pip_cache().mkdir(parents=True, exist_ok=True)
        chroot.bind(pip_cache())

        # keyed by what decides the base: Colab's files, the interpreter, the closure's roots
        key = hashlib.sha256("\n".join(
            [BASE_RECIPE, runtime.key_text, version, *project_roots(extras),
             *(f.read_text() for f in colab_locks(extras))]).encode()).hexdigest()[:12]
        base_dir = cache / f"base-{runtime.name}-py{runtime.python}-{key}"
        with Timer() as t:
            if (base_dir / ".complete").exists():
                chroot.bind(base_dir, BASE_MOUNT)
                how = "cached"
                reqs = (base_dir / "base-requirements.txt").read_text().split()
            else:
                log(f"building the base environment in {base_dir}")
                reqs, source = build_base(chroot, cache, runtime, python, version, extras,
                                          base_dir)
                (base_dir / ".complete").write_text(source + "\n")
                how = "built"
        log(f"base environment {how}: {len(reqs)} packages at Colab's versions, Python {version} "
            f"({t.seconds:.0f} s)")
        base_site = site_packages(base_dir)
        base_versions = installed(base_site)
        base_path = f"{BASE_MOUNT}/{base_site.relative_to(base_dir)}"

        work = (args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="colab-sim-")))
        work.mkdir(parents=True, exist_ok=True)
        chroot.bind(work)
        for var in ("KOKOROCHAT_DIR", "PSY_INSIGHT_DIR", "KOKOROCHAT_EN_DIR"):
            if os.environ.get(var) and Path(os.environ[var]).is_dir():
                chroot.bind(os.environ[var], readonly=True)
        if os.environ.get("COLAB_SIM_DRIVE"):
            chroot.bind(os.environ["COLAB_SIM_DRIVE"])
        url, branch = repository()
        remote = work / "remote.git"
        shutil.rmtree(remote, ignore_errors=True)
        commit = publish_checkout(remote, branch)
        log(f"{len(notebooks)} notebooks; {url} -> this checkout ({commit[:12]}); work folder {work}")
        setup = Setup(chroot, python, base_versions, base_path, work, url, remote,
                      1 if args.jobs > 1 else max(1, os.cpu_count() or 1), args.timeout)
        t0 = time.perf_counter()
        results = []
        from tqdm import tqdm
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool, \
                tqdm(total=len(notebooks), desc="colab-sim", unit="notebook", file=sys.stderr,
                     disable=None) as bar:       # no bar in a log file: the lines say it
            for r in pool.map(lambda nb: run_one(nb, setup), notebooks):
                results.append(r)
                touched = ", ".join(f"{n} {v}" for n, v in r["changed"].items()) or "none"
                bar.write(f"colab-sim: {r['notebook']:<32} {'ok' if r['ok'] else 'FAILED':<7} "
                          f"{r['seconds']:7.1f} s  replaced: {touched}"
                          + ("" if r["ok"] else f"\n    {r['error']}  ({r['executed']})"),
                          file=sys.stderr)
                bar.update()
    finally:
        chroot.unmount()
    failed = [r for r in results if not r["ok"]]
    replaced = sorted({n for r in results for n in r["changed"]})
    log(f"preinstalled packages some notebook's install replaced: {', '.join(replaced) or 'none'}")
    log(f"{len(results) - len(failed)} of {len(results)} notebooks ran on simulated Colab "
        f"({runtime.name}, Python {version}) in {time.perf_counter() - t0:.0f} s "
        f"({time.perf_counter() - t_all:.0f} s in all)")
    (work / "summary.json").write_text(json.dumps(
        {"runtime": runtime.name, "python": version, "base": reqs, "notebooks": results}, indent=2))
    if args.record:
        written = record_times(args.record, results, {
            "runtime": runtime.name, "python": version, "jobs": max(1, args.jobs),
            "threads": setup.threads, "cpus": os.cpu_count(), "commit": head_label(commit),
            "date": time.strftime("%Y-%m-%d")})
        log(f"recorded the run times of {written} notebooks in {args.record}")
    return 1 if failed else 0


def head_label(published: str) -> str:
    """The checkout's commit (12 hex digits), ``+uncommitted`` when changes were published too."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()[:12]
    return head if published == "HEAD" else head + "+uncommitted"


def record_times(path: Path, results: list[dict], meta: dict) -> int:
    """Merge the run times of the notebooks that ran into the JSON record at *path*.

    The record is ``{"notebooks": {name: {"seconds": s, **meta}}}``; the chapters' front matter
    quotes it (kokoro_book.frontmatter). A failed notebook's time is not its run time, so it is
    left out (its old entry stays); entries of notebooks not run this time stay as they were.
    Returns how many entries were written.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "t.json"
    >>> record_times(p, [{"notebook": "a", "ok": True, "seconds": 9.5},
    ...                  {"notebook": "b", "ok": False, "seconds": 1.0}], {"jobs": 2})
    1
    >>> json.loads(p.read_text())["notebooks"]
    {'a': {'seconds': 9.5, 'jobs': 2}}
    """
    path = Path(path)
    record: dict = {"notebooks": {}}
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SimError(f"{path}: not JSON ({exc}); fix or delete it") from None
        if not isinstance(record.get("notebooks"), dict):
            raise SimError(f"{path}: no 'notebooks' mapping; fix or delete it")
    ran = {r["notebook"]: {"seconds": r["seconds"], **meta} for r in results if r["ok"]}
    entries = dict(sorted({**record["notebooks"], **ran}.items()))
    # one line per notebook: a new measurement shows in a diff as the lines it changed
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in entries.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"about": {json.dumps(RECORD_ABOUT)},\n "notebooks": {{\n{body}\n }}\n}}\n',
                    encoding="utf-8")
    return len(ran)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("patterns", nargs="*", help="notebook names or globs (default: all)")
    ap.add_argument("--runtime", default="current",
                    help="'current' (default) or a pinnable past runtime named in "
                         f"{README}, e.g. 2026.07")
    ap.add_argument("--colab-runtime", type=Path,
                    help=f"folder with {OS_INFO} and {FREEZE} (default: $KOKORO_COLAB_RUNTIME, "
                         f"{RUNTIME_DIRS[0].relative_to(ROOT)}, else ../shared/colab-runtime)")
    ap.add_argument("--python", help="host path of the interpreter to run the notebooks with "
                                     "(default: Debian's python3 in the root for 3.13; else "
                                     "pythonX.Y on PATH or in pyenv)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2)")
    ap.add_argument("--out", type=Path, help="keep executed notebooks here (default: a temp folder)")
    ap.add_argument("--timeout", type=float, default=1800, help="per-cell limit in seconds")
    ap.add_argument("--record", type=Path,
                    help="merge each notebook's wall time (install + run) into this JSON file, "
                         "e.g. book/_data/colab_run_times.json (the chapters' front matter quotes it)")
    args = ap.parse_args(argv)
    try:
        return simulate(args)
    except SimError as exc:
        log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
