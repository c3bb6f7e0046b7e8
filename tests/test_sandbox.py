"""Model-written programs cannot get out of the code checker's OS sandbox (sandbox.py).

Each escape below succeeds and is judged correct when run as a plain subprocess (issue 16 measured
it); in the sandbox each must be judged wrong and leave its canary untouched, while an honest
solution still passes. These run the real `python -m reasonbridge.evaluation.check` path's checker.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from reasonbridge.evaluation import sandbox
from reasonbridge.evaluation.checkers import Checker
from reasonbridge.evaluation.checkers.code import check_code
from reasonbridge.evaluation.check import main as check_main

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                reason=f"no OS sandbox here: {sandbox.unavailable_reason()}")

PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
TESTS = "def check(candidate):\n    assert candidate(1, 2) == 3\n"


def body(*lines: str) -> str:
    """A completion of PROMPT that tries something, then answers correctly (so only the attempt can fail it)."""
    return "".join(f"    {ln}\n" for ln in lines) + "    return a + b\n"


@pytest.fixture
def canary(tmp_path):
    folder = tmp_path / "canary"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    os.chmod(tmp_path, 0o755)  # even readable by others, it must stay out of reach
    return folder


def untouched(folder) -> bool:
    return sorted(p.name for p in folder.parent.iterdir()) == ["canary"] and \
        (folder / "keep.txt").read_text() == "precious"


def judge(completion: str, timeout_s: float = 10.0):
    return check_code(completion, PROMPT, TESTS, "add", timeout_s=timeout_s)


def test_an_honest_solution_passes_in_the_sandbox():
    v = judge(body("import math, collections", "assert math.isclose(1.0, 1.0)"))
    assert v.correct and v.isolation == sandbox.ISOLATION_BWRAP, v.reason


def test_network_is_unreachable_even_through_the_raw_socket_module():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    v = judge(body("import _socket", "s = _socket.socket()", f"s.connect(('127.0.0.1', {port}))",
                   "s.send(b'secret')"))
    assert not v.correct
    with pytest.raises(socket.timeout):  # nothing ever connected
        listener.accept()
    listener.close()


@pytest.mark.parametrize("attempt", ["write", "rmtree", "posix_spawn", "ctypes_system"])
def test_the_filesystem_outside_scratch_is_out_of_reach(attempt, canary):
    target = canary.parent / "escaped.txt"
    lines = {
        "write": [f"open({str(target)!r}, 'w').write('x')"],
        "rmtree": ["import shutil", f"shutil.rmtree({str(canary)!r})"],
        "posix_spawn": ["import os",
                        f"pid = os.posix_spawn('/bin/sh', ['sh', '-c', 'echo x > {target} && rm -rf {canary}'], {{}})",
                        "assert os.waitpid(pid, 0)[1] == 0"],
        "ctypes_system": ["import ctypes",
                          f"assert ctypes.CDLL(None).system(b'echo x > {target} && rm -rf {canary}') == 0"],
    }[attempt]
    v = judge(body(*lines))
    assert not v.correct, v.reason
    assert untouched(canary)
    # the control: the same attempt without the sandbox gets out (so the test above means something)
    escaped = check_code(body(*lines), PROMPT, TESTS, "add", isolation=sandbox.ISOLATION_NONE)
    assert escaped.correct and not untouched(canary), escaped.reason


def test_the_filesystem_the_program_sees_is_read_only_and_holds_no_project_files(tmp_path):
    here = os.path.abspath(__file__)
    assert not judge(body(f"open({here!r}).read()")).correct  # the repository is not mounted
    assert not judge(body(f"open({sys.prefix + '/pyvenv.cfg'!r}, 'a').write('x')")).correct  # read-only
    assert judge(body("open('notes.txt', 'w').write('scratch is writable')")).correct


def test_the_harness_environment_and_processes_are_invisible(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-harness-secret")
    assert not judge(body("import os", "assert os.environ['OPENAI_API_KEY']")).correct
    assert not judge(body(f"open('/proc/{os.getpid()}/environ', 'rb').read()")).correct
    v = judge(body("import os", f"os.kill({os.getpid()}, 9)"))  # its own PID namespace: no such process
    assert not v.correct


def test_a_fork_bomb_is_judged_wrong_and_the_next_program_still_runs():
    v = judge(body("import os", "while True:", "    os.fork()"), timeout_s=5.0)
    assert not v.correct
    assert judge(body()).correct
    # nothing it started outlives the sandbox (its PID namespace died with it)
    left = subprocess.run(["pgrep", "-u", str(sandbox.NOBODY)], capture_output=True, text=True).stdout.split()
    assert not left or os.geteuid() != 0


def test_without_a_sandbox_code_benchmarks_refuse_to_start_unless_opted_into(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "`bwrap` is not installed")
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        Checker("code")
    assert Checker("exact").isolation is None  # other checkers do not need it
    with Checker("code", unsafe_unsandboxed_code=True) as unsafe:
        v = unsafe.check_one(body(), {"problem": PROMPT, "meta": {"tests": TESTS, "entry_point": "add"}})
    assert v.correct and v.isolation == sandbox.ISOLATION_NONE
    args = ["--benchmark", "humaneval", "--prompt", PROMPT, "--tests", TESTS, "--entry-point", "add", "--pred", body()]
    assert check_main(args) == 2 and "unsafe_unsandboxed_code" in capsys.readouterr().err
    assert check_main(args + ["--unsafe-unsandboxed-code"]) == 0
    assert "isolation: none" in capsys.readouterr().out


def _humaneval_file(tmp_path):
    import gzip
    import json
    he = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(he, "wt") as f:
        for i in range(2):
            f.write(json.dumps({"task_id": f"HumanEval/{i}", "prompt": "def f():\n",
                                "test": "def check(c):\n    c()\n", "entry_point": "f"}) + "\n")
    return he


def test_a_humaneval_run_records_the_isolation_that_judged_it(micro_cfg, mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    from reasonbridge.io import read_jsonl
    from reasonbridge.pipeline import run_experiment
    result = run_experiment(micro_cfg("adapters=none", "benchmark=humaneval", f"benchmark.path={_humaneval_file(tmp_path)}",
                                      "eval_limit=2"))
    preds = read_jsonl(result.stages["eval"].path / "predictions" / "humaneval.jsonl")
    assert len(preds) == 2 and {p["isolation"] for p in preds} == {sandbox.ISOLATION_BWRAP}
    assert MlflowClient(mlflow_uri).get_run(result.run_id).data.tags["isolation/humaneval"] == sandbox.ISOLATION_BWRAP


def test_a_humaneval_run_refuses_to_start_without_a_sandbox(monkeypatch, tmp_path):
    from conftest import compose_config
    from reasonbridge.pipeline import Pipeline
    he = _humaneval_file(tmp_path)
    overrides = ["benchmark=humaneval", f"benchmark.path={he}", f"paths.cache_dir={tmp_path / 'cache'}"]
    Pipeline(compose_config(overrides))  # a sandbox here: it starts
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "`bwrap` is not installed")
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        Pipeline(compose_config(overrides))
    Pipeline(compose_config(overrides + ["benchmark.unsafe_unsandboxed_code=true"]))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # no work was done
