"""Wait for a sweep's SLURM tasks, saying what happens, and end each with a clear outcome.

Every `poll_interval_s` one `scontrol show job` per submitted array (`reasonbridge.slurm`)
gives each task's state and pending reason. Then:

- a change prints one short line (`slurm 812: #0 running on n3; #1-2 pending (Priority) |
  0 done, 0 failed, 1 running, 2 pending`);
- a task that wrote its result is done (or failed, with the exception it raised);
- a task SLURM ended without a result (CANCELLED, FAILED, TIMEOUT, OUT_OF_MEMORY,
  NODE_FAIL, ..., pending or running) is failed at once (a pending array task that vanishes
  was cancelled: `scancel <array>_<i>` leaves no record); COMPLETED or PREEMPTED without a
  result get `grace_s` for the result file to appear (slow shared filesystems) or a requeue;
- a task pending for a reason waiting cannot fix (`slurm.fatal_reason`) cancels everything
  the sweep submitted and stops the watch (`Fatal`).
`table` renders the final states.
"""
from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from reasonbridge.slurm import GONE, fatal_reason, is_active, normal_state, query_states

log = logging.getLogger(__name__)
GRACE_STATES = {"COMPLETED", "PREEMPTED"}
WAITING = {"SUBMITTED", "PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"}  # counted as pending


@dataclass
class Task:
    index: int  # the sweep's job number (its output folder)
    label: str  # its overrides
    job: Any  # a submitit Job
    state: str = "SUBMITTED"
    reason: str = ""
    node: str = ""
    outcome: str | None = None  # "done" | "failed"
    result: Any = None
    error: BaseException | None = None
    detail: str = ""
    ended_at: float | None = None  # when SLURM first showed a terminal state without a result

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def shown(self) -> str:
        if self.outcome == "done":
            return "done"
        if self.outcome == "failed":
            return f"failed ({self.state})"
        if self.state == "PENDING":
            return "pending" if self.reason in ("", "None") else f"pending ({self.reason})"
        if self.state == "RUNNING":
            return f"running on {self.node}" if self.node else "running"
        return self.state.lower()


@dataclass
class Fatal:
    """A task can never start: everything submitted was cancelled."""
    task: Task
    reason: str
    why: str


def _ranges(indices: list[int]) -> str:
    out, run = [], [indices[0]]
    for i in indices[1:]:
        if i == run[-1] + 1:
            run.append(i)
        else:
            out.append(run)
            run = [i]
    out.append(run)
    return ",".join(f"#{r[0]}" if len(r) == 1 else f"#{r[0]}-{r[-1]}" for r in out)


def _tally(tasks: list[Task]) -> str:
    done = sum(t.outcome == "done" for t in tasks)
    failed = sum(t.outcome == "failed" for t in tasks)
    pending = sum(t.outcome is None and t.state in WAITING for t in tasks)
    running = sum(t.outcome is None for t in tasks) - pending  # running, completing, suspended, ...
    return f"{done} done, {failed} failed, {running} running, {pending} pending"


@dataclass
class SweepWatch:
    tasks: list[Task]
    poll_interval_s: float = 15.0
    grace_s: float = 30.0
    query: Callable[[list[str]], dict[str, dict[str, str]]] = query_states
    sleep: Callable[[float], None] = time.sleep
    _shown: dict[int, str] = field(default_factory=dict)

    @property
    def array_ids(self) -> list[str]:
        return sorted({t.job_id.split("_")[0] for t in self.tasks})

    def run(self) -> Fatal | None:
        """Poll until every task is done or failed; a Fatal when the sweep was cancelled."""
        while True:
            fatal = self.poll()
            if fatal is not None or all(t.outcome for t in self.tasks):
                return fatal
            self.sleep(self.poll_interval_s)

    def poll(self) -> Fatal | None:
        open_tasks = [t for t in self.tasks if t.outcome is None]
        states = self.query([t.job_id for t in open_tasks]) if open_tasks else {}
        fatal = None
        for task in open_tasks:
            if self._has_result(task):
                self._finish(task)
                continue
            info = states.get(task.job_id)
            if info is None:  # the controller did not answer: keep the last known state
                continue
            before = task.state
            task.state, task.reason, task.node = normal_state(info["State"]), info.get("Reason", ""), \
                info.get("NodeList", "")
            if task.state == GONE and before in ("SUBMITTED", "PENDING"):
                # `scancel <array>_<i>` of a pending task removes it from the array: no record at all
                task.state, task.detail = "CANCELLED", "it vanished from SLURM while pending (cancelled)"
            why = fatal_reason(task.state, task.reason)
            if why and fatal is None:
                fatal = Fatal(task, task.reason, why)
            if not is_active(task.state):
                self._ended(task)
        if fatal is not None:
            self._cancel_all(fatal)
        self._report()
        return fatal

    # -- a task's end -------------------------------------------------------------------------
    def _has_result(self, task: Task) -> bool:
        paths = task.job.task(0).paths if task.job.num_tasks > 1 else task.job.paths
        return paths.result_pickle.exists()

    def _finish(self, task: Task) -> None:
        """The task wrote its result: done, or failed with the exception it raised."""
        try:
            task.result = task.job.results()[0]
            task.outcome, task.state = "done", "COMPLETED"
        except Exception as e:  # the job's own exception, with its trace
            task.outcome, task.error = "failed", e
            task.detail = " ".join(str(e).splitlines()[:3])
            if is_active(task.state):
                task.state = "FAILED"

    def _ended(self, task: Task) -> None:
        """SLURM shows the task ended, and it left no result (yet)."""
        now = time.monotonic()
        if task.state in GRACE_STATES:
            task.ended_at = task.ended_at or now
            if now - task.ended_at < self.grace_s:
                return
        task.outcome = "failed"
        if task.state == GONE:
            task.detail = "SLURM no longer knows the job (it ended before MinJobAge) and it left no result"
        elif not task.detail:  # (set already for a task that vanished while pending)
            task.detail = f"SLURM ended it as {task.state} before it wrote a result"
        task.error = RuntimeError(f"task #{task.index} ({task.label}), SLURM job {task.job_id}: {task.detail}")

    def _cancel_all(self, fatal: Fatal) -> None:
        ids = self.array_ids
        subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
        log.error("slurm %s: task #%d can never start: pending with reason %s (%s); cancelled %s",
                  ",".join(ids), fatal.task.index, fatal.reason, fatal.why, " ".join(ids))
        for task in self.tasks:
            if task.outcome is None:
                task.outcome, task.state = "failed", "CANCELLED"
                task.detail = f"cancelled by the launcher: task #{fatal.task.index} pending with reason {fatal.reason}"
                task.error = RuntimeError(task.detail)

    # -- what the user sees -------------------------------------------------------------------
    def _report(self) -> None:
        """One line when anything changed since the last poll."""
        changed: dict[str, list[int]] = {}
        for task in self.tasks:
            shown = task.shown()
            if self._shown.get(task.index) != shown:
                self._shown[task.index] = shown
                changed.setdefault(shown, []).append(task.index)
        if changed:
            parts = [f"{_ranges(sorted(idx))} {shown}" for shown, idx in changed.items()]
            log.info("slurm %s: %s | %s", ",".join(self.array_ids), "; ".join(parts), _tally(self.tasks))


def table(tasks: list[Task]) -> str:
    """The final state of every task, one row each."""
    rows = [("task", "job", "result", "SLURM state", "overrides")]
    for t in tasks:
        rows.append((f"#{t.index}", t.job_id, t.outcome or "?", t.state, t.label))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join(line.rstrip() for line in lines)
