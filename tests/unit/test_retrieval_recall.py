import pytest

from selfrag.retrieval.evaluation import answer_recall, contains_answer
from selfrag.types import Passage


def P(text, title=""):
    return Passage("x", title, text)


def test_contains_answer_is_case_insensitive_and_checks_titles():
    assert contains_answer(P("He was a Politician."), ["politician"])
    assert contains_answer(P("born 1818", title="Henry Feilden"), ["henry feilden"])
    assert not contains_answer(P("a poet"), ["politician", " "])


def test_recall_at_k_by_hand():
    ranked = [
        [P("no"), P("a singer"), P("no")],  # first hit at rank 2
        [P("an actor"), P("no"), P("no")],  # rank 1
        [P("no"), P("no"), P("no")],        # never
        [P("no"), P("no"), P("Paris")],     # rank 3
    ]
    answers = [["singer"], ["actor"], ["poet"], ["paris"]]
    assert answer_recall(ranked, answers, [1, 2, 3, 20]) == {1: 0.25, 2: 0.5, 3: 0.75, 20: 0.75}


def test_recall_validates_inputs():
    with pytest.raises(ValueError, match="every k must be >= 1"):
        answer_recall([[P("a")]], [["a"]], [0])
    with pytest.raises(ValueError, match="1 ranked lists for 2 answer lists"):
        answer_recall([[P("a")]], [["a"], ["b"]], [1])
