"""Stage `traces`: the teacher's trace for every pool problem."""
from __future__ import annotations

from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, config_slice


def traces(ctx: RunContext, pool: StageResult) -> StageResult:
    """Teacher traces for every pool problem, through the teacher cache (see
    `reasonbridge.curation.teacher_cache`): a killed run re-queries nothing that finished."""
    cfg = ctx.cfg
    teacher = {k: v for k, v in config_slice(cfg.teacher).items() if k != "samples_per_problem"}  # one trace each
    config = {"teacher": teacher, "seed": cfg.seed}

    def compute(out: Path) -> None:
        from reasonbridge.curation.teacher_cache import Budget, TeacherCache, collect_traces
        from reasonbridge.curation.teachers import build_teacher
        teacher = build_teacher(cfg.teacher, seed=cfg.seed)
        cache = TeacherCache(Path(cfg.paths.cache_dir), teacher.identity)
        budget = Budget.shared(cfg.teacher.max_queries, cfg.teacher.max_cost_usd, cache)
        problems = read_jsonl(pool.path / "problems.jsonl")
        traces, usage = collect_traces(teacher, problems, cache, budget)
        write_jsonl(out / "traces.jsonl", traces)
        write_json_atomic(out / "teacher.json", {"teacher": teacher.name, "identity": teacher.identity,
                                                 "ledger": str(cache.path), **usage,
                                                 "ledger_queries": cache.queries,
                                                 "ledger_cost_usd": cache.cost_usd})
    return ctx.stage("traces", config, {"pool": pool}, compute)
