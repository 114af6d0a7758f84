import pytest
import torch

from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.pipeline import SelfRAG
from selfrag.models.reflection import MissingReflectionTokens, add_reflection_tokens, reflection_token_ids
from tests.helpers import build_tokenizer


def _tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, tie_word_embeddings=False))
    return model, tokenizer


def test_tokens_are_added_once_as_single_ids_with_description_initialised_rows():
    model, tokenizer = _tiny()
    before = len(tokenizer)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert add_reflection_tokens(model, tokenizer) == 15
    assert add_reflection_tokens(model, tokenizer) == 0
    ids = reflection_token_ids(tokenizer)
    assert sorted(ids.values()) == list(range(before, before + 15))
    assert model.get_input_embeddings().weight.shape[0] == before + 15
    # "[Fully supported]" is described as "fully supported": its rows are the mean of those two words' rows,
    # in the input and the (untied) output matrix alike.
    pieces = tokenizer("fully supported", add_special_tokens=False)["input_ids"]
    assert len(pieces) == 2 and tokenizer.unk_token_id not in pieces
    new_in = model.get_input_embeddings().weight[ids["[Fully supported]"]]
    assert torch.allclose(new_in, old_in[pieces].mean(0))
    assert torch.allclose(model.get_output_embeddings().weight[ids["[Fully supported]"]], old_out[pieces].mean(0))
    assert not torch.allclose(new_in, model.get_input_embeddings().weight[ids["[Relevant]"]])
    # existing rows are untouched
    assert torch.equal(model.get_input_embeddings().weight[:before], old_in)
    # every new token is one id and round-trips through the tokenizer
    text = "".join(T.REFLECTION_TOKENS)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == [ids[t] for t in T.REFLECTION_TOKENS]


def test_a_model_without_reflection_tokens_is_refused_with_a_fix():
    _, tokenizer = _tiny()
    with pytest.raises(MissingReflectionTokens, match=r"model 'base' has no reflection tokens \(15 of 15 missing.*"
                                                      r"model.add_reflection_tokens=true"):
        SelfRAG(backend=None, tokenizer=tokenizer, config=DecodingConfig(), source="model 'base'")
