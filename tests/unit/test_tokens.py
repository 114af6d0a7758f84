import pytest

from selfrag import tokens as T


def test_exactly_the_papers_fifteen_tokens_in_order():
    assert T.REFLECTION_TOKENS == (
        "[No Retrieval]", "[Retrieval]", "[Continue to Use Evidence]", "[Irrelevant]", "[Relevant]",
        "<paragraph>", "</paragraph>", "[Utility:1]", "[Utility:2]", "[Utility:3]", "[Utility:4]", "[Utility:5]",
        "[Fully supported]", "[Partially supported]", "[No support / Contradictory]",
    )


def test_strip_removes_tokens_passages_and_end_markers_and_fixes_glued_sentences():
    raw = ("[Retrieval]<paragraph>Paris\nParis is the capital.</paragraph>[Relevant]Paris is the capital."
           "[Fully supported][Continue to Use Evidence]It is large.[Utility:5]</s>")
    assert T.strip_reflection(raw) == "Paris is the capital. It is large."


def test_strip_drops_an_unterminated_passage():
    assert T.strip_reflection("Yes.[Retrieval]<paragraph>cut off mid pass") == "Yes."


def test_find_and_first_of_ignore_passage_contents():
    text = "[Retrieval]<paragraph>x [Utility:1] y</paragraph>[Irrelevant]a[Utility:3]"
    assert T.find_tokens(text) == ["[Retrieval]", "<paragraph>", "</paragraph>", "[Irrelevant]", "[Utility:3]"]
    assert T.first_of(text, T.ISUSE_GROUP) == "[Utility:3]"
    assert T.first_of(text, T.ISSUP_GROUP) is None


def test_utility_value():
    assert T.utility_value("[Utility:4]") == 4
    with pytest.raises(ValueError, match="not a utility token"):
        T.utility_value("[Relevant]")
