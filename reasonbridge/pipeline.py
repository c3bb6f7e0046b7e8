"""The whole method as a chain of cached stages, one MLflow run per call.

student ─────────────────────────────────────────┬──► train ──► eval
   └──► reference ──► attempts (per reference) ─┐ │
benchmark ──► pool ──► traces ───────────────► data
Each stage reads only its config slice and the artifacts of the stages before it; its
artifact is stored under a key derived from both (see `reasonbridge.cache`).
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from reasonbridge import preemption
from reasonbridge.cache import StageCache, StageResult, stage_key, write_json_atomic
from reasonbridge.config import STOP_ALIASES, validate
from reasonbridge.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# Bump a stage's version when its code changes what it produces.
VERSIONS = {"student": 3, "benchmark": 2, "pool": 3, "traces": 2, "reference": 2, "attempts": 1, "data": 2,
            "train": 2, "eval": 5, "diagnose": 1}


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
        self._eval_model: tuple | None = None  # (model, tokenizer), loaded by the first evaluation
        self._joint_done = False  # every pending benchmark was generated and judged in one pass
        from reasonbridge.evaluation.benchmarks import checker_of, resolve_path
        for bcfg in self.benchmark_configs():  # a missing benchmark file fails before any work
            if bcfg.name not in ("synthetic", "lm_eval") and bcfg.source == "file":
                resolve_path(bcfg)
            local = self._local_lm_eval_benchmark(bcfg) if bcfg.name == "lm_eval" else bcfg
            if local is not None and checker_of(local) == "code":  # so does a code benchmark without a sandbox
                from reasonbridge.evaluation.sandbox import ISOLATION_NONE, require
                if require(bcfg.unsafe_unsandboxed_code) == ISOLATION_NONE:
                    log.warning("benchmark %s: model-written code runs WITHOUT an OS sandbox "
                                "(benchmark.unsafe_unsandboxed_code=true)", self.benchmark_label(bcfg))

    # -- helpers -----------------------------------------------------------------------
    def _key(self, name: str, config, upstream: dict[str, StageResult]) -> str:
        return stage_key(name, VERSIONS[name], _slice(config), {k: v.key for k, v in upstream.items()})

    def _stage(self, name: str, config, upstream: dict[str, StageResult], compute,
               label: str | None = None) -> StageResult:
        """Run or reuse stage ``name``; ``label`` names it in the results when one stage runs several times."""
        key = self._key(name, config, upstream)
        res = self.cache.run(name, key, compute, meta={"config": _slice(config),
                                                         "upstream": {k: v.key for k, v in upstream.items()}})
        log.info("stage %-9s %s (%s, %.1fs)", label or name, key, "cached" if res.hit else "computed", res.seconds)
        self.result.stages[label or name] = res
        preemption.at_safe_point()  # a signal that came during the stage's last moments
        return res

    def _suite(self) -> dict:
        """The synthetic generators' arguments."""
        p = self.cfg.pool
        return {"suite": p.suite, "difficulties": list(p.difficulties), "max_operand": p.max_operand,
                "domains": list(p.domains) if p.domains else None}

    def _suite_key(self) -> dict:
        """What stages built from the synthetic suite are keyed on: its arguments and, for the
        organism, its version (its generator changes with the code, not with the config)."""
        key = self._suite()
        if key["suite"] == "organism":
            from reasonbridge.curation.organism import VERSION
            key["version"] = VERSION
        return key

    def _stop(self, name: str) -> bool:
        if STOP_ALIASES.get(self.cfg.stop_after, self.cfg.stop_after) == name:
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
        elif cfg.model.source == "api":
            config = {"source": "api", "base_url": cfg.model.base_url, "api_model": cfg.model.api_model}

            def compute(out: Path) -> None:  # a served model: record which one
                write_json_atomic(out / "student.json", {"api": True, **config})
        else:
            config, compute = self._tiny_model(cfg.model.tiny)
        return self._stage("student", config, {}, compute)

    def _tiny_model(self, tiny) -> tuple[dict, Callable[[Path], None]]:
        """Stage config and compute function that build a tiny model (the student, or a reference)."""
        cfg = self.cfg
        seed = cfg.seed if tiny.seed is None else tiny.seed
        config = {"tiny": _slice(tiny), "suite": self._suite_key(), "seed": seed}

        def compute(out: Path) -> None:
            if cfg.pool.suite == "organism":
                from reasonbridge.student.organism_student import build_organism_student as build
            else:
                from reasonbridge.student.tiny import build_tiny_student as build
            info = build(tiny, seed=seed, pool_cfg=cfg.pool, out_dir=out / "model", progress=cfg.progress)
            write_json_atomic(out / "student.json", {"path": "model", "params": info["params"],
                                                     "pretrain_time_s": info["pretrain"]["time_s"],
                                                     "pretrain_final_loss": info["pretrain"]["history"][-1]["loss"],
                                                     "fact_accuracy": info["fact_accuracy"],
                                                     "skills": info.get("skills", {}), "cpu": info.get("cpu", {})})
        return config, compute

    def student_path(self, res: StageResult) -> str:
        info = json.loads((res.path / "student.json").read_text())
        return info["path"] if info.get("external") else str(res.path / info["path"])

    def benchmark_configs(self) -> list:
        """The benchmarks this run evaluates: `benchmarks` (each from conf/benchmark/<name>.yaml,
        the one selected with `benchmark=` keeping its overrides), else just `benchmark`;
        `eval_limit` caps each at its first problems."""
        cfg = self.cfg
        from reasonbridge.config import BenchmarkConfig, benchmark_option
        out = []
        for name in cfg.benchmarks or [cfg.benchmark.name]:
            if name == cfg.benchmark.name:
                node = OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), cfg.benchmark)
            else:
                node = benchmark_option(name)
            if cfg.eval_limit is not None:
                node.size = cfg.eval_limit if node.size is None else min(node.size, cfg.eval_limit)
            out.append(node)
        return out

    @staticmethod
    def benchmark_label(bcfg) -> str:
        """The name in metrics and artifacts: acc/<label>, predictions/<label>.jsonl."""
        return f"lm_eval/{bcfg.task}" if bcfg.name == "lm_eval" else bcfg.name

    def _labels(self, stage: str, bcfg) -> str:
        return stage if not self.cfg.benchmarks else f"{stage}/{self.benchmark_label(bcfg)}"

    def benchmark(self, bcfg=None) -> StageResult:
        """The benchmark's problems, normalised ({id, problem, answer, ..., meta}) into problems.jsonl."""
        cfg = self.cfg
        bcfg = bcfg if bcfg is not None else cfg.benchmark
        config: dict = {"seed": cfg.seed}
        keep = ("name", "size", "source", "fields", "hub", "hub_config", "split", "subsets", "shuffle_choices")
        if bcfg.name == "synthetic":
            config.update(benchmark={k: _slice(bcfg)[k] for k in ("name", "size", "difficulties")},
                          suite=self._suite_key())
        elif bcfg.name == "lm_eval":
            config.update(benchmark={"name": "lm_eval", "task": bcfg.task, "size": bcfg.size,
                                     "num_fewshot": bcfg.num_fewshot})
            local = self._local_lm_eval_benchmark(bcfg)
            if local is not None and local.name == "synthetic":
                config["local"] = {"benchmark": {k: _slice(local)[k] for k in ("name", "size", "difficulties")},
                                   "suite": self._suite_key()}
            elif local is not None:
                config["local"] = self._benchmark_source_key(local, keep)
        else:
            config.update(self._benchmark_source_key(bcfg, keep))

        def compute(out: Path) -> None:
            write_jsonl(out / "problems.jsonl", self._load_problems(bcfg))
        return self._stage("benchmark", config, {}, compute, label=self._labels("benchmark", bcfg))

    def _benchmark_source_key(self, bcfg, keep: tuple[str, ...]) -> dict:
        """The config and, for files, the contents' hash: a changed file is a different benchmark."""
        from reasonbridge.curation.pool import file_sha256
        from reasonbridge.evaluation.benchmarks import resolve_path
        key: dict = {"benchmark": {k: _slice(bcfg)[k] for k in keep}}
        if bcfg.source == "file":
            path = resolve_path(bcfg)
            files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
            key["files"] = {f.name: file_sha256(f) for f in files}
        return key

    def _local_lm_eval_benchmark(self, bcfg):
        """For lm-eval task reasonbridge_<name>: the local benchmark <name>'s config, else None."""
        from reasonbridge.config import ConfigError, benchmark_option, group_options
        from reasonbridge.evaluation.lm_eval_model import LOCAL_PREFIX
        if not bcfg.task.startswith(LOCAL_PREFIX):
            return None
        name = bcfg.task[len(LOCAL_PREFIX):]
        if name == "lm_eval" or name not in group_options("benchmark"):
            raise ConfigError(f"invalid config value benchmark.task={bcfg.task!r}: no local benchmark {name!r} "
                              f"(conf/benchmark/{name}.yaml)")
        node = benchmark_option(name)
        node.size = bcfg.size if bcfg.size is not None else node.size
        return node

    def _load_problems(self, bcfg) -> list[dict]:
        cfg = self.cfg
        if bcfg.name == "lm_eval":
            local = self._local_lm_eval_benchmark(bcfg)
            return self._load_problems(local) if local is not None else []
        if bcfg.name == "synthetic":
            from reasonbridge.curation.pool import synthetic_benchmark
            s = self._suite()
            return synthetic_benchmark(bcfg.size, seed=cfg.seed, difficulties=list(bcfg.difficulties),
                                       max_operand=s["max_operand"], domains=s["domains"], suite=s["suite"])
        from reasonbridge.evaluation.benchmarks import load_benchmark
        return load_benchmark(bcfg, seed=cfg.seed)

    def pool(self, benches: dict[str, StageResult]) -> StageResult:
        cfg = self.cfg
        config = {"pool": _slice(cfg.pool), "seed": cfg.seed}
        if cfg.pool.name == "jsonl":  # the files' contents, not just their names, decide the pool
            from reasonbridge.curation.pool import file_sha256
            config["files"] = {p: file_sha256(Path(p)) for p in cfg.pool.paths}
        else:  # the synthetic pool ignores the file options
            config["pool"] = {k: v for k, v in config["pool"].items() if k not in ("paths", "fields", "answer_regex")}
            if cfg.pool.suite == "organism":
                config["suite"] = self._suite_key()
        if cfg.pool.domain_classifier == "teacher":
            config["classifier"] = _slice(cfg.teacher)

        def compute(out: Path) -> None:
            from reasonbridge.curation.filters import classify_domain
            from reasonbridge.curation.pool import clean_pool, load_problem_files, synthetic_pool
            from reasonbridge.problems import DOMAINS
            bench_texts = [p["problem"] for b in benches.values() for p in read_jsonl(b.path / "problems.jsonl")]
            if cfg.pool.name == "jsonl":
                problems = load_problem_files(list(cfg.pool.paths), dict(cfg.pool.fields),
                                              answer_regex=cfg.pool.answer_regex, base_dir=Path.cwd())
            else:
                problems, _ = synthetic_pool(cfg.pool.size, seed=cfg.seed, exclude_texts=set(bench_texts),
                                             **self._suite())
            problems, counts = clean_pool(problems, bench_texts, near_dup_threshold=cfg.pool.near_dup_threshold,
                                          ngram=cfg.pool.decontam_ngram)
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
                raise ValueError(f"the pool is empty after cleaning (counts: {counts})")
            write_jsonl(out / "problems.jsonl", problems)
            write_json_atomic(out / "pool.json", counts)
        return self._stage("pool", config, benches, compute)

    def traces(self, pool: StageResult) -> StageResult:
        """Teacher traces for every pool problem, through the teacher cache (see
        `reasonbridge.curation.teacher_cache`): a killed run re-queries nothing that finished."""
        cfg = self.cfg
        config = {"teacher": _slice(cfg.teacher), "seed": cfg.seed}

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
        return self._stage("traces", config, {"pool": pool}, compute)

    def references(self, student: StageResult) -> dict[str, tuple[str, StageResult | None]]:
        """name -> (model folder, the stage that built it) for the difficulty filter's reference models."""
        cfg = self.cfg
        out: dict[str, tuple[str, StageResult | None]] = {}
        for ref in cfg.data.references:
            if ref.source == "student":
                out[ref.name] = (self.student_path(student), student)
            elif ref.source == "pretrained":
                out[ref.name] = (ref.path, None)
            else:
                config, compute = self._tiny_model(OmegaConf.merge(cfg.model.tiny, dict(ref.tiny)))
                res = self._stage("reference", config, {}, compute, label=f"reference/{ref.name}")
                out[ref.name] = (str(res.path / "model"), res)
        return out

    def attempts(self, student: StageResult, pool: StageResult) -> dict[str, StageResult]:
        """Each reference model's answer to every pool problem, judged by the answer checker."""
        cfg = self.cfg
        results = {}
        for name, (path, built) in self.references(student).items():
            config = {"reference": path if built is None else None, "dtype": cfg.model.dtype,
                      "max_new_tokens": cfg.data.reference_max_new_tokens}
            upstream = {"pool": pool, **({"model": built} if built is not None else {})}

            def compute(out: Path, path=path, name=name) -> None:
                from reasonbridge.config import InferenceConfig
                from reasonbridge.evaluation.evaluate import evaluate
                from reasonbridge.models.loading import load_model
                model, tokenizer = load_model(path, cfg.model.dtype)
                greedy = OmegaConf.structured(InferenceConfig(name="none", max_new_tokens=cfg.data.reference_max_new_tokens,
                                                              batch_size=cfg.data.reference_batch_size))
                predictions, metrics = evaluate(model, tokenizer, read_jsonl(pool.path / "problems.jsonl"),
                                                benchmark="pool", inference=greedy, seed=cfg.seed,
                                                progress=cfg.progress)
                write_jsonl(out / "attempts.jsonl", [{k: p[k] for k in ("id", "output", "extracted", "correct")}
                                                     for p in predictions])
                write_json_atomic(out / "metrics.json", {"reference": name, "solved": metrics["acc/pool"]})
            results[name] = self._stage("attempts", config, upstream, compute, label=f"attempts/{name}")
        return results

    def data(self, traces: StageResult, attempts: dict[str, StageResult]) -> StageResult:
        cfg = self.cfg
        data_slice = _slice(cfg.data)
        if not cfg.data.difficulty:  # references matter only to the difficulty filter
            data_slice = {k: v for k, v in data_slice.items() if not k.startswith("reference")}
        config = {"data": data_slice, "seed": cfg.seed}

        def compute(out: Path) -> None:
            from reasonbridge.curation.selection import select_traces
            solved = {name: {a["id"]: a["correct"] for a in read_jsonl(res.path / "attempts.jsonl")}
                      for name, res in attempts.items()}
            selected, manifest = select_traces(read_jsonl(traces.path / "traces.jsonl"), cfg.data, seed=cfg.seed,
                                               attempts=solved if cfg.data.difficulty else None)
            write_jsonl(out / "selected.jsonl", selected)
            write_json_atomic(out / "manifest.json", manifest)
        upstream = {"traces": traces, **{f"attempts/{k}": v for k, v in attempts.items()}}
        return self._stage("data", config, upstream, compute)

    def train(self, student: StageResult, data: StageResult) -> StageResult:
        cfg = self.cfg
        train_slice = _slice(cfg.train)
        if train_slice.get("processes") == 1 and not train_slice.get("accelerate_config"):  # keys as before
            train_slice = {k: v for k, v in train_slice.items() if k not in ("processes", "accelerate_config")}
        config = {"adapters": _slice(cfg.adapters), "train": train_slice, "seed": cfg.seed}
        upstream = {"student": student, "data": data}
        # The stage computes into a temp folder that is deleted on failure, so resumable
        # checkpoints live beside it, keyed like the artifact, until the artifact is in place.
        checkpoints = self.cache.path("train", self._key("train", config, upstream)).with_suffix(".ckpt")

        def compute(out: Path) -> None:
            if cfg.train.processes > 1 or cfg.train.accelerate_config:  # several GPUs: `accelerate launch`
                from reasonbridge.training.distributed import train_launched
                summary = train_launched(cfg, self.student_path(student), data.path / "selected.jsonl", out,
                                         checkpoint_dir=checkpoints)
            else:
                from reasonbridge.training.run import train_student
                summary = train_student(cfg, self.student_path(student), data.path / "selected.jsonl", out,
                                        checkpoint_dir=checkpoints)
            write_json_atomic(out / "train.json", summary)
        result = self._stage("train", config, upstream, compute)
        shutil.rmtree(checkpoints, ignore_errors=True)
        return result

    def _eval_spec(self, student: StageResult, trained: StageResult | None, bench: StageResult, bcfg) -> dict:
        """What an eval stage is keyed on, and where its judged predictions wait until it completes."""
        from reasonbridge.evaluation.benchmarks import checker_of, spec_of
        cfg = self.cfg
        label = self.benchmark_label(bcfg)
        checker, instruction = checker_of(bcfg), spec_of(bcfg.name).instruction
        config = {"inference": _slice(cfg.inference), "benchmark": label, "checker": checker,
                  "instruction": instruction, "seed": cfg.seed}
        if checker == "code":
            config["code_timeout_s"] = bcfg.code_timeout_s
        upstream = {"model": trained or student, "benchmark": bench}
        key = self._key("eval", config, upstream)
        # judged predictions survive a kill beside the artifact, keyed like it, until it is in place
        partial = self.cache.path("eval", key).with_suffix(".partial.jsonl")
        return {"label": label, "checker": checker, "instruction": instruction, "config": config,
                "upstream": upstream, "key": key, "partial": partial}

    def _load_eval_model(self, student: StageResult, trained: StageResult | None):
        """The evaluated model, loaded once per run (every benchmark's eval stage shares it)."""
        cfg = self.cfg
        if self._eval_model is None:
            if cfg.model.source == "api":
                from reasonbridge.inference.api_model import ApiModel
                self._eval_model = ApiModel(cfg.model, cfg.inference, seed=cfg.seed), None
            else:
                from reasonbridge.training.run import load_trained
                self._eval_model = load_trained(self.student_path(student), trained.path if trained else None,
                                                cfg.model.dtype)
        return self._eval_model

    def _evaluate_jointly(self, student: StageResult, trained: StageResult | None,
                          evals: list[tuple]) -> None:
        """Generate for every benchmark whose eval stage is not cached in one pass (shared batches),
        leaving judged predictions where each eval stage resumes from."""
        from reasonbridge.evaluation.evaluate import EvalJob, evaluate_many
        cfg = self.cfg
        forced = bool({"eval", "all"} & set(cfg.force))
        jobs = []
        for bcfg, bench in evals:
            if bcfg.name == "lm_eval":
                continue
            spec = self._eval_spec(student, trained, bench, bcfg)
            if self.cache.exists("eval", spec["key"]) and not forced:
                continue
            if forced:
                spec["partial"].unlink(missing_ok=True)
            spec["partial"].parent.mkdir(parents=True, exist_ok=True)
            jobs.append(EvalJob(spec["label"], read_jsonl(bench.path / "problems.jsonl"), spec["checker"],
                                spec["instruction"], bcfg.code_timeout_s, spec["partial"],
                                bcfg.unsafe_unsandboxed_code))
        if len(jobs) < 2:
            return
        model, tokenizer = self._load_eval_model(student, trained)
        evaluate_many(model, tokenizer, jobs, inference=cfg.inference, seed=cfg.seed, progress=cfg.progress,
                      check_workers=max(b.check_workers for b, _ in evals))
        self._joint_done = True  # the eval stages now only collect what was judged

    def evaluate(self, student: StageResult, trained: StageResult | None, bench: StageResult,
                 bcfg=None) -> StageResult:
        cfg = self.cfg
        bcfg = bcfg if bcfg is not None else cfg.benchmark
        if bcfg.name == "lm_eval":
            return self._evaluate_lm_eval(student, trained, bench, bcfg, self.benchmark_label(bcfg))
        spec = self._eval_spec(student, trained, bench, bcfg)
        label, partial = spec["label"], spec["partial"]
        if {"eval", "all"} & set(cfg.force) and not self._joint_done:
            partial.unlink(missing_ok=True)

        def compute(out: Path) -> None:
            from reasonbridge.evaluation.evaluate import evaluate
            model, tokenizer = self._load_eval_model(student, trained)
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
        result = self._stage("eval", spec["config"], spec["upstream"], compute, label=self._labels("eval", bcfg))
        partial.unlink(missing_ok=True)
        return result

    def _evaluate_lm_eval(self, student: StageResult, trained: StageResult | None, bench: StageResult, bcfg,
                          label: str) -> StageResult:
        """Any lm-eval task with this run's model and inference strategy (lm-eval's own metrics too)."""
        cfg = self.cfg
        config = {"inference": _slice(cfg.inference), "task": bcfg.task, "size": bcfg.size,
                  "num_fewshot": bcfg.num_fewshot, "seed": cfg.seed}
        upstream = {"model": trained or student, "benchmark": bench}
        # the model's answers survive a kill beside the artifact, keyed like it, until it is in place
        partial = self.cache.path("eval", self._key("eval", config, upstream)).with_suffix(".partial.jsonl")
        if {"eval", "all"} & set(cfg.force):
            partial.unlink(missing_ok=True)

        def compute(out: Path) -> None:
            from reasonbridge.evaluation.lm_eval_model import run_lm_eval
            model, tokenizer = self._load_eval_model(student, trained)
            local = self._local_lm_eval_benchmark(bcfg)
            partial.parent.mkdir(parents=True, exist_ok=True)
            predictions, metrics = run_lm_eval(model, tokenizer, bcfg, cfg.inference, label=label, seed=cfg.seed,
                                               problems_file=bench.path / "problems.jsonl" if local else None,
                                               local=local, workdir=out, progress=cfg.progress, resume_path=partial)
            (out / "predictions" / label).parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(out / "predictions" / f"{label}.jsonl", predictions)
            write_json_atomic(out / "metrics.json", metrics)
        result = self._stage("eval", config, upstream, compute, label=self._labels("eval", bcfg))
        partial.unlink(missing_ok=True)
        return result

    def diagnose(self, student: StageResult, trained: StageResult | None, bench: StageResult, ev: StageResult,
                 bcfg) -> StageResult:
        """The opt-in diagnostics of one evaluated benchmark (`diagnostics=student`), beside its eval stage."""
        from reasonbridge.evaluation.benchmarks import spec_of
        cfg = self.cfg
        label = self.benchmark_label(bcfg)
        instruction, suffix = spec_of(bcfg.name).instruction, cfg.inference.think_start or ""
        config = {"diagnostics": _slice(cfg.diagnostics), "benchmark": label, "instruction": instruction,
                  "prompt_suffix": suffix}
        upstream = {"eval": ev, "model": trained or student, "benchmark": bench}

        def compute(out: Path) -> None:
            from reasonbridge.diagnostics.metrics import diagnostic_metrics
            model, tokenizer = self._load_eval_model(student, trained) if cfg.diagnostics.teacher_forced else (None, None)
            metrics = diagnostic_metrics(read_jsonl(bench.path / "problems.jsonl"),
                                         read_jsonl(ev.path / "predictions" / f"{label}.jsonl"), benchmark=label,
                                         steps=cfg.diagnostics.steps, teacher_forced=cfg.diagnostics.teacher_forced,
                                         model=model, tokenizer=tokenizer, instruction=instruction, prompt_suffix=suffix)
            write_json_atomic(out / "metrics.json", metrics)
        return self._stage("diagnose", config, upstream, compute, label=self._labels("diagnose", bcfg))

    # -- the whole chain ----------------------------------------------------------------
    def run(self) -> PipelineResult:
        student = self.student()
        if self._stop("student"):
            return self.result
        bcfgs = self.benchmark_configs()
        benches = {self._labels("benchmark", b): self.benchmark(b) for b in bcfgs}
        if self._stop("benchmark"):
            return self.result
        pool = self.pool(benches)
        if self._stop("pool"):
            return self.result
        traces = self.traces(pool)
        if self._stop("traces"):
            return self.result
        attempts = self.attempts(student, pool) if self.cfg.data.difficulty else {}
        data = self.data(traces, attempts)
        if self._stop("data"):
            return self.result
        trained = None if self.cfg.adapters.name == "none" else self.train(student, data)
        if self._stop("train"):
            return self.result
        evals = list(zip(bcfgs, benches.values()))
        self._evaluate_jointly(student, trained, evals)
        for bcfg, bench in evals:
            ev = self.evaluate(student, trained, bench, bcfg)
            self.result.metrics.update(json.loads((ev.path / "metrics.json").read_text()))
            if self.cfg.diagnostics.name != "none" and bcfg.name != "lm_eval":
                diag = self.diagnose(student, trained, bench, ev, bcfg)
                self.result.metrics.update(json.loads((diag.path / "metrics.json").read_text()))
        return self.result


def run_experiment(cfg: DictConfig, run_file: Path | None = None) -> PipelineResult:
    """Run the pipeline inside one MLflow run and log what every stage produced.

    `run_file` (in the job's output folder) records the MLflow run id, so a job requeued
    after preemption continues the same run instead of opening a second one."""
    import tempfile

    from reasonbridge.tracking.mlflow_run import (RunLogger, TrackingUnavailable, flatten, preempted_run,
                                                  resolve_tracking_uri, unreachable)

    pipeline = Pipeline(cfg)  # validates before any work or any MLflow run
    if not cfg.progress:
        import transformers
        transformers.utils.logging.disable_progress_bar()
    t = cfg.tracking
    tags = {"row": t.row, **({"table": t.table} if t.table else {}), **dict(t.tags)}
    try:
        resume = preempted_run(t.uri, run_file) if run_file is not None else None
        logger = RunLogger(t.uri, t.experiment, t.run_name or t.row, tags, resume_run_id=resume)
    except Exception as e:
        if not unreachable(e):
            raise
        raise TrackingUnavailable(f"the MLflow tracking server at {resolve_tracking_uri(t.uri)} cannot be reached "
                                  f"({str(e)[:300]}); no work was started. Start it (or set MLFLOW_TRACKING_URI) "
                                  "and run the same command again") from e
    if run_file is not None:
        write_json_atomic(run_file, {"run_id": logger.run_id, "tracking_uri": logger.uri})
    resolved = OmegaConf.to_container(cfg, resolve=True)
    logger.log_params(flatten({k: v for k, v in resolved.items() if k not in ("tracking", "paths", "progress")}))

    def mark_preempted() -> None:  # before the requeue: the requeued job continues this run
        logger.set_tags({"preempted": "true"})
        logger.finish("KILLED")

    preemption.before_hand_off(mark_preempted)
    try:
        result = pipeline.run()
    except BaseException as e:
        if not preemption.preempted():
            try:
                logger.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            except Exception as lost:  # the server went away too: report the run's own error, not this
                if not unreachable(lost):
                    raise
                log.warning("could not mark MLflow run %s as failed: the tracking server is unreachable",
                            logger.run_id)
        raise
    finally:
        preemption.remove_callback(mark_preempted)
    result.run_id = logger.run_id
    try:
        _log_stage_outputs(logger, cfg, result)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            logger.log_artifact(Path(tmp) / "config.yaml")
        logger.finish()
    except Exception as e:
        if not unreachable(e):
            raise
        stages = ", ".join(f"{n}={r.path}" for n, r in result.stages.items())
        raise TrackingUnavailable(
            f"the MLflow tracking server at {logger.uri} went away before this run's results were logged "
            f"({str(e)[:300]}). Nothing is lost: every stage's result is in the stage cache ({stages}). Run the "
            f"same command again once the server is back: no stage is recomputed, and the results are logged to "
            f"a new MLflow run (run {logger.run_id} stays unfinished). MLFLOW_HTTP_REQUEST_MAX_RETRIES and "
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR set how long a run waits for the server to come back") from e
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
        for count in ("loaded", "exact_duplicates", "near_duplicates", "decontaminated"):
            metrics[f"data/{count}"] = info[count]
    if "traces" in stages:
        info = json.loads((stages["traces"].path / "teacher.json").read_text())
        if stages["traces"].hit:  # every trace came from the stage cache: no query, no cost in this run
            metrics.update({"teacher/queries": 0, "teacher/cache_hits": metrics.get("data/pool", 0),
                            "teacher/cost_usd": 0.0})
        else:
            metrics.update({"teacher/queries": info["queries"], "teacher/cache_hits": info["cache_hits"],
                            "teacher/cost_usd": info["cost_usd"]})
    for name, res in stages.items():
        if name.startswith("attempts/"):
            metrics[f"reference/{name.split('/', 1)[1]}/solved"] = json.loads((res.path / "metrics.json").read_text())["solved"]
    if "data" in stages:
        manifest_path = stages["data"].path / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        counts = manifest["counts"]
        metrics.update({"data/parsed": counts["parsed"], "data/after_quality": counts["after_quality"],
                        "data/after_difficulty": counts["after_difficulty"], "data/selected": counts["selected"]})
        logger.log_artifact(manifest_path, "data")
        logger.log_artifact(stages["data"].path / "selected.jsonl", "data")
        logger.log_dataset(stages["data"].path / "selected.jsonl", name=f"reason-{cfg.data.name}",
                           digest=manifest["selected_sha256"], context="training")
    if "student" in stages and (stages["student"].path / "student.json").exists():
        info = json.loads((stages["student"].path / "student.json").read_text())
        if "params" in info:
            metrics["student/params"] = info["params"]
        if "fact_accuracy" in info:
            metrics["student/fact_accuracy"] = info["fact_accuracy"]
        metrics.update({f"student/{skill}": v for skill, v in info.get("skills", {}).items()})
    if "train" in stages:
        summary = json.loads((stages["train"].path / "train.json").read_text())
        metrics.update({"train/time_s": summary["time_s"], "train/tokens_per_s": summary["tokens_per_s"],
                        "params/trainable": summary["trainable_params"],
                        "params/trainable_pct": summary["trainable_pct"]})
        if summary.get("cpu"):  # the precision and threads measured fastest on this machine
            tags.update({"train/cpu_precision": summary["cpu"]["precision"],
                         "train/cpu_threads": str(summary["cpu"]["threads"])})
            logger.set_tags(tags)
        # train/loss, train/lr and, with the hierarchical loss, train/loss_out, train/loss_strategic, ...
        logger.log_series([(f"train/{k}", v, h["step"]) for h in summary["history"] for k, v in h.items()
                           if k != "step"])
    elif cfg.adapters.name == "none" and not result.stopped_after:
        metrics["params/trainable_pct"] = 0.0
    isolation: dict[str, str] = {}  # code benchmarks: which isolation judged the run's programs
    for name, res in stages.items():
        if name == "eval" or name.startswith("eval/"):
            for pred in sorted((res.path / "predictions").rglob("*.jsonl")):
                sub = pred.parent.relative_to(res.path).as_posix()  # predictions or predictions/lm_eval
                logger.log_artifact(pred, sub)
                used = sorted({r["isolation"] for r in read_jsonl(pred) if r.get("isolation")})
                if used:
                    isolation[f"isolation/{pred.relative_to(res.path / 'predictions').with_suffix('').as_posix()}"] = \
                        ",".join(used)
    if isolation:
        logger.set_tags(isolation)
    metrics.update(result.metrics)
    logger.log_metrics(metrics)
