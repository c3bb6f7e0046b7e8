"""Stages `provenance` (provenance=trace: every sentence of a run's test-time outputs scored under
the teacher T, the original student S and the trained model D) and `candidates` (data=provenance:
per problem, of teacher.samples_per_problem traces the one with the most teacher-originated
sentences). Which T: the teacher itself when it has probabilities (teacher=hf_local: a local
model; teacher=openai: an endpoint returning prompt log-probabilities), else a teacher language
model trained here on the teacher's traces of the whole pool (docs/provenance.md)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf, open_dict

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.config import CONF_DIR
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages import data as data_stage
from reasonbridge.stages import eval as eval_stage
from reasonbridge.stages import student as student_stage
from reasonbridge.stages import traces as traces_stage
from reasonbridge.stages import train as train_stage
from reasonbridge.stages.benchmark import benchmark_label
from reasonbridge.stages.context import RunContext, config_slice, student_path

SAMPLE_SEED_STRIDE = 100003  # candidate j's teacher seed: seed + j * stride (sample 0: the run's traces)
TEACHER_LM_SAMPLE = 1000  # the teacher language model's training traces: a sample no candidate uses


@dataclass
class Teacher:
    """T as the provenance stages see it: what identifies it, the stages it came from, and how to
    load its scorer."""

    describe: str  # the run's param provenance/teacher
    config: dict
    upstream: dict[str, StageResult] = field(default_factory=dict)
    load: Callable = None
    metrics: dict[str, float] = field(default_factory=dict)


def option(group: str, name: str):
    return OmegaConf.load(CONF_DIR / group / f"{name}.yaml")


def sample_traces(ctx: RunContext, pool: StageResult, j: int, prefix: str) -> StageResult:
    """The teacher's traces of the pool from teacher seed seed + j·stride (its own cached traces stage)."""
    if j == 0:
        return traces_stage.traces(ctx, pool)
    child = ctx.derived(prefix)
    with open_dict(child.cfg):
        child.cfg.seed = ctx.cfg.seed + j * SAMPLE_SEED_STRIDE
    return traces_stage.traces(child, pool)


def teacher(ctx: RunContext, pool: StageResult, benches: list[tuple]) -> Teacher:
    cfg = ctx.cfg
    pcfg = cfg.provenance
    if cfg.teacher.name == "hf_local":
        def load():
            from reasonbridge.models.loading import load_model
            from reasonbridge.provenance.score import LocalScorer
            model, tok = load_model(cfg.teacher.model, cfg.teacher.dtype)
            return LocalScorer(model, tok, name="T", batch_size=pcfg.batch_size)
        return Teacher(f"hf_local:{cfg.teacher.model}", {"hf_local": cfg.teacher.model}, load=load)
    if cfg.teacher.name == "openai":
        def load():
            from reasonbridge.provenance.score import EndpointScorer
            key = os.environ.get(cfg.teacher.api_key_env) if cfg.teacher.api_key_env else None
            return EndpointScorer(cfg.teacher.base_url, cfg.teacher.model, api_key=key, name="T",
                                  prompt_format=pcfg.prompt_format, timeout_s=cfg.teacher.timeout_s)
        return Teacher(f"endpoint:{cfg.teacher.base_url}#{cfg.teacher.model}",
                       {"endpoint": cfg.teacher.base_url, "model": cfg.teacher.model,
                        "prompt_format": pcfg.prompt_format}, load=load)
    # the symbolic teacher has no probabilities: a language model trained on its traces stands in
    lm = pcfg.teacher_lm
    train_node = config_slice(cfg.train)
    if lm.epochs is not None:
        train_node["epochs"] = lm.epochs
    tctx = ctx.derived("teacher_lm", model=option("model", lm.model), adapters=option("adapters", lm.adapters),
                       data=option("data", "full"), train=train_node, inference=option("inference", "none"))
    built = student_stage.student(tctx)
    written = sample_traces(tctx, pool, TEACHER_LM_SAMPLE, "teacher_lm_sample")
    selected = data_stage.data(tctx, written, {})
    trained = train_stage.train(tctx, built, selected)
    metrics = {}
    for bcfg, bench in benches:  # T's own accuracy, beside the student's
        if bcfg.name == "lm_eval":
            continue
        ev = eval_stage.evaluate_benchmark(tctx, built, trained, bench, bcfg)
        metrics.update({f"teacher_lm/{k}": v for k, v in json.loads((ev.path / "metrics.json").read_text()).items()
                        if k.startswith("acc/")})

    def load():
        from reasonbridge.provenance.score import LocalScorer
        from reasonbridge.training.run import load_trained
        model, tok = load_trained(student_path(built), trained.path, tctx.cfg.model.dtype)
        return LocalScorer(model, tok, name="T", batch_size=pcfg.batch_size)
    return Teacher(f"teacher_lm:{lm.model}+{lm.adapters}", {"teacher_lm": config_slice(lm)},
                   {"teacher_lm/student": built, "teacher_lm/train": trained}, load, metrics)


def local_scorer(path: str, trained: StageResult | None, dtype: str, name: str, batch_size: int):
    from reasonbridge.provenance.score import LocalScorer
    from reasonbridge.training.run import load_trained
    model, tok = load_trained(path, trained.path if trained else None, dtype)
    return LocalScorer(model, tok, name=name, batch_size=batch_size)


def trace(ctx: RunContext, student: StageResult, trained: StageResult | None, bench: StageResult, bcfg,
          ev: StageResult, t: Teacher) -> dict[str, float]:
    """The provenance stage of one benchmark's evaluation; returns its metrics."""
    from reasonbridge.evaluation.benchmarks import spec_of
    cfg = ctx.cfg
    pcfg = cfg.provenance
    label = benchmark_label(bcfg)
    config = {"alpha": pcfg.alpha, "beta": pcfg.beta, "max_outputs": pcfg.max_outputs, "teacher": t.config,
              "benchmark": label}
    upstream = {"eval": ev, "student": student, **({"model": trained} if trained else {}), **t.upstream}

    def compute(out: Path) -> None:
        import time
        from reasonbridge.provenance.trace import metrics, trace as trace_rows
        problems = {p["id"]: p for p in read_jsonl(bench.path / "problems.jsonl")}
        instruction = spec_of(bcfg.name).instruction
        preds = read_jsonl(ev.path / "predictions" / f"{label}.jsonl")[:pcfg.max_outputs]
        outputs = [{"id": r["id"], "sample": r["sample"], "problem": problems[r["id"]]["problem"],
                    "instruction": instruction, "text": r["output"], "correct": r["correct"]} for r in preds]
        start = time.perf_counter()
        s = local_scorer(student_path(student), None, cfg.model.dtype, "S", pcfg.batch_size)
        d = local_scorer(student_path(student), trained, cfg.model.dtype, "D", pcfg.batch_size) if trained else s
        rows = trace_rows(outputs, {"T": t.load(), "S": s, "D": d}, alpha=pcfg.alpha, beta=pcfg.beta)
        seconds = time.perf_counter() - start
        (out / "provenance").mkdir()
        write_jsonl(out / "provenance" / f"{label}.jsonl", rows)
        m = metrics(rows, label if cfg.benchmarks else None)
        write_json_atomic(out / "metrics.json", m)
        write_json_atomic(out / "provenance.json", {"teacher": t.describe, "scoring_s": seconds,
                                                    "outputs": len(outputs), "sentences": len(rows)})
    res = ctx.stage("provenance", config, upstream, compute, label=ctx.label("provenance", bcfg))
    return json.loads((res.path / "metrics.json").read_text())


def choose(candidates: list[dict], beta: float) -> list[dict]:
    """Per problem, the candidate with the most teacher-originated sentences (ties: the lowest
    sample). ``candidates``: ``{problem_id, sample, p_T: [...], p_S: [...]}``."""
    from reasonbridge.provenance.categories import teacher_originated
    best: dict[str, tuple] = {}
    for c in candidates:
        n = teacher_originated(c["p_T"], c["p_S"], beta)
        kept = best.get(c["problem_id"])
        if kept is None or (n, -c["sample"]) > (kept[0], -kept[1]["sample"]):
            best[c["problem_id"]] = (n, c)
    return [c for _, c in sorted(best.values(), key=lambda nc: nc[1]["problem_id"])]


def candidates(ctx: RunContext, student: StageResult, pool: StageResult, written: StageResult,
               t: Teacher) -> StageResult:
    """data=provenance: teacher.samples_per_problem traces per pool problem, each scored under T and
    S on the training context; the chosen ones are written as the traces the data stage filters."""
    cfg = ctx.cfg
    k = cfg.teacher.samples_per_problem
    samples = [written] + [sample_traces(ctx, pool, j, f"candidates/sample{j}") for j in range(1, k)]
    config = {"beta": cfg.provenance.beta, "samples_per_problem": k, "teacher": t.config}
    upstream = {**{f"sample{j}": s for j, s in enumerate(samples)}, "student": student, "pool": pool, **t.upstream}

    def compute(out: Path) -> None:
        from reasonbridge.provenance.trace import items_of
        problems = {p["id"]: p for p in read_jsonl(pool.path / "problems.jsonl")}
        rows = []
        for j, res in enumerate(samples):
            for tr in read_jsonl(res.path / "traces.jsonl"):
                if tr.get("text"):
                    rows.append({"trace": tr, "sample": j, "id": tr["problem_id"],
                                 "problem": problems[tr["problem_id"]]["problem"], "text": tr["text"]})
        items = items_of(rows)
        p_t = t.load().score(items)
        p_s = local_scorer(student_path(student), None, cfg.model.dtype, "S", cfg.provenance.batch_size).score(items)
        scored = []
        for item, pt, ps in zip(items, p_t, p_s):
            both = [(a, b) for a, b in zip(pt, ps) if a is not None and b is not None]
            scored.append({"problem_id": item["id"], "sample": item["sample"], "trace": item["trace"],
                           "p_T": [a for a, _ in both], "p_S": [b for _, b in both]})
        chosen = choose(scored, cfg.provenance.beta)
        write_jsonl(out / "traces.jsonl", [{**c["trace"], "sample": c["sample"]} for c in chosen])
        write_jsonl(out / "candidates.jsonl", [{k2: c[k2] for k2 in ("problem_id", "sample", "p_T", "p_S")}
                                               for c in scored])
        from reasonbridge.provenance.categories import teacher_originated
        counts = [teacher_originated(c["p_T"], c["p_S"], cfg.provenance.beta) for c in chosen]
        write_json_atomic(out / "teacher.json", {
            **json.loads((written.path / "teacher.json").read_text()), "teacher_lm": t.describe,
            "chosen_not_sample0": sum(c["sample"] != 0 for c in chosen) / max(1, len(chosen)),
            "teacher_sentences_chosen": sum(counts) / max(1, len(counts))})
    return ctx.stage("candidates", config, upstream, compute)
