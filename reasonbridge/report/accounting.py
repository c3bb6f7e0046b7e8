"""What the report counted: every run it could read, how many fill a cell, and why each other one
was left out (no `table` tag, a table no definition reads, not finished, a row the table does not
define, replaced by a later run of the same row and seed, no metric the table reads)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from reasonbridge.report.runs import RunRecord
from reasonbridge.report.specs import TableSpec

NO_TABLE = "without a `table` tag (a run outside an experiment preset: set tracking.table=<table> or run -m experiment=<table>)"
UNFINISHED = "not finished (failed, killed or still running)"
REPLACED = "replaced by a later run of the same row, student and seed"
NO_METRIC = "without a metric their table reads"


@dataclass
class RunCount:
    read: int = 0  # every run of the active experiments (the report fills its cells from `used` of them)
    used: int = 0  # runs behind at least one cell
    left_out: Counter = field(default_factory=Counter)  # reason -> runs

    def line(self) -> str:
        text = f"of {self.read} runs in the store, {self.used} fill a cell"
        if self.left_out:
            text += "; left out: " + "; ".join(f"{n} {why}" for why, n in self.left_out.most_common())
        return text


def _search(client: MlflowClient, ids: list[str], query: str) -> list:
    found, token = [], None
    while True:
        page = client.search_runs(ids, filter_string=query, run_view_type=ViewType.ACTIVE_ONLY, max_results=5000,
                                  page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def count_runs(client: MlflowClient, specs: list[TableSpec], runs: list[RunRecord], used_ids: set[str]) -> RunCount:
    """``runs``: the finished runs of the specs' tables (`fetch_runs`); ``used_ids``: those behind a cell."""
    count = RunCount(used=len(used_ids))
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not ids:
        return count
    sources = sorted({s for spec in specs for s in spec.sources})
    quoted = [s.replace(chr(39), "") for s in sources]
    no_table = len(_search(client, ids, "tags.table IS NULL"))
    others = Counter(run.data.tags.get("table") for run in _search(
        client, ids, " AND ".join(["tags.table IS NOT NULL"] + [f"tags.table != '{s}'" for s in quoted])))
    unfinished = sum(len(_search(client, ids, f"attributes.status != 'FINISHED' AND tags.table = '{s}'"))
                     for s in quoted)
    count.read = len(runs) + no_table + sum(others.values()) + unfinished
    count.left_out[NO_TABLE] = no_table
    if others:
        count.left_out[f"of other tables ({', '.join(sorted(others))})"] = sum(others.values())
    count.left_out[UNFINISHED] = unfinished
    latest: dict[tuple, int] = {}
    for r in runs:
        key = (r.table, r.row, r.model, r.seed)
        latest[key] = max(latest.get(key, 0), r.start_time)
    for r in runs:
        if r.run_id in used_ids:
            continue
        rows = {tag for spec in specs if r.table in spec.sources for row in spec.rows for tag in (row.row, *row.also)}
        if r.row not in rows:
            count.left_out[f"of row {r.row!r}, which table {r.table!r} does not define"] += 1
        elif r.start_time < latest[(r.table, r.row, r.model, r.seed)]:
            count.left_out[REPLACED] += 1
        else:
            count.left_out[NO_METRIC] += 1
    count.left_out = Counter({k: v for k, v in count.left_out.items() if v})
    return count
