"""The resumable worker loop that ``simulate run`` and ``simulate judge`` share."""
from __future__ import annotations

import json
import threading
import time

import pytest

from kokoro_nb.errors import DataError, KokoroError
from kokoro_nb.evaluate import simulate
from kokoro_nb.evaluate.workers import run_resumable
from kokoro_nb.jsonl import read_resumable


def _ids(path):
    return [r["id"] for r in read_resumable(path)]


def test_skips_done_items_and_appends_the_rest(tmp_path):
    out = tmp_path / "o.jsonl"
    seen, tallied = [], []

    def work(item, stop):
        seen.append(item)
        return {"id": item}

    n = run_resumable(["a", "b", "c", "d"], work, out, key=str, done={"b", "d"}, progress=False,
                      on_record=lambda rec: tallied.append(rec["id"]))
    assert n == 2 and seen == ["a", "c"] and _ids(out) == ["a", "c"] and tallied == ["a", "c"]
    # A second run over the whole output does nothing.
    assert run_resumable(["a", "c"], work, out, key=str, done=_ids(out), progress=False) == 0
    assert seen == ["a", "c"]


def test_none_writes_nothing(tmp_path):
    out = tmp_path / "o.jsonl"
    n = run_resumable([1, 2, 3], lambda i, stop: None if i == 2 else {"id": i}, out, key=str, progress=False)
    assert n == 2 and sorted(_ids(out)) == [1, 3]


def test_sequential_order_is_the_order_of_items(tmp_path):
    out = tmp_path / "o.jsonl"
    run_resumable(list(range(6)), lambda i, stop: {"id": i}, out, key=str, progress=False)
    assert _ids(out) == list(range(6))


def test_progress_bar_starts_at_the_done_items(tmp_path, capsys):
    run_resumable(["a", "b", "c"], lambda i, stop: {"id": i}, tmp_path / "o.jsonl", key=str, done=["a"],
                  desc="judge", progress=True)
    err = capsys.readouterr().err
    assert "judge" in err and "3/3" in err


def test_error_stops_the_rest_keeps_what_finished_and_says_how_far(tmp_path):
    out = tmp_path / "o.jsonl"
    started = []

    def work(i, stop):
        if i > 1:
            stop.wait(5)                   # the loop sets stop once it has seen the error
        if stop.is_set():
            return None
        started.append(i)
        if i == 1:
            raise DataError("endpoint broke")
        return {"id": i}

    with pytest.raises(DataError) as exc:                 # the same type as the job's error
        run_resumable(list(range(5)), work, out, key=str, done=["x"], progress=False, what="dialogues are judged")
    msg = str(exc.value)
    assert "endpoint broke" in msg and f"Stopped: 2 of 5 dialogues are judged in {out} (kept)" in msg
    assert started == [0, 1] and _ids(out) == [0]         # nothing after the error was started


def test_error_lets_running_jobs_finish_and_write(tmp_path):
    out = tmp_path / "o.jsonl"
    slow_started = threading.Event()

    def work(i, stop):
        if i == "slow":
            slow_started.set()
            time.sleep(0.3)
            return {"id": i}
        if i == "bad":
            slow_started.wait(5)
            raise KokoroError("boom")
        return None if stop.is_set() else {"id": i}

    with pytest.raises(KokoroError, match="Stopped: 1 of 4"):
        run_resumable(["slow", "bad", "later", "later2"], work, out, key=str, max_workers=2, progress=False)
    assert _ids(out) == ["slow"]


def test_other_exceptions_are_not_swallowed(tmp_path):
    def work(i, stop):
        raise ValueError("a bug")
    with pytest.raises(ValueError, match="a bug"):
        run_resumable([1], work, tmp_path / "o.jsonl", key=str, progress=False)


class _FailingJudge:
    """A judge endpoint whose second call fails (as a refused request would)."""
    price = (0.0, 0.0)

    def __init__(self):
        self.calls, self._lock = 0, threading.Lock()

    def chat(self, messages, seed=None):
        with self._lock:
            self.calls += 1
            n = self.calls
        if n == 2:
            raise simulate.EndpointError("HTTP 400: refused")
        time.sleep(0.05)
        return "よい対話でした。 [4, 4, 4, 5]", {"prompt_tokens": 10, "completion_tokens": 5}


class _OkJudge(_FailingJudge):
    def chat(self, messages, seed=None):
        return "[4, 4, 4, 5]", {"prompt_tokens": 10, "completion_tokens": 5}


def _dialogues(path, n):
    turns = [{"role": "client", "content": "こんにちは"}, {"role": "counselor", "content": "こんにちは。"}]
    path.write_text("".join(f'{{"dialogue_id": "d{i}", "turns": {json.dumps(turns)}, '
                            f'"ended_by": "max_turns"}}\n' for i in range(n)), encoding="utf-8")
    return path


def test_judge_error_with_concurrency_says_how_far(tmp_path):
    # Before the loop was shared, judge cancelled the waiting jobs and then read their results:
    # with --concurrency > 1 the endpoint's error came out as a bare CancelledError.
    src, out = _dialogues(tmp_path / "d.jsonl", 8), tmp_path / "j.jsonl"
    judge = _FailingJudge()
    with pytest.raises(simulate.EndpointError) as exc:
        simulate.judge_file(src, judge, out, concurrency=2, progress=False)
    kept = read_resumable(out)
    assert "HTTP 400: refused" in str(exc.value)
    assert f"Stopped: {len(kept)} of 8 dialogues are judged" in str(exc.value)
    assert judge.calls < 8                                 # waiting dialogues were not sent
    # The rerun judges only what is missing, and the usage counts only its requests.
    again = simulate.judge_file(src, _OkJudge(), out, concurrency=2, progress=False)
    assert again["n_dialogues"] == 8 and again["usage"]["requests"] == 8 - len(kept)
