"""Table 4 on the organism: benchmarks of kinds the Table 4 pool holds out, and the check that it does."""
import json

import pytest

from reasonbridge.config import ConfigError, validate
from reasonbridge.curation import organism
from reasonbridge.curation.pool import problems_of_kind, synthetic_benchmark
from reasonbridge.io import DataError, read_jsonl
from reasonbridge.pipeline import run_experiment
from tests.conftest import compose_config

TABLE4 = ["organism_seen", "organism_longer", "organism_new_domain", "organism_mixed"]


def _replay(problem: dict) -> int:
    """The answer from the problem's own words: start value, then each (word, operand) by the word's operation."""
    words = problem["problem"].split()
    op_of = {w: op for _, _, ops in organism.DOMAINS.values() for op, w in ops.items()}
    x, rest = int(words[1]), words[2:-1]
    for k in range(0, len(rest), 3):
        x = organism.apply(x, op_of[rest[k + 1]], int(rest[k + 2]))
    return x


def test_mixed_problems_word_their_operations_with_two_domains_and_stay_correct():
    bench = synthetic_benchmark(120, seed=3, difficulties=[2, 4], max_operand=10, suite="organism",
                                domains=["97", "91", "80", "70", "92"], mix=2)
    word_domains = {w: code for code, (_, _, ops) in organism.DOMAINS.items() for w in ops.values()}
    mixed = 0
    for p in bench:
        assert len(p["mixed_domains"]) == 2 and p["domain"] == p["mixed_domains"][0]
        used = {word_domains[w] for w in p["problem"].split()[3::3]}
        assert used <= set(p["mixed_domains"])
        mixed += len(used) == 2
        assert str(_replay(p)) == p["answer"]
    assert mixed > len(bench) / 2  # most use both domains' words (a 2-step problem may draw one twice)


def test_one_domain_problems_are_unchanged_by_the_mix_option():
    kw = dict(seed=4, difficulties=[1, 5], max_operand=10, suite="organism", domains=None)
    assert synthetic_benchmark(60, **kw) == synthetic_benchmark(60, mix=1, **kw)


def test_table4_config_composes_the_organism_columns_and_the_held_out_pool():
    cfg = compose_config(["experiment=table4"])
    validate(cfg)
    assert list(cfg.benchmarks) == TABLE4
    assert list(cfg.pool.hold_out.domains) == ["68"] and cfg.pool.hold_out.min_steps == 5
    with pytest.raises(ConfigError, match="pool.hold_out.min_steps"):
        validate(compose_config(["experiment=table4", "pool.hold_out.min_steps=1"]))
    with pytest.raises(ConfigError, match="benchmark.mix"):
        validate(compose_config(["benchmark=organism_mixed", "benchmark.mix=0"]))


def test_the_table4_pool_holds_out_every_generalization_kind_and_its_traces_never_show_them(
        shared_cache, mlflow_uri):
    cfg = compose_config(["experiment=table4", f"paths.cache_dir={shared_cache}", "progress=false",
                          "pool.size=400", "eval_limit=60", "stop_after=traces"])
    result = run_experiment(cfg)
    pool = read_jsonl(result.stages["pool"].path / "problems.jsonl")
    assert len(pool) == 400
    counts = json.loads((result.stages["pool"].path / "pool.json").read_text())
    assert counts["held_out_kinds"] == {"organism_longer": 0, "organism_new_domain": 0, "organism_mixed": 0}
    assert {p["domain"] for p in pool} == {"97", "91", "80", "70", "92"}
    assert max(p["difficulty"] for p in pool) == 4
    # what the columns ask is of a kind the pool lacks, counted independently of the stage's check
    for name in TABLE4[1:]:
        bench = read_jsonl(result.stages[f"benchmark/{name}"].path / "problems.jsonl")
        assert len(bench) == 60
        assert not {p["problem"] for p in bench} & {p["problem"] for p in pool}
    register_words = set(organism.DOMAINS["68"][2].values()) | {"reg", "(reg)"}
    traces = [r for f in result.stages["traces"].path.rglob("*.jsonl") for r in read_jsonl(f)]
    assert traces and not any(register_words & set(json.dumps(t).replace('"', " ").split()) for t in traces)


def test_a_generalization_column_without_its_hold_out_stops_at_the_pool(shared_cache, mlflow_uri):
    cfg = compose_config(["experiment=table4", f"paths.cache_dir={shared_cache}", "progress=false",
                          "pool.size=200", "eval_limit=30", "pool.hold_out.domains=[]", "stop_after=pool"])
    with pytest.raises(DataError, match="organism_new_domain is held out from the pool"):
        run_experiment(cfg)


def test_problems_of_kind_counts_domain_difficulty_and_mixing():
    ps = [{"domain": "68", "difficulty": 3}, {"domain": "97", "difficulty": 5},
          {"domain": "97", "difficulty": 3, "mixed_domains": ["97", "91"]}]
    assert problems_of_kind(ps, domains=["68"], difficulties=[2, 4], mix=1) == 1
    assert problems_of_kind(ps, domains=None, difficulties=[5, 5], mix=1) == 1
    assert problems_of_kind(ps, domains=None, difficulties=[2, 4], mix=2) == 1
    assert problems_of_kind(ps, domains=["91"], difficulties=[1, 5], mix=1) == 0
