"""OpenAIJudge against a real OpenAI-compatible HTTP server on 127.0.0.1: labels, retries, re-asks, concurrency, cache.

The server is stdlib `http.server` speaking the `/v1/chat/completions` wire format. It answers from keywords in the
request's last user message (the item being judged), and can be scripted per keyword to fail first (HTTP errors, a
malformed reply, a stall past the client timeout) or to never answer usably.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, Label, LabelItem
from critic.judge import JudgeRequestError, OpenAIJudge
from selfrag.types import Passage

MODEL = "tiny-judge"
EVIDENCE = Passage("p1", "Lyon", "Lyon is a city in France, founded by the Romans in 43 BC.")

#: keyword in the item -> the reply the server gives once it stops failing.
ANSWERS = {
    "kw-founded": "Label: [Retrieval]\nExplanation: Who founded a city is a checkable fact.",
    "kw-poem": "label: no retrieval\nexplanation: A poem needs no sources.",  # tolerated variant
    "kw-lyon": "Label: [Relevant]\nExplanation: The passage is about Lyon.",
    "kw-support": "Label: [Partially supported]\nExplanation: Only the date is in the passage.",
    "kw-useful": "Label: 4\nExplanation: Mostly complete.",  # bare isuse score
    "kw-flaky": "Label: [Irrelevant]\nExplanation: Wrong city.",
    "kw-ratelimited": "Label: [Relevant]\nExplanation: On topic.",
    "kw-sloppy": "Label: [Fully supported]\nExplanation: Every claim is in the passage.",
    "kw-down": "Label: [Relevant]\nExplanation: Back up.",
    "kw-slow": "Label: [Irrelevant]\nExplanation: Late but fine.",
    "kw-never": "I would say this is quite useful overall!",
}
#: A reply of the wrong type for issup, which the judge must re-ask.
WRONG_TYPE = "Label: [Relevant]\nExplanation: The passage is on topic."


class FakeOpenAIServer:
    """A deterministic chat-completions server that counts requests and in-flight concurrency."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        #: keyword -> actions taken before answering normally: an HTTP status, "malformed", or ("stall", seconds).
        self.scripts: dict[str, list[object]] = {}
        self.requests = 0
        self.per_keyword: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # a client that timed out leaves a broken pipe
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def respond(self, body: dict) -> tuple[int, dict, dict[str, str]]:
        """(status, JSON body, extra headers) for one request; called under no lock except for the counters."""
        last_user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        keyword = next((k for k in ANSWERS if k in last_user), None)
        if keyword is None:
            return 400, {"error": {"message": "no keyword in the item", "type": "invalid_request_error"}}, {}
        with self._lock:
            self.per_keyword[keyword] = self.per_keyword.get(keyword, 0) + 1
            script = self.scripts.get(keyword)
            action = script.pop(0) if script else None
        if isinstance(action, tuple) and action[0] == "stall":
            time.sleep(action[1])
            action = None
        if isinstance(action, int):
            headers = {"Retry-After": "7"} if action == 429 else {}
            error = {"message": f"scripted {action} for {keyword}", "type": "server_error", "code": action}
            return action, {"error": error}, headers
        content = WRONG_TYPE if action == "malformed" else ANSWERS[keyword]
        return 200, completion(body["model"], content), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests += 1
                    server.bodies.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    if self.path != "/v1/chat/completions":
                        status, payload, extra = 404, {"error": {"message": f"no route {self.path}"}}, {}
                    elif body.get("model") != MODEL:
                        status, payload, extra = 404, {"error": {"message": f"model {body.get('model')!r} does "
                                                                            "not exist", "code": 404}}, {}
                    else:
                        status, payload, extra = server.respond(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def completion(model: str, content: str) -> dict:
    """The response body of a non-streaming chat completion, as OpenAI and vLLM send it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


@pytest.fixture()
def server():
    srv = FakeOpenAIServer().start()
    yield srv
    srv.stop()


class SleepRecorder:
    """Stands in for time.sleep: records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_judge(server_or_url, tmp_path=None, **kwargs) -> OpenAIJudge:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    kwargs.setdefault("sleep", SleepRecorder())
    return OpenAIJudge(model=MODEL, base_url=url, api_key="sk-test", **kwargs)


def good_items() -> list[LabelItem]:
    return [
        LabelItem(RETRIEVE, "r1", "Who founded Lyon? kw-founded"),
        LabelItem(RETRIEVE, "r2", "Write a poem about rain. kw-poem", output="Rain taps the roof.",
                  preceding="Grey clouds gather."),
        LabelItem(ISREL, "i1", "What is Lyon known for? kw-lyon", evidence=EVIDENCE),
        LabelItem(ISSUP, "s1", "When was Lyon founded? kw-support", output="Lyon was founded in 43 BC by Caesar.",
                  evidence=EVIDENCE),
        LabelItem(ISUSE, "u1", "Describe Lyon. kw-useful", output="Lyon is a large French city."),
    ]


EXPECTED_GOOD = [
    (RETRIEVE, "r1", "[Retrieval]", "Who founded a city is a checkable fact."),
    (RETRIEVE, "r2", "[No Retrieval]", "A poem needs no sources."),
    (ISREL, "i1", "[Relevant]", "The passage is about Lyon."),
    (ISSUP, "s1", "[Partially supported]", "Only the date is in the passage."),
    (ISUSE, "u1", "[Utility:4]", "Mostly complete."),
]


def test_labels_retries_reasks_and_failures(server):
    server.scripts = {"kw-flaky": [500], "kw-ratelimited": [429], "kw-sloppy": ["malformed"]}
    items = good_items() + [
        LabelItem(ISREL, "i500", "Population of Lyon? kw-flaky", evidence=EVIDENCE),
        LabelItem(ISREL, "i429", "Mayor of Lyon? kw-ratelimited", evidence=EVIDENCE),
        LabelItem(ISSUP, "sbad", "Where is Lyon? kw-sloppy", output="Lyon is in France.", evidence=EVIDENCE),
        LabelItem(ISUSE, "never", "Summarise Lyon. kw-never", output="Lyon."),
    ]
    sleep = SleepRecorder()
    with make_judge(server, max_concurrency=4, backoff_base_s=0.5, sleep=sleep) as judge:
        labels = judge.label(items)

    expected = [Label(a, i, lab, f"judge:{MODEL}", explanation=e) for a, i, lab, e in EXPECTED_GOOD] + [
        Label(ISREL, "i500", "[Irrelevant]", f"judge:{MODEL}", explanation="Wrong city."),
        Label(ISREL, "i429", "[Relevant]", f"judge:{MODEL}", explanation="On topic."),
        Label(ISSUP, "sbad", "[Fully supported]", f"judge:{MODEL}", explanation="Every claim is in the passage."),
        None,
    ]
    assert labels == expected

    # Transient errors were retried once each; the 429's Retry-After (7 s) raised its backoff above the 0.25-0.5 s
    # exponential delay, the 500's stayed within it.
    assert server.per_keyword["kw-flaky"] == 2 and server.per_keyword["kw-ratelimited"] == 2
    assert sorted(sleep.delays)[0] == pytest.approx(0.375, abs=0.125)
    assert sorted(sleep.delays)[1] == 7.0
    # The wrong-type reply was re-asked with a note; the never-parsing item used all 1 + max_parse_retries asks.
    assert server.per_keyword["kw-sloppy"] == 2 and server.per_keyword["kw-never"] == 3
    reask = [b for b in server.bodies if "kw-sloppy" in b["messages"][-1]["content"]][-1]
    assert "Your previous reply could not be used (wrong-type label: [Relevant]" in reask["messages"][-1]["content"]

    assert judge.stats.requests == server.requests == len(items) + 2 + 1 + 2
    assert (judge.stats.retries, judge.stats.parse_failures, judge.stats.cache_hits) == (2, 1 + 3, 0)
    assert len(judge.failures) == 1
    failure = judge.failures[0]
    assert (failure.aspect, failure.id, failure.reply) == (ISUSE, "never", ANSWERS["kw-never"])
    assert repr(ANSWERS["kw-never"]) in failure.error and "no 'Label:' line" in failure.error
    assert failure.to_json()["id"] == "never"

    # What went over the wire: our sampling settings, the key, and the few-shot chat layout.
    body = server.bodies[0]
    assert (body["model"], body["temperature"], body["max_tokens"]) == (MODEL, 0.0, 200)
    assert [m["role"] for m in body["messages"]][:3] == ["system", "user", "assistant"]
    assert server.headers[0]["authorization"] == "Bearer sk-test"


def test_backoff_grows_until_the_server_recovers(server):
    server.scripts = {"kw-down": [503, 503, 503]}
    sleep = SleepRecorder()
    judge = make_judge(server, backoff_base_s=1.0, backoff_max_s=30.0, sleep=sleep)
    [label] = judge.label([LabelItem(ISREL, "d", "Is Lyon big? kw-down", evidence=EVIDENCE)])
    assert label is not None and label.label == "[Relevant]"
    # Retry k waits in [c/2, c], c = min(max, base * 2**k): [0.5, 1], [1, 2], [2, 4] -- the ranges only touch at
    # their ends, so the delays grow.
    d0, d1, d2 = sleep.delays
    assert 0.5 <= d0 <= 1.0 <= d1 <= 2.0 <= d2 <= 4.0
    assert d0 < d1 < d2
    # Far out, the cap holds: [15, 30].
    assert all(15.0 <= judge._backoff(20, None) <= 30.0 for _ in range(50))
    assert judge.stats.retries == 3 and server.requests == 4


def test_a_stalled_request_times_out_and_is_retried(server):
    server.scripts = {"kw-slow": [("stall", 1.5)]}
    judge = make_judge(server, timeout=0.4)
    started = time.monotonic()
    [label] = judge.label([LabelItem(ISREL, "slow", "Is Lyon old? kw-slow", evidence=EVIDENCE)])
    assert label is not None and label.label == "[Irrelevant]"
    assert judge.stats.retries == 1 and time.monotonic() - started < 1.5


def test_persistent_5xx_gives_up_after_max_retries_with_the_servers_message(server):
    server.scripts = {"kw-flaky": [500] * 10}
    sleep = SleepRecorder()
    judge = make_judge(server, max_retries=2, backoff_base_s=0.1, sleep=sleep)
    with pytest.raises(JudgeRequestError, match=r"request failed 3 times \(last error: scripted 500 for kw-flaky\)"):
        judge.label([LabelItem(ISREL, "x", "kw-flaky", evidence=EVIDENCE)])
    assert server.requests == 3 and len(sleep.delays) == 2


def test_other_4xx_is_not_retried_and_names_the_servers_message(server):
    sleep = SleepRecorder()
    judge = OpenAIJudge(model="no-such-model", base_url=server.base_url, sleep=sleep)
    with pytest.raises(JudgeRequestError, match=r"HTTP 404: model 'no-such-model' does not exist.*ends with /v1"):
        judge.label(good_items()[:1])
    assert server.requests == 1 and sleep.delays == [] and judge.stats.retries == 0


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = SleepRecorder()
    judge = make_judge(f"http://127.0.0.1:{port}/v1", max_retries=2, backoff_base_s=0.1, sleep=sleep)
    with pytest.raises(JudgeRequestError, match=r"failed 3 times .*APIConnectionError"):
        judge.label(good_items()[:1])
    assert len(sleep.delays) == 2 and sleep.delays[0] < sleep.delays[1]


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_requests_overlap_up_to_max_concurrency(max_concurrency):
    server = FakeOpenAIServer(delay_s=0.1).start()
    try:
        items = [LabelItem(ISREL, f"c{i}", f"Lyon fact {i}? kw-lyon", evidence=EVIDENCE) for i in range(8)]
        judge = make_judge(server, max_concurrency=max_concurrency)
        labels = judge.label(items)
        assert [lab.id for lab in labels] == [f"c{i}" for i in range(8)]
        assert server.requests == 8
        if max_concurrency == 1:
            assert server.max_in_flight == 1
        else:
            assert 2 <= server.max_in_flight <= max_concurrency
    finally:
        server.stop()


def test_cache_makes_a_rerun_free_and_skips_unparsed_replies(server, tmp_path):
    server.scripts = {"kw-sloppy": ["malformed"]}
    cache = tmp_path / "cache" / "judge.sqlite"
    sloppy = LabelItem(ISSUP, "sbad", "Where is Lyon? kw-sloppy", output="Lyon is in France.", evidence=EVIDENCE)
    items = [*good_items(), sloppy]
    with make_judge(server, cache_path=cache) as first:
        labels = first.label(items)
    sent = server.requests
    assert sent == len(items) + 1 and first.stats.cache_hits == 0

    # A new judge on the same cache: the same labels (the re-asked item's good reply was cached under its original
    # prompt), and not one request.
    with make_judge(server, cache_path=cache) as second:
        assert second.label(items) == labels
        assert server.requests == sent
        assert (second.stats.requests, second.stats.cache_hits) == (0, len(items))

        # Identical prompts in one call are asked once; a changed setting is a different cache key.
        again = LabelItem(ISREL, "i1-copy", "What is Lyon known for? kw-lyon", evidence=EVIDENCE)
        assert second.label([again, again])[0].id == "i1-copy"
        assert server.requests == sent

    with make_judge(server, cache_path=cache, temperature=0.7) as warmer:
        warmer.label(good_items()[:1])
    assert server.requests == sent + 1

    # A reply that never parsed is not cached: asking again costs requests again.
    never = LabelItem(ISUSE, "never", "Summarise Lyon. kw-never", output="Lyon.")
    with make_judge(server, cache_path=cache, max_parse_retries=0) as judge:
        assert judge.label([never]) == [None]
        assert judge.label([never]) == [None]
        assert judge.stats.requests == 2 and len(judge.failures) == 2


def test_api_key_defaults_to_the_environment_then_empty(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAIJudge(model=MODEL, base_url=server.base_url).label(good_items()[:1])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    OpenAIJudge(model=MODEL, base_url=server.base_url).label(good_items()[:1])
    assert [h["authorization"] for h in server.headers] == ["Bearer EMPTY", "Bearer sk-env"]
