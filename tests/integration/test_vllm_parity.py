"""The real vLLM engine (CPU build in CI) against the transformers backend on the same tiny model.

Parity: identical greedy tokens, and token / group log-probabilities within 1e-3, from the backends alone and
through the whole decoder (short and long form).
"""

import math

import pytest
import torch
from transformers import AutoTokenizer

from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.hf_backend import HFBackend
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.records import prediction_to_json
from selfrag.prompts import PromptFormatter
from selfrag.types import ScoreRequest
from tests.integration.queries import QUERIES

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def backends(tiny_model_dir):
    pytest.importorskip("vllm", reason="backend=vllm needs vLLM (CI installs the CPU build)")
    from selfrag.decoding.vllm_backend import VLLMBackend

    vllm = VLLMBackend(tiny_model_dir, dtype="float32", engine_options={"enforce_eager": True})
    yield HFBackend(tiny_model_dir, dtype="float32"), vllm
    vllm.close()


def test_cpu_engine_defaults_reach_the_engine(backends):
    from vllm.platforms import current_platform

    from selfrag.decoding.vllm_backend import CPU_ENGINE_DEFAULTS

    if not current_platform.is_cpu():
        pytest.skip("the defaults apply to vLLM's CPU build only")
    _, vllm = backends
    config = vllm.llm.llm_engine.vllm_config
    assert config.cache_config.block_size == CPU_ENGINE_DEFAULTS["block_size"] == 32
    assert config.scheduler_config.max_num_batched_tokens == CPU_ENGINE_DEFAULTS["max_num_batched_tokens"] == 2048
    assert config.model_config.dtype == torch.float32  # asked for explicitly: "auto" would be bfloat16 on a CPU


def _prompts(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tokenizer, [tokenizer(PromptFormatter("selfrag")(q.instruction))["input_ids"] for q in QUERIES]


def test_generate_and_score_agree(backends, tiny_model_dir):
    hf, vllm = backends
    tokenizer, prompts = _prompts(tiny_model_dir)
    stop = [tokenizer.convert_tokens_to_ids(T.RETRIEVAL)]
    a = hf.generate(prompts, max_new_tokens=40, stop_token_ids=stop)
    b = vllm.generate(prompts, max_new_tokens=40, stop_token_ids=stop)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert [c.stopped for c in a] == [c.stopped for c in b]
    for x, y in zip(a, b):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-3)
    group = tuple(tokenizer.convert_tokens_to_ids(list(T.REFLECTION_TOKENS)))
    requests = [ScoreRequest(tuple(p) + c.token_ids, tuple((len(p) + j, group) for j in range(len(c.token_ids))))
                for p, c in zip(prompts, a)]
    for x, y in zip(hf.score(requests), vllm.score(requests)):
        for qx, qy in zip(x, y):
            assert [math.exp(v) for v in qx] == pytest.approx([math.exp(v) for v in qy], abs=1e-3)


@pytest.mark.parametrize(
    "config",
    [
        {"mode": "adaptive", "threshold": 0.2, "ndocs": 2, "max_new_tokens": 30},
        {"mode": "always", "ndocs": 2, "max_new_tokens": 30, "score_all_paths": True},
        {"long_form": True, "mode": "always", "ndocs": 2, "max_new_tokens": 30, "max_depth": 3},
    ],
    ids=["adaptive", "always-all-paths", "long-form"],
)
def test_decoder_predictions_agree(backends, tiny_model_dir, config):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    decoding = DecodingConfig(**config)
    rows = []
    for backend in backends:
        decoder = SelfRAG(backend, tokenizer, decoding, prompt=PromptFormatter("selfrag"))
        rows.append([prediction_to_json(p, decoding.weights) for p in decoder.predict(QUERIES)])
    for x, y in zip(*rows):
        assert (x["answer"], x["output"], x["retrieved"]) == (y["answer"], y["output"], y["retrieved"])
        assert x["p_retrieve"] == pytest.approx(y["p_retrieve"], abs=1e-3)
        assert len(x["candidates"]) == len(y["candidates"])
        for cx, cy in zip(x["candidates"], y["candidates"]):
            assert cx["text"] == cy["text"]
            for name in ("rel", "sup", "use"):
                if cx["probs"][name] is None:
                    assert cy["probs"][name] is None
                else:
                    assert cx["probs"][name] == pytest.approx(cy["probs"][name], abs=1e-3)
            assert cx["scores"]["final"] == pytest.approx(cy["scores"]["final"], abs=1e-3)


def test_critic_labels_agree(backends, tiny_model_dir):
    """Critic inference (constrained to each aspect's labels) gives the same labels on both backends."""
    from critic.critic_model import CriticLabeler
    from tests.integration.test_critic_scripts import ITEMS

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    hf_labels, vllm_labels = (CriticLabeler(b, tokenizer).label(ITEMS) for b in backends)
    assert [lab.label for lab in hf_labels] == [lab.label for lab in vllm_labels]
    for a, b in zip(hf_labels, vllm_labels):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
