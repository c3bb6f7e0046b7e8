"""Answer checkers: math-verify in worker processes, integers, option letters, BBH, HumanEval."""
import pytest

from reasonbridge.evaluation.check import main as check_main
from reasonbridge.evaluation.checkers import NO_ANSWER, Checker
from reasonbridge.evaluation.checkers.choice import check_bbh, check_choice, extract_letter, normalize_bbh
from reasonbridge.evaluation.checkers.code import build_program, check_code
from reasonbridge.evaluation.checkers.math_answers import check_integer


def test_math_verify_judges_equivalent_forms_in_worker_processes():
    cases = [  # gold, model output, correct
        ("\\frac{1}{2}", "so the answer is \\boxed{0.5}", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "Final Answer: \\boxed{(3, \\frac{\\pi}{2})}", True),
        ("18", "She makes \\boxed{19} dollars.", False),
        ("1234", "The total is 1,234 dollars.", True),  # thousands separators in the prediction
        ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", True),
        ("18", "I am not sure.", False),
        ("x^2+1", "\\boxed{", False),  # unbalanced: never a crash
    ]
    with Checker("math", workers=2) as judge:
        verdicts = judge.check([c[1] for c in cases], [{"answer": c[0]} for c in cases])
        assert judge._math._pool is not None  # verified in worker processes
    assert [v.correct for v in verdicts] == [c[2] for c in cases]
    assert all(v.checker == "math" for v in verdicts)
    assert verdicts[0].reason == "equivalent (math-verify)" and verdicts[2].reason == "not equivalent (math-verify)"
    assert verdicts[5].reason == NO_ANSWER and verdicts[5].extracted is None


@pytest.mark.parametrize("output, gold, correct", [
    ("Final Answer: \\boxed{25}", "025", True),
    ("\\boxed{025}", "25", True),
    ("the answer is 204.", "204", True),
    ("\\boxed{\\text{204}}", "204", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{24}", "025", False),
])
def test_aime_answers_compare_as_integers(output, gold, correct):
    v = check_integer(output, gold)
    assert v.correct is correct and v.checker == "integer"


def test_integer_checker_reasons():
    assert check_integer("no digits here", "7").reason == NO_ANSWER
    v = check_integer("\\boxed{x+1}", "7")
    assert not v.correct and "not an integer" in v.reason


@pytest.mark.parametrize("output, letter", [
    ("... so \\boxed{C}", "C"),
    ("\\boxed{\\text{(B)}}", "B"),
    ("The answer is (D).", "D"),
    ("Answer: b", "B"),
    ("I think A is wrong.\nThe correct answer is C", "C"),
    ("Let me compare (A) and (B).\n(B)", "B"),
    ("B)", "B"),
    ("It could be anything", None),
    ("The answer is (E).", None),  # not one of four options
])
def test_extract_letter(output, letter):
    assert extract_letter(output, 4) == letter


def test_choice_checker_matches_the_option_text_too():
    meta = {"choices": ["red", "green", "blue", "yellow"]}
    assert check_choice("After thinking, the colour is\nblue.", "C", meta).correct
    v = check_choice("no letter", "C", meta)
    assert not v.correct and v.reason == NO_ANSWER
    assert check_choice("\\boxed{A}", "C", meta).reason == "chose A, gold C"


@pytest.mark.parametrize("output, gold, correct", [
    ("Let's think. So the answer is (A).", "(A)", True),
    ("\\boxed{True}", "True", True),
    ("So the answer is invalid.", "valid", False),
    ("So the answer is valid.", "valid", True),
    ("the answer is: ] ) }", "] ) }", True),
    ("", "True", False),
])
def test_bbh_exact_match_after_normalisation(output, gold, correct):
    assert check_bbh(output, gold).correct is correct


def test_normalize_bbh():
    assert normalize_bbh("(B) blue") == "b" and normalize_bbh("(B)") == "b" and normalize_bbh(" No. ") == "no"


PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
TESTS = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"


def test_humaneval_completion_runs_against_the_tests_in_a_sandbox():
    assert check_code("    return a + b\n", PROMPT, TESTS, "add").correct  # continues the prompt
    whole = check_code("Here:\n```python\ndef add(a, b):\n    return a + b\n```", PROMPT, TESTS, "add")
    assert whole.correct and whole.reason == "passed all tests"
    wrong = check_code("    return a - b\n", PROMPT, TESTS, "add")
    assert not wrong.correct and "AssertionError" in wrong.reason
    slow = check_code("    while True:\n        pass\n", PROMPT, TESTS, "add", timeout_s=1.0)
    assert not slow.correct and "timed out" in slow.reason
    net = check_code("    import socket\n    socket.create_connection(('pypi.org', 443))\n    return a + b\n",
                     PROMPT, TESTS, "add")
    assert not net.correct and net.isolation == "bwrap"  # escapes: tests/test_sandbox.py
    greedy = check_code("    x = bytearray(4 << 30)\n    return a + b\n", PROMPT, TESTS, "add")
    assert not greedy.correct and "MemoryError" in greedy.reason  # 4 GB is past the 1 GB address-space limit
    assert check_code("   ", PROMPT, TESTS, "add").reason == NO_ANSWER


def test_program_keeps_the_prompt_imports_when_the_model_rewrites_the_function():
    prompt = "from typing import List\n\n\ndef f(x: List[int]) -> int:\n    pass\n"
    program = build_program(prompt, "def f(x: List[int]) -> int:\n    return 1\n", TESTS, "f")
    assert "from typing import List" in program and program.count("def f(") == 1


def test_unparseable_predictions_never_crash_any_checker():
    weird = ["", "\\boxed{", "}}}{{{", "\\boxed{\\frac{}{}}", "∀x∃y " * 50, "\\boxed{\\sqrt[}"]
    problems = {"exact": {"answer": "3"}, "integer": {"answer": "3"}, "choice": {"answer": "A"},
                "bbh": {"answer": "(A)"}, "math": {"answer": "3"}}
    for name, problem in problems.items():
        with Checker(name, workers=1) as judge:
            verdicts = judge.check(weird, [problem] * len(weird))
        assert not any(v.correct for v in verdicts), name
        assert verdicts[0].reason == NO_ANSWER, name


def test_check_command_prints_the_verdict_and_exits_by_it(capsys):
    assert check_main(["--benchmark", "gsm8k", "--gold", "So 2 + 3 = 5 #### 1,005", "--pred", "\\boxed{1005}"]) == 0
    out = capsys.readouterr().out
    assert "extracted: '1005'" in out and "verdict:   correct" in out and "checker:   math" in out
    assert check_main(["--benchmark", "aime24", "--gold", "025", "--pred", "\\boxed{24}"]) == 1
    assert "wrong (24 != 25)" in capsys.readouterr().out
    assert check_main(["--benchmark", "gpqa_diamond", "--gold", "B", "--pred", "The answer is (B)"]) == 0
    assert check_main(["--benchmark", "humaneval", "--prompt", PROMPT, "--tests", TESTS, "--entry-point", "add",
                       "--pred", "    return a + b"]) == 0
    with pytest.raises(SystemExit) as e:
        check_main(["--benchmark", "math500", "--pred", "1"])
    assert e.value.code == 2
