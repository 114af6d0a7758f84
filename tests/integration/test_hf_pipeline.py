"""The decoder end to end on a tiny trained Llama with the transformers backend, checked against raw transformers."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import score_candidate
from selfrag.decoding.hf_backend import HFBackend
from selfrag.decoding.pipeline import SelfRAG
from selfrag.prompts import PromptFormatter, passage_block
from tests.integration.queries import QUERIES


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return HFBackend(tiny_model_dir, batch_size=3)


def _decoder(hf, tiny_model_dir, **config):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return SelfRAG(hf, tokenizer, DecodingConfig(**config), prompt=PromptFormatter("selfrag"))


def test_group_probabilities_are_the_exact_full_vocabulary_probabilities(hf, tiny_model_dir):
    decoder = _decoder(hf, tiny_model_dir, mode="always", ndocs=2, max_new_tokens=30)
    [pred] = decoder.predict(QUERIES[:1])
    alpha = pred.candidates[0]
    assert alpha.answer == "alice is a singer ."
    assert T.FULLY_SUPPORTED in alpha.text and "[Utility:5]" in alpha.text
    # Recompute p([Relevant]) independently: one forward pass of plain transformers over prompt + passage.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    text = PromptFormatter("selfrag")(QUERIES[0].instruction)
    ids = tokenizer(text)["input_ids"] + tokenizer(passage_block(alpha.passage), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1], dim=-1)
    vocab = tokenizer.get_vocab()
    for token in T.ISREL_GROUP:
        assert alpha.rel_probs[token] == pytest.approx(probs[vocab[token]].item(), rel=1e-4)
    # the trained model is confident the passage is relevant, fully supports and is useful
    scores = score_candidate(alpha, decoder.config.weights)
    assert scores.rel > 0.9 and scores.sup > 0.9 and scores.use > 0.9
    assert 0 < scores.seq <= 1
    assert scores.final == pytest.approx(scores.seq + scores.rel + scores.sup + 0.5 * scores.use)


def test_batched_generation_equals_one_by_one(hf, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [tokenizer(PromptFormatter("selfrag")(q.instruction))["input_ids"] for q in QUERIES]
    batched = hf.generate(prompts, max_new_tokens=25)
    single = [hf.generate([p], max_new_tokens=25)[0] for p in prompts]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    for a, b in zip(batched, single):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert all(lp <= 0 for lp in a.logprobs)


def test_short_and_long_form_end_to_end(hf, tiny_model_dir):
    short = _decoder(hf, tiny_model_dir, mode="adaptive", threshold=0.2, ndocs=2, max_new_tokens=30)
    predictions = short.predict(QUERIES)
    assert [p.query.id for p in predictions] == ["q1", "q2", "q3", "q4"]
    for pred in predictions:
        assert 0.0 <= pred.p_retrieve <= 1.0
        assert pred.retrieved == (pred.p_retrieve > 0.2)
        assert all(t not in pred.answer for t in T.REFLECTION_TOKENS)
    long = _decoder(hf, tiny_model_dir, long_form=True, mode="always", ndocs=2, max_new_tokens=30, max_depth=3)
    [carol] = long.predict(QUERIES[3:])
    assert carol.segments and carol.docs
    for segment in carol.segments:
        if segment.citation is not None:
            assert carol.docs[segment.citation - 1] == segment.candidate.passage
    assert math.isfinite(carol.p_retrieve)
