"""A deterministic OpenAI-compatible chat server on loopback, for tests and the book's mechanics demo.

It answers ``POST /v1/chat/completions`` like vLLM or OpenAI would, with canned Japanese replies
chosen by the requested model name (``counselor…``, ``client…``, ``judge…``), so that
:mod:`kokoro_nb.evaluate.simulate` can run end to end over real HTTP without a model. Faults can be queued
to exercise the client's error handling: an HTTP 500 or 429, a reply that arrives too late (a
timeout), or a body that is not JSON. Nothing it says is a result.

>>> with FakeChatServer() as srv:
...     srv.url.startswith("http://127.0.0.1:")
True
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("500", "429", "timeout", "not_json", "no_choices")

COUNSELOR_LINES = ["こんにちは。今日はどのようなことでお話しにいらっしゃいましたか。",
                   "そうだったのですね。もう少し詳しく聞かせていただけますか。",
                   "それはとてもつらかったですね。",
                   "そのとき、どのようなお気持ちでしたか。",
                   "ご自身ではどうしたいと思われていますか。"]
CLIENT_LINES = ["こんにちは。最近よく眠れなくて、相談に来ました。",
                "仕事のことを考えると、夜になっても頭が休まらないんです。",
                "うまく言えないんですが、毎日疲れている感じがします。",
                "……はい。誰にも話せなくて。",
                "少し気持ちが整理できた気がします。"]
FAREWELL = "今日はお話しできてよかったです。ありがとうございました。失礼します。"
JUDGE_PREFIX = "対話全体を読み、基準に従って評価しました。"
ENGLISH = dict(zip(COUNSELOR_LINES + CLIENT_LINES + [FAREWELL, JUDGE_PREFIX], [
    "Hello. What brings you here to talk today?",
    "I see. Could you tell me a little more?",
    "That must have been very hard.",
    "How did you feel at that moment?",
    "What would you yourself like to do?",
    "Hello. I haven't been sleeping well lately, so I came for advice.",
    "When I think about work, my mind can't rest even at night.",
    "I can't put it well, but I feel tired every day.",
    "...Yes. I couldn't talk to anyone about it.",
    "I feel I could sort out my feelings a little.",
    "I'm glad I could talk today. Thank you very much. Goodbye.",
    "I read the whole dialogue and rated it by the standard."]))


def to_english(text: str) -> str:
    """Return the English of a canned line (``<end>`` kept), or "" for text this server never says."""
    core = text.replace("<end>", "")
    return ENGLISH[core] + ("<end>" if core != text else "") if core in ENGLISH else ""


def count_assistant_turns(messages: list[dict]) -> int:
    """Return how many earlier replies of the answering side the request carries."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def fake_reply(model: str, messages: list[dict], *, client_end_at: int = 12, early_end_at: int | None = 3,
               judge_scores: tuple = (2, 3, 3, 1)) -> str:
    """Return the canned reply of *model* to *messages* (the counselor, the client or the judge)."""
    k = count_assistant_turns(messages) + 1          # this reply is the k-th of its side
    if model.startswith("client"):
        if k >= client_end_at:
            return FAREWELL + "<end>"
        line = CLIENT_LINES[(k - 1) % len(CLIENT_LINES)]
        return line + ("<end>" if k == early_end_at else "")   # an <end> too early, to be ignored
    if model.startswith("judge"):
        return JUDGE_PREFIX + "\n" + json.dumps(list(judge_scores))
    return COUNSELOR_LINES[(k - 1) % len(COUNSELOR_LINES)]


class FakeChatServer:
    """Serve :func:`fake_reply` on 127.0.0.1 at an ephemeral port, in a daemon thread."""

    def __init__(self, *, client_end_at: int = 12, early_end_at: int | None = 3,
                 judge_scores: tuple = (2, 3, 3, 1), timeout_delay: float = 2.0):
        self.options = {"client_end_at": client_end_at, "early_end_at": early_end_at,
                        "judge_scores": tuple(judge_scores)}
        self.timeout_delay = timeout_delay
        self.requests: list[dict] = []      # every chat request received, faults included
        self._faults: list[str | None] = []   # None: answer normally
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Return the base URL an OpenAI client takes (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def fail_next(self, kind: str, times: int = 1, after: int = 0) -> None:
        """Answer *times* chat requests with fault *kind* (one of :data:`FAULTS`), after *after* good ones."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend([None] * after + [kind] * times)

    def count(self, model_prefix: str = "") -> int:
        """Return how many chat requests for models starting with *model_prefix* arrived."""
        return sum(1 for r in self.requests if r["model"].startswith(model_prefix))

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next_fault(self) -> str | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):      # keep test and book output quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json", headers=()):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):   # the client gave up (timeout test)
                    pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "owned_by": "fake"} for m in ("counselor", "client", "judge")]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                req = json.loads(raw or b"{}")
                model, messages = str(req.get("model", "")), req.get("messages", [])
                with server._lock:
                    system = messages[0].get("content") if messages and messages[0].get("role") == "system" else None
                    server.requests.append({"model": model, "n_messages": len(messages), "system": system})
                fault = server._next_fault()
                if fault == "500":
                    self._send(500, b'{"error": {"message": "internal error (fake)"}}',
                               headers=[("retry-after-ms", "10")])
                    return
                if fault == "429":
                    self._send(429, b'{"error": {"message": "rate limited (fake)"}}',
                               headers=[("retry-after-ms", "10")])
                    return
                if fault == "timeout":
                    time.sleep(server.timeout_delay)          # longer than the client waits
                if fault == "not_json":
                    self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
                    return
                if fault == "no_choices":
                    self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
                    return
                text = fake_reply(model, messages, **server.options)
                prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
                body = {"id": f"chatcmpl-fake-{len(server.requests)}", "object": "chat.completion",
                        "created": 0, "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": prompt_chars, "completion_tokens": len(text),
                                  "total_tokens": prompt_chars + len(text)}}
                self._send(200, json.dumps(body, ensure_ascii=False).encode("utf-8"))

        return Handler
