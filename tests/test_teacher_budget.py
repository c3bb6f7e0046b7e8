"""Teacher caps hold across concurrent jobs: several processes that query one teacher (one
ledger) against a local OpenAI-compatible stub that counts requests never send more than
teacher.max_queries queries or spend more than teacher.max_cost_usd in total."""
from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reasonbridge.curation.teacher_cache import Budget, BudgetExceeded, TeacherCache

JOB = r"""
import json, sys
from reasonbridge.curation.teacher_cache import Budget, BudgetExceeded, TeacherCache, collect_traces
from reasonbridge.curation.teachers.openai import OpenAITeacher
url, cache_dir, job, n, max_queries, max_cost = sys.argv[1:]
max_queries = None if max_queries == "none" else int(max_queries)
max_cost = None if max_cost == "none" else float(max_cost)
teacher = OpenAITeacher(base_url=url, model="stub", max_tokens=16, concurrency=3, max_retries=0,
                        prices={"stub": [100.0, 100.0]}, max_cost_usd=max_cost)
problems = [{"id": f"{job}-{i}", "problem": f"job {job}: what is {i} + 1?", "answer": str(i + 1)} for i in range(int(n))]
cache = TeacherCache(cache_dir, teacher.identity)
try:
    collect_traces(teacher, problems, cache, Budget.shared(max_queries, max_cost, cache))
    print(json.dumps({"capped": None}))
except BudgetExceeded as e:
    print(json.dumps({"capped": str(e)}))
"""


class CountingStub:
    """An OpenAI-compatible chat-completions endpoint that answers after ``delay_s`` and counts requests."""

    def __init__(self, delay_s: float = 0.1):
        self.requests, self.delay_s = 0, delay_s
        lock, stub = threading.Lock(), self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    stub.requests += 1
                time.sleep(stub.delay_s)
                body = json.dumps({"choices": [{"message": {"content": "So \\boxed{1}"}, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 20, "completion_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub():
    s = CountingStub()
    yield s
    s.close()


def _jobs(stub, cache_dir: Path, *, jobs: int, each: int, max_queries, max_cost) -> list[dict]:
    """``jobs`` concurrent processes, each asking ``each`` questions of its own (different pools)."""
    procs = [subprocess.Popen([sys.executable, "-c", JOB, stub.url, str(cache_dir), str(j), str(each),
                               str(max_queries).lower(), str(max_cost).lower()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for j in range(jobs)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _ledger(cache_dir: Path) -> list[dict]:
    (path,) = (cache_dir / "teacher").glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_concurrent_jobs_share_the_query_cap(stub, tmp_path):
    results = _jobs(stub, tmp_path, jobs=3, each=8, max_queries=10, max_cost=None)
    assert stub.requests == 10  # 24 wanted; before the shared tally each job believed all 10 were its own
    assert all(r["capped"] and "teacher.max_queries=10 reached" in r["capped"] for r in results)
    ledger = _ledger(tmp_path)
    assert len(ledger) == 10 and all(not e.get("error") for e in ledger)  # every finished answer kept
    # a re-run (any job) sends nothing more and keeps its answers
    assert _jobs(stub, tmp_path, jobs=1, each=8, max_queries=10, max_cost=None)[0]["capped"]
    assert stub.requests == 10 and len(_ledger(tmp_path)) == 10


def test_concurrent_jobs_share_the_cost_cap(stub, tmp_path):
    cap = 0.1  # a query costs (20 + 5) * 100 / 1e6 = $0.0025 and first reserves its worst case, ~$0.055
    results = _jobs(stub, tmp_path, jobs=3, each=10, max_queries=None, max_cost=cap)
    ledger = _ledger(tmp_path)
    spent = sum(e["provenance"]["cost_usd"] for e in ledger)
    assert 0 < spent <= cap and stub.requests == len(ledger) < 30
    assert all(r["capped"] and "teacher.max_cost_usd=0.1" in r["capped"] for r in results)
    tally = json.loads(next((tmp_path / "teacher").glob("*.budget.json")).read_text())
    assert tally["queries"] == len(ledger) and abs(tally["cost_usd"] - spent) < 1e-9 and tally["in_flight_usd"] < 1e-9


def test_the_tally_starts_from_the_ledger_and_a_killed_reservation_stays_counted(tmp_path):
    cache = TeacherCache(tmp_path, {"name": "t"})
    for i in range(3):
        cache.append(f"k{i}", {"text": "x"}, {"cost_usd": 0.0})
    budget = Budget.shared(5, None, TeacherCache(tmp_path, {"name": "t"}))
    assert budget.queries == 3
    budget.reserve(0.0)  # a job killed here never settles: the query may have reached the endpoint
    other = Budget.shared(5, None, TeacherCache(tmp_path, {"name": "t"}))
    other.reserve(0.0)
    with pytest.raises(BudgetExceeded, match="max_queries=5 reached .*sharing"):
        other.reserve(0.0)


def test_an_uncapped_job_keeps_no_tally_and_a_capped_one_counts_its_ledger(tmp_path):
    cache = TeacherCache(tmp_path, {"name": "t"})
    free = Budget.shared(None, None, cache)
    free.reserve(0.0)
    cache.append("k", {"text": "x"}, {"cost_usd": 0.0})
    free.settle(0.0, 0.0)
    assert free.tally is None and not cache.budget_path.exists()
    assert Budget.shared(10, None, TeacherCache(tmp_path, {"name": "t"})).queries == 1
