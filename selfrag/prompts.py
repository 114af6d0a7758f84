"""Prompt formats: the official Self-RAG format, a chat-template style for instruct bases, and task instructions.

The official format is what the released checkpoints were trained on and must stay byte-identical:
`### Instruction:\\n{instruction}\\n\\n### Response:\\n`, with passages inserted after it as
`[Retrieval]<paragraph>{title}\\n{text}</paragraph>`. The way each task joins its instruction to the question also
follows the reference inference code (it differs between tasks; see `format_instruction`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from selfrag import tokens as T
from selfrag.types import Candidate, Passage

PROMPT_STYLES = ("selfrag", "chat")

#: Task instructions, keyed by task name. PopQA and TriviaQA take the bare question; Bio takes "Tell me a bio about X."
TASK_INSTRUCTIONS: dict[str, str | None] = {
    "popqa": None,
    "triviaqa": None,
    "arc_challenge": "Given four answer candidates, A, B, C and D, choose the best answer choice.",
    "pubhealth": "Is the following statement correct or not? Say true if it's correct; otherwise say false.",
    "asqa": (
        "Answer the following question. The question may be ambiguous and have multiple correct answers, "
        "and in that case, you have to provide a long-form answer including all correct answers."
    ),
    "bio": None,
}
TASKS = tuple(TASK_INSTRUCTIONS)


def format_instruction(task: str, question: str, choices: Sequence[tuple[str, str]] = ()) -> str:
    """Build the text of the instruction slot for `task`.

    Args:
        task: one of `TASKS`.
        question: the question, claim, or (bio) the topic sentence.
        choices: (label, text) pairs for multiple choice, e.g. [("A", "Paris"), ...].

    The separators reproduce the reference inference code per task: ARC uses `\\n\\n### Input:\\n` and lists the
    choices as `A: text` lines; PubHealth uses `\\n\\n## Input:\\n\\n`; ASQA uses `## Input:\\n\\n` right after the
    instruction, as in the training data.
    """
    if task not in TASK_INSTRUCTIONS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    instruction = TASK_INSTRUCTIONS[task]
    if task == "arc_challenge":
        lines = "".join(f"\n{label}: {text}" for label, text in choices)
        return f"{instruction}\n\n### Input:\n{question}{lines}"
    if task == "pubhealth":
        return f"{instruction}\n\n## Input:\n\n{question}"
    if task == "asqa":
        return f"{instruction}## Input:\n\n{question}"
    return question


def official_prompt(instruction: str, input_text: str = "") -> str:
    """The Self-RAG training/inference prompt (with an `### Input:` block when `input_text` is non-empty)."""
    if input_text:
        return f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def chat_renderer(tokenizer: Any) -> Callable[[list[dict[str, str]]], str] | None:
    """The tokenizer's chat template as a `render_chat` function (the generation prompt included), or None when it
    has no template. Training (`selfrag.training.sft_data`) and decoding render chat prompts through this one
    function, so a model trained with `prompt=chat` is decoded with byte-identical prompts."""
    if not getattr(tokenizer, "chat_template", None):
        return None

    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    return render


def user_content(instruction: str, input_text: str = "") -> str:
    """The user turn of a chat prompt: the instruction, then the input (if any) after a blank line."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def passage_block(passage: Passage) -> str:
    """A retrieved passage as the generator sees it: `[Retrieval]<paragraph>{title}\\n{text}</paragraph>`."""
    return f"{T.RETRIEVAL}{T.PARAGRAPH_OPEN}{passage.title}\n{passage.text}{T.PARAGRAPH_CLOSE}"


def passages_text(passages: Sequence[Passage]) -> str:
    """Passages as the standard-RAG prompt shows them: `[1] {title}\\n{text}` blocks joined by newlines."""
    return "\n".join(f"[{i}] {p.title}\n{p.text}" for i, p in enumerate(passages, start=1))


def rag_prompt(formatter: PromptFormatter, instruction: str, passages: Sequence[Passage]) -> str:
    """The standard-RAG prompt text: the passages (`passages_text`) before the instruction, the bare prompt when
    there are none.

    - `prompt=selfrag`: `### Paragraph:\\n[1] {title}\\n{text}\\n[2] ...\\n\\n### Instruction:\\n{instruction}\\n\\n`
      `### Response:\\n` (the reference `prompt_no_input_retrieval` without its Alpaca preamble, which the Self-RAG
      format does not have either);
    - `prompt=chat`: one user turn `[1] {title}\\n{text}\\n...\\n\\n{instruction}` through the model's chat template.

    What `method=standard_rag` shows a model, and what a plain reader (`decoding.reader=base`) answers one passage
    from.
    """
    if not passages:
        return formatter(instruction)
    block = passages_text(passages)
    if formatter.style == "chat":
        return formatter(f"{block}\n\n{instruction}")
    return f"### Paragraph:\n{block}\n\n### Instruction:\n{instruction}\n\n### Response:\n"


def response_text(segments: Iterable[Candidate]) -> str:
    """The raw response with its tokens: each segment's passage block (or `[No Retrieval]`), then its text."""
    return "".join((passage_block(c.passage) if c.passage else T.NO_RETRIEVAL) + c.text for c in segments)


@dataclass(frozen=True)
class PromptFormatter:
    """Turns an instruction into the prompt text that precedes the response.

    `style="selfrag"` is the official format. `style="chat"` renders one user turn through `render_chat` (normally a
    tokenizer's `apply_chat_template(..., add_generation_prompt=True, tokenize=False)`), so an instruct base sees its
    own template; reflection tokens and passages are then appended after the assistant header exactly as in the
    official format.
    """

    style: str = "selfrag"
    render_chat: Callable[[list[dict[str, str]]], str] | None = None

    def __post_init__(self) -> None:
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"prompt must be one of {', '.join(PROMPT_STYLES)}, got {self.style!r}")
        if self.style == "chat" and self.render_chat is None:
            raise ValueError(
                "prompt=chat needs a tokenizer with a chat template; this model has none, use prompt=selfrag"
            )

    def __call__(self, instruction: str) -> str:
        if self.style == "chat":
            assert self.render_chat is not None
            return self.render_chat([{"role": "user", "content": instruction}])
        return official_prompt(instruction)
