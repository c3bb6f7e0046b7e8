"""The symbolic teacher: trace format, segments, seeded defects and order independence."""
import collections
import re

import pytest

from reasonbridge.curation.synthetic import generate_problems
from reasonbridge.curation.teachers.symbolic import DEFECT_KINDS, SymbolicTeacher
from reasonbridge.answers import extract_all_boxed, extract_boxed

STEP = re.compile(r"Step (\d+): (\d+) ([-+*/]) (\d+) = (\d+) \((.*)\)$")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return generate_problems(400, seed=11)


def _check_segments(trace: dict) -> None:
    text, segs = trace["text"], trace["segments"]
    assert [s["level"] for s in segs] == ["strategic", "tactical", "operational", "answer"]
    assert segs[0]["start"] == 0 and segs[-1]["end"] == len(text)
    for prev, nxt in zip(segs, segs[1:]):
        assert prev["end"] <= nxt["start"] and text[prev["end"]:nxt["start"]].strip() == ""
    starts = [text[s["start"]:s["end"]] for s in segs]
    for chunk, prefix in zip(starts, ("Strategy:", "Plan:", "Step 1:", "Final Answer:")):
        assert chunk.startswith(prefix)


def test_clean_traces_follow_the_format(problems):
    teacher = SymbolicTeacher(defect_rate=0.0)
    for p in problems:
        t = teacher.generate(p)
        assert t["problem_id"] == p["id"] and t["teacher"] == "symbolic" and t["defects"] == []
        assert t["answer"] == p["answer"] == extract_boxed(t["text"])
        _check_segments(t)
        lines = t["text"].split("\n")
        steps = [STEP.match(line) for line in lines if line.startswith("Step ")]
        assert len(steps) == p["difficulty"] and all(steps)
        for i, m in enumerate(steps, 1):  # every written step is numbered in order and true
            assert int(m[1]) == i and OPS[m[3]](int(m[2]), int(m[4])) == int(m[5])
        assert lines[-2].startswith("Check:") and lines[-2].endswith(", which matches.")
        assert lines[1] == "Plan: " + " ".join(f"{i}) {g}" for i, g in enumerate(p["meta"]["plan"], 1))


def test_same_problem_same_trace_whatever_the_order(problems):
    forward = SymbolicTeacher(defect_rate=0.5, seed=3).generate_many(problems)
    backward = SymbolicTeacher(defect_rate=0.5, seed=3).generate_many(problems[::-1])[::-1]
    assert forward == backward
    other_seed = SymbolicTeacher(defect_rate=0.5, seed=4).generate_many(problems)
    assert [t["defects"] for t in other_seed] != [t["defects"] for t in forward]


def test_defect_rate_is_respected_and_monotone(problems):
    low = SymbolicTeacher(defect_rate=0.1, seed=0).generate_many(problems)
    high = SymbolicTeacher(defect_rate=0.3, seed=0).generate_many(problems)
    assert 0.04 < sum(bool(t["defects"]) for t in low) / len(low) < 0.17
    assert all(h["defects"] for t, h in zip(low, high) if t["defects"])  # raising the rate only adds defects
    with pytest.raises(ValueError):
        SymbolicTeacher(defect_rate=1.5)


def test_every_defect_kind_appears_and_is_really_there(problems):
    teacher = SymbolicTeacher(defect_rate=1.0, seed=0)
    kinds = collections.Counter()
    for p in problems:
        t = teacher.generate(p)
        assert len(t["defects"]) == 1
        kind, text, gold = t["defects"][0], t["text"], p["answer"]
        kinds[kind] += 1
        _check_segments(t)
        if kind == "arithmetic_slip":
            assert extract_boxed(text) not in (None, gold) and t["answer"] == extract_boxed(text)
            wrong = [m for m in map(STEP.match, text.split("\n")) if m and OPS[m[3]](int(m[2]), int(m[4])) != int(m[5])]
            assert len(wrong) >= 1  # the slip itself is visible in the steps
        elif kind == "broken_format":
            step_lines = [line for line in text.split("\n") if line.startswith("Step ")]
            unbalanced = any(line.count("(") != line.count(")") for line in step_lines)
            assert (extract_boxed(text) is None) != unbalanced  # exactly one thing broken
        elif kind == "contradiction":
            lines = text.split("\n")
            (i, said), = [(i, m) for i, m in enumerate(map(re.compile(r"So (.+) is (\d+)\.$").match, lines)) if m]
            step = STEP.match(lines[i - 1])  # restates the quantity just computed, with another value
            assert step and step[6] == said[1] and step[5] != said[2]
            assert t["answer"] == gold
        else:
            boxed = extract_all_boxed(text)
            assert kind == "multiple_answers" and len(set(boxed)) == 2 and gold in boxed
    assert set(kinds) == set(DEFECT_KINDS) and min(kinds.values()) >= 50
