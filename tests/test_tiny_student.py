import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasonbridge.config import PoolConfig, TinyStudentConfig
from reasonbridge.curation.pool import generate_split
from reasonbridge.student.tiny import (build_tiny_student, fact_accuracy, fact_sheets, operation_facts,
                                     train_tokenizer)
from reasonbridge.prompts import chat

MICRO = TinyStudentConfig(vocab_size=2400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                          max_position_embeddings=256, pretrain_examples=128, fact_sheets=32, pretrain_batch_size=32,
                          tokenizer_corpus=64)


def test_tokenizer_reads_every_number_below_1000_as_one_token_and_round_trips():
    problems = generate_split(200, seed=0, split="train", id_prefix="t")
    tok = train_tokenizer([p["problem"] for p in problems], vocab_size=2400)
    assert len(tok) <= 2400
    for n in (0, 7, 42, 152, 999):
        assert len(tok(f"x = {n}", add_special_tokens=False)["input_ids"]) == 3
        assert len(tok(f"{{{n}}}", add_special_tokens=False)["input_ids"]) == 3
    text = "Step 2: 152 / 8 = 19 (each)\nFinal Answer: \\boxed{19}; 12345 and 007 split, words never seen: zyxt"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    pieces = tok.convert_ids_to_tokens(ids)
    assert "Ġ123" in pieces and "45" in pieces  # longer numbers: chunks of at most three digits


def test_tokenizer_rejects_a_vocabulary_without_room_for_the_numbers():
    with pytest.raises(ValueError, match="vocab_size=1024 is too small"):
        train_tokenizer(["a b c"], vocab_size=1024)


def test_fact_sheets_hold_single_true_operations_the_suite_uses():
    problems = generate_split(100, seed=0, split="train", id_prefix="t")
    facts = set(operation_facts(problems))
    sheets = fact_sheets(problems, 20, per_sheet=8, seed=0)
    assert len(sheets) == 20
    for line in (ln for sheet in sheets for ln in sheet.split("\n")):
        a, op, b, eq, c = line.split()
        assert eq == "=" and (int(a), op, int(b), int(c)) in facts
        assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b),
                          "/": int(a) // int(b)}[op]


def test_build_saves_a_loadable_chat_model(tmp_path):
    info = build_tiny_student(MICRO, seed=0, pool_cfg=PoolConfig(), out_dir=tmp_path, progress=False)
    assert info["params"] > 0 and info["pretrain"]["history"]
    assert 0.0 <= info["fact_accuracy"] <= 1.0
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    prompt = tok.apply_chat_template(chat("What is 2 + 3?"), add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|user|>\n") and prompt.endswith("<|assistant|>\n")
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    # pre-training moved the weights: the loss is below that of a uniform guess
    assert info["pretrain"]["history"][-1]["loss"] < torch.log(torch.tensor(len(tok))).item()
    # the test-time intervention phrases are words, as in a real model's tokenizer
    for phrase, words in (("Wait", 1), ("Let me think further.", 5), ("Let me double-check my work.", 8)):
        assert len(tok(phrase, add_special_tokens=False)["input_ids"]) <= words


def test_build_is_deterministic(tmp_path):
    a = build_tiny_student(MICRO, seed=3, pool_cfg=PoolConfig(), out_dir=tmp_path / "a", progress=False)
    b = build_tiny_student(MICRO, seed=3, pool_cfg=PoolConfig(), out_dir=tmp_path / "b", progress=False)
    assert a["pretrain"]["history"] == b["pretrain"]["history"]
    wa = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    wb = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_fact_accuracy_scores_the_next_token_after_the_equals_sign():
    problems = generate_split(50, seed=0, split="train", id_prefix="t")
    tok = train_tokenizer([p["problem"] for p in problems], vocab_size=2400)
    facts = [(3, "+", 4, 7), (5, "*", 6, 30)]

    class Oracle(torch.nn.Module):  # predicts the right result for the first fact only
        def forward(self, input_ids, attention_mask, position_ids):
            logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], len(tok))
            logits[0, -1, tok.convert_tokens_to_ids("Ġ7")] = 1.0
            logits[1, -1, tok.convert_tokens_to_ids("Ġ31")] = 1.0
            return type("Out", (), {"logits": logits})

    assert fact_accuracy(Oracle(), tok, facts) == 0.5
