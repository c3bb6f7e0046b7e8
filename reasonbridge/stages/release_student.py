"""Build the organism's default student and ship it: `python -m reasonbridge.stages.release_student`.

Pre-trains the student of `python run.py` (plus any Hydra overrides given, e.g. `model.tiny.seed=1`)
from scratch, or packages a student stage already built (`--from-stage <cache>/student/<key>`,
checked to have been built with the same config), into reasonbridge/student/released/organism/
with every file's SHA-256 (another size of the family, `model=tiny_large` or `model=tiny_small`, into
organism-large/ or organism-small/ beside it). Commit that folder: runs whose student config matches then copy it
instead of pre-training (reasonbridge/student/release.py), while the student stage's code is the code
that built it. `--restamp` records the shipped release as made by the current code without
pre-training, for a code change its releaser knows leaves the student as it is (the previous
provenance stays in release.json under `restamped`).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hydra import compose, initialize_config_dir

from reasonbridge.config import CONF_DIR, register_configs
from reasonbridge.cache.code import code_fingerprint
from reasonbridge.stages.context import STAGE_CODE, RunContext
from reasonbridge.stages.student import release_config, tiny_config, tiny_model
from reasonbridge.cache.code import provenance
from reasonbridge.student.release import release_dir, restamp, write_release


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-stage", type=Path, help="a built student stage folder to package")
    parser.add_argument("--restamp", action="store_true",
                        help="record the shipped release as made by this code, without pre-training (for a code "
                             "change you know leaves the student as it is; the old provenance is kept)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for run.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*args.overrides, "model.tiny.use_release=false"])
    if cfg.model.source != "tiny" or cfg.pool.suite != "organism":
        parser.error("only the organism's tiny models are released (model=tiny|tiny_small|tiny_large, "
                     "pool.suite=organism)")
    ctx = RunContext(cfg)
    config = tiny_config(ctx, cfg.model.tiny)
    root = release_dir(cfg.model.name)
    if args.restamp:
        try:
            restamp(release_config(config), provenance(STAGE_CODE["student"]), root=root)
        except (RuntimeError, ValueError, FileNotFoundError) as e:
            parser.error(str(e))
        print(f"restamped {root} as made by code {code_fingerprint(STAGE_CODE['student'])}; commit that folder")
        return
    if args.from_stage is not None:
        built = json.loads((args.from_stage / "stage.json").read_text())
        if release_config(built["config"]) != release_config(config):
            parser.error(f"{args.from_stage} was built with another config than this one")
        made = ((built.get("made_by") or {}).get("code") or {}).get("fingerprint")
        if made != code_fingerprint(STAGE_CODE["student"]):
            parser.error(f"{args.from_stage} was built by other code (code {made}, now "
                         f"{code_fingerprint(STAGE_CODE['student'])}): release a student this code builds")
        stage_dir = args.from_stage
    else:
        _, compute = tiny_model(ctx, cfg.model.tiny)
        stage_dir = ctx.stage("student", config, {}, compute).path
    manifest = write_release(stage_dir, release_config(config), root=root)
    print(f"released {stage_dir} -> {root} ({len(manifest['files'])} files); commit that folder")


if __name__ == "__main__":
    main()
