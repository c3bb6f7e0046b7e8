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


def _eval_outputs(cache: Path) -> tuple[dict, list[dict]]:
    (ev,) = [p for p in (cache / "eval").iterdir() if p.is_dir() and not p.name.startswith(".")]
    (preds,) = (ev / "predictions").glob("*.jsonl")
    return json.loads((ev / "metrics.json").read_text()), read_jsonl(preds)


def test_sigkill_at_random_points_resumes_to_the_uninterrupted_result(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    assert _run(_micro(tmp_path / "clean", tmp_path / "out-clean"), tmp_path / "clean.log", env) == 0
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
    assert _eval_outputs(cache) == _eval_outputs(tmp_path / "clean")
    # no stage computed twice once it had finished, none left damaged or half-written
    computed = [m.groups() for log in logs for m in COMPUTED.finditer(log.read_text())]
    assert len(computed) == len(set(computed)), computed
    assert not list(cache.glob("*/.tmp-*")) and not list(cache.glob("*/.corrupt-*"))
    # no teacher query sent twice: one ledger line per distinct question, as in the clean run
    (ledger,) = (cache / "teacher").glob("*.jsonl")
    keys = [json.loads(line)["key"] for line in ledger.read_text().splitlines()]
    (clean_ledger,) = (tmp_path / "clean" / "teacher").glob("*.jsonl")
    assert len(keys) == len(set(keys)) == len(clean_ledger.read_text().splitlines())

    # a torn artifact (a traces file cut short outside the harness) is recomputed, not used
    (traces,) = [p for p in (cache / "traces").iterdir() if p.is_dir()]
    data = (traces / "traces.jsonl").read_bytes()
    (traces / "traces.jsonl").write_bytes(data[:len(data) // 2])
    log = tmp_path / "damaged.log"
    assert _run(_micro(cache, tmp_path / "out-damaged"), log, env) == 0
    text = log.read_text()
    assert "damaged" in text and re.search(r"stage traces\s+\w+ \(computed", text)
    assert (traces / "traces.jsonl").read_bytes() == data  # recomputed from the teacher ledger: same bytes
    assert len(ledger.read_text().splitlines()) == len(keys)  # without a single new teacher query
    assert _eval_outputs(cache) == _eval_outputs(tmp_path / "clean")
