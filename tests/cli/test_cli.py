"""The command line as a user meets it: help everywhere, version, exit codes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kokoro_nb import __version__
from kokoro_nb.cli import build_parser, main


def _commands(parser, prefix=()):
    """Yield every sub-command path of the parser, e.g. ('data', 'validate')."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _commands(sub, prefix + (name,))


COMMANDS = sorted(set(_commands(build_parser())))


def test_expected_commands_exist():
    assert {("stats",), ("data", "fetch"), ("data", "validate")} <= set(COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: kokoro-nb" in capsys.readouterr().out


def test_version_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_console_script_reports_bad_data_without_traceback(tmp_path):
    (tmp_path / "kokorochat_dialogues").mkdir()
    (tmp_path / "kokorochat_dialogues" / "1.json").write_text("{", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "kokoro_nb.cli", "-q", "stats", "--data", str(tmp_path), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("1.json:1: malformed JSON (unexpected end of data)") or \
        "1.json:1: malformed JSON" in r.stderr
