import math

import pytest

from selfrag.decoding import critique as C
from selfrag.types import Candidate

U = ("[Utility:1]", "[Utility:2]", "[Utility:3]", "[Utility:4]", "[Utility:5]")


def test_retrieve_probability_renormalises_probabilities():
    assert C.retrieve_probability({"[Retrieval]": 0.3, "[No Retrieval]": 0.1}) == pytest.approx(0.75)


def test_adaptive_decision_uses_probabilities_not_logprobs():
    # log p(Ret) = -3, log p(NoRet) = -1: p_ret = e^-3 / (e^-3 + e^-1) = 0.1192 -> below 0.2, no retrieval.
    probs = {"[Retrieval]": math.exp(-3), "[No Retrieval]": math.exp(-1)}
    p_ret = C.retrieve_probability(probs)
    assert p_ret == pytest.approx(1 / (1 + math.e**2))
    assert C.should_retrieve(p_ret, mode="adaptive", threshold=0.2) is False
    # The reference code's ratio of log-probs, -3 / (-3 + -1) = 0.75, would have retrieved.
    assert -3 / (-3 + -1) > 0.2


def test_threshold_is_strict_and_modes_override_it():
    assert C.should_retrieve(0.2, mode="adaptive", threshold=0.2) is False
    assert C.should_retrieve(0.2001, mode="adaptive", threshold=0.2) is True
    assert C.should_retrieve(0.0, mode="always", threshold=0.2) is True
    assert C.should_retrieve(1.0, mode="never", threshold=0.2) is False
    with pytest.raises(ValueError, match="decoding.mode must be one of adaptive, always, never"):
        C.should_retrieve(0.5, mode="sometimes", threshold=0.2)


def test_isrel():
    assert C.isrel_score({"[Relevant]": 0.2, "[Irrelevant]": 0.6}) == pytest.approx(0.25)


def test_issup_weights_partial_support_by_half():
    assert C.issup_score({"[Fully supported]": 0.2, "[Partially supported]": 0.4,
                          "[No support / Contradictory]": 0.4}) == pytest.approx(0.4)
    # Unnormalised: (0.1 + 0.5 * 0.1) / 0.4 = 0.375
    assert C.issup_score({"[Fully supported]": 0.1, "[Partially supported]": 0.1,
                          "[No support / Contradictory]": 0.2}) == pytest.approx(0.375)


def test_isuse_expected_utility_weight():
    probs = dict(zip(U, (0.1, 0.1, 0.2, 0.2, 0.4)))
    # -1*0.1 - 0.5*0.1 + 0 + 0.5*0.2 + 1*0.4 = 0.35
    assert C.isuse_score(probs) == pytest.approx(0.35)
    assert C.isuse_score({k: v / 2 for k, v in probs.items()}) == pytest.approx(0.35)


def test_group_that_underflowed_is_neutral():
    assert C.isrel_score({"[Relevant]": 0.0, "[Irrelevant]": 0.0}) == 0.5


def test_sequence_score_is_geometric_mean_probability():
    assert C.sequence_score([math.log(0.5), math.log(0.125)]) == pytest.approx(0.25)
    assert C.sequence_score([]) == 0.0


def _candidate(**probs):
    return Candidate(text="t", answer="t", passage=None, seq=0.5, **probs)


def test_final_score_with_paper_weights():
    cand = _candidate(
        rel_probs={"[Relevant]": 0.2, "[Irrelevant]": 0.6},
        sup_probs={"[Fully supported]": 0.2, "[Partially supported]": 0.4, "[No support / Contradictory]": 0.4},
        use_probs=dict(zip(U, (0.1, 0.1, 0.2, 0.2, 0.4))),
    )
    scores = C.score_candidate(cand, C.RewardWeights())
    # 0.5 + 1.0 * 0.25 + 1.0 * 0.4 + 0.5 * 0.35 = 1.325
    assert (scores.rel, scores.sup, scores.use, scores.seq) == pytest.approx((0.25, 0.4, 0.35, 0.5))
    assert scores.final == pytest.approx(1.325)
    no_seq = C.score_candidate(cand, C.RewardWeights(w_rel=2.0, w_sup=0.0, w_use=1.0, use_seqscore=False))
    assert no_seq.final == pytest.approx(2 * 0.25 + 0.35)


def test_missing_tokens_contribute_zero():
    scores = C.score_candidate(_candidate(rel_probs={"[Relevant]": 0.9, "[Irrelevant]": 0.1}), C.RewardWeights())
    assert scores.sup is None and scores.use is None
    assert scores.final == pytest.approx(0.5 + 0.9)


@pytest.mark.parametrize("name", ["w_rel", "w_sup", "w_use"])
def test_negative_weights_are_refused_with_the_key_named(name):
    with pytest.raises(ValueError, match=f"decoding.{name} must be a number >= 0, got -1"):
        C.RewardWeights(**{name: -1.0})


@pytest.mark.parametrize(
    ("answer", "options", "expected"),
    [
        ("B", ("A", "B", "C", "D"), "B"),
        ("b) Paris", ("A", "B", "C", "D"), "B"),
        ("(C) the moon", ("A", "B", "C", "D"), "C"),
        ("The answer is D.", ("A", "B", "C", "D"), "D"),
        ("Because the sky is blue", ("A", "B", "C", "D"), None),
        ("True, since the study shows", ("true", "false"), "true"),
        ("SUPPORTS", ("true", "false"), "true"),
        ("refutes", ("true", "false"), "false"),
        ("Falsely claimed", ("true", "false"), None),
    ],
)
def test_normalise_option(answer, options, expected):
    assert C.normalise_option(answer, options) == expected


def test_closed_set_scores_are_summed_per_option():
    best, totals = C.aggregate_options(["B", "b) Paris", "A", "the answer is A"], [0.5, 0.6, 1.0, 0.2],
                                       ("A", "B", "C", "D"))
    assert totals == pytest.approx({"B": 1.1, "A": 1.2})
    assert best == "A"


def test_closed_set_ties_go_to_the_first_option_seen_and_unmatched_answers_pool_by_text():
    best, totals = C.aggregate_options(["B", "A", "maybe", "Maybe "], [1.0, 1.0, 0.4, 0.4], ("A", "B"))
    assert best == "B"
    assert totals["maybe"] == pytest.approx(0.8)
