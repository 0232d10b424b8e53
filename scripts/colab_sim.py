#!/usr/bin/env python3
"""Run every Colab copy (notebooks/colab/*.ipynb) the way a fresh Colab runtime would.

For each notebook: a fresh virtual environment that holds only what Colab preinstalls
(scripts/colab-base.txt, built once and cached), a stub ``google.colab`` package (drive,
userdata) imported at kernel start as Colab does, a fresh HOME, and git told to fetch the
repository's public URL (``repository.url`` in _config.yml) from this checkout instead. Then
papermill executes the notebook unchanged: its own first cell clones the repository and installs
what it needs at the lock's versions. Chapters run with their book parameters (the CPU smoke
settings for training and generation); the data come from $KOKOROCHAT_DIR, as a user's would from
the download or Drive.

    python scripts/colab_sim.py                     # all notebooks, 2 at a time
    python scripts/colab_sim.py 00_quickstart 10_*  # some

Exit 0 when every notebook ran; 1 otherwise (the failed notebooks, with tracebacks, are kept in
--out). The base environment is cached in $KOKORO_COLAB_SIM_CACHE or the user cache folder,
keyed by colab-base.txt and the Python version.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_LIST = ROOT / "scripts" / "colab-base.txt"

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


def log(msg: str) -> None:
    print(f"colab-sim: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    env = os.environ.get("KOKORO_COLAB_SIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kokoro-nb" / "colab-sim"


def base_env(python: str) -> Path:
    """Return the cached Colab-like base environment, building it first when needed."""
    ver = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(BASE_LIST.read_bytes() + ver.encode()).hexdigest()[:12]
    path = cache_root() / f"base-{key}"
    if (path / ".complete").exists():
        log(f"base environment (cached): {path}")
        return path
    shutil.rmtree(path, ignore_errors=True)
    log(f"building the base environment (Python {ver}, {BASE_LIST.name}) in {path}")
    subprocess.run([python, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r",
                    str(BASE_LIST)], check=True)
    (path / ".complete").write_text(ver)
    return path


def repository() -> tuple[str, str]:
    sys.path.insert(0, str(ROOT / "src"))
    from kokoro_nb.colab import repository as repo
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
    from kokoro_nb import book
    nb = book.read_notebook(book.source_path(ROOT, name))
    return dict(book.notebook_options(nb, name).get("book_parameters") or {})


def run_one(nb_path: Path, base: Path, work: Path, remote_url: str, remote: Path,
            threads: int, timeout: float | None) -> dict:
    name = nb_path.stem
    home, env_dir = work / name / "home", work / name / "venv"
    ipython, jupyter = work / name / "ipython", work / name / "jupyter"
    out_dir = work / name / "outputs"
    for d in (home, ipython / "profile_default" / "startup", jupyter / "kernels" / "colab", out_dir):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", str(base), str(env_dir)], check=True)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    stub = site / "google" / "colab"
    stub.mkdir(parents=True, exist_ok=True)
    for fname, text in STUB_COLAB.items():
        (stub / fname).write_text(text)
    # Colab's kernel has google.colab imported before the first cell runs
    (ipython / "profile_default" / "startup" / "00-colab.py").write_text("import google.colab\n")
    gitconfig = work / name / "gitconfig"
    gitconfig.write_text(f'[url "file://{remote}"]\n\tinsteadOf = {remote_url}\n'
                         "[protocol \"file\"]\n\tallow = always\n")
    kernel_env = {
        "HOME": str(home), "IPYTHONDIR": str(ipython), "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{env_dir / 'bin'}:{os.environ.get('PATH', '')}",
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "KOKORO_CACHE_DIR": str(work / name / "cache"),
        **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
    for var in ("KOKOROCHAT_DIR", "PSY_INSIGHT_DIR", "KOKOROCHAT_EN_DIR", "COLAB_SIM_DRIVE"):
        if os.environ.get(var):
            kernel_env[var] = os.environ[var]
    (jupyter / "kernels" / "colab" / "kernel.json").write_text(json.dumps({
        "argv": [str(env_dir / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)", "language": "python", "env": kernel_env}))
    params = {**chapter_parameters(name), "output_dir": str(out_dir)}
    executed = work / f"{name}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(nb_path), str(executed), "-k", "colab",
           "--cwd", str(home), "-y", json.dumps(params), "--no-progress-bar", "--log-level", "ERROR"]
    if timeout:
        cmd += ["--execution-timeout", str(int(timeout))]
    env = {**os.environ, "JUPYTER_PATH": str(jupyter)}
    env.pop("KOKORO_BOOK_BUILD", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    ok = proc.returncode == 0
    shutil.rmtree(env_dir, ignore_errors=True)          # 2 GB each: keep the disk free
    if ok:
        shutil.rmtree(work / name, ignore_errors=True)
    tail = "" if ok else (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"notebook": name, "ok": ok, "seconds": round(secs, 1), "error": tail,
            "executed": str(executed)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("patterns", nargs="*", help="notebook names or globs (default: all)")
    ap.add_argument("--python", default=os.environ.get("COLAB_SIM_PYTHON", "python3"),
                    help="interpreter of the base environment (default: $COLAB_SIM_PYTHON or python3)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2)")
    ap.add_argument("--out", type=Path, help="keep executed notebooks here (default: a temp folder)")
    ap.add_argument("--timeout", type=float, default=1800, help="per-cell limit in seconds")
    args = ap.parse_args(argv)
    if not os.environ.get("KOKOROCHAT_DIR"):
        log("set KOKOROCHAT_DIR to the data (the simulation cannot download it)")
        return 2
    notebooks = sorted((ROOT / "notebooks" / "colab").glob("*.ipynb"))
    if args.patterns:
        notebooks = [p for p in notebooks if any(fnmatch.fnmatch(p.stem, pat) or p.stem == pat
                                                 for pat in args.patterns)]
    if not notebooks:
        log("no notebook matches")
        return 2
    url, branch = repository()
    base = base_env(args.python)
    work = Path(tempfile.mkdtemp(prefix="colab-sim-")) if args.out is None else args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    remote = work / "remote.git"
    commit = publish_checkout(remote, branch)
    log(f"{len(notebooks)} notebooks; {url} -> this checkout ({commit[:12]}); work folder {work}")
    threads = 1 if args.jobs > 1 else max(1, os.cpu_count() or 1)
    t0 = time.perf_counter()
    results = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, nb, base, work, url, remote, threads, args.timeout)
                   for nb in notebooks]
        for fut in futures:
            r = fut.result()
            results.append(r)
            log(f"{r['notebook']:<32} {'ok' if r['ok'] else 'FAILED':<7} {r['seconds']:7.1f} s"
                + ("" if r["ok"] else f"  {r['error']}  ({r['executed']})"))
    failed = [r for r in results if not r["ok"]]
    log(f"{len(results) - len(failed)} of {len(results)} notebooks ran on a simulated fresh Colab "
        f"runtime in {time.perf_counter() - t0:.0f} s")
    (work / "summary.json").write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
