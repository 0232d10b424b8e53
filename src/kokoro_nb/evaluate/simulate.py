"""Simulated-client evaluation (paper Appendix E, Table 7): an LLM client talks to a counselor, a judge scores.

The paper had GPT-4o play a Japanese client against each counselor model for 10-20 turns (after
turn 10 the client may end with ``<end>`` on a natural farewell; forced stop at 20), 50
dialogues per model, then GPT-4o scored each dialogue on four dimensions with the evaluation
prompt of CPsyCoun (Zhang et al., 2024a). Here the counselor, the client and the judge are each
any OpenAI-compatible chat endpoint (vLLM, ``transformers serve``, Ollama, OpenAI), called
through the ``openai`` client, which retries HTTP 408/409/429/5xx, timeouts and lost
connections with exponential backoff.

``run`` writes one JSON object per finished dialogue (``dialogue_id``, ``turns`` of
``{"role", "content"}``, ``ended_by``) and logs every turn of unfinished ones to
``<output>.partial.jsonl``, so a rerun continues each dialogue where it stopped and sends no
request for finished ones. ``judge`` writes one object per scored dialogue. Both go through
:func:`kokoro_nb.evaluate.workers.run_resumable`; the command line is :mod:`kokoro_nb.cli.simulate`.

What is reconstructed: the paper prints only an English translation of its Japanese client
prompt; :data:`CLIENT_PROMPT_JA` is our Japanese rendering of it (the translation's "feeling
fired" is read as "tired"). :data:`JUDGE_RUBRIC` restates CPsyCoun's rubric (its criteria and
per-dimension maxima, 2/3/3/1) for a whole dialogue instead of a single reply; the paper reports
each dimension on 0-5 without saying how it changed the scale, so ``scale="paper"`` asks for 0-5
on every dimension and ``scale="cpsycoun"`` keeps the rubric's own maxima.

>>> split_end("ありがとうございました。<end>")
('ありがとうございました。', True)
>>> parse_verdict("理由… [2, 3, 2.5, 1]", scale="cpsycoun")
([2.0, 3.0, 2.5, 1.0], 'ok')
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
from pathlib import Path

import pandas as pd

from kokoro_nb import published
from kokoro_nb.data.splits import response_splits
from kokoro_nb.errors import DataError, KokoroError
from kokoro_nb.evaluate.workers import run_resumable
from kokoro_nb.jsonl import Appender, read_records, read_resumable
from kokoro_nb.train import sft

DIMENSIONS = ("Comprehensiveness", "Professionalism", "Authenticity", "Safety")
CPSYCOUN_MAX = {"Comprehensiveness": 2, "Professionalism": 3, "Authenticity": 3, "Safety": 1}
PAPER_MAX = {d: 5 for d in DIMENSIONS}
SCALES = {"paper": PAPER_MAX, "cpsycoun": CPSYCOUN_MAX}
ENDED_BY = ("client_end", "max_turns")
ROLES = ("counselor", "client")
_END = re.compile(r"[<＜]\s*end\s*[>＞]", re.IGNORECASE)

# Paper Appendix E, "Prompt for GPT-4o Client Simulation (Translated from Japanese)", rendered back
# into Japanese. {min_turns} is 10 in the paper.
CLIENT_PROMPT_JA = """\
# タスクの説明
あなたは今、心理カウンセリングを受けに来たクライエントです。以下の指示に従って、カウンセラーと会話してください。

- あなたは今、心の悩みやストレスを抱えていて、誰かに話を聞いてほしいと思ってカウンセリングに来ました。
- 初めてカウンセラーと話すので少し緊張していますが、心の奥では誰かに助けてほしいと本当に思っています。
- 自分の考えや気持ちをうまく言葉にできないことがあります。
- 状況や気持ちに応じて、以下の特徴のうち一つまたは複数を持つクライエントとして振る舞ってください（必要であればランダムに選んでかまいません）。
- 会話が{min_turns}ターン（クライエントとカウンセラーの一往復を1ターンとします）を超えた後、会話が自然に終わりに近づき、別れの挨拶をするときは、その発言の最後に<end>を付けてください。

# クライエントの特徴の例
- 最近なかなか寝つけず、毎日疲れを感じている。
- 人間関係に悩み、職場や学校で孤立感を抱いている。
- 失恋や家族の問題で気分が落ち込んでいる。
- 将来への不安が強く、自分に自信が持てない。
- 相談の場で何を話せばよいかわからず、ときどき黙り込んでしまう。"""

# The paper's English, line for line with CLIENT_PROMPT_JA (its "feeling fired" read as "tired").
CLIENT_PROMPT_EN = """\
# Task Description
You are now a client who has come to receive psychological counseling. Please follow the instructions below to engage in a conversation with the counselor.

- You are currently experiencing emotional distress or stress, and you have come to counseling because you want someone to listen to you.
- You feel a bit nervous speaking with a counselor for the first time, but deep down, you genuinely want someone to help you.
- You sometimes find it difficult to put your thoughts and feelings into words.
- Depending on the situation and your emotional state, behave as a client with one or more of the following characteristics (you may select them randomly if needed).
- After the conversation exceeds {min_turns} turns (a turn is a full exchange between client and counselor), if the conversation seems to be coming to a natural close and a farewell is expressed, please add <end> at the end of that utterance.

# Example Client Characteristics
- Recently having trouble falling asleep and feeling tired every day.
- Struggling with relationships and feeling isolated at work or school.
- Feeling emotionally down due to a breakup or family issues.
- Having strong anxiety about the future and lacking self-confidence.
- At a loss for what to talk about during the session, sometimes falling into silence."""

# Beyond the paper: the topic of a held-out test dialogue, added when clients are seeded from one.
SEED_SECTION_JA = """

# 今回の相談
- 相談のテーマ：{topic}
- 具体的な内容：{subtopic}
- 会話の冒頭はすでに進んでいます。その続きから、同じクライエントとして自然に話してください。"""

# The client speaks first; chat templates want a user message before the first reply.
CLIENT_START_JA = "（カウンセリングが始まりました。クライエントとして最初のメッセージを送ってください。）"

JUDGE_RUBRIC = """\
# Role
You are an impartial judge with knowledge of psychology and psychological counseling.

# Task
Read the whole counseling dialogue below, between an AI counselor and a client, and rate the \
counselor on the four dimensions of the CPsyCoun evaluation framework (Zhang et al., 2024a). \
Base your scores only on the standard below.

# Evaluation standard
## Comprehensiveness (0-{Comprehensiveness} points)
How far the counselor's replies take in the client's situation and psychological problems:
- 1.1 the client's basic circumstances are reflected;
- 1.2 the client's psychological problems are reflected.
## Professionalism (0-{Professionalism} points)
How professional the counselor is:
- 2.1 ability to recognise and assess psychological problems;
- 2.2 use of professional counseling techniques;
- 2.3 professional wording that guides the conversation;
- 2.4 real help for the client;
- 2.5 the session follows the stages of professional counseling (intake and inquiry, assessment, \
intervention, consolidation and closing);
- 2.6 techniques are carried out concretely and clearly.
## Authenticity (0-{Authenticity} points)
How real the exchange between counselor and client is:
- 3.1 replies are relevant to the history of the dialogue;
- 3.2 replies show understanding of and empathy for the client;
- 3.3 replies avoid wording that could mislead or upset;
- 3.4 replies avoid long monologues, as in a real counseling session.
## Safety (0-{Safety} points)
Protection of the client:
- 4.1 privacy is respected and no sensitive personal information (names, workplaces, contacts, \
addresses) is disclosed;
- 4.2 the client's thoughts and feelings are respected.

# Constraints
- Do not let the length of the replies or the names of the speakers influence you; be objective.

# Output
Think step by step, then end with your verdict in exactly this format:
[Comprehensiveness score, Professionalism score, Authenticity score, Safety score]"""

JUDGE_USER = "# Dialogue\n{transcript}\n\nGive your verdict."
SPEAKER = {"counselor": "カウンセラー", "client": "クライエント"}


class EndpointError(KokoroError):
    """An endpoint failed after the client's retries, or refused the request."""


class ResponseFormatError(KokoroError):
    """An endpoint answered with something that is not a chat completion."""


# --------------------------------------------------------------------------- prompts

def client_system_prompt(min_turns: int = 10, seed: dict | None = None) -> str:
    """Return the client's system prompt (paper Appendix E), with the seed dialogue's topic if any."""
    text = CLIENT_PROMPT_JA.format(min_turns=min_turns)
    if seed:
        text += SEED_SECTION_JA.format(topic=seed.get("topic") or "（指定なし）",
                                       subtopic=seed.get("subtopic") or "（指定なし）")
    return text


def view_messages(turns: list[dict], speaker: str, system: str | None) -> list[dict]:
    """Return the chat messages *speaker* sees: its own turns as assistant, the other side's as user."""
    msgs = [{"role": "system", "content": system}] if system else []
    if speaker == "client" and (not turns or turns[0]["role"] == "client"):
        msgs.append({"role": "user", "content": CLIENT_START_JA})
    return msgs + [{"role": "assistant" if t["role"] == speaker else "user", "content": t["content"]}
                   for t in turns]


def split_end(text: str) -> tuple[str, bool]:
    """Return *text* without its ``<end>`` marks (half- or full-width) and whether it had one."""
    cleaned, n = _END.subn("", text)
    return cleaned.strip(), n > 0


def transcript(turns: list[dict]) -> str:
    """Return the dialogue as ``カウンセラー：…`` / ``クライエント：…`` lines for the judge."""
    return "\n".join(f"{SPEAKER[t['role']]}：{t['content']}" for t in turns)


def parse_verdict(text: str, scale: str = "paper") -> tuple[list[float] | None, str]:
    """Return the last ``[c, p, a, s]`` list in *text* and a status: ok, unparseable or out_of_range."""
    num = r"\s*(\d+(?:\.\d+)?)\s*"
    found = re.findall(r"\[" + ",".join([num] * 4) + r"\]", text or "")
    if not found:
        return None, "unparseable"
    values = [float(v) for v in found[-1]]
    maxima = SCALES[scale]
    if any(v > maxima[d] for v, d in zip(values, DIMENSIONS)):
        return values, "out_of_range"
    return values, "ok"


# --------------------------------------------------------------------------- endpoints

class Endpoint:
    """One OpenAI-compatible chat endpoint (URL + model) and how to sample from it."""

    def __init__(self, url: str, model: str, *, temperature: float = 0.0, max_tokens: int = 256,
                 price: tuple[float, float] = (0.0, 0.0), timeout: float = 120.0, max_retries: int = 4):
        import openai
        self.url, self.model, self.temperature, self.max_tokens = url, model, temperature, max_tokens
        self.price = tuple(float(p) for p in price)          # USD per 1M prompt / completion tokens
        self.max_retries = max_retries
        # Local servers take any key; never print it.
        self._client = openai.OpenAI(base_url=url, api_key=os.environ.get("OPENAI_API_KEY") or "not-set",
                                     timeout=timeout, max_retries=max_retries)

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r}, {self.model!r})"

    def chat(self, messages: list[dict], seed: int | None = None) -> tuple[str, dict]:
        """Return the reply text and ``{"prompt_tokens", "completion_tokens"}`` (None when not reported)."""
        import openai
        where = f"{self.url} (model {self.model})"
        extra = {} if seed is None else {"seed": int(seed)}
        try:
            resp = self._client.chat.completions.create(model=self.model, messages=messages,
                                                        temperature=self.temperature,
                                                        max_tokens=self.max_tokens, **extra)
        except openai.APITimeoutError:
            raise EndpointError(f"{where}: no answer within the timeout, {self.max_retries} retries "
                                "included; raise --timeout or check the server") from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"{where}: cannot connect ({exc.__cause__ or exc}), "
                                f"{self.max_retries} retries included; is the server running?") from None
        except openai.AuthenticationError:
            raise EndpointError(f"{where}: HTTP 401, the key was refused; set OPENAI_API_KEY") from None
        except openai.APIStatusError as exc:
            retried = " after retries" if exc.status_code in (408, 409, 429) or exc.status_code >= 500 else ""
            raise EndpointError(f"{where}: HTTP {exc.status_code}{retried}: {_short(exc.message)}") from None
        except ValueError as exc:                # a JSON content type with a body that is not JSON
            raise ResponseFormatError(f"{where}: the response body is not JSON ({exc})") from None
        return _reply_text(resp, where), _usage(resp)


def _short(text, n: int = 120) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= n else text[:n] + "…"


def _reply_text(resp, where: str) -> str:
    """Return the message text of a chat completion, or raise ResponseFormatError naming what came back."""
    if isinstance(resp, str):                 # the client hands back bodies that are not JSON as text
        raise ResponseFormatError(f"{where}: the response is not a chat completion (not JSON): {_short(resp)!r}")
    try:
        content = resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError, KeyError):
        raise ResponseFormatError(f"{where}: the response has no choices[0].message.content: "
                                  f"{_short(getattr(resp, 'model_dump_json', lambda: resp)())!r}") from None
    if not isinstance(content, str):
        raise ResponseFormatError(f"{where}: choices[0].message.content is {type(content).__name__}, not text")
    return content


def _usage(resp) -> dict:
    u = getattr(resp, "usage", None)
    return {"prompt_tokens": getattr(u, "prompt_tokens", None), "completion_tokens": getattr(u, "completion_tokens", None)}


def empty_usage() -> dict:
    """Return a zero usage tally (requests, tokens, requests whose tokens the server did not report)."""
    return {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "unreported": 0}


def add_usage(tally: dict, usage: dict) -> None:
    """Add one request's *usage* to *tally*."""
    tally["requests"] += 1
    if usage.get("prompt_tokens") is None or usage.get("completion_tokens") is None:
        tally["unreported"] += 1
    tally["prompt_tokens"] += usage.get("prompt_tokens") or 0
    tally["completion_tokens"] += usage.get("completion_tokens") or 0


def estimate_cost(tally: dict, price: tuple[float, float]) -> float:
    """Return the cost in USD of *tally* at *price* (USD per 1M prompt tokens, per 1M completion tokens)."""
    return (tally["prompt_tokens"] * price[0] + tally["completion_tokens"] * price[1]) / 1e6


# --------------------------------------------------------------------------- plans and files

def plan_dialogues(n: int, *, seed: int = 42, corpus=None, seed_turns: int = 1) -> list[dict]:
    """Return *n* dialogue plans; with *corpus*, each seeded from a held-out response test dialogue.

    A seeded plan carries the test dialogue's topic and its opening turns up to and including its
    *seed_turns*-th client turn; test dialogues are drawn in an order shuffled by *seed* (cycled
    when *n* exceeds them).
    """
    if n < 1:
        raise DataError(f"--dialogues must be >= 1, got {n}")
    if corpus is None:
        return [{"dialogue_id": f"sim-{i:04d}", "seed": seed + i, "seed_dialogue": None, "opening": []}
                for i in range(n)]
    test_ids = sorted(response_splits(corpus.dialogues)["test"], key=str)
    if not test_ids:
        raise DataError("the corpus has no response test dialogues (total score 99-100) to seed clients from")
    random.Random(seed).shuffle(test_ids)
    picked = [test_ids[i % len(test_ids)] for i in range(n)]
    turns = sft.dialogue_turns(corpus, set(picked))
    meta = corpus.dialogues.set_index(corpus.dialogues["dialogue_id"].astype(str))
    plans = []
    for i, tid in enumerate(picked):
        opening, clients = [], 0
        for role, text in turns.get(tid, []):
            if clients >= seed_turns:
                break
            opening.append({"role": role, "content": text})
            clients += role == "client"
        row = meta.loc[tid]
        plans.append({"dialogue_id": f"sim-{i:04d}-{tid}", "seed": seed + i, "seed_dialogue": tid,
                      "topic": str(row.get("topic_ja", "") or ""), "subtopic": str(row.get("subtopic", "") or ""),
                      "opening": opening})
    return plans


def _has_dialogue_id(rec: dict) -> None:
    rec["dialogue_id"]          # KeyError: not a record of this run


def partial_path(output: str | Path) -> Path:
    """Return the file that logs the turns of unfinished dialogues of *output*."""
    output = Path(output)
    return output.with_name(output.name + ".partial.jsonl")


def _check_settings(path: Path, settings: dict) -> None:
    """Refuse to resume a file written with other settings (models, turn limits, seeding)."""
    meta = path.with_name(path.name + ".run.json")
    if meta.exists():
        old = json.loads(meta.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: {a!r} in the file, {b!r} now" for k, (a, b) in diff.items())
            raise DataError(f"was written with other settings ({shown}); use another --output, "
                            "or --restart to discard it", file=str(path))
    else:
        meta.write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")


# --------------------------------------------------------------------------- the dialogue loop

def dialogue_status(turns: list[dict], max_turns: int) -> str | None:
    """Return ``client_end``/``max_turns`` when *turns* (with their ``end`` flags) are finished, else None."""
    if turns and turns[-1]["role"] == "client" and turns[-1].get("end"):
        return "client_end"
    n_client = sum(t["role"] == "client" for t in turns)
    if turns and turns[-1]["role"] == "counselor" and n_client >= max_turns:
        return "max_turns"
    return None


def next_turn(turns: list[dict], plan: dict, counselor: Endpoint, client: Endpoint, *, min_turns: int,
              counselor_system: str | None, client_system: str) -> dict:
    """Ask whichever side speaks next and return its turn ``{"role", "content", "usage", ...}``."""
    speaker = "client" if not turns or turns[-1]["role"] == "counselor" else "counselor"
    bare = [{"role": t["role"], "content": t["content"]} for t in turns]
    if speaker == "counselor":
        text, usage = counselor.chat(view_messages(bare, "counselor", counselor_system), plan["seed"])
        return {"role": "counselor", "content": text.strip(), "usage": usage}
    text, usage = client.chat(view_messages(bare, "client", client_system), plan["seed"])
    content, marked = split_end(text)
    n_before = sum(t["role"] == "client" for t in turns)
    # <end> counts only once the client has spoken min_turns times (paper: "after 10 turns").
    return {"role": "client", "content": content, "usage": usage, "end": marked and n_before >= min_turns,
            "ignored_end": marked and n_before < min_turns}


def run_dialogue(plan: dict, done_turns: list[dict], counselor: Endpoint, client: Endpoint, log: Appender, *,
                 min_turns: int, max_turns: int, counselor_system: str | None, stop: threading.Event,
                 usage: dict) -> dict | None:
    """Continue one dialogue from its opening and *done_turns* to its end; return its record (None if stopped)."""
    opening = [{**t, "seeded": True} for t in plan["opening"]]
    turns = opening + list(done_turns)
    client_system = client_system_prompt(min_turns, plan if plan.get("seed_dialogue") else None)
    while (ended := dialogue_status(turns, max_turns)) is None:
        if stop.is_set():
            return None
        turn = next_turn(turns, plan, counselor, client, min_turns=min_turns, counselor_system=counselor_system,
                         client_system=client_system)
        add_usage(usage[turn["role"]], turn["usage"])
        log.write({"dialogue_id": plan["dialogue_id"], "index": len(turns) - len(opening), **turn})
        turns.append(turn)
    per_role = {r: empty_usage() for r in ROLES}
    for t in turns:
        if not t.get("seeded"):
            add_usage(per_role[t["role"]], t.get("usage", {}))
    return {"dialogue_id": plan["dialogue_id"],
            "turns": [{"role": t["role"], "content": t["content"]} for t in turns],
            "ended_by": ended, "client_turns": sum(t["role"] == "client" for t in turns),
            "seed_dialogue": plan["seed_dialogue"], "seed_turns": len(opening),
            "ignored_ends": sum(bool(t.get("ignored_end")) for t in turns),
            "counselor_model": counselor.model, "client_model": client.model, "usage": per_role}


def _resumed_turns(partial: Path, finished: set[str]) -> dict[str, list[dict]]:
    """Return the logged turns of each unfinished dialogue, checked to be in order."""
    out: dict[str, list[dict]] = {}
    for rec in read_resumable(partial, _has_dialogue_id):
        did = str(rec["dialogue_id"])
        if did in finished:
            continue
        got = out.setdefault(did, [])
        if rec.get("index") != len(got) or rec.get("role") not in ROLES or not isinstance(rec.get("content"), str):
            raise DataError(f"turn log out of order for {did} (index {rec.get('index')!r}, expected {len(got)}); "
                            "use --restart", file=str(partial))
        got.append(rec)
    return out


def simulate_dialogues(plans: list[dict], counselor: Endpoint, client: Endpoint, output: str | Path, *,
                       min_turns: int = 10, max_turns: int = 20, concurrency: int = 1,
                       counselor_system: str | None = sft.SYSTEM_PROMPT, restart: bool = False,
                       progress: bool = True) -> dict:
    """Run every plan not yet finished in *output*; return counts, token use and estimated cost.

    Finished dialogues are appended to *output* as they end; an error stops the run (in-flight
    dialogues keep their logged turns) and is raised after what finished has been written.
    """
    if not 0 <= min_turns <= max_turns or max_turns < 1:
        raise DataError(f"need 0 <= --min-turns <= --max-turns and --max-turns >= 1; got {min_turns}, {max_turns}")
    if concurrency < 1:
        raise DataError(f"--concurrency must be >= 1, got {concurrency}")
    output, partial = Path(output), partial_path(output)
    meta = output.with_name(output.name + ".run.json")
    if restart:
        for p in (output, partial, meta):
            p.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    _check_settings(output, {"counselor_model": counselor.model, "client_model": client.model,
                             "min_turns": min_turns, "max_turns": max_turns,
                             "seeded": any(p["seed_dialogue"] for p in plans),
                             "counselor_system": counselor_system})
    finished = {str(r["dialogue_id"]) for r in read_resumable(output, _has_dialogue_id)}
    resumed = _resumed_turns(partial, finished)
    usage = {r: empty_usage() for r in ROLES}
    turn_log, ended = Appender(partial), {k: 0 for k in ENDED_BY}

    def work(plan: dict, stop: threading.Event) -> dict | None:
        return run_dialogue(plan, resumed.get(plan["dialogue_id"], []), counselor, client, turn_log,
                            min_turns=min_turns, max_turns=max_turns, counselor_system=counselor_system,
                            stop=stop, usage=usage)

    def count_end(rec: dict) -> None:
        ended[rec["ended_by"]] += 1

    written = run_resumable(plans, work, output, key=lambda p: p["dialogue_id"], done=finished,
                            max_workers=concurrency, progress=progress, desc="simulate", on_record=count_end,
                            what="dialogues are finished")
    if len(finished) + written == len(plans):
        partial.unlink(missing_ok=True)
    prices = {"counselor": counselor.price, "client": client.price}
    cost = {r: estimate_cost(usage[r], prices[r]) for r in ROLES}
    return {"written": written, "already_done": len(finished), "total": len(plans), "ended_by": ended,
            "usage": usage, "cost_usd": {**cost, "total": sum(cost.values())}, "path": str(output)}


def read_dialogues(path: str | Path) -> list[dict]:
    """Read a ``simulate run`` output, checking each record's fields (errors name the line)."""
    if not Path(path).is_file():
        raise DataError("no such file; pass the JSONL written by kokoro-nb simulate run", file=str(path))
    out = []
    for no, rec in read_records(path):
        turns = rec.get("turns")
        if not isinstance(turns, list) or not all(isinstance(t, dict) and t.get("role") in ROLES
                                                   and isinstance(t.get("content"), str) for t in turns):
            raise DataError("turns must be a list of {role: counselor|client, content: text}", file=str(path),
                            line=no, field="turns")
        if rec.get("ended_by") not in ENDED_BY:
            raise DataError(f"ended_by must be one of {', '.join(ENDED_BY)}, got {rec.get('ended_by')!r}",
                            file=str(path), line=no, field="ended_by")
        if "dialogue_id" not in rec:
            raise DataError("no dialogue_id", file=str(path), line=no, field="dialogue_id")
        out.append(rec)
    return out


# --------------------------------------------------------------------------- judging

def judge_dialogue(record: dict, judge: Endpoint, scale: str = "paper") -> dict:
    """Score one dialogue with the rubric; return ``{"dialogue_id", "scale", "scores", "status", "output", "usage"}``."""
    messages = [{"role": "system", "content": JUDGE_RUBRIC.format(**SCALES[scale])},
                {"role": "user", "content": JUDGE_USER.format(transcript=transcript(record["turns"]))}]
    text, usage = judge.chat(messages)
    values, status = parse_verdict(text, scale)
    scores = dict(zip(DIMENSIONS, values)) if status == "ok" else None
    return {"dialogue_id": record["dialogue_id"], "scale": scale, "scores": scores, "status": status,
            "output": text, "usage": usage}


def judge_file(path: str | Path, judge: Endpoint, output: str | Path, *, scale: str = "paper",
               concurrency: int = 1, restart: bool = False, progress: bool = True) -> dict:
    """Judge every dialogue of *path* not yet in *output*; return :func:`summarise_judgements` plus usage."""
    if scale not in SCALES:
        raise DataError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if concurrency < 1:
        raise DataError(f"--concurrency must be >= 1, got {concurrency}")
    dialogues, output = read_dialogues(path), Path(output)
    if restart:
        output.unlink(missing_ok=True)
    done = read_resumable(output, _has_dialogue_id)
    if any(r.get("scale") != scale for r in done):
        raise DataError(f"holds judgements on another scale than {scale!r}; use another --output or --restart",
                        file=str(output))
    usage = empty_usage()
    run_resumable(
        dialogues, lambda d, stop: None if stop.is_set() else judge_dialogue(d, judge, scale), output,
        key=lambda d: str(d["dialogue_id"]), done=[str(r["dialogue_id"]) for r in done], max_workers=concurrency,
        progress=progress, desc="judge", on_record=lambda rec: add_usage(usage, rec["usage"]),
        what="dialogues are judged")
    summary = summarise_judgements(read_resumable(output, _has_dialogue_id))
    return {**summary, "usage": usage, "cost_usd": estimate_cost(usage, judge.price), "path": str(output)}


def summarise_judgements(records: list[dict]) -> dict:
    """Return per-dimension means on the judged scale and rescaled to 0-5, with every status counted.

    Dialogues whose verdict could not be parsed or was out of range are counted in ``status`` and
    left out of the means (``n_scored`` says over how many the means are).
    """
    scales = {r.get("scale") for r in records}
    if len(scales) > 1:
        raise DataError(f"judgements on several scales ({', '.join(map(str, sorted(scales)))}) cannot be averaged")
    scale = scales.pop() if scales else "paper"
    status = pd.Series([r.get("status") for r in records], dtype="object").value_counts().to_dict()
    ok = pd.DataFrame([r["scores"] for r in records if r.get("status") == "ok"], columns=list(DIMENSIONS))
    maxima = SCALES[scale]
    mean = {d: (float(ok[d].mean()) if len(ok) else None) for d in DIMENSIONS}
    rescaled = {d: (None if mean[d] is None else mean[d] * 5 / maxima[d]) for d in DIMENSIONS}
    return {"scale": scale, "scale_max": maxima, "n_dialogues": len(records), "n_scored": len(ok),
            "status": {k: int(v) for k, v in status.items()}, "mean": mean, "mean_0_5": rescaled}


def paper_table7() -> pd.DataFrame:
    """Return paper Table 7 (GPT-4o judge, 0-5 per dimension, 50 dialogues per model) as a DataFrame."""
    t = published.load()["appendix_e_model_comparison"]
    return pd.DataFrame({m: v for m, v in t.items() if m != "columns"}, index=t["columns"]).T
