"""Benchmark files in each public dataset's own format, read through the field maps."""
import csv
import gzip
import json

import pytest
from omegaconf import OmegaConf

from reasonbridge.config import BenchmarkConfig
from reasonbridge.evaluation.benchmarks import load_benchmark
from reasonbridge.io import DataError
from tests.conftest import CONF, ROOT

BENCH = (ROOT / ".." / "shared" / "benchmarks").resolve()


def bench_cfg(name: str, **overrides):
    """conf/benchmark/<name>.yaml, as the pipeline reads it, with overrides."""
    node = OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), OmegaConf.load(CONF / "benchmark" / f"{name}.yaml"))
    return OmegaConf.merge(node, overrides)


def test_real_aime24_math500_gsm8k_files(monkeypatch):
    monkeypatch.setenv("REASONBRIDGE_BENCHMARKS", str(BENCH))  # the default paths read this folder
    aime = load_benchmark(bench_cfg("aime24"), seed=0)
    assert len(aime) == 30 and aime[0]["id"] == "aime24-60" and aime[0]["answer"] == "204"
    assert {p["id"]: p["answer"] for p in aime}["aime24-67"] == "025"  # as written; the integer checker compares ints
    math500 = load_benchmark(bench_cfg("math500", size=5), seed=0)
    assert len(math500) == 5 and math500[0]["id"] == "math500-test/precalculus/807.json"
    assert math500[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert math500[0]["domain"] == "26" and math500[0]["meta"]["level"] == 2
    gsm = load_benchmark(bench_cfg("gsm8k"), seed=0)
    assert len(gsm) == 1319 and gsm[0]["answer"] == "18" and gsm[0]["problem"].startswith("Janet")
    assert all("," not in p["answer"] and "####" not in p["answer"] for p in gsm)


def _gpqa_csv(path, n=3):
    cols = ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
            "Incorrect Answer 3", "Subdomain"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for i in range(n):
            w.writerow([f"rec{i}", f"Which particle, question {i}?", f"right {i}", f"wrong a{i}", f"wrong b{i}",
                        f"wrong c{i}", "Physics"])


def test_gpqa_options_are_shuffled_with_a_fixed_seed_per_problem(tmp_path):
    path = tmp_path / "gpqa_diamond.csv"
    _gpqa_csv(path, 12)
    problems = load_benchmark(bench_cfg("gpqa_diamond", path=str(path)), seed=0)
    assert len(problems) == 12
    for p in problems:
        shown = p["meta"]["choices"]
        assert shown[ord(p["answer"]) - ord("A")].startswith("right")  # the gold letter points at the answer
        assert f"{p['answer']}) {shown[ord(p['answer']) - ord('A')]}" in p["problem"]
    assert len({p["answer"] for p in problems}) > 1  # the correct answer is not always A
    again = load_benchmark(bench_cfg("gpqa_diamond", path=str(path)), seed=0)
    assert [p["problem"] for p in again] == [p["problem"] for p in problems]
    other = load_benchmark(bench_cfg("gpqa_diamond", path=str(path)), seed=1)
    assert [p["answer"] for p in other] != [p["answer"] for p in problems]
    fixed = load_benchmark(bench_cfg("gpqa_diamond", path=str(path), shuffle_choices=False), seed=0)
    assert {p["answer"] for p in fixed} == {"A"}


def test_mmlu_stem_keeps_stem_subjects_and_logiqa_adds_the_context(tmp_path):
    mmlu = tmp_path / "mmlu.jsonl"
    rows = [{"question": "2+2?", "subject": "college_mathematics", "choices": ["3", "4", "5", "6"], "answer": 1},
            {"question": "Who wrote?", "subject": "world_religions", "choices": ["a", "b", "c", "d"], "answer": 0},
            {"question": "Force?", "subject": "high_school_physics", "choices": ["ma", "m", "a", "v"], "answer": 0}]
    mmlu.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = load_benchmark(bench_cfg("mmlu_stem", path=str(mmlu)), seed=0)
    assert [p["meta"]["subject"] for p in problems] == ["college_mathematics", "high_school_physics"]
    assert problems[0]["meta"]["choices"][ord(problems[0]["answer"]) - 65] == "4"
    only = load_benchmark(bench_cfg("mmlu_stem", path=str(mmlu), subsets=["high_school_physics"]), seed=0)
    assert len(only) == 1
    logiqa = tmp_path / "logiqa.jsonl"
    logiqa.write_text(json.dumps({"context": "All cats purr.", "query": "Tom is a cat. So?",
                                  "options": ["Tom purrs", "Tom barks", "none", "both"], "correct_option": 0}) + "\n")
    (p,) = load_benchmark(bench_cfg("logiqa", path=str(logiqa)), seed=0)
    assert p["problem"].startswith("All cats purr.\n\nTom is a cat. So?")
    assert p["meta"]["choices"][ord(p["answer"]) - 65] == "Tom purrs"


def test_bbh_folder_of_task_files_and_humaneval_gz(tmp_path):
    bbh = tmp_path / "bbh"
    bbh.mkdir()
    (bbh / "boolean_expressions.json").write_text(json.dumps({"examples": [{"input": "not True is", "target": "False"}]}))
    (bbh / "navigate.json").write_text(json.dumps({"examples": [{"input": "Go left?", "target": "No"},
                                                                {"input": "Go right?", "target": "Yes"}]}))
    problems = load_benchmark(bench_cfg("bbh", path=str(bbh)), seed=0)
    assert [p["id"] for p in problems] == ["bbh-boolean_expressions-0", "bbh-navigate-1", "bbh-navigate-2"]
    assert len(load_benchmark(bench_cfg("bbh", path=str(bbh), subsets=["navigate"]), seed=0)) == 2
    he = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(he, "wt") as f:
        f.write(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
                            "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}) + "\n")
    (p,) = load_benchmark(bench_cfg("humaneval", path=str(he)), seed=0)
    assert p["id"] == "humaneval-HumanEval/0" and p["meta"]["entry_point"] == "f" and "check" in p["meta"]["tests"]


def test_bad_input_names_file_line_and_field(tmp_path):
    bad = tmp_path / "aime.jsonl"
    bad.write_text('{"id": 1, "problem": "p", "answer": "3"}\n{"id": 2, "problem": "q"\n')
    with pytest.raises(DataError, match=r"aime\.jsonl:2: malformed JSON"):
        load_benchmark(bench_cfg("aime24", path=str(bad)), seed=0)
    bad.write_text('{"id": 1, "problem": "p", "answer": "3"}\n{"id": 2, "problem": "q"}\n')
    with pytest.raises(DataError, match=r"aime\.jsonl:2: missing field 'answer' \(benchmark\.fields\.answer\)"):
        load_benchmark(bench_cfg("aime24", path=str(bad)), seed=0)
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match=r"gsm\.jsonl:1: field 'answer': a GSM8K answer ends with '#### <number>'"):
        load_benchmark(bench_cfg("gsm8k", path=str(gsm)), seed=0)
    gpqa = tmp_path / "gpqa.csv"
    gpqa.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2\nq,a,b,c\n")
    with pytest.raises(DataError, match=r"gpqa\.csv:2: missing field 'Incorrect Answer 3'"):
        load_benchmark(bench_cfg("gpqa_diamond", path=str(gpqa)), seed=0)
    with pytest.raises(DataError, match=r"does not exist; put the dataset's file there, point benchmark\.path"):
        load_benchmark(bench_cfg("math500", path=str(tmp_path / "nope.jsonl")), seed=0)
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text(json.dumps({"question": "q", "subject": "anatomy", "choices": ["a", "b"], "answer": 5}) + "\n")
    with pytest.raises(DataError, match=r"mmlu\.jsonl:1: field 'answer' = 5 is outside the 2 options"):
        load_benchmark(bench_cfg("mmlu_stem", path=str(mmlu)), seed=0)
