"""Stage `attempts` (and `reference`): each difficulty-filter reference model's judged answer to every
pool problem; a tiny reference is built like the student."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, student_path
from reasonbridge.stages.student import tiny_model

log = logging.getLogger("reasonbridge.pipeline")


def references(ctx: RunContext, student: StageResult) -> dict[str, tuple[str, StageResult | None]]:
    """name -> (model folder, the stage that built it) for the difficulty filter's reference models."""
    cfg = ctx.cfg
    out: dict[str, tuple[str, StageResult | None]] = {}
    for ref in cfg.data.references:
        if ref.source == "student":
            out[ref.name] = (student_path(student), student)
        elif ref.source == "pretrained":
            out[ref.name] = (ref.path, None)
        else:
            config, compute = tiny_model(ctx, OmegaConf.merge(cfg.model.tiny, dict(ref.tiny)))
            res = ctx.stage("reference", config, {}, compute, label=f"reference/{ref.name}")
            out[ref.name] = (str(res.path / "model"), res)
    return out


# a reference cut off this often is judged on unfinished answers: its solve rate says little
OUT_OF_TOKENS_WARNING = 0.2


def attempts(ctx: RunContext, student: StageResult, pool: StageResult) -> dict[str, StageResult]:
    """Each reference model's answer to every pool problem, judged by the answer checker (the math
    checker for a pool read from files, as their benchmarks are judged)."""
    from reasonbridge.config import reference_max_new_tokens
    cfg = ctx.cfg
    checker = "math" if cfg.pool.name == "jsonl" else "exact"
    results = {}
    built_refs = references(ctx, student)
    for ref in cfg.data.references:
        name, (path, built) = ref.name, built_refs[ref.name]
        budget = reference_max_new_tokens(cfg, ref)
        config = {"reference": path if built is None else None, "dtype": cfg.model.dtype, "max_new_tokens": budget}
        if checker != "exact":
            config["checker"] = checker
        upstream = {"pool": pool, **({"model": built} if built is not None else {})}

        def compute(out: Path, path=path, name=name, budget=budget) -> None:
            from reasonbridge.config import InferenceConfig
            from reasonbridge.evaluation.evaluate import evaluate
            from reasonbridge.models.loading import load_model
            model, tokenizer = load_model(path, cfg.model.dtype)
            greedy = OmegaConf.structured(InferenceConfig(name="none", max_new_tokens=budget,
                                                          batch_size=cfg.data.reference_batch_size))
            predictions, metrics = evaluate(model, tokenizer, read_jsonl(pool.path / "problems.jsonl"),
                                            benchmark="pool", inference=greedy, seed=cfg.seed,
                                            progress=cfg.progress, checker=checker)
            write_jsonl(out / "attempts.jsonl", [{k: p[k] for k in ("id", "output", "extracted", "correct", "hit_limit")}
                                                 for p in predictions])
            write_json_atomic(out / "metrics.json", {
                "reference": name, "solved": metrics["acc/pool"], "max_new_tokens": budget,
                "out_of_tokens": sum(p["hit_limit"] for p in predictions) / max(len(predictions), 1)})
        results[name] = ctx.stage("attempts", config, upstream, compute, label=f"attempts/{name}")
        warn_about_reference(name, json.loads((results[name].path / "metrics.json").read_text()), budget)
    return results


def warn_about_reference(name: str, info: dict, budget: int) -> None:
    """A reference that solves nothing or everything leaves the difficulty filter nothing to decide;
    one often cut off by its token budget is judged on answers it never finished."""
    if info["solved"] in (0.0, 1.0):
        log.warning("reference %s solves %s of the pool: the difficulty filter keeps %s", name,
                    "none" if info["solved"] == 0.0 else "all", "every trace" if info["solved"] == 0.0 else "none")
    out = info.get("out_of_tokens")
    if out is not None and out > OUT_OF_TOKENS_WARNING:
        log.warning("reference %s ran out of tokens on %.0f%% of its attempts (max_new_tokens=%d): raise "
                    "data.reference_max_new_tokens, or its failures are only cut-off answers", name, 100 * out, budget)
