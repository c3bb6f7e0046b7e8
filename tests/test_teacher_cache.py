"""The teacher cache: keys, crash safety, restart without re-querying, exact budget caps."""
import threading

import pytest

from reasonbridge.curation.pool import synthetic_pool
from reasonbridge.curation.teacher_cache import Budget, BudgetExceeded, TeacherCache, collect_traces, query_key
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher


@pytest.fixture(scope="module")
def problems():
    return synthetic_pool(40, seed=4, difficulties=[1, 5], max_operand=20, domains=None, exclude_texts=set())[0]


class DiesAfter(SymbolicTeacher):
    """The symbolic teacher, killed (KeyboardInterrupt) after answering ``n`` queries in this run."""

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def run(self, jobs, emit, budget):
        def counted(key, response, prov):
            emit(key, response, prov)
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt
        super().run(jobs, counted, budget)


def test_key_depends_on_identity_prompt_and_sampling():
    k = query_key({"name": "t"}, "p", {"temperature": 0})
    assert k == query_key({"name": "t"}, "p", {"temperature": 0})
    assert len({k, query_key({"name": "u"}, "p", {"temperature": 0}), query_key({"name": "t"}, "q", {"temperature": 0}),
                query_key({"name": "t"}, "p", {"temperature": 1})}) == 4


def test_killed_run_resumes_without_requerying(tmp_path, problems):
    teacher = DiesAfter(15, defect_rate=0.2, seed=0)
    cache = TeacherCache(tmp_path, teacher.identity)
    with pytest.raises(KeyboardInterrupt):
        collect_traces(teacher, problems, cache, Budget(None, None))
    # a torn last line, as a kill in the middle of a write leaves it
    with cache.path.open("a") as f:
        f.write('{"key": "half-writ')
    restarted = TeacherCache(tmp_path, teacher.identity)
    assert restarted.queries == 15 and len(restarted.entries) == 15
    fresh = SymbolicTeacher(defect_rate=0.2, seed=0)
    traces, usage = collect_traces(fresh, problems, restarted, Budget(None, None))
    assert usage == {"queries": 25, "cache_hits": 15, "cost_usd": 0.0}
    assert [t["text"] for t in traces] == [fresh.generate(p)["text"] for p in problems]
    assert traces[0]["segments"] == fresh.generate(problems[0])["segments"] and "provenance" in traces[0]
    again = TeacherCache(tmp_path, teacher.identity)  # every line parses again after the torn one
    assert again.queries == 40 and collect_traces(fresh, problems, again, Budget(None, None))[1]["queries"] == 0
    other = TeacherCache(tmp_path, SymbolicTeacher(defect_rate=0.2, seed=1).identity)
    assert other.path != cache.path and other.queries == 0


def test_query_cap_holds_across_restarts(tmp_path, problems):
    teacher = SymbolicTeacher(seed=0)
    cache = TeacherCache(tmp_path, teacher.identity)
    with pytest.raises(BudgetExceeded, match="max_queries=10 reached"):
        collect_traces(teacher, problems, cache, Budget(10, None, queries=cache.queries))
    restarted = TeacherCache(tmp_path, teacher.identity)
    assert restarted.queries == 10
    with pytest.raises(BudgetExceeded):
        collect_traces(teacher, problems, restarted, Budget(10, None, queries=restarted.queries))
    assert TeacherCache(tmp_path, teacher.identity).queries == 10
    traces, usage = collect_traces(teacher, problems, restarted, Budget(40, None, queries=restarted.queries))
    assert usage["queries"] == 30 and usage["cache_hits"] == 10 and len(traces) == 40


def test_budget_is_exact_under_concurrency():
    budget = Budget(max_queries=None, max_cost_usd=1.0)
    granted, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        for _ in range(20):
            try:
                budget.reserve(0.03)
            except BudgetExceeded:
                return
            granted.append(1)
            budget.settle(0.03, 0.02)  # the real cost came in under the worst case

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.cost <= 1.0 and len(granted) == 49  # 49 * 0.02 + 0.03 > 1.0 stops the 50th
    q = Budget(max_queries=7, max_cost_usd=None)
    hits = []
    threads = [threading.Thread(target=lambda: hits.append(_try(q))) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(hits) == 7 and q.queries == 7


def _try(budget):
    try:
        budget.reserve(0.0)
        return True
    except BudgetExceeded:
        return False
