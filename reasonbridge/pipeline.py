"""The whole method as a chain of cached stages, one MLflow run per call.

student ─┐
benchmark ──► pool ──► traces ──► data ──► train ──► eval
Each stage reads only its config slice and the artifacts of the stages before it; its
artifact is stored under a key derived from both (see `reasonbridge.cache`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from reasonbridge.cache import StageCache, StageResult, stage_key, write_json_atomic
from reasonbridge.config import validate
from reasonbridge.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# Bump a stage's version when its code changes what it produces.
VERSIONS = {"student": 1, "benchmark": 1, "pool": 1, "traces": 1, "data": 1, "train": 1, "eval": 2}


def _slice(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


@dataclass
class PipelineResult:
    stages: dict[str, StageResult] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    stopped_after: str | None = None


class Pipeline:
    def __init__(self, cfg: DictConfig):
        validate(cfg)
        self.cfg = cfg
        self.cache = StageCache(Path(cfg.paths.cache_dir), force=set(cfg.force))
        self.result = PipelineResult()

    # -- helpers -----------------------------------------------------------------------
    def _stage(self, name: str, config, upstream: dict[str, StageResult], compute) -> StageResult:
        key = stage_key(name, VERSIONS[name], _slice(config), {k: v.key for k, v in upstream.items()})
        res = self.cache.run(name, key, compute, meta={"config": _slice(config),
                                                         "upstream": {k: v.key for k, v in upstream.items()}})
        log.info("stage %-9s %s (%s, %.1fs)", name, key, "cached" if res.hit else "computed", res.seconds)
        self.result.stages[name] = res
        return res

    def _suite(self) -> dict:
        p = self.cfg.pool
        return {"difficulties": list(p.difficulties), "max_operand": p.max_operand,
                "domains": list(p.domains) if p.domains else None}

    def _stop(self, name: str) -> bool:
        if self.cfg.stop_after == name:
            self.result.stopped_after = name
            return True
        return False

    # -- stages ------------------------------------------------------------------------
    def student(self) -> StageResult:
        cfg = self.cfg
        if cfg.model.source == "pretrained":
            config = {"source": "pretrained", "path": cfg.model.path}

            def compute(out: Path) -> None:  # nothing to build: record where the model lives
                write_json_atomic(out / "student.json", {"path": cfg.model.path, "external": True})
        elif cfg.model.source == "gguf_package":
            config = {"source": "gguf_package", "package": cfg.model.package}

            def compute(out: Path) -> None:
                from reasonbridge.models.gguf_package import convert_gguf_package
                info = convert_gguf_package(cfg.model.package, out / "model")
                write_json_atomic(out / "student.json", {"path": "model", **info})
        else:
            config = {"tiny": _slice(cfg.model.tiny), "suite": self._suite(), "seed": cfg.seed}

            def compute(out: Path) -> None:
                from reasonbridge.models.tiny import build_tiny_student
                info = build_tiny_student(cfg.model.tiny, seed=cfg.seed, pool_cfg=cfg.pool, out_dir=out / "model",
                                          progress=cfg.progress)
                write_json_atomic(out / "student.json", {"path": "model", "params": info["params"],
                                                         "pretrain_time_s": info["pretrain"]["time_s"],
                                                         "pretrain_final_loss": info["pretrain"]["history"][-1]["loss"]})
        return self._stage("student", config, {}, compute)

    def student_path(self, res: StageResult) -> str:
        info = json.loads((res.path / "student.json").read_text())
        return info["path"] if info.get("external") else str(res.path / info["path"])

    def benchmark(self) -> StageResult:
        cfg = self.cfg
        config = {"benchmark": _slice(cfg.benchmark), "suite": self._suite(), "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.curation.pool import synthetic_benchmark
            s = self._suite()
            problems = synthetic_benchmark(cfg.benchmark.size, seed=cfg.seed,
                                           difficulties=list(cfg.benchmark.difficulties),
                                           max_operand=s["max_operand"], domains=s["domains"])
            write_jsonl(out / "problems.jsonl", problems)
        return self._stage("benchmark", config, {}, compute)

    def pool(self, bench: StageResult) -> StageResult:
        cfg = self.cfg
        config = {"pool": _slice(cfg.pool), "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.curation.pool import synthetic_pool
            bench_texts = {p["problem"] for p in read_jsonl(bench.path / "problems.jsonl")}
            problems, removed = synthetic_pool(cfg.pool.size, seed=cfg.seed, exclude_texts=bench_texts,
                                               **self._suite())
            write_jsonl(out / "problems.jsonl", problems)
            write_json_atomic(out / "pool.json", {"generated": len(problems) + removed,
                                                  "decontaminated": removed, "kept": len(problems)})
        return self._stage("pool", config, {"benchmark": bench}, compute)

    def traces(self, pool: StageResult) -> StageResult:
        cfg = self.cfg
        config = {"teacher": _slice(cfg.teacher), "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
            teacher = SymbolicTeacher(defect_rate=cfg.teacher.defect_rate, seed=cfg.seed)
            problems = read_jsonl(pool.path / "problems.jsonl")
            traces = [{**teacher.generate(p), "problem": p["problem"], "gold": p["answer"], "domain": p["domain"],
                       "difficulty": p["difficulty"]}
                      for p in tqdm(problems, desc="teacher traces", disable=not cfg.progress, leave=False)]
            write_jsonl(out / "traces.jsonl", traces)
            write_json_atomic(out / "teacher.json", {"teacher": teacher.name, "queries": len(problems)})
        return self._stage("traces", config, {"pool": pool}, compute)

    def data(self, traces: StageResult) -> StageResult:
        cfg = self.cfg
        config = {"data": _slice(cfg.data), "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.curation.selection import select_traces
            selected, manifest = select_traces(read_jsonl(traces.path / "traces.jsonl"), cfg.data.name,
                                               size=cfg.data.size, seed=cfg.seed)
            write_jsonl(out / "selected.jsonl", selected)
            write_json_atomic(out / "manifest.json", manifest)
        return self._stage("data", config, {"traces": traces}, compute)

    def train(self, student: StageResult, data: StageResult) -> StageResult:
        cfg = self.cfg
        config = {"adapters": _slice(cfg.adapters), "train": _slice(cfg.train), "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.training.run import train_student
            summary = train_student(cfg, self.student_path(student), data.path / "selected.jsonl", out)
            write_json_atomic(out / "train.json", summary)
        return self._stage("train", config, {"student": student, "data": data}, compute)

    def evaluate(self, student: StageResult, trained: StageResult | None, bench: StageResult) -> StageResult:
        cfg = self.cfg
        config = {"inference": _slice(cfg.inference), "benchmark": cfg.benchmark.name, "seed": cfg.seed}
        upstream = {"model": trained or student, "benchmark": bench}

        def compute(out: Path) -> None:
            from reasonbridge.evaluation.evaluate import evaluate
            from reasonbridge.training.run import load_trained
            model, tokenizer = load_trained(self.student_path(student), trained.path if trained else None,
                                            cfg.model.dtype)
            predictions, metrics = evaluate(model, tokenizer, read_jsonl(bench.path / "problems.jsonl"),
                                            benchmark=cfg.benchmark.name, inference=cfg.inference,
                                            seed=cfg.seed, progress=cfg.progress)
            (out / "predictions").mkdir()
            write_jsonl(out / "predictions" / f"{cfg.benchmark.name}.jsonl", predictions)
            write_json_atomic(out / "metrics.json", metrics)
        return self._stage("eval", config, upstream, compute)

    # -- the whole chain ----------------------------------------------------------------
    def run(self) -> PipelineResult:
        student = self.student()
        if self._stop("student"):
            return self.result
        bench = self.benchmark()
        if self._stop("benchmark"):
            return self.result
        pool = self.pool(bench)
        if self._stop("pool"):
            return self.result
        traces = self.traces(pool)
        if self._stop("traces"):
            return self.result
        data = self.data(traces)
        if self._stop("data"):
            return self.result
        trained = None if self.cfg.adapters.name == "none" else self.train(student, data)
        if self._stop("train"):
            return self.result
        ev = self.evaluate(student, trained, bench)
        self.result.metrics.update(json.loads((ev.path / "metrics.json").read_text()))
        return self.result


def run_experiment(cfg: DictConfig) -> PipelineResult:
    """Run the pipeline inside one MLflow run and log what every stage produced."""
    import tempfile

    from reasonbridge.tracking.mlflow_run import RunLogger, flatten

    pipeline = Pipeline(cfg)  # validates before any work or any MLflow run
    t = cfg.tracking
    tags = {"row": t.row, **({"table": t.table} if t.table else {}), **dict(t.tags)}
    logger = RunLogger(t.uri, t.experiment, t.run_name or t.row, tags)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    logger.log_params(flatten({k: v for k, v in resolved.items() if k not in ("tracking", "paths", "progress")}))
    try:
        result = pipeline.run()
    except BaseException as e:
        logger.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    result.run_id = logger.run_id
    _log_stage_outputs(logger, cfg, result)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        logger.log_artifact(Path(tmp) / "config.yaml")
    logger.finish()
    log.info("MLflow run %s (experiment %r) at %s", logger.run_id, t.experiment, logger.uri)
    return result


def _log_stage_outputs(logger, cfg: DictConfig, result: PipelineResult) -> None:
    stages = result.stages
    tags = {f"cache/{n}": r.key for n, r in stages.items()}
    tags.update({f"cache_hit/{n}": str(r.hit) for n, r in stages.items()})
    if result.stopped_after:
        tags["stopped_after"] = result.stopped_after
    logger.set_tags(tags)
    metrics: dict[str, float] = {}
    if "pool" in stages:
        info = json.loads((stages["pool"].path / "pool.json").read_text())
        metrics["data/pool"] = info["kept"]
        metrics["data/decontaminated"] = info["decontaminated"]
    if "traces" in stages:
        info = json.loads((stages["traces"].path / "teacher.json").read_text())
        metrics["teacher/queries"] = 0 if stages["traces"].hit else info["queries"]
    if "data" in stages:
        manifest = stages["data"].path / "manifest.json"
        metrics["data/selected"] = json.loads(manifest.read_text())["selected"]
        logger.log_artifact(manifest, "data")
    if "student" in stages and (stages["student"].path / "student.json").exists():
        info = json.loads((stages["student"].path / "student.json").read_text())
        if "params" in info:
            metrics["student/params"] = info["params"]
    if "train" in stages:
        summary = json.loads((stages["train"].path / "train.json").read_text())
        metrics.update({"train/time_s": summary["time_s"], "train/tokens_per_s": summary["tokens_per_s"],
                        "params/trainable": summary["trainable_params"],
                        "params/trainable_pct": summary["trainable_pct"]})
        logger.log_series([("train/loss", h["loss"], h["step"]) for h in summary["history"]]
                          + [("train/lr", h["lr"], h["step"]) for h in summary["history"]])
    elif cfg.adapters.name == "none" and not result.stopped_after:
        metrics["params/trainable_pct"] = 0.0
    if "eval" in stages:
        metrics.update(result.metrics)
        logger.log_artifact(stages["eval"].path / "predictions" / f"{cfg.benchmark.name}.jsonl", "predictions")
    logger.log_metrics(metrics)
