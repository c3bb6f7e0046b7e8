"""`make paper`'s driver: how many runs each sweep makes, one progress line per finished row, and a
failed sweep named with its log while the others still run."""
from __future__ import annotations

import io
import stat

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
