"""The Colab setup cell: nothing outside Colab; on Colab clone, install from the lock, Drive on request.

The cell is IPython code (``!git``, ``%pip``); here it runs through IPython's own transformer with
a recording shell, so each case checks the exact commands a Colab runtime would be given. The
whole notebooks run on a simulated fresh Colab runtime in CI (scripts/colab_sim.py).
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from kokoro_nb import colab

ROOT = Path(__file__).resolve().parents[1]
URL, BRANCH = "https://github.com/someone/fork", "dev"


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


def run_setup(source: str, *, colab_runtime: bool, drive_data=None, home: Path, monkeypatch):
    code = TransformerManager().transform_cell(source)
    if drive_data is not None:
        code = code.replace("DRIVE_DATA = None", f"DRIVE_DATA = {drive_data!r}")
    shell, mounts = Shell(), []
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KOKOROCHAT_DIR", raising=False)
    if colab_runtime:
        drive = types.SimpleNamespace(mount=mounts.append)
        pkg = types.ModuleType("google.colab")
        pkg.drive = drive
        monkeypatch.setitem(sys.modules, "google.colab", pkg)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(code, "<setup>", "exec"), {"get_ipython": lambda: shell})
    return shell.calls, mounts, os.environ.get("KOKOROCHAT_DIR")


def test_outside_colab_the_cell_does_nothing(tmp_path, monkeypatch):
    calls, mounts, data = run_setup(colab.setup_source(URL, BRANCH, ["train"]), colab_runtime=False,
                                    home=tmp_path, monkeypatch=monkeypatch)
    assert calls == [] and mounts == [] and data is None


def test_on_colab_it_clones_and_installs_the_extras_at_the_lock_versions(tmp_path, monkeypatch):
    calls, mounts, data = run_setup(colab.setup_source(URL, BRANCH, ["train"]), colab_runtime=True,
                                    home=tmp_path, monkeypatch=monkeypatch)
    clone = tmp_path / "kokorochat-companion"
    assert calls[0] == ("!", f"git clone --quiet --depth 1 --branch {BRANCH} {URL} {clone}")
    assert calls[1] == ("pip", f'install --quiet -c {clone}/requirements-lock.txt "{clone}[train]"')
    assert mounts == [] and data is None              # Drive is mounted only when asked


def test_a_second_run_does_not_clone_again_and_plain_chapters_install_no_extras(tmp_path, monkeypatch):
    (tmp_path / "kokorochat-companion").mkdir()
    calls, _, _ = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                            monkeypatch=monkeypatch)
    assert [c[0] for c in calls] == ["pip"] and calls[0][1].endswith(f'"{tmp_path}/kokorochat-companion"')


def test_drive_is_mounted_when_asked_and_becomes_the_data_folder(tmp_path, monkeypatch):
    _, mounts, data = run_setup(colab.setup_source(URL, BRANCH), colab_runtime=True, home=tmp_path,
                                drive_data="KokoroChat", monkeypatch=monkeypatch)
    assert mounts == [colab.DRIVE_MOUNT] and data == f"{colab.DRIVE_MOUNT}/MyDrive/KokoroChat"


def test_the_lock_the_cell_names_exists_and_holds_no_torch():
    lock = (ROOT / "requirements-lock.txt").read_text()
    assert not any(line.startswith("torch==") for line in lock.splitlines())


def test_repository_without_url_is_a_clear_error(tmp_path):
    from kokoro_nb.errors import DataError
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(DataError) as err:
        colab.repository(tmp_path)
    assert err.value.field == "repository.url"
