"""Preemption: SIGTERM / SIGUSR1 / SIGUSR2 → checkpoint at the next safe point → requeue.

SLURM sends SIGTERM when it preempts a job and, with submitit, SIGUSR2 `signal_delay_s`
before the time limit; SIGUSR1 is the other common `--signal` choice. `install()` routes
all three here. `scancel` sends SIGTERM too: a job SLURM is already ending without a
preemption checkpoints but does not requeue itself. Outside a checkpointable section (see `checkpointable()`) the job hands
off at once: stages are cached atomically, so nothing finished is lost. Inside one (the
training loop), the signal is only recorded; the loop saves a checkpoint after the current
optimizer step and calls `hand_off()`.

Handing off under submitit calls submitit's own handler: it asks the Hydra launcher for its
`checkpoint()` (a resubmission of the same job), requeues it (`scontrol requeue` on SLURM,
a restart by the controller with the local executor) and exits; the requeued job finds the
training checkpoint in the stage cache and resumes. Without submitit it exits with
128 + signal number, and rerunning the same command resumes.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)

_pending: int | None = None  # the signal waiting for a safe point
_preempted = False
_depth = 0  # nesting of checkpointable sections
_submitit_handler: Any = None  # submitit's SignalHandler when running as a submitit job
_before_hand_off: list[Callable[[], None]] = []


def install() -> None:
    """Route the preemption signals here (main thread only; a no-op elsewhere)."""
    global _submitit_handler
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        owner = getattr(previous, "__self__", None)
        if owner is not None and type(owner).__name__ == "SignalHandler" and hasattr(owner, "checkpoint_and_try_requeue"):
            _submitit_handler = owner
        signal.signal(sig, _on_signal)


def before_hand_off(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` just before the job hands off (e.g. mark the MLflow run as preempted)."""
    _before_hand_off.append(callback)
    return callback


def remove_callback(callback: Callable[[], None]) -> None:
    if callback in _before_hand_off:
        _before_hand_off.remove(callback)


def pending() -> bool:
    """True when a preemption signal is waiting for the current checkpointable section."""
    return _pending is not None


def pending_signal() -> int:
    """The signal waiting for a safe point (SIGTERM when none is)."""
    return _pending if _pending is not None else signal.SIGTERM


def request(signum: int = signal.SIGTERM) -> None:
    """Act as if `signum` had arrived (another rank was signalled)."""
    global _pending, _preempted
    _preempted = True
    _pending = signum


def preempted() -> bool:
    return _preempted


@contextmanager
def checkpointable() -> Iterator[None]:
    """A section that checks `pending()` at its safe points, checkpoints and calls `hand_off()`.
    A signal that arrives after its last check stays pending until `at_safe_point()`."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def at_safe_point() -> None:
    """Hand off now if a signal is pending (called between stages)."""
    if _pending is not None and _depth == 0:
        hand_off()


def _on_signal(signum: int, frame: Any) -> None:
    global _pending, _preempted
    _preempted = True
    if _depth > 0:
        if _pending is None:
            log.warning("received %s: checkpointing after the current step, then requeueing",
                        signal.Signals(signum).name)
        _pending = signum
        return
    _pending = signum
    hand_off()


def hand_off() -> None:
    """Requeue through submitit (when running as a submitit job) and exit."""
    global _pending
    signum = _pending if _pending is not None else signal.SIGTERM
    _pending = None
    for callback in list(_before_hand_off):
        try:
            callback()
        except Exception as e:  # never let bookkeeping block the requeue
            log.warning("pre-requeue callback failed: %s", e)
    if _submitit_handler is not None and signum == signal.SIGTERM and _cancelled_on_slurm():
        # `scancel` also sends SIGTERM; requeueing would undo the user's cancel
        log.warning("job cancelled: not requeueing; the checkpoint stays in the stage cache for a rerun")
    elif _submitit_handler is not None:
        try:
            # checkpoint (the launcher's resubmission), requeue, then sys.exit
            _submitit_handler.checkpoint_and_try_requeue(signum)
        except subprocess.CalledProcessError as e:  # e.g. scancel: the job can no longer be requeued
            log.error("could not requeue (%s); the checkpoint stays in the stage cache for a rerun", e)
    raise SystemExit(128 + int(signum))


def _cancelled_on_slurm() -> bool:
    """True when SLURM is ending this job for another reason than preemption (`scancel`, the
    time limit): its state is already COMPLETING/CANCELLED and no PreemptTime is set."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    # one task of an array has the array's own id as its JobId, and `scontrol show job <that id>`
    # lists every task of the array, one line each: read this job's own line
    fields: dict[str, str] = {}
    for line in out.splitlines():
        found = dict(re.findall(r"(\w+)=(\S*)", line))
        if found.get("JobId") == job_id:
            fields = found
    preempted = fields.get("PreemptTime", "None") not in ("None", "")
    return fields.get("JobState") in ("COMPLETING", "CANCELLED") and not preempted


def _reset_for_tests() -> None:
    global _pending, _preempted, _depth, _submitit_handler
    _pending, _preempted, _depth, _submitit_handler = None, False, 0, None
    _before_hand_off.clear()
