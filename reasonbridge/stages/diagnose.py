"""Stage `diagnose` (opt-in, `diagnostics=student`): step and teacher-forced metrics of one evaluated
benchmark, keyed on its eval stage so switching diagnostics on recomputes nothing else."""
from __future__ import annotations

from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl
from reasonbridge.stages.benchmark import benchmark_label
from reasonbridge.stages.context import RunContext, config_slice
from reasonbridge.stages.eval import load_eval_model


def diagnose(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult, ev: StageResult,
             bcfg) -> StageResult:
    """The opt-in diagnostics of one evaluated benchmark (`diagnostics=student`), beside its eval stage."""
    from reasonbridge.evaluation.benchmarks import spec_of
    cfg = ctx.cfg
    label = benchmark_label(bcfg)
    instruction, suffix = spec_of(bcfg.name).instruction, cfg.inference.think_start or ""
    config = {"diagnostics": config_slice(cfg.diagnostics), "benchmark": label, "instruction": instruction,
              "prompt_suffix": suffix}
    upstream = {"eval": ev, "model": trained or student, "benchmark": bench}

    def compute(out: Path) -> None:
        from reasonbridge.diagnostics.metrics import diagnostic_metrics
        model, tokenizer = load_eval_model(ctx, student, trained) if cfg.diagnostics.teacher_forced else (None, None)
        metrics = diagnostic_metrics(read_jsonl(bench.path / "problems.jsonl"),
                                     read_jsonl(ev.path / "predictions" / f"{label}.jsonl"), benchmark=label,
                                     steps=cfg.diagnostics.steps, teacher_forced=cfg.diagnostics.teacher_forced,
                                     model=model, tokenizer=tokenizer, instruction=instruction, prompt_suffix=suffix)
        write_json_atomic(out / "metrics.json", metrics)
    return ctx.stage("diagnose", config, upstream, compute, label=ctx.label("diagnose", bcfg))

# -- the whole chain ----------------------------------------------------------------
