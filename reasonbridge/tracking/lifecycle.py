"""The MLflow run around one pipeline call: opened (or resumed after preemption) before any work,
params from the config, marked KILLED / FAILED when the work stops, and finished only once every
output is logged. A tracking server that is down fails before work starts, or after it with a
message that says nothing is lost (the stage cache holds every result)."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from omegaconf import DictConfig, OmegaConf

from reasonbridge import preemption
from reasonbridge.cache import write_json_atomic
from reasonbridge.errors import one_line
from reasonbridge.tracking.mlflow_run import (RunLogger, TrackingUnavailable, flatten, preempted_run,
                                              resolve_tracking_uri, unreachable)

log = logging.getLogger("reasonbridge.pipeline")
R = TypeVar("R")  # the work's result: has `stages` (name -> artifact with `path`) and a settable `run_id`


def run_tracked(cfg: DictConfig, execute: Callable[[], R], log_outputs: Callable[[RunLogger, R], None],
                run_file: Path | None = None) -> R:
    """``execute()`` inside one MLflow run of ``cfg.tracking``; then ``log_outputs(logger, result)``.

    `run_file` (in the job's output folder) records the MLflow run id, so a job requeued
    after preemption continues the same run instead of opening a second one."""
    t = cfg.tracking
    tags = {"row": t.row, **({"table": t.table} if t.table else {}), **dict(t.tags)}
    try:
        resume = preempted_run(t.uri, run_file) if run_file is not None else None
        logger = RunLogger(t.uri, t.experiment, t.run_name or t.row, tags, resume_run_id=resume)
    except Exception as e:
        if not unreachable(e):
            raise
        raise TrackingUnavailable(f"the MLflow tracking server at {resolve_tracking_uri(t.uri)} cannot be reached "
                                  f"({str(e)[:300]}); no work was started. Start it (or set MLFLOW_TRACKING_URI) "
                                  "and run the same command again") from e
    if run_file is not None:
        write_json_atomic(run_file, {"run_id": logger.run_id, "tracking_uri": logger.uri})
    resolved = OmegaConf.to_container(cfg, resolve=True)
    logger.log_params(flatten({k: v for k, v in resolved.items() if k not in ("tracking", "paths", "progress")}))

    def mark_preempted() -> None:  # before the requeue: the requeued job continues this run
        logger.set_tags({"preempted": "true"})
        logger.finish("KILLED")

    preemption.before_hand_off(mark_preempted)
    try:
        result = execute()
    except BaseException as e:
        if not preemption.preempted():
            try:
                record_failure(logger, e)
            except Exception as lost:  # never hide the run's own error behind this one
                log.warning("could not record the error in MLflow run %s (%s)", logger.run_id, str(lost)[:200])
            try:
                logger.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            except Exception as lost:  # the server went away too: report the run's own error, not this
                if not unreachable(lost):
                    raise
                log.warning("could not mark MLflow run %s as failed: the tracking server is unreachable",
                            logger.run_id)
        raise
    finally:
        preemption.remove_callback(mark_preempted)
    result.run_id = logger.run_id
    try:
        log_outputs(logger, result)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            logger.log_artifact(Path(tmp) / "config.yaml")
        logger.finish()
    except Exception as e:
        if not unreachable(e):
            raise
        stages = ", ".join(f"{n}={r.path}" for n, r in result.stages.items())
        raise TrackingUnavailable(
            f"the MLflow tracking server at {logger.uri} went away before this run's results were logged "
            f"({str(e)[:300]}). Nothing is lost: every stage's result is in the stage cache ({stages}). Run the "
            f"same command again once the server is back: no stage is recomputed, and the results are logged to "
            f"a new MLflow run (run {logger.run_id} stays unfinished). MLFLOW_HTTP_REQUEST_MAX_RETRIES and "
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR set how long a run waits for the server to come back") from e
    log.info("MLflow run %s (experiment %r) at %s", logger.run_id, t.experiment, logger.uri)
    return result


def record_failure(logger: RunLogger, error: BaseException) -> None:
    """Why the run stopped, in MLflow: tags `error` (one line) and `error_type`, and the run's log
    (the file the logging setup writes, Hydra's `<job>.log`) as the artifact `logs/<file>`."""
    message = one_line(error)
    logger.set_tags({"error": message[:5000], "error_type": type(error).__name__})
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_file():
            # the error goes into the log file only: the console gets it once, from run.py
            handler.emit(logging.LogRecord("reasonbridge", logging.ERROR, __file__, 0, "run stopped: %s",
                                           (message,), None))
            handler.flush()
            logger.log_artifact(handler.baseFilename, "logs")
