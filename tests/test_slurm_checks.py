"""The SLURM launcher's judgement, without a SLURM: the request check before submitting and
the sweep watch's reading of task states (tests/test_slurm.py runs both on a real slurmd)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasonbridge import slurm_request as rq
from reasonbridge.slurm import GONE, fatal_reason, parse_scontrol
from reasonbridge.slurm_watch import SweepWatch, Task, table

PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL Default=YES DefaultTime=NONE "
    "MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 MaxCPUsPerNode=UNLIMITED Nodes=vm State=UP TotalCPUs=2 "
    "MaxMemPerNode=UNLIMITED\n"
    "PartitionName=gpu AllowAccounts=ml,vision AllowQos=ALL Default=NO MaxNodes=2 MaxTime=2-00:00:00 MinNodes=0 "
    "MaxCPUsPerNode=UNLIMITED Nodes=g[1-2] State=UP MaxMemPerNode=UNLIMITED\n")
NODES = (
    "NodeName=vm Arch=x86_64 CPUAlloc=0 CPUEfctv=2 CPUTot=2 Gres=(null) RealMemory=21694 State=IDLE "
    "Partitions=debug\n"
    "NodeName=g1 CPUTot=32 Gres=gpu:a100:4(S:0-1) RealMemory=512000 State=MIXED Partitions=gpu\n"
    "NodeName=g2 CPUTot=64 Gres=gpu:a100:2 RealMemory=256000 State=IDLE Partitions=gpu\n")
CLUSTER = rq.parse_cluster(PARTITIONS, NODES)


def test_slurm_times_and_gres_are_read():
    assert [rq.minutes(t) for t in ("UNLIMITED", "30", "30:00", "4:00:00", "2-00:00:00", "1:00:01")] == \
        [None, 30, 30, 240, 2880, 61]
    assert [rq.gpu_count(g) for g in ("(null)", "gpu:2", "gpu:a100:4(S:0-1),shard:8", "gpu:a:1,gpu:b:2")] == \
        [0, 2, 4, 3]
    gpu = CLUSTER["gpu"]
    assert [(n.name, n.cpus, n.gpus) for n in gpu.nodes] == [("g1", 32, 4), ("g2", 64, 2)]
    assert gpu.max_time_min == 2880 and gpu.allow_accounts == ["ml", "vision"] and CLUSTER["debug"].default


def test_impossible_requests_name_the_setting_and_what_the_partition_offers():
    debug = CLUSTER["debug"]
    found = rq.problems(rq.Request(cpus_per_task=4, mem_gb=16), debug)
    assert found == ["hydra.launcher.cpus_per_task=4, but partition debug's nodes have at most 2 CPUs"]
    assert rq.problems(rq.Request(cpus_per_task=2, mem_gb=4), debug) == []  # the preset fits
    assert "mem_gb=64, but partition debug's nodes have at most 21.2 GB" in rq.problems(rq.Request(mem_gb=64), debug)[0]
    assert rq.problems(rq.Request(gpus_per_node=1), debug) == [
        "hydra.launcher.gpus_per_node=1, but partition debug's nodes have no GPUs"]
    gpu = CLUSTER["gpu"]
    assert rq.problems(rq.Request(timeout_min=4000, gpus_per_node=8, account="nlp"), gpu) == [
        "hydra.launcher.gpus_per_node=8, but partition gpu's nodes have at most 4 GPUs",
        "hydra.launcher.timeout_min=4000, but partition gpu's MaxTime is 2880 min",
        "hydra.launcher.account=nlp, but partition gpu allows only accounts ml,vision"]
    # each fits a node, but no node has both: 4 GPUs are on g1 (32 CPUs), 64 CPUs on g2 (2 GPUs)
    assert rq.problems(rq.Request(cpus_per_task=64, gpus_per_node=4), gpu) == [
        "hydra.launcher.cpus_per_task=64, gpus_per_node=4: 0 of partition gpu's nodes have all of them together "
        "(needed: hydra.launcher.nodes=1)"]
    assert rq.problems(rq.Request(nodes=3), gpu) == ["hydra.launcher.nodes=3, but partition gpu has 2 node(s)"]
    assert rq.pick_partition(rq.Request(partition="a100"), CLUSTER).startswith(
        "hydra.launcher.partition=a100: no such partition here (partitions: debug*, gpu")
    assert rq.pick_partition(rq.Request(), CLUSTER).name == "debug"
    assert rq.default_timeout_min(gpu) == 240 and rq.default_timeout_min(rq.Partition("short", max_time_min=30)) == 30


def test_check_fails_on_a_definite_no_and_passes_otherwise(monkeypatch):
    monkeypatch.setattr(rq, "test_only", lambda script: None)
    assert rq.check(rq.Request(cpus_per_task=2, mem_gb=4), "#!/bin/bash", CLUSTER).name == "debug"
    with pytest.raises(rq.SlurmRequestError) as e:
        rq.check(rq.Request(cpus_per_task=4), "#!/bin/bash", CLUSTER)
    assert "nothing was submitted" in str(e.value) and "cpus_per_task=4" in str(e.value)
    assert "Offered: partition debug (up): 1 node(s), at most 2 CPUs" in str(e.value)
    # no scontrol answer: sbatch --test-only alone decides
    monkeypatch.setattr(rq, "test_only", lambda script: "sbatch: error: Invalid qos specification")
    with pytest.raises(rq.SlurmRequestError, match="sbatch --test-only with the same options: sbatch: error: Invalid qos"):
        rq.check(rq.Request(qos="nope"), "#!/bin/bash", None)


def test_pending_reasons_waiting_cannot_fix_are_fatal():
    for reason in ("PartitionConfig", "PartitionTimeLimit", "PartitionNodeLimit", "InvalidAccount", "InvalidQOS",
                   "QOSMaxCpuPerJobLimit", "AssocMaxWallDurationPerJobLimit", "launch failed requeued held"):
        assert fatal_reason("PENDING", reason), reason
    for reason in ("Resources", "Priority", "BeginTime", "JobArrayTaskLimit", "ReqNodeNotAvail, UnavailableNodes:vm",
                   "QOSMaxJobsPerUserLimit", "AssocGrpCpuLimit", "PartitionDown", "JobHeldUser", "None"):
        assert fatal_reason("PENDING", reason) is None, reason
    assert fatal_reason("RUNNING", "PartitionConfig") is None
    line = ("JobId=7 JobName=x JobState=PENDING Reason=launch failed requeued held Dependency=(null) "
            "NodeList=(null)\n")
    assert parse_scontrol(line)["7"]["Reason"] == "launch failed requeued held"


# -- the watch, on fake jobs and a scripted SLURM ----------------------------------------------
class FakeJob:
    def __init__(self, folder: Path, job_id: str):
        self.job_id, self.num_tasks = job_id, 1
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}.pkl", stderr=folder / f"{job_id}.err")

    def results(self):
        return [f"result of {self.job_id}"]


def _watch(tmp_path, script: list[dict[str, tuple[str, str]]], n: int = 3):
    """A watch over n tasks of array 5 whose SLURM answers poll after poll from `script`."""
    tasks = [Task(i, f"seed={i}", FakeJob(tmp_path, f"5_{i}")) for i in range(n)]
    answers = iter(script)

    def query(ids):
        step = next(answers)
        return {i: {"State": s, "Reason": r, "NodeList": "vm"} for i, (s, r) in step.items() if i in ids}
    return tasks, SweepWatch(tasks, poll_interval_s=0, grace_s=60, query=query, sleep=lambda s: None)


def test_cancelled_pending_and_killed_running_tasks_fail_at_the_next_poll(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="reasonbridge.slurm_watch")
    tasks, watch = _watch(tmp_path, [
        {"5_0": ("RUNNING", "None"), "5_1": ("PENDING", "Resources"), "5_2": ("PENDING", "Resources")},
        {"5_0": ("RUNNING", "None"), "5_1": ("PENDING", "Resources"), "5_2": ("PENDING", "Resources")},  # no change
        {"5_0": ("FAILED", "NonZeroExitCode"), "5_1": ("CANCELLED", "None"), "5_2": ("RUNNING", "None")},
        {"5_2": ("COMPLETED", "None")},
    ])
    assert watch.poll() is None and watch.poll() is None
    assert watch.poll() is None
    assert [t.outcome for t in tasks] == ["failed", "failed", None]
    (tmp_path / "5_2.pkl").write_text("x")  # task 2 writes its result
    assert watch.run() is None
    assert [t.outcome for t in tasks] == ["failed", "failed", "done"] and tasks[2].result == "result of 5_2"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # one line per poll that changed something
    assert lines[0] == "slurm 5: #0 running on vm; #1-2 pending (Resources) | 0 done, 0 failed, 1 running, 2 pending"
    assert "#0 failed (FAILED); #1 failed (CANCELLED); #2 running on vm" in lines[1]
    rows = table(tasks).splitlines()
    assert rows[0].split() == ["task", "job", "result", "SLURM", "state", "overrides"]
    assert rows[2].split() == ["#1", "5_1", "failed", "CANCELLED", "seed=1"]


def test_a_forgotten_job_without_result_fails_and_completed_waits_for_its_result(tmp_path):
    tasks, watch = _watch(tmp_path, [{"5_0": ("RUNNING", ""), "5_1": ("COMPLETED", "None"), "5_2": (GONE, "")},
                                     {"5_0": (GONE, ""), "5_1": ("COMPLETED", "None")},
                                     {"5_1": ("COMPLETED", "None")}])
    watch.poll()  # a pending array task cancelled alone leaves no record at all
    assert tasks[2].outcome == "failed" and tasks[2].state == "CANCELLED" and "vanished" in tasks[2].detail
    watch.poll()
    assert tasks[0].outcome == "failed" and "no longer knows" in tasks[0].detail
    assert tasks[1].outcome is None  # COMPLETED but no result file yet: a slow filesystem gets grace_s
    watch.grace_s = 0
    watch.poll()
    assert tasks[1].outcome == "failed" and "COMPLETED before it wrote a result" in tasks[1].detail


def test_a_pending_reason_waiting_cannot_fix_cancels_the_whole_sweep(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scancel").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/scancelled\n")
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    tasks, watch = _watch(tmp_path, [{"5_0": ("RUNNING", "None"), "5_1": ("PENDING", "PartitionTimeLimit"),
                                      "5_2": ("PENDING", "PartitionTimeLimit")}])
    fatal = watch.run()
    assert fatal is not None and fatal.reason == "PartitionTimeLimit" and fatal.task.index == 1
    assert (tmp_path / "scancelled").read_text().split() == ["5"]
    assert [t.outcome for t in tasks] == ["failed"] * 3 and {t.state for t in tasks} == {"CANCELLED"}


def test_a_cancelled_array_task_whose_id_is_the_arrays_does_not_requeue_itself(tmp_path, monkeypatch):
    """`scontrol show job 40` lists all of array 40's tasks; task 1 (JobId 40) reads its own line."""
    from reasonbridge import preemption
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        "#!/bin/sh\necho 'JobId=40 ArrayJobId=40 ArrayTaskId=1 JobState=COMPLETING Reason=None'\n"
        "echo 'JobId=41 ArrayJobId=40 ArrayTaskId=0 JobState=COMPLETED Reason=None'\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "40")
    assert preemption._cancelled_on_slurm()
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert not preemption._cancelled_on_slurm()


def test_a_job_scontrol_forgot_is_read_from_accounting_when_there_is_some(tmp_path, monkeypatch):
    from reasonbridge.slurm import normal_state, query_states
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("scontrol", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1'),
                         ("sacct", 'printf "JobID|State|NodeList\\n41_3|CANCELLED by 0|None assigned\\n"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    states = query_states(["41_3", "41_4"])
    assert normal_state(states["41_3"]["State"]) == "CANCELLED" and states["41_4"]["State"] == GONE
