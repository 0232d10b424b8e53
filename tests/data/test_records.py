"""The shared JSON loader (kokoro_nb.data.jsonfile) and message checks (kokoro_nb.data.messages)."""
from __future__ import annotations

import pytest

from kokoro_nb.data import jsonfile, messages
from kokoro_nb.errors import DataError
from kokoro_nb.schema import ROLES


def test_malformed_json_names_the_line_after_non_ascii_text():
    raw = '{"dialogue": [\n {"utterance": "こんにちは、よろしくお願いします"},\n oops\n]}'.encode()
    with pytest.raises(DataError) as exc:
        jsonfile.load_json("7.json", raw)
    assert exc.value.line == 3 and exc.value.file == "7.json"
    assert str(exc.value).startswith("7.json:3: malformed JSON (")
    assert jsonfile.load_json("7.json", b'[1, "\xe3\x81\x82"]') == [1, "あ"]


@pytest.mark.parametrize("m,field,problem", [
    ([], "dialogue[0]", "expected an object, found list"),
    ({"utterance": "x", "time": "t"}, "dialogue[0].role", "missing field"),
    ({"role": "bot", "utterance": "x", "time": "t"}, "dialogue[0].role",
     "unknown role 'bot' (expected one of counselor, client)"),
    ({"role": "client", "utterance": 3, "time": "t"}, "dialogue[0].utterance", "expected text, found int"),
    ({"role": "client", "utterance": "x", "time": 3}, "dialogue[0].time",
     "expected a time 'YYYY-MM-DDTHH:MM:SS', found 3"),
])
def test_message_names_field_and_problem(m, field, problem):
    with pytest.raises(DataError) as exc:
        messages.message(m, "1.json", "dialogue[0]", role_key="role", roles=ROLES, text_key="utterance",
                         time_key="time")
    assert (exc.value.field, exc.value.problem) == (field, problem)


def test_message_returns_its_fields_and_takes_the_callers_wording():
    m = {"role": "client", "utterance": "x", "time": "2022-01-01T00:00:00"}
    assert messages.message(m, "f", "w", role_key="role", roles=ROLES, text_key="utterance",
                            time_key="time") == ("client", "x", "2022-01-01T00:00:00")
    with pytest.raises(DataError, match=r"w\.content: expected text, found \[1\]"):
        messages.message({"speaker": "Seeker", "content": [1]}, "f", "w", role_key="speaker",
                         roles=("Seeker",), text_key="content", found=repr)
    assert messages.get({"a": 1}, "a", "f", "") == 1
    with pytest.raises(DataError, match="f: b: missing field"):
        messages.get({"a": 1}, "b", "f", "")
