"""Quality, difficulty and diversity filters, and the six data variants built from them."""
from collections import Counter
from types import SimpleNamespace

import pytest

from reasonbridge.curation.filters import (classify_domain, difficulty_filter, diversity_sample, quality_filter,
                                           quality_reasons)
from reasonbridge.curation.pool import synthetic_pool
from reasonbridge.curation.selection import EmptySelection, select_traces
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher

GOOD = ("Strategy: isolate x.\nPlan: 1) subtract 3 2) divide by 2\nStep 1: 11 - 3 = 8 (2x)\n"
        "Step 2: 8 / 2 = 4 (x)\nCheck: 4 * 2 = 8, which matches.\nFinal Answer: \\boxed{4}")


def _trace(text, gold="4", problem="Solve 2x + 3 = 11 for x.", pid="p"):
    return {"problem_id": pid, "text": text, "gold": gold, "problem": problem, "domain": "15"}


@pytest.mark.parametrize("text, reason", [
    (GOOD, None),
    (GOOD.replace("\\boxed{4}", "4"), "missing_answer"),
    (GOOD.replace("\\boxed{4}", "\\boxed{4} or \\boxed{5}"), "multiple_answers"),
    (GOOD.replace("(x)", "(x"), "unbalanced_brackets"),
    (GOOD.replace("\\boxed{4}", "$\\boxed{4}"), "unbalanced_brackets"),
    (GOOD.replace("8 / 2 = 4", "8 / 2 = 5"), "arithmetic_error"),
    (GOOD.replace("11 - 3 = 8", "11 - = 8"), "broken_expression"),
    (GOOD.replace("(2x)", "(2y)").replace("(x)", "(y)").replace("isolate x", "isolate y = x"), "inconsistent_variables"),
    (GOOD.replace("Check:", "So x is 5.\nCheck:"), "self_contradiction"),
    (GOOD.replace("\\boxed{4}", "\\boxed{6}"), "wrong_answer"),
])
def test_quality_reasons(text, reason):
    reasons = quality_reasons(_trace(text))
    assert reasons == [] if reason is None else reason in reasons, reasons


def test_quality_filter_catches_every_symbolic_defect_and_keeps_clean_traces():
    pool, _ = synthetic_pool(600, seed=1, difficulties=[1, 5], max_operand=20, domains=None, exclude_texts=set())
    teacher = SymbolicTeacher(defect_rate=0.3, seed=1)
    traces = [{**teacher.generate(p), "problem": p["problem"], "gold": p["answer"], "domain": p["domain"]} for p in pool]
    kept, rejected = quality_filter(traces)
    defective = {t["problem_id"] for t in traces if t["defects"]}
    assert {r["problem_id"] for r in rejected} == defective and len(defective) > 100
    assert all(r["reasons"] for r in rejected) and not any(t["defects"] for t in kept)


def test_difficulty_keeps_what_every_reference_fails():
    traces = [_trace(GOOD, pid=i) for i in "abc"]
    attempts = {"small": {"a": False, "b": True, "c": False}, "large": {"a": False, "b": False, "c": True}}
    kept, info = difficulty_filter(traces, attempts)
    assert [t["problem_id"] for t in kept] == ["a"] and info["solved_by"] == {"small": 1, "large": 1}
    with pytest.raises(KeyError, match="'large' has no attempt at problem 'c'"):
        difficulty_filter(traces, {"large": {"a": False, "b": False}})


def _many(n_per_domain=30):
    return [{"problem_id": f"{d}-{i:03d}", "text": " ".join(["x"] * (10 + i)), "domain": d, "problem": "?"}
            for d in ("05", "11", "97") for i in range(n_per_domain)]


def test_diversity_is_seeded_domain_uniform_and_prefers_long_traces():
    traces = _many()
    a, b = diversity_sample(traces, 30, seed=5), diversity_sample(list(reversed(traces)), 30, seed=5)
    assert [t["problem_id"] for t in a] == [t["problem_id"] for t in b]  # seeded, input order irrelevant
    assert diversity_sample(traces, 30, seed=6) != a
    counts = Counter(t["domain"] for t in a)
    assert set(counts) == {"05", "11", "97"} and max(counts.values()) - min(counts.values()) <= 8
    mean_len = sum(len(t["text"].split()) for t in a) / len(a)
    assert mean_len > 10 + 23  # the top third of each domain averages 34.5 words, the pool 24.5
    # a domain that runs out leaves the others to fill the target size
    small = [t for t in traces if t["domain"] != "05" or t["problem_id"] < "05-002"]
    picked = diversity_sample(small, 40, seed=0)
    assert len(picked) == 40 and Counter(t["domain"] for t in picked)["05"] == 2


def test_traces_of_equal_length_share_a_rank():
    """Length is counted in words and equal lengths are equally likely (2^-rank over the distinct
    lengths): a domain whose traces come in three lengths gives the shorter ones a real chance
    instead of taking every longest one first."""
    traces = [{"problem_id": f"97-{n}-{i:02d}", "text": " ".join(["w"] * n), "domain": "97", "problem": "?"}
              for n in (30, 20, 10) for i in range(10)]
    picked = Counter(len(t["text"].split()) for t in diversity_sample(traces, 15, seed=0))
    assert picked[30] > picked[20] > 0 and picked[30] < 15
    assert picked == Counter(len(t["text"].split()) for t in diversity_sample(traces[::-1], 15, seed=0))


def test_rule_based_domain_classifier():
    assert classify_domain("Ben rolls a fair die 60 times. How many sixes are expected?") == "60"
    assert classify_domain("In how many ways can 5 runners finish?") == "05"
    assert classify_domain("What is the remainder when 100 is divided by 7?") == "11"
    assert classify_domain("Solve 3x + 1 = 10.") == "15"
    assert classify_domain("Ava has 5 pens and buys 3 more. How many pens now?") == "97"


VARIANTS = {  # name: (quality, difficulty, diversity, size)
    "curated": (True, True, True, 20), "random": (False, False, False, 20), "full": (False, False, False, None),
    "no_quality": (False, True, True, 20), "no_difficulty": (True, False, True, 20),
    "no_diversity": (True, True, False, 20),
}


def _cfg(name, size=None):
    q, d, v, s = VARIANTS[name]
    return SimpleNamespace(name=name, quality=q, difficulty=d, diversity=v, size=size or s, subsample=name != "full")


@pytest.fixture(scope="module")
def symbolic_traces():
    pool, _ = synthetic_pool(300, seed=2, difficulties=[1, 5], max_operand=20, domains=None, exclude_texts=set())
    teacher = SymbolicTeacher(defect_rate=0.2, seed=2)
    traces = [{**teacher.generate(p), "problem": p["problem"], "gold": p["answer"], "domain": p["domain"]}
              for p in pool]
    attempts = {"ref": {p["id"]: p["difficulty"] <= 2 for p in pool}}  # "solves" the short problems
    return traces, attempts


def test_six_variants_and_their_manifests(symbolic_traces):
    traces, attempts = symbolic_traces
    out = {name: select_traces(traces, _cfg(name), seed=0, attempts=attempts) for name in VARIANTS}
    counts = {name: m["counts"] for name, (_, m) in out.items()}
    assert counts["full"] == {"pool": 300, "parsed": 300, "after_quality": 300, "after_difficulty": 300,
                              "selected": 300}
    assert counts["curated"]["after_quality"] == 300 - sum(bool(t["defects"]) for t in traces)
    assert counts["curated"]["after_difficulty"] < counts["curated"]["after_quality"]
    assert {name: c["selected"] for name, c in counts.items() if name != "full"} == dict.fromkeys(
        ["curated", "random", "no_quality", "no_difficulty", "no_diversity"], 20)
    curated, manifest = out["curated"]
    assert not any(t["defects"] for t in curated) and all(attempts["ref"][t["problem_id"]] is False for t in curated)
    assert sum(manifest["rejections"]["by_reason"].values()) >= len(manifest["rejections"]["problems"]) > 0
    assert sum(manifest["domains"].values()) == 20 and manifest["seed"] == 0
    assert manifest["lengths"]["selected"]["chars_mean"] > manifest["lengths"]["pool"]["chars_mean"]
    assert manifest["selected_ids"] == [t["problem_id"] for t in curated] and len(manifest["selected_sha256"]) == 64
    again, m2 = select_traces(list(reversed(traces)), _cfg("curated"), seed=0, attempts=attempts)
    assert m2["selected_sha256"] == manifest["selected_sha256"]
    assert select_traces(traces, _cfg("curated"), seed=1, attempts=attempts)[1]["selected_ids"] != manifest["selected_ids"]
    assert set(out["no_diversity"][1]["selected_ids"]) <= {t["problem_id"] for t in curated} | {
        t["problem_id"] for t in traces if not t["defects"] and not attempts["ref"][t["problem_id"]]}
    assert out["no_diversity"][1]["selected_ids"] != manifest["selected_ids"]


def test_a_filter_that_empties_the_pool_fails_with_the_counts(symbolic_traces):
    traces, _ = symbolic_traces
    solved_all = {"ref": {t["problem_id"]: True for t in traces}}
    with pytest.raises(EmptySelection, match=r"after_difficulty.*'pool': 300, 'parsed': 300, 'after_quality': \d+"):
        select_traces(traces, _cfg("curated"), seed=0, attempts=solved_all)
    with pytest.raises(EmptySelection, match="data.size=5000 but only"):
        select_traces(traces, _cfg("random", size=5000), seed=0)
