"""Colab's published runtime and the versions the Colab install cell constrains to.

Colab publishes the Python version and the ``pip freeze`` of its runtime (googlecolab/backend-info);
a copy lies in ``scripts/colab-runtime/``. ``make lock`` resolves this package on that Python,
preferring every preinstalled version, once for each set of extras a Colab copy installs:
``requirements-colab.txt`` for the chapters that need no extra, ``requirements-colab-train.txt``
for those that install ``[train]`` (trl needs a newer pyarrow than Colab's, which the other
chapters must not be made to install). The install cell passes its file to pip as constraints, so
pip keeps Colab's own builds (numpy, pandas, scipy, torch, ...) wherever our ranges admit them (a
package resolved to Colab's own version is left out of the file, so a pinned past runtime keeps
its own version too): a
package that a running kernel has already imported cannot be replaced without a restart, and
Colab's other packages were built against its numpy. torch and the CUDA libraries it loads are
never emitted: Colab keeps its build.

>>> python_minor("Ubuntu 22.04.5 LTS\\nPython 3.13.15\\n")
'3.13'
>>> changes({"numpy": "2.1.3", "transformers": "5.23.0", "trl": "1.16.0"},
...         {"numpy": "2.1.3", "transformers": "5.15.0"})
[('transformers', '5.15.0', '5.23.0')]
"""
from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from kokoro_book.sources import find_root
from kokoro_nb.errors import DataError, KokoroError

RUNTIME_DIR = "scripts/colab-runtime"
OS_INFO = "os-info-gpu.txt"
FREEZE = "pip-freeze.gpu.txt"
# the constraint file for each set of extras a Colab copy installs (book/test: never on Colab)
CONSTRAINTS = {(): "requirements-colab.txt", ("train",): "requirements-colab-train.txt"}
# Colab's image is Ubuntu 22.04 (glibc 2.35) on x86-64: wheels for that platform
PLATFORM = "x86_64-manylinux_2_35"
# Preinstalled packages the install must never change where our ranges admit Colab's version:
# imported at kernel start or compiled against by the rest of Colab's image.
PROTECTED = ("numpy", "pandas", "scipy", "matplotlib", "torch")


def canonical(name: str) -> str:
    """Return the normalized distribution name (PEP 503): ``PyYAML`` -> ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _kept_apart(name: str) -> bool:
    """torch and the CUDA libraries it loads: Colab's CUDA build stays as it is."""
    return name in {"torch", "triton"} or name.startswith(("nvidia-", "cuda-"))


def python_minor(text: str, file: str | None = None) -> str:
    """Return the ``3.x`` of the ``Python 3.x.y`` line of an ``os-info`` file."""
    m = re.search(r"^Python (\d+)\.(\d+)\.\d+", text, re.M)
    if not m:
        raise DataError("no 'Python X.Y.Z' line", file=file)
    return f"{m[1]}.{m[2]}"


def read_pins(path: Path) -> dict[str, str]:
    """Return {name: version} for every ``name==version`` line of a freeze or requirements file.

    Lines installed from a URL (``name @ https://...``) and comments carry no version and are
    skipped; a marker (``; python_version ...``) is dropped.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    pins = {}
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or " @ " in line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise DataError(f"not a requirement: {err}", file=str(path), line=i) from None
        spec = list(req.specifier)
        if len(spec) == 1 and spec[0].operator == "==":
            pins[canonical(req.name)] = spec[0].version
    return pins


def public(version: str) -> str:
    """Drop the local part: ``2.11.0+cu128`` -> ``2.11.0`` (what a range is compared with)."""
    from packaging.version import Version
    return Version(version).public


def changes(constraints: dict[str, str], freeze: dict[str, str]) -> list[tuple[str, str, str]]:
    """Return (package, Colab's version, installed version) for each preinstalled package that
    an install within *constraints* replaces (local versions such as ``+cu128`` ignored)."""
    from packaging.version import Version
    out = []
    for name, ours in sorted(constraints.items()):
        colab = freeze.get(canonical(name))
        if colab is not None and Version(public(colab)) != Version(public(ours)):
            out.append((canonical(name), colab, ours))
    return out


def runtime(root: Path) -> tuple[str, dict[str, str], str]:
    """Return (Python minor version, freeze pins, freeze digest) of the vendored runtime."""
    d = Path(root) / RUNTIME_DIR
    minor = python_minor((d / OS_INFO).read_text(encoding="utf-8"), file=str(d / OS_INFO))
    digest = hashlib.sha256((d / FREEZE).read_bytes()).hexdigest()[:16]
    return minor, read_pins(d / FREEZE), digest


def constraints_file(extras=()) -> str:
    """Return the constraint file for a Colab copy that installs *extras*.

    >>> constraints_file(["train"])
    'requirements-colab-train.txt'
    """
    key = tuple(sorted(extras))
    if key not in CONSTRAINTS:
        raise DataError(f"no Colab constraint set for extras {list(key)}; add it to CONSTRAINTS "
                        "in kokoro_book/colab_runtime.py and run `make lock`", field="colab_extras")
    return CONSTRAINTS[key]


def stamp(minor: str, digest: str) -> str:
    """The header line that ties requirements-colab.txt to the runtime it was resolved for."""
    return f"# Colab runtime: Python {minor}, {RUNTIME_DIR}/{FREEZE} sha256 {digest}"


def _drop_blocks(text: str, drop) -> str:
    """Remove ``name==version`` lines for which *drop(name)* holds, with their ``# via`` lines."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith(" "):              # an annotation of the pin above
            if not skipping:
                out.append(line)
            continue
        m = re.match(r"([A-Za-z0-9_.-]+)==", line)
        skipping = bool(m and drop(canonical(m[1])))
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def compile_constraints(root: Path, extras=(), uv: str = "uv") -> Path:
    """Resolve ``pyproject.toml[extras]`` for Colab with *uv*; write its constraint file.

    uv takes the pins of its output file as preferences: the file is seeded with Colab's freeze,
    so uv keeps each preinstalled version our ranges admit and moves only what must move; for
    what Colab lacks, the previous result is the preference. torch is held at Colab's version
    so that the rest agrees with that build.
    """
    root = Path(root)
    minor, freeze, digest = runtime(root)
    target = root / constraints_file(extras)
    previous = read_pins(target) if target.is_file() else {}
    seed = {**previous, **{n: public(v) for n, v in freeze.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        out, torch = Path(tmp) / target.name, Path(tmp) / "torch.txt"
        out.write_text("".join(f"{n}=={v}\n" for n, v in sorted(seed.items())))
        torch.write_text(f"torch=={public(freeze['torch'])}\n" if "torch" in freeze else "")
        cmd = [uv, "pip", "compile", str(root / "pyproject.toml"), "--python-version", minor,
               "--python-platform", PLATFORM, "-c", str(torch), "--custom-compile-command",
               "make lock", "-o", str(out), "--quiet"]
        for extra in extras:
            cmd += ["--extra", extra]
        try:
            rc = subprocess.run(cmd, cwd=root).returncode
        except FileNotFoundError:
            raise KokoroError(f"{uv}: not found (make lock installs uv)") from None
        if rc:
            raise KokoroError(f"uv could not resolve {target.name} for Colab (its message is above)")
        resolved = read_pins(out)
        # A pin equal to Colab's version is left out: pip keeps whatever the runtime in front of
        # it has wherever our ranges admit it (a pinned past runtime has another numpy, say).
        kept = sorted(n for n, v in resolved.items()
                      if n in freeze and public(freeze[n]) == v and not _kept_apart(n))
        text = _drop_blocks(out.read_text(encoding="utf-8"),
                            lambda name: _kept_apart(name) or name in kept)
    lines = text.splitlines(keepends=True)
    spec = f"kokoro-nb[{','.join(extras)}]" if extras else "kokoro-nb"
    n = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    note = [stamp(minor, digest) + "\n",
            f"# For the Colab copies that install {spec}; "
            "torch and its CUDA libraries stay Colab's own.\n",
            "# Not pinned, since the runtime's own version fits our ranges (pip keeps it): "
            "the preinstalled\n"]
    note += [f"#   {line}\n" for line in textwrap.wrap(", ".join(
        f"{k} {public(freeze[k])}" for k in kept) or "(none)", 94)]
    target.write_text("".join(lines[:n] + note + lines[n:]), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m kokoro_book.colab_runtime`` (``make lock``): write the Colab constraint files."""
    ap = argparse.ArgumentParser(description="write requirements-colab.txt from Colab's freeze")
    ap.add_argument("--uv", default="uv", help="the uv executable")
    args = ap.parse_args(argv)
    root = find_root(None)
    minor, freeze, _ = runtime(root)
    for extras in CONSTRAINTS:
        try:
            path = compile_constraints(root, extras, args.uv)
        except KokoroError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        moved = changes(read_pins(path), freeze)
        print(f"{path.name}: Python {minor}; preinstalled packages the install changes: "
              + (", ".join(f"{n} {a} -> {b}" for n, a, b in moved) or "none"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
