"""Runs through the MLflow API: finished runs of the report's tables and their predictions."""
from __future__ import annotations

import gc
import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# the params the report reads (every run logs its whole flattened config)
PARAMS = ("model.name", "seed", "adapters.name", "adapters.r", "train.lr", "inference.name",
          "inference.max_interventions", "inference.num_samples", "inference.budget_end", "benchmark.name")


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
    artifact_uri: str = ""
    # benchmark -> {problem id: score in [0, 1]} (mean over samples), filled by load_predictions
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    # stage -> fingerprint of the code that made its artifact (tags code/<stage>), and its commit (made_by/<stage>)
    code: dict[str, str] = field(default_factory=dict)
    made_by: dict[str, str] = field(default_factory=dict)

    def benchmarks(self) -> list[str]:
        return [k.split("/", 1)[1] for k in self.metrics if k.startswith("acc/")]


@contextmanager
def _gc_paused():
    """Loading runs builds ~150 ORM objects per run, all alive until the page is converted; the
    cyclic collector re-scans them over and over (two thirds of the time for 1,000 runs)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fetch_runs(client: MlflowClient, tables: set[str]) -> list[RunRecord]:
    """Every FINISHED run (active experiments) whose tag `table` is one of ``tables``."""
    with _gc_paused():
        return _fetch_runs(client, tables)


def _fetch_runs(client: MlflowClient, tables: set[str]) -> list[RunRecord]:
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
                     params={k: params[k] for k in PARAMS if k in params}, metrics=dict(run.data.metrics),
                     artifact_uri=run.info.artifact_uri or "",
                     code={k.split("/", 1)[1]: v for k, v in tags.items() if k.startswith("code/")},
                     made_by={k.split("/", 1)[1]: v for k, v in tags.items() if k.startswith("made_by/")})


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

    Artifacts in a local folder are read where they are (a thousand downloads through the
    client cost seconds each hundred); any other store is downloaded through MLflow. A run
    without the artifact keeps no scores; the report then falls back to acc and n.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def fetch(item: tuple[RunRecord, str]) -> None:
        run, bench = item
        name = f"predictions/{bench}.jsonl"
        try:
            repo = get_artifact_repository(run.artifact_uri) if run.artifact_uri else None
            if isinstance(repo, LocalArtifactRepository):
                run.scores[bench] = _scores(Path(repo.artifact_dir) / name)
                return
            with tempfile.TemporaryDirectory() as tmp:
                run.scores[bench] = _scores(Path(client.download_artifacts(run.run_id, name, tmp)))
        except Exception as e:  # a missing artifact is not fatal: the cell's interval comes from acc/n
            log.warning("run %s: cannot read %s (%s: %s); interval from acc/n", run.run_id, name,
                        type(e).__name__, str(e)[:200])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, needed))
