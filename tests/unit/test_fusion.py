import pytest

from selfrag.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from selfrag.types import Passage


def P(pid, score=None, text=""):
    return Passage(pid, f"title {pid}", text or f"text {pid}", score)


def ids(passages):
    return [p.id for p in passages]


def scores(passages):
    return {p.id: p.score for p in passages}


# ---------------------------------------------------------------- reciprocal rank fusion

def test_rrf_k60_by_hand():
    first, second = [P("a"), P("b"), P("c")], [P("b"), P("d"), P("a")]
    fused = reciprocal_rank_fusion([first, second])
    # a: ranks 1, 3; b: ranks 2, 1; c: rank 3 in the first only; d: rank 2 in the second only.
    assert ids(fused) == ["b", "a", "d", "c"]
    assert scores(fused) == {"b": 1 / 62 + 1 / 61, "a": 1 / 61 + 1 / 63, "d": 1 / 62, "c": 1 / 63}


def test_rrf_other_k_and_weights_by_hand():
    first, second = [P("a"), P("b"), P("c")], [P("b"), P("d"), P("a")]
    fused = reciprocal_rank_fusion([first, second], k=1)
    assert scores(fused) == {"a": 1 / 2 + 1 / 4, "b": 1 / 3 + 1 / 2, "c": 1 / 4, "d": 1 / 3}
    assert ids(fused) == ["b", "a", "d", "c"]
    weighted = reciprocal_rank_fusion([first, second], k=1, weights=[2, 1])
    # a: 2/2 + 1/4 = 1.25 now beats b: 2/3 + 1/2 ≈ 1.167; c: 2/4 = 0.5 beats d: 1/3.
    assert ids(weighted) == ["a", "b", "c", "d"]
    assert scores(weighted) == {"a": 2 / 2 + 1 / 4, "b": 2 / 3 + 1 / 2, "c": 2 / 4, "d": 1 / 3}
    assert ids(reciprocal_rank_fusion([first, second], k=1, weights=[2, 1], limit=2)) == ["a", "b"]


def test_rrf_ties_follow_first_appearance():
    # x and y get exactly 1/61 + 1/62 each: the first list's order decides.
    assert ids(reciprocal_rank_fusion([[P("x"), P("y")], [P("y"), P("x")]])) == ["x", "y"]
    assert ids(reciprocal_rank_fusion([[P("y"), P("x")], [P("x"), P("y")]])) == ["y", "x"]
    # Only one list each, same rank: the passage seen first (first list) wins; then later lists' new passages.
    assert ids(reciprocal_rank_fusion([[P("m")], [P("n")], [P("o")]])) == ["m", "n", "o"]


def test_rrf_ignores_input_scores_keeps_first_content_and_counts_duplicates_once():
    fused = reciprocal_rank_fusion([[P("a", 0.1, "first text"), P("a", 0.9), P("b", 5.0)], [P("a", 99.0, "other")]],
                                   k=10)
    assert fused[0] == Passage("a", "title a", "first text", 1 / 11 + 1 / 11)
    assert fused[1] == Passage("b", "title b", "text b", 1 / 13)  # rank 3: the duplicate still took rank 2


def test_rrf_weight_zero_list_still_lists_its_passages_last():
    fused = reciprocal_rank_fusion([[P("a")], [P("z"), P("a")]], weights=[1, 0])
    assert ids(fused) == ["a", "z"] and scores(fused) == {"a": 1 / 61, "z": 0.0}


def test_rrf_empty_inputs():
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "RRF k must be a finite number > 0"),
        ({"k": -5}, "RRF k must be a finite number > 0"),
        ({"weights": [1.0]}, "weights has 1 entries for 2 ranked lists"),
        ({"weights": [1.0, -0.5]}, r"weights\[1\] must be a finite number >= 0"),
        ({"weights": [0, 0]}, "at least one weight must be > 0"),
        ({"limit": 0}, "limit must be an integer >= 1"),
    ],
)
def test_rrf_validates_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion([[P("a")], [P("b")]], **kwargs)


# ---------------------------------------------------------------- weighted score fusion

def test_weighted_minmax_by_hand_with_missing_passages():
    dense = [P("a", 10.0), P("b", 6.0), P("c", 2.0)]   # normalised: a 1, b 0.5, c 0
    bm25 = [P("b", 9.0), P("d", 5.0), P("a", 1.0)]     # normalised: b 1, d 0.5, a 0
    fused = weighted_score_fusion([dense, bm25])
    # A passage missing from a list gets 0 from it: d only from bm25, c only from dense.
    assert scores(fused) == {"a": 1.0, "b": 1.5, "c": 0.0, "d": 0.5}
    assert ids(fused) == ["b", "a", "d", "c"]
    reweighted = weighted_score_fusion([dense, bm25], weights=[0.25, 1])
    assert scores(reweighted) == {"a": 0.25, "b": 1.125, "c": 0.0, "d": 0.5}
    assert ids(reweighted) == ["b", "d", "a", "c"]
    assert ids(weighted_score_fusion([dense, bm25], weights=[0.25, 1], limit=1)) == ["b"]


def test_weighted_equal_scores_count_as_the_lists_best():
    tied, single = [P("e", 3.0), P("f", 3.0)], [P("g", -7.0)]
    fused = weighted_score_fusion([tied, single], weights=[1, 2])
    # Every passage of an all-equal list (a single passage included) normalises to 1.
    assert scores(fused) == {"g": 2.0, "e": 1.0, "f": 1.0}
    assert ids(fused) == ["g", "e", "f"]  # e and f tie: first appearance


def test_weighted_raw_scores():
    fused = weighted_score_fusion([[P("a", 0.5), P("b", 0.25)], [P("b", 0.5)]], normalization="none")
    assert scores(fused) == {"b": 0.75, "a": 0.5} and ids(fused) == ["b", "a"]


def test_weighted_fusion_needs_scores_and_valid_arguments():
    with pytest.raises(ValueError, match=r"needs finite scores, but ranked list 1 has score None at rank 2"):
        weighted_score_fusion([[P("a", 1.0)], [P("b", 2.0), P("c")]])
    with pytest.raises(ValueError, match="normalization must be one of minmax, none"):
        weighted_score_fusion([[P("a", 1.0)]], normalization="zscore")
    with pytest.raises(ValueError, match="weights has 3 entries for 1 ranked lists"):
        weighted_score_fusion([[P("a", 1.0)]], weights=[1, 1, 1])
    with pytest.raises(ValueError, match=r"weights\[0\] must be a finite number >= 0"):
        weighted_score_fusion([[P("a", 1.0)]], weights=[float("nan")])
