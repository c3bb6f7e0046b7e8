"""Tiny real Llama models with a small word-piece tokenizer, built in memory for engine tests.

`chain_model` makes greedy decoding follow a chain of pieces chosen by the test (each
piece's successor dominates the logits, the attention layers add a small context-dependent
term), so a test knows exactly when the model tries to end its thinking. `random_model`
is an untouched random Llama whose output depends on the whole context.
"""
from __future__ import annotations

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PIECES = ["<pad>", "<eos>", "[UNK]", "Q", "R", "Step", " 12", " *", " 3", " =", " 35", " 36", "\n", "Final",
          " Answer:", "Wait", "Alternatively,", " let's", " try", " a", " different", " approach", "Let", " me",
          " double-check", " my", " work", " hmm", " ok", " 7", " 5", " 2", " so"]
# Prompt "Q": writes a wrong claim, then tries to end its thinking; "\n" always leads to the marker.
CHAIN = ["Q", "Step", " 12", " *", " 3", " =", " 35", "\n", "Final", " Answer:", " 36", "<eos>"]


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({p: i for i, p in enumerate(PIECES)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n|\s?[^\s]+"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="[UNK]")


def _config(**kw) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(PIECES), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=0, eos_token_id=1, bos_token_id=1, tie_word_embeddings=False, **kw)


def random_model(seed: int = 0, init: float = 0.5) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(initializer_range=init))
    return model.eval()


def chain_model(*chains: list[str], seed: int = 0) -> LlamaForCausalLM:
    """Greedy decoding follows each chain (the successor of piece i is piece i+1); default CHAIN."""
    model = random_model(seed, init=0.02)
    ids = {p: i for i, p in enumerate(PIECES)}
    with torch.no_grad():
        emb = torch.randn(len(PIECES), 64)
        emb = emb / emb.norm(dim=-1, keepdim=True) * 8.0
        model.model.embed_tokens.weight.copy_(emb)
        head = torch.randn(len(PIECES), 64) * 0.01
        for chain in chains or [CHAIN]:
            for a, b in zip(chain, chain[1:]):
                head[ids[b]] += emb[ids[a]]
        model.lm_head.weight.copy_(head)
    return model
