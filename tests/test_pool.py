from reasonbridge.curation.pool import split_of, synthetic_benchmark, synthetic_pool
from reasonbridge.curation.selection import select_traces

SUITE = dict(difficulties=[1, 5], max_operand=20, domains=None)


def test_benchmark_and_pool_never_share_a_problem():
    bench = synthetic_benchmark(200, seed=0, **SUITE)
    pool, removed = synthetic_pool(1000, seed=0, exclude_texts={p["problem"] for p in bench}, **SUITE)
    assert removed == 0  # disjoint by construction
    assert not {p["problem"] for p in bench} & {p["problem"] for p in pool}
    assert all(split_of(p["problem"]) == "heldout" for p in bench)
    assert len({p["id"] for p in pool}) == len(pool) == 1000


def test_pool_is_deterministic_and_decontaminates():
    a, _ = synthetic_pool(300, seed=5, exclude_texts=set(), **SUITE)
    b, _ = synthetic_pool(300, seed=5, exclude_texts=set(), **SUITE)
    assert a == b
    kept, removed = synthetic_pool(300, seed=5, exclude_texts={a[0]["problem"], a[7]["problem"]}, **SUITE)
    assert removed == 2 and len(kept) == 298


def test_random_selection_is_seeded_and_sized():
    traces = [{"problem_id": f"p{i}", "text": "x"} for i in range(50)] + [{"problem_id": "bad", "text": ""}]
    full, manifest = select_traces(traces, "full", size=None, seed=0)
    assert len(full) == 50 and manifest == {"variant": "full", "seed": 0, "pool": 51, "parsed": 50, "selected": 50}
    r1, _ = select_traces(traces, "random", size=10, seed=1)
    r2, _ = select_traces(list(reversed(traces)), "random", size=10, seed=1)
    assert [t["problem_id"] for t in r1] == [t["problem_id"] for t in r2] and len(r1) == 10
