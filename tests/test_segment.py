"""The heuristic segmenter for free-form teacher text."""
from reasonbridge.curation.pool import synthetic_pool
from reasonbridge.curation.segment import segment
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher


def _levels(text):
    return [(s["level"], text[s["start"]:s["end"]]) for s in segment(text)]


def test_reproduces_the_symbolic_teachers_own_spans():
    pool, _ = synthetic_pool(200, seed=3, difficulties=[1, 5], max_operand=20, domains=None, exclude_texts=set())
    teacher = SymbolicTeacher(defect_rate=0.5, seed=3)
    for p in pool:
        trace = teacher.generate(p)
        assert segment(trace["text"]) == trace["segments"], trace["text"]


def test_free_form_text_without_labels():
    text = ("We need to find how many apples Ava has left.\n\n"
            "First, find how many she bought.\n"
            "She bought 3 * 4 = 12 apples.\n"
            "Then, subtract the ones she ate.\n"
            "12 - 5 = 7.\n"
            "The answer is \\boxed{7}.")
    assert _levels(text) == [
        ("strategic", "We need to find how many apples Ava has left."),
        ("tactical", "First, find how many she bought."),
        ("operational", "She bought 3 * 4 = 12 apples."),
        ("tactical", "Then, subtract the ones she ate."),
        ("operational", "12 - 5 = 7."),
        ("answer", "The answer is \\boxed{7}."),
    ]


def test_long_single_line_is_split_into_sentences_and_spans_cover_it():
    text = ("To solve this, note that the sum of an arithmetic sequence is the average times the count. "
            "The average of 1 and 99 is (1 + 99) / 2 = 50 and there are 99 terms in all of the sequence. "
            "So the sum is 50 * 99 = 4950. Therefore the final answer is \\boxed{4950}.")
    levels = _levels(text)
    assert [lv for lv, _ in levels] == ["strategic", "operational", "answer"]
    assert levels[-1][1] == "Therefore the final answer is \\boxed{4950}."
    assert segment("") == [] and segment("just words") == [{"level": "operational", "start": 0, "end": 10}]
