"""Stage `attempts` (and `reference`): each difficulty-filter reference model's judged answer to every
pool problem; a tiny reference is built like the student."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, student_path
from reasonbridge.stages.student import tiny_model


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


def attempts(ctx: RunContext, student: StageResult, pool: StageResult) -> dict[str, StageResult]:
    """Each reference model's answer to every pool problem, judged by the answer checker."""
    cfg = ctx.cfg
    results = {}
    for name, (path, built) in references(ctx, student).items():
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
        results[name] = ctx.stage("attempts", config, upstream, compute, label=f"attempts/{name}")
    return results
