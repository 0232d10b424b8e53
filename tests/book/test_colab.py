"""The Colab setup cell: nothing outside Colab; on Colab clone, install, stop on trouble, Drive on request.

The cell is IPython code (``!git``); here it runs through IPython's own transformer with a
recording shell, and pip is a fake executable put in place of ``sys.executable`` (the cell runs
``sys.executable -m pip``): it logs its arguments, prints, fails or "upgrades" a package on
request. The whole notebooks run on a simulated fresh Colab runtime in CI (scripts/colab_sim.py).
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from kokoro_book import colab
from kokoro_nb.testing.synthetic import write_kokorochat

ROOT = Path(__file__).resolve().parents[2]
URL, BRANCH = "https://github.com/someone/fork", "dev"

FAKE_PIP = """#!{python}
# stands in for `python -m pip`: logs its arguments, then does what FAKE_PIP_* say
import os, sys
with open(os.environ["FAKE_PIP_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
print(os.environ.get("FAKE_PIP_SAYS", ""), end="")
bump = os.environ.get("FAKE_PIP_BUMP")     # a dist-info folder to move to version 2.0
if bump:
    new = bump.replace("-1.0.dist-info", "-2.0.dist-info")
    os.rename(bump, new)
    meta = os.path.join(new, "METADATA")
    text = open(meta).read()
    open(meta, "w").write(text.replace("Version: 1.0", "Version: 2.0"))
sys.exit(int(os.environ.get("FAKE_PIP_EXIT", "0")))
"""


class Shell:
    """Records what the cell asks IPython to run (shell commands and line magics)."""

    def __init__(self):
        self.calls = []

    def system(self, cmd):
        self.calls.append(("!", self._expand(cmd)))

    def run_line_magic(self, name, line, _stack_depth=1):
        self.calls.append((name, self._expand(line)))

    @staticmethod
    def _expand(cmd):  # IPython expands {name} from the caller's namespace
        return cmd.format(**sys._getframe(2).f_globals)


ENV = ("KOKOROCHAT_DIR", "KOKOROCHAT_EN_DIR", "PSY_INSIGHT_DIR", "KOKORO_ARCHIVE_CACHE")


def run_setup(source: str, *, colab_runtime: bool, drive_data=None, home: Path, monkeypatch,
              pip_exit=0, pip_says="", bump=None):
    """Execute the cell; return (shell calls, pip argument lines, Drive mounts, environment)."""
    code = TransformerManager().transform_cell(source)
    if drive_data is not None:
        code = code.replace("DRIVE_DATA = None", f"DRIVE_DATA = {drive_data!r}")
    shell, mounts = Shell(), []
    pip, log = home / "fake-python", home / "pip.log"
    pip.write_text(FAKE_PIP.format(python=sys.executable))
    pip.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    monkeypatch.setenv("FAKE_PIP_EXIT", str(pip_exit))
    monkeypatch.setenv("FAKE_PIP_SAYS", pip_says)
    monkeypatch.setenv("FAKE_PIP_BUMP", str(bump or ""))
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    if colab_runtime:
        drive = types.SimpleNamespace(mount=mounts.append)
        pkg = types.ModuleType("google.colab")
        pkg.drive = drive
        monkeypatch.setitem(sys.modules, "google.colab", pkg)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "executable", str(pip))
    try:
        exec(compile(code, "<setup>", "exec"), {"get_ipython": lambda: shell})
    finally:
        # what the cell left in the environment, read before undo() restores the caller's
        env = {v: os.environ.get(v) for v in ENV}
        monkeypatch.undo()    # restores sys.executable before pytest reports anything
    pip_calls = log.read_text().splitlines() if log.exists() else []
    return shell.calls, pip_calls, mounts, env


def test_outside_colab_the_cell_does_nothing(tmp_path, monkeypatch):
    calls, pip, mounts, env = run_setup(colab.setup_source(URL, BRANCH, ["train"]),
                                        colab_runtime=False, home=tmp_path, monkeypatch=monkeypatch)
    assert calls == [] and pip == [] and mounts == [] and set(env.values()) == {None}


def test_on_colab_it_clones_and_installs_within_colabs_constraints_silently(tmp_path, monkeypatch,
                                                                            capsys):
    calls, pip, mounts, env = run_setup(colab.setup_source(URL, BRANCH, ["train"]),
                                        colab_runtime=True, home=tmp_path, monkeypatch=monkeypatch)
    clone = tmp_path / "kokorochat-companion"
    assert calls == [("!", f"git clone --quiet --depth 1 --branch {BRANCH} {URL} {clone}")]
    assert pip == [f"-m pip install --quiet -c {clone}/requirements-colab-train.txt {clone}[train]"]
    assert mounts == [] and set(env.values()) == {None}     # Drive is mounted only when asked
    assert capsys.readouterr().out == ""


def test_a_failed_install_stops_the_notebook_with_pips_message(tmp_path, monkeypatch, capsys):
    says = "ERROR: Package 'kokoro-nb' requires a different Python: 3.14.0 not in '<3.14,>=3.11'\n"
    with pytest.raises(SystemExit) as stop:
        run_setup(colab.setup_source(URL, BRANCH, ["train"]), colab_runtime=True, home=tmp_path,
                  drive_data="KokoroChat", monkeypatch=monkeypatch, pip_exit=1, pip_says=says)
    assert capsys.readouterr().out == says                  # pip's own words, visible
    assert "pip failed (exit status 1" in str(stop.value) and "\n" not in str(stop.value)


def test_replacing_an_imported_package_asks_for_a_restart_and_stops(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "kokorofake").mkdir(parents=True)
    (site / "kokorofake" / "__init__.py").write_text("")
    info = site / "kokorofake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kokorofake\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("kokorofake\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "kokorofake", raising=False)
    __import__("kokorofake")                                  # the session has imported it
    with pytest.raises(SystemExit) as stop:
        run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                  monkeypatch=monkeypatch, bump=info)
    assert "Runtime > Restart session" in str(stop.value)
    assert "kokorofake 1.0 -> 2.0" in str(stop.value)


def test_an_upgrade_of_a_package_not_imported_needs_no_restart(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "kokorofake2-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kokorofake2\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("kokorofake2\n")
    monkeypatch.syspath_prepend(str(site))
    _, pip, _, _ = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                             monkeypatch=monkeypatch, bump=info)
    assert len(pip) == 1 and (site / "kokorofake2-2.0.dist-info").is_dir()


def test_a_second_run_does_not_clone_again_and_plain_chapters_install_no_extras(tmp_path, monkeypatch):
    (tmp_path / "kokorochat-companion").mkdir()
    calls, pip, _, _ = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                                 monkeypatch=monkeypatch)
    clone = tmp_path / "kokorochat-companion"
    assert calls == [] and pip == [f"-m pip install --quiet -c {clone}/requirements-colab.txt {clone}"]


def test_drive_is_mounted_when_asked_and_holds_data_translation_and_downloads(tmp_path, monkeypatch):
    drive = tmp_path / "drive"
    data = drive / "MyDrive" / "KokoroChat"
    write_kokorochat(data, n_dialogues=3)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(drive))   # the cell's mount point, here a folder
    _, _, mounts, env = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True,
                                  home=tmp_path, drive_data="KokoroChat", monkeypatch=monkeypatch)
    assert mounts == [str(drive)]
    # no translation or Psy-Insight there: both are downloaded (verified), kept in downloads/
    assert env == {"KOKOROCHAT_DIR": str(data), "KOKOROCHAT_EN_DIR": None, "PSY_INSIGHT_DIR": None,
                   "KOKORO_ARCHIVE_CACHE": f"{data}/downloads"}


def _layout(folder: Path, kind: str) -> None:
    folder.mkdir(parents=True)
    if kind == "kokorochat_dialogues/<id>.json":
        write_kokorochat(folder, n_dialogues=3)
    elif kind == "<id>.json directly":
        write_kokorochat(folder.parent / "repo", n_dialogues=3)
        for f in (folder.parent / "repo" / "kokorochat_dialogues").glob("*.json"):
            f.rename(folder / f.name)
    elif kind == "empty kokorochat_dialogues/":
        (folder / "kokorochat_dialogues").mkdir()
    elif kind == "the archive in downloads/":
        (folder / "downloads").mkdir()
        (folder / "downloads" / "KokoroChat-0123.zip").write_bytes(b"PK")
    elif kind == "the repository one folder down":
        write_kokorochat(folder / "KokoroChat-0123", n_dialogues=3)
    elif kind == "only other folders":
        (folder / "multilingual-kokorochat" / "English").mkdir(parents=True)
        (folder / "multilingual-kokorochat" / "English" / "en1.json").write_text("{}")


@pytest.mark.parametrize("kind, read", [
    ("kokorochat_dialogues/<id>.json", True), ("<id>.json directly", True),
    ("nothing", False), ("empty kokorochat_dialogues/", False), ("the archive in downloads/", False),
    ("the repository one folder down", False), ("only other folders", False)])
def test_kokorochat_dir_is_the_drive_folder_only_when_it_holds_the_dialogues(tmp_path, monkeypatch,
                                                                              kind, read):
    """Otherwise it stays unset, so the chapter downloads KokoroChat (verified) and keeps the
    archive in the folder's downloads/ (tests/data/test_fetch.py, tests/book/test_instructor_guide.py)."""
    drive = tmp_path / "drive"
    data = drive / "MyDrive" / "KokoroChat"
    _layout(data, kind)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(drive))
    _, _, _, env = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                             drive_data="KokoroChat", monkeypatch=monkeypatch)
    assert env["KOKOROCHAT_DIR"] == (str(data) if read else None)
    assert env["KOKORO_ARCHIVE_CACHE"] == f"{data}/downloads"


def test_a_drive_folder_that_is_not_there_stops_the_notebook(tmp_path, monkeypatch):
    drive = tmp_path / "drive"
    (drive / "MyDrive").mkdir(parents=True)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(drive))
    with pytest.raises(SystemExit) as stop:
        run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                  drive_data="KokoroChta", monkeypatch=monkeypatch)
    assert str(stop.value) == (f"DRIVE_DATA: no folder {drive}/MyDrive/KokoroChta; create it in My Drive, "
                               "or add a shortcut to the course folder there")
    assert not (drive / "MyDrive" / "KokoroChta").exists()


@pytest.mark.parametrize("var, folder", [("KOKOROCHAT_EN_DIR", "multilingual-kokorochat"),
                                         ("PSY_INSIGHT_DIR", "psy-insight")])
def test_drive_translation_and_psy_insight_folders_are_used_when_there(tmp_path, monkeypatch, var, folder):
    drive = tmp_path / "drive"
    (drive / "MyDrive" / "KokoroChat" / folder).mkdir(parents=True)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(drive))   # the cell's mount point, here a folder
    _, _, _, env = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                             drive_data="KokoroChat", monkeypatch=monkeypatch)
    assert env[var] == f"{drive}/MyDrive/KokoroChat/{folder}"
    assert [v for v in ("KOKOROCHAT_EN_DIR", "PSY_INSIGHT_DIR") if env[v]] == [var]


@pytest.mark.parametrize("extras", [(), ("train",)])
def test_the_constraints_the_cell_names_exist_and_hold_no_torch(extras):
    source = colab.setup_source(URL, BRANCH, extras)
    name = next(n for n in (ROOT.glob("requirements-colab*.txt")) if f"/{n.name}\"" in source).name
    lines = (ROOT / name).read_text().splitlines()
    assert any(line.startswith("transformers==") for line in lines) == bool(extras)
    assert not any(line.startswith(("torch==", "nvidia-", "triton==")) for line in lines)


def test_repository_without_url_is_a_clear_error(tmp_path):
    from kokoro_nb.errors import DataError
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(DataError) as err:
        colab.repository(tmp_path)
    assert err.value.field == "repository.url"
