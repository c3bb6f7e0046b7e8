"""Answer extraction and normalisation for the exact checker."""
import pytest

from reasonbridge.answers import check_exact, extract_all_boxed, extract_boxed, normalize_answer


def test_extract_boxed_takes_the_last_balanced_box():
    assert extract_boxed("Final Answer: \\boxed{42}") == "42"
    assert extract_boxed("\\boxed{1} then \\boxed{ 2 }") == "2"
    assert extract_boxed("so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert extract_boxed("no box here: 42") is None
    assert extract_boxed("Final Answer: \\boxed{42") is None
    assert extract_boxed("Final Answer: \\boxed{42)") is None
    assert extract_boxed("\\boxed{}") is None


def test_extract_all_boxed():
    assert extract_all_boxed("\\boxed{3} or \\boxed{5}") == ["3", "5"]
    assert extract_all_boxed("\\boxed{{a}} \\boxed{7") == ["{a}"]
    assert extract_all_boxed("nothing") == []


@pytest.mark.parametrize("raw, norm", [
    ("025", "25"), (" 42 ", "42"), ("$42$", "42"), ("42.", "42"), ("1,234", "1234"), ("-0", "0"), ("+7", "7"),
    ("6/8", "3/4"), ("4/2", "2"), ("\\frac{2}{4}", "1/2"), ("\\dfrac{10}{5}", "2"), ("-\\frac{3}{6}", "-1/2"),
    ("2.50", "2.5"), ("3.0", "3"), ("x = 5", "x=5"),
])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_check_exact():
    assert check_exact("Step 1: 2 + 3 = 5 (sum)\nFinal Answer: \\boxed{05}", "5") == (True, "05", "match")
    assert check_exact("Final Answer: \\boxed{6}", "5") == (False, "6", "mismatch")
    assert check_exact("Final Answer: 5", "5") == (False, None, "no answer extracted")
    assert check_exact("\\boxed{5} or \\boxed{6}", "5")[0] is False  # the last box is the answer
    assert check_exact("\\boxed{\\frac{6}{8}}", "3/4")[0] is True
