"""Stage `benchmark`: each evaluated benchmark's problems, normalised ({id, problem, answer, ...,
meta}) into problems.jsonl, keyed on its config and, for files, their contents."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.config import generated_benchmark
from reasonbridge.io import write_jsonl
from reasonbridge.stages.context import RunContext, benchmark_label, config_slice

log = logging.getLogger("reasonbridge.pipeline")
_KEEP = ("name", "size", "source", "fields", "hub", "hub_config", "split", "subsets", "shuffle_choices")


def benchmark_configs(cfg) -> list:
    """The benchmarks this run evaluates: `benchmarks` (each from conf/benchmark/<name>.yaml,
    the one selected with `benchmark=` keeping its overrides), else just `benchmark`;
    `eval_limit` caps each at its first problems."""
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


def check_before_work(cfg) -> None:
    """A missing benchmark file fails before any work; so does a code benchmark without a sandbox."""
    from reasonbridge.evaluation.benchmarks import checker_of, resolve_path
    for bcfg in benchmark_configs(cfg):
        if bcfg.name != "lm_eval" and not generated_benchmark(bcfg) and bcfg.source == "file":
            resolve_path(bcfg)
        local = local_lm_eval_benchmark(bcfg) if bcfg.name == "lm_eval" else bcfg
        if local is not None and checker_of(local) == "code":
            from reasonbridge.evaluation.sandbox import ISOLATION_NONE, require
            if require(bcfg.unsafe_unsandboxed_code) == ISOLATION_NONE:
                log.warning("benchmark %s: model-written code runs WITHOUT an OS sandbox "
                            "(benchmark.unsafe_unsandboxed_code=true)", benchmark_label(bcfg))


def local_lm_eval_benchmark(bcfg):
    """For lm-eval task reasonbridge_<name>: the local benchmark <name>'s config, else None."""
    from reasonbridge.config import ConfigError, benchmark_option, group_options
    from reasonbridge.evaluation.benchmarks import LOCAL_PREFIX
    if not bcfg.task.startswith(LOCAL_PREFIX):
        return None
    name = bcfg.task[len(LOCAL_PREFIX):]
    if name == "lm_eval" or name not in group_options("benchmark"):
        raise ConfigError(f"invalid config value benchmark.task={bcfg.task!r}: no local benchmark {name!r} "
                          f"(conf/benchmark/{name}.yaml)")
    node = benchmark_option(name)
    node.size = bcfg.size if bcfg.size is not None else node.size
    return node


def benchmark(ctx: RunContext, bcfg) -> StageResult:
    cfg = ctx.cfg
    config: dict = {"seed": cfg.seed}
    if bcfg.name == "synthetic":
        config.update(benchmark={k: config_slice(bcfg)[k] for k in ("name", "size", "difficulties")},
                      suite=ctx.suite_key())
    elif generated_benchmark(bcfg):
        config.update(benchmark={k: config_slice(bcfg)[k] for k in ("name", "size", "difficulties", "domains", "mix")},
                      suite=ctx.suite_key())
    elif bcfg.name == "lm_eval":
        config.update(benchmark={"name": "lm_eval", "task": bcfg.task, "size": bcfg.size,
                                 "num_fewshot": bcfg.num_fewshot})
        local = local_lm_eval_benchmark(bcfg)
        if local is None:  # its documents, loaded for decontamination where they can be
            config["documents"] = {"include_path": bcfg.include_path, "version": 1}
        if local is not None and local.name == "synthetic":
            config["local"] = {"benchmark": {k: config_slice(local)[k] for k in ("name", "size", "difficulties")},
                               "suite": ctx.suite_key()}
        elif local is not None:
            config["local"] = _source_key(local)
    else:
        config.update(_source_key(bcfg))

    def compute(out: Path) -> None:
        if bcfg.name == "lm_eval" and local_lm_eval_benchmark(bcfg) is None:
            from reasonbridge.evaluation.lm_eval_docs import task_problems
            problems, why = task_problems(bcfg.task, bcfg.include_path)
            write_json_atomic(out / "decontamination.json", {"documents": len(problems), "unavailable": why})
        else:
            problems = _load_problems(ctx, bcfg)
        write_jsonl(out / "problems.jsonl", problems)
    res = ctx.stage("benchmark", config, {}, compute, label=ctx.label("benchmark", bcfg))
    why = decontamination_unavailable(res)
    if why:
        log.warning("benchmark %s: the pool is NOT decontaminated against it: %s", benchmark_label(bcfg), why)
    return res


def decontamination_unavailable(res: StageResult) -> str | None:
    """Why a benchmark's documents could not be loaded for decontamination (an lm-eval task's), else None."""
    path = res.path / "decontamination.json"
    return json.loads(path.read_text())["unavailable"] if path.exists() else None


def _source_key(bcfg) -> dict:
    """The config and, for files, the contents' hash: a changed file is a different benchmark."""
    from reasonbridge.curation.pool import file_sha256
    from reasonbridge.evaluation.benchmarks import resolve_path
    key: dict = {"benchmark": {k: config_slice(bcfg)[k] for k in _KEEP}}
    if bcfg.source == "file":
        path = resolve_path(bcfg)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        key["files"] = {f.name: file_sha256(f) for f in files}
    return key


def _load_problems(ctx: RunContext, bcfg) -> list[dict]:
    cfg = ctx.cfg
    if bcfg.name == "lm_eval":
        local = local_lm_eval_benchmark(bcfg)
        return _load_problems(ctx, local) if local is not None else []
    if generated_benchmark(bcfg):
        from reasonbridge.curation.pool import synthetic_benchmark
        s = ctx.suite()
        if bcfg.name == "synthetic":
            return synthetic_benchmark(bcfg.size, seed=cfg.seed, difficulties=list(bcfg.difficulties),
                                       max_operand=s["max_operand"], domains=s["domains"], suite=s["suite"])
        domains = [str(d) for d in bcfg.domains] if bcfg.domains else s["domains"]
        return synthetic_benchmark(bcfg.size, seed=cfg.seed, difficulties=list(bcfg.difficulties),
                                   max_operand=s["max_operand"], domains=domains, suite=s["suite"], mix=bcfg.mix,
                                   id_prefix=bcfg.name)
    from reasonbridge.evaluation.benchmarks import load_benchmark
    return load_benchmark(bcfg, seed=cfg.seed)
