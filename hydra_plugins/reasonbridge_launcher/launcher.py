"""hydra-submitit-launcher's launchers, adapted to reasonbridge sweeps.

Hydra accepts launcher classes only from the `hydra_plugins` package, so they live here;
conf/hydra/launcher/{slurm,local}.yaml select them through `_target_`. Over the originals:

- the MLflow store and every job's experiment are created once, before the jobs start
  (parallel jobs would otherwise race to create the SQLite schema or the experiment);
- the sweep waits for every job, then fails naming each failed one (the original stops
  at the first failure while the other jobs keep running unobserved).
On SLURM (docs/cluster.md):
- before submitting, the request is checked against the partition (`reasonbridge.slurm_request`):
  one SLURM can never run fails at once, naming the `hydra.launcher.*` setting to change;
  `timeout_min: null` becomes 240 min or the partition's MaxTime when lower;
- while waiting (`reasonbridge.slurm_watch`), a line per change of the tasks' states; a task
  ended by SLURM without a result (cancelled, killed, out of memory, timed out), pending or
  running, is failed within one `poll_interval_s`, with or without accounting; a task pending
  for a reason waiting cannot fix cancels the sweep; the sweep ends with a table of the tasks.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
except ImportError:  # without the `cluster` extra: no launchers (and no warning on every run)
    base = None

log = logging.getLogger(__name__)
# our settings, not submitit's
OWN_KEYS = {"poll_interval_s", "check_request"}


# CompactHydraException: Hydra prints the message alone (no traceback) and exits 1
class SweepFailed(CompactHydraException):
    """Some tasks of a SLURM sweep ended without a result."""


class SlurmRequestRefused(CompactHydraException):
    """The request can never run here (the message names the settings); nothing is left queued."""


class _SweepMixin:
    """`launch` of hydra-submitit-launcher with the changes listed in the module docstring."""

    def _prepare_tracking(self, job_overrides: Sequence[Sequence[str]]) -> None:
        try:
            from mlflow.tracking import MlflowClient

            from reasonbridge.tracking.mlflow_run import ensure_experiment, resolve_tracking_uri
            targets = set()
            for overrides in job_overrides:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                targets.add((resolve_tracking_uri(cfg.tracking.uri), cfg.tracking.experiment))
            for uri, experiment in sorted(targets):
                ensure_experiment(MlflowClient(tracking_uri=uri), experiment)
        except Exception as e:  # e.g. the server is reachable from the nodes but not from here
            log.warning("could not prepare the MLflow store before launching (%s); each job creates what it needs", e)

    def _executor(self) -> Any:
        import submitit

        init_keys = {"max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in init_keys})
        baseparams = set(OmegaConf.structured(base.BaseQueueConf).keys())
        skip = init_keys | OWN_KEYS | {"submitit_folder"}
        executor.update_parameters(**{k if k in baseparams else f"{self._EXECUTOR}_{k}": v
                                      for k, v in self.params.items() if k not in skip})
        return executor

    def _before_submit(self, executor: Any, num_jobs: int) -> None:
        """Last look before anything is submitted (SLURM: is the request possible at all?)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and len(job_overrides) > 0
        executor = self._executor()
        self._before_submit(executor, len(job_overrides))
        self._prepare_tracking(job_overrides)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        return self._collect(jobs, job_overrides, initial_job_idx)

    def _collect(self, jobs: list, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import submitit

        returns: list[JobReturn] = []
        failed = []
        for job, overrides in zip(jobs, job_overrides):
            try:
                returns.append(job.results()[0])
            except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as e:
                failed.append(job.job_id)
                log.error("job %s (%s) failed: %s", job.job_id, " ".join(overrides), " ".join(str(e).splitlines()[:2]))
                returns.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=e))
        if failed:
            log.error("%d of %d jobs failed: %s (logs under %s)", len(failed), len(jobs), ", ".join(failed),
                      self.params["submitit_folder"])
        return returns


if base is not None:
    class SlurmLauncher(_SweepMixin, base.SlurmLauncher):
        def _before_submit(self, executor: Any, num_jobs: int) -> None:
            from submitit.slurm.slurm import _make_sbatch_string

            from reasonbridge import slurm_request as rq
            from reasonbridge.slurm import use_scontrol_fallback

            use_scontrol_fallback()
            check = self.params.get("check_request", True)
            # the partition decides a null timeout_min even when the check is off
            self._cluster = rq.read_cluster() if check or self.params.get("timeout_min") is None else None
            request = rq.Request.from_params(self.params)
            part = None
            if self._cluster:
                picked = rq.pick_partition(request, self._cluster)
                part = None if isinstance(picked, str) else picked
            if self.params.get("timeout_min") is None:
                minutes = rq.default_timeout_min(part)
                log.info("hydra.launcher.timeout_min=null: asking for %d min%s", minutes,
                         f" (partition {part.name}'s MaxTime is {part.max_time_min} min)"
                         if part and part.max_time_min is not None else "")
                executor.update_parameters(timeout_min=minutes)
                request.timeout_min = minutes
            self._request = request
            if not check:
                return
            slurm = executor._executor  # the SlurmExecutor inside submitit's AutoExecutor
            script = _make_sbatch_string(command="true", folder=slurm.folder, map_count=num_jobs if num_jobs > 1 else None,
                                         **slurm.parameters)
            try:
                rq.check(request, script, self._cluster)
            except rq.SlurmRequestError as e:
                raise SlurmRequestRefused(str(e)) from None

        def _collect(self, jobs: list, job_overrides: Sequence[Sequence[str]],
                     initial_job_idx: int) -> list[JobReturn]:
            from reasonbridge import slurm_request as rq
            from reasonbridge.slurm_watch import SweepWatch, Task, table

            tasks = [Task(index, " ".join(filter_overrides(overrides)), job)
                     for index, (job, overrides) in enumerate(zip(jobs, job_overrides), start=initial_job_idx)]
            watch = SweepWatch(tasks, poll_interval_s=float(self.params.get("poll_interval_s", 15)))
            log.info("submitted SLURM job %s (%d task(s)); a line below whenever a task's state changes",
                     ",".join(watch.array_ids), len(tasks))
            try:
                fatal = watch.run()
            except KeyboardInterrupt:
                log.warning("stopped waiting; the tasks keep running (cancel them with: scancel %s)",
                            " ".join(watch.array_ids))
                raise
            failed = [t for t in tasks if t.outcome != "done"]
            (log.error if failed else log.info)("sweep finished: %d of %d tasks failed\n%s", len(failed), len(tasks),
                                                table(tasks))
            if fatal is not None:
                lines = [f"SLURM can never start task #{fatal.task.index}: it is PENDING with reason {fatal.reason} "
                         f"({fatal.why}). Everything this sweep submitted was cancelled."]
                cluster = self._cluster or rq.read_cluster()
                part = rq.pick_partition(self._request, cluster) if cluster else None
                if part is not None and not isinstance(part, str):
                    lines += [f"  - {p}" for p in rq.problems(self._request, part)]
                    lines.append(f"Offered: {part.offers()}.")
                lines.append("Change the hydra.launcher.* setting behind this reason (see docs/cluster.md).")
                raise SlurmRequestRefused("\n".join(lines))
            for t in failed:
                logs = f" (logs: {t.job.paths.stderr})" if t.job.paths.stderr.exists() else ""
                log.error("task #%d (%s) failed: %s%s", t.index, t.label, t.detail, logs)
            returns = []
            for t, overrides in zip(tasks, job_overrides):
                if t.outcome == "done":
                    returns.append(t.result)
                else:  # Hydra raises the first: make it tell the whole story
                    error = SweepFailed(f"{len(failed)} of {len(tasks)} tasks of the sweep failed (table above); "
                                        f"task #{t.index} ({t.label}): {t.detail}")
                    returns.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error))
            return returns

    class LocalLauncher(_SweepMixin, base.LocalLauncher):
        pass
