import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasonbridge.config import PoolConfig, TinyStudentConfig
from reasonbridge.curation.pool import generate_split
from reasonbridge.models.tiny import build_tiny_student, fact_sheets, operation_facts, train_tokenizer
from reasonbridge.prompts import chat

MICRO = TinyStudentConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                          max_position_embeddings=256, pretrain_examples=128, fact_sheets=32, pretrain_batch_size=32,
                          tokenizer_corpus=64)


def test_tokenizer_reads_numbers_digit_by_digit_and_round_trips():
    problems = generate_split(200, seed=0, split="train", id_prefix="t")
    tok = train_tokenizer([p["problem"] for p in problems], vocab_size=400)
    text = "Step 2: 152 / 8 = 19 (each)\nFinal Answer: \\boxed{19}"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    pieces = tok.convert_ids_to_tokens(ids)
    assert all(len(p.replace("Ġ", "")) <= 1 for p in pieces if any(c.isdigit() for c in p))


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


def test_build_is_deterministic(tmp_path):
    a = build_tiny_student(MICRO, seed=3, pool_cfg=PoolConfig(), out_dir=tmp_path / "a", progress=False)
    b = build_tiny_student(MICRO, seed=3, pool_cfg=PoolConfig(), out_dir=tmp_path / "b", progress=False)
    assert a["pretrain"]["history"] == b["pretrain"]["history"]
    wa = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    wb = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
