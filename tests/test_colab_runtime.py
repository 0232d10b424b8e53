"""Colab's published runtime (scripts/colab-runtime/) and the constraints the install cell uses.

requirements-colab.txt is what `make lock` resolved against Colab's freeze; these tests read it
as data: what the install would change on Colab, and whether it still matches pyproject's ranges
and the vendored runtime.
"""
from __future__ import annotations

import filecmp
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kokoro_nb import colab_runtime as cr
from kokoro_nb.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / cr.RUNTIME_DIR
SHARED = ROOT.parent / "shared" / "colab-runtime"
COPIED = ("os-info-gpu.txt", "pip-freeze.gpu.txt", "LICENSE", "BACKEND-INFO-README.md")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/colab-runtime in this clone")
@pytest.mark.parametrize("name", COPIED)
def test_vendored_runtime_equals_the_shared_copy(name):
    assert filecmp.cmp(VENDORED / name, SHARED / name, shallow=False), \
        f"{cr.RUNTIME_DIR}/{name} differs from {SHARED / name}: copy it, then `make lock`"


def test_runtime_is_read_from_the_published_files():
    minor, freeze, _ = cr.runtime(ROOT)
    assert f"\nPython {minor}." in (VENDORED / cr.OS_INFO).read_text()
    lines = (VENDORED / cr.FREEZE).read_text().splitlines()
    assert len(freeze) == sum("==" in line and not line.startswith("#") for line in lines)
    assert "pyyaml" in freeze and "PyYAML==" in "\n".join(lines)      # names normalized


def test_os_info_without_a_python_line_names_the_file():
    with pytest.raises(DataError) as err:
        cr.python_minor("Ubuntu 22.04.5 LTS\n", file="os-info-gpu.txt")
    assert err.value.file == "os-info-gpu.txt"


def test_changes_ignores_local_versions_and_packages_colab_lacks():
    freeze = {"torch": "2.11.0+cu128", "numpy": "2.1.3", "pandas": "2.2.3"}
    got = cr.changes({"torch": "2.11.0", "Numpy": "2.4.6", "trl": "1.16.0", "pandas": "2.2.3"}, freeze)
    assert got == [("numpy", "2.1.3", "2.4.6")]


SETS = list(cr.CONSTRAINTS)


@pytest.mark.parametrize("extras", SETS, ids=lambda e: cr.CONSTRAINTS[e])
def test_the_install_keeps_colabs_numpy_pandas_scipy_matplotlib_and_torch(extras):
    """Prints what the Colab install replaces; fails if it touches the packages Colab is built on."""
    _, freeze, _ = cr.runtime(ROOT)
    pins = cr.read_pins(ROOT / cr.constraints_file(extras))
    moved = cr.changes(pins, freeze)
    print(f"preinstalled packages that installing kokoro-nb{list(extras)} on Colab changes:",
          ", ".join(f"{n} {a} -> {b}" for n, a, b in moved) or "none")
    touched = sorted({n for n, _, _ in moved} & set(cr.PROTECTED))
    assert touched == [], f"the Colab install would replace {touched}: {moved}"
    assert not any(cr._kept_apart(n) for n in pins), "torch and CUDA libraries stay Colab's own"


def test_descriptive_chapters_change_nothing_colab_preinstalls():
    _, freeze, _ = cr.runtime(ROOT)
    assert cr.changes(cr.read_pins(ROOT / cr.constraints_file(())), freeze) == []


@pytest.mark.parametrize("extras", SETS, ids=lambda e: cr.CONSTRAINTS[e])
def test_colab_constraints_match_pyproject_and_the_vendored_runtime(extras):
    """The constraint files are compiled by `make lock`: a range or a runtime refresh without it
    fails here."""
    minor, freeze, digest = cr.runtime(ROOT)
    name = cr.constraints_file(extras)
    text = (ROOT / name).read_text()
    assert cr.stamp(minor, digest) in text.splitlines(), \
        f"{name} was resolved for another Colab runtime: run `make lock`"
    pins = cr.read_pins(ROOT / name)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    for line in wanted:
        req = Requirement(line)
        pkg = cr.canonical(req.name)
        have = pins.get(pkg) or (cr.public(freeze[pkg]) if pkg in freeze else None)
        assert have is not None, f"{req.name} is in pyproject.toml but not in {name}: run `make lock`"
        assert req.specifier.contains(have), \
            f"{req.name}=={have} ({name} or Colab) is outside {req.specifier}: run `make lock`"


def test_drop_blocks_removes_a_pin_with_its_annotations():
    text = "a==1\n    # via b\nnvidia-x==2\n    # via\n    #   torch\nc==3\n"
    assert cr._drop_blocks(text, cr._kept_apart) == "a==1\n    # via b\nc==3\n"
