"""The embedded tiny student: a small Llama model and a locally trained tokenizer.

It is pre-trained briefly on synthetic problems with direct answers only, plus arithmetic
fact sheets, so it knows the problem language and single operations but has never seen a
worked solution: weak at multi-step problems until it is taught to reason step by step.

Two choices make single operations learnable in a CPU minute: every number below 1000 is
one token, and number embeddings start from their decimal digits (``write_digit_code``).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonbridge.config import TinyStudentConfig, default_phrases
from reasonbridge.curation.synthetic import direct_answer_text
from reasonbridge.curation.pool import generate_split
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.problems import solution_operations
from reasonbridge.prompts import chat
from reasonbridge.training.data import IGNORE, encode_chat
from reasonbridge.training.sft import TrainSettings, train_causal_lm

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


PHRASE_REPEATS = 200  # often enough in the tokenizer corpus that BPE merges their words
NUMBER_TOKENS = 1000  # every integer below this is one token, with and without a leading space


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE in which every integer 0-999 is a single token (``12`` and `` 12``).

    A fact ``a op b = c`` is then one prediction of one token rather than a carry chain
    written most significant digit first, which a model of this size does not learn on a
    CPU budget. Word pieces are trained on the texts without their digits; the number tokens
    are added to the vocabulary directly (``ignore_merges``: a pre-token found in the
    vocabulary is taken whole), so every number is covered whatever the corpus holds.
    Longer numbers split into chunks of at most three digits.
    """
    numbers = [str(n) for n in range(NUMBER_TOKENS)]
    number_pieces = numbers + ["\u0120" + n for n in numbers]  # "\u0120" is byte-level BPE's space
    words_budget = vocab_size - len(number_pieces) + 10  # the ten single digits are in the byte alphabet
    minimum = 256 + len(SPECIAL_TOKENS) + 74  # with the numbers: MIN_TINY_VOCAB in config.py
    if words_budget < minimum:
        raise ValueError(f"model.tiny.vocab_size={vocab_size} is too small: the {len(number_pieces)} number tokens "
                         f"need at least {vocab_size - words_budget + minimum}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" ?[0-9]{1,3}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=words_budget, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([re.sub(r"[0-9]", "", t) for t in texts], trainer=trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for piece in number_pieces:
        vocab.setdefault(piece, len(vocab))
    spec["model"]["ignore_merges"] = True
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                   pad_token="<|pad|>", eos_token="<|end|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def operation_facts(problems: list[dict]) -> list[tuple[int, str, int, int]]:
    """Every single operation (`a op b = c`) that a worked solution of these problems uses."""
    return sorted({(st["a"], st["op"], st["b"], st["result"])
                   for p in problems for st in solution_operations(p["meta"])})


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


def write_digit_code(model, tokenizer, scale: float) -> None:
    """Give each number token's embedding its decimal digits as three one-hots (units, tens,
    hundreds) in the first 30 dimensions. With tied input and output embeddings the model
    then reads operands digit by digit and scores a result as the sum of its digits' scores,
    so facts that share digits share what is learnt (the rest of each row stays random, so
    ``12`` and `` 12`` stay distinct)."""
    weight = model.get_input_embeddings().weight
    if weight.shape[1] < 30:
        raise ValueError(f"model.tiny.number_code needs hidden_size >= 30, got {weight.shape[1]}")
    with torch.no_grad():
        for n in range(NUMBER_TOKENS):
            code = torch.zeros(30)
            code[n % 10] = code[10 + n // 10 % 10] = code[20 + n // 100] = scale
            for piece in (str(n), "\u0120" + str(n)):
                weight[tokenizer.convert_tokens_to_ids(piece), :30] = code


def encode_fact_sheet(tokenizer, sheet: str) -> dict:
    """Token ids of a fact sheet with the loss on each result only: the operands are drawn at
    random, so predicting them teaches nothing and would only dilute the signal."""
    ids: list[int] = []
    labels: list[int] = []
    for line in sheet.split("\n"):
        question, result = line.split(" = ")
        q = tokenizer(question + " =", add_special_tokens=False)["input_ids"]
        r = tokenizer(f" {result}\n", add_special_tokens=False)["input_ids"]
        ids += q + r
        labels += [IGNORE] * len(q) + r
    ids.append(tokenizer.eos_token_id)
    labels.append(tokenizer.eos_token_id)
    return {"input_ids": ids, "labels": labels}


@torch.no_grad()
def fact_accuracy(model, tokenizer, facts: list[tuple[int, str, int, int]], batch_size: int = 256) -> float:
    """Share of facts ``a op b = c`` whose greedy next token after ``a op b =`` is `` c``."""
    if not facts:
        return float("nan")
    model.eval()
    correct = 0
    for i in range(0, len(facts), batch_size):
        chunk = facts[i:i + batch_size]
        enc = [tokenizer(f"{a} {op} {b} =", add_special_tokens=False)["input_ids"] for a, op, b, _ in chunk]
        width = max(map(len, enc))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in enc])
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        pred = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1).tolist()
        correct += sum(tokenizer.decode([t]) == f" {c}" for t, (*_, c) in zip(pred, chunk))
    return correct / len(facts)


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
    # The test-time intervention phrases are ordinary English that any real tokenizer holds as
    # words; left out, "Let me think further." is 15 byte-level pieces and every injection
    # costs the engine three times the tokens it would with a real model.
    phrases = [phrase for pool in default_phrases().values() for phrase in pool] * PHRASE_REPEATS
    tokenizer = train_tokenizer(texts + [direct_answer_text(p) for p in corpus_problems] + phrases, cfg.vocab_size)
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
    if cfg.number_code:
        write_digit_code(model, tokenizer, cfg.number_code)
    examples = [encode_chat(tokenizer, chat(p["problem"], direct_answer_text(p)), cfg.max_position_embeddings,
                            assistant_only=False) for p in problems]
    examples += [encode_fact_sheet(tokenizer, sheet)
                 for sheet in fact_sheets(problems, cfg.fact_sheets, cfg.facts_per_sheet, seed)]
    random.Random(seed).shuffle(examples)
    result = train_causal_lm(
        model, examples,
        TrainSettings(lr=cfg.pretrain_lr, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                      warmup_ratio=0.05, weight_decay=0.01, log_every=10, precision=cfg.pretrain_precision),
        pad_id=tokenizer.pad_token_id, seed=seed, progress=progress, desc="pre-train tiny student",
    )
    model = result.pop("model")
    # single operations of held-out problems: can the student do one step of a worked solution?
    heldout = generate_split(200, seed=seed + 7002, split="heldout", id_prefix="probe", **suite)
    probe_facts = [(st["a"], st["op"], st["b"], st["result"]) for p in heldout for st in p["meta"]["steps"]]
    accuracy = fact_accuracy(model, tokenizer, probe_facts)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "pretrain": result, "fact_accuracy": accuracy}
