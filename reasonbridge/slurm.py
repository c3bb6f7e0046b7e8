"""SLURM job states, read the same way with or without accounting.

The sweep launcher asks `scontrol show job` (one call per submitted array): it answers for
pending, running and recently finished jobs (for MinJobAge, 300 s by default) with the state
and SLURM's pending reason, and it works without accounting. A job scontrol no longer knows is
looked up with `sacct` when accounting exists, and is otherwise reported as `GONE`.

`ScontrolWatcher` puts the same answers behind submitit's watcher interface, so whatever
submitit asks itself (`job.state`, `job.done()`) agrees with what the launcher shows.

A state is one of:
- active: the job may still finish (pending, running, requeued, ...);
- terminal: COMPLETED (a success when the job wrote its result), or one that failed;
- pending for a reason waiting cannot fix (`fatal_reason`): the launcher cancels and fails.
"""
from __future__ import annotations

import logging
import re
import subprocess
import time

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)
_FIELD = re.compile(r"(\w+)=(\S*)")
# scontrol forgets a finished job after MinJobAge (default 300 s); without accounting it is gone
GONE = "NOT_FOUND"
# the job may still run or finish: keep waiting (PREEMPTED and REQUEUED* come back as PENDING)
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING",
                    "SIGNALING", "STAGE_OUT", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED",
                    "SPECIAL_EXIT", "UNKNOWN"})
# pending reasons that waiting cannot change: the request itself is outside what the cluster,
# the partition, the account or the QOS allows (see docs/cluster.md). Deliberately absent:
# ReqNodeNotAvail and PartitionDown/Inactive (nodes come back, maintenance ends), held jobs
# (the user can `scontrol release`), and per-user/group limits (they clear as other jobs end).
FATAL_REASONS = {
    "PartitionConfig": "the request (CPUs, memory, GPUs or nodes) exceeds what the partition's nodes have",
    "PartitionNodeLimit": "the number of nodes is outside the partition's limits",
    "PartitionTimeLimit": "the time limit is above the partition's MaxTime",
    "InvalidAccount": "the account is unknown or not allowed here",
    "InvalidQOS": "the QOS is unknown or not allowed for this account/partition",
    "AccountNotAllowed": "the account may not use this partition",
    "QOSNotAllowed": "the QOS may not be used on this partition",
    "BadConstraints": "no node has the requested features (constraint)",
    "DependencyNeverSatisfied": "a dependency can never be satisfied",
    "launch_failed_requeued_held": "SLURM could not launch the job and held it (ask an admin)",
}
# per-job QOS/association limits (QOSMaxCpuPerJobLimit, AssocMaxWallDurationPerJobLimit,
# QOSMinGRES, ...): the request itself is over or under the limit, so it never clears
_FATAL_PATTERN = re.compile(r"^(QOS|Assoc)(Max\w*PerJob(Limit)?|Min\w+)$")


def normal_state(state: str) -> str:
    """sacct says `CANCELLED by 0`, scontrol `CANCELLED`: the first word, upper case."""
    return (state.split() or ["UNKNOWN"])[0].upper()


def is_active(state: str) -> bool:
    return normal_state(state) in ACTIVE


def fatal_reason(state: str, reason: str) -> str | None:
    """Why a pending job can never start, or None while waiting may help."""
    if normal_state(state) != "PENDING":
        return None
    key = reason.split(",")[0].strip().replace(" ", "_")
    if key in FATAL_REASONS:
        return FATAL_REASONS[key]
    if _FATAL_PATTERN.match(key):
        return "the request is outside a per-job limit of the QOS or account"
    return None


def parse_scontrol(text: str) -> dict[str, dict[str, str]]:
    """`scontrol show job -o` output → {job id as submitit names it: {"State", "Reason", "NodeList"}}.
    Array tasks are named `<array job id>_<task id>`; a pending range (`1-3`, `0-7%2`) expands."""
    states: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        # the reason may hold spaces ("launch failed requeued held"): take it up to the next field
        reason = re.search(r"\bReason=(.*?)(?= \w+=|$)", line)
        info = {"JobID": fields["JobId"], "State": fields["JobState"], "NodeList": fields.get("NodeList", ""),
                "Reason": reason.group(1).strip() if reason else ""}
        array_id, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array_id and task:
            for part in task.split("%")[0].split(","):
                low, _, high = part.partition("-")
                for index in range(int(low), int(high or low) + 1):
                    states[f"{array_id}_{index}"] = info
        else:
            states[fields["JobId"]] = info
    return states


def _sacct_states(main_id: str) -> dict[str, dict[str, str]] | None:
    """States from accounting, or None when there is none (sacct fails without it)."""
    try:
        proc = subprocess.run(["sacct", "-X", "-o", "JobID,State,NodeList", "--parsable2", "-j", main_id],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    watcher = SlurmInfoWatcher()
    return {job: {**info, "Reason": ""} for job, info in watcher.read_info(proc.stdout).items()}


def query_states(job_ids: set[str] | list[str]) -> dict[str, dict[str, str]]:
    """The state of each job (`123`, `123_4`): scontrol, then sacct for jobs scontrol forgot,
    else `GONE`. A job whose state could not be read at all (controller down) is left out."""
    states: dict[str, dict[str, str]] = {}
    for main_id in sorted({x.split("_")[0] for x in job_ids}):
        mine = [x for x in job_ids if x.split("_")[0] == main_id]
        try:
            proc = subprocess.run(["scontrol", "show", "job", "-o", main_id], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("scontrol show job %s failed: %s", main_id, e)
            continue
        found = parse_scontrol(proc.stdout) if proc.returncode == 0 else {}
        missing = [x for x in mine if x not in found]
        if missing and (proc.returncode == 0 or "Invalid job id" in proc.stderr):
            accounted = _sacct_states(main_id) or {}
            for job_id in missing:
                found[job_id] = accounted.get(job_id, {"JobID": job_id, "State": GONE, "NodeList": "", "Reason": ""})
        elif proc.returncode != 0:
            log.warning("scontrol show job %s failed: %s", main_id, proc.stderr.strip())
        states.update({x: found[x] for x in mine if x in found})
    return states


class ScontrolWatcher(SlurmInfoWatcher):
    """submitit's job watcher, reading states with `query_states` (scontrol first, then sacct)."""

    def update(self) -> None:
        pending = self._registered - self._finished
        if not pending:
            return
        self._num_calls += 1
        self._info_dict.update(query_states(pending))
        self._last_status_check = time.time()
        for job_id in pending:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return not is_active(self.get_state(job_id, mode=mode))


def use_scontrol_fallback() -> None:
    """Make every submitit SLURM job in this process use `ScontrolWatcher`."""
    if not isinstance(SlurmJob.watcher, ScontrolWatcher):
        SlurmJob.watcher = ScontrolWatcher(delay_s=SlurmJob.watcher._delay_s)
