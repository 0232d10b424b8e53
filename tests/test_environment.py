"""The environment is locked: one lock, the same pins everywhere, one repository address."""
from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from kokoro_book import colab

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line}: not an exact pin"
        out[req.name.lower()] = spec.version
    return out


def test_every_locked_line_is_an_exact_pin_and_torch_is_apart():
    pins = _pins(_script("lock_to_environment").locked(LOCK))
    assert len(pins) > 100
    assert "torch" not in pins and not any(n.startswith("nvidia-") for n in pins)
    assert _pins(_script("lock_to_environment").locked(ROOT / "requirements-torch.txt")) == {"torch": "2.13.0"}


def test_pyproject_ranges_admit_the_locked_versions():
    """The lock is compiled from pyproject: a range edited without `make lock` fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(_script("lock_to_environment").locked(LOCK))
    pins["torch"] = "2.13.0"
    wanted = project["dependencies"] + [r for extra in ("train", "book", "test")
                                        for r in project["optional-dependencies"][extra]]
    for line in wanted:
        req = Requirement(line)
        name = req.name.lower()
        assert name in pins, f"{name} is in pyproject.toml but not in the lock: run `make lock`"
        assert req.specifier.contains(pins[name]), \
            f"{name}=={pins[name]} (lock) is outside {req.specifier} (pyproject): run `make lock`"


SUPPORTED = ["3.11", "3.12", "3.13"]     # the README's table; 3.13 is Colab's Python


@pytest.mark.parametrize("python", SUPPORTED)
def test_lock_covers_each_supported_python(python):
    pins = _pins(_script("lock_to_environment").locked(LOCK, python))
    assert {"transformers", "trl", "peft", "bitsandbytes", "pandas", "jupyter-book"} <= set(pins)


def test_requires_python_is_exactly_the_supported_versions():
    from packaging.specifiers import SpecifierSet
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = SpecifierSet(project["requires-python"])
    admitted = [f"3.{m}" for m in range(8, 16) if spec.contains(f"3.{m}.0")]
    assert admitted == SUPPORTED
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"| {v} | supported" in readme for v in SUPPORTED), "README's Python table"
    said = f"Python {', '.join(SUPPORTED[:-1])} or {SUPPORTED[-1]}"
    for page in ("README.md", "book/how_to_run.md"):
        assert said in (ROOT / page).read_text(encoding="utf-8"), f"{page} should say {said!r}"


def test_requirements_txt_is_the_lock_torch_and_the_package():
    """`pip install -r requirements.txt` gets exactly the lock: `make lock` rewrites the file."""
    m = _script("lock_to_environment")
    text = (ROOT / "requirements.txt").read_text()
    assert text == m.render_requirements(), "requirements.txt drifted from the lock: run `make lock`"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "-e ." and "torch==2.13.0" in lines
    assert len(lines) == 2 + sum(1 for line in LOCK.read_text().splitlines()
                                 if line and not line.startswith((" ", "#")))


def test_environment_yml_carries_the_lock_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    m = _script("lock_to_environment")
    expected = m.locked(ROOT / "requirements-torch.txt") + m.locked(LOCK)
    assert [p for p in pip if p != "-e ."] == expected, "run `make lock` (writes environment.yml)"
    assert f"python={m.PYTHON}" in env["dependencies"]


def test_one_repository_address_everywhere():
    url, branch = colab.repository(ROOT)
    assert url.startswith("https://github.com/")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme))
    ours = {u for u in found if "UEC-InabaLab" not in u and "ckqqqq" not in u}
    assert ours == {url}, f"README names {ours}; _config.yml repository.url is {url}"
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert set(urls.values()) <= {url, f"{url}/issues"}
    for path in sorted((ROOT / colab.COLAB_DIR).glob("*.ipynb")):
        setup = next(c for c in nbformat.read(path, as_version=4).cells
                     if colab.SETUP_TAG in c.metadata.get("tags", []))
        assert f'REPO_URL = "{url}"' in setup.source and f'BRANCH = "{branch}"' in setup.source, path.name
