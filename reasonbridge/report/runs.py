"""Runs through the MLflow API: finished runs of the report's tables and their predictions."""
from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# the params the report reads (every run logs its whole flattened config)
PARAMS = ("model.name", "seed", "adapters.name", "adapters.r", "train.lr", "inference.name",
          "inference.max_interventions", "inference.num_samples", "benchmark.name")


@dataclass
class RunRecord:
    run_id: str
    experiment_id: str
    start_time: int
    table: str
    row: str
    model: str
    seed: str
    params: dict[str, str]
    metrics: dict[str, float]
    # benchmark -> {problem id: score in [0, 1]} (mean over samples), filled by load_predictions
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def benchmarks(self) -> list[str]:
        return [k.split("/", 1)[1] for k in self.metrics if k.startswith("acc/")]


def fetch_runs(client: MlflowClient, tables: set[str]) -> list[RunRecord]:
    """Every FINISHED run (active experiments) whose tag `table` is one of ``tables``."""
    experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    if not experiments:
        return []
    ids = [e.experiment_id for e in experiments]
    records = []
    for table in sorted(tables):  # the search grammar has no IN for tags: one query per table
        token = None
        query = f"attributes.status = 'FINISHED' AND tags.table = '{table.replace(chr(39), '')}'"
        while True:
            page = client.search_runs(ids, filter_string=query, max_results=5000, page_token=token)
            records.extend(_record(run) for run in page)
            token = page.token
            if not token:
                break
    return records


def _record(run) -> RunRecord:
    tags, params = run.data.tags, run.data.params
    return RunRecord(run_id=run.info.run_id, experiment_id=run.info.experiment_id,
                     start_time=run.info.start_time or 0, table=tags.get("table", ""), row=tags.get("row", "default"),
                     model=params.get("model.name", "?"), seed=params.get("seed", "0"),
                     params={k: params[k] for k in PARAMS if k in params}, metrics=dict(run.data.metrics))


def _scores(path: Path) -> dict[str, float]:
    """Problem id -> mean correctness over its samples."""
    totals: dict[str, list[float]] = {}
    with path.open() as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                totals.setdefault(str(rec["id"]), []).append(float(rec["correct"]))
    return {k: sum(v) / len(v) for k, v in totals.items()}


def load_predictions(client: MlflowClient, needed: list[tuple[RunRecord, str]], workers: int = 8) -> None:
    """Fill ``run.scores[benchmark]`` from each run's `predictions/<benchmark>.jsonl` artifact.

    A run without the artifact keeps no scores; the report then falls back to acc and n.
    """
    def fetch(item: tuple[RunRecord, str]) -> None:
        run, bench = item
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = client.download_artifacts(run.run_id, f"predictions/{bench}.jsonl", tmp)
            except Exception as e:  # a missing artifact is not fatal: the cell's interval comes from acc/n
                log.warning("run %s: no predictions/%s.jsonl (%s); interval from acc/n", run.run_id, bench,
                            type(e).__name__)
                return
            run.scores[bench] = _scores(Path(local))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, needed))
