import pytest

from selfrag.prompts import PromptFormatter, format_instruction, official_prompt, passage_block
from selfrag.types import Passage


def test_official_prompt_is_byte_exact():
    assert official_prompt("Who is X?") == "### Instruction:\nWho is X?\n\n### Response:\n"
    assert official_prompt("Do it", "data") == "### Instruction:\nDo it\n\n### Input:\ndata\n\n### Response:\n"


def test_passage_block():
    assert passage_block(Passage("1", "Paris", "Paris is big.")) == (
        "[Retrieval]<paragraph>Paris\nParis is big.</paragraph>"
    )


def test_task_instructions_follow_the_reference_separators():
    assert format_instruction("popqa", "Who?") == "Who?"
    arc = format_instruction("arc_challenge", "Which?", [("A", "x"), ("B", "y")])
    assert arc == ("Given four answer candidates, A, B, C and D, choose the best answer choice.\n\n### Input:\n"
                   "Which?\nA: x\nB: y")
    assert format_instruction("pubhealth", "Claim.").endswith("otherwise say false.\n\n## Input:\n\nClaim.")
    assert format_instruction("asqa", "Q?").endswith("correct answers.## Input:\n\nQ?")
    with pytest.raises(ValueError, match="unknown task 'nq'"):
        format_instruction("nq", "Q?")


def test_chat_style_renders_through_the_template_and_needs_one():
    fmt = PromptFormatter("chat", render_chat=lambda m: f"<user>{m[0]['content']}</user><assistant>")
    assert fmt("Hi") == "<user>Hi</user><assistant>"
    with pytest.raises(ValueError, match="prompt=chat needs a tokenizer with a chat template"):
        PromptFormatter("chat")
    with pytest.raises(ValueError, match="prompt must be one of selfrag, chat"):
        PromptFormatter("alpaca")
