"""Simulated-client evaluation end to end over real HTTP on loopback: turn logic, resume, faults, judge."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from kokoro_nb import cli

from kokoro_nb.evaluate import simulate
from kokoro_nb.testing.fakeserver import FakeChatServer


@pytest.fixture
def server():
    with FakeChatServer(client_end_at=12, early_end_at=3, timeout_delay=1.0) as srv:
        yield srv


def run_cli(srv, out, *extra, dialogues=2, client_model="client"):
    return cli.main(["-q", "simulate", "run", "--counselor-url", srv.url, "--counselor-model", "counselor",
                     "--client-url", srv.url, "--client-model", client_model, "--dialogues", str(dialogues),
                     "--output", str(out), *extra])


def records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("text, want", [
    ("ありがとうございました。<end>", ("ありがとうございました。", True)),
    ("さようなら＜END＞", ("さようなら", True)),
    ("< end >\n", ("", True)),
    ("endという言葉", ("endという言葉", False)),
    ("", ("", False)),
])
def test_split_end(text, want):
    assert simulate.split_end(text) == want


@pytest.mark.parametrize("text, scale, want", [
    ("理由… [2, 3, 3, 1]", "cpsycoun", ([2.0, 3.0, 3.0, 1.0], "ok")),
    ("[1,1,1,1] 再考して [2, 2.5, 3, 0]", "cpsycoun", ([2.0, 2.5, 3.0, 0.0], "ok")),   # the last list counts
    ("[5, 4, 4, 5]", "paper", ([5.0, 4.0, 4.0, 5.0], "ok")),
    ("[5, 4, 4, 5]", "cpsycoun", ([5.0, 4.0, 4.0, 5.0], "out_of_range")),
    ("[6, 0, 0, 0]", "paper", ([6.0, 0.0, 0.0, 0.0], "out_of_range")),
    ("scores: 2, 3, 3, 1", "paper", (None, "unparseable")),
    ("[2, 3, 3]", "paper", (None, "unparseable")),
])
def test_parse_verdict(text, scale, want):
    assert simulate.parse_verdict(text, scale) == want


def test_each_side_sees_its_own_turns_as_assistant():
    turns = [{"role": "client", "content": "a"}, {"role": "counselor", "content": "b"}]
    c = simulate.view_messages(turns, "client", "S")
    assert [m["role"] for m in c] == ["system", "user", "assistant", "user"]
    assert c[1]["content"] == simulate.CLIENT_START_JA and c[2]["content"] == "a"
    k = simulate.view_messages(turns, "counselor", None)
    assert [(m["role"], m["content"]) for m in k] == [("user", "a"), ("assistant", "b")]
    assert simulate.view_messages([], "client", None)[0]["content"] == simulate.CLIENT_START_JA


def test_client_prompt_is_the_papers_with_min_turns():
    p = simulate.client_system_prompt(7)
    assert "7ターン" in p and "<end>" in p and "10ターン" not in p
    assert "テーマ：仕事" in simulate.client_system_prompt(10, {"topic": "仕事", "subtopic": "残業"})


def test_run_and_judge_end_to_end(server, tmp_path, capsys):
    out = tmp_path / "sim.jsonl"
    assert run_cli(server, out, "--client-price", "1", "2", "--counselor-price", "3", "4") == 0
    info = json.loads(capsys.readouterr().out)
    recs = records(out)
    assert [r["dialogue_id"] for r in recs] == ["sim-0000", "sim-0001"]
    for r in recs:
        roles = [t["role"] for t in r["turns"]]
        assert roles == ["client", "counselor"] * 11 + ["client"]         # <end> on the 12th client turn
        assert r["ended_by"] == "client_end" and r["client_turns"] == 12 and r["ignored_ends"] == 1
        assert all("<end>" not in t["content"] for t in r["turns"])
        assert r["turns"][-1]["content"].startswith("今日はお話しできてよかった")
    assert info["written"] == 2 and info["ended_by"] == {"client_end": 2, "max_turns": 0}
    assert info["usage"]["client"]["requests"] == 24 and info["usage"]["counselor"]["requests"] == 22
    assert server.count() == 46 and not simulate.partial_path(out).exists()
    u = info["usage"]
    want = (u["client"]["prompt_tokens"] * 1 + u["client"]["completion_tokens"] * 2
            + u["counselor"]["prompt_tokens"] * 3 + u["counselor"]["completion_tokens"] * 4) / 1e6
    assert info["cost_usd"]["total"] == pytest.approx(want) and want > 0
    # the counselor saw the fine-tuning system prompt, the client the paper's
    sys_by_model = {r["model"]: r["system"] for r in server.requests}
    assert sys_by_model["counselor"] == simulate.sft.SYSTEM_PROMPT
    assert sys_by_model["client"] == simulate.client_system_prompt(10)

    judged = tmp_path / "judge.jsonl"
    assert cli.main(["-q", "simulate", "judge", str(out), "--judge-url", server.url, "--judge-model", "judge",
                     "--output", str(judged), "--scale", "cpsycoun"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_scored"] == 2 and summary["status"] == {"ok": 2}
    assert summary["mean"] == {"Comprehensiveness": 2.0, "Professionalism": 3.0, "Authenticity": 3.0, "Safety": 1.0}
    assert summary["mean_0_5"] == {d: 5.0 for d in simulate.DIMENSIONS}      # the rubric's maxima, rescaled
    assert "0-5" in summary["paper_table7_scale"] and "Safety 0-1" in summary["paper_table7_scale"]
    n = server.count()
    assert cli.main(["-q", "simulate", "judge", str(out), "--judge-url", server.url, "--judge-model", "judge",
                     "--output", str(judged), "--scale", "cpsycoun"]) == 0
    assert server.count() == n                                               # judge resumes too


@pytest.mark.parametrize("min_turns, end_at, client_turns, ignored", [
    (4, 4, 5, 1),     # <end> on the 4th client turn comes with only 3 before it: ignored
    (4, 5, 5, 0),     # on the 5th, after 4 client turns: honoured
    (0, 1, 1, 0),     # no minimum: the first turn may end it
])
def test_end_is_honoured_only_after_min_turns(tmp_path, min_turns, end_at, client_turns, ignored):
    with FakeChatServer(client_end_at=end_at, early_end_at=None) as srv:
        out = tmp_path / "o.jsonl"
        assert run_cli(srv, out, "--min-turns", str(min_turns), "--max-turns", "8", dialogues=1) == 0
    (r,) = records(out)
    assert (r["ended_by"], r["client_turns"], r["ignored_ends"]) == ("client_end", client_turns, ignored)


def test_forced_stop_at_max_turns(tmp_path):
    with FakeChatServer(client_end_at=99, early_end_at=2) as srv:
        out = tmp_path / "o.jsonl"
        assert run_cli(srv, out, "--min-turns", "3", "--max-turns", "5", dialogues=1) == 0
    (r,) = records(out)
    assert r["ended_by"] == "max_turns" and r["client_turns"] == 5
    assert [t["role"] for t in r["turns"]] == ["client", "counselor"] * 5    # 5 full exchanges, then stop


def test_rerun_sends_no_request_for_finished_dialogues(server, tmp_path):
    out = tmp_path / "o.jsonl"
    assert run_cli(server, out, dialogues=2) == 0
    n = server.count()
    assert run_cli(server, out, dialogues=2) == 0
    assert server.count() == n                                  # nothing asked again
    assert run_cli(server, out, dialogues=3) == 0               # one more dialogue: only its requests
    assert server.count() == n + 23 and len(records(out)) == 3


def test_non_json_body_stops_with_one_message_and_resume_completes(server, tmp_path, capsys):
    clean = tmp_path / "clean.jsonl"
    assert run_cli(server, clean) == 0
    capsys.readouterr()
    out = tmp_path / "o.jsonl"
    before = server.count()
    server.fail_next("not_json", after=30)            # 23 requests finish dialogue 1; dies inside dialogue 2
    assert run_cli(server, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "not JSON" in err and "1 of 2 dialogues are finished" in err and str(out) in err
    assert [r["dialogue_id"] for r in records(out)] == ["sim-0000"]
    assert len(records(simulate.partial_path(out))) == 30 - 23 + 23          # dialogue 1's and 7 of dialogue 2's
    server.requests.clear()
    assert run_cli(server, out) == 0                                         # continues dialogue 2
    assert server.count() == 23 - 7 and before > 0
    assert records(out) == records(clean)                                    # same as an uninterrupted run


def test_http_500_and_429_are_retried(server, tmp_path):
    out = tmp_path / "o.jsonl"
    server.fail_next("500", times=2)
    server.fail_next("429", times=1, after=5)
    assert run_cli(server, out, "--max-retries", "3", dialogues=1) == 0
    assert server.count() == 23 + 3 and records(out)[0]["client_turns"] == 12


def test_timeout_is_retried(server, tmp_path):
    out = tmp_path / "o.jsonl"
    server.fail_next("timeout")                       # the server answers after 1 s, the client waits 0.3 s
    assert run_cli(server, out, "--timeout", "0.3", dialogues=1) == 0
    assert server.count() == 23 + 1 and len(records(out)) == 1


@pytest.mark.parametrize("fault, extra, words", [
    ("timeout", ["--timeout", "0.3", "--max-retries", "0"], "timeout"),
    ("500", ["--max-retries", "1"], "HTTP 500"),
    ("no_choices", [], "no choices[0].message.content"),
])
def test_unrecoverable_failures_exit_2_with_one_message(server, tmp_path, capsys, fault, extra, words):
    server.fail_next(fault, times=5, after=3)
    assert run_cli(server, tmp_path / "o.jsonl", *extra, dialogues=1) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "0 of 1 dialogues are finished" in err


def test_resume_refuses_other_settings(server, tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert run_cli(server, out, dialogues=1) == 0
    assert run_cli(server, out, "--max-turns", "30", dialogues=1) == 2
    assert "max_turns: 20 in the file, 30 now" in capsys.readouterr().err
    assert run_cli(server, out, "--max-turns", "30", "--restart", dialogues=1) == 0


@pytest.mark.parametrize("args, words", [
    (["--min-turns", "5", "--max-turns", "4"], "--min-turns"),
    (["--concurrency", "0"], "--concurrency"),
    (["--timeout", "0"], "--timeout"),
    (["--data", "x"], "--seed-from-test"),
])
def test_bad_options_exit_2(server, tmp_path, capsys, args, words):
    assert run_cli(server, tmp_path / "o.jsonl", *args) == 2
    assert words in capsys.readouterr().err


def test_concurrent_run_writes_every_dialogue_once(server, tmp_path):
    out = tmp_path / "o.jsonl"
    assert run_cli(server, out, "--concurrency", "4", dialogues=6) == 0
    assert sorted(r["dialogue_id"] for r in records(out)) == [f"sim-{i:04d}" for i in range(6)]
    assert server.count() == 6 * 23


def test_seeded_clients_start_from_a_test_dialogue(server, tmp_path, synthetic_kokorochat_dir):
    import kokoro_nb
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)
    test_ids = corpus.dialogues["dialogue_id"].astype(str).tolist()[:3]
    corpus.dialogues.loc[corpus.dialogues["dialogue_id"].astype(str).isin(test_ids), "score"] = 100
    plans = simulate.plan_dialogues(4, seed=1, corpus=corpus, seed_turns=2)
    assert {p["seed_dialogue"] for p in plans} == set(test_ids)           # 3 test dialogues, cycled
    turns = simulate.sft.dialogue_turns(corpus, [plans[0]["seed_dialogue"]])[plans[0]["seed_dialogue"]]
    opening = plans[0]["opening"]
    assert [(t["role"], t["content"]) for t in opening] == turns[:len(opening)]
    assert sum(t["role"] == "client" for t in opening) == 2 and opening[-1]["role"] == "client"
    c = simulate.Endpoint(server.url, "counselor")
    k = simulate.Endpoint(server.url, "client")
    info = simulate.simulate_dialogues(plans[:1], c, k, tmp_path / "s.jsonl", min_turns=4, max_turns=6,
                                       progress=False)
    (r,) = records(tmp_path / "s.jsonl")
    assert r["seed_dialogue"] == plans[0]["seed_dialogue"] and r["turns"][:len(opening)] == opening
    assert r["turns"][len(opening)]["role"] == "counselor"                    # the counselor answers the seed
    assert info["usage"]["client"]["requests"] == r["client_turns"] - 2       # seeded turns cost nothing
    client_system = next(q["system"] for q in server.requests if q["model"] == "client")
    assert f"テーマ：{plans[0]['topic']}" in client_system


def test_summary_counts_every_status():
    recs = [{"dialogue_id": "a", "scale": "paper", "status": "ok", "scores": dict(zip(simulate.DIMENSIONS, [4, 3, 5, 5]))},
            {"dialogue_id": "b", "scale": "paper", "status": "ok", "scores": dict(zip(simulate.DIMENSIONS, [2, 3, 3, 5]))},
            {"dialogue_id": "c", "scale": "paper", "status": "unparseable", "scores": None}]
    s = simulate.summarise_judgements(recs)
    assert s["n_dialogues"] == 3 and s["n_scored"] == 2 and s["status"] == {"ok": 2, "unparseable": 1}
    assert s["mean"]["Comprehensiveness"] == 3.0 and s["mean_0_5"] == s["mean"]


def test_judge_reports_unparseable_verdicts(tmp_path, capsys):
    with FakeChatServer(judge_scores=(9, 9, 9, 9)) as srv:
        out = tmp_path / "o.jsonl"
        assert run_cli(srv, out, "--min-turns", "1", "--max-turns", "2", dialogues=2) == 0
        capsys.readouterr()
        assert cli.main(["-q", "simulate", "judge", str(out), "--judge-url", srv.url, "--judge-model", "judge",
                         "--output", str(tmp_path / "j.jsonl")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["status"] == {"out_of_range": 2} and s["n_scored"] == 0 and s["mean"]["Safety"] is None


def test_paper_table7_is_on_0_5():
    t = simulate.paper_table7()
    assert list(t.columns) == list(simulate.DIMENSIONS) and t.loc["Kokoro-High", "Safety"] == 4.98
    assert (t.to_numpy() <= 5).all() and (t["Safety"] > 1).all()           # not CPsyCoun's 0-1 safety scale


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_transformers_serve_with_the_tiny_model(tmp_path, synthetic_kokorochat_dir):
    """Optional: run and judge against ``transformers serve`` with the tiny model (about 30 s on 2 cores)."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing or shutil.which("transformers") is None:
        pytest.skip(f"transformers serve needs {', '.join(missing) or 'the transformers CLI'} "
                    "(pip install 'transformers[serving]'); the fake server covers the pipeline")
    import urllib.request
    import kokoro_nb
    from kokoro_nb.train.models import build_tiny_llama, tiny_tokenizer_texts
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, cache=False, progress=False)
    model_dir = str(build_tiny_llama(tiny_tokenizer_texts(corpus), tmp_path / "tiny"))
    port = _free_port()
    proc = subprocess.Popen([shutil.which("transformers"), "serve", "--host", "127.0.0.1", "--port", str(port),
                             model_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None, "transformers serve exited"
                time.sleep(0.5)
        url, out = f"http://127.0.0.1:{port}/v1", tmp_path / "o.jsonl"
        assert cli.main(["-q", "simulate", "run", "--counselor-url", url, "--counselor-model", model_dir,
                         "--client-url", url, "--client-model", model_dir, "--dialogues", "1", "--min-turns", "1",
                         "--max-turns", "2", "--max-tokens", "4", "--output", str(out)]) == 0
        (r,) = records(out)
        assert r["ended_by"] in simulate.ENDED_BY and r["usage"]["client"]["prompt_tokens"] > 0
        assert cli.main(["-q", "simulate", "judge", str(out), "--judge-url", url, "--judge-model", model_dir,
                         "--max-tokens", "4", "--output", str(tmp_path / "j.jsonl")]) == 0
        (j,) = records(tmp_path / "j.jsonl")
        assert j["status"] in ("ok", "unparseable", "out_of_range")     # random weights: any verdict, counted
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_cli_lists_simulate(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "run" in out and "judge" in out


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ('{"dialogue_id": "a", "turns": [], "ended_by": "client_end"}\n{"dialogue_id": "b", "turns": [{"role": "x"}], '
     '"ended_by": "max_turns"}\n', ":2: turns: turns must be a list"),
    ('{"dialogue_id": "a", "turns": [], "ended_by": "tired"}\n', ":1: ended_by: ended_by must be one of"),
])
def test_judge_refuses_bad_input_files(server, tmp_path, capsys, content, words):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert cli.main(["-q", "simulate", "judge", str(path), "--judge-url", server.url, "--judge-model", "judge",
                     "--output", str(tmp_path / "j.jsonl")]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err and err.count("\n") == 1 and server.count() == 0
