"""The no-retrieval and standard-RAG baselines on a scripted backend: prompt formats, passages, row fields."""

from eval.baselines import Baseline
from selfrag.decoding.reader import PlainReader
from selfrag.prompts import PromptFormatter, rag_prompt
from selfrag.types import Passage, Query
from tests.helpers import ScriptedBackend, tokenizer_with_reflection_tokens

ALICE = Passage("a1", "alice", "alice is a singer .")
BOB = Passage("b1", "bob", "bob was born in london .")


def test_standard_rag_prompt_formats():
    official = rag_prompt(PromptFormatter(), "who is alice ?", [ALICE, BOB])
    assert official == ("### Paragraph:\n[1] alice\nalice is a singer .\n[2] bob\nbob was born in london .\n\n"
                        "### Instruction:\nwho is alice ?\n\n### Response:\n")
    chat = PromptFormatter(style="chat", render_chat=lambda m: f"<user>{m[0]['content']}<assistant>")
    expected = "<user>[1] alice\nalice is a singer .\n\nwho is alice ?<assistant>"
    assert rag_prompt(chat, "who is alice ?", [ALICE]) == expected
    assert rag_prompt(PromptFormatter(), "who is alice ?", []) == "### Instruction:\nwho is alice ?\n\n### Response:\n"


def _backend(tokenizer):
    return ScriptedBackend(tokenizer, continue_fn=lambda text: "[No Retrieval]paris is the capital .</s> never",
                           probs_fn=lambda text, group: [1 / len(group)] * len(group))


def _baseline(method, backend, tokenizer, *, max_new_tokens=100, context_limit=None, ndocs=5):
    reader = PlainReader(backend, tokenizer, prompt=PromptFormatter(), max_new_tokens=max_new_tokens,
                         context_limit=context_limit, label=f"{method} prompt")
    return Baseline(method, reader, ndocs=ndocs)


def test_baselines_answer_in_one_batched_call_with_the_predictions_fields():
    tokenizer = tokenizer_with_reflection_tokens()
    queries = [Query("1", "who is alice ?", "who is alice ?", passages=(ALICE, BOB)),
               Query("2", "who is carol ?", "who is carol ?")]
    backend = _backend(tokenizer)
    rows = _baseline("standard_rag", backend, tokenizer, max_new_tokens=20, ndocs=1).predict(queries)
    assert len(backend.generate_calls) == 1
    first_prompt, second_prompt = backend.generate_calls[0]
    assert "alice is a singer" in first_prompt and "bob" not in first_prompt  # ndocs=1: top passage only
    assert "singer" not in second_prompt  # no passages: the bare prompt
    assert rows[0] == {"id": "1", "question": "who is alice ?", "answer": "paris is the capital .",
                       "output": "[No Retrieval] paris is the capital .", "retrieved": True, "p_retrieve": None,
                       "options": None, "candidates": [], "segments": [],
                       "docs": [{"id": "a1", "title": "alice", "text": "alice is a singer .", "score": None}]}
    assert rows[1]["retrieved"] is False and rows[1]["docs"] == []

    backend = _backend(tokenizer)
    rows = _baseline("no_retrieval", backend, tokenizer, max_new_tokens=20).predict(queries)
    assert "singer" not in backend.generate_calls[0][0]
    assert [r["retrieved"] for r in rows] == [False, False] and rows[0]["answer"] == "paris is the capital ."


def test_a_prompt_over_the_context_is_refused_with_its_id_before_generating():
    import pytest

    from selfrag.io import InputError

    tokenizer = tokenizer_with_reflection_tokens()
    long_passage = Passage("l1", "long", "word " * 400)
    queries = [Query("short", "who is alice ?", "who is alice ?", passages=(ALICE,)),
               Query("too-long", "who is bob ?", "who is bob ?", passages=(long_passage,))]
    fits = len(_baseline("standard_rag", _backend(tokenizer), tokenizer, ndocs=1).prompt_ids(queries[0], [ALICE]))
    backend = _backend(tokenizer)
    baseline = _baseline("standard_rag", backend, tokenizer, max_new_tokens=20, ndocs=1, context_limit=fits + 20)
    with pytest.raises(InputError, match=r"question id='too-long' does not fit the model's context of \d+ tokens"):
        baseline.predict(queries)
    assert backend.generate_calls == []
    assert len(baseline.predict(queries[:1])) == 1  # exactly at the limit: decoded
