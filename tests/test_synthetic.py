"""The synthetic suite: determinism, coverage, and that every solution step really computes."""
import re

import pytest

from reasonbridge.curation.synthetic import (DOMAINS, MAX_VALUE, MAX_WORDS, apply_op, direct_answer_text,
                                             generate_problems, make_suite, step_ancestors)

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return generate_problems(500, seed=7)


def test_domains_are_msc_coded():
    assert len(DOMAINS) >= 7
    assert all(re.fullmatch(r"\d\d", code) and name for code, name in DOMAINS.items())


def test_same_seed_same_problems_other_seed_others(sample):
    assert generate_problems(500, seed=7) == sample
    assert generate_problems(500, seed=8) != sample


def test_every_domain_and_difficulty_appears(sample):
    cells = {(p["domain"], p["difficulty"]) for p in sample}
    assert cells == {(code, d) for code in DOMAINS for d in range(1, 6)}


def test_problem_records(sample):
    assert len({p["id"] for p in sample}) == len({p["problem"] for p in sample}) == len(sample)
    for i, p in enumerate(sample):
        assert p["id"] == f"syn-{p['domain']}-{i:06d}"
        assert p["source"] == "synthetic" and p["domain_name"] == DOMAINS[p["domain"]]
        assert len(p["problem"].split()) <= MAX_WORDS
        meta = p["meta"]
        assert meta["strategy"].endswith(".") and len(meta["plan"]) == len(meta["steps"]) == p["difficulty"]


def test_every_step_computes_within_bounds(sample):
    for p in sample:
        steps = p["meta"]["steps"]
        for s in steps:
            assert s["op"] in OPS and s["what"]
            assert OPS[s["op"]](s["a"], s["b"]) == s["result"], (p["problem"], s)  # exact, so "/" divides evenly
            assert all(0 <= s[k] <= MAX_VALUE for k in ("a", "b", "result"))
            for operand in ("a", "b"):  # recorded data flow points at the step that produced the operand
                if s[f"{operand}_src"] is not None:
                    assert steps[s[f"{operand}_src"]]["result"] == s[operand]
        assert p["answer"] == str(steps[-1]["result"])
        assert step_ancestors(steps, len(steps) - 1) == set(range(len(steps)))  # no step is wasted


def test_check_undoes_the_last_step(sample):
    for p in sample:
        check, last = p["meta"]["check"], p["meta"]["steps"][-1]
        assert apply_op(check["a"], check["op"], check["b"]) == check["result"]
        assert check["a"] == last["result"] and check["result"] in (last["a"], last["b"])


def test_difficulty_one_is_one_operation_and_filters_apply():
    easy = generate_problems(50, seed=1, difficulties=(1, 1), domains=["15", "97"], max_operand=10)
    assert {p["difficulty"] for p in easy} == {1} and {p["domain"] for p in easy} == {"15", "97"}
    assert all(len(p["meta"]["steps"]) == 1 for p in easy)
    with pytest.raises(ValueError):
        generate_problems(5, seed=1, domains=["99"])
    with pytest.raises(ValueError):
        generate_problems(5, seed=1, difficulties=(0, 3))


def test_suite_is_deterministic_and_disjoint():
    pool, bench = make_suite(400, 100, seed=3)
    assert (pool, bench) == make_suite(400, 100, seed=3)
    assert len(pool) == 400 and len(bench) == 100
    assert not {p["problem"] for p in pool} & {b["problem"] for b in bench}
    assert all(p["id"].startswith("syn-") for p in pool) and all(b["id"].startswith("bench-") for b in bench)
    assert make_suite(50, 100, seed=3)[1] == bench  # the benchmark does not depend on the pool size


def test_direct_answer_text(sample):
    assert direct_answer_text(sample[0]) == f"Final Answer: \\boxed{{{sample[0]['answer']}}}"
