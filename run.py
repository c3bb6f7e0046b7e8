#!/usr/bin/env python
"""reasonbridge: compose a config with Hydra and run the ReasonBridge pipeline.

  python run.py                              # the embedded default, end to end, one MLflow run
  python run.py --cfg job                    # show the composed config
  python run.py -m adapters=lora,none        # a sweep; shared stages are computed once
  python run.py -m experiment=demo           # the demo: rows `base` and `reasonbridge`
  python run.py stop_after=data              # stop after a stage (student|benchmark|pool|traces|data|train|eval)
  python run.py force=[train,eval]           # recompute stages even when cached
"""
import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from reasonbridge.config import ConfigError, register_configs
from reasonbridge.io import DataError

register_configs()
# peft still calls a transformers property that v5 deprecated; nothing for users to act on
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
log = logging.getLogger("reasonbridge")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from reasonbridge import preemption
    from reasonbridge.pipeline import run_experiment

    # SIGTERM / SIGUSR1 / SIGUSR2: checkpoint, then requeue (under submitit) or exit
    preemption.install()
    # the job's own output folder: a requeued job finds its MLflow run id here
    run_file = Path(HydraConfig.get().runtime.output_dir) / "mlflow_run.json"
    from reasonbridge.evaluation.sandbox import SandboxUnavailable
    from reasonbridge.tracking.mlflow_run import TrackingUnavailable
    try:
        result = run_experiment(cfg, run_file=run_file)
    except (ConfigError, DataError, SandboxUnavailable) as e:
        log.error("%s", e)
        sys.exit(2)
    except TrackingUnavailable as e:
        log.error("%s", e)
        sys.exit(3)
    for name, value in sorted(result.metrics.items()):
        log.info("%s = %.4g", name, value)
    accs = {k: v for k, v in sorted(result.metrics.items()) if k.startswith("acc/")}
    print(f"[{cfg.tracking.row}] " + ("  ".join(f"{k} = {v:.3f}" for k, v in accs.items()) if accs
                                      else f"stopped after {result.stopped_after}")
          + f"  (MLflow run {result.run_id}, experiment {cfg.tracking.experiment!r})", flush=True)
    # the sweeper's return value: the selected benchmark's accuracy (the first listed one with `benchmarks`)
    acc = accs.get(f"acc/{cfg.benchmarks[0] if cfg.benchmarks else cfg.benchmark.name}")
    return acc


if __name__ == "__main__":
    main()
