"""What every stage shares in one run: the config, the stage cache, the results so far, and how a
stage's key is made from its config slice and its upstream stages' keys."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasonbridge import preemption
from reasonbridge.cache import StageCache, StageResult, stage_key

log = logging.getLogger("reasonbridge.pipeline")

# Bump a stage's version when its code changes what it produces.
VERSIONS = {"student": 3, "benchmark": 2, "pool": 3, "traces": 2, "reference": 2, "attempts": 1, "data": 2,
            "train": 2, "eval": 6, "diagnose": 1}


def config_slice(node) -> dict:
    """A config node as plain data, interpolations resolved: what a stage key hashes."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def student_path(res: StageResult) -> str:
    """The model folder a student (or reference) stage built, or the external one it records."""
    info = json.loads((res.path / "student.json").read_text())
    return info["path"] if info.get("external") else str(res.path / info["path"])


@dataclass
class PipelineResult:
    stages: dict[str, StageResult] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    stopped_after: str | None = None


def benchmark_label(bcfg) -> str:
    """The name in metrics and artifacts: acc/<label>, predictions/<label>.jsonl."""
    return f"lm_eval/{bcfg.task}" if bcfg.name == "lm_eval" else bcfg.name


class RunContext:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.cache = StageCache(Path(cfg.paths.cache_dir), force=set(cfg.force))
        self.result = PipelineResult()
        self.eval_model: tuple | None = None  # (model, tokenizer), loaded by the first evaluation
        self.joint_done = False  # every pending benchmark was generated and judged in one pass

    def key(self, name: str, config, upstream: dict[str, StageResult]) -> str:
        return stage_key(name, VERSIONS[name], config_slice(config), {k: v.key for k, v in upstream.items()})

    def stage(self, name: str, config, upstream: dict[str, StageResult], compute,
              label: str | None = None) -> StageResult:
        """Run or reuse stage ``name``; ``label`` names it in the results when one stage runs several times."""
        key = self.key(name, config, upstream)
        res = self.cache.run(name, key, compute, meta={"config": config_slice(config),
                                                        "upstream": {k: v.key for k, v in upstream.items()}})
        log.info("stage %-9s %s (%s, %.1fs)", label or name, key, "cached" if res.hit else "computed", res.seconds)
        self.result.stages[label or name] = res
        preemption.at_safe_point()  # a signal that came during the stage's last moments
        return res

    def suite(self) -> dict:
        """The synthetic generators' arguments."""
        p = self.cfg.pool
        return {"suite": p.suite, "difficulties": list(p.difficulties), "max_operand": p.max_operand,
                "domains": list(p.domains) if p.domains else None}

    def suite_key(self) -> dict:
        """What stages built from the synthetic suite are keyed on: its arguments and, for the
        organism, its version (its generator changes with the code, not with the config)."""
        return self.suite()

    def label(self, stage: str, bcfg) -> str:
        """A per-benchmark stage's name in the results: `eval`, or `eval/<benchmark>` with `benchmarks`."""
        return stage if not self.cfg.benchmarks else f"{stage}/{benchmark_label(bcfg)}"
