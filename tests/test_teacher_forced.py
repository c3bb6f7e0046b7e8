"""Teacher-forced token accuracy per trace part, with stand-in models whose predictions are known."""
from types import SimpleNamespace

import pytest
import torch

from reasonbridge.curation.pool import generate_split
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.diagnostics.teacher_forced import PARTS, forced_counts, forced_metrics, trace_parts
from reasonbridge.student.tiny import CHAT_TEMPLATE, train_tokenizer


def test_every_character_gets_the_part_of_the_trace_it_is_in():
    text = "Strategy: Add.\nPlan: 1) add 4\nStep 1: 3 + 4 = 7 (coins)\nCheck: 7 - 4 = 3, which matches.\nFinal Answer: \\boxed{7}"
    parts = trace_parts(text)
    assert len(parts) == len(text)

    def part(sub, occurrence=0):
        at = -1
        for _ in range(occurrence + 1):
            at = text.index(sub, at + 1)
        return {parts[i] for i in range(at, at + len(sub))}

    assert part("Strategy: Add.") == {"strategy"} and part("Plan: 1) add 4") == {"plan"}
    step = text.index("Step 1")
    assert [parts[step + text[step:].index(s)] for s in ("3", "+", "4", "7", "(coins)", "Step")] == \
        ["operand", "operation", "operand", "result", "step_text", "step_text"]
    assert part("Check: 7 - 4 = 3") == {"check"} and part("\\boxed{7}") == {"answer"}


class _Predicts(torch.nn.Module):
    """Logits that pick, at every position, the token `shift` places on (1: the next token, a
    perfect teacher-forced prediction; 0: the token just read)."""

    def __init__(self, vocab: int, shift: int):
        super().__init__()
        self.vocab, self.shift, self.unused = vocab, shift, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        target = torch.roll(input_ids, -self.shift, dims=1)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(target, self.vocab).float())


@pytest.fixture(scope="module")
def suite():
    problems = generate_split(12, seed=3, split="train", id_prefix="t")
    teacher = SymbolicTeacher(defect_rate=0.0)
    tok = train_tokenizer([p["problem"] for p in problems] + [teacher.generate(p)["text"] for p in problems], 2400)
    tok.chat_template = CHAT_TEMPLATE
    return problems, tok


def test_a_perfect_predictor_scores_one_on_every_part_and_an_off_by_one_scores_low(suite):
    problems, tok = suite
    perfect = forced_counts(_Predicts(len(tok), 1), tok, problems, max_logits=5 * 300 * len(tok))  # several batches
    assert set(perfect) == set(PARTS) and all(right == total > 0 for right, total in perfect.values())
    assert set(forced_metrics("synthetic", perfect).values()) == {1.0}
    lagging = forced_metrics("synthetic", forced_counts(_Predicts(len(tok), 0), tok, problems))
    assert lagging["forced/operand/synthetic"] < 0.2 and lagging["forced/result/synthetic"] < 0.2


def test_problems_without_a_reference_solution_give_no_metrics(suite):
    _, tok = suite
    assert forced_counts(_Predicts(len(tok), 1), tok, [{"id": "x", "problem": "What is 2 + 2?", "answer": "4"}]) == {}
