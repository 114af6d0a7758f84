"""Test helpers: a WordLevel tokenizer and a tiny Llama built in-test, and a scripted fake backend."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from selfrag import tokens as T
from selfrag.types import Completion, ScoreRequest

WORDS = (
    "### Instruction Response Input : ? . , ( ) the a is an of in who what was born singer actor politician "
    "occupation city capital paris france london england alice bob carol dave eve alpha beta gamma delta fact "
    "one two three four five six seven eight nine ten yes no true false A B C D it he she they and from "
    "question answer text title passage about tell me bio relevant irrelevant retrieval supported fully utility"
).split()

#: Texts the tiny model is trained to reproduce (prompt and Self-RAG-formatted response).
TRAINING_TEXTS = (
    "### Instruction : who is alice ? ### Response : [Retrieval]<paragraph>alice\nalice is a singer from paris ."
    "</paragraph>[Relevant]alice is a singer .[Fully supported][Utility:5]",
    "### Instruction : who is bob ? ### Response : [Retrieval]<paragraph>bob\nbob was born in london ."
    "</paragraph>[Irrelevant]bob is an actor .[No support / Contradictory][Utility:2]",
    "### Instruction : what is the capital of france ? ### Response : [No Retrieval]paris is the capital ."
    "[Utility:4]",
    "### Instruction : who is carol ? ### Response : [Retrieval]<paragraph>carol\ncarol is a politician ."
    "</paragraph>[Relevant]carol is a politician .[Partially supported][Retrieval]<paragraph>carol\n"
    "carol was born in england .</paragraph>[Relevant]she was born in england .[Fully supported][Utility:5]",
)


def build_tokenizer():
    """A WordLevel tokenizer over WORDS (whitespace/punctuation split) with <s>, </s>, <unk>, <pad>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def build_tiny_selfrag_model(directory: Path, *, train_steps: int = 120, with_tokens: bool = True) -> Path:
    """Save a tiny Llama (2 layers, hidden 64, head dim 32) and its tokenizer to `directory`.

    With `with_tokens`, the reflection tokens are added with `selfrag.models.reflection.add_reflection_tokens` and the
    model is trained for `train_steps` Adam steps on TRAINING_TEXTS, so greedy decoding emits real reflection tokens.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfrag.models.reflection import add_reflection_tokens

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if with_tokens:
        add_reflection_tokens(model, tokenizer)
        batch = tokenizer([t + tokenizer.eos_token for t in TRAINING_TEXTS], padding=True, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(train_steps):
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class ScriptedBackend:
    """A fake `Backend` whose continuations and reflection probabilities come from Python functions of the text.

    Args:
        tokenizer: a tokenizer with the reflection tokens (from `build_tokenizer` + added tokens).
        continue_fn: prompt text -> continuation text (reflection tokens inline; end with `</s>` to stop on EOS).
        probs_fn: (prefix text, group) -> probabilities of the group's tokens at the end of the prefix.
        token_logprob: log-probability reported for every generated token.
    """

    def __init__(
        self,
        tokenizer,
        continue_fn: Callable[[str], str],
        probs_fn: Callable[[str, tuple[str, ...]], Sequence[float]],
        token_logprob: float = math.log(0.5),
    ) -> None:
        self.tokenizer = tokenizer
        self.continue_fn = continue_fn
        self.probs_fn = probs_fn
        self.token_logprob = token_logprob
        self.generate_calls: list[list[str]] = []
        self.score_calls = 0
        self._groups = {
            tuple(tokenizer.convert_tokens_to_ids(list(g))): g
            for g in (T.RETRIEVE_GROUP, T.ISREL_GROUP, T.ISSUP_GROUP, T.ISUSE_GROUP)
        }

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def _logprobs(self, prefix_ids, token_ids):
        """Scripted log p of each of `token_ids` after `prefix_ids` (tokens outside the four groups: -inf)."""
        text = self._text(prefix_ids)
        values = {}
        for ids, group in self._groups.items():
            if any(t in token_ids for t in ids):
                values.update(zip(ids, self.probs_fn(text, group)))
        return [math.log(values[t]) if values.get(t, 0) > 0 else -math.inf for t in token_ids]

    def generate(self, prompts, *, max_new_tokens, stop_token_ids=(), track_token_ids=()):
        texts = [self._text(p) for p in prompts]
        self.generate_calls.append(texts)
        out = []
        for prompt, text in zip(prompts, texts):
            ids = self.tokenizer(self.continue_fn(text), add_special_tokens=False)["input_ids"]
            stopped = False
            for j, token in enumerate(ids[:max_new_tokens]):
                if token == self.tokenizer.eos_token_id or token in stop_token_ids:
                    ids, stopped = ids[: j + 1], True
                    break
            ids = ids[:max_new_tokens]
            tracked = tuple(tuple(self._logprobs(list(prompt) + ids[:j], track_token_ids)) for j in range(len(ids)))
            out.append(Completion(tuple(ids), tuple([self.token_logprob] * len(ids)), stopped,
                                  tracked if track_token_ids else ()))
        return out

    def score(self, requests: Sequence[ScoreRequest]):
        self.score_calls += 1
        return [[self._logprobs(r.sequence[:position], token_ids) for position, token_ids in r.queries]
                for r in requests]

    def close(self) -> None:
        pass


def tokenizer_with_reflection_tokens():
    """`build_tokenizer()` with the 15 reflection tokens added (no model)."""
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": list(T.REFLECTION_TOKENS)},
                                 replace_extra_special_tokens=False)
    return tokenizer


#: Three PopQA-style questions in the official eval format: two with static passages (`ctxs`), one without.
POPQA_ROWS = (
    {"id": 1, "question": "who is alice ?", "answers": ["singer"],
     "ctxs": [{"id": "a1", "title": "alice", "text": "alice is a singer from paris .", "score": "1.2"},
              {"id": "b1", "title": "bob", "text": "bob was born in london .", "score": "0.7"}]},
    {"id": 2, "question": "who is carol ?", "answers": ["politician"],
     "ctxs": [{"id": "c1", "title": "carol", "text": "carol is a politician .", "score": "1.0"}]},
    {"id": 3, "question": "what is the capital of france ?", "answers": ["paris"], "ctxs": []},
)


def write_jsonl(path, rows):
    """Write `rows` as a jsonl file; return the path."""
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_tsv_corpus(path, rows):
    """Write (id, text, title) rows as a DPR-layout corpus (header row, tab-separated); return the path."""
    path.write_text("id\ttext\ttitle\n" + "".join(f"{i}\t{text}\t{title}\n" for i, text, title in rows))
    return path


def compose_config(config_name: str, *overrides: str) -> dict:
    """`conf/<config_name>.yaml` composed with overrides and resolved (`${hydra:...}` included), as the script sees
    it: a plain mapping."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    import selfrag.overrides  # noqa: F401  (registers the resolvers conf/ uses)

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # `${hydra:...}` resolves from HydraConfig; the node itself is Hydra's business
        return OmegaConf.to_container(cfg, resolve=True)


def run_script(name, *overrides, check=True, folder="scripts"):
    """Run `<folder>/<name>.py` (a script by default, or e.g. a benchmark) with its arguments as a user would
    (offline); fail with its output unless `check` is False."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(root / folder / f"{name}.py"), *overrides], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_module(name, folder="benchmarks"):
    """Import `<folder>/<name>.py` (a benchmark script by default, not a package module) so a test can call its pure
    functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
