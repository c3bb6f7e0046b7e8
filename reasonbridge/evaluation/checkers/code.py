"""HumanEval: the model's function runs against the tests in a fresh interpreter, inside the OS
sandbox (reasonbridge/evaluation/sandbox.py) unless the run opted out of it."""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from reasonbridge.evaluation import sandbox
from reasonbridge.evaluation.checkers.verdict import NO_ANSWER, Verdict


# -- code (HumanEval) ----------------------------------------------------------------------
_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)

# Prepended to a program only on the unsafe path (benchmark.unsafe_unsandboxed_code=true, no OS
# sandbox): resource limits, then a few Python functions replaced. That is no isolation (a program
# imports _socket or ctypes and gets past it); the sandbox sets its limits with prlimit instead.
_GUARD = """\
import resource as _r
for _lim, _val in (({as_}, {memory}), ({cpu}, {cpu_s}), ({fsize}, {fsize_bytes}), ({core}, 0)):
    _r.setrlimit(_lim, (_val, _val))
import socket as _s, subprocess as _sp, os as _os
def _blocked(*a, **k):
    raise PermissionError("network and subprocesses are disabled in the HumanEval sandbox")
_s.socket = _blocked; _s.create_connection = _blocked; _sp.Popen = _blocked
_os.system = _blocked; _os.fork = _blocked
del _r, _s, _sp, _os, _lim, _val
"""


def _guard(memory_mb: int, cpu_s: int) -> str:
    import resource
    return _GUARD.format(as_=int(resource.RLIMIT_AS), memory=memory_mb << 20, cpu=int(resource.RLIMIT_CPU),
                         cpu_s=cpu_s, fsize=int(resource.RLIMIT_FSIZE), fsize_bytes=16 << 20,
                         core=int(resource.RLIMIT_CORE))


def extract_code(output: str) -> str | None:
    blocks = _FENCE.findall(output)
    code = max(blocks, key=len) if blocks else output
    return code if code.strip() else None


def build_program(prompt: str, completion: str, tests: str, entry_point: str, *, memory_mb: int = 1024,
                  cpu_s: int = 11, guard: bool = True) -> str:
    """A complete function from the model (with `def entry_point`) replaces the prompt's stub,
    keeping the prompt's imports; anything else continues the prompt."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", completion, re.MULTILINE):
        imports = "\n".join(ln for ln in prompt.splitlines() if re.match(r"(from\s+\S+\s+)?import\s", ln))
        body = f"{imports}\n{completion}"
    else:
        body = prompt + completion
    prelude = _guard(memory_mb, cpu_s) if guard else ""
    return f"{prelude}\n{body}\n\n{tests}\n\ncheck({entry_point})\n"


def run_program(program: str, *, timeout_s: float = 10.0,
                isolation: str = sandbox.ISOLATION_BWRAP) -> tuple[bool, str]:
    """(passed, reason) for a Python program run in a fresh interpreter: inside the OS sandbox, or
    with ``sandbox.ISOLATION_NONE`` (opted into) unisolated, as the harness's own user, in an empty
    temporary folder with a minimal environment (resource limits then come from its prelude)."""
    if isolation == sandbox.ISOLATION_BWRAP:
        try:
            proc = sandbox.run(program, timeout_s=timeout_s, limits=sandbox.Limits(cpu_s=int(timeout_s) + 1))
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout_s:g}s"
        return _outcome(proc)
    with tempfile.TemporaryDirectory(prefix="reasonbridge-code-") as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        try:
            proc = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp, env=env, capture_output=True,
                                  text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout_s:g}s"
    return _outcome(proc)


def _outcome(proc: subprocess.CompletedProcess) -> tuple[bool, str]:
    if proc.returncode == 0:
        return True, "passed all tests"
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return False, f"failed: {err[-1][:200] if err else f'exit status {proc.returncode}'}"


def check_code(output: str, prompt: str, tests: str, entry_point: str, *, timeout_s: float = 10.0,
               isolation: str = sandbox.ISOLATION_BWRAP) -> Verdict:
    code = extract_code(output)
    if code is None:
        return Verdict(False, None, "code", NO_ANSWER, isolation)
    program = build_program(prompt, code, tests, entry_point, cpu_s=int(timeout_s) + 1,
                            guard=isolation != sandbox.ISOLATION_BWRAP)
    passed, reason = run_program(program, timeout_s=timeout_s, isolation=isolation)
    return Verdict(passed, code, "code", reason, isolation)
