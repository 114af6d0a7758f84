"""SFT examples with loss masks: released-format jsonl -> token ids + labels (+ per-token loss weights), cached.

One example is the prompt followed by the target `output` + EOS. The prompt is the official one
(`official_prompt(instruction, input)`, `prompt_style="selfrag"`) or the base's own chat template with the
instruction (and input) as the user turn (`prompt_style="chat"`, rendered by `selfrag.prompts.chat_renderer`, as
the decoder renders it), which keeps an instruct base in the format it learned to read in.
Labels are -100 (ignored) on exactly the prompt tokens and on the *content* of every `<paragraph>...</paragraph>`
span of the target: retrieved passages are inputs the model reads, not text it should learn to write. The markup
tokens themselves, the sentences and reflection tokens between spans, and EOS stay supervised. This fixes two bugs of
the reference trainer: its prompt mask stops one token short (the last prompt token is trained on), and with several
passages it masks everything from the first `<paragraph>` to the last `</paragraph>` (issue #95).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfrag import tokens as T
from selfrag.io import InputError, iter_jsonl
from selfrag.prompts import PROMPT_STYLES, chat_renderer, official_prompt, user_content

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
OVERFLOW_MODES = ("truncate", "drop")
#: The reflection-token groups `reflection_weight` may weight one by one (`{"isrel": 4.0}`); a single number weights
#: every reflection token, the passage markup included.
WEIGHT_GROUPS: dict[str, tuple[str, ...]] = {
    "retrieve": T.RETRIEVE_GROUP_3WAY, "isrel": T.ISREL_GROUP, "issup": T.ISSUP_GROUP, "isuse": T.ISUSE_GROUP,
}

# Outcome of encoding one row; dropped rows carry empty sequences until they are filtered out.
_KEPT, _TRUNCATED, _TOO_LONG, _UNSUPERVISED = "kept", "truncated", "too_long", "unsupervised"

#: Bump when the encoding below changes, so cached datasets of an older encoding are not reused.
_ENCODING_VERSION = 1


@dataclass
class SFTStats:
    """What happened to the rows of an SFT dataset.

    `kept` counts the rows in the dataset, truncated ones included (`truncated` of them were cut to `max_length`).
    `supervised_tokens` / `total_tokens` are summed over the kept rows (labels != -100 / all positions).
    """

    rows: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_unsupervised: int = 0
    supervised_tokens: int = 0
    total_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def load_training_tokenizer(base_model_dir: str | os.PathLike[str]) -> Any:
    """The base's tokenizer with the 15 reflection tokens added (if missing) and a pad token set.

    The tokens are added with the same call and in the same order as `selfrag.models.reflection.add_reflection_tokens`,
    so the ids match those the trainer gives the model; tokenise training data with this tokenizer.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    new = [t for t in T.REFLECTION_TOKENS if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _special_ids(tokenizer: Any) -> tuple[int | None, int | None, frozenset[int], int | None]:
    """(<paragraph> id, </paragraph> id, ids of all reflection tokens the tokenizer has, [Irrelevant] id); None where
    absent."""
    vocab = tokenizer.get_vocab()
    reflection = frozenset(vocab[t] for t in T.REFLECTION_TOKENS if t in vocab)
    return vocab.get(T.PARAGRAPH_OPEN), vocab.get(T.PARAGRAPH_CLOSE), reflection, vocab.get(T.IRRELEVANT)


#: Optional row key: the token groups (of `WEIGHT_GROUPS`) that alone are trained on in that row, e.g.
#: `"supervise": ["isrel"]` for a judgement-only row `[Retrieval]<paragraph>...</paragraph>[Irrelevant]` that teaches
#: the IsRel token and nothing after it (no EOS is appended to such a row, so it never teaches stopping there).
SUPERVISE_KEY = "supervise"


def supervised_groups(value: Any, where: str) -> tuple[str, ...] | None:
    """A row's `supervise` value checked: None (the whole output is trained on, as usual) or a non-empty list of
    `WEIGHT_GROUPS` names.

    Raises:
        InputError: anything else (the message names `where`, e.g. file:line, and the key).
    """
    if value is None:
        return None
    if (not isinstance(value, list) or not value or not all(isinstance(g, str) for g in value)
            or any(g not in WEIGHT_GROUPS for g in value)):
        raise InputError(f"{where}: {SUPERVISE_KEY!r} must be a non-empty list of token groups from "
                         f"{', '.join(WEIGHT_GROUPS)} (e.g. [\"isrel\"]), got {value!r}; leave it out to train on "
                         "the whole output")
    return tuple(value)


def _group_ids(vocab: Mapping[str, int], groups: Sequence[str] | None) -> frozenset[int] | None:
    """The token ids of `groups` (None: no restriction)."""
    return frozenset(vocab[t] for g in groups for t in WEIGHT_GROUPS[g] if t in vocab) if groups else None


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InputError(f"{where}={value!r}: a loss weight must be a number >= 0")
    return float(value)


def reflection_weight_tokens(reflection_weight: float | Mapping[str, float] | None) -> dict[str, float] | None:
    """Loss weight per reflection token for `reflection_weight` (None: no weights): a number weights every reflection
    token; a mapping weights the tokens of the named `WEIGHT_GROUPS` only (e.g. `{"isrel": 4}`: the IsRel positions,
    leaving the utility token, which a small model learns to write in place of an answer when it is up-weighted, at 1).

    Raises:
        InputError: an unknown group name or a weight that is not a number >= 0 (the message names the key).
    """
    if reflection_weight is None:
        return None
    if isinstance(reflection_weight, Mapping):
        unknown = sorted(str(g) for g in reflection_weight if g not in WEIGHT_GROUPS)
        if unknown:
            raise InputError(f"data.reflection_weight names unknown token groups {unknown}; use some of "
                             f"{', '.join(WEIGHT_GROUPS)} (e.g. {{isrel: 4}}), or one number for every reflection "
                             "token")
        return {t: _weight(w, f"data.reflection_weight.{g}") for g, w in reflection_weight.items()
                for t in WEIGHT_GROUPS[g]}
    return dict.fromkeys(T.REFLECTION_TOKENS, _weight(reflection_weight, "data.reflection_weight"))


def reflection_weight_ids(
    tokenizer: Any, reflection_weight: float | Mapping[str, float] | None
) -> dict[int, float] | None:
    """`reflection_weight_tokens` by the tokenizer's ids (tokens it lacks are left out)."""
    tokens = reflection_weight_tokens(reflection_weight)
    if tokens is None:
        return None
    vocab = tokenizer.get_vocab()
    return {vocab[t]: w for t, w in tokens.items() if t in vocab}


def prompt_text(tokenizer: Any, style: str, instruction: str, input_text: str = "") -> str:
    """The prompt of one example in `style` ("selfrag" or "chat"; see the module docstring)."""
    if style == "selfrag":
        return official_prompt(instruction, input_text)
    if style != "chat":
        raise InputError(f"prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    render = chat_renderer(tokenizer)
    if render is None:
        raise InputError("prompt_style=chat needs a tokenizer with a chat template; this base has none, use selfrag")
    return render([{"role": "user", "content": user_content(instruction, input_text)}])


def _prompt_ids(tokenizer: Any, prompt: str, *, add_special_tokens: bool = True) -> list[int]:
    """The prompt's ids with the tokenizer's own BOS handling (as the decoder encodes it: none for a chat template,
    which carries its own markers), but never a trailing EOS a post-processor may add."""
    ids = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    eos = tokenizer.eos_token_id
    if ids and ids[-1] == eos and not prompt.endswith(tokenizer.eos_token or "\0"):
        ids.pop()
    return ids


def supervised_target_mask(
    target_ids: Sequence[int],
    open_id: int | None,
    close_id: int | None,
    *,
    supervise_close: bool = True,
    irrelevant_id: int | None = None,
    reflection_ids: frozenset[int] = frozenset(),
) -> list[bool]:
    """For each target token, whether it is trained on: False inside every `<paragraph>...</paragraph>` span.

    Each span is masked on its own, so text and tokens between spans stay supervised. `<paragraph>` stays supervised
    (the model must learn to emit it after `[Retrieval]`); `</paragraph>` is supervised when `supervise_close` (the
    reference's choice). With `supervise_close=False` it is masked too: the decoder always writes the close marker
    itself, and the only context it is ever predicted from is passage text, so a small model trained on it learns
    "after some text comes `</paragraph>`" and writes stray markers inside its answers. The token after it (IsRel)
    stays supervised either way. A span without its `</paragraph>` is masked to the end.

    With `irrelevant_id` (the `[Irrelevant]` token's id), the text after each `[Irrelevant]` up to the next reflection
    token or `<paragraph>` (`reflection_ids`; to the end where none follows) is masked as well: the passage just
    judged irrelevant cannot support that answer, so training on it teaches the model to answer from memory beside a
    passage. `[Irrelevant]` itself and the token that ends the answer stay supervised.
    """
    mask = []
    inside = False
    after_irrelevant = False
    for token in target_ids:
        if after_irrelevant:
            if token in reflection_ids or token == open_id:
                after_irrelevant = False
            else:
                mask.append(False)
                continue
        if inside:
            if token == close_id:
                inside = False
                mask.append(supervise_close)
            else:
                mask.append(False)
        else:
            mask.append(True)
            if token == open_id:
                inside = True
            elif irrelevant_id is not None and token == irrelevant_id:
                after_irrelevant = True
    return mask


def _encode(
    tokenizer: Any,
    instruction: str,
    input_text: str,
    output: str,
    *,
    max_length: int,
    overflow: str,
    weights: dict[int, float] | None,
    supervise_close: bool,
    special: tuple[int | None, int | None, frozenset[int], int | None],
    prompt_style: str = "selfrag",
    supervise_irrelevant_answers: bool = True,
    only_ids: frozenset[int] | None = None,
) -> tuple[str, dict[str, list] | None]:
    """Encode one row; return (outcome, example or None). See `tokenize_example` for the contract. With `only_ids`
    (a row's `supervise` groups as token ids) only those tokens are trained on and no EOS is appended."""
    open_id, close_id, reflection_ids, irrelevant_id = special
    if open_id is None and T.PARAGRAPH_OPEN in output:
        raise InputError(
            f"an output contains {T.PARAGRAPH_OPEN} but the tokenizer has no reflection tokens, so passages cannot be "
            "masked; tokenise with selfrag.training.sft_data.load_training_tokenizer(base_model_dir)"
        )
    if tokenizer.eos_token_id is None:
        raise InputError("the tokenizer has no EOS token; set tokenizer.eos_token before building SFT data")
    prompt = _prompt_ids(tokenizer, prompt_text(tokenizer, prompt_style, instruction, input_text),
                         add_special_tokens=prompt_style != "chat")
    # Tokenised apart from the prompt and concatenated, so the prompt/target boundary is exact by construction.
    target = list(tokenizer(output, add_special_tokens=False)["input_ids"])
    if only_ids is None:
        target.append(tokenizer.eos_token_id)
    supervised = supervised_target_mask(
        target, open_id, close_id, supervise_close=supervise_close, reflection_ids=reflection_ids,
        irrelevant_id=None if supervise_irrelevant_answers else irrelevant_id,
    )
    if only_ids is not None:
        supervised = [keep and token in only_ids for token, keep in zip(target, supervised)]
    if not any(supervised):
        return _UNSUPERVISED, None
    input_ids = prompt + target
    labels = [IGNORE_INDEX] * len(prompt) + [t if keep else IGNORE_INDEX for t, keep in zip(target, supervised)]
    outcome = _KEPT
    if len(input_ids) > max_length:
        if overflow == "drop":
            return _TOO_LONG, None
        input_ids, labels = input_ids[:max_length], labels[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            return _TOO_LONG, None
        outcome = _TRUNCATED
    example: dict[str, list] = {"input_ids": input_ids, "labels": labels}
    if weights is not None:
        example["loss_weights"] = [0.0 if label == IGNORE_INDEX else weights.get(label, 1.0) for label in labels]
    return outcome, example


def tokenize_example(
    tokenizer: Any,
    instruction: str,
    input_text: str,
    output: str,
    *,
    max_length: int,
    overflow: str = "truncate",
    reflection_weight: float | Mapping[str, float] | None = None,
    supervise_close: bool = True,
    prompt_style: str = "selfrag",
    supervise_irrelevant_answers: bool = True,
    supervise: Sequence[str] | None = None,
) -> dict[str, list] | None:
    """Token ids and labels of one SFT example, or None when it cannot be trained on.

    Returns `{"input_ids", "labels"}` (plus `"loss_weights"` when `reflection_weight` is set: its weight at the
    supervised reflection-token positions it covers (`reflection_weight_tokens`), 1.0 at other supervised positions,
    0.0 where the label is -100). Labels are the token ids themselves (not shifted); -100 marks the prompt and the
    passage contents (and each `</paragraph>` unless `supervise_close`, and each answer after `[Irrelevant]` unless
    `supervise_irrelevant_answers`; see `supervised_target_mask`). With `supervise` (a row's `supervise` key: token
    groups of `WEIGHT_GROUPS`) only the tokens of those groups are trained on, and no EOS is appended.

    Returns None for a row with no supervised token, and for a row longer than `max_length` when
    `overflow="drop"` or when truncating it (from the right) leaves nothing supervised.
    """
    if overflow not in OVERFLOW_MODES:
        raise InputError(f"overflow={overflow!r}; choose one of {', '.join(OVERFLOW_MODES)}")
    _, example = _encode(
        tokenizer, instruction, input_text, output, max_length=max_length, overflow=overflow,
        weights=reflection_weight_ids(tokenizer, reflection_weight), supervise_close=supervise_close,
        special=_special_ids(tokenizer),
        prompt_style=prompt_style, supervise_irrelevant_answers=supervise_irrelevant_answers,
        only_ids=_group_ids(tokenizer.get_vocab(), supervised_groups(
            list(supervise) if supervise is not None else None, "tokenize_example(supervise=...)")),
    )
    return example


def strip_reflection_example(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a released-format row whose `output` has no reflection tokens and no `<paragraph>` spans.

    Used to build the "no reflection tokens" baseline: same instructions, same answers, plain text only.
    """
    return {**row, "output": T.strip_reflection(row["output"])}


def _read_rows(paths: Sequence[Path], *, has_paragraph_token: bool) -> dict[str, list[str]]:
    """instruction/input/output columns of all files, checking each row (errors name file:line and the key)."""
    columns: dict[str, list[str]] = {"instruction": [], "input": [], "output": [], SUPERVISE_KEY: []}
    for path in paths:
        for line_no, row in iter_jsonl(path):
            for key in ("instruction", "output"):
                if key not in row:
                    raise InputError(
                        f"{path}:{line_no}: missing key {key!r}; SFT rows need instruction, output (and optionally "
                        "input), as in the released Self-RAG training data"
                    )
            for key in ("instruction", "input", "output"):
                value = row.get(key)
                if value is not None and not isinstance(value, str):
                    raise InputError(f"{path}:{line_no}: {key!r} must be a string, got {type(value).__name__}")
            if not has_paragraph_token and T.PARAGRAPH_OPEN in row["output"]:
                raise InputError(
                    f"{path}:{line_no}: the output contains {T.PARAGRAPH_OPEN} but the tokenizer has no reflection "
                    "tokens, so passages cannot be masked; tokenise with "
                    "selfrag.training.sft_data.load_training_tokenizer(base_model_dir)"
                )
            groups = supervised_groups(row.get(SUPERVISE_KEY), f"{path}:{line_no}")
            columns["instruction"].append(row["instruction"])
            columns["input"].append(row.get("input") or "")
            columns["output"].append(row["output"])
            columns[SUPERVISE_KEY].append(",".join(groups or ()))  # "" = the whole output
    return columns


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything about the tokenizer that changes token ids (vocab, added tokens, BOS/EOS handling)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Padding/truncation are runtime state (set by any padded call), not part of how text maps to ids: left in,
        # they would give the same data a new cache key.
        state = json.loads(backend.to_str())
        state.pop("padding", None)
        state.pop("truncation", None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:  # a slow tokenizer: fall back to datasets' generic object hash
        from datasets.fingerprint import Hasher

        digest.update(Hasher.hash(tokenizer).encode())
    digest.update(json.dumps([tokenizer.bos_token, tokenizer.eos_token, tokenizer.eos_token_id]).encode())
    return digest.hexdigest()


def _cache_key(paths: Sequence[Path], tokenizer: Any, settings: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0file\0")
    digest.update(_tokenizer_fingerprint(tokenizer).encode())
    digest.update(json.dumps({**settings, "version": _ENCODING_VERSION}, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def _encode_batch(
    batch: dict[str, list[str]],
    *,
    tokenizer: Any,
    max_length: int,
    overflow: str,
    reflection_weight: float | Mapping[str, float] | None,
    supervise_close: bool,
    prompt_style: str = "selfrag",
    supervise_irrelevant_answers: bool = True,
) -> dict[str, list]:
    """datasets.map worker: encode a batch; dropped rows keep their place (empty) so outcomes can be counted."""
    special = _special_ids(tokenizer)
    weights = reflection_weight_ids(tokenizer, reflection_weight)
    out: dict[str, list] = {
        "input_ids": [], "labels": [], "status": [], "length": [], "n_supervised": [], "weight_sum": [],
    }
    if reflection_weight is not None:
        out["loss_weights"] = []
    vocab = tokenizer.get_vocab()
    for instruction, input_text, output, groups in zip(batch["instruction"], batch["input"], batch["output"],
                                                       batch[SUPERVISE_KEY]):
        only_ids = _group_ids(vocab, groups.split(",") if groups else None)
        status, example = _encode(
            tokenizer, instruction, input_text, output, max_length=max_length, overflow=overflow,
            weights=weights, supervise_close=supervise_close, special=special, prompt_style=prompt_style,
            supervise_irrelevant_answers=supervise_irrelevant_answers, only_ids=only_ids,
        )
        example = example or {"input_ids": [], "labels": [], "loss_weights": []}
        # Position 0 is never predicted (labels are shifted in the loss), so counts start at 1.
        supervised = [label != IGNORE_INDEX for label in example["labels"][1:]]
        out["input_ids"].append(example["input_ids"])
        out["labels"].append(example["labels"])
        out["status"].append(status)
        out["length"].append(len(example["input_ids"]))
        out["n_supervised"].append(sum(supervised))
        if reflection_weight is not None:
            out["loss_weights"].append(example["loss_weights"])
            out["weight_sum"].append(float(sum(example["loss_weights"][1:])))
        else:
            out["weight_sum"].append(float(sum(supervised)))
    return out


def load_sft_dataset(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    tokenizer: Any,
    *,
    max_length: int,
    overflow: str = "truncate",
    reflection_weight: float | Mapping[str, float] | None = None,
    supervise_close: bool = True,
    prompt_style: str = "selfrag",
    supervise_irrelevant_answers: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    num_proc: int = 1,
) -> tuple[datasets.Dataset, SFTStats]:
    """Read released-format jsonl files (`{instruction, input, output, ...}`) into a tokenised, masked dataset.

    Columns: `input_ids`, `labels` (see `tokenize_example`), `loss_weights` (only with `reflection_weight`), and per
    row `length`, `n_supervised` (predicted supervised positions) and `weight_sum` (their total loss weight), which
    the trainer uses to group rows by length and to normalise the loss over a whole optimizer step. Rows that
    `tokenize_example` rejects are dropped and counted in the returned `SFTStats`.

    With `cache_dir`, the result is stored under a key of the files' contents, the tokenizer and these settings
    (written to a temporary directory and renamed), and a later call with the same inputs loads it instead of
    tokenising again.

    Raises:
        InputError: a file is missing or malformed, or a row lacks `instruction`/`output` (message names file:line).
    """
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("SFT data needs the `datasets` package: pip install datasets") from err

    if overflow not in OVERFLOW_MODES:
        raise InputError(f"overflow={overflow!r}; choose one of {', '.join(OVERFLOW_MODES)}")
    if max_length < 2:
        raise InputError(f"max_length={max_length}: must be at least 2 (a prompt token and a target token)")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no SFT data files given; pass one or more jsonl paths")
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file; check the training data path")

    reflection_weight_tokens(reflection_weight)  # a bad weight fails here, before any tokenising
    if isinstance(reflection_weight, Mapping):  # a plain, ordered dict: JSON for the cache key, picklable for workers
        reflection_weight = {str(g): float(reflection_weight[g]) for g in sorted(reflection_weight)}
    settings = {"max_length": max_length, "overflow": overflow, "reflection_weight": reflection_weight}
    if not supervise_close:  # only when set, so caches written before this option existed keep their keys
        settings["supervise_close"] = False
    if prompt_style != "selfrag":  # likewise
        settings["prompt_style"] = prompt_style
    if not supervise_irrelevant_answers:  # likewise
        settings["supervise_irrelevant_answers"] = False
    key = _cache_key(paths, tokenizer, settings)
    target = Path(cache_dir) / f"sft-{key}" if cache_dir is not None else None
    if target is not None and (target / "sft_stats.json").is_file():
        log.info("loading tokenised SFT data from %s", target)
        stats = SFTStats(**json.loads((target / "sft_stats.json").read_text()))
        return datasets.load_from_disk(str(target)), stats

    has_paragraph_token = _special_ids(tokenizer)[0] is not None
    raw = datasets.Dataset.from_dict(_read_rows(paths, has_paragraph_token=has_paragraph_token))
    features = {
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "labels": datasets.Sequence(datasets.Value("int32")),
        "status": datasets.Value("string"),
        "length": datasets.Value("int32"),
        "n_supervised": datasets.Value("int32"),
        "weight_sum": datasets.Value("float32"),
    }
    if reflection_weight is not None:
        features["loss_weights"] = datasets.Sequence(datasets.Value("float32"))
    encoded = raw.map(
        _encode_batch,
        batched=True,
        batch_size=256,
        remove_columns=raw.column_names,
        features=datasets.Features(features),
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "overflow": overflow,
                   "reflection_weight": reflection_weight, "supervise_close": supervise_close,
                   "prompt_style": prompt_style, "supervise_irrelevant_answers": supervise_irrelevant_answers},
        num_proc=num_proc if num_proc > 1 else None,
        # Our own key: datasets would otherwise try (slowly, sometimes in vain) to hash the tokenizer itself.
        new_fingerprint=f"sft-encode-{key}",
        desc="tokenising SFT data",
    )
    status = list(encoded["status"])
    keep = [i for i, s in enumerate(status) if s in (_KEPT, _TRUNCATED)]
    dataset = encoded.select(keep).remove_columns("status").flatten_indices()
    stats = SFTStats(
        rows=len(status),
        kept=len(keep),
        truncated=status.count(_TRUNCATED),
        dropped_too_long=status.count(_TOO_LONG),
        dropped_unsupervised=status.count(_UNSUPERVISED),
        supervised_tokens=int(sum(dataset["n_supervised"])),
        total_tokens=int(sum(dataset["length"])),
    )
    log.info("SFT data: %s", stats)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".sft-"))
        try:
            dataset.save_to_disk(str(tmp))
            (tmp / "sft_stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "sft_stats.json").is_file():
                raise
        dataset = datasets.load_from_disk(str(target))
    return dataset, stats
