"""Nothing is lost to an interruption, as a property: a micro run SIGKILLed at seeded random points
across its stages and re-run each time ends with the same metrics and predictions as an
uninterrupted run, with no teacher query sent twice and no stage computed again once finished;
a damaged artifact is recomputed, not used; and an MLflow server that goes away mid-run loses
nothing (tests/test_benchmark_pipeline.py covers lm-eval, tests/test_cache.py the checksums)."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonbridge.io import read_jsonl
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SEED = 16
# (stage, longest delay in s): the kill comes a random time after that stage starts computing (its
# temp folder appears); a stage that finishes first moves the kill into a later one
KILL_POINTS = [("student", 8.0), ("traces", 0.5), ("train", 3.0), ("eval", 1.0)]
COMPUTED = re.compile(r"stage (\S+)\s+(\w+) \(computed")


def _micro(cache: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "run.py", "experiment=micro", f"paths.cache_dir={cache}", "progress=false",
            f"hydra.run.dir={out}", *extra]


def _run(cmd: list[str], log: Path, env: dict, kill: tuple[Path, float] | None = None,
         timeout: float = 600) -> int | None:
    """Run ``cmd``; with ``kill`` = (folder, delay), SIGKILL its whole process group ``delay`` s after
    a temp folder of a computing stage appears in ``folder``. Returns the exit status (None: killed)."""
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline, fired_at = time.monotonic() + timeout, None
    while proc.poll() is None and time.monotonic() < deadline:
        if kill is not None and fired_at is None and any(kill[0].glob(".tmp-*")):
            fired_at = time.monotonic() + kill[1]
        if fired_at is not None and time.monotonic() >= fired_at:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"{cmd} did not finish in {timeout}s")
    return proc.returncode


def _eval_of(stage: Path) -> tuple[dict, list[dict]]:
    (preds,) = (stage / "predictions").glob("*.jsonl")
    return json.loads((stage / "metrics.json").read_text()), read_jsonl(preds)


def _eval_outputs(cache: Path) -> tuple[dict, list[dict]]:
    (ev,) = [p for p in (cache / "eval").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return _eval_of(ev)


def test_sigkill_at_random_points_resumes_to_the_uninterrupted_result(tmp_path, micro_cfg):
    from reasonbridge.pipeline import Pipeline
    # the uninterrupted result: the micro run in the session's cache (other tests may have built it)
    pipeline = Pipeline(micro_cfg())
    pipeline.run()
    clean = _eval_of(pipeline.result.stages["eval"].path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    rng = random.Random(SEED)
    cache, logs, kills = tmp_path / "killed", [], 0
    for i, (stage, longest) in enumerate(KILL_POINTS):
        logs.append(tmp_path / f"killed-{i}.log")
        status = _run(_micro(cache, tmp_path / f"out-{i}"), logs[-1], env,
                      kill=(cache / stage, rng.uniform(0.0, longest)))
        kills += status is None
        assert status in (None, 0), logs[-1].read_text()[-3000:]
    logs.append(tmp_path / "killed-final.log")
    assert _run(_micro(cache, tmp_path / "out-final"), logs[-1], env) == 0, logs[-1].read_text()[-3000:]
    assert kills >= 3  # most kill points landed (a stage may finish before its kill's delay)

    # the same metrics and predictions as the uninterrupted run
    assert _eval_outputs(cache) == clean
    # no stage computed twice once it had finished, none left damaged or half-written
    computed = [m.groups() for log in logs for m in COMPUTED.finditer(log.read_text())]
    assert len(computed) == len(set(computed)), computed
    assert not list(cache.glob("*/.tmp-*")) and not list(cache.glob("*/.corrupt-*"))
    # no teacher query sent twice: one ledger line per distinct question
    (ledger,) = (cache / "teacher").glob("*.jsonl")
    keys = [json.loads(line)["key"] for line in ledger.read_text().splitlines()]
    (traces,) = [p for p in (cache / "traces").iterdir() if p.is_dir()]
    assert len(keys) == len(set(keys)) == len((traces / "traces.jsonl").read_text().splitlines())

    # a torn artifact (a traces file cut short outside the harness) is recomputed, not used
    data = (traces / "traces.jsonl").read_bytes()
    (traces / "traces.jsonl").write_bytes(data[:len(data) // 2])
    log = tmp_path / "damaged.log"
    assert _run(_micro(cache, tmp_path / "out-damaged"), log, env) == 0
    text = log.read_text()
    assert "damaged" in text and re.search(r"stage traces\s+\w+ \(computed", text)
    assert (traces / "traces.jsonl").read_bytes() == data  # recomputed from the teacher ledger: same bytes
    assert len(ledger.read_text().splitlines()) == len(keys)  # without a single new teacher query
    assert _eval_outputs(cache) == clean


class MlflowServer:
    """`mlflow server` on 127.0.0.1 (its own process group, so stop() ends every worker it started)."""

    def __init__(self, root: Path):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root, self.proc = root, None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import urllib.request
        cli = Path(sys.executable).parent / "mlflow"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [str(cli), "server", "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db", "--artifacts-destination",
             str(self.root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=(self.root / "server.log").open("a"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None, (self.root / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        raise AssertionError("mlflow server did not come up in 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _when(path_glob: tuple[Path, str], then, timeout: float = 600):
    """Call ``then()`` once a file matching the glob exists (from a watcher thread)."""
    import threading

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(path_glob[0].glob(path_glob[1])):
            time.sleep(0.05)
        then()
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_an_mlflow_server_going_away_mid_run_loses_nothing(tmp_path, mlflow_server, micro_cfg):
    import shutil

    from mlflow.tracking import MlflowClient

    from reasonbridge.pipeline import Pipeline
    cache = tmp_path / "cache"
    student = Pipeline(micro_cfg()).student()  # the session's micro student: this test is about what comes after
    shutil.copytree(student.path, cache / "student" / student.path.name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": mlflow_server.url,
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

    # 1. the server stops while the run trains: the run fails with a clear message, nothing is lost
    watcher = _when((cache / "train", ".tmp-*"), mlflow_server.stop)
    log = tmp_path / "down.log"
    status = _run(_micro(cache, tmp_path / "out-down"), log, env)
    watcher.join()
    text = log.read_text()
    assert status == 3, text[-3000:]
    assert "went away before this run's results were logged" in text and "Nothing is lost" in text
    assert "Traceback" not in text
    (ev,) = [p for p in (cache / "eval").iterdir() if p.is_dir()]  # the evaluation finished and is kept
    metrics, _ = _eval_of(ev)

    # 2. back up: the same command logs everything without recomputing a stage
    mlflow_server.start()
    log = tmp_path / "again.log"
    assert _run(_micro(cache, tmp_path / "out-again"), log, env) == 0, log.read_text()[-3000:]
    assert "(computed" not in log.read_text()
    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name("micro")
    finished = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    assert len(finished) == 1
    assert {k: v for k, v in finished[0].data.metrics.items() if k in metrics} == metrics
    assert [a.path for a in client.list_artifacts(finished[0].info.run_id, "predictions")]

    # 3. a server that comes back within MLflow's retries: the run waits and completes its logging
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="7")
    out = tmp_path / "out-blip"
    blip = _when((out, "mlflow_run.json"), lambda: (mlflow_server.stop(), mlflow_server.start()))
    log = tmp_path / "blip.log"
    assert _run(_micro(cache, out, "tracking.row=blip"), log, env) == 0, log.read_text()[-3000:]
    blip.join(timeout=180)
    assert "Retrying" in log.read_text()  # it did wait for the server (MLflow's retries, logged by urllib3)
    run = client.get_run(json.loads((out / "mlflow_run.json").read_text())["run_id"])
    assert run.info.status == "FINISHED" and {k: v for k, v in run.data.metrics.items() if k in metrics} == metrics
