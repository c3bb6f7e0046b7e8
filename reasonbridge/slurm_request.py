"""Check a sweep's SLURM request against what the cluster can give, before submitting.

SLURM accepts many requests it can never run: a job asking for more CPUs, memory or GPUs
than any node of its partition has, or more time than the partition's MaxTime, sits PENDING
(reason PartitionConfig, PartitionTimeLimit, ...) forever. `check` reads the partition and its
nodes (`scontrol show partition|node`, no accounting needed) and asks `sbatch --test-only` with
the very submission script the sweep would submit, then names each `hydra.launcher.*` setting
to change and what the partition offers, e.g.

    hydra.launcher.cpus_per_task=4, but partition debug's nodes have at most 2 CPUs

A check that cannot run (no scontrol, an unfamiliar output) never blocks a submission;
only a definite "no" does.
"""
from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
_FIELD = re.compile(r"(\w+)=(\S*)")
PREFIX = "hydra.launcher."


class SlurmRequestError(RuntimeError):
    """The request can never run here; the message names the settings to change."""


@dataclass
class Request:
    """The resource part of `conf/hydra/launcher/slurm.yaml` (the same names)."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    gpus_per_node: int | None = None
    timeout_min: int | None = None

    @classmethod
    def from_params(cls, params: dict) -> "Request":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in params.items() if k in names and v is not None})


@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    state: str


@dataclass
class Partition:
    name: str
    default: bool = False
    state: str = "UP"
    max_time_min: int | None = None  # None: unlimited
    max_nodes: int | None = None
    min_nodes: int = 0
    max_cpus_per_node: int | None = None
    max_mem_per_node_mb: int | None = None
    allow_accounts: list[str] | None = None  # None: all
    allow_qos: list[str] | None = None
    nodes: list[Node] = field(default_factory=list)

    def offers(self) -> str:
        """One line: what a job on this partition can have."""
        if not self.nodes:
            return f"partition {self.name}: no nodes"
        cpus = max(n.cpus for n in self.nodes)
        mem = max(n.mem_mb for n in self.nodes) / 1024
        gpus = max(n.gpus for n in self.nodes)
        time = "no time limit" if self.max_time_min is None else f"MaxTime {self.max_time_min} min"
        return (f"partition {self.name} ({self.state.lower()}): {len(self.nodes)} node(s), at most {cpus} CPUs, "
                f"{mem:.1f} GB and {gpus} GPUs per node, {time}")


# -- reading SLURM's answers ------------------------------------------------------------------
def minutes(text: str) -> int | None:
    """A SLURM time (`UNLIMITED`, `2-00:00:00`, `4:00:00`, `30:00`, `30`) in minutes; None: no limit."""
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres (`gpu:a100:4(S:0-1),shard:8`, `gpu:2`, `(null)`)."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres or "").split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def _limit(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _names(text: str | None) -> list[str] | None:
    return None if not text or text.upper() == "ALL" else text.split(",")


def parse_cluster(partitions_text: str, nodes_text: str) -> dict[str, Partition]:
    """`scontrol show partition -o` and `scontrol show node -o` → {name: Partition with its nodes}."""
    nodes: list[tuple[Node, list[str]]] = []
    for line in nodes_text.splitlines():
        f = dict(_FIELD.findall(line))
        if "NodeName" not in f:
            continue
        cpus = int(f.get("CPUEfctv") or f.get("CPUTot") or 0)
        mem = int(f.get("RealMemory") or 0) - int(_limit(f.get("MemSpecLimit")) or 0)
        node = Node(f["NodeName"], cpus, mem, gpu_count(f.get("Gres", "")), f.get("State", ""))
        nodes.append((node, f.get("Partitions", "").split(",")))
    partitions: dict[str, Partition] = {}
    for line in partitions_text.splitlines():
        f = dict(_FIELD.findall(line))
        if "PartitionName" not in f:
            continue
        name = f["PartitionName"]
        partitions[name] = Partition(
            name=name, default=f.get("Default") == "YES", state=f.get("State", "UP"),
            max_time_min=minutes(f.get("MaxTime", "")), max_nodes=_limit(f.get("MaxNodes")),
            min_nodes=_limit(f.get("MinNodes")) or 0, max_cpus_per_node=_limit(f.get("MaxCPUsPerNode")),
            max_mem_per_node_mb=_limit(f.get("MaxMemPerNode")), allow_accounts=_names(f.get("AllowAccounts")),
            allow_qos=_names(f.get("AllowQos")), nodes=[n for n, parts in nodes if name in parts])
    return partitions


def read_cluster() -> dict[str, Partition] | None:
    """The partitions and their nodes, or None when scontrol cannot tell."""
    texts = []
    for what in ("partition", "node"):
        try:
            proc = subprocess.run(["scontrol", "show", what, "-o"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("could not read the SLURM %ss (%s); relying on sbatch --test-only", what, e)
            return None
        if proc.returncode != 0:
            log.warning("scontrol show %s failed (%s); relying on sbatch --test-only", what, proc.stderr.strip())
            return None
        texts.append(proc.stdout)
    return parse_cluster(*texts)


# -- judging a request ------------------------------------------------------------------------
def pick_partition(request: Request, partitions: dict[str, Partition]) -> Partition | str:
    """The partition the job would land in, or what is wrong with `partition`."""
    listing = ", ".join(p.name + ("*" if p.default else "") for p in partitions.values()) or "none"
    if request.partition:
        for name in request.partition.split(","):  # SLURM takes a list; the first that fits runs it
            if name in partitions:
                return partitions[name]
        return f"{PREFIX}partition={request.partition}: no such partition here (partitions: {listing}; * = default)"
    for p in partitions.values():
        if p.default:
            return p
    return f"{PREFIX}partition is not set and there is no default partition (partitions: {listing})"


def problems(request: Request, part: Partition) -> list[str]:
    """Each setting that this partition can never give, with what it offers instead."""
    out: list[str] = []
    nodes = part.nodes
    where = f"partition {part.name}'s nodes"
    cpus = (request.cpus_per_task or 1) * max(1, request.tasks_per_node)
    what = (f"{PREFIX}cpus_per_task={request.cpus_per_task}" if request.tasks_per_node <= 1 else
            f"{PREFIX}cpus_per_task={request.cpus_per_task} x tasks_per_node={request.tasks_per_node}")
    if not nodes:
        return [f"partition {part.name} has no nodes"]
    max_cpus = max(n.cpus for n in nodes)
    if part.max_cpus_per_node is not None:
        max_cpus = min(max_cpus, part.max_cpus_per_node)
    if request.cpus_per_task and cpus > max_cpus:
        out.append(f"{what}, but {where} have at most {max_cpus} CPUs")
    max_mem = max(n.mem_mb for n in nodes)
    if part.max_mem_per_node_mb is not None:
        max_mem = min(max_mem, part.max_mem_per_node_mb)
    if request.mem_gb and request.mem_gb * 1024 > max_mem:
        out.append(f"{PREFIX}mem_gb={request.mem_gb:g}, but {where} have at most {max_mem / 1024:.1f} GB "
                   f"({max_mem} MB)")
    max_gpus = max(n.gpus for n in nodes)
    if request.gpus_per_node and request.gpus_per_node > max_gpus:
        have = "no GPUs" if max_gpus == 0 else f"at most {max_gpus} GPUs"
        out.append(f"{PREFIX}gpus_per_node={request.gpus_per_node}, but {where} have {have}")
    if not out:  # each fits some node: does one node fit them all?
        fits = [n for n in nodes if n.cpus >= cpus and n.mem_mb >= (request.mem_gb or 0) * 1024
                and n.gpus >= (request.gpus_per_node or 0)]
        if len(fits) < request.nodes and len(fits) < len(nodes):
            asked = ", ".join(f"{k}={v:g}" for k, v in (("cpus_per_task", request.cpus_per_task),
                              ("mem_gb", request.mem_gb), ("gpus_per_node", request.gpus_per_node)) if v)
            out.append(f"{PREFIX}{asked}: {len(fits)} of {where} have all of them together "
                       f"(needed: {PREFIX}nodes={request.nodes})")
    if request.nodes > len(nodes):
        out.append(f"{PREFIX}nodes={request.nodes}, but partition {part.name} has {len(nodes)} node(s)")
    elif part.max_nodes is not None and request.nodes > part.max_nodes:
        out.append(f"{PREFIX}nodes={request.nodes}, but partition {part.name} allows at most {part.max_nodes}")
    if request.nodes < part.min_nodes:
        out.append(f"{PREFIX}nodes={request.nodes}, but partition {part.name} needs at least {part.min_nodes}")
    if request.timeout_min and part.max_time_min is not None and request.timeout_min > part.max_time_min:
        out.append(f"{PREFIX}timeout_min={request.timeout_min}, but partition {part.name}'s MaxTime is "
                   f"{part.max_time_min} min")
    if request.account and part.allow_accounts is not None and request.account not in part.allow_accounts:
        out.append(f"{PREFIX}account={request.account}, but partition {part.name} allows only accounts "
                   f"{','.join(part.allow_accounts)}")
    if request.qos and part.allow_qos is not None and request.qos not in part.allow_qos:
        out.append(f"{PREFIX}qos={request.qos}, but partition {part.name} allows only QOS {','.join(part.allow_qos)}")
    return out


def default_timeout_min(part: Partition | None, fallback: int = 240) -> int:
    """`timeout_min: null`: `fallback` minutes, or the partition's MaxTime when that is lower."""
    if part is None or part.max_time_min is None:
        return fallback
    return min(fallback, part.max_time_min)


def test_only(sbatch_script: str) -> str | None:
    """`sbatch --test-only` on the script the sweep would submit: None if SLURM would take it,
    else SLURM's answer. Also None when sbatch cannot be run at all (the submission will say)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="reasonbridge-test-only-") as f:
        f.write(sbatch_script)
        f.flush()
        try:
            proc = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("sbatch --test-only could not run (%s)", e)
            return None
    if proc.returncode == 0:
        return None
    return " ".join((proc.stderr + proc.stdout).split()) or f"exit status {proc.returncode}"


def check(request: Request, sbatch_script: str, cluster: dict[str, Partition] | None) -> Partition | None:
    """Raise SlurmRequestError when the request can never run; return the partition it lands in."""
    found: list[str] = []
    part = None
    if cluster:
        picked = pick_partition(request, cluster)
        if isinstance(picked, str):
            found.append(picked)
        else:
            part = picked
            found += problems(request, part)
    refused = test_only(sbatch_script)
    if not found and not refused:
        return part
    lines = ["SLURM can never run this request, so nothing was submitted:"]
    lines += [f"  - {p}" for p in found]
    if refused:
        lines.append(f"  - sbatch --test-only with the same options: {refused}")
    if part is not None:
        lines.append(f"Offered: {part.offers()}.")
    elif cluster:
        lines += [f"Offered: {p.offers()}." for p in cluster.values()]
    lines.append("Change the hydra.launcher.* settings named above on the command line "
                 "(see docs/cluster.md, 'Asking for resources').")
    raise SlurmRequestError("\n".join(lines))
