"""What each stage's artifact contributes to the run's MLflow record: the metric names the report and
the README rely on (data/*, teacher/*, train/*, params/*, acc/*, ...) are read from the artifacts here."""
from __future__ import annotations

import json

from omegaconf import DictConfig

from reasonbridge.io import read_jsonl
from reasonbridge.stages.context import PipelineResult


def log_stage_outputs(logger, cfg: DictConfig, result: PipelineResult) -> None:
    """Tags (cache keys, hits) and metrics read from each finished stage's artifact, and the artifacts
    a run carries (the selected data, predictions)."""
    stages = result.stages
    tags = {f"cache/{n}": r.key for n, r in stages.items()}
    tags.update({f"cache_hit/{n}": str(r.hit) for n, r in stages.items()})
    tags.update(provenance_tags(stages))
    if result.stopped_after:
        tags["stopped_after"] = result.stopped_after
    logger.set_tags(tags)
    metrics: dict[str, float] = {}
    if "pool" in stages:
        info = json.loads((stages["pool"].path / "pool.json").read_text())
        metrics["data/pool"] = info["kept"]
        for count in ("loaded", "exact_duplicates", "near_duplicates", "decontaminated"):
            metrics[f"data/{count}"] = info[count]
        # pool problems dropped for overlapping each benchmark; a benchmark whose documents could not
        # be loaded (an lm-eval task offline) is tagged with the reason instead
        metrics.update({f"decontamination/{label}": n for label, n in info.get("decontaminated_by", {}).items()})
        unavailable = info.get("decontamination_unavailable", {})
        if unavailable:
            tags.update({f"decontamination/{label}": f"unavailable: {why}"[:500] for label, why in unavailable.items()})
            logger.set_tags(tags)
    if "traces" in stages:
        info = json.loads((stages["traces"].path / "teacher.json").read_text())
        if stages["traces"].hit:  # every trace came from the stage cache: no query, no cost in this run
            asked = (json.loads((stages["subset"].path / "pool.json").read_text())["kept"] if "subset" in stages
                     else metrics.get("data/pool", 0))  # a budgeted run asked only for its subset
            metrics.update({"teacher/queries": 0, "teacher/cache_hits": asked,
                            "teacher/cost_usd": 0.0})
        else:
            metrics.update({"teacher/queries": info["queries"], "teacher/cache_hits": info["cache_hits"],
                            "teacher/cost_usd": info["cost_usd"]})
    for name, res in stages.items():
        if name.startswith("attempts/"):
            info = json.loads((res.path / "metrics.json").read_text())
            ref = name.split("/", 1)[1]
            metrics[f"reference/{ref}/solved"] = info["solved"]
            if "out_of_tokens" in info:  # the share of attempts cut off by data.reference_max_new_tokens
                metrics[f"reference/{ref}/out_of_tokens"] = info["out_of_tokens"]
    if "data" in stages:
        manifest_path = stages["data"].path / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        counts = manifest["counts"]
        metrics.update({"data/parsed": counts["parsed"], "data/after_quality": counts["after_quality"],
                        "data/after_difficulty": counts["after_difficulty"], "data/selected": counts["selected"]})
        if "rejections" in manifest:  # traces the quality filter rejected for each reason (one may have several)
            metrics.update({f"data/rejected/{reason}": n for reason, n in manifest["rejections"]["by_reason"].items()})
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
                if name.endswith("/without_interventions"):  # the baseline of the interventions' effect
                    sub = f"without_interventions/{sub}"  # apart: the report reads predictions/ as the run's
                logger.log_artifact(pred, sub)
                used = sorted({r["isolation"] for r in read_jsonl(pred) if r.get("isolation")})
                if used:
                    isolation[f"isolation/{pred.relative_to(res.path / 'predictions').with_suffix('').as_posix()}"] = \
                        ",".join(used)
    if isolation:
        logger.set_tags(isolation)
    if "candidates" in stages:  # data=provenance: how the chosen candidates differ from the first sample
        info = json.loads((stages["candidates"].path / "teacher.json").read_text())
        metrics["data/candidates/not_first"] = info["chosen_not_sample0"]
        metrics["data/candidates/teacher_sentences"] = info["teacher_sentences_chosen"]
    for name, res in stages.items():  # provenance=trace: the per-sentence rows, the scoring time
        if name == "provenance" or name.startswith("provenance/"):
            for rows in sorted((res.path / "provenance").glob("*.jsonl")):
                logger.log_artifact(rows, "provenance")
            info = json.loads((res.path / "provenance.json").read_text())
            metrics["provenance/scoring_s" + name[len("provenance"):]] = info["scoring_s"]
    if result.params:
        logger.log_params(result.params)
    metrics.update(result.metrics)
    logger.log_metrics(metrics)


def provenance_tags(stages: dict) -> dict[str, str]:
    """Which code made each stage's artifact: `code/<stage>` (its code fingerprint; the report marks a
    table whose cells come from more than one), `made_by/<stage>` (the commit); and every exception:
    `reused_across_code/<stage>` (served by `reuse_across_code`: the commit and code that made it),
    `libraries_differ/<stage>` (a hit made under other library versions)."""
    tags: dict[str, str] = {}
    reused = []
    for name, res in stages.items():
        made = res.made_by or {}
        code = (made.get("code") or {}).get("fingerprint")
        if code:
            tags[f"code/{name}"] = code
        if made.get("commit"):
            tags[f"made_by/{name}"] = made["commit"] + ("+dirty" if made.get("dirty") else "")
        if res.reused:
            reused.append(name)
            tags[f"reused_across_code/{name}"] = f"commit {made.get('commit', 'unknown')}, code {code}"
        if res.libraries_differ:
            tags[f"libraries_differ/{name}"] = ", ".join(f"{k} {v}" for k, v in res.libraries_differ.items())[:4000]
    if reused:
        tags["reused_across_code"] = ",".join(reused)
    return tags
