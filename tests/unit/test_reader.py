"""`decoding.reader=base`: the base writes each passage's answer, the generator critiques it by teacher forcing.

Two scripted backends: the reader's answers come from the passage its prompt shows; the generator's reflection
probabilities depend on the exact text before the position they are read at, so a critique read anywhere but where
the generator would have written it fails the test (the scripted probabilities raise).
"""

import math

import pytest

from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import score_candidate
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.reader import PlainReader
from selfrag.io import InputError
from selfrag.models.loading import ModelSpec, base_model_spec
from selfrag.prompts import PromptFormatter
from selfrag.types import Passage, Query
from tests.helpers import ScriptedBackend, tokenizer_with_reflection_tokens

ALPHA = Passage("p1", "alpha", "alice is a singer .")
BETA = Passage("p2", "beta", "bob is an actor .")
QUERY = Query(id="q1", question="who is alice ?", instruction="who is alice ?", passages=(ALPHA, BETA))


def read(prompt):
    """The reader: answers from the passage its prompt shows, `no` without one."""
    if "alice is a singer" in prompt:
        return "singer </s>"
    if "bob is an actor" in prompt:
        return "actor </s>"
    return "no </s>"


def tail(prefix):
    """The text after the passage block (from `[No Retrieval]` without one): where a candidate's own tokens start."""
    if "</paragraph>" in prefix:
        return prefix.rsplit("</paragraph>", 1)[-1].strip()
    return prefix[prefix.index(T.NO_RETRIEVAL):]


#: IsSup and IsUse probabilities, defined only after the tokens a teacher-forced candidate has at that position.
SUP_AT = {"[Relevant] singer": (0.3, 0.6, 0.1), "[Irrelevant] actor": (0.0, 0.0, 1.0)}
USE_AT = {"[Relevant] singer [Partially supported]": (0, 0, 0, 0, 1.0),
          "[Irrelevant] actor [No support / Contradictory]": (1.0, 0, 0, 0, 0),
          "[No Retrieval] no": (0, 0, 1.0, 0, 0)}


def generator_probs(prefix, group):
    if group == T.RETRIEVE_GROUP:
        return (0.6, 0.4)
    if group == T.ISREL_GROUP:
        assert prefix.endswith("</paragraph>"), prefix  # right after the passage block, as generation reads it
        return (0.8, 0.2) if "<paragraph> alpha" in prefix else (0.3, 0.7)
    if group == T.ISSUP_GROUP:
        return SUP_AT[tail(prefix)]
    if group == T.ISUSE_GROUP:
        return USE_AT[tail(prefix)]
    raise AssertionError(group)


def make(config):
    tokenizer = tokenizer_with_reflection_tokens()
    generator = ScriptedBackend(tokenizer, lambda p: pytest.fail("the generator must not write with a reader"),
                                generator_probs)
    reader_backend = ScriptedBackend(tokenizer, read, lambda p, g: pytest.fail("nothing scores the reader"),
                                     token_logprob=math.log(0.25))
    reader = PlainReader(reader_backend, tokenizer, prompt=PromptFormatter(), max_new_tokens=10)
    return SelfRAG(generator, tokenizer, config, reader=reader), generator, reader_backend


def test_the_base_answers_each_passage_and_the_generator_critiques_where_it_would_have_written():
    decoder, generator, reader_backend = make(DecodingConfig(ndocs=2, reader="base", score_all_paths=True))
    [pred] = decoder.predict([QUERY])
    alpha, beta, closed = pred.candidates
    # the reader read each passage alone, and the bare question for the no-retrieval candidate, in one call
    [prompts] = reader_backend.generate_calls
    assert ["alice is a singer" in p and "bob" not in p for p in prompts] == [True, False, False]
    assert ["bob is an actor" in p and "alice is a" not in p for p in prompts] == [False, True, False]
    assert prompts[2] == "<s> ### Instruction : who is alice ? ### Response :"  # the official format, no paragraph
    # the generator wrote nothing: one retrieval probe, then IsRel, IsSup and IsUse in a scoring call each
    assert generator.generate_calls == [] and generator.score_calls == 4
    assert [c.answer for c in pred.candidates] == ["singer", "actor", "no"]
    assert alpha.text.split() == ["[Relevant]", "singer", "[Partially", "supported]", "[Utility:5]"]
    assert beta.text.split() == ["[Irrelevant]", "actor", "[No", "support", "/", "Contradictory]", "[Utility:1]"]
    assert closed.text.split() == ["no", "[Utility:3]"] and closed.rel_probs is None and closed.sup_probs is None
    assert all(c.finished for c in pred.candidates)
    a, b, c = (score_candidate(x, decoder.config.weights) for x in pred.candidates)
    # seq is the reader's likelihood (every token 0.25, EOS included); final = seq + rel + sup + 0.5 use
    assert (a.seq, a.rel, a.sup, a.use, a.final) == pytest.approx((0.25, 0.8, 0.3 + 0.5 * 0.6, 1.0, 2.15))
    assert (b.rel, b.sup, b.use, b.final) == pytest.approx((0.3, 0.0, -1.0, 0.05))
    assert (c.rel, c.sup, c.use, c.final) == pytest.approx((None, None, 0.0, 0.25))
    assert pred.retrieved and pred.answer == "singer"
    assert pred.output.startswith("[Retrieval]<paragraph>alpha\nalice is a singer .</paragraph>[Relevant]")


def test_below_the_threshold_the_base_answers_without_passages():
    decoder, _, reader_backend = make(DecodingConfig(ndocs=2, reader="base", threshold=0.7))
    [pred] = decoder.predict([QUERY])
    assert not pred.retrieved and pred.answer == "no" and len(reader_backend.generate_calls[0]) == 1


def test_reader_settings_are_refused_by_name():
    with pytest.raises(InputError, match="decoding.reader"):
        DecodingConfig(reader="critic")
    with pytest.raises(InputError, match="decoding.reader=base answers each passage in one step.*long_form=false"):
        DecodingConfig(reader="base", long_form="true")
    with pytest.raises(InputError, match="no model.adapter; set model.adapter=DIR"):
        base_model_spec(ModelSpec("selfrag", packaged="smollm2_135m_instruct", add_reflection_tokens=True))
    base = base_model_spec(ModelSpec("gen", packaged="smollm2_135m_instruct", add_reflection_tokens=True,
                                     adapter="/runs/final", prompt="chat", writes_reflection=True))
    assert base == ModelSpec("gen base", packaged="smollm2_135m_instruct")
