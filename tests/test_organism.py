"""The model organism: its suite, teacher traces, tokenizer and a micro student built from scratch."""
from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import pytest

from reasonbridge.config import TinyStudentConfig, default_cites, default_phrases
from reasonbridge.curation import organism
from reasonbridge.curation.filters import quality_reasons
from reasonbridge.curation.pool import split_of, synthetic_benchmark, synthetic_pool
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.answers import check_exact
from reasonbridge.inference.state import detect_state, unused_quantities
from reasonbridge.student.organism_student import build_organism_student, organism_tokenizer
from reasonbridge.prompts import chat


def _suite(pool_size=600, bench_size=100):
    bench = synthetic_benchmark(bench_size, seed=0, difficulties=[1, 5], max_operand=10, domains=None,
                                suite="organism")
    pool, _ = synthetic_pool(pool_size, seed=0, difficulties=[1, 5], max_operand=10, domains=None,
                             exclude_texts={b["problem"] for b in bench}, suite="organism")
    return pool, bench


def test_problems_stay_in_the_closed_world_and_chain_their_steps():
    pool, _ = _suite()
    for p in pool:
        steps = p["meta"]["steps"]
        assert len(steps) == p["difficulty"]
        x = p["meta"]["start"]
        for k, s in enumerate(steps, 1):
            assert s["a"] == x and organism.apply(s["a"], s["op"], s["b"]) == s["result"]
            assert all(0 <= v <= organism.MAX_VALUE for v in (s["a"], s["b"], s["result"]))
            assert s["what"].startswith(f"#{len(steps) + 1 - k} ") and s["what"] in p["problem"]
            x = s["result"]
        assert p["answer"] == str(x)
        check = p["meta"]["check"]
        assert organism.apply(check["a"], check["op"], check["b"]) == check["result"] == steps[-1]["a"]
    assert len(Counter(p["domain"] for p in pool)) >= 6
    assert set(Counter(p["difficulty"] for p in pool)) == {1, 2, 3, 4, 5}


def test_generation_is_deterministic_and_the_benchmark_is_stratified_and_held_out():
    pool, bench = _suite()
    assert _suite() == (pool, bench)
    assert Counter(b["difficulty"] for b in bench) == {d: 20 for d in range(1, 6)}
    assert all(split_of(b["problem"]) == "heldout" for b in bench)
    assert all(split_of(p["problem"]) == "train" for p in pool)
    assert not {p["problem"] for p in pool} & {b["problem"] for b in bench}


def test_teacher_traces_restate_each_operation_and_are_exactly_right_without_defects():
    pool, _ = _suite(200)
    teacher = SymbolicTeacher(defect_rate=0.0)
    for p in pool:
        trace = teacher.generate(p)
        lines = trace["text"].split("\n")
        for step in p["meta"]["steps"]:
            assert any(line.startswith(step["what"] + " :") for line in lines)
        assert check_exact(trace["text"], p["answer"])[0]
        assert quality_reasons({"text": trace["text"], "problem": p["problem"], "gold": p["answer"]}) == []
        assert [s["level"] for s in trace["segments"]] == ["strategic", "tactical", "operational", "answer"]
        assert detect_state(trace["text"].split("Final Answer:")[0], problem=p["problem"]).state == "complete"


def test_every_seeded_defect_is_caught_by_the_quality_filter():
    pool, _ = _suite(1500)
    teacher = SymbolicTeacher(defect_rate=0.3, seed=1)
    caught = Counter()
    for p in pool:
        trace = teacher.generate(p)
        if trace["defects"]:
            reasons = quality_reasons({"text": trace["text"], "problem": p["problem"], "gold": p["answer"]})
            caught[(trace["defects"][0], bool(reasons))] += 1
    kinds = {k for k, _ in caught}
    assert kinds == {"arithmetic_slip", "broken_format", "contradiction", "multiple_answers"}
    assert all(ok for _, ok in caught), caught  # every defective trace is rejected


def test_gii_flags_a_false_arithmetic_claim_in_an_organism_solution():
    text = "Strategy: apply changes in order\nPlan: from 7\n#2 up 3 : 7 + 3 = 11 (temp)"
    report = detect_state(text, problem="temp 7 #2 up 3 #1 down 8 ?")
    assert report.state == "uncertain" and any("7 + 3 = 11" in c for c in report.cues)
    # an index names an operation, it is not a quantity the reasoning must use
    assert unused_quantities("temp 7 #1 up 3 ?", "7 + 3 = 10") == []
    assert unused_quantities("temp 7 #1 up 3 ?", "7 + 4 = 11") == ["3"]


def test_the_word_tokenizer_covers_prompts_traces_and_interventions_and_round_trips():
    tok = organism_tokenizer()
    pool, _ = _suite(100)
    teacher = SymbolicTeacher(defect_rate=1.0)  # defective traces use the same words
    for p in pool:
        for text in (tok.apply_chat_template(chat(p["problem"], teacher.generate(p)["text"]), tokenize=False),):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids, text
            assert tok.decode(ids) == " ".join(text.split())
    assert len(tok) < 200


PHRASES, CITE = default_phrases(), default_cites()


def _solution_lines(w: list[str]) -> list[tuple[int, int]]:
    """(running value, result) of every solution line ``#k word b : a op b = c (q)`` in ``w``."""
    return [(int(w[i + 4]), int(w[i + 8])) for i in range(len(w) - 9)
            if w[i].startswith("#") and w[i + 3] == ":" and w[i + 5] in "+-*/" and w[i + 7] == "="]


def test_pretraining_never_shows_a_worked_solution():
    kinds = {"facts", "direct", "copy", "twice", "recall", "latest", "solve1", "walk", "retry", "recheck"}
    examples = organism.pretraining_examples(
        800, 0, direct_answer=lambda p: (p["problem"].split(), ["Final", "Answer:", p["answer"]]),
        mix=dict.fromkeys(kinds, 1.0), phrases=PHRASES, cite=CITE)
    assert {e["kind"] for e in examples} == kinds
    for e in examples:
        assert len(e["words"]) == len(e["loss"]) and any(e["loss"])
        w = e["words"]
        if e["kind"] not in ("copy", "solve1", "retry", "recheck"):  # copies: any word of the vocabulary
            assert not {"Plan:", "Strategy:"} & set(w)
        # solution lines never chain: no line starts from the result of the line before it (within
        # one attempt: a retry starts again from the start value), and a worked solution (solve1,
        # the one-operation retries and re-checks) has one operation only
        first_learned = e["loss"].index(True)
        parts = [w[:first_learned], w[first_learned:]] if e["kind"] == "retry" else [w]
        for part in parts:
            lines = _solution_lines(part)
            assert all(a != previous_result for (_, previous_result), (a, _) in zip(lines, lines[1:]))
        if e["kind"] in ("solve1", "recheck") or (e["kind"] == "retry" and "Plan:" in w):
            assert len(_solution_lines(parts[-1])) <= 1 and w[-1] == "<|end|>"
        if e["kind"] == "walk":  # the problem's operations, in order, restated with their indices
            problem = w[:w.index(";")]
            restated = [w[i:i + 3] for i in range(w.index(";"), len(w) - 2) if w[i].startswith("#")]
            ops = [problem[i:i + 3] for i in range(len(problem)) if problem[i].startswith("#")]
            assert restated == ops[:len(restated)] and restated


def test_retry_drills_redo_the_cited_line_right_and_rechecks_restate_the_check():
    examples = organism.pretraining_examples(
        600, 1, direct_answer=lambda p: (p["problem"].split(), ["Final", "Answer:", p["answer"]]),
        mix={"retry": 1.0, "recheck": 1.0}, phrases=PHRASES, cite=CITE)
    seen = Counter()
    for e in examples:
        w, loss = e["words"], e["loss"]
        text = " ".join(w)
        if e["kind"] == "recheck":  # a bare phrase, then the check restated and the answer
            checks = [w[i + 3] for i in range(len(w) - 3) if w[i] == "Check:"]
            assert 2 <= len(checks) <= 4 and len(set(checks)) == 1
            assert any(p[0] in text for p in PHRASES.values()) and "?" not in text.split("<|end|>")[0][-60:]
            seen["recheck"] += 1
            continue
        split = loss.index(True)
        attempt, retry = w[:split], w[split:]
        assert all(loss[split:]) and not any(loss[:split])  # loss on the retry only
        cited = "unused" if "used?" in attempt else "claim"
        seen[cited] += 1
        before, after = _solution_lines(attempt), _solution_lines(retry)
        # the lines before the flawed one are copied; it and those after it are computed again
        assert len(before) == len(after)
        j = next((k for k, (b, a) in enumerate(zip(before, after)) if b != a), len(before))
        assert before[:j] == after[:j]
        # every retried line is true; the attempt holds the one flaw the phrase cites
        for i in range(len(retry) - 9):
            if retry[i].startswith("#") and retry[i + 3] == ":" and retry[i + 7] == "=":
                assert organism.apply(int(retry[i + 4]), retry[i + 5], int(retry[i + 6])) == int(retry[i + 8])
        if cited == "claim":
            claim = attempt[attempt.index("Is") + 1:attempt.index("right?")]
            a, op, b, _, c = claim
            assert organism.apply(int(a), op, int(b)) != int(c)
        else:
            q = attempt[attempt.index("Where") + 2]
            problem_operands = attempt[:attempt.index(";") if ";" in attempt else len(attempt)]
            assert q in problem_operands
    assert seen["recheck"] and seen["claim"] and seen["unused"]


def test_the_teacher_corrects_a_cited_slip_and_the_quality_filter_tells_it_from_an_uncorrected_one():
    pool, _ = _suite(1500)
    teacher = SymbolicTeacher(defect_rate=0.2, seed=3, corrections=0.3, rechecks=0.1, phrases=PHRASES, cite=CITE)
    kinds = Counter()
    for p in pool:
        trace = teacher.generate(p)
        reasons = quality_reasons({"text": trace["text"], "problem": p["problem"], "gold": p["answer"]})
        retried = trace["text"].count("Plan:") == 2
        kind = "defect" if trace["defects"] else "correction" if retried else \
            "recheck" if trace["text"].count("Check:") >= 2 else "clean"
        kinds[kind] += 1
        if kind == "defect":
            assert reasons, trace["text"]  # an uncorrected slip (or any defect) is rejected
            continue
        assert reasons == [], (reasons, trace["text"])
        assert check_exact(trace["text"], p["answer"])[0]
        if kind == "correction":  # the cited flaw is what GII's detector doubts in the first attempt
            attempt = trace["text"].split(PHRASES["redirection"][0])[0].split(PHRASES["extension"][0])[0]
            report = detect_state(attempt, problem=p["problem"])
            assert report.state in ("uncertain", "partial") and report.doubts[0][1] in trace["text"]
    assert kinds["correction"] > 300 and kinds["recheck"] > 80 and kinds["defect"] > 200
    # the rates change only the clean traces: the same defects whatever the reflection rates
    plain = SymbolicTeacher(defect_rate=0.2, seed=3)
    assert [plain.generate(p)["defects"] for p in pool[:200]] == [teacher.generate(p)["defects"] for p in pool[:200]]


def test_a_micro_student_builds_from_scratch(tmp_path):
    cfg = TinyStudentConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                            max_position_embeddings=128, pretrain_examples=256, pretrain_batch_size=32)
    info = build_organism_student(cfg, seed=0, pool_cfg=SimpleNamespace(difficulties=[1, 5], domains=None),
                                  out_dir=tmp_path / "model", progress=False)
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "model" / "tokenizer.json").exists()
    assert info["cpu"]["precision"] in ("fp32", "bf16") and info["cpu"]["threads"] >= 1
    assert set(info["skills"]) == {"facts", "recall"} and all(0 <= v <= 1 for v in info["skills"].values())
    vocab = len(organism_tokenizer())
    assert info["pretrain"]["history"][-1]["loss"] < math.log(vocab)  # better than a uniform guess
