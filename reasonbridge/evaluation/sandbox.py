"""The OS-level sandbox that model-written programs (HumanEval) run in: bubblewrap + util-linux.

Each program runs as ``bwrap ... [setpriv ...] prlimit ... python -I -`` with the program on stdin:

  namespaces   its own network (only a loopback that nothing listens on), PID (it sees and can signal
               only its own processes; all die with the sandbox), IPC and UTS namespaces
  filesystem   a new root that holds only /usr (read-only), the interpreter's prefix and venv (read-only),
               a minimal /dev and its own /proc: no home folders, no /tmp, /run, /var or project files;
               its working folder /scratch is a size-limited tmpfs that vanishes with it
  identity     no capabilities; when the harness runs as root, the program runs as `nobody` (setpriv),
               so the process limit holds and root-only files stay unreadable
  limits       address space, CPU seconds, file size, process count, no core files (prlimit, set before
               the interpreter starts, so nothing the program does comes first)
  environment  cleared: only PATH, HOME, LANG and a few interpreter switches (no API keys)

Where bubblewrap cannot run (not installed, or user namespaces disabled) a code benchmark refuses
to start with `SandboxUnavailable`, unless the user sets ``benchmark.unsafe_unsandboxed_code=true``;
each verdict records which isolation judged it (``ISOLATION_BWRAP`` or ``ISOLATION_NONE``).
docs/safety.md has the threat model and the escape tests.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ISOLATION_BWRAP = "bwrap"
ISOLATION_NONE = "none (unsafe_unsandboxed_code)"
SCRATCH = "/scratch"
NOBODY = 65534
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora/RHEL: `dnf install "
                "bubblewrap`; `make install` does it when run as root), or, only on a machine you can afford to "
                "lose, set benchmark.unsafe_unsandboxed_code=true to run model-written code without isolation")


class SandboxUnavailable(RuntimeError):
    """No OS sandbox can run here, and unsandboxed code execution was not opted into."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024  # address space of each process
    cpu_s: int = 11  # CPU seconds of each process
    file_size_mb: int = 16  # largest file it may write
    processes: int = 16  # processes and threads of the sandbox's user
    scratch_mb: int = 64  # size of the tmpfs /scratch


def _python_roots() -> list[Path]:
    """Folders the interpreter needs: its installation prefix and the venv (pyvenv.cfg, site-packages)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    return sorted(r for r in roots if r != Path("/usr") and not str(r).startswith("/usr/"))


def _parents_once(paths: list[Path], taken: set[Path]) -> list[str]:
    """``--dir`` arguments (mode 0755) for every missing ancestor, so the bound folders can be reached."""
    args: list[str] = []
    for path in paths:
        for parent in reversed(path.parents):
            if parent == Path("/") or parent in taken:
                continue
            taken.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def command(limits: Limits = Limits()) -> list[str]:
    """The command that runs a Python program read from stdin inside the sandbox."""
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    root = os.geteuid() == 0
    if root:  # privileged bwrap makes no user namespace; setpriv needs these two to become nobody, then drops them
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # an unprivileged bwrap maps the caller's uid into a new user namespace
        args += ["--unshare-user"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        p = Path("/") / top
        if p.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    roots = _python_roots()
    args += _parents_once(roots, {Path("/usr")})
    for r in roots:
        args += ["--ro-bind", str(r), str(r)]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.scratch_mb << 20), "--tmpfs", SCRATCH, "--chdir", SCRATCH,
             "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", SCRATCH,
             "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
             "--setenv", "OMP_NUM_THREADS", "1", "--"]
    if root:
        args += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs", "--"]
    args += ["prlimit", f"--as={limits.memory_mb << 20}", f"--cpu={limits.cpu_s}",
             f"--fsize={limits.file_size_mb << 20}", f"--nproc={limits.processes}", "--core=0", "--",
             sys.executable, "-I", "-"]
    return args


def run(program: str, *, timeout_s: float, limits: Limits = Limits()) -> subprocess.CompletedProcess:
    """Run ``program`` in the sandbox; raises subprocess.TimeoutExpired past ``timeout_s`` (wall clock),
    after which the whole sandbox (every process in its PID namespace) is gone."""
    return subprocess.run(command(limits), input=program, capture_output=True, text=True, timeout=timeout_s,
                          start_new_session=True)


@functools.lru_cache(maxsize=None)
def unavailable_reason() -> str | None:
    """Why the sandbox cannot run here (None when it can): checked once per process by running a probe."""
    for tool in ("bwrap", "prlimit") + (("setpriv",) if os.geteuid() == 0 else ()):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = "import os, socket\nassert os.getpid() < 10 and not os.access('/proc/1/root/home', os.F_OK)\nprint('ok')\n"
    try:
        proc = run(probe, timeout_s=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap did not run: {e}"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"bwrap cannot create its sandbox here ({err[:200]})"
    return None


def require(allow_unsafe: bool) -> str:
    """The isolation that will judge code: ``ISOLATION_BWRAP``, or ``ISOLATION_NONE`` when the sandbox
    cannot run and the user opted in; otherwise raises SandboxUnavailable saying what to install."""
    reason = unavailable_reason()
    if reason is None:
        return ISOLATION_BWRAP
    if allow_unsafe:
        return ISOLATION_NONE
    raise SandboxUnavailable(f"code benchmarks run model-written programs, and no OS sandbox is available: "
                             f"{reason}. To fix: {INSTALL_HINT}")
