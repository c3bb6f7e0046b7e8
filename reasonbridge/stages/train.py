"""Stage `train`: the student with adapters trained on the selected traces (resumable checkpoints
beside the artifact; several GPUs through `accelerate launch`)."""
from __future__ import annotations

import shutil
from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.stages.context import RunContext, config_slice, student_path


def train(ctx: RunContext, student: StageResult, data: StageResult) -> StageResult:
    cfg = ctx.cfg
    train_slice = config_slice(cfg.train)
    if train_slice.get("processes") == 1 and not train_slice.get("accelerate_config"):  # keys as before
        train_slice = {k: v for k, v in train_slice.items() if k not in ("processes", "accelerate_config")}
    if train_slice.get("curriculum") == "none":  # keys as before the option existed
        train_slice = {k: v for k, v in train_slice.items() if k != "curriculum"}
    config = {"adapters": config_slice(cfg.adapters), "train": train_slice, "seed": cfg.seed}
    upstream = {"student": student, "data": data}
    # The stage computes into a temp folder that is deleted on failure, so resumable
    # checkpoints live beside it, keyed like the artifact, until the artifact is in place.
    checkpoints = ctx.cache.path("train", ctx.key("train", config, upstream)).with_suffix(".ckpt")

    def compute(out: Path) -> None:
        if cfg.train.processes > 1 or cfg.train.accelerate_config:  # several GPUs: `accelerate launch`
            from reasonbridge.training.distributed import train_launched
            summary = train_launched(cfg, student_path(student), data.path / "selected.jsonl", out,
                                     checkpoint_dir=checkpoints)
        else:
            from reasonbridge.training.run import train_student
            summary = train_student(cfg, student_path(student), data.path / "selected.jsonl", out,
                                    checkpoint_dir=checkpoints)
        write_json_atomic(out / "train.json", summary)
    result = ctx.stage("train", config, upstream, compute)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result
