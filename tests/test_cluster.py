"""Cluster behaviour: concurrent stage caching, SLURM job states, preemption and requeue."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonbridge.cache import MANIFEST, StageCache

ROOT = Path(__file__).resolve().parents[1]


# -- stage cache under concurrent processes -------------------------------------------------
def _hold_stage(root: str, ready: str) -> None:
    """Compute a stage that writes half its artifact, says so, and hangs (to be killed)."""
    def compute(out: Path) -> None:
        (out / "part1").write_text("half")
        Path(ready).write_text(str(os.getpid()))
        time.sleep(120)
        (out / "part2").write_text("never written")
    StageCache(root).run("s", "k", compute)


def _finish_stage(root: str, result: str) -> None:
    def compute(out: Path) -> None:
        (out / "part1").write_text("whole")
        (out / "part2").write_text("whole")
    res = StageCache(root).run("s", "k", compute)
    Path(result).write_text(json.dumps({"hit": res.hit, "files": sorted(p.name for p in res.path.iterdir())}))


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_killed_lock_holder_neither_blocks_nor_leaks_a_partial_artifact(tmp_path):
    ctx = mp.get_context("spawn")
    root, ready, result = tmp_path / "cache", tmp_path / "ready", tmp_path / "result.json"
    holder = ctx.Process(target=_hold_stage, args=(str(root), str(ready)))
    holder.start()
    try:
        _wait_for(ready)
        waiter = ctx.Process(target=_finish_stage, args=(str(root), str(result)))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and not result.exists()  # blocked on the lock, not reading
        cache = StageCache(root)
        assert not cache.exists("s", "k") and not cache.path("s", "k").exists()  # nothing half-written visible
        assert list((root / "s").glob(".tmp-k-*/part1"))  # the holder's partial work is in its temp folder
        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock
        waiter.join(60)
        assert waiter.exitcode == 0
    finally:
        holder.kill()
        holder.join()
    out = json.loads(result.read_text())
    assert out == {"hit": False, "files": ["part1", "part2", MANIFEST]}
    assert (root / "s" / "k" / "part1").read_text() == "whole"
    assert list((root / "s").glob(".tmp-*")) == []  # the dead holder's temp folder was cleared


# -- SLURM job states without accounting -----------------------------------------------------
SCONTROL_ARRAY = (
    "JobId=42 ArrayJobId=41 ArrayTaskId=1 JobName=run JobState=CANCELLED Reason=None NodeList=vm Command=/a b\n"
    "JobId=41 ArrayJobId=41 ArrayTaskId=0 JobName=run JobState=COMPLETED Reason=None NodeList=vm\n"
    "JobId=43 ArrayJobId=41 ArrayTaskId=2-3%1 JobName=run JobState=PENDING Reason=JobArrayTaskLimit NodeList=\n")


def test_parse_scontrol_names_array_tasks_like_submitit():
    from reasonbridge.slurm import parse_scontrol
    states = parse_scontrol(SCONTROL_ARRAY)
    assert {k: v["State"] for k, v in states.items()} == {
        "41_0": "COMPLETED", "41_1": "CANCELLED", "41_2": "PENDING", "41_3": "PENDING"}
    assert parse_scontrol("JobId=7 JobName=x JobState=RUNNING NodeList=vm\n")["7"]["State"] == "RUNNING"


def _fake_bin(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_without_sacct_a_killed_job_is_done_not_pending(tmp_path, monkeypatch):
    """sacct fails (no accounting): the watcher asks scontrol, so submitit sees a terminal state."""
    from reasonbridge.slurm import GONE, ScontrolWatcher
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_bin(bin_dir, "sacct", 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1\n')
    _fake_bin(bin_dir, "scontrol", f"""case "$4" in
  41) printf '%s' '{SCONTROL_ARRAY}';;
  *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;;
esac
""")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    watcher = ScontrolWatcher(delay_s=60)
    for job in ("41_0", "41_1", "41_2", "99"):
        watcher.register_job(job)
    watcher.update()
    assert watcher.get_state("41_1", mode="cache") == "CANCELLED" and watcher.is_done("41_1", mode="cache")
    assert watcher.is_done("41_0", mode="cache")
    assert not watcher.is_done("41_2", mode="cache")  # still pending: keep waiting
    assert watcher.get_state("99", mode="cache") == GONE and watcher.is_done("99", mode="cache")


# -- preemption: signal a running local job, it checkpoints, requeues and resumes --------------
def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


@pytest.mark.slow
def test_preempted_local_job_checkpoints_requeues_and_resumes(tmp_path, shared_cache, mlflow_uri):
    sweep = tmp_path / "multirun"
    steps = 40
    cmd = [sys.executable, "run.py", "-m", "hydra/launcher=local", "experiment=micro", "progress=false",
           f"train.max_steps={steps}", "train.save_every=2", f"paths.cache_dir={shared_cache}",
           f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # a periodic checkpoint proves the training loop runs; then preempt the job
        _wait_for_glob(shared_cache / "train", "*.ckpt/state.pt", proc, timeout=300)
        controller = next(p for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
        os.kill(int(controller.name), signal.SIGTERM)  # submitit's controller forwards it to the task
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    log = (sweep / "0" / "run.log").read_text()
    saved = [int(line.split("checkpoint at step ")[1].split()[0]) for line in log.splitlines()
             if "saved for the requeued job" in line]
    resumed = [int(line.split("from the checkpoint at step ")[1].split()[0]) for line in log.splitlines()
               if "from the checkpoint at step" in line]
    assert len(saved) == 1 and resumed == saved and 0 < saved[0] < steps, log
    assert "Requeued job" in log
    runs = _runs(mlflow_uri, "micro")
    assert len(runs) == 1  # the requeued job continued the preempted MLflow run
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["preempted"] == "true" and run.data.tags["resumed"] == "true"
    from mlflow.tracking import MlflowClient
    history = MlflowClient(mlflow_uri).get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))  # the whole curve, no step twice
    assert not list((shared_cache / "train").glob("*.ckpt"))  # checkpoints removed once the artifact is stored


def _wait_for_glob(folder: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while True:
        found = list(folder.glob(pattern)) if folder.exists() else []
        if found:
            return found[0]
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"no {pattern} under {folder} after {timeout}s"
        time.sleep(0.1)


# -- the train stage under `accelerate launch` (multi-GPU path; one CPU process here) ---------
@pytest.mark.slow
def test_training_under_accelerate_launch_matches_in_process_training(micro_cfg, tmp_path):
    from reasonbridge.pipeline import Pipeline
    accelerate_cfg = tmp_path / "cpu.yaml"
    accelerate_cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\n"
                              "num_machines: 1\nmixed_precision: 'no'\nuse_cpu: true\n")
    plain = Pipeline(micro_cfg("stop_after=train")).run()
    launched = Pipeline(micro_cfg("stop_after=train", f"train.accelerate_config={accelerate_cfg}")).run()
    assert plain.stages["train"].key != launched.stages["train"].key
    assert not launched.stages["train"].hit
    summary = json.loads((launched.stages["train"].path / "train.json").read_text())
    reference = json.loads((plain.stages["train"].path / "train.json").read_text())
    assert summary["steps"] == reference["steps"] > 0
    assert [h["loss"] for h in summary["history"]] == pytest.approx([h["loss"] for h in reference["history"]])
    assert (launched.stages["train"].path / "adapter" / "trained.json").exists()
    assert not (launched.stages["train"].path / "launch.json").exists()


def test_processes_and_accelerate_config_are_checked(micro_cfg):
    from reasonbridge.config import ConfigError, validate
    with pytest.raises(ConfigError, match="train.processes"):
        validate(micro_cfg("train.processes=0"))
    with pytest.raises(ConfigError, match="train.accelerate_config"):
        validate(micro_cfg("train.accelerate_config=/no/such/accelerate.yaml"))


# -- preemption inside the training loop (in-process, no submitit) ---------------------------
@pytest.fixture
def fresh_preemption():
    from reasonbridge import preemption
    handlers = {sig: signal.getsignal(sig) for sig in preemption.SIGNALS}
    preemption._reset_for_tests()
    preemption.install()
    yield preemption
    preemption._reset_for_tests()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _train(student: str, data: Path, out: Path, ckpt: Path, signal_at: int | None = None, seen=None):
    from reasonbridge.training.run import train_student
    from tests.conftest import compose_config
    cfg = compose_config(["experiment=micro", "adapters=lora", "train.max_steps=4", "train.batch_size=4",
                          "train.save_every=0", "train.precision=fp32", "progress=false"])

    def on_step(step: int) -> None:
        if seen is not None:
            seen.append(step)
        if step == signal_at:
            os.kill(os.getpid(), signal.SIGUSR1)  # as SLURM's --signal would, mid-training
    return train_student(cfg, student, data, out, checkpoint_dir=ckpt, on_step=on_step)


def test_signal_during_training_checkpoints_that_step_and_a_rerun_resumes(micro_cfg, tmp_path, fresh_preemption):
    from reasonbridge.io import write_jsonl
    from reasonbridge.pipeline import Pipeline
    from tests.test_training import _traces
    pipe = Pipeline(micro_cfg("stop_after=student"))
    student = pipe.student_path(pipe.student())
    data = tmp_path / "selected.jsonl"
    write_jsonl(data, _traces(12))
    straight = _train(student, data, tmp_path / "a", tmp_path / "ckpt-a")
    with pytest.raises(SystemExit) as exit_info:
        _train(student, data, tmp_path / "b", tmp_path / "ckpt-b", signal_at=2)
    assert exit_info.value.code == 128 + signal.SIGUSR1
    assert fresh_preemption.preempted() and not fresh_preemption.pending()
    # signalled after step 2: step 3 finished and was saved, although periodic checkpoints are off
    import torch
    assert torch.load(tmp_path / "ckpt-b" / "state.pt", weights_only=False)["state"]["step"] == 3
    fresh_preemption._reset_for_tests()
    steps_run: list[int] = []
    resumed = _train(student, data, tmp_path / "b", tmp_path / "ckpt-b", seen=steps_run)
    assert steps_run == [4]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
