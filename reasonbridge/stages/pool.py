"""Stage `pool`: the problem pool (synthetic or local files), cleaned of duplicates and of anything
that overlaps an evaluated benchmark, every problem with an MSC domain."""
from __future__ import annotations

from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import DataError, read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, config_slice


def pool(ctx: RunContext, benches: dict[str, StageResult]) -> StageResult:
    cfg = ctx.cfg
    config = {"pool": config_slice(cfg.pool), "seed": cfg.seed}
    hold = config["pool"].pop("hold_out")
    if hold["domains"] or hold["min_steps"] is not None:  # keyed only when set: pools without one keep their keys
        config["hold_out"] = hold
    if cfg.pool.name == "jsonl":  # the files' contents, not just their names, decide the pool
        from reasonbridge.curation.pool import file_sha256
        config["files"] = {p: file_sha256(Path(p)) for p in cfg.pool.paths}
    else:  # the synthetic pool ignores the file options
        config["pool"] = {k: v for k, v in config["pool"].items() if k not in ("paths", "fields", "answer_regex")}
        if cfg.pool.suite == "organism":
            config["suite"] = ctx.suite_key()
    if cfg.pool.domain_classifier == "teacher":
        config["classifier"] = config_slice(cfg.teacher)

    def compute(out: Path) -> None:
        from reasonbridge.curation.filters import classify_domain
        from reasonbridge.curation.pool import clean_pool, load_problem_files, synthetic_pool
        from reasonbridge.problems import DOMAINS
        from reasonbridge.stages.benchmark import benchmark_configs, benchmark_label, decontamination_unavailable
        labels = [benchmark_label(b) for b in benchmark_configs(cfg)]  # the order the pipeline built `benches` in
        labels = labels if len(labels) == len(benches) else list(benches)
        by_bench = {label: [p["problem"] for p in read_jsonl(b.path / "problems.jsonl")]
                    for label, b in zip(labels, benches.values())}
        bench_texts = [t for texts in by_bench.values() for t in texts]
        if cfg.pool.name == "jsonl":
            problems = load_problem_files(list(cfg.pool.paths), dict(cfg.pool.fields),
                                          answer_regex=cfg.pool.answer_regex, base_dir=Path.cwd())
        else:
            problems, _ = synthetic_pool(cfg.pool.size, seed=cfg.seed, exclude_texts=set(bench_texts),
                                         **pool_suite(ctx))
        problems, counts = clean_pool(problems, by_bench, near_dup_threshold=cfg.pool.near_dup_threshold,
                                      ngram=cfg.pool.decontam_ngram)
        counts["held_out_kinds"] = check_held_out(cfg, problems)
        counts["decontamination_unavailable"] = {label: why for label, b in zip(labels, benches.values())
                                                 if (why := decontamination_unavailable(b))}
        if cfg.pool.name == "jsonl" and len(problems) > cfg.pool.size:
            problems = problems[:cfg.pool.size]
            counts["kept"] = len(problems)
        if cfg.pool.domain_classifier == "teacher" and any(not p.get("domain") for p in problems):
            from reasonbridge.curation.filters import classify_domains_with_teacher
            from reasonbridge.curation.teacher_cache import Budget, TeacherCache
            from reasonbridge.curation.teachers import build_teacher
            teacher = build_teacher(cfg.teacher, seed=cfg.seed)
            cache = TeacherCache(Path(cfg.paths.cache_dir), teacher.identity)
            budget = Budget.shared(cfg.teacher.max_queries, cfg.teacher.max_cost_usd, cache)
            counts["domains_classified"] = classify_domains_with_teacher(problems, teacher, cache, budget)
        for p in problems:  # a domain for every problem: from the pool's metadata, else classified
            p["domain"] = p.get("domain") or classify_domain(p["problem"])
            p.setdefault("domain_name", DOMAINS.get(p["domain"], p["domain"]))
        if not problems:
            source = f"pool.paths={list(cfg.pool.paths)}" if cfg.pool.name == "jsonl" else f"pool.size={cfg.pool.size}"
            raise DataError(f"{source}: no problem is left after removing duplicates and benchmark overlaps "
                            f"(counts: {counts}); give problems that are not the benchmark's own")
        write_jsonl(out / "problems.jsonl", problems)
        write_json_atomic(out / "pool.json", counts)
    return ctx.stage("pool", config, benches, compute)


def pool_suite(ctx: RunContext) -> dict:
    """The generator arguments of the synthetic pool: the suite's, less `pool.hold_out`."""
    from reasonbridge.curation.pool import held_out_pool_suite
    hold = ctx.cfg.pool.hold_out
    if not hold.domains and hold.min_steps is None:
        return ctx.suite()
    if ctx.cfg.pool.suite == "organism":
        from reasonbridge.curation.organism import DOMAINS
    else:
        from reasonbridge.problems import DOMAINS
    return held_out_pool_suite(ctx.suite(), list(hold.domains), hold.min_steps, DOMAINS)


def check_held_out(cfg, problems: list[dict]) -> dict[str, int]:
    """For each generalization benchmark (`held_out: true`), the pool problems of its kind, which must
    be none: a column that says "never seen in a trace" is checked, not assumed."""
    from reasonbridge.curation.pool import problems_of_kind
    from reasonbridge.stages.benchmark import benchmark_configs, benchmark_label
    out = {}
    for bcfg in benchmark_configs(cfg):
        if not bcfg.get("held_out"):
            continue
        n = problems_of_kind(problems, domains=bcfg.domains, difficulties=list(bcfg.difficulties), mix=bcfg.mix)
        if n:
            raise DataError(f"benchmark {benchmark_label(bcfg)} is held out from the pool (held_out: true), but "
                            f"{n} pool problems are of its kind (domains {list(bcfg.domains or [])}, "
                            f"difficulties {list(bcfg.difficulties)}, mix {bcfg.mix}): set pool.hold_out "
                            "(e.g. experiment=table4 sets domains=[68] and min_steps=5)")
        out[benchmark_label(bcfg)] = 0
    return out
