"""The Colab simulation (scripts/colab_sim.py) reads Colab's published runtime, nothing hand-written.

These check the parts that decide what is simulated: the Python minor version from
``os-info-gpu.txt`` (and the run stopping on another one), the preinstalled versions from
``pip-freeze.gpu.txt``, the pinned past runtime from backend-info's README, the base's pins for a
dependency closure, and the list of preinstalled packages a notebook's install replaced. The
simulation itself (chroot, notebooks) runs in CI as `make colab-sim`.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("colab_sim", ROOT / "scripts" / "colab_sim.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["colab_sim"] = mod          # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


sim = _load()


@pytest.fixture(scope="module")
def runtime_dir() -> Path:
    """Colab's runtime description as the script finds it (vendored, or ../shared/colab-runtime)."""
    return sim.runtime_folder(None)


def freeze_line(folder: Path, name: str) -> str:
    text = (folder / sim.FREEZE).read_text(encoding="utf-8")
    return re.search(rf"^{re.escape(name)}(==| @ ).*$", text, re.M | re.I)[0]


# --- Python version ---------------------------------------------------------------------------

def test_python_minor_is_read_from_os_info(runtime_dir):
    text = (runtime_dir / sim.OS_INFO).read_text(encoding="utf-8")
    full = re.search(r"^Python (\S+)", text, re.M)[1]
    assert sim.python_minor(text) == ".".join(full.split(".")[:2])
    assert sim.python_minor("Ubuntu 22.04\nPython 3.12.13\nR version 4.6\n") == "3.12"


def test_os_info_without_python_is_an_error():
    with pytest.raises(sim.SimError, match=r"os-info-gpu.txt: no 'Python X.Y.Z' line"):
        sim.python_minor("Ubuntu 22.04.5 LTS\nR version 4.6.1\n")


def test_check_python_accepts_only_the_same_minor_version():
    sim.check_python("3.13.5", "3.13", "/usr/bin/python3")       # patch level may differ
    for other in ("3.12.13", "3.11.7", "3.1.3"):
        with pytest.raises(sim.SimError, match=rf"is Python {re.escape(other)}, but Colab's runtime is Python 3.13"):
            sim.check_python(other, "3.13", "/x/python")


def test_run_with_another_python_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    """This test's interpreter (3.11 here) against a runtime that says another minor version."""
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    other = "3.13" if mine != "3.13" else "3.12"
    (tmp_path / sim.OS_INFO).write_text(f"Ubuntu 22.04.5 LTS\nPython {other}.15\n")
    (tmp_path / sim.FREEZE).write_text("numpy==2.1.3\n")
    monkeypatch.setenv("KOKOROCHAT_DIR", str(tmp_path))
    monkeypatch.setenv("KOKORO_COLAB_SIM_CACHE", str(tmp_path / "cache"))
    code = sim.main(["--colab-runtime", str(tmp_path), "--python", sys.executable, "00_quickstart"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"colab-sim: error: {sys.executable} is Python {sys.version.split()[0]}, "
                   f"but Colab's runtime is Python {other}"]
    assert not (tmp_path / "cache").exists()                   # stopped before building anything


# --- the freeze ---------------------------------------------------------------------------------

def test_freeze_forms():
    pins = sim.parse_freeze(
        "# generated\n"
        "torch==2.11.0+cu128\n"
        "Jinja2==3.1.6\n"
        "cuvs-cu12 @ https://wheels.example/cuvs-cu12/cuvs_cu12-26.2.0-cp313-cp313-manylinux_2_28_x86_64.whl\n"
        "google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz\n"
        "kg @ git+https://github.com/x/kernel_gateway@b134e99\n")
    assert pins["torch"].requirement == "torch==2.11.0"           # the local version is dropped
    assert pins["torch"].local == "cu128" and pins["jinja2"].local == ""
    assert pins["jinja2"].requirement == "Jinja2==3.1.6"          # keyed by canonical name
    assert pins["cuvs-cu12"].version == "26.2.0"                  # from the wheel's file name
    assert pins["google-colab"].version is None and pins["kg"].version is None
    assert pins["kg"].line == 6


@pytest.mark.parametrize("text, message", [
    ("numpy==2.1.3\nthis is not a requirement\n", r"f.txt:2: not a pip freeze line"),
    ("numpy>=2.1\n", r"f.txt:1: numpy: expected name==version"),
    ("numpy==2.1.3\nNumPy==2.0.2\n", r"f.txt:2: NumPy listed twice \(first on line 1\)"),
    ("# only comments\n", r"f.txt: no packages"),
])
def test_bad_freeze_names_file_and_line(text, message):
    with pytest.raises(sim.SimError, match=message):
        sim.parse_freeze(text, "f.txt")


def test_published_freeze_parses_and_gives_installable_pins(runtime_dir):
    pins = sim.parse_freeze((runtime_dir / sim.FREEZE).read_text(encoding="utf-8"))
    for name in ("numpy", "pandas", "scipy", "torch", "ipykernel"):
        published = freeze_line(runtime_dir, name).split("==", 1)[1]
        assert pins[name].requirement == f"{name}=={published.split('+')[0]}"
    assert all("+" not in (p.version or "") for p in pins.values())


def test_base_pins_come_from_the_freeze(runtime_dir):
    pins = sim.parse_freeze((runtime_dir / sim.FREEZE).read_text(encoding="utf-8"))
    closure = ["NumPy", "scikit_learn", "torch", "not-on-colab-xyz", "google-colab"]
    reqs, skipped = sim.base_requirements(closure, pins)
    expected = [freeze_line(runtime_dir, n).split("+")[0] for n in ("numpy", "scikit-learn", "torch")]
    assert sorted(r.lower() for r in reqs) == sorted(e.lower() for e in expected)
    assert skipped == ["google-colab"]                   # a file URL: the simulation stubs it


def test_constraints_hold_every_installable_pin():
    pins = sim.parse_freeze("a==1\nb==2+local\nc @ git+https://x/c\ncuda-toolkit==12.8.1\n")
    assert sim.constraints(pins) == "a==1\nb==2\ncuda-toolkit==12.8.1\n"
    # what PyPI's build of a local version needs in its own version is left free
    assert sim.constraints(pins, {"cuda-toolkit"}) == "a==1\nb==2\n"
    assert sim.base_requirements(["A", "cuda_toolkit"], pins, {"cuda-toolkit"}) == (["a==1"], [])


# --- the pinned past runtime --------------------------------------------------------------------

def test_pinned_runtime_from_readme(runtime_dir):
    readme = (runtime_dir / sim.README).read_text(encoding="utf-8")
    section = readme.split("### 2026.07", 1)[1].split("###", 1)[0]
    expected = {"python": re.search(r"Python (\S+)", section)[1],
                "numpy": re.search(r"numpy (\S+)", section)[1]}
    assert sim.pinned_runtime(readme, "2026.07") == expected
    rt = sim.load_runtime(runtime_dir, "2026.07")
    assert rt.python == ".".join(expected["python"].split(".")[:2])
    assert rt.pins["numpy"].version == expected["numpy"]
    current = sim.load_runtime(runtime_dir, "current")
    assert rt.pins["pandas"] == current.pins["pandas"]        # the rest: the current freeze
    assert rt.key_text != current.key_text                    # its own cache entry


def test_unknown_pinned_runtime_lists_the_known_ones():
    with pytest.raises(sim.SimError, match=r"R.md: no runtime '2020.01' \(listed: 2026.07, 2026.04\)"):
        sim.pinned_runtime("### 2026.07\n* Python 3.12.13\n### 2026.04\n* Python 3.12.13\n",
                           "2020.01", "R.md")


# --- notebooks ----------------------------------------------------------------------------------

def test_extras_follow_the_install_cells():
    colab = ROOT / "notebooks" / "colab"
    train = {p.stem for p in colab.glob("*.ipynb") if sim.notebook_extras(p) == {"train"}}
    plain = {p.stem for p in colab.glob("*.ipynb") if sim.notebook_extras(p) == set()}
    assert {"10_train_response_generation", "11_train_score_prediction"} <= train
    assert {"00_quickstart", "03_scores"} <= plain
    assert train | plain == {p.stem for p in colab.glob("*.ipynb")}


def test_changes_flag_colabs_core_packages():
    base = {"numpy": "2.1.3", "pandas": "2.2.3", "transformers": "5.15.0", "six": "1.17.0"}
    overlay = {"transformers": "5.24.0", "orjson": "3.13.0"}
    assert sim.changes(base, overlay) == {"changed": {"transformers": "5.15.0 -> 5.24.0"},
                                          "added": ["orjson"], "protected": []}
    assert sim.changes(base, {"pandas": "3.1.1", "numpy": "2.4.6"})["protected"] == ["numpy", "pandas"]


def test_installed_reads_a_site_packages_folder(tmp_path):
    for name, version in (("NumPy", "2.1.3"), ("scikit_learn", "1.6.1")):
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    assert sim.installed(tmp_path) == {"numpy": "2.1.3", "scikit-learn": "1.6.1"}


def test_debootstrap_uses_this_machines_debian_mirror(tmp_path):
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert sim.debian_mirror(tmp_path / "debian.sources", tmp_path / "none") == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert sim.debian_mirror(tmp_path / "none", tmp_path / "sources.list") == "http://old.example/debian"
    with pytest.raises(sim.SimError, match="no Debian mirror"):
        sim.debian_mirror(tmp_path / "none", tmp_path / "none2")


def test_only_pins_that_pypis_build_cannot_use_are_let_go():
    pins = sim.parse_freeze("torch==2.11.0+cu128\ncuda-toolkit==12.8.1\ncuda-bindings==12.9.7\n"
                            "filelock==3.20.0\nsympy==1.13.3\nnvidia-nccl-cu13==2.31.2\n")
    report = [
        {"metadata": {"name": "torch", "requires_dist": [
            "filelock", "sympy>=1.13.3", "nvidia-nccl-cu13==2.28.9; platform_system == 'Linux'",
            "cuda-toolkit[cublas]==13.0.2; platform_system == 'Linux'",
            "opt-einsum>=3.3; extra == 'opt-einsum'"]}},
        {"metadata": {"name": "cuda-toolkit", "requires_dist": [
            "cuda-bindings==13.0.*; extra == 'cublas'", "nvidia-cufft==12.0; extra == 'cufft'"]},
         "requested_extras": ["cublas"]},
    ]
    assert sim.conflicting_pins(report, pins, {"torch"}, "3.13.5") == {
        "cuda-toolkit", "cuda-bindings", "nvidia-nccl-cu13"}


# --- the run-time record ------------------------------------------------------------------------

def test_record_merges_run_times_and_leaves_failures_out(tmp_path):
    path = tmp_path / "_data" / "times.json"
    ok = {"notebook": "00_a", "ok": True, "seconds": 12.5}
    assert sim.record_times(path, [ok, {"notebook": "01_b", "ok": False, "seconds": 3.0}],
                            {"runtime": "current", "jobs": 2}) == 1
    first = json.loads(path.read_text(encoding="utf-8"))
    assert first["notebooks"] == {"00_a": {"seconds": 12.5, "runtime": "current", "jobs": 2}}
    assert "pip install" in first["about"]
    # a later run of another notebook keeps the first one's entry; a re-run replaces it
    sim.record_times(path, [{"notebook": "01_b", "ok": True, "seconds": 40.0}], {"jobs": 1})
    sim.record_times(path, [{**ok, "seconds": 11.0}], {"jobs": 1})
    assert json.loads(path.read_text(encoding="utf-8"))["notebooks"] == {
        "00_a": {"seconds": 11.0, "jobs": 1}, "01_b": {"seconds": 40.0, "jobs": 1}}


def test_a_broken_record_is_one_clear_error(tmp_path):
    path = tmp_path / "times.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(sim.SimError, match=r"times.json: not JSON"):
        sim.record_times(path, [], {})
    path.write_text('{"seconds": 3}', encoding="utf-8")
    with pytest.raises(sim.SimError, match="no 'notebooks' mapping"):
        sim.record_times(path, [], {})
