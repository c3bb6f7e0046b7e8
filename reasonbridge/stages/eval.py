"""Stage `eval`: the (trained) student answers each benchmark under the inference strategy and every
answer is judged; benchmarks not yet cached are generated in one joint pass; lm-eval tasks run
through lm-eval-harness."""
from __future__ import annotations

from pathlib import Path

from omegaconf import open_dict

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.benchmark import benchmark_label, local_lm_eval_benchmark
from reasonbridge.stages.context import RunContext, config_slice, student_path


def inference_identity(icfg) -> dict:
    """The inference config an eval is keyed on. A strategy that can never inject anything drops
    its phrases, so the no-intervention baselines of GII and budget forcing are one cached eval."""
    from reasonbridge.inference.strategies import build_strategy
    config = config_slice(icfg)
    if not build_strategy(icfg).intervenes:
        for name in ("phrases", "cite", "intervention_format"):
            config.pop(name, None)
    return config


def eval_spec(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult, bcfg) -> dict:
    """What an eval stage is keyed on, and where its judged predictions wait until it completes."""
    from reasonbridge.evaluation.benchmarks import checker_of, spec_of
    cfg = ctx.cfg
    label = benchmark_label(bcfg)
    checker, instruction = checker_of(bcfg), spec_of(bcfg.name).instruction
    config = {"inference": inference_identity(cfg.inference), "benchmark": label, "checker": checker,
              "instruction": instruction, "seed": cfg.seed}
    if checker == "code":
        config["code_timeout_s"] = bcfg.code_timeout_s
    upstream = {"model": trained or student, "benchmark": bench}
    key = ctx.key("eval", config, upstream)
    # judged predictions survive a kill beside the artifact, keyed like it, until it is in place
    partial = ctx.cache.path("eval", key).with_suffix(".partial.jsonl")
    return {"label": label, "checker": checker, "instruction": instruction, "config": config,
            "upstream": upstream, "key": key, "partial": partial}


def load_eval_model(ctx: RunContext, student: StageResult, trained: StageResult | None):
    """The evaluated model, loaded once per run (every benchmark's eval stage shares it)."""
    cfg = ctx.cfg
    if ctx.eval_model is None:
        if cfg.model.source == "api":
            from reasonbridge.inference.api_model import ApiModel
            ctx.eval_model = ApiModel(cfg.model, cfg.inference, seed=cfg.seed), None
        else:
            from reasonbridge.training.run import load_trained
            ctx.eval_model = load_trained(student_path(student), trained.path if trained else None,
                                            cfg.model.dtype)
    return ctx.eval_model


def evaluate_jointly(ctx: RunContext, student: StageResult, trained: StageResult | None,
                      evals: list[tuple]) -> None:
    """Generate for every benchmark whose eval stage is not cached in one pass (shared batches),
    leaving judged predictions where each eval stage resumes from."""
    from reasonbridge.evaluation.evaluate import EvalJob, evaluate_many
    cfg = ctx.cfg
    forced = bool({"eval", "all"} & set(cfg.force))
    jobs = []
    for bcfg, bench in evals:
        if bcfg.name == "lm_eval":
            continue
        spec = eval_spec(ctx, student, trained, bench, bcfg)
        if ctx.cache.exists("eval", spec["key"]) and not forced:
            continue
        if forced:
            spec["partial"].unlink(missing_ok=True)
        spec["partial"].parent.mkdir(parents=True, exist_ok=True)
        jobs.append(EvalJob(spec["label"], read_jsonl(bench.path / "problems.jsonl"), spec["checker"],
                            spec["instruction"], bcfg.code_timeout_s, spec["partial"],
                            bcfg.unsafe_unsandboxed_code))
    if len(jobs) < 2:
        return
    model, tokenizer = load_eval_model(ctx, student, trained)
    evaluate_many(model, tokenizer, jobs, inference=cfg.inference, seed=cfg.seed, progress=cfg.progress,
                  check_workers=max(b.check_workers for b, _ in evals))
    ctx.joint_done = True  # the eval stages now only collect what was judged


def evaluate_benchmark(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult,
             bcfg=None, stage_label: str | None = None) -> StageResult:
    cfg = ctx.cfg
    bcfg = bcfg if bcfg is not None else cfg.benchmark
    if bcfg.name == "lm_eval":
        return evaluate_lm_eval(ctx, student, trained, bench, bcfg, benchmark_label(bcfg))
    spec = eval_spec(ctx, student, trained, bench, bcfg)
    label, partial = spec["label"], spec["partial"]
    if {"eval", "all"} & set(cfg.force) and not ctx.joint_done:
        partial.unlink(missing_ok=True)

    def compute(out: Path) -> None:
        from reasonbridge.evaluation.evaluate import evaluate
        model, tokenizer = load_eval_model(ctx, student, trained)
        partial.parent.mkdir(parents=True, exist_ok=True)
        predictions, metrics = evaluate(model, tokenizer, read_jsonl(bench.path / "problems.jsonl"),
                                        benchmark=label, inference=cfg.inference, seed=cfg.seed,
                                        progress=cfg.progress, checker=spec["checker"],
                                        instruction=spec["instruction"], check_workers=bcfg.check_workers,
                                        code_timeout_s=bcfg.code_timeout_s, resume_path=partial,
                                        unsafe_unsandboxed_code=bcfg.unsafe_unsandboxed_code)
        (out / "predictions").mkdir()
        write_jsonl(out / "predictions" / f"{label}.jsonl", predictions)
        write_json_atomic(out / "metrics.json", metrics)
    result = ctx.stage("eval", spec["config"], spec["upstream"], compute, label=stage_label or ctx.label("eval", bcfg))
    partial.unlink(missing_ok=True)
    return result


def intervention_effect(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult,
                        bcfg, ev: StageResult) -> dict[str, float]:
    """What the interventions changed: the same model evaluated without them (its own cached eval
    stage, the same thinking budget), compared problem by problem. Metrics: the share of answers
    that went wrong -> right (``interventions/fixed/<b>``) and right -> wrong (``broke``), and of
    problems where an intervention fired."""
    cfg = ctx.cfg
    if bcfg.name == "lm_eval" or cfg.inference.name == "none" or not cfg.inference.max_interventions:
        return {}
    plain = cfg.copy()
    with open_dict(plain):
        plain.inference.name = "none"
        plain.inference.max_interventions = 0
        plain.inference.min_thinking_tokens = 0
    ctx.cfg = plain
    try:
        base = evaluate_benchmark(ctx, student, trained, bench, bcfg,
                                  stage_label=ctx.label("eval", bcfg) + "/without_interventions")
    finally:
        ctx.cfg = cfg
    label = benchmark_label(bcfg)
    before = {(r["id"], r["sample"]): r["correct"] for r in read_jsonl(base.path / "predictions" / f"{label}.jsonl")}
    after = read_jsonl(ev.path / "predictions" / f"{label}.jsonl")
    n = len(after)
    return {f"interventions/fired/{label}": sum(any(r["interventions"].values()) for r in after) / n,
            f"interventions/fixed/{label}": sum(r["correct"] and not before[(r["id"], r["sample"])] for r in after) / n,
            f"interventions/broke/{label}": sum(before[(r["id"], r["sample"])] and not r["correct"] for r in after) / n,
            f"acc_without_interventions/{label}": sum(before.values()) / len(before)}


def evaluate_lm_eval(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult, bcfg,
                      label: str) -> StageResult:
    """Any lm-eval task with this run's model and inference strategy (lm-eval's own metrics too)."""
    cfg = ctx.cfg
    config = {"inference": config_slice(cfg.inference), "task": bcfg.task, "size": bcfg.size,
              "num_fewshot": bcfg.num_fewshot, "seed": cfg.seed}
    upstream = {"model": trained or student, "benchmark": bench}
    # the model's answers survive a kill beside the artifact, keyed like it, until it is in place
    partial = ctx.cache.path("eval", ctx.key("eval", config, upstream)).with_suffix(".partial.jsonl")
    if {"eval", "all"} & set(cfg.force):
        partial.unlink(missing_ok=True)

    def compute(out: Path) -> None:
        from reasonbridge.evaluation.lm_eval_model import run_lm_eval
        model, tokenizer = load_eval_model(ctx, student, trained)
        local = local_lm_eval_benchmark(bcfg)
        partial.parent.mkdir(parents=True, exist_ok=True)
        predictions, metrics = run_lm_eval(model, tokenizer, bcfg, cfg.inference, label=label, seed=cfg.seed,
                                           problems_file=bench.path / "problems.jsonl" if local else None,
                                           local=local, workdir=out, progress=cfg.progress, resume_path=partial)
        (out / "predictions" / label).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "predictions" / f"{label}.jsonl", predictions)
        write_json_atomic(out / "metrics.json", metrics)
    result = ctx.stage("eval", config, upstream, compute, label=ctx.label("eval", bcfg))
    partial.unlink(missing_ok=True)
    return result
