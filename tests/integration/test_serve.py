"""The server on the tiny model, over real HTTP on 127.0.0.1: the official `openai` client, traces that are exactly
`predictions.jsonl` records, re-ranking equal to `records.rerank`, refusals that name the field (never a 500),
batching under concurrency, `scripts/serve.py` itself, and the page in headless Chromium (selenium).

The app is built from `conf/serve.yaml` (Hydra's compose API, the script's config) and run by uvicorn in a thread,
once per module, so the model loads once.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from selfrag.decoding.config import DecodingConfig, parse_weights
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.records import prediction_to_json, rerank
from selfrag.decoding.run import SelfRAGPredictor
from selfrag.inputs import query_from_row
from selfrag.serving.app import ServeConfig, ServerThread, create_app
from selfrag.serving.engine import ServingEngine
from selfrag.types import Candidate, Passage, Prediction, Query
from tests.helpers import compose_config

ROOT = Path(__file__).resolve().parents[2]
#: The keys of a predictions.jsonl record (docs/formats.md): short form; long form adds `beams`.
RECORD_KEYS = {"id", "question", "answer", "output", "retrieved", "p_retrieve", "options", "candidates", "segments",
               "docs"}
CANDIDATE_KEYS = {"passage_id", "passage_title", "passage_text", "text", "answer", "finished", "scores", "probs"}
PASSAGES = [{"id": "a1", "title": "alice", "text": "alice is a singer from paris ."},
            {"id": "b1", "title": "bob", "text": "bob was born in london ."}]
API_KEY = "test-key-123"


@dataclass
class Served:
    url: str
    engine: ServingEngine
    config: ServeConfig
    auth_url: str


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    config = ServeConfig.from_config(compose_config(
        "serve",
        "model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", "decoding.mode=always", "decoding.ndocs=2",
        "decoding.max_new_tokens=30", "server.api_key=null", "server.batch_window_ms=30", "server.max_batch=8",
        "server.max_question_chars=200", "server.max_body_bytes=200000", "server.max_ndocs=4",
        "server.max_new_tokens=64", "server.log_level=warning"))
    engine = ServingEngine(SelfRAGPredictor.open(config.decode))
    keyed = replace(config, server=replace(config.server, api_key=API_KEY))
    with ServerThread(create_app(engine, config)) as server, ServerThread(create_app(engine, keyed)) as guarded:
        # (the keyed app shares the model: the tests send it no decoding work, so one thread decodes at a time)
        yield Served(server.url, engine, config, guarded.url)
    engine.close()


@pytest.fixture(scope="module")
def reference(served):
    """A second, separately loaded predictor: what `infer` computes for the same question and settings."""
    predictor = SelfRAGPredictor.open(served.config.decode)
    yield predictor
    predictor.close()


def http() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=120)


def openai_client(url: str, key: str = "unused"):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, http_client=http(), max_retries=0)


def expected_row(reference: SelfRAGPredictor, served: Served, trace: dict[str, Any], settings: dict[str, Any],
                 passages: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What the decoder writes to predictions.jsonl for the trace's question under the server's defaults + settings."""
    config = DecodingConfig.from_mapping({**served.config.decoding, **settings})
    row = {"id": trace["id"], "question": trace["question"]}
    if passages:
        row["ctxs"] = passages
    query = query_from_row(row, served.config.decode.task, where="test", default_id=trace["id"])
    decoder = reference.decoder
    old = decoder.config
    try:
        decoder.config = config
        return reference.predict([query])[0]
    finally:
        decoder.config = old


def chat(client, question: str, **selfrag: Any):
    extra = {"extra_body": {"selfrag": selfrag}} if selfrag else {}
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": question}], **extra)


# ---- the OpenAI-compatible endpoint --------------------------------------------------------------------------------

def test_chat_completions_with_the_openai_client_return_the_answer_and_its_trace(served, reference):
    client = openai_client(served.url)
    assert [m.id for m in client.models.list().data] == [Path(served.config.decode.model.path).name]

    plain = chat(client, "who is alice ?")  # no passages: the no-retrieval path (mode=always but nothing to read)
    trace = plain.to_dict()["selfrag"]
    assert plain.object == "chat.completion" and plain.id == trace["id"] and plain.created > 0
    assert plain.choices[0].message.role == "assistant" and plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].message.content == trace["answer"]
    assert plain.usage.prompt_tokens > 0 and plain.usage.total_tokens >= plain.usage.prompt_tokens
    assert set(trace) == RECORD_KEYS and trace["retrieved"] is False and trace["question"] == "who is alice ?"
    assert trace == expected_row(reference, served, trace, {}, None)

    weights = {"w_rel": 0.0, "w_sup": 2.5, "w_use": 1.0, "use_seqscore": False}
    with_passages = chat(client, "who is alice ?", passages=PASSAGES, **weights)
    trace = with_passages.to_dict()["selfrag"]
    assert with_passages.choices[0].message.content == trace["answer"] == "alice is a singer ."
    assert set(trace) == RECORD_KEYS and trace["retrieved"] is True
    assert [c["passage_title"] for c in trace["candidates"]] == ["alice", "bob"]
    assert all(set(c) == CANDIDATE_KEYS for c in trace["candidates"])
    for c in trace["candidates"]:  # the request's weights, not the server's
        s = c["scores"]
        assert s["final"] == pytest.approx(2.5 * (s["sup"] or 0) + 1.0 * (s["use"] or 0))
    assert with_passages.to_dict()["selfrag_settings"]["w_sup"] == 2.5
    # exactly the predictions.jsonl record `infer` writes for this question, passages and settings
    assert trace == expected_row(reference, served, trace, weights, PASSAGES)


def test_long_form_and_the_other_decoding_settings_per_request(served, reference):
    client = openai_client(served.url)
    settings = {"long_form": True, "beam_width": 2, "max_depth": 2, "ndocs": 1, "max_new_tokens": 20}
    response = chat(client, "who is carol ?", passages=[{"title": "carol", "text": "carol is a politician ."}],
                    **settings)
    trace = response.to_dict()["selfrag"]
    assert set(trace) == RECORD_KEYS | {"beams"} and trace["beams"] and trace["segments"]
    assert response.choices[0].message.content == trace["answer"]
    assert trace == expected_row(reference, served, trace, settings,
                                 [{"title": "carol", "text": "carol is a politician ."}])
    # OpenAI's max_tokens is max_new_tokens
    short = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "who is bob ?"}],
                                           max_tokens=3)
    assert short.to_dict()["selfrag_settings"]["max_new_tokens"] == 3


# ---- re-ranking without the model ----------------------------------------------------------------------------------

def synthetic_trace(options=None) -> dict[str, Any]:
    """A short-form trace (made by `prediction_to_json`) whose choice flips with the weights: candidate 1 is relevant
    but weakly supported, candidate 2 irrelevant but fully supported, candidate 3 the no-retrieval answer."""
    from selfrag import tokens as T

    a, b = Passage("p1", "alice", "alice is a singer ."), Passage("p2", "bob", "bob is an actor .")

    def probs(*values, group):
        return dict(zip(group, values))

    answers = ("true", "false", "true") if options else ("alice is a singer .", "bob is an actor .", "paris .")
    candidates = (
        Candidate(f"[Relevant]{answers[0]}[Partially supported][Utility:4]", answers[0], a, 0.6,
                  probs(0.9, 0.1, group=T.ISREL_GROUP), probs(0.1, 0.7, 0.2, group=T.ISSUP_GROUP),
                  probs(0.0, 0.0, 0.1, 0.6, 0.3, group=T.ISUSE_GROUP)),
        Candidate(f"[Irrelevant]{answers[1]}[Fully supported][Utility:5]", answers[1], b, 0.5,
                  probs(0.2, 0.8, group=T.ISREL_GROUP), probs(0.95, 0.04, 0.01, group=T.ISSUP_GROUP),
                  probs(0.0, 0.0, 0.1, 0.2, 0.7, group=T.ISUSE_GROUP)),
        Candidate(f"{answers[2]}[Utility:3]", answers[2], None, 0.7, None, None,
                  probs(0.1, 0.1, 0.6, 0.1, 0.1, group=T.ISUSE_GROUP)),
    )
    query = Query("s1", "who is alice ?", "who is alice ?", options=tuple(options) if options else None)
    prediction = Prediction(query, candidates[0].answer, "", True, 0.6, candidates)
    return prediction_to_json(prediction, RewardWeights())


RERANK_SETTINGS = [
    {},
    {"w_rel": 0, "w_sup": 4},
    {"w_rel": 0, "w_sup": 0, "w_use": 0, "use_seqscore": False},
    {"w_use": 3.5, "use_seqscore": False},
    {"threshold": 0.9},
    {"threshold": 0.1, "w_rel": 0.25},
    {"mode": "never"},
    {"mode": "always", "w_sup": 2},
]


def test_rerank_endpoint_equals_records_rerank(served):
    client = http()
    traces = [synthetic_trace(), synthetic_trace(options=("true", "false"))]
    response = client.post(f"{served.url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "who is alice ?"}],
        "selfrag": {"passages": PASSAGES, "score_all_paths": True}})
    assert response.status_code == 200, response.text
    traces.append(response.json()["selfrag"])
    answers = set()
    for trace in traces:
        for settings in RERANK_SETTINGS:
            got = client.post(f"{served.url}/v1/selfrag/rerank", json={"selfrag": trace, **settings})
            assert got.status_code == 200, got.text
            weights = parse_weights(*(settings.get(k) for k in ("w_rel", "w_sup", "w_use", "use_seqscore")))
            expected = rerank(trace, weights, mode=settings.get("mode"), threshold=settings.get("threshold"))
            assert got.json()["selfrag"] == expected
            answers.add(expected["answer"])
    assert {"alice is a singer .", "bob is an actor .", "paris ."} <= answers  # the settings did change choices

    # refusals name the field
    def refused(body, status, param):
        got = client.post(f"{served.url}/v1/selfrag/rerank", json=body)
        assert got.status_code == status and got.json()["error"]["param"] == param, got.text

    no_draft = synthetic_trace()
    no_draft["candidates"] = no_draft["candidates"][:2]
    refused({"selfrag": no_draft, "threshold": 0.99}, 400, "selfrag")  # no no-retrieval candidate to fall back to
    refused({"selfrag": traces[0], "w_rel": -1}, 400, "w_rel")
    refused({"selfrag": traces[0], "mode": "often"}, 400, "mode")
    refused({"selfrag": {"candidates": "nope"}}, 400, "selfrag")
    refused({"selfrag": traces[0], "w_rell": 1}, 422, "w_rell")


# ---- refusals ------------------------------------------------------------------------------------------------------

USER = [{"role": "user", "content": "who is alice ?"}]
BAD_REQUESTS = [
    ("bad weight type", {"messages": USER, "selfrag": {"w_rel": "high"}}, 400, "selfrag.w_rel"),
    ("negative weight", {"messages": USER, "selfrag": {"w_sup": -1}}, 400, "selfrag.w_sup"),
    ("negative ndocs", {"messages": USER, "selfrag": {"ndocs": -2}}, 400, "selfrag.ndocs"),
    ("ndocs over the limit", {"messages": USER, "selfrag": {"ndocs": 5}}, 400, "selfrag.ndocs"),
    ("max_tokens over the limit", {"messages": USER, "max_tokens": 65}, 400, "max_tokens"),
    ("max_new_tokens over the limit", {"messages": USER, "selfrag": {"max_new_tokens": 1000}}, 400,
     "selfrag.max_new_tokens"),
    ("threshold out of range", {"messages": USER, "selfrag": {"threshold": 2}}, 400, "selfrag.threshold"),
    ("unknown mode", {"messages": USER, "selfrag": {"mode": "often"}}, 400, "selfrag.mode"),
    ("string boolean", {"messages": USER, "selfrag": {"long_form": "yes"}}, 400, "selfrag.long_form"),
    ("question too long", {"messages": [{"role": "user", "content": "who " * 60}]}, 400, "messages[0].content"),
    ("missing user message", {"messages": [{"role": "system", "content": "hi"}]}, 400, "messages"),
    ("empty messages", {"messages": []}, 400, "messages"),
    ("no messages", {"model": "x"}, 422, "messages"),
    ("messages not a list", {"messages": "who is alice ?"}, 422, "messages"),
    ("unknown field in selfrag", {"messages": USER, "selfrag": {"w_rell": 1}}, 422, "selfrag.w_rell"),
    ("passage without text", {"messages": USER, "selfrag": {"passages": [{"title": "x"}]}}, 422,
     "selfrag.passages[0].text"),
    ("passage title not a string", {"messages": USER, "selfrag": {"passages": [{"title": 3, "text": "t"}]}}, 422,
     "selfrag.passages[0].title"),
    ("streaming", {"messages": USER, "stream": True}, 400, "stream"),
    ("several choices", {"messages": USER, "n": 3}, 400, "n"),
]


def assert_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param, error
    return error


@pytest.mark.parametrize(("case", "body", "status", "param"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_json_error_naming_the_field(served, case, body, status, param):
    error = assert_error(http().post(f"{served.url}/v1/chat/completions", json=body), status, param)
    if param and param.startswith("selfrag.") and status == 400:
        assert param in error["message"]  # the library's message, in the request's words


def test_malformed_and_oversized_bodies_and_the_bearer_key(served):
    client = http()
    url = f"{served.url}/v1/chat/completions"
    assert_error(client.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400, None)
    big = json.dumps({"messages": USER, "pad": "x" * 250_000}).encode()
    assert_error(client.post(url, content=big, headers={"content-type": "application/json"}), 413, None)

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(30):
            yield b" " * 10_000

    assert_error(client.post(url, content=chunks(), headers={"content-type": "application/json"}), 413, None)
    assert_error(client.get(f"{served.url}/v1/nothing-here"), 404, None)

    keyed = f"{served.auth_url}/v1/models"
    error = assert_error(client.get(keyed), 401, None)
    assert error["code"] == "invalid_api_key"
    assert_error(client.get(keyed, headers={"Authorization": "Bearer wrong"}), 401, None)
    assert_error(client.post(f"{served.auth_url}/v1/chat/completions", json={"messages": USER},
                             headers={"Authorization": f"Bearer {API_KEY}x"}), 401, None)
    assert client.get(keyed, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert openai_client(served.auth_url, API_KEY).models.list().data[0].id
    from openai import AuthenticationError

    with pytest.raises(AuthenticationError):
        openai_client(served.auth_url, "nope").models.list()
    assert client.get(f"{served.auth_url}/health").status_code == 200  # liveness and the page stay open
    assert client.get(f"{served.auth_url}/").status_code == 200


# ---- batching ------------------------------------------------------------------------------------------------------

def test_concurrent_requests_share_decoder_calls(served):
    client = http()
    before = client.get(f"{served.url}/health").json()
    questions = ["who is alice ?", "who is bob ?", "who is carol ?", "what is the capital of france ?"]
    openai = openai_client(served.url)

    def one(i: int):
        # mixed weights: short-form requests that differ only in weights still share one decoder call
        return chat(openai, questions[i % 4], passages=PASSAGES if i % 2 else [], w_sup=float(i % 3))

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(40)))
    assert len(responses) == 40
    for response in responses:
        assert response.choices[0].message.content == response.to_dict()["selfrag"]["answer"]
    after = client.get(f"{served.url}/health").json()
    assert after["decoder"]["requests"] - before["decoder"]["requests"] == 40
    assert after["decoder"]["largest_call"] > 1 and after["decoder"]["shared_calls"] > before["decoder"]["shared_calls"]
    assert after["batcher"]["largest_batch"] > 1 and after["waiting"] == 0


# ---- the script ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_script_checks_settings_first_and_serves(tiny_model_dir, tmp_path):
    def script(*overrides):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.pop("SELFRAG_API_KEY", None)
        return [sys.executable, str(ROOT / "scripts" / "serve.py"), *overrides], env

    for overrides, message in [(["server.port=-1"], "error: server.port must be an integer >= 0"),
                               (["decoding.ndocs=30"], "error: decoding.ndocs must be <= 20"),
                               (["decoding.w_rel=-1"], "error: decoding.w_rel must be a number >= 0"),
                               (["server.max_bacth=3"], "did you mean server.max_batch?")]:
        command, env = script("model=custom", f"model.path={tiny_model_dir}", *overrides)
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr

    port = free_port()
    command, env = script("model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"server.port={port}",
                          "server.log_level=warning")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = http()
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "scripts/serve.py did not come up"
            time.sleep(0.5)
        got = client.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                          json={"messages": USER, "selfrag": {"passages": PASSAGES, "mode": "always"}})
        assert got.status_code == 200 and got.json()["choices"][0]["message"]["content"] == "alice is a singer ."
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    assert f"serving {Path(tiny_model_dir).name} on http://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()


# ---- the page, in a real browser -----------------------------------------------------------------------------------

def _browser():
    """A headless Chromium driven by selenium, or a skip naming what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium); the page test needs it")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                  None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(f"no {'Chromium' if binary is None else 'chromedriver'} found on PATH; the page test needs both")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1100", "--disable-extensions", "--no-proxy-server"):
        options.add_argument(argument)
    options.binary_location = binary
    return webdriver.Chrome(options=options, service=Service(driver))


def _wait(browser, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = browser.execute_script(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {condition}")
        time.sleep(0.1)


def _set_sliders(browser, **values):
    browser.execute_script("""
        for (const [name, value] of Object.entries(arguments[0])) {
          const box = document.getElementById(name);
          box.value = value;
          box.dispatchEvent(new Event('input', {bubbles: true}));
        }""", values)


def _page_choice(browser):
    return browser.execute_script("""
        const chosen = document.getElementById('chosen');
        return {output: chosen.getAttribute('data-output'), answer: chosen.getAttribute('data-answer'),
                retrieved: chosen.getAttribute('data-retrieved'), index: chosen.getAttribute('data-index'),
                error: chosen.getAttribute('data-error'), settings: SelfRAGPage.settings(),
                finals: [...document.querySelectorAll('#candidates tbody tr')].map(r => r.getAttribute('data-final'))};
    """)


def _endpoint(served, trace, settings):
    body = {"selfrag": trace, **{k: v for k, v in settings.items() if v is not None}}
    response = http().post(f"{served.url}/v1/selfrag/rerank", json=body)
    assert response.status_code == 200, response.text
    return response.json()["selfrag"]


def _assert_page_matches_endpoint(browser, served, trace):
    page = _page_choice(browser)
    assert page["error"] is None
    expected = _endpoint(served, trace, page["settings"])
    assert (page["output"], page["answer"], page["retrieved"]) == \
        (expected["output"], expected["answer"], str(expected["retrieved"]).lower())
    assert [float(f) for f in page["finals"]] == [c["scores"]["final"] for c in expected["candidates"]]
    return page, expected


def test_the_page_re_ranks_in_the_browser_like_the_rerank_endpoint(served):
    browser = _browser()
    try:
        browser.get(served.url + "/")
        _wait(browser, "return document.body.getAttribute('data-ready') === '1'")
        assert "tiny-selfrag" in browser.find_element("id", "model").text

        # ask a question through the page (the chat endpoint), with passages
        browser.find_element("id", "question").send_keys("who is alice ?")
        browser.execute_script("document.getElementById('passages').value = arguments[0];",
                               "alice | alice is a singer from paris .\nbob | bob was born in london .")
        browser.find_element("id", "ask").click()
        _wait(browser, "return document.getElementById('result').getAttribute('data-id')")
        assert browser.find_element("id", "answer").text == "alice is a singer ."
        trace = browser.execute_script("return SelfRAGPage.state.trace;")
        assert set(trace) == RECORD_KEYS and len(trace["candidates"]) == 3  # both paths decoded (the page's default)
        _assert_page_matches_endpoint(browser, served, trace)
        _set_sliders(browser, w_rel=0, w_sup=4.5)
        page, _ = _assert_page_matches_endpoint(browser, served, trace)
        assert page["settings"]["w_rel"] == 0 and page["settings"]["w_sup"] == 4.5
        _set_sliders(browser, threshold=1)  # moving the threshold re-decides retrieval: p_retrieve > 1 never holds
        page, expected = _assert_page_matches_endpoint(browser, served, trace)
        assert page["settings"]["mode"] == "adaptive" and expected["retrieved"] is False
        _set_sliders(browser, threshold=0.2)
        if os.environ.get("SELFRAG_SCREENSHOT"):
            browser.find_element("id", "reset").click()
            height = browser.execute_script("return document.documentElement.scrollHeight;")
            browser.set_window_size(1280, min(int(height) + 120, 4000))  # the whole page in one image
            browser.save_screenshot(os.environ["SELFRAG_SCREENSHOT"])
            browser.set_window_size(1280, 1100)

        # a fixed trace whose choice flips with the weights
        fixed = synthetic_trace()
        browser.execute_script("SelfRAGPage.load(arguments[0], {w_rel: 1, w_sup: 1, w_use: 0.5, use_seqscore: true,"
                               " threshold: 0.2});", fixed)
        page, _ = _assert_page_matches_endpoint(browser, served, fixed)
        assert page["index"] == "0" and browser.find_element("id", "answer").text == "alice is a singer ."
        _set_sliders(browser, w_rel=0, w_sup=4)
        page, _ = _assert_page_matches_endpoint(browser, served, fixed)
        assert page["index"] == "1" and browser.find_element("id", "answer").text == "bob is an actor ."
        chosen_row = browser.find_element("css selector", "#candidates tbody tr.chosen")
        assert chosen_row.get_attribute("data-index") == "1"
        _set_sliders(browser, threshold=0.95)
        page, _ = _assert_page_matches_endpoint(browser, served, fixed)
        assert page["index"] == "2" and page["retrieved"] == "false"

        # the page's re-ranking function against the endpoint over a grid, short form and closed set
        for trace_ in (fixed, synthetic_trace(options=("true", "false")), trace):
            for settings in RERANK_SETTINGS:
                full = {"w_rel": 1.0, "w_sup": 1.0, "w_use": 0.5, "use_seqscore": True, "mode": None,
                        "threshold": None, **settings}
                got = browser.execute_script("return SelfRAGPage.rerank(arguments[0], arguments[1]);", trace_, full)
                expected = _endpoint(served, trace_, full)
                assert (got["answer"], got["output"], got["retrieved"]) == \
                    (expected["answer"], expected["output"], expected["retrieved"]), settings

        # long form: segments and beams shown, the best beam as the endpoint ranks it
        response = http().post(f"{served.url}/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "who is carol ?"}],
            "selfrag": {"long_form": True, "max_depth": 2, "ndocs": 2, "max_new_tokens": 20, "passages": [
                {"title": "carol", "text": "carol is a politician ."},
                {"title": "carol", "text": "carol was born in england ."}]}})
        long_trace = response.json()["selfrag"]
        browser.execute_script("SelfRAGPage.load(arguments[0], arguments[1]);", long_trace,
                               response.json()["selfrag_settings"])
        assert browser.find_element("id", "longform").is_displayed()
        assert len(browser.find_elements("css selector", "#beams tbody tr")) == len(long_trace["beams"])
        _assert_page_matches_endpoint(browser, served, long_trace)
        _set_sliders(browser, w_rel=0, w_sup=0, w_use=5)
        _assert_page_matches_endpoint(browser, served, long_trace)
    finally:
        browser.quit()
