"""Local problem files: field maps, merged sources, duplicates, decontamination, bad input."""
import json

import pandas as pd
import pytest

from reasonbridge.curation.pool import (clean_pool, decontaminate, load_problem_files, remove_exact_duplicates,
                                        remove_near_duplicates)
from reasonbridge.io import DataError
from tests.conftest import ROOT

BENCH = ROOT / ".." / "shared" / "benchmarks"
MATH_FIELDS = {"id": "unique_id", "problem": "problem", "answer": "answer", "domain": "subject"}


def test_loads_real_benchmark_files_merged_through_field_maps():
    math = load_problem_files([str(BENCH / "math500.jsonl")], MATH_FIELDS)
    assert len(math) == 500 and len({p["id"] for p in math}) == 500
    first = math[0]
    assert first["id"] == "math500-test/precalculus/807.json" and first["source"] == "math500"
    assert first["domain"] == "26"  # MATH "Precalculus" as its MSC code
    assert {p["domain"] for p in math} == {"97", "08", "12", "26", "51", "11", "05"}
    gsm = load_problem_files([str(BENCH / "gsm8k_test.jsonl")], {"problem": "question", "answer": "answer"},
                             answer_regex=r"####\s*(.+)$")
    assert len(gsm) == 1319 and all(p["answer"].lstrip("-").replace(",", "").isdigit() for p in gsm)
    assert gsm[0]["domain"] is None and gsm[0]["id"].startswith("gsm8k_test-")
    aime = load_problem_files([str(BENCH / "aime24.jsonl")], {"id": "id", "problem": "problem", "answer": "answer"})
    assert [p["id"] for p in aime[:2]] == ["aime24-60", "aime24-61"]


def test_parquet_and_jsonl_sources_merge(tmp_path):
    pd.DataFrame({"q": ["What is 2 plus 2 today?", "Name the 3rd prime."], "a": ["4", "5"]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text(json.dumps({"q": "How many sides has a hexagon?", "a": 6}) + "\n")
    problems = load_problem_files(["a.parquet", "b.jsonl"], {"problem": "q", "answer": "a"}, base_dir=tmp_path)
    assert [p["answer"] for p in problems] == ["4", "5", "6"]
    assert [p["source"] for p in problems] == ["a", "a", "b"]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem": "x", "answer": "1"}\n{"problem": "y", "answer": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        load_problem_files([str(path)], {"problem": "problem", "answer": "answer"})


def test_missing_field_names_the_field(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "x", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:1: missing field 'problem'"):
        load_problem_files([str(path)], {"problem": "problem", "answer": "answer"})
    with pytest.raises(DataError, match="does not exist"):
        load_problem_files([str(tmp_path / "nope.jsonl")], {"problem": "problem", "answer": "answer"})


def _p(i, text):
    return {"id": str(i), "problem": text, "answer": "1"}


def test_exact_and_near_duplicates_are_removed_keeping_the_first():
    base = "A train leaves the station at noon and travels at sixty miles per hour for three hours. How far does it go?"
    problems = [_p(0, base), _p(1, base.upper().replace("?", " ?")), _p(2, base + " Show your work."),
                _p(3, "Completely different: how many primes are below twenty, counting two and nineteen?")]
    kept, n_exact = remove_exact_duplicates(problems)
    assert n_exact == 1 and [p["id"] for p in kept] == ["0", "2", "3"]
    kept, n_near = remove_near_duplicates(kept, 0.75)  # 17 of 20 shingles shared: Jaccard 0.85
    assert n_near == 1 and [p["id"] for p in kept] == ["0", "3"]
    kept, n_near = remove_near_duplicates(problems[2:], 1.0)  # threshold 1: only identical shingle sets
    assert n_near == 0


def test_decontamination_against_real_benchmark_by_8grams():
    math = load_problem_files([str(BENCH / "math500.jsonl")], MATH_FIELDS)
    leaked = {**math[3], "id": "leak", "problem": "Note: " + math[3]["problem"] + " Explain."}
    clean = _p("ok", "Ava has 3 apples and buys 4 more apples at the market today. How many now?")
    kept, removed = decontaminate([leaked, clean], [p["problem"] for p in math], 8)
    assert removed == 1 and [p["id"] for p in kept] == ["ok"]
    kept, counts = clean_pool([leaked, clean, clean], [p["problem"] for p in math], near_dup_threshold=0.9, ngram=8)
    assert counts == {"loaded": 3, "exact_duplicates": 1, "near_duplicates": 0, "decontaminated": 1, "kept": 1}
