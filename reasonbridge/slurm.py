"""SLURM job states for submitit when `sacct` is unavailable.

submitit learns a job's state from `sacct`. On a cluster without accounting `sacct` fails,
submitit keeps the state UNKNOWN, and a job killed before it wrote its result is waited on
forever. `ScontrolWatcher` asks `scontrol show job` instead whenever `sacct` fails, so a
killed job reaches a terminal state (CANCELLED, FAILED, ...) and is reported as failed.
"""
from __future__ import annotations

import logging
import re
import subprocess
import time

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)
_FIELD = re.compile(r"(\w+)=(\S*)")
# scontrol forgets a finished job after MinJobAge (default 300 s)
GONE = "NOT_FOUND"


def parse_scontrol(text: str) -> dict[str, dict[str, str]]:
    """`scontrol show job -o` output → {job id as submitit names it: {"State": ..., "NodeList": ...}}.
    Array tasks are named `<array job id>_<task id>`; a pending range (`1-3`, `0-7%2`) expands."""
    states: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        info = {"JobID": fields["JobId"], "State": fields["JobState"], "NodeList": fields.get("NodeList", "")}
        array_id, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array_id and task:
            for part in task.split("%")[0].split(","):
                low, _, high = part.partition("-")
                for index in range(int(low), int(high or low) + 1):
                    states[f"{array_id}_{index}"] = info
        else:
            states[fields["JobId"]] = info
    return states


class ScontrolWatcher(SlurmInfoWatcher):
    """submitit's sacct watcher, falling back to `scontrol show job` when sacct fails."""

    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        try:
            self._output = subprocess.check_output(command, shell=False, stderr=subprocess.PIPE)
            self._info_dict.update(self.read_info(self._output))
        except (subprocess.CalledProcessError, OSError):
            self._info_dict.update(self._scontrol_states())
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _scontrol_states(self) -> dict[str, dict[str, str]]:
        states: dict[str, dict[str, str]] = {}
        for main_id in {x.split("_")[0] for x in self._registered - self._finished}:
            proc = subprocess.run(["scontrol", "show", "job", "-o", main_id], capture_output=True, text=True)
            if proc.returncode == 0:
                states.update(parse_scontrol(proc.stdout))
            elif "Invalid job id" in proc.stderr:  # finished long enough ago to be forgotten
                for job_id in self._registered - self._finished:
                    if job_id.split("_")[0] == main_id:
                        states[job_id] = {"JobID": job_id, "State": GONE, "NodeList": ""}
            else:
                log.warning("scontrol show job %s failed: %s", main_id, proc.stderr.strip())
        return states


def use_scontrol_fallback() -> None:
    """Make every submitit SLURM job in this process use `ScontrolWatcher`."""
    if not isinstance(SlurmJob.watcher, ScontrolWatcher):
        SlurmJob.watcher = ScontrolWatcher(delay_s=SlurmJob.watcher._delay_s)
