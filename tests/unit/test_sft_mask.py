"""SFT loss masks, worked out by hand with the WordLevel test tokenizer: prompt, every passage span, EOS, weights."""

from __future__ import annotations

import json

import pytest

from selfrag.io import InputError
from selfrag.training.sft_data import (
    load_sft_dataset,
    strip_reflection_example,
    supervised_target_mask,
    tokenize_example,
)
from tests.helpers import tokenizer_with_reflection_tokens

INSTRUCTION = "who is alice ?"
#: official_prompt(INSTRUCTION) as WordLevel tokens: BOS, then `### Instruction : who is alice ? ### Response :`.
PROMPT = ["<s>", "###", "Instruction", ":", "who", "is", "alice", "?", "###", "Response", ":"]
X = None  # a position whose label is -100

ONE_SPAN = (
    "[Retrieval]<paragraph>alice is a singer</paragraph>[Relevant]alice is a singer .[Fully supported][Utility:5]"
)
ONE_SPAN_LABELS = [
    "[Retrieval]", "<paragraph>", X, X, X, X, "</paragraph>", "[Relevant]", "alice", "is", "a", "singer", ".",
    "[Fully supported]", "[Utility:5]", "</s>",
]
TWO_SPANS = (
    "[Retrieval]<paragraph>alice</paragraph>[Relevant]alice is a singer .[Fully supported]"
    "[Retrieval]<paragraph>paris is a city</paragraph>[Irrelevant]she is from paris .[Partially supported][Utility:4]"
)
TWO_SPANS_LABELS = [
    "[Retrieval]", "<paragraph>", X, "</paragraph>", "[Relevant]", "alice", "is", "a", "singer", ".",
    "[Fully supported]", "[Retrieval]", "<paragraph>", X, X, X, X, "</paragraph>", "[Irrelevant]", "she", "is",
    "from", "paris", ".", "[Partially supported]", "[Utility:4]", "</s>",
]
THREE_SPANS = (
    "[Retrieval]<paragraph>alice</paragraph>[Relevant]alice is a singer .[Fully supported]"
    "[Retrieval]<paragraph>paris</paragraph>[Irrelevant]she is from paris .[No support / Contradictory]"
    "[Retrieval]<paragraph>bob is an actor</paragraph>[Relevant]yes .[Partially supported][Utility:3]"
)
THREE_SPANS_LABELS = [
    "[Retrieval]", "<paragraph>", X, "</paragraph>", "[Relevant]", "alice", "is", "a", "singer", ".",
    "[Fully supported]", "[Retrieval]", "<paragraph>", X, "</paragraph>", "[Irrelevant]", "she", "is", "from",
    "paris", ".", "[No support / Contradictory]", "[Retrieval]", "<paragraph>", X, X, X, X, "</paragraph>",
    "[Relevant]", "yes", ".", "[Partially supported]", "[Utility:3]", "</s>",
]
REFLECTION = {"[Retrieval]", "<paragraph>", "</paragraph>", "[Relevant]", "[Irrelevant]", "[Fully supported]",
              "[Partially supported]", "[No support / Contradictory]", "[Utility:3]", "[Utility:4]", "[Utility:5]"}


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_with_reflection_tokens()


def _ids(tokenizer, tokens):
    return [-100 if t is None else tokenizer.convert_tokens_to_ids(t) for t in tokens]


@pytest.mark.parametrize(
    ("output", "target_labels"),
    [(ONE_SPAN, ONE_SPAN_LABELS), (TWO_SPANS, TWO_SPANS_LABELS), (THREE_SPANS, THREE_SPANS_LABELS)],
    ids=["one-span", "two-spans", "three-spans"],
)
def test_each_passage_span_is_masked_on_its_own(tokenizer, output, target_labels):
    example = tokenize_example(tokenizer, INSTRUCTION, "", output, max_length=512)
    assert example["input_ids"][: len(PROMPT)] == _ids(tokenizer, PROMPT)
    assert example["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, target_labels)
    # Unmasked labels are the input ids themselves (unshifted), and the first target token is supervised.
    assert all(lab in (-100, tok) for lab, tok in zip(example["labels"], example["input_ids"]))
    assert example["labels"][len(PROMPT)] != -100
    assert example["labels"][-1] == tokenizer.eos_token_id
    assert "loss_weights" not in example


def test_prompt_with_input_block_is_fully_masked(tokenizer):
    example = tokenize_example(tokenizer, INSTRUCTION, "bob", "yes .", max_length=512)
    prompt = ["<s>", "###", "Instruction", ":", "who", "is", "alice", "?", "###", "Input", ":", "bob", "###",
              "Response", ":"]
    assert example["input_ids"] == _ids(tokenizer, prompt + ["yes", ".", "</s>"])
    assert example["labels"] == [-100] * len(prompt) + _ids(tokenizer, ["yes", ".", "</s>"])


def test_unterminated_span_is_masked_to_the_end(tokenizer):
    example = tokenize_example(tokenizer, INSTRUCTION, "", "[Retrieval]<paragraph>alice is a singer", max_length=512)
    assert example["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, ["[Retrieval]", "<paragraph>", X, X, X, X, X])


def test_supervised_target_mask_directly():
    assert supervised_target_mask([5, 1, 7, 7, 2, 8, 1, 9, 2, 3], open_id=1, close_id=2) == [
        True, True, False, False, True, True, True, False, True, True]
    assert supervised_target_mask([5, 6], open_id=None, close_id=None) == [True, True]


def test_close_marker_can_be_masked_with_the_passage(tokenizer):
    """supervise_close=False: each `</paragraph>` joins its span's mask; the IsRel token after it stays trained."""
    example = tokenize_example(tokenizer, INSTRUCTION, "", TWO_SPANS, max_length=512, supervise_close=False)
    target = [X if t == "</paragraph>" else t for t in TWO_SPANS_LABELS]
    assert example["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, target)
    assert supervised_target_mask([5, 1, 7, 7, 2, 8, 1, 9, 2, 3], open_id=1, close_id=2, supervise_close=False) == [
        True, True, False, False, False, True, True, False, False, True]


def test_answers_after_irrelevant_can_be_masked(tokenizer):
    """supervise_irrelevant_answers=False: the text after each `[Irrelevant]` is masked up to the next reflection token;
    `[Irrelevant]`, that token and everything after it stay trained (answers after `[Relevant]` too)."""
    example = tokenize_example(tokenizer, INSTRUCTION, "", THREE_SPANS, max_length=512,
                               supervise_irrelevant_answers=False)
    target = list(THREE_SPANS_LABELS)
    start = target.index("[Irrelevant]") + 1
    target[start:target.index("[No support / Contradictory]")] = [X] * 5  # "she is from paris ."
    assert example["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, target)
    # Hand-worked on raw ids (1/2 = <paragraph>/</paragraph>, 4 = [Irrelevant], 6 and 9 = other reflection tokens):
    # the answer 7 7 after 4 is masked up to 6; an answer running to the end of the output is masked to the end;
    # a new passage after [Irrelevant] ends the masked run and is masked as a passage.
    kwargs = {"open_id": 1, "close_id": 2, "irrelevant_id": 4, "reflection_ids": frozenset({4, 6, 9})}
    assert supervised_target_mask([1, 5, 2, 4, 7, 7, 6, 8, 9], **kwargs) == [
        True, False, True, True, False, False, True, True, True]
    assert supervised_target_mask([1, 5, 2, 4, 7, 7], **kwargs) == [True, False, True, True, False, False]
    assert supervised_target_mask([4, 7, 1, 5, 2, 8], **kwargs) == [True, False, True, False, True, True]
    # Without irrelevant_id nothing changes (the default: the released data's choice).
    assert supervised_target_mask([1, 5, 2, 4, 7, 7, 6], open_id=1, close_id=2) == [
        True, False, True, True, True, True, True]


def test_loss_weights_on_reflection_tokens(tokenizer):
    example = tokenize_example(tokenizer, INSTRUCTION, "", TWO_SPANS, max_length=512, reflection_weight=2.0)
    expected = [0.0] * len(PROMPT) + [0.0 if t is None else (2.0 if t in REFLECTION else 1.0) for t in TWO_SPANS_LABELS]
    assert example["loss_weights"] == expected
    assert example["loss_weights"][-1] == 1.0  # EOS is an ordinary supervised token


def test_loss_weights_on_named_token_groups_only(tokenizer, tmp_path):
    """`{"isrel": 4, "issup": 2}` weights `[Relevant]`/`[Irrelevant]` 4 and the IsSup tokens 2; `[Retrieval]`, the
    passage markup and `[Utility:4]` stay at 1, as the answer words do."""
    example = tokenize_example(tokenizer, INSTRUCTION, "", TWO_SPANS, max_length=512,
                               reflection_weight={"isrel": 4, "issup": 2.0})
    by_token = {"[Relevant]": 4.0, "[Irrelevant]": 4.0, "[Fully supported]": 2.0, "[Partially supported]": 2.0}
    expected = [0.0] * len(PROMPT) + [0.0 if t is None else by_token.get(t, 1.0) for t in TWO_SPANS_LABELS]
    assert example["loss_weights"] == expected
    # The dataset carries the same weights, and the row's weight_sum counts them (position 0 is never predicted).
    data = _write(tmp_path / "two.jsonl", [{"instruction": INSTRUCTION, "input": "", "output": TWO_SPANS}])
    dataset, _ = load_sft_dataset(data, tokenizer, max_length=512, reflection_weight={"issup": 2.0, "isrel": 4})
    assert dataset[0]["loss_weights"] == expected
    assert dataset[0]["weight_sum"] == sum(expected[1:])
    for bad, key in (({"isrel": 4, "relevance": 2}, "unknown token groups \\['relevance'\\]"),
                     ({"isrel": -1}, "data.reflection_weight.isrel=-1"), ("heavy", "data.reflection_weight='heavy'")):
        with pytest.raises(InputError, match=key):
            load_sft_dataset(data, tokenizer, max_length=512, reflection_weight=bad)


JUDGEMENT = "[Retrieval]<paragraph>paris is a city</paragraph>[Irrelevant]"


def test_a_judgement_only_row_trains_its_named_groups_alone_and_no_eos(tokenizer, tmp_path):
    """`supervise: ["isrel"]`: only `[Irrelevant]` is a label; `[Retrieval]`, the markup and the passage are not,
    and no EOS follows (the row must not teach stopping after the judgement)."""
    example = tokenize_example(tokenizer, INSTRUCTION, "", JUDGEMENT, max_length=512, supervise=["isrel"])
    assert example["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, [X, X, X, X, X, X, X, "[Irrelevant]"])
    assert example["input_ids"][-1] == tokenizer.convert_tokens_to_ids("[Irrelevant]")
    # a whole row keeps its usual labels when it names the groups of all its reflection tokens
    both = tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=512, supervise=["isrel", "issup"])
    assert both["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, [X, X, X, X, X, X, X, "[Relevant]", X, X, X, X,
                                                                      X, "[Fully supported]", X])
    data = _write(tmp_path / "mixed.jsonl", [
        {"instruction": INSTRUCTION, "input": "", "output": ONE_SPAN},
        {"instruction": INSTRUCTION, "input": "", "output": JUDGEMENT, "supervise": ["isrel"]},
    ])
    dataset, stats = load_sft_dataset(data, tokenizer, max_length=512, reflection_weight={"isrel": 4})
    assert dataset[0]["labels"] == tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=512)["labels"]
    assert dataset[1]["labels"] == example["labels"] and dataset[1]["n_supervised"] == 1
    assert dataset[1]["loss_weights"][-1] == 4.0 and dataset[1]["weight_sum"] == 4.0
    assert stats.supervised_tokens == len([t for t in ONE_SPAN_LABELS if t is not None]) + 1
    for bad in ("isrel", [], ["relevance"], [4]):
        path = _write(tmp_path / "bad_supervise.jsonl", [
            {"instruction": INSTRUCTION, "output": ONE_SPAN},
            {"instruction": INSTRUCTION, "output": JUDGEMENT, "supervise": bad}])
        with pytest.raises(InputError, match=r"bad_supervise\.jsonl:2: 'supervise' must be a non-empty list"):
            load_sft_dataset(path, tokenizer, max_length=512)


def test_overflow_truncate_and_drop(tokenizer):
    cut = tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=len(PROMPT) + 4)
    assert cut["labels"] == [-100] * len(PROMPT) + _ids(tokenizer, ["[Retrieval]", "<paragraph>", X, X])
    assert len(cut["input_ids"]) == len(PROMPT) + 4
    assert tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=len(PROMPT) + 4, overflow="drop") is None
    # Truncation that leaves only prompt tokens leaves nothing to learn.
    assert tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=len(PROMPT)) is None
    fits = tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=len(PROMPT) + 16, overflow="drop")
    assert fits is not None and len(fits["input_ids"]) == len(PROMPT) + 16
    with pytest.raises(InputError, match="overflow"):
        tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=64, overflow="wrap")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_sft_dataset_counts_and_caches(tokenizer, tmp_path):
    long_instruction = " ".join(["alice"] * 40)
    data = _write(tmp_path / "train.jsonl", [
        {"instruction": INSTRUCTION, "input": "", "output": ONE_SPAN, "id": "a", "dataset_name": "x"},
        {"instruction": INSTRUCTION, "output": TWO_SPANS},  # no input key: the released data sometimes omits it
        {"instruction": long_instruction, "input": "", "output": "yes ."},  # prompt alone exceeds max_length
        {"instruction": INSTRUCTION, "input": "", "output": "yes ."},
    ])
    dataset, stats = load_sft_dataset(data, tokenizer, max_length=24, overflow="truncate",
                                      cache_dir=tmp_path / "cache")
    # ONE_SPAN (27 tokens) and TWO_SPANS (38) are cut to 24; the long prompt is dropped; "yes ." (14) fits.
    assert (stats.rows, stats.kept, stats.truncated, stats.dropped_too_long, stats.dropped_unsupervised) == (
        4, 3, 2, 1, 0)
    assert len(dataset) == 3
    assert stats.total_tokens == 24 + 24 + 14
    assert stats.supervised_tokens == sum(sum(lab != -100 for lab in row) for row in dataset["labels"])
    assert stats.supervised_tokens == (24 - 11 - 4) + (24 - 11 - 1) + 3
    assert list(dataset["length"]) == [24, 24, 14]
    assert dataset[0]["labels"] == tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=24)["labels"]

    dropped, drop_stats = load_sft_dataset(data, tokenizer, max_length=24, overflow="drop")
    assert (drop_stats.kept, drop_stats.truncated, drop_stats.dropped_too_long) == (1, 0, 3)
    assert len(dropped) == 1

    again, again_stats = load_sft_dataset(data, tokenizer, max_length=24, overflow="truncate",
                                          cache_dir=tmp_path / "cache")
    assert again_stats == stats and again["input_ids"] == dataset["input_ids"]
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1
    weighted, _ = load_sft_dataset(data, tokenizer, max_length=24, reflection_weight=3.0, cache_dir=tmp_path / "cache")
    assert "loss_weights" in weighted.column_names
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2
    # Masking `</paragraph>` is its own cache entry; one close marker survives the cut in each of the two span rows.
    closed, closed_stats = load_sft_dataset(data, tokenizer, max_length=24, supervise_close=False,
                                            cache_dir=tmp_path / "cache")
    assert closed_stats.supervised_tokens == stats.supervised_tokens - 2
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 3
    # Masking the answers after `[Irrelevant]` is another entry (at a limit that keeps TWO_SPANS whole): it loses the
    # five tokens of "she is from paris ." and nothing else.
    whole, whole_stats = load_sft_dataset(data, tokenizer, max_length=64, cache_dir=tmp_path / "cache")
    masked, masked_stats = load_sft_dataset(data, tokenizer, max_length=64, supervise_irrelevant_answers=False,
                                            cache_dir=tmp_path / "cache")
    assert masked_stats.supervised_tokens == whole_stats.supervised_tokens - 5
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 5


def test_missing_key_names_file_and_line(tokenizer, tmp_path):
    data = _write(tmp_path / "bad.jsonl", [{"instruction": INSTRUCTION, "output": "yes ."},
                                           {"instruction": INSTRUCTION, "input": ""}])
    with pytest.raises(InputError, match=r"bad\.jsonl:2: missing key 'output'"):
        load_sft_dataset(data, tokenizer, max_length=64)
    data = _write(tmp_path / "bad2.jsonl", [{"output": "yes ."}])
    with pytest.raises(InputError, match=r"bad2\.jsonl:1: missing key 'instruction'"):
        load_sft_dataset([data], tokenizer, max_length=64)


def test_passages_without_reflection_tokens_in_the_tokenizer_are_refused(tmp_path):
    from tests.helpers import build_tokenizer

    data = _write(tmp_path / "gen.jsonl", [{"instruction": INSTRUCTION, "output": "yes ."},
                                           {"instruction": INSTRUCTION, "output": ONE_SPAN}])
    with pytest.raises(InputError, match=r"gen\.jsonl:2: .*load_training_tokenizer"):
        load_sft_dataset(data, build_tokenizer(), max_length=64)


def test_strip_reflection_example():
    row = {"instruction": INSTRUCTION, "input": "", "output": TWO_SPANS, "id": "q1"}
    stripped = strip_reflection_example(row)
    assert stripped == {**row, "output": "alice is a singer . she is from paris ."}
    assert row["output"] == TWO_SPANS  # the input row is left alone


def test_cache_key_ignores_the_tokenizers_padding_state(tmp_path):
    """A padded call leaves padding/truncation set on a fast tokenizer; the same data must still hit the cache."""
    tokenizer = tokenizer_with_reflection_tokens()  # its own: the call below changes the tokenizer's state
    data = _write(tmp_path / "train.jsonl", [{"instruction": INSTRUCTION, "input": "", "output": "yes ."}])
    load_sft_dataset(data, tokenizer, max_length=24, cache_dir=tmp_path / "cache")
    tokenizer(["alice", "alice is"], padding=True, truncation=True, max_length=8)
    assert tokenizer.backend_tokenizer.padding is not None
    load_sft_dataset(data, tokenizer, max_length=24, cache_dir=tmp_path / "cache")
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1


def test_chat_prompt_style_masks_the_template_and_matches_the_decoder_prompt(tokenizer):
    from selfrag.decoding.factory import prompt_formatter

    chat = tokenizer_with_reflection_tokens()
    # a template made of words the WordLevel vocabulary knows; no BOS: a chat template carries its own markers
    chat.chat_template = ("{% for m in messages %}### Instruction : {{ m['content'] }}{% endfor %}"
                          "{% if add_generation_prompt %} ### Response :{% endif %}")
    example = tokenize_example(chat, INSTRUCTION, "", ONE_SPAN, max_length=64, prompt_style="chat")
    assert example["input_ids"][: len(PROMPT) - 1] == _ids(chat, PROMPT[1:])
    assert example["labels"] == [-100] * (len(PROMPT) - 1) + _ids(chat, ONE_SPAN_LABELS)
    # the decoder renders the same prompt through the same function and encodes it the same way
    formatter = prompt_formatter("chat", chat)
    decoder_ids = chat(formatter(INSTRUCTION), add_special_tokens=False)["input_ids"]
    assert decoder_ids == example["input_ids"][: len(PROMPT) - 1]
    with pytest.raises(InputError, match="needs a tokenizer with a chat template"):
        tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=64, prompt_style="chat")
    with pytest.raises(InputError, match="prompt style 'markdown'"):
        tokenize_example(tokenizer, INSTRUCTION, "", ONE_SPAN, max_length=64, prompt_style="markdown")
