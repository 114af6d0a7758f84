"""The server's parts without a model: settings and request checks, the batcher, how a batch is grouped, and that
re-deciding a shared decode under a request's weights is what decoding under them gives."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import replace

import pytest

from selfrag.decoding.config import DecodingConfig
from selfrag.io import InputError
from selfrag.serving.batcher import Batcher, QueueFull
from selfrag.serving.config import RequestError, ServerSettings, request_decoding, rerank_settings
from selfrag.serving.engine import ChatJob, ServingEngine, group_key
from selfrag.serving.schemas import ChatRequest

BASE = {"mode": "adaptive", "threshold": 0.2, "ndocs": 5, "max_new_tokens": 100, "w_rel": None, "w_sup": None,
        "w_use": None, "use_seqscore": None, "long_form": False, "beam_width": 2, "max_depth": 7,
        "score_all_paths": False}


# ---- settings ------------------------------------------------------------------------------------------------------

def test_server_settings_defaults_and_refusals():
    s = ServerSettings.from_config({})
    assert (s.host, s.port, s.api_key, s.max_batch) == ("127.0.0.1", 8000, None, 16) and s.is_loopback
    assert ServerSettings.from_config({"port": 0, "batch_window_ms": 0}).port == 0
    for values, message in [({"port": 70000}, "server.port must be an integer in [0, 65535]"),
                            ({"port": "80"}, "server.port must be an integer"),
                            ({"max_batch": 0}, "server.max_batch must be an integer >= 1"),
                            ({"batch_window_ms": -1}, "server.batch_window_ms must be a number"),
                            ({"api_key": ""}, "server.api_key must be a non-empty string or null"),
                            ({"max_btach": 4}, "unknown setting server.max_btach")]:
        with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            ServerSettings.from_config(values)
    with pytest.raises(InputError, match=r"decoding.ndocs must be <= 20 .*server.max_ndocs"):
        ServerSettings.from_config({}).check_decoding(DecodingConfig(ndocs=21))


def test_request_settings_are_checked_by_the_cli_rules_and_name_the_field():
    server = ServerSettings.from_config({"max_ndocs": 8})
    config = request_decoding(BASE, {"w_rel": 0, "w_sup": 2.5, "ndocs": 3, "mode": "always"}, server)
    assert (config.w_rel, config.w_sup, config.w_use, config.ndocs, config.mode) == (0.0, 2.5, 0.5, 3, "always")
    assert request_decoding(BASE, {}, server) == DecodingConfig.from_mapping(BASE)
    cases = [({"w_rel": "high"}, "selfrag.w_rel", "selfrag.w_rel must be a number >= 0"),
             ({"w_sup": -1}, "selfrag.w_sup", "selfrag.w_sup must be a number >= 0, got -1"),
             ({"use_seqscore": "maybe"}, "selfrag.use_seqscore", "must be true or false"),
             ({"threshold": 1.5}, "selfrag.threshold", "selfrag.threshold is a probability"),
             ({"mode": "sometimes"}, "selfrag.mode", "selfrag.mode must be one of adaptive, always, never"),
             ({"ndocs": -1}, "selfrag.ndocs", "selfrag.ndocs must be an integer >= 1, got -1"),
             ({"ndocs": 2.0}, "selfrag.ndocs", "must be an integer"),
             ({"ndocs": 9}, "selfrag.ndocs", "selfrag.ndocs must be <= 8 (the server's limit, server.max_ndocs)"),
             ({"beam_width": 99}, "selfrag.beam_width", "server.max_beam_width"),
             ({"bogus": 1}, "selfrag.bogus", "unknown setting selfrag.bogus")]
    for overrides, param, message in cases:
        with pytest.raises(RequestError) as caught:
            request_decoding(BASE, overrides, server)
        assert (caught.value.status, caught.value.param) == (400, param) and message in caught.value.message
    with pytest.raises(RequestError) as caught:
        request_decoding(BASE, {"max_new_tokens": 10_000}, server, params={"max_new_tokens": "max_tokens"})
    assert caught.value.param == "max_tokens" and caught.value.message.startswith("max_tokens must be <= 512")


def test_chat_request_question_and_openai_token_limits():
    body = ChatRequest.model_validate({"messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": "first"},
                                                    {"role": "assistant", "content": "..."},
                                                    {"role": "user", "content": [{"type": "text", "text": "who"},
                                                                                 {"type": "text", "text": "is x ?"}]}],
                                       "max_tokens": 40, "temperature": 0.7})
    assert body.question(100) == "who\nis x ?"
    assert body.decoding_overrides() == ({"max_new_tokens": 40}, {"max_new_tokens": "max_tokens"})
    with pytest.raises(RequestError, match="at most 5"):
        body.question(5)
    assert ChatRequest.model_validate({"messages": [{"role": "user", "content": "q"}], "max_tokens": 40,
                                       "selfrag": {"max_new_tokens": 7}}).decoding_overrides()[0] == \
        {"max_new_tokens": 7}
    for extra, param in [({"stream": True}, "stream"), ({"n": 2}, "n")]:
        with pytest.raises(RequestError) as caught:
            ChatRequest.model_validate({"messages": [{"role": "user", "content": "q"}], **extra}).decoding_overrides()
        assert caught.value.param == param


def test_rerank_settings_are_scripts_rerank_rules():
    weights, mode, threshold = rerank_settings({"w_rel": 0, "threshold": 0.5})
    assert (weights.w_rel, weights.w_sup, mode, threshold) == (0.0, 1.0, None, 0.5)
    for values, param in [({"w_use": -2}, "w_use"), ({"use_seqscore": 1}, "use_seqscore"), ({"mode": "x"}, "mode"),
                          ({"threshold": "0.5"}, "threshold"), ({"mode": "adaptive"}, "threshold")]:
        with pytest.raises(RequestError) as caught:
            rerank_settings(values)
        assert caught.value.param == param and "decoding." not in caught.value.message


# ---- the batcher ---------------------------------------------------------------------------------------------------

def test_the_batcher_collects_concurrent_items_into_one_call_and_keeps_errors_per_item():
    calls: list[list[int]] = []

    def process(items):
        calls.append(list(items))
        time.sleep(0.05)
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    async def scenario():
        batcher = Batcher(process, window_s=0.2, max_batch=4)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
        finally:
            await batcher.stop()
        return batcher, results

    batcher, results = asyncio.run(scenario())
    assert calls == [[0, 1, 2, 3], [4, 5]]  # bounded by max_batch; the rest form the next batch
    assert results[:3] == [0, 10, 20] and isinstance(results[3], ValueError) and results[4:] == [40, 50]
    assert batcher.stats.as_json()["largest_batch"] == 4 and batcher.stats.batches == 2


def test_requests_arriving_during_a_decode_form_the_next_batch_and_a_lone_one_waits_only_the_window():
    calls: list[list[int]] = []
    started = threading.Event()

    def process(items):
        calls.append(list(items))
        started.set()
        time.sleep(0.3)
        return list(items)

    async def scenario():
        batcher = Batcher(process, window_s=0.0, max_batch=8)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(0))
            while not started.is_set():
                await asyncio.sleep(0.01)
            rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]  # queued while 0 decodes
            return await asyncio.gather(first, *rest)
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]
    assert calls == [[0], [1, 2, 3, 4]]


def test_a_failing_batch_fails_each_caller_and_a_full_queue_is_refused():
    def process(items):
        raise RuntimeError("decoder down")

    async def scenario():
        batcher = Batcher(process, window_s=0.0, max_batch=2, max_queue=1)
        await batcher.start()
        try:
            results = await asyncio.gather(batcher.submit(1), return_exceptions=True)
            blocked = Batcher(process, window_s=0.0, max_batch=1, max_queue=1)
            blocked._queue = asyncio.Queue(maxsize=1)  # not started: nothing drains it
            blocked._queue.put_nowait((0, asyncio.get_running_loop().create_future()))
            with pytest.raises(QueueFull):
                await blocked.submit(2)
            return results
        finally:
            await batcher.stop()

    (result,) = asyncio.run(scenario())
    assert isinstance(result, RuntimeError) and "decoder down" in str(result)


# ---- grouping and per-request weights --------------------------------------------------------------------------------

def test_short_form_groups_ignore_the_weights_and_long_form_groups_keep_them():
    a = DecodingConfig(w_rel=0.0, w_sup=3.0)
    b = DecodingConfig(w_use=2.0, use_seqscore=False)
    assert group_key(a) == group_key(b) == DecodingConfig()
    assert group_key(replace(a, ndocs=2)) != group_key(b)  # other work: another group
    assert group_key(replace(a, long_form=True)) != group_key(replace(b, long_form=True))


def _scripted_predictor():
    """A `SelfRAGPredictor` over the scripted backend: two passages with opposite critiques."""
    from selfrag import tokens as T
    from selfrag.decoding.pipeline import SelfRAG
    from selfrag.decoding.run import SelfRAGPredictor
    from tests.helpers import ScriptedBackend, tokenizer_with_reflection_tokens

    tokenizer = tokenizer_with_reflection_tokens()

    def continue_fn(prompt):
        if prompt.endswith("</paragraph>") and "singer" in prompt.split("<paragraph>")[-1]:
            return "[Relevant]alice is a singer .[Partially supported][Utility:4]</s>"
        if prompt.endswith("</paragraph>"):
            return "[Irrelevant]bob is an actor .[Fully supported][Utility:5]</s>"
        return "paris is the capital .[Utility:3]</s>"

    def probs_fn(prefix, group):
        if group == T.RETRIEVE_GROUP:
            return (0.7, 0.3)
        rel = "singer" in prefix.split("<paragraph>")[-1]
        table = {T.ISREL_GROUP: (0.9, 0.1) if rel else (0.3, 0.7),
                 T.ISSUP_GROUP: (0.2, 0.6, 0.2) if rel else (0.9, 0.05, 0.05),
                 T.ISUSE_GROUP: (0.01, 0.01, 0.08, 0.1, 0.8) if rel else (0.05, 0.05, 0.1, 0.6, 0.2)}
        return table[group]

    backend = ScriptedBackend(tokenizer, continue_fn, probs_fn)
    return SelfRAGPredictor(SelfRAG(backend, tokenizer, DecodingConfig(mode="always", ndocs=2))), backend


def test_a_shared_decode_re_decided_per_request_equals_decoding_under_each_requests_weights():
    from selfrag.types import Passage, Query

    predictor, backend = _scripted_predictor()
    engine = ServingEngine(predictor)
    passages = (Passage("a", "alice", "alice is a singer ."), Passage("b", "bob", "bob was born in london ."))
    query = Query("q1", "who is alice ?", "who is alice ?", passages=passages)
    settings = [DecodingConfig(mode="always", ndocs=2), DecodingConfig(mode="always", ndocs=2, w_rel=0.0, w_sup=4.0),
                DecodingConfig(mode="always", ndocs=2, w_rel=0.0, w_sup=0.0, w_use=0.0, use_seqscore=False),
                DecodingConfig(mode="always", ndocs=1)]
    calls_before = len(backend.generate_calls)
    results = engine.process([ChatJob(query, c) for c in settings])
    assert len(backend.generate_calls) - calls_before == 2  # the three weightings shared one call; ndocs=1 its own
    assert engine.stats.as_json() == {"decoder_calls": 2, "requests": 4, "largest_call": 3, "shared_calls": 1}
    for config, result in zip(settings, results):
        expected = engine.predictor_for(config).predict([query])[0]
        assert result.row == expected
        assert result.prompt_tokens > 0 and result.completion_tokens > 0
    answers = [r.row["answer"] for r in results]
    assert answers[0] == "alice is a singer ." and answers[1] == "bob is an actor ."  # the weights decided
    finals = [c["scores"]["final"] for c in results[2].row["candidates"]]
    assert finals == [0.0, 0.0] and not any(math.isnan(f) for f in finals)


def test_a_request_the_model_cannot_take_fails_alone():
    from selfrag.types import Query

    predictor, _ = _scripted_predictor()
    engine = ServingEngine(predictor)

    class Refusing:
        def __init__(self, inner):
            self.inner = inner
            self.decoder = inner.decoder

        def check(self, queries):
            if any("long" in q.question for q in queries):
                raise InputError("question id='x' does not fit the model's context; lower decoding.ndocs")

        def predict(self, queries):
            return self.inner.predict(queries)

    engine.predictor_for = lambda config: Refusing(ServingEngine.predictor_for(engine, config))  # type: ignore
    ok = Query("1", "who is alice ?", "who is alice ?")
    bad = Query("2", "a long question", "a long question")
    results = engine.process([ChatJob(ok, DecodingConfig()), ChatJob(bad, DecodingConfig())])
    assert results[0].row["question"] == "who is alice ?"
    assert isinstance(results[1], RequestError) and results[1].param == "messages"
    assert "selfrag.ndocs" in results[1].message
