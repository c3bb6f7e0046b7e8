"""`make paper`'s driver: how many runs each sweep makes, one progress line per finished row, and a
failed sweep named with its log while the others still run."""
from __future__ import annotations

import io
import stat

import pytest

from reasonbridge.paper import PLAN, Sweep, jobs_of, run_plan


def test_each_sweep_counts_its_runs():
    by_name = {s.experiment: s for s in PLAN}
    assert jobs_of(by_name["table1"], [0, 1, 2], []) == 3 * 3 * 3  # rows x students x seeds
    assert jobs_of(by_name["scaling"], [0, 1], []) == 2 * 4 * 2  # strategies x interventions x seeds
    assert jobs_of(Sweep("table4"), [0], ["benchmark.n=10"]) == 2
    assert jobs_of(Sweep("table4"), [0], ["row=base"]) == 1  # an override replaces the experiment's sweep


def _fake_python(tmp_path, body: str):
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_progress_is_a_line_per_finished_row_and_a_failure_names_its_log(tmp_path):
    ok = _fake_python(tmp_path, 'echo "some log line"\necho "[base seed=0] acc/synthetic = 0.500  (MLflow run a)"\n'
                                'echo "[lora seed=0] acc/synthetic = 0.700  (MLflow run b)"\n')
    out = io.StringIO()
    plan = (Sweep("table4"), Sweep("scaling"))
    assert run_plan(plan, [0], [], tmp_path / "logs", python=ok, out=out) == []
    lines = out.getvalue().splitlines()
    rows = [line for line in lines if line.startswith("paper: row ")]
    assert rows[0].startswith("paper: row 1 of 10 (table4: base seed=0)") and "left" in rows[0]
    assert len(rows) == 4 and "some log line" not in out.getvalue()
    assert "some log line" in (tmp_path / "logs" / "table4.log").read_text()

    bad = _fake_python(tmp_path, 'echo "error: data.size: must be positive"\nexit 2\n')
    out = io.StringIO()
    assert run_plan(plan, [0], [], tmp_path / "logs", python=bad, out=out) == ["table4", "scaling"]
    assert "table4 failed (exit 2): error: data.size: must be positive; its log: " in out.getvalue()


@pytest.mark.slow
def test_micro_paper_end_to_end_then_again_recomputing_nothing(tmp_path, shared_cache, mlflow_uri):
    """`make paper` shrunk to one sweep of Table 4 on a small pool: real child runs, the report with
    its claims, and a second call that finds every stage in the cache."""
    import os
    import subprocess
    import sys

    small = ["pool.size=96", "data.size=40", "eval_limit=12", "train.epochs=1"]
    env = {**os.environ, "REASONBRIDGE_CACHE": str(shared_cache), "MLFLOW_TRACKING_URI": mlflow_uri}
    cmd = [sys.executable, "-m", "reasonbridge.paper", "--only", "table4", "--seeds", "0",
           "--log-dir", str(tmp_path / "logs"), "--report-out", str(tmp_path / "reports"), *small]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    rows = [line for line in first.stdout.splitlines() if line.startswith("paper: row ")]
    assert [r.split(" (")[0] for r in rows] == ["paper: row 1 of 2", "paper: row 2 of 2"]
    assert f"paper: report in {tmp_path / 'reports' / 'README.md'}" in first.stdout
    index = (tmp_path / "reports" / "README.md").read_text()
    assert "ReasonBridge gains carry over to new tasks: Longer chains (organism)" in index
    assert "(computed" in (tmp_path / "logs" / "table4.log").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:]
    log = (tmp_path / "logs" / "table4.log").read_text()
    assert "stage train" in log and "(computed" not in log  # every stage that finished is reused
