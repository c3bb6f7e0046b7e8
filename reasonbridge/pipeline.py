"""The whole method as a chain of cached stages, one MLflow run per call.

student ─────────────────────────────────────────┬──► train ──► eval ──► (diagnose)
   └──► reference ──► attempts (per reference) ─┐ │
benchmark ──► pool ──► traces ───────────────► data
Each stage (one module of reasonbridge/stages/) reads only its config slice and the artifacts of
the stages before it; its artifact is stored under a key derived from both (see
`reasonbridge.cache`). The MLflow run around the chain is reasonbridge/tracking/lifecycle.py's.
"""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from reasonbridge.cache import StageResult
from reasonbridge.config import STOP_ALIASES, validate
from reasonbridge.errors import Interrupted
from reasonbridge.stages import attempts, benchmark, bridge, checks, data, diagnose, pool, student, traces, train
from reasonbridge.stages import eval as eval_stage  # `eval`, the stage's name, is a builtin
from reasonbridge.stages import provenance as provenance_stage
from reasonbridge.stages.context import PipelineResult, RunContext, student_path

__all__ = ["Pipeline", "PipelineResult", "run_experiment"]


class Pipeline:
    def __init__(self, cfg: DictConfig):
        validate(cfg)
        benchmark.check_before_work(cfg)
        checks.before_work(cfg)  # files, model folders, the teacher's key, price and endpoint
        self.cfg = cfg
        self.ctx = RunContext(cfg)

    @property
    def result(self) -> PipelineResult:
        return self.ctx.result

    def student(self) -> StageResult:
        return student.student(self.ctx)

    @staticmethod
    def student_path(res: StageResult) -> str:
        return student_path(res)

    def _suite(self) -> dict:  # the synthetic generators' arguments (bench/ scripts use them)
        return self.ctx.suite()

    def _stop(self, name: str) -> bool:
        if STOP_ALIASES.get(self.cfg.stop_after, self.cfg.stop_after) == name:
            self.result.stopped_after = name
            return True
        return False

    def run(self) -> PipelineResult:
        ctx, cfg = self.ctx, self.cfg
        built = self.student()
        if self._stop("student"):
            return self.result
        bcfgs = benchmark.benchmark_configs(cfg)
        benches = {ctx.label("benchmark", b): benchmark.benchmark(ctx, b) for b in bcfgs}
        if self._stop("benchmark"):
            return self.result
        problems = pool.pool(ctx, benches)
        if self._stop("pool"):
            return self.result
        evals = list(zip(bcfgs, benches.values()))
        # distill=bridge, or a teacher budget below the pool: stages/bridge.py; else the teacher writes all
        written = bridge.teacher_side(ctx, problems, evals) if bridge.budgeted(cfg) else traces.traces(ctx, problems)
        if self._stop("traces"):
            return self.result
        solved = attempts.attempts(ctx, built, problems) if cfg.data.difficulty else {}
        teacher = None  # provenance's T (docs/provenance.md)
        if cfg.provenance.name != "none" or cfg.data.name == "provenance":
            teacher = provenance_stage.teacher(ctx, problems, list(zip(bcfgs, benches.values())))
            self.result.metrics.update(teacher.metrics)
            self.result.params["provenance/teacher"] = teacher.describe
        if cfg.data.name == "provenance":
            written = provenance_stage.candidates(ctx, built, problems, written, teacher)
        selected = data.data(ctx, written, solved)
        if self._stop("data"):
            return self.result
        trained = None if cfg.adapters.name == "none" else train.train(ctx, built, selected)
        if self._stop("train"):
            return self.result
        eval_stage.evaluate_jointly(ctx, built, trained, evals)
        for bcfg, bench in evals:
            ev = eval_stage.evaluate_benchmark(ctx, built, trained, bench, bcfg)
            self.result.metrics.update(json.loads((ev.path / "metrics.json").read_text()))
            self.result.metrics.update(eval_stage.intervention_effect(ctx, built, trained, bench, bcfg, ev))
            if cfg.provenance.name == "trace" and bcfg.name != "lm_eval":
                self.result.metrics.update(provenance_stage.trace(ctx, built, trained, bench, bcfg, ev, teacher))
            if cfg.diagnostics.name != "none" and bcfg.name != "lm_eval":
                diag = diagnose.diagnose(ctx, built, trained, bench, ev, bcfg)
                self.result.metrics.update(json.loads((diag.path / "metrics.json").read_text()))
        return self.result


def run_experiment(cfg: DictConfig, run_file: Path | None = None) -> PipelineResult:
    """Run the pipeline inside one MLflow run and log what every stage produced (`run_file`: see
    `reasonbridge.tracking.lifecycle.run_tracked`)."""
    pipeline = Pipeline(cfg)  # validates before any work or any MLflow run (and before MLflow's 2 s import)
    from reasonbridge.stages.outputs import log_stage_outputs
    from reasonbridge.tracking.lifecycle import run_tracked

    if not cfg.progress:
        import transformers
        transformers.utils.logging.disable_progress_bar()

    def execute() -> PipelineResult:
        try:
            return pipeline.run()
        except KeyboardInterrupt:  # Ctrl-C: say what finished (the stage cache keeps it)
            raise Interrupted(list(pipeline.result.stages), cfg.paths.cache_dir) from None

    return run_tracked(cfg, execute, lambda logger, result: log_stage_outputs(logger, cfg, result),
                       run_file=run_file)
