"""The embedded tiny student: a small Llama model and a locally trained tokenizer.

It is pre-trained briefly on synthetic problems with direct answers only, so it knows the
problem language and single arithmetic operations but has never seen a worked solution:
weak at multi-step problems until it is taught to reason step by step.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonbridge.config import TinyStudentConfig
from reasonbridge.curation.synthetic import direct_answer_text
from reasonbridge.curation.pool import generate_split
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.prompts import chat
from reasonbridge.training.sft import TrainSettings, encode_chat, train_causal_lm

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE in which every digit is its own token (with the space before it, if
    any), so numbers are read digit by digit and arithmetic stays learnable."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def operation_facts(problems: list[dict]) -> list[tuple[int, str, int, int]]:
    """Every single operation (`a op b = c`) that a worked solution of these problems uses."""
    facts = set()
    for p in problems:
        meta = p["meta"]
        for st in [*meta["steps"], meta.get("check")]:
            if st:
                facts.add((st["a"], st["op"], st["b"], st["result"]))
    return sorted(facts)


def fact_sheets(problems: list[dict], n_sheets: int, per_sheet: int, seed: int) -> list[str]:
    """Arithmetic fact sheets: lines `a op b = c`, half drawn as often as the suite uses them,
    half uniformly over the distinct facts so rare operations are learnt too."""
    used = [(st["a"], st["op"], st["b"], st["result"]) for p in problems for st in p["meta"]["steps"]]
    distinct = operation_facts(problems)
    rng = random.Random(seed)
    sheets = []
    for _ in range(n_sheets):
        lines = [rng.choice(used) if rng.random() < 0.5 else rng.choice(distinct) for _ in range(per_sheet)]
        sheets.append("\n".join(f"{a} {op} {b} = {c}" for a, op, b, c in lines))
    return sheets


def build_tiny_student(cfg: TinyStudentConfig, *, seed: int, pool_cfg, out_dir: Path,
                       progress: bool = True) -> dict:
    """Train tokenizer, initialise the model, pre-train on direct answers; save to `out_dir`."""
    suite = dict(difficulties=tuple(pool_cfg.difficulties), max_operand=pool_cfg.max_operand,
                 domains=pool_cfg.domains)
    problems = generate_split(cfg.pretrain_examples, seed=seed + 7001, split="train", id_prefix="pre", **suite)

    # The tokenizer sees worked solutions too, so their words are in the vocabulary;
    # the model itself is trained on direct answers only.
    teacher = SymbolicTeacher(defect_rate=0.0, seed=seed)
    corpus_problems = problems[: cfg.tokenizer_corpus]
    texts = [p["problem"] for p in problems] + [teacher.generate(p)["text"] for p in corpus_problems]
    tokenizer = train_tokenizer(texts + [direct_answer_text(p) for p in corpus_problems], cfg.vocab_size)
    probe = chat(problems[0]["problem"], direct_answer_text(problems[0]))
    tokenizer.apply_chat_template(probe, tokenize=False)  # fail early on a broken template

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    examples = [encode_chat(tokenizer, chat(p["problem"], direct_answer_text(p)), cfg.max_position_embeddings,
                            assistant_only=False) for p in problems]
    for sheet in fact_sheets(problems, cfg.fact_sheets, cfg.facts_per_sheet, seed):
        ids = tokenizer(sheet + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": ids, "labels": list(ids)})
    random.Random(seed).shuffle(examples)
    result = train_causal_lm(
        model, examples,
        TrainSettings(lr=cfg.pretrain_lr, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                      warmup_ratio=0.05, weight_decay=0.01, log_every=10, precision=cfg.pretrain_precision),
        pad_id=tokenizer.pad_token_id, seed=seed, progress=progress, desc="pre-train tiny student",
    )
    model = result.pop("model")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "pretrain": result}
