from reasonbridge.curation.pool import split_of, synthetic_benchmark, synthetic_pool

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
