"""Every mistake of issue 29's table, made as a user makes it (`python run.py ...` in a subprocess):
one line on stderr naming the field or file and what to do, a documented exit code
(reasonbridge/errors.py), no traceback unless asked for, and refused before any work where that
can be known. Then: waiting that shows, Ctrl-C, a sweep's names, a failed run in MLflow, the report."""
from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT


@pytest.fixture
def env(tmp_path) -> dict:
    """A user's shell: a scratch MLflow store, no API key, the hub offline (no network here)."""
    out = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HYDRA_FULL_ERROR")}
    out.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    return out


def _cmd(cache: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "run.py", *args, f"paths.cache_dir={cache}", "progress=false", f"hydra.run.dir={out}"]


def run(env: dict, cache: Path, tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(cache, tmp_path / "out", *args), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, code: int, prefix: str = "error: ") -> str:
    """The exit code, no traceback anywhere, and exactly one error line: the last line of stderr."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and proc.stderr.rstrip().splitlines()[-1] == lines[0], proc.stderr
    assert lines[0] not in proc.stdout  # stderr only
    return lines[0]


def no_work_started(env: dict, cache: Path) -> None:
    """Refused before any stage or MLflow run."""
    assert not any(cache.glob("*/.tmp-*"))
    db = Path(env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    assert not db.exists() or MlflowClient(env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("micro") is None


# -- refused before any work -----------------------------------------------------------------
def test_a_key_added_with_plus_is_refused_naming_the_field_it_meant(env, shared_cache, tmp_path):
    proc = run(env, shared_cache, tmp_path, "+train.lerning_rate=1e-3", "experiment=micro")
    line = one_error_line(proc, 2)
    assert "unknown config key train.lerning_rate" in line and "did you mean train.lr?" in line
    assert "train.lr=0.001" in line  # what to type instead
    no_work_started(env, shared_cache)
    # the traceback when asked for, as Hydra's own errors do
    proc = run({**env, "HYDRA_FULL_ERROR": "1"}, shared_cache, tmp_path, "+train.lerning_rate=1e-3", "experiment=micro")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_a_pool_file_that_is_missing_or_empty_is_named(case, env, shared_cache, tmp_path):
    if case == "missing":
        path, expected = "data/nope.jsonl", "pool.paths: data/nope.jsonl does not exist"
    else:
        (tmp_path / "empty.jsonl").write_text("\n")
        path, expected = str(tmp_path / "empty.jsonl"), f"pool.paths: {tmp_path / 'empty.jsonl'} holds no problems"
    proc = run(env, shared_cache, tmp_path, "pool=jsonl", f"pool.paths=[{path}]", "experiment=micro", "stop_after=pool")
    assert expected in one_error_line(proc, 2)
    no_work_started(env, shared_cache)


@pytest.mark.parametrize("case", ["no_price", "no_key", "unreachable"])
def test_an_openai_teacher_that_cannot_work_is_refused_before_work(case, env, shared_cache, tmp_path):
    """A local server's model has no price under the default cost cap (the message says how to go
    on); the key's variable is unset; nothing listens on the port (refused within seconds, not after
    31 s of silent retries)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["teacher=openai", f"teacher.base_url=http://127.0.0.1:{port}/v1", "teacher.model=x", "experiment=micro"]
    if case != "no_key":
        env = {**env, "OPENAI_API_KEY": "sk-test"}
    if case == "unreachable":
        args.append("teacher.max_cost_usd=null")
    start = time.monotonic()
    proc = run(env, shared_cache, tmp_path, *args)
    line = one_error_line(proc, 3 if case == "unreachable" else 2)
    if case == "no_price":
        assert "teacher.prices has no entry for model 'x'" in line
        assert "+teacher.prices.x=[IN,OUT]" in line and "teacher.max_cost_usd=null" in line
    elif case == "no_key":
        assert "teacher.api_key_env=OPENAI_API_KEY" in line and "OPENAI_API_KEY is not set" in line
    else:
        assert f"teacher.base_url=http://127.0.0.1:{port}/v1: cannot connect" in line
        assert time.monotonic() - start < 25
    no_work_started(env, shared_cache)
    assert "sk-test" not in proc.stdout + proc.stderr


def test_a_model_path_that_is_neither_a_folder_nor_a_hub_model_is_named_before_work(env, shared_cache, tmp_path):
    proc = run(env, shared_cache, tmp_path, "model.source=pretrained", "model.path=models/no_model", "experiment=micro",
               "stop_after=train")
    line = one_error_line(proc, 2)
    assert line.startswith("error: model.path=models/no_model: no such folder") and "config.json" in line
    no_work_started(env, shared_cache)


def test_a_selection_larger_than_what_passes_the_filters_ends_in_one_line_naming_the_most_it_can_be(
        env, shared_cache, tmp_path):
    proc = run(env, shared_cache, tmp_path, "experiment=micro", "data=curated", "data.size=100000", "stop_after=data")
    line = one_error_line(proc, 2)
    assert "data=curated asks for data.size=100000 but only" in line and "set data.size to at most" in line
    assert "'after_quality'" in line  # the counts per filter say where the traces went


# -- read, not refused -------------------------------------------------------------------------
def test_a_pool_file_with_a_byte_order_mark_is_read(env, shared_cache, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"problem": "A byte-order mark: what is 2 plus 3?", "answer": "5"}\n'
                     b'{"problem": "A byte-order mark: what is 7 minus 4?", "answer": "3"}\n')
    proc = run(env, shared_cache, tmp_path, "pool=jsonl", f"pool.paths=[{path}]", "experiment=micro", "stop_after=pool")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[default] stopped after pool" in proc.stdout
    pools = [p.read_text() for p in (shared_cache / "pool").glob("*/problems.jsonl")]
    assert any(text.count("A byte-order mark") == 2 for text in pools)


# -- waiting shows; a failed run says why in MLflow ---------------------------------------------
def test_a_failing_teacher_shows_its_retries_and_the_failed_run_records_why(env, shared_cache, tmp_path):
    class AlwaysFailing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"boom")

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlwaysFailing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        proc = run(env, shared_cache, tmp_path, "experiment=micro", "teacher=openai", "teacher.model=x",
                   f"teacher.base_url=http://127.0.0.1:{httpd.server_address[1]}/v1", "teacher.api_key_env=null",
                   "teacher.max_cost_usd=null", "teacher.max_retries=2", "teacher.backoff_s=0.01",
                   "teacher.concurrency=1", "stop_after=traces")
    finally:
        httpd.shutdown()
    line = one_error_line(proc, 3)
    assert "failed after 3 attempts: HTTP 500: boom" in line and "kept in the teacher cache" in line
    assert "attempt 1/3 failed (HTTP 500: boom); retry 1/2 after" in proc.stdout
    assert "attempt 2/3 failed (HTTP 500: boom); retry 2/2 after" in proc.stdout
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (failed,) = client.search_runs([client.get_experiment_by_name("micro").experiment_id])
    assert failed.info.status == "FAILED" and failed.data.tags["error_type"] == "TeacherError"
    assert "failed after 3 attempts" in failed.data.tags["error"]
    logged = Path(client.download_artifacts(failed.info.run_id, "logs/run.log", str(tmp_path)))
    assert "retry 2/2 after" in logged.read_text() and "run stopped: teacher endpoint" in logged.read_text()


# -- Ctrl-C ---------------------------------------------------------------------------------------
def test_ctrl_c_ends_in_one_line_keeps_what_finished_and_the_rerun_reuses_it(env, shared_cache, tmp_path):
    cmd = _cmd(shared_cache, tmp_path / "out", "experiment=micro", "force=[train]")  # training is computed
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # Ctrl-C once the stages before training are done, during training
        if "stage data" in line:
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    line = one_error_line(subprocess.CompletedProcess(cmd, proc.returncode, out, err), 130, prefix="interrupted")
    assert f"kept in the stage cache {shared_cache} (student, benchmark, pool, traces, data)" in line
    assert "run the same command again to reuse them" in line
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (killed,) = client.search_runs([client.get_experiment_by_name("micro").experiment_id])
    assert killed.info.status == "KILLED" and killed.data.tags["error"].startswith("interrupted: 5 finished")
    assert [a.path for a in client.list_artifacts(killed.info.run_id, "logs")] == ["logs/run.log"]
    again = run(env, shared_cache, tmp_path, "experiment=micro", "stop_after=data")
    assert again.returncode == 0 and "reused from the stage cache: student, benchmark, pool, traces, data" in again.stdout


def test_a_ctrl_c_swallowed_by_a_garbage_collector_callback_still_stops_the_run():
    """CI met it: the SIGINT landed in a weakref callback, Python printed "Exception ignored" and the
    run finished with exit 0. The interrupt is delivered again, with no traceback."""
    code = """
import gc, time, weakref
from reasonbridge.errors import redeliver_swallowed_interrupts
redeliver_swallowed_interrupts()
class Thing: pass
def callback(ref): raise KeyboardInterrupt   # what the signal does when it arrives in there
thing = Thing(); ref = weakref.ref(thing, callback)
del thing; gc.collect()
try:
    time.sleep(5)
except KeyboardInterrupt:
    print("stopped")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "stopped" and "Traceback" not in proc.stderr and "ignored" not in proc.stderr


# -- a sweep names what it varies; the report says what it counted ------------------------------
def test_a_sweep_names_its_jobs_after_their_overrides_and_the_report_counts_what_it_left_out(env, shared_cache,
                                                                                              tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "-m", "adapters=lora,none", "experiment=micro", "stop_after=data",
                           f"paths.cache_dir={shared_cache}", "progress=false", f"hydra.sweep.dir={tmp_path / 'mr'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^\[adapters=lora\] stopped after data", proc.stdout, re.M)
    assert re.search(r"^\[adapters=none\] stopped after data", proc.stdout, re.M)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("micro").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["adapters=lora", "adapters=none"]
    # two more a report meets: an unfinished run of Table 1, a finished run of a table it has no definition for
    exp = runs[0].info.experiment_id
    client.set_terminated(client.create_run(exp, tags={"table": "table1", "row": "base"}).info.run_id, "FAILED")
    client.set_terminated(client.create_run(exp, tags={"table": "mine", "row": "base"}).info.run_id)
    report = subprocess.run([sys.executable, "-m", "reasonbridge.report", "--out", str(tmp_path / "reports"),
                             "--bootstrap", "100"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert ("of 4 runs in the store, 0 fill a cell; left out: 2 without a `table` tag" in report.stdout
            and "1 not finished" in report.stdout and "1 of other tables (mine)" in report.stdout), report.stdout
