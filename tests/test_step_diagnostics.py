"""Step diagnostics: true operations and operations of the reference solution."""
from reasonbridge.curation.pool import generate_split
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.diagnostics.steps import reference_operations, step_counts, step_metrics

PROBLEM = {"meta": {"steps": [{"a": 3, "op": "*", "b": 2, "result": 6}, {"a": 9, "op": "*", "b": 8, "result": 72}],
                    "check": {"a": 78, "op": "-", "b": 72, "result": 6}}}


def test_counts_tell_wrong_arithmetic_from_wrong_operands():
    ref = reference_operations(PROBLEM)
    right = "Step 1: 3 * 2 = 6 (a)\nStep 2: 9 * 8 = 72 (b)\nCheck: 78 - 72 = 6, which matches."
    miscalculated = "Step 1: 3 * 2 = 7 (a)\nStep 2: 9 × 8 = 72 (b)"
    wrong_operands = "Step 1: 4 * 2 = 8 (a)\nStep 2: 9 + 8 = 17 (b)"
    assert step_counts(right, ref) == {"written": 3, "true": 3, "reference": 3}
    assert step_counts(miscalculated, ref) == {"written": 2, "true": 1, "reference": 2}
    assert step_counts(wrong_operands, ref) == {"written": 2, "true": 2, "reference": 0}
    assert step_counts("Final Answer: \\boxed{6}", ref) == {"written": 0, "true": 0, "reference": 0}


def test_no_reference_no_metrics():
    assert reference_operations({"meta": {"row": 3}}) is None
    assert step_counts("1 + 1 = 2", None) is None
    assert step_metrics("gsm8k", [None, None]) == {}


def test_metrics_pool_over_written_operations():
    m = step_metrics("synthetic", [{"written": 3, "true": 3, "reference": 3}, {"written": 1, "true": 0, "reference": 0},
                                   {"written": 0, "true": 0, "reference": 0}, None])
    assert m == {"steps/written/synthetic": 4 / 3, "steps/true/synthetic": 0.75, "steps/reference/synthetic": 0.75}


def test_teacher_traces_score_one_on_both():
    problems = generate_split(40, seed=5, split="heldout", id_prefix="t")
    teacher = SymbolicTeacher(defect_rate=0.0)
    counts = [step_counts(teacher.generate(p)["text"], reference_operations(p)) for p in problems]
    m = step_metrics("synthetic", counts)
    assert m["steps/true/synthetic"] == 1.0 and m["steps/reference/synthetic"] == 1.0
    assert m["steps/written/synthetic"] >= 2  # at least one step and the check
