"""Append-only, crash-safe cache and usage ledger for teacher queries.

One JSONL file per teacher identity (`<cache_dir>/teacher/<identity-hash>.jsonl`), outside the
stage folders so that a run killed during trace generation keeps every finished answer. Each
line is one finished query: its key (teacher identity, prompt, sampling parameters), the
response, and provenance (teacher, endpoint, time, token usage, cost). A line is written with
one `write` + `fsync` under a lock; a torn last line (a kill mid-write) is ignored on load.

The budget (`Budget`) caps queries and spend for everything that uses one ledger: a query
reserves (one query, its worst-case cost) before it is sent and settles to the real cost after.
With ``Budget.shared(...)`` (what the pipeline uses) reservations go through a small tally file
beside the ledger (`<identity-hash>.budget.json`) under a file lock, so concurrent jobs on one
machine or one shared filesystem (a sweep's local launcher, SLURM arrays) together never send
more than ``max_queries`` or spend more than ``max_cost_usd``, and the caps hold across restarts.
A job killed with a query in flight leaves that query counted at its worst-case cost (it may have
been billed); delete the tally with the ledger to start a teacher's budget afresh.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def query_key(identity: dict, prompt: str, sampling: dict) -> str:
    return _digest({"teacher": identity, "prompt": prompt, "sampling": sampling})[:32]


class BudgetExceeded(RuntimeError):
    """A hard cap on teacher queries or cost would be crossed; finished answers are kept."""


class Budget:
    """Hard caps on queries and cost. ``reserve`` before a query, ``settle`` after it.

    Without ``tally`` the counts live in this object (one process); with it (``Budget.shared``)
    they live in that JSON file, read and updated under its file lock at every reserve and settle,
    so every process that shares the file shares the caps."""

    def __init__(self, max_queries: int | None, max_cost_usd: float | None, *, queries: int = 0,
                 cost_usd: float = 0.0, tally: str | os.PathLike | None = None):
        self.max_queries, self.max_cost = max_queries, max_cost_usd
        self.queries, self.cost = queries, cost_usd  # spent, including earlier runs (and other jobs)
        self._reserved_cost = 0.0  # worst cases of queries in flight (with a tally: in every job)
        self._lock = threading.Lock()
        self.tally = Path(tally) if tally is not None else None
        if self.tally is not None:
            self._file_lock = FileLock(str(self.tally) + ".lock")
            with self._shared() as counts:  # the tally never counts less than the ledger holds ...
                counts["queries"] = max(counts["queries"], queries)
                # ... but for answers written to the ledger whose cost is still in flight (another job
                # between its append and its settle): counting those here too would count them twice
                counts["cost_usd"] = max(counts["cost_usd"], cost_usd - counts["in_flight_usd"])

    @classmethod
    def shared(cls, max_queries: int | None, max_cost_usd: float | None, cache: "TeacherCache") -> "Budget":
        """The caps of every job that uses ``cache``'s ledger, counted together (see the module doc).
        Without a cap there is nothing to enforce, and no tally (a locked read and write per query,
        ~1-3 ms) is kept: its queries are counted from the ledger by the next capped job."""
        tally = cache.budget_path if max_queries is not None or max_cost_usd is not None else None
        return cls(max_queries, max_cost_usd, queries=cache.queries, cost_usd=cache.cost_usd, tally=tally)

    @contextlib.contextmanager
    def _shared(self):
        """The tally's counts under the file lock, written back (atomically) on leaving."""
        with self._file_lock:
            try:
                counts = json.loads(self.tally.read_text())
            except FileNotFoundError:
                counts = {"queries": self.queries, "cost_usd": self.cost, "in_flight_usd": 0.0}
            yield counts
            tmp = self.tally.with_name(self.tally.name + ".tmp")
            tmp.write_text(json.dumps(counts))
            tmp.replace(self.tally)
            self.queries, self.cost, self._reserved_cost = counts["queries"], counts["cost_usd"], counts["in_flight_usd"]

    def _check(self, worst_cost: float) -> None:
        where = f" by every job sharing {self.tally}" if self.tally is not None else ""
        if self.max_queries is not None and self.queries + 1 > self.max_queries:
            raise BudgetExceeded(f"teacher.max_queries={self.max_queries} reached "
                                 f"({self.queries} queries sent so far{where}, this run and earlier ones); "
                                 "finished answers are cached: raise the cap to continue")
        if self.max_cost is not None and self.cost + self._reserved_cost + worst_cost > self.max_cost + 1e-12:
            raise BudgetExceeded(f"teacher.max_cost_usd={self.max_cost} would be exceeded: spent "
                                 f"${self.cost:.6f}{where}, in flight up to ${self._reserved_cost:.6f}, next query "
                                 f"up to ${worst_cost:.6f}; finished answers are cached: raise the cap to continue")

    def reserve(self, worst_cost: float) -> None:
        with self._lock:
            if self.tally is None:
                self._check(worst_cost)
                self.queries += 1
                self._reserved_cost += worst_cost
                return
            with self._shared() as counts:
                self.queries, self.cost, self._reserved_cost = (counts["queries"], counts["cost_usd"],
                                                                counts["in_flight_usd"])
                self._check(worst_cost)  # raising leaves the tally as it was
                counts["queries"] += 1
                counts["in_flight_usd"] += worst_cost

    def settle(self, worst_cost: float, actual_cost: float) -> None:
        with self._lock:
            if self.tally is None:
                self._reserved_cost -= worst_cost
                self.cost += actual_cost
                return
            with self._shared() as counts:
                counts["in_flight_usd"] = max(0.0, counts["in_flight_usd"] - worst_cost)
                counts["cost_usd"] += actual_cost


class TeacherCache:
    """The ledger file of one teacher identity: cached responses and every query's usage."""

    def __init__(self, root: str | os.PathLike, identity: dict):
        self.identity = identity
        self.path = Path(root) / "teacher" / f"{_digest(identity)[:16]}.jsonl"
        self.budget_path = self.path.with_suffix(".budget.json")  # Budget.shared's tally
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file_lock = FileLock(str(self.path) + ".lock")
        self.entries: dict[str, dict] = {}
        self.queries = 0  # ledger lines: every query that was answered, in any run
        self.cost_usd = 0.0
        self.errors = 0  # queries that were sent but failed (recorded, not cached)
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a torn write from a killed run: that query never finished
                    continue
                self.queries += 1
                self.cost_usd += entry.get("provenance", {}).get("cost_usd", 0.0)
                if entry.get("error"):
                    self.errors += 1
                else:
                    self.entries[entry["key"]] = entry

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def append(self, key: str, response: dict | None, provenance: dict, error: str | None = None) -> None:
        entry = {"key": key, "response": response, "provenance": provenance, **({"error": error} if error else {})}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, self._file_lock:
            with self.path.open("ab") as f:
                if f.tell() > 0:  # after a torn write, start on a fresh line
                    with self.path.open("rb") as r:
                        r.seek(-1, os.SEEK_END)
                        if r.read(1) != b"\n":
                            f.write(b"\n")
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            self.queries += 1
            self.cost_usd += provenance.get("cost_usd", 0.0)
            if error:
                self.errors += 1
            else:
                self.entries[key] = entry


def provenance(teacher: str, endpoint: str | None, usage: dict | None, cost_usd: float, seconds: float,
               attempts: int = 1) -> dict:
    return {"teacher": teacher, "endpoint": endpoint, "time": time.time(), "seconds": round(seconds, 4),
            "usage": usage or {}, "cost_usd": cost_usd, "attempts": attempts}


def collect_traces(teacher, problems: list[dict], cache: TeacherCache, budget: Budget) -> tuple[list[dict], dict]:
    """A trace for every problem, from the cache where possible; the rest queried and cached as
    each finishes. Returns the traces (pool order) and {queries, cache_hits, cost_usd} of this call."""
    from reasonbridge.curation.segment import segment
    from reasonbridge.answers import extract_boxed

    keyed = [(query_key(teacher.identity, prompt, teacher.sampling), p, prompt)
             for p in problems for prompt in [teacher.prompt(p)]]
    todo, seen = [], set()
    for key, p, prompt in keyed:
        if cache.get(key) is None and key not in seen:
            seen.add(key)
            todo.append((key, p, prompt))
    hits = len(keyed) - len(todo)
    queries_before, cost_before = cache.queries, cache.cost_usd
    teacher.run(todo, cache.append, budget)
    traces = []
    for key, p, _ in keyed:
        entry = cache.get(key)
        response = entry["response"]
        text = response["text"]
        traces.append({"problem_id": p["id"], "teacher": teacher.name, "text": text, "answer": extract_boxed(text),
                       "segments": response.get("segments") or segment(text), "defects": response.get("defects", []),
                       "problem": p["problem"], "gold": p["answer"], "domain": p.get("domain"),
                       "difficulty": p.get("difficulty"), "provenance": entry["provenance"],
                       # "length": the teacher ran out of tokens (the quality filter's `truncated`)
                       **({"finish_reason": response["finish_reason"]} if response.get("finish_reason") else {})})
    return traces, {"queries": cache.queries - queries_before, "cache_hits": hits,
                    "cost_usd": cache.cost_usd - cost_before}
