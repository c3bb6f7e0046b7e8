"""MLflow at the edge: one run per pipeline invocation, logged in batches.

A tracking server that cannot be reached (after MLflow's own retries: MLFLOW_HTTP_REQUEST_MAX_RETRIES,
default 7, with exponential backoff, about 4 minutes) ends the run with `TrackingUnavailable`, a
message that says where the results are and how to log them; a server that comes back within the
retries is simply used (see docs/safety.md)."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from reasonbridge.errors import ServiceUnavailable

PARAM_BATCH, METRIC_BATCH = 100, 1000


class TrackingUnavailable(ServiceUnavailable):
    """The MLflow tracking server could not be reached (after MLflow's retries)."""


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says the tracking server could not be reached."""
    import requests
    markers = ("Max retries exceeded", "Connection refused", "Failed to establish a new connection",
               "Read timed out", "Connection aborted", "RemoteDisconnected")
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        if any(m in str(seen) for m in markers):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "hydra-core", "mlflow", "tokenizers")


def resolve_tracking_uri(configured: str | None) -> str:
    """`MLFLOW_TRACKING_URI` wins, then `tracking.uri`, then MLflow's own default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or mlflow.get_tracking_uri()


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): str(tree)}


def environment_tags() -> dict[str, str]:
    tags = {}
    for lib in LIBRARIES:
        try:
            tags[f"lib/{lib}"] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        if commit:
            tags["mlflow.source.git.commit"] = commit
            tags["git_dirty"] = str(bool(dirty))
    except (OSError, subprocess.SubprocessError):
        pass
    return tags


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it; safe when parallel jobs create it at once."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # another job created it between the lookup and the create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def preempted_run(uri: str | None, run_file: Path) -> str | None:
    """The run id recorded in `run_file` if that run was preempted (to be continued), else None."""
    if not run_file.exists():
        return None
    import json
    run_id = json.loads(run_file.read_text()).get("run_id")
    try:
        run = MlflowClient(tracking_uri=resolve_tracking_uri(uri)).get_run(run_id)
    except MlflowException:
        return None
    preempted = run.data.tags.get("preempted") == "true" and run.info.status != "FINISHED"
    return run_id if preempted else None


class RunLogger:
    """Thin wrapper over MlflowClient: params/tags/metrics are sent in batches."""

    def __init__(self, uri: str | None, experiment: str, run_name: str, tags: dict[str, str],
                 resume_run_id: str | None = None):
        self.uri = resolve_tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        if resume_run_id is not None:  # a requeued job continues its preempted run
            self.run = self.client.get_run(resume_run_id)
            self.client.update_run(resume_run_id, status="RUNNING")
            self.client.set_tag(resume_run_id, "resumed", "true")
            self.run_id, self.experiment_id = resume_run_id, self.run.info.experiment_id
            return
        exp_id = ensure_experiment(self.client, experiment)
        self.run = self.client.create_run(exp_id, run_name=run_name, tags={**environment_tags(), **tags})
        self.run_id = self.run.info.run_id
        self.experiment_id = exp_id

    def log_params(self, params: dict[str, str]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + PARAM_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, tags=items[i:i + PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.log_series([(k, v, step) for k, v in metrics.items()])

    def log_series(self, points: list[tuple[str, float, int]]) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(s)) for k, v, s in points]
        for i in range(0, len(items), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i:i + METRIC_BATCH])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dataset(self, path: Path, *, name: str, digest: str, context: str) -> None:
        """Record a JSONL dataset as an MLflow dataset input of the run (mlflow.data)."""
        import warnings

        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        frame = pd.read_json(path, lines=True)
        with warnings.catch_warnings():  # schema-inference hints and source-resolution notes, not problems
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, source=str(path), name=name, digest=digest[:32])
            entity = dataset._to_mlflow_entity()
        tags = [InputTag(key="mlflow.data.context", value=context)]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags)])

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
