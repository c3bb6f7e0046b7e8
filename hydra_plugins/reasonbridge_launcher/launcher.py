"""hydra-submitit-launcher's launchers, adapted to reasonbridge sweeps.

Hydra accepts launcher classes only from the `hydra_plugins` package, so they live here;
conf/hydra/launcher/{slurm,local}.yaml select them through `_target_`. Over the originals:

- the MLflow store and every job's experiment are created once, before the jobs start
  (parallel jobs would otherwise race to create the SQLite schema or the experiment);
- on SLURM, job states fall back to `scontrol` when `sacct` fails (no accounting), so a job
  killed before writing its result is reported as failed instead of waited on forever;
- the sweep waits for every job, then fails naming each failed one (the original stops
  at the first failure while the other jobs keep running unobserved).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
except ImportError:  # without the `cluster` extra: no launchers (and no warning on every run)
    base = None

log = logging.getLogger(__name__)


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

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and len(job_overrides) > 0
        self._prepare_tracking(job_overrides)
        init_keys = {"max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in init_keys})
        baseparams = set(OmegaConf.structured(base.BaseQueueConf).keys())
        executor.update_parameters(**{k if k in baseparams else f"{self._EXECUTOR}_{k}": v
                                      for k, v in self.params.items() if k not in init_keys | {"submitit_folder"}})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
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
        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from reasonbridge.slurm import use_scontrol_fallback

            use_scontrol_fallback()
            return super().launch(job_overrides, initial_job_idx)

    class LocalLauncher(_SweepMixin, base.LocalLauncher):
        pass
