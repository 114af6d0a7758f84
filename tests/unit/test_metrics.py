"""eval.metrics on hand-made cases, including the reference code's quirks."""

from __future__ import annotations

import random

import pytest

from eval import metrics as m


def test_normalize_answer_is_squad_normalisation():
    assert m.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert m.normalize_answer("An apple, a pear and THE plum.") == "apple pear and plum"
    assert m.normalize_answer("1,000") == m.normalize_answer("1000")
    assert m.normalize_answer("   ") == ""


def test_match_original_is_case_sensitive_substring():
    assert m.match_original("He was a politician.", ["politician"]) == 1.0
    # The reference quirk: case matters, so the capitalised answer misses.
    assert m.match_original("Politician.", ["politician"]) == 0.0
    assert m.match("Politician.", ["politician"]) == 1.0
    # A one-letter gold matches any capital A (the ARC quirk); an empty gold matches everything.
    assert m.match_original("B: A planet", ["A"]) == 1.0
    assert m.match_original("anything", [""]) == 1.0


def test_several_golds_any_alias_counts():
    aliases = ["Leos Jancek", "leos jancek", "Janacek"]
    assert m.match_original("It was Janacek.", aliases) == 1.0
    assert m.match_original("it was LEOS JANCEK", aliases) == 0.0
    assert m.match("it was LEOS JANCEK", aliases) == 1.0
    assert m.match("Dvorak", aliases) == 0.0
    assert m.match("anything", []) == 0.0


def test_match_skips_golds_that_normalise_to_nothing():
    assert m.match("a cat", ["The"]) == 0.0
    assert m.match("the cat", ["The", "cat"]) == 1.0


def test_exact_match():
    assert m.exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert m.exact_match("The Eiffel Tower in Paris", ["eiffel tower"]) == 0.0
    assert m.exact_match("Paris", ["London", "paris"]) == 1.0


def test_f1_arithmetic():
    # prediction tokens [eiffel, tower, in, paris] (4), gold [eiffel, tower] (2), common 2:
    # P = 2/4, R = 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assert m.f1("The Eiffel Tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 / 3)
    # Max over golds: gold "paris" gives P = 1/4, R = 1, F1 = 0.4 < 2/3.
    assert m.f1("The Eiffel Tower in Paris", ["paris", "Eiffel Tower"]) == pytest.approx(2 / 3)
    # Repeated tokens count as a multiset: pred [x, x, y] vs gold [x, z]: common 1, P = 1/3, R = 1/2,
    # F1 = 2 * (1/6) / (5/6) = 0.4.
    assert m.f1("x x y", ["x z"]) == pytest.approx(0.4)
    assert m.f1("nothing shared", ["other words"]) == 0.0
    # Empty after normalisation on both sides counts as agreement; on one side only, as 0.
    assert m.f1("the", ["a"]) == 1.0
    assert m.f1("", ["paris"]) == 0.0
    assert m.f1("paris", []) == 0.0


@pytest.mark.parametrize(
    "prediction",
    ["B", "B.", "(B)", "B)", " B: Planetary years will become longer.", "B. longer years", "(B) longer",
     "The answer is B", "the correct answer is (B).", "Answer: B", "Planetary years will become longer"],
)
def test_normalize_choice_accepts_common_forms(prediction):
    choices = {"A": "Planetary density will decrease.", "B": "Planetary years will become longer.",
               "C": "Planetary days will become shorter.", "D": "Planetary gravity will become stronger."}
    assert m.normalize_choice(prediction, choices) == "B"


def test_normalize_choice_refuses_what_it_cannot_tell():
    choices = {"A": "red", "B": "blue", "C": "red", "D": "green"}
    assert m.normalize_choice("A planet is round", choices) is None  # "A" as an article is not a label
    assert m.normalize_choice("red", choices) is None  # the text of two options
    assert m.normalize_choice("green", choices) == "D"
    # Texts that normalise alike are told apart by their near-verbatim form first (a real ARC question).
    signs = {"A": "-1", "B": "+1", "C": "-2", "D": "+2"}
    assert m.normalize_choice("+1", signs) == "B" and m.normalize_choice("1", signs) is None
    assert m.normalize_choice("E", choices) is None  # not an option
    assert m.normalize_choice("", choices) is None
    assert m.normalize_choice("The answer is a mystery", choices) is None  # lower-case "a" is not a label
    assert m.normalize_choice("C", ["A", "B", "C"]) == "C"  # labels only


def test_normalize_true_false():
    for text in ("true", "True.", "TRUE", "yes", "SUPPORTS", "correct", "The claim is true."):
        assert m.normalize_true_false(text) == "true", text
    for text in ("false", "False, it is not.", "no", "REFUTES", "incorrect", "This is incorrect."):
        assert m.normalize_true_false(text) == "false", text
    # The first word decides; otherwise words of exactly one class.
    assert m.normalize_true_false("False: there is no evidence that it is true") == "false"
    assert m.normalize_true_false("It could be true or false") is None
    assert m.normalize_true_false("maybe") is None
    assert m.normalize_true_false("") is None


def test_accuracy_closed_sets():
    choices = {"A": "red", "B": "blue"}
    assert m.accuracy("B: blue", "B", choices) == 1.0
    assert m.accuracy("A", "B", choices) == 0.0
    assert m.accuracy("no idea", "B", choices) == 0.0
    # True/false: golds may be SUPPORTS/REFUTES; the prediction's case does not matter (unlike match_original).
    assert m.accuracy("True", "true") == 1.0
    assert m.accuracy("false", "REFUTES") == 1.0
    assert m.accuracy("true", "SUPPORTS") == 1.0
    assert m.accuracy("true", "false") == 0.0
    assert m.accuracy("perhaps", "true") == 0.0


def test_str_em_counts_answered_disambiguations():
    groups = [["1991"], ["Bill Clinton", "Clinton"], ["Arkansas"]]
    # "clinton" is found (alias), "1991" is not ("1992"), "arkansas" is not: 1/3.
    assert m.str_em("Clinton won in 1992.", groups) == pytest.approx(1 / 3)
    assert m.str_em("In 1991 Bill Clinton of Arkansas ...", groups) == 1.0
    assert m.str_em("anything", []) == 0.0


def test_rouge_tokens_match_rouge_score_tokenisation():
    assert m.rouge_tokens("The U.S. café, 1,000!") == ["the", "u", "s", "caf", "1", "000"]


def _lcs_dp(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_lcs_length_bit_parallel_equals_dynamic_programme():
    assert m.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example (BCBA)
    assert m.lcs_length([], ["a"]) == 0
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        assert m.lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_f_measure_by_hand():
    # prediction [the, cat, sat] vs reference [the, cat, sat, on, the, mat]: LCS 3, P = 1, R = 1/2, F = 2/3.
    assert m.rouge_l("The cat sat.", ["the cat sat on the mat"]) == pytest.approx(2 / 3)
    # Best of several references; none gives 0.
    assert m.rouge_l("The cat sat.", ["dogs bark", "The cat sat"]) == pytest.approx(1.0)
    assert m.rouge_l("The cat sat.", []) == 0.0
    assert m.rouge_l("", ["the cat"]) == 0.0
    # Order matters (subsequence, not bag of words): [c, b, a] vs [a, b, c]: LCS 1, F = 1/3.
    assert m.rouge_l("c b a", ["a b c"]) == pytest.approx(1 / 3)


def test_rouge_l_fallback_is_what_runs_without_the_package(monkeypatch):
    monkeypatch.setattr(m, "_rouge_scorer", lambda: None)
    assert m.rouge_l("The cat sat.", ["the cat sat on the mat"]) == pytest.approx(2 / 3)
