"""What every stage shares in one run: the config, the stage cache, the results so far, and how a
stage's key is made from its config slice, its upstream artifacts' contents and its code."""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasonbridge import preemption
from reasonbridge.cache import StageCache, StageResult, stage_key
from reasonbridge.cache.code import code_fingerprint, provenance

log = logging.getLogger("reasonbridge.pipeline")

# The module whose code a stage runs (its compute function's); the stage key carries the fingerprint
# of it and of every reasonbridge module it imports (reasonbridge/cache/code.py), so no version
# number is kept by hand. A reference model is built by the student stage's code.
STAGE_CODE = {"student": "reasonbridge.stages.student", "reference": "reasonbridge.stages.student",
              "benchmark": "reasonbridge.stages.benchmark", "pool": "reasonbridge.stages.pool",
              "traces": "reasonbridge.stages.traces", "attempts": "reasonbridge.stages.attempts",
              "data": "reasonbridge.stages.data", "train": "reasonbridge.stages.train",
              "eval": "reasonbridge.stages.eval", "diagnose": "reasonbridge.stages.diagnose",
              "subset": "reasonbridge.stages.bridge", "rationales": "reasonbridge.stages.bridge",
              "candidates": "reasonbridge.stages.provenance", "provenance": "reasonbridge.stages.provenance"}


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
    params: dict[str, str] = field(default_factory=dict)  # beside the config's, e.g. which provenance T
    run_id: str | None = None
    stopped_after: str | None = None


def benchmark_label(bcfg) -> str:
    """The name in metrics and artifacts: acc/<label>, predictions/<label>.jsonl."""
    return f"lm_eval/{bcfg.task}" if bcfg.name == "lm_eval" else bcfg.name


class RunContext:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.cache = StageCache(Path(cfg.paths.cache_dir), force=set(cfg.force),
                                reuse=set(cfg.get("reuse_across_code") or ()))
        self.result = PipelineResult()
        self.eval_model: tuple | None = None  # (model, tokenizer), loaded by the first evaluation
        self.joint_done = False  # every pending benchmark was generated and judged in one pass
        self.prefix = ""  # a derived context's stages are named <prefix>/<stage> in the results

    def derived(self, prefix: str, **nodes) -> "RunContext":
        """A context for a second model of the run (a teacher language model, a teacher assistant):
        the run's config with ``nodes`` (e.g. ``model=``, ``adapters=``, ``train=``) in place of its
        own, the same stage cache and results, its stages named ``<prefix>/<stage>`` there. Its
        stages are keyed like any other, on their own config slices."""
        cfg = self.cfg.copy()
        for key, node in nodes.items():
            schema = OmegaConf.get_type(cfg, key)  # replaced whole, not merged: the schema's defaults, then node
            base = OmegaConf.structured(schema) if dataclasses.is_dataclass(schema) else OmegaConf.create({})
            OmegaConf.update(cfg, key, OmegaConf.merge(base, config_slice(node)), merge=False)
        child = RunContext.__new__(RunContext)
        child.__dict__.update(self.__dict__)
        child.cfg, child.eval_model, child.joint_done = cfg, None, False
        child.prefix = f"{self.prefix}{prefix}/"
        return child

    def key(self, name: str, config, upstream: dict[str, StageResult], code: bool = True) -> str:
        """Stage ``name``'s key: its config, what it reads (each upstream artifact's contents) and,
        unless ``code`` is false (the key artifacts made by any code share), its code's fingerprint."""
        return stage_key(name, config_slice(config), {k: v.digest for k, v in upstream.items()},
                         code_fingerprint(STAGE_CODE[name]) if code else None)

    def stage(self, name: str, config, upstream: dict[str, StageResult], compute,
              label: str | None = None) -> StageResult:
        """Run or reuse stage ``name``; ``label`` names it in the results when one stage runs several times."""
        key = self.key(name, config, upstream)
        res = self.cache.run(name, key, compute,
                             meta={"config": config_slice(config), "upstream": {k: v.key for k, v in upstream.items()}},
                             made_by=provenance(STAGE_CODE[name]), base=self.key(name, config, upstream, code=False))
        label = f"{self.prefix}{label or name}"
        log.info("stage %-9s %s (%s, %.1fs)", label, res.key,
                 "reused across code" if res.reused else "cached" if res.hit else "computed", res.seconds)
        self.result.stages[label] = res
        preemption.at_safe_point()  # a signal that came during the stage's last moments
        return res

    def suite(self) -> dict:
        """The synthetic generators' arguments."""
        p = self.cfg.pool
        return {"suite": p.suite, "difficulties": list(p.difficulties), "max_operand": p.max_operand,
                "domains": list(p.domains) if p.domains else None}

    def suite_key(self) -> dict:
        """What stages built from the synthetic suite are keyed on: its arguments (its generator's
        code is in the fingerprint of every stage that imports it)."""
        return self.suite()

    def label(self, stage: str, bcfg) -> str:
        """A per-benchmark stage's name in the results: `eval`, or `eval/<benchmark>` with `benchmarks`."""
        return stage if not self.cfg.benchmarks else f"{stage}/{benchmark_label(bcfg)}"
