"""The train stage under `accelerate launch`: data-parallel training on several GPUs of a node.

With `train.processes > 1` (or `train.accelerate_config` set) the pipeline stays one process
(caching, MLflow) and only training runs as `accelerate launch ... -m
reasonbridge.training.distributed <spec>`: every rank trains, rank 0 writes the adapter and
the summary into the stage's temp folder. A preemption signal reaching this process is
forwarded to the launched processes; they checkpoint at the same step (the ranks agree
through an all-reduce) and exit, then this job requeues (see `reasonbridge.preemption`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasonbridge import preemption

SPEC = "launch.json"
SUMMARY = "train.json"


def launch_command(train_cfg, spec: Path) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if train_cfg.accelerate_config:  # its num_processes counts unless train.processes > 1 says otherwise
        cmd += ["--config_file", str(train_cfg.accelerate_config)]
    if train_cfg.processes > 1:
        cmd += ([] if train_cfg.accelerate_config else ["--multi_gpu"]) + ["--num_processes", str(train_cfg.processes)]
    elif not train_cfg.accelerate_config:
        cmd += ["--num_processes", "1"]
    return cmd + ["--num_machines", "1", "-m", "reasonbridge.training.distributed", str(spec)]


def train_launched(cfg: DictConfig, student_path: str, selected_path: Path, out: Path,
                   checkpoint_dir: Path) -> dict:
    """Run `train_student` under `accelerate launch`; return rank 0's summary."""
    spec = out / SPEC
    spec.write_text(json.dumps({"config": OmegaConf.to_container(cfg, resolve=True), "student": student_path,
                                "selected": str(selected_path), "out": str(out),
                                "checkpoints": str(checkpoint_dir)}))
    cmd = launch_command(cfg.train, spec)
    with preemption.checkpointable():  # a signal is forwarded, then handled once the ranks exited
        proc = subprocess.Popen(cmd, start_new_session=True)
        forwarded = False
        while proc.poll() is None:
            if preemption.pending() and not forwarded:
                os.killpg(proc.pid, preemption.pending_signal())
                forwarded = True
            time.sleep(0.2)
        _wait_group_exit(proc.pid)  # ranks may still be writing their checkpoint
    spec.unlink()
    if preemption.pending():
        preemption.hand_off()
    if proc.returncode != 0:
        raise RuntimeError(f"training under `{' '.join(cmd)}` failed (exit code {proc.returncode}); "
                           "its output is above")
    return json.loads((out / SUMMARY).read_text())


def _wait_group_exit(pgid: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def main(spec_path: str) -> None:
    """One rank: train, and on rank 0 write the summary next to the adapter."""
    from accelerate import PartialState

    from reasonbridge.cache import write_json_atomic
    from reasonbridge.training.run import train_student

    preemption.install()
    spec = json.loads(Path(spec_path).read_text())
    cfg = OmegaConf.create(spec["config"])
    summary = train_student(cfg, spec["student"], Path(spec["selected"]), Path(spec["out"]),
                            checkpoint_dir=Path(spec["checkpoints"]))
    if PartialState().is_main_process:
        write_json_atomic(Path(spec["out"]) / SUMMARY, summary)


if __name__ == "__main__":
    main(sys.argv[1])
