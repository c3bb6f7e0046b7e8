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
    # one CPU per job: three jobs share two cores; no memory request (the node's RealMemory decides)
    return [sys.executable, "run.py", "-m", "hydra/launcher=slurm", "experiment=micro", "progress=false",
            f"paths.cache_dir={root / 'cache'}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null",
            "hydra.launcher.timeout_min=15", f"hydra.sweep.dir={root / name}", *overrides]


def test_three_job_sweep_shares_stages_and_logs_three_runs(sweep_env):
    from mlflow.tracking import MlflowClient
    env, root = sweep_env
    proc = subprocess.run(_sweep_cmd(root, "sweep", "adapters=lora,none,full"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Submitit 'slurm'" in proc.stdout
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


def test_killed_job_is_reported_failed_not_waited_on(sweep_env):
    """No accounting here, so sacct fails; the launcher reads the state from scontrol."""
    env, root = sweep_env
    sweep = subprocess.Popen(_sweep_cmd(root, "killed", "train.max_steps=100000"), cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job_id = _wait_running(env, sweep, root / "killed")
        time.sleep(3)
        # SIGKILL: the job dies before it can write its result (no signal handler runs)
        subprocess.run(["scancel", "--signal=KILL", "--full", job_id], env=env, check=True)
        try:
            output, _ = sweep.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail("the sweep still waits on a job that was killed 240 s ago")
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        subprocess.run(["scancel", job_id], env=env) if "job_id" in locals() else None
    assert sweep.returncode != 0
    assert "has not produced any output" in output and "1 of 1 jobs failed" in output, output[-4000:]


def _wait_running(env: dict, sweep: subprocess.Popen, sweep_dir: Path, timeout: float = 300) -> str:
    """The id of the sweep's (only) job, once SLURM runs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stdout.read()[-3000:]
        folder = sweep_dir / ".submitit"  # one folder per job, named by its id (`%j`, or `<array>_<task>`)
        submitted = [p.name for p in folder.iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)] if folder.exists() else []
        if submitted:
            state = subprocess.run(["squeue", "-h", "-j", submitted[0], "-o", "%T"], env=env, capture_output=True,
                                   text=True).stdout.strip()
            if state == "RUNNING":
                return submitted[0]
        time.sleep(0.5)
    pytest.fail(f"no job of the sweep was running after {timeout} s")
