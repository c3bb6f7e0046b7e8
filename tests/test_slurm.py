"""`hydra/launcher=slurm` against a real single-node SLURM (sweeps/slurm_local.sh starts one).

Skipped, with the reason, only when SLURM cannot be installed or started on this machine.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "slurm_local.sh"
SHARED_STAGES = ("student", "benchmark", "pool", "traces", "data")

pytestmark = pytest.mark.slow


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """Environment for SLURM commands: a configured cluster if there is one, else our own."""
    configured = subprocess.run(["sinfo", "-h"], capture_output=True, text=True) if _which("sinfo") else None
    if configured is not None and configured.returncode == 0 and configured.stdout.strip():
        yield dict(os.environ)
        return
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_LOCAL_DIR": str(state), "SLURM_LOCAL_PORT": str(_free_port_pair())}
    up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=600)
    if up.returncode == 3:
        pytest.skip(f"no SLURM on this machine: {up.stderr.strip().splitlines()[-1]}")
    assert up.returncode == 0, up.stderr
    env["SLURM_CONF"] = str(state / "slurm.conf")
    try:
        yield env
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        for daemon in ("munged", "slurmctld", "slurmd"):
            assert not (state / f"{daemon}.pid").exists(), f"{daemon} still running"


def _which(cmd: str) -> bool:
    from shutil import which
    return which(cmd) is not None


@pytest.fixture(scope="module")
def sweep_env(slurm_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm-sweep")
    return {**slurm_env, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}, root


def _sweep_cmd(root: Path, name: str, *overrides: str) -> list[str]:
    # one CPU per job: jobs share two cores; the preset's 4 GB each; a look at the states every 2 s
    return [sys.executable, "run.py", "-m", "hydra/launcher=slurm", "experiment=micro", "progress=false",
            f"paths.cache_dir={root / 'cache'}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.poll_interval_s=2",
            "hydra.launcher.timeout_min=15", f"hydra.sweep.dir={root / name}", *overrides]


def _queued(env: dict, output: str) -> list[str]:
    """The tasks of the sweep that printed `output` that SLURM still has queued or running."""
    array_id = re.search(r"submitted SLURM job (\d+)", output).group(1)
    return subprocess.run(["squeue", "-h", "-r", "-j", array_id, "-o", "%i"], env=env, capture_output=True,
                          text=True).stdout.split()


def test_three_job_sweep_shares_stages_and_logs_three_runs(sweep_env):
    from mlflow.tracking import MlflowClient
    env, root = sweep_env
    proc = subprocess.run(_sweep_cmd(root, "sweep", "adapters=lora,none,full"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Submitit 'slurm'" in proc.stdout
    assert "sweep finished: 0 of 3 tasks failed" in proc.stdout and "running on" in proc.stdout, proc.stdout[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("micro").experiment_id])
    assert sorted(r.data.params["adapters.name"] for r in runs) == ["full", "lora", "none"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for stage in SHARED_STAGES:  # computed by exactly one job, read by the other two
        assert sorted(r.data.tags[f"cache_hit/{stage}"] for r in runs) == ["False", "True", "True"], stage
    job_dirs = sorted(p for p in (root / "sweep").iterdir() if p.name.isdigit())
    assert [p.name for p in job_dirs] == ["0", "1", "2"]
    run_ids = {(d / "mlflow_run.json").read_text() for d in job_dirs}  # each job its own folder and run
    assert len(run_ids) == 3 and all((d / "run.log").exists() for d in job_dirs)


def test_impossible_request_fails_in_seconds_naming_the_setting(sweep_env):
    env, root = sweep_env
    start = time.monotonic()
    proc = subprocess.run(_sweep_cmd(root, "impossible", "stop_after=data", "seed=1,2",
                                     "hydra.launcher.cpus_per_task=4096"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "hydra.launcher.cpus_per_task=4096, but partition" in proc.stderr and "nothing was submitted" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not (root / "impossible" / ".submitit").exists() and "submitted SLURM job" not in proc.stdout
    assert took < 60, f"took {took:.0f} s"


def test_pending_reason_waiting_cannot_fix_cancels_the_sweep(sweep_env):
    """The same request without the check: SLURM takes it and keeps it PENDING (PartitionConfig)."""
    env, root = sweep_env
    proc = subprocess.run(_sweep_cmd(root, "unfit", "stop_after=data", "seed=1,2", "hydra.launcher.cpus_per_task=4096",
                                     "hydra.launcher.check_request=false"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "PENDING with reason PartitionConfig" in proc.stderr and "was cancelled" in proc.stderr, proc.stderr
    assert "cpus_per_task=4096, but partition" in proc.stderr  # the setting behind the reason
    assert "2 of 2 tasks failed" in proc.stdout and _queued(env, proc.stdout) == []


def test_pending_tasks_cancelled_by_scancel_end_the_sweep_as_failed(sweep_env):
    """Cancelled while pending, a task vanishes from squeue; scontrol still says CANCELLED."""
    env, root = sweep_env
    log_path = root / "cancelled.log"
    with log_path.open("w") as log:
        sweep = subprocess.Popen(_sweep_cmd(root, "cancelled", "stop_after=data", "seed=1,2",
                                            "+hydra.launcher.additional_parameters.begin=now+3600"),
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_line(sweep, log_path, "submitted SLURM job")
        array_id = re.search(r"submitted SLURM job (\d+)", log_path.read_text()).group(1)
        _wait_for_line(sweep, log_path, "#0-1 pending (BeginTime)")
        subprocess.run(["scancel", f"{array_id}_1"], env=env, check=True)
        _wait_for_line(sweep, log_path, "#1 failed (CANCELLED)", timeout=20)  # one poll, while #0 still waits
        assert sweep.poll() is None
        subprocess.run(["scancel", array_id], env=env, check=True)
        try:
            sweep.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the sweep still waits on tasks cancelled 20 s ago")
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        subprocess.run(["scancel", array_id], env=env) if "array_id" in locals() else None
    output = log_path.read_text()
    assert sweep.returncode == 1
    assert "sweep finished: 2 of 2 tasks failed" in output, output[-3000:]
    assert re.search(r"#1 +\d+_1 +failed +CANCELLED +.*seed=2", output), output[-3000:]


def test_task_killed_while_running_is_failed_and_the_finished_run_stays_in_mlflow(sweep_env):
    """No accounting here, so sacct fails; the launcher reads the state from scontrol."""
    from mlflow.tracking import MlflowClient
    env = {**sweep_env[0], "MLFLOW_TRACKING_URI": f"sqlite:///{sweep_env[1]}/killed.db"}
    root = sweep_env[1]
    log_path = root / "killed.log"
    with log_path.open("w") as log:  # task #0 finishes, task #1 trains until it is killed
        sweep = subprocess.Popen(_sweep_cmd(root, "killed", "train.max_steps=2,100000"), cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_line(sweep, log_path, "submitted SLURM job")
        array_id = re.search(r"submitted SLURM job (\d+)", log_path.read_text()).group(1)
        _wait_for_line(sweep, log_path, "#0 done", timeout=300)
        _wait_for_line(sweep, log_path, "1 done, 0 failed, 1 running, 0 pending", timeout=60)
        time.sleep(3)
        # the task dies before it can write its result
        subprocess.run(["scancel", "--signal=KILL", "--full", f"{array_id}_1"], env=env, check=True)
        try:  # SLURM shows it COMPLETING until its processes are gone (at most KillWait, 30 s)
            sweep.wait(timeout=45)
        except subprocess.TimeoutExpired:
            pytest.fail("the sweep still waits on a task that was killed 45 s ago")
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        subprocess.run(["scancel", array_id], env=env) if "array_id" in locals() else None
    output = log_path.read_text()
    assert sweep.returncode == 1
    assert re.search(r"#1 failed \((FAILED|CANCELLED)\)", output), output[-4000:]
    assert "sweep finished: 1 of 2 tasks failed" in output and "before it wrote a result" in output, output[-4000:]
    assert re.search(r"#0 +\d+_0 +done +COMPLETED", output), output[-4000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("micro").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert [r.data.params["train.max_steps"] for r in finished] == ["2"]


def _wait_for_line(sweep: subprocess.Popen, log_path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text():
        assert sweep.poll() is None, log_path.read_text()[-3000:]
        if time.monotonic() > deadline:
            pytest.fail(f"no '{text}' after {timeout} s: {log_path.read_text()[-3000:]}")
        time.sleep(0.5)
