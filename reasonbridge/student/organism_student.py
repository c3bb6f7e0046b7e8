"""The model organism's student: a small Llama with a word-level tokenizer, pre-trained on drills.

The tokenizer holds every word of the organism (numbers 0-20, operation indices, the domains'
words, the prompt instruction and the test-time intervention phrases): one word, one token, so
``#2`` in the problem and ``#2`` in the solution are the same token and a student finds an
operation by matching it. Pre-training never shows a worked multi-step solution
(``curation.organism.pretraining_examples``): the student knows single facts and can copy and
recall, but has not been taught to chain them. Why each choice: docs/organism.md.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonbridge.config import TinyStudentConfig, default_cites, default_phrases
from reasonbridge.curation import organism
from reasonbridge.curation.pool import split_of
from reasonbridge.prompts import INSTRUCTION, chat
from reasonbridge.training.sft import IGNORE, TrainSettings, train_causal_lm
from reasonbridge.training.speed import choose_cpu_settings

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|unk|>"]
# Words are separated by single spaces; decoding joins tokens with one, so text round-trips.
# A prompt is rendered on one line, so decoding the prompt's tokens gives the prompt back.
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|> "
                 "{% if message['role'] == 'user' %}{{ message['content'] | replace('\n', ' ') }}"
                 "{% else %}{{ message['content'] }}{% endif %} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """One token per whitespace-separated word; anything else is ``<|unk|>``."""
    vocab = {w: i for i, w in enumerate(SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>",
                                   unk_token="<|unk|>", clean_up_tokenization_spaces=False,
                                   additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def organism_words() -> list[str]:
    """The organism's words plus the prompt instruction's and the intervention phrases' (and the
    words GII cites a doubt with)."""
    phrases = [p for pool in default_phrases().values() for p in pool]
    cites = [c.replace("{doubt}", "") for c in default_cites().values()]
    return organism.vocabulary([INSTRUCTION, *phrases, *cites])


def organism_tokenizer() -> PreTrainedTokenizerFast:
    return word_tokenizer(organism_words())


def encode_words(tokenizer, words: list[str], loss: list[bool]) -> dict:
    ids = tokenizer.convert_tokens_to_ids(words) + [tokenizer.eos_token_id]
    labels = [i if keep else IGNORE for i, keep in zip(ids, loss)] + [tokenizer.eos_token_id]
    return {"input_ids": ids, "labels": labels}


def build_organism_student(cfg: TinyStudentConfig, *, seed: int, pool_cfg, out_dir: Path,
                           progress: bool = True) -> dict:
    """Build the tokenizer and model, pre-train on the drills, save to ``out_dir``."""
    tokenizer = organism_tokenizer()

    def direct_answer(problem: dict) -> tuple[list[str], list[str]]:
        prompt = tokenizer.apply_chat_template(chat(problem["problem"]), add_generation_prompt=True, tokenize=False)
        return prompt.split(), (organism.final_answer(problem["answer"]) + " <|end|>").split()

    drills = organism.pretraining_examples(
        cfg.pretrain_examples, seed + 7001, direct_answer=direct_answer, mix=dict(cfg.drills),
        difficulties=tuple(pool_cfg.difficulties), domains=pool_cfg.domains,
        keep=lambda text: split_of(text) == "train", words=organism_words(), phrases=default_phrases(),
        cite=default_cites())
    examples = [encode_words(tokenizer, d["words"], d["loss"]) for d in drills]
    unknown = sum(i == tokenizer.unk_token_id for e in examples for i in e["input_ids"])
    if unknown:
        raise RuntimeError(f"{unknown} pre-training words are missing from the organism's vocabulary")

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    cpu = choose_cpu_settings(model, examples[: cfg.pretrain_batch_size], requested=cfg.pretrain_precision)
    result = train_causal_lm(
        model, examples,
        TrainSettings(lr=cfg.pretrain_lr, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                      warmup_ratio=0.05, weight_decay=0.01, log_every=25, precision=cpu["precision"]),
        pad_id=tokenizer.pad_token_id, seed=seed, progress=progress, desc="pre-train organism student")
    model = result.pop("model")
    skills = probe_skills(model, tokenizer, seed=seed + 7002, difficulties=tuple(pool_cfg.difficulties),
                          domains=pool_cfg.domains)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "pretrain": result, "cpu": cpu,
            "fact_accuracy": skills["facts"], "skills": skills}


@torch.no_grad()
def _next_token_accuracy(model, tokenizer, items: list[tuple[list[str], str]]) -> float:
    """Share of (context words, target word) whose greedy next token is the target."""
    model.eval()
    correct = 0
    for i in range(0, len(items), 256):
        chunk = items[i:i + 256]
        enc = [tokenizer.convert_tokens_to_ids(words) for words, _ in chunk]
        width = max(map(len, enc))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in enc])
        mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(e) for e in enc])[:, None]).long()
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        pred = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1).tolist()
        correct += sum(p == tokenizer.convert_tokens_to_ids(t) for p, (_, t) in zip(pred, chunk))
    return correct / len(items)


def probe_skills(model, tokenizer, *, seed: int, difficulties, domains, n: int = 300) -> dict[str, float]:
    """What pre-training taught, on held-out problems: single facts, and recalling an operation's
    operand from its index (the reading skill a worked solution needs)."""
    rng = random.Random(seed)
    problems = organism.generate(n, seed, difficulties=difficulties, domains=domains, id_prefix="probe",
                                 keep=lambda text: split_of(text) == "heldout", distinct=False)
    facts, recall = [], []
    for p in problems:
        s = rng.choice(p["meta"]["steps"])
        facts.append(([str(s["a"]), s["op"], str(s["b"]), "="], str(s["result"])))
        index, word, operand = s["what"].split()
        recall.append((p["problem"].split() + [";", index, word], operand))
    return {"facts": _next_token_accuracy(model, tokenizer, facts),
            "recall": _next_token_accuracy(model, tokenizer, recall)}
