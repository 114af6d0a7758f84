"""Short form, long form (segment beam search) and re-ranking over a scripted fake backend, with hand-computed scores.

Every generated token has probability 0.5, so every candidate's sequence score is exactly 0.5.
"""

import pytest

from selfrag import tokens as T
from selfrag.decoding.beam import attach_citations
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.records import prediction_to_json, rerank
from selfrag.io import InputError
from selfrag.types import Candidate, Passage, Query
from tests.helpers import ScriptedBackend, tokenizer_with_reflection_tokens

ALPHA = Passage("p1", "alpha", "alice is a singer .")
BETA = Passage("p2", "beta", "bob is an actor .")
QUERY = Query(id="q1", question="who is alice ?", instruction="who is alice ?", passages=(ALPHA, BETA))


def _last_passage_title(text):
    if "<paragraph>" not in text:
        return None
    return text.rsplit("<paragraph>", 1)[1].split()[0]


def probs_fn(p_ret_start=0.6, p_ret_later=0.2):
    def probs(prefix, group):
        if group == T.RETRIEVE_GROUP:
            p = p_ret_start if "[No Retrieval]" not in prefix and "</paragraph>" not in prefix else p_ret_later
            return (p, 1 - p)
        if group == T.ISREL_GROUP:
            return (0.8, 0.2) if _last_passage_title(prefix) == "alpha" else (0.3, 0.7)
        if group == T.ISSUP_GROUP:
            return (0.5, 0.5, 0.0) if _last_passage_title(prefix) == "alpha" else (0.0, 0.0, 1.0)
        if group == T.ISUSE_GROUP:
            return (1.0, 0.0, 0.0, 0.0, 0.0) if "bob" in prefix.rsplit("</paragraph>", 1)[-1] else (0, 0, 0, 0, 1.0)
        raise AssertionError(group)

    return probs


def short_continuation(prompt):
    tail = prompt.rsplit("</paragraph>", 1)[-1] if "</paragraph>" in prompt else prompt
    if prompt.rstrip().endswith("[No Retrieval]") or "[No Retrieval]" in tail:
        return "no </s>"
    if _last_passage_title(prompt) == "alpha":
        return "alice is a singer . [Fully supported] [Utility:5] </s>"
    return "bob is an actor . [Utility:1] </s>"


def make(config, continue_fn=short_continuation, probs=None, retriever=None):
    tokenizer = tokenizer_with_reflection_tokens()
    backend = ScriptedBackend(tokenizer, continue_fn, probs or probs_fn())
    return SelfRAG(backend, tokenizer, config, retriever=retriever), backend


def test_short_form_scores_every_passage_candidate_exactly():
    decoder, backend = make(DecodingConfig(ndocs=2))
    [pred] = decoder.predict([QUERY])
    assert pred.retrieved and pred.p_retrieve == pytest.approx(0.6)
    alpha, beta = pred.candidates
    weights = RewardWeights()
    from selfrag.decoding.critique import score_candidate

    a, b = score_candidate(alpha, weights), score_candidate(beta, weights)
    # alpha: seq 0.5 + rel 0.8 + sup (0.5 + 0.5*0.5) = 0.75 + 0.5 * use 1.0 = 2.55
    assert (a.rel, a.sup, a.use, a.seq, a.final) == pytest.approx((0.8, 0.75, 1.0, 0.5, 2.55))
    # beta: seq 0.5 + rel 0.3 + no support token + 0.5 * use -1.0 = 0.3
    assert (b.rel, b.sup, b.use, b.final) == pytest.approx((0.3, None, -1.0, 0.3))
    assert pred.answer == "alice is a singer ."
    assert pred.output.startswith("[Retrieval]<paragraph>alpha\nalice is a singer .</paragraph>")
    # one scoring call for the retrieval decisions, one generate call that also yields every critique score
    assert len(backend.generate_calls) == 1 and backend.score_calls == 1


def test_adaptive_below_threshold_answers_without_retrieval():
    decoder, _ = make(DecodingConfig(ndocs=2, threshold=0.7))
    [pred] = decoder.predict([QUERY])
    assert not pred.retrieved and pred.answer == "no"
    assert [c.passage for c in pred.candidates] == [None]


@pytest.mark.parametrize(("mode", "retrieved"), [("always", True), ("never", False)])
def test_always_and_never_ignore_p_retrieve(mode, retrieved):
    decoder, _ = make(DecodingConfig(ndocs=2, mode=mode, threshold=0.0 if mode == "never" else 1.0))
    [pred] = decoder.predict([QUERY])
    assert pred.retrieved is retrieved
    assert pred.p_retrieve == pytest.approx(0.6)  # still recorded, for analysis and re-thresholding


def test_reweighting_saved_predictions_changes_the_choice_without_the_model():
    decoder, _ = make(DecodingConfig(ndocs=2))
    row = prediction_to_json(decoder.predict([QUERY])[0], RewardWeights())
    assert row["answer"] == "alice is a singer ."
    assert row["candidates"][0]["scores"]["final"] == pytest.approx(2.55)
    # Only relevance, inverted preference impossible (weights >= 0); make utility dominate negatively for alpha?
    # With w_rel=0, w_sup=0, w_use=0 and no seqscore every final is 0: the tie keeps the first passage.
    tied = rerank(row, RewardWeights(0.0, 0.0, 0.0, use_seqscore=False))
    assert tied["answer"] == "alice is a singer ." and tied["candidates"][1]["scores"]["final"] == 0.0
    # Same stored probabilities, new weights: beta = 0.5 + 2 * 0.3 + 0 = 1.1 < alpha = 0.5 + 1.6 + 0.75 + 0 = 2.85
    reweighted = rerank(row, RewardWeights(w_rel=2.0, w_sup=1.0, w_use=0.0))
    assert reweighted["candidates"][0]["scores"]["final"] == pytest.approx(2.85)
    assert reweighted["candidates"][1]["scores"]["final"] == pytest.approx(1.1)


def test_rethresholding_needs_both_paths_and_works_with_score_all_paths():
    decoder, _ = make(DecodingConfig(ndocs=2))
    row = prediction_to_json(decoder.predict([QUERY])[0], RewardWeights())
    with pytest.raises(InputError, match="no no-retrieval candidate was decoded.*score_all_paths=true"):
        rerank(row, RewardWeights(), threshold=0.9)
    decoder, _ = make(DecodingConfig(ndocs=2, score_all_paths=True))
    row = prediction_to_json(decoder.predict([QUERY])[0], RewardWeights())
    assert [c["passage_id"] for c in row["candidates"]] == ["p1", "p2", None]
    assert row["answer"] == "alice is a singer ." and row["retrieved"]
    high = rerank(row, RewardWeights(), threshold=0.9)
    assert not high["retrieved"] and high["answer"] == "no"
    assert rerank(high, RewardWeights(), mode="always")["answer"] == "alice is a singer ."


def test_closed_set_sums_scores_per_option():
    passages = tuple(Passage(f"p{i}", t, "x") for i, t in enumerate(["alpha", "beta", "gamma"]))
    query = Query("q", "q ?", "q ?", passages=passages, options=("A", "B"))
    answers = {"alpha": "A . [Utility:5] </s>", "beta": "B . [Utility:5] </s>", "gamma": "B . [Utility:5] </s>"}

    def cont(prompt):
        return answers[_last_passage_title(prompt)]

    def probs(prefix, group):
        if group == T.ISREL_GROUP:  # alpha is the single most relevant passage, but two passages say B
            return (0.9, 0.1) if _last_passage_title(prefix) == "alpha" else (0.5, 0.5)
        if group == T.RETRIEVE_GROUP:
            return (0.9, 0.1)
        return (0, 0, 0, 0, 1.0)

    decoder, _ = make(DecodingConfig(ndocs=3), continue_fn=cont, probs=probs)
    [pred] = decoder.predict([query])
    # A: 0.5 + 0.9 + 0.5 = 1.9 ; B: 2 * (0.5 + 0.5 + 0.5) = 3.0
    assert pred.answer == "B"
    assert pred.candidates[1].passage.title == "beta"  # the best-scored candidate naming B is reported


# ---- long form ------------------------------------------------------------------------------------------------------

def long_continuation(prompt):
    last = _last_passage_title(prompt)
    after = prompt.rsplit("[No Retrieval]", 1)[-1] if prompt.rstrip().endswith("[No Retrieval]") else None
    if after is not None:
        return "she was born in paris . [Utility:5] </s>"
    if last == "alpha":
        return "alice is a singer . [Fully supported] [Retrieval] <paragraph> never reached"
    return "bob is an actor . [No support / Contradictory] </s>"


def long_probs(prefix, group):
    if group == T.RETRIEVE_GROUP:
        return (0.9, 0.1) if "</paragraph>" not in prefix else (0.2, 0.8)
    if group == T.ISSUP_GROUP:
        return (1.0, 0.0, 0.0) if _last_passage_title(prefix) == "alpha" else (0.0, 0.0, 1.0)
    return probs_fn()(prefix, group)


def test_beam_search_segments_citations_and_scores():
    config = DecodingConfig(long_form=True, ndocs=2, threshold=0.5, beam_width=2, max_depth=5)
    decoder, backend = make(config, continue_fn=long_continuation, probs=long_probs)
    [pred] = decoder.predict([QUERY])
    # depth 1: alpha segment 0.5 + 0.8 + 1.0 = 2.3 (asks for retrieval), beta 0.5 + 0.3 + 0 = 0.8 (finished)
    # depth 2: p_ret 0.2 < 0.5 -> [No Retrieval] segment 0.5 + 0.5 * 1.0 = 1.0; alpha path mean (2.3 + 1.0) / 2
    assert [c.answer for c in pred.candidates] == ["alice is a singer .", "she was born in paris ."]
    assert pred.answer == "alice is a singer [1]. she was born in paris ."
    assert [d.id for d in pred.docs] == ["p1"]
    assert [s.citation for s in pred.segments] == [1, None]
    row = prediction_to_json(pred, config.weights)
    assert [b["score"] for b in row["beams"]] == pytest.approx([1.65, 0.8])
    assert row["segments"][0] == {"text": "alice is a singer .", "passage_id": "p1", "citation": 1}
    # the search stopped once every beam had finished: two depths, two generate calls; the depth-2 decision came
    # from the [Retrieval] token the depth-1 generation stopped on, so only the first decision needed a score call
    assert len(backend.generate_calls) == 2 and backend.score_calls == 1
    # each child was built from its own parent's text only (no sibling contamination)
    [depth2] = backend.generate_calls[1]
    assert "alice is a singer" in depth2 and "bob" not in depth2.split("</paragraph>")[-1]


def test_beam_depth_limit_and_pruning_to_width():
    config = DecodingConfig(long_form=True, ndocs=2, threshold=0.5, beam_width=1, max_depth=1)
    decoder, backend = make(config, continue_fn=long_continuation, probs=long_probs)
    [pred] = decoder.predict([QUERY])
    assert len(backend.generate_calls) == 1
    assert len(pred.beams) == 1 and pred.answer == "alice is a singer [1]."


def test_beam_ties_keep_the_earlier_candidate():
    def cont(prompt):
        return "it is . [Fully supported] </s>"

    def probs(prefix, group):
        return {T.RETRIEVE_GROUP: (1.0, 0.0), T.ISREL_GROUP: (0.5, 0.5), T.ISSUP_GROUP: (1.0, 0.0, 0.0),
                T.ISUSE_GROUP: (0.2,) * 5}[group]

    config = DecodingConfig(long_form=True, ndocs=2, mode="always", beam_width=1)
    decoder, _ = make(config, continue_fn=cont, probs=probs)
    [pred] = decoder.predict([QUERY])
    assert pred.docs[0].id == "p1"


class RecordingRetriever:
    def __init__(self):
        self.queries = []

    def batch_search(self, queries, k):
        self.queries.extend(queries)
        return [[Passage(f"r{len(self.queries)}-{i}", "alpha", "alice is a singer .") for i in range(k)]
                for _ in queries]


def test_live_retrieval_per_segment_uses_question_plus_previous_segment():
    retriever = RecordingRetriever()
    query = Query("q1", "who is alice ?", "who is alice ?")
    config = DecodingConfig(long_form=True, ndocs=1, mode="always", beam_width=1, max_depth=2)
    decoder, _ = make(config, continue_fn=long_continuation, probs=long_probs, retriever=retriever)
    [pred] = decoder.predict([query])
    assert retriever.queries == ["who is alice ?", "who is alice ? alice is a singer ."]
    assert [s.citation for s in pred.segments] == [1, 2]
    assert pred.answer == "alice is a singer [1]. alice is a singer [2]."


def test_citations_share_an_index_for_a_repeated_passage_and_keep_all_text():
    seg = lambda text, p: Candidate(text=text, answer=text, passage=p, seq=0.5)  # noqa: E731
    segments, docs, answer = attach_citations([seg("One!", ALPHA), seg("Two", BETA), seg("Three.", ALPHA)])
    assert [s.citation for s in segments] == [1, 2, 1]
    assert docs == (ALPHA, BETA)
    assert answer == "One [1]! Two [2] Three [1]."


def test_short_form_retrieves_only_for_queries_that_decided_to():
    retriever = RecordingRetriever()
    queries = [Query("a", "who is alice ?", "who is alice ?"), Query("b", "who is bob ?", "who is bob ?")]

    def probs(prefix, group):
        if group == T.RETRIEVE_GROUP:
            return (0.9, 0.1) if "alice" in prefix else (0.05, 0.95)
        return probs_fn()(prefix, group)

    decoder, _ = make(DecodingConfig(ndocs=2), probs=probs, retriever=retriever)
    alice, bob = decoder.predict(queries)
    assert retriever.queries == ["who is alice ?"]
    assert alice.retrieved and [c.passage.id for c in alice.candidates] == ["r1-0", "r1-1"]
    assert not bob.retrieved and bob.answer == "no"


def test_ill_formed_candidates_lose_to_well_formed_ones():
    from selfrag.decoding.pipeline import choose_short_form

    passage = Passage("p", "T", "text")
    sure = {T.RELEVANT: 0.99, T.IRRELEVANT: 0.01}
    full = {T.FULLY_SUPPORTED: 0.99, T.PARTIALLY_SUPPORTED: 0.0, T.NO_SUPPORT: 0.01}
    # `<paragraph>` written inside a word: the answer is the fragment "ret", with the highest scores of all
    fragment = Candidate(f"{T.RELEVANT}ret{T.PARAGRAPH_OPEN}ist{T.FULLY_SUPPORTED}[Utility:5]", "ret", passage, 0.9,
                         rel_probs=sure, sup_probs=full)
    modest = Candidate(f"{T.IRRELEVANT}artist[Utility:5]", "artist", passage, 0.5,
                       rel_probs={T.RELEVANT: 0.2, T.IRRELEVANT: 0.8})
    weights = RewardWeights()
    assert choose_short_form([fragment, modest], retrieve=True, weights=weights, options=None) == (1, "artist")
    # with no well-formed candidate the scores decide, as before
    cut = Candidate(f"{T.IRRELEVANT}artist", "artist", passage, 0.5, rel_probs={T.RELEVANT: 0.2, T.IRRELEVANT: 0.8},
                    finished=False)
    assert choose_short_form([fragment, cut], retrieve=True, weights=weights, options=None) == (0, "ret")
