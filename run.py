#!/usr/bin/env python
"""reasonbridge: compose a config with Hydra and run the ReasonBridge pipeline.

  python run.py                              # the embedded default, end to end, one MLflow run
  python run.py --cfg job                    # show the composed config
  python run.py -m adapters=lora,none        # a sweep; shared stages are computed once
  python run.py -m experiment=demo           # the demo: rows `base` and `reasonbridge`
  python run.py stop_after=data              # stop after a stage (student|benchmark|pool|traces|data|train|eval)
  python run.py force=[train,eval]           # recompute stages even when cached

A mistake ends in one line on stderr that names the field or file and what to do, and an exit code
(reasonbridge/errors.py): 1 the config does not compose (Hydra's message), 2 bad input, 3 a server
cannot be reached, 130 Ctrl-C (finished stages are kept and reused). HYDRA_FULL_ERROR=1 shows the
traceback instead.
"""
import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from reasonbridge.config import register_configs
from reasonbridge.errors import (Interrupted, ServiceUnavailable, UserError, one_line, redeliver_swallowed_interrupts,
                                 traceback_wanted)

register_configs()
redeliver_swallowed_interrupts()
# peft still calls a transformers property that v5 deprecated; nothing for users to act on
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
log = logging.getLogger("reasonbridge")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        return _main(cfg)
    except KeyboardInterrupt as e:  # Ctrl-C outside the stages too (imports, logging the results)
        _exit(e, Interrupted.exit_code)


def _main(cfg: DictConfig) -> float | None:
    from reasonbridge import preemption
    from reasonbridge.evaluation.sandbox import SandboxUnavailable
    from reasonbridge.pipeline import run_experiment

    # SIGTERM / SIGUSR1 / SIGUSR2: checkpoint, then requeue (under submitit) or exit
    preemption.install()
    # the job's own output folder: a requeued job finds its MLflow run id here
    run_file = Path(HydraConfig.get().runtime.output_dir) / "mlflow_run.json"
    name = job_name(cfg)
    if cfg.tracking.run_name is None and name != cfg.tracking.row:
        cfg.tracking.run_name = name  # a sweep's runs are told apart in MLflow as on the console
    try:
        result = run_experiment(cfg, run_file=run_file)
    except (UserError, SandboxUnavailable) as e:  # SandboxUnavailable says what to install
        _exit(e, UserError.exit_code)
    except ServiceUnavailable as e:
        _exit(e, ServiceUnavailable.exit_code)
    for metric, value in sorted(result.metrics.items()):
        log.info("%s = %.4g", metric, value)
    reused = [stage for stage, res in result.stages.items() if res.hit]
    if reused:
        log.info("reused from the stage cache: %s", ", ".join(reused))
    accs = {k: v for k, v in sorted(result.metrics.items()) if k.startswith("acc/")}
    print(f"[{name}] " + ("  ".join(f"{k} = {v:.3f}" for k, v in accs.items()) if accs
                          else f"stopped after {result.stopped_after}")
          + f"  (MLflow run {result.run_id}, experiment {cfg.tracking.experiment!r})", flush=True)
    # the sweeper's return value: the selected benchmark's accuracy (the first listed one with `benchmarks`)
    acc = accs.get(f"acc/{cfg.benchmarks[0] if cfg.benchmarks else cfg.benchmark.name}")
    return acc


def _exit(error: BaseException, code: int):
    """One line on stderr and the exit code; the traceback only with HYDRA_FULL_ERROR=1."""
    if traceback_wanted():
        raise error
    text = " ".join(str(error).split()) if isinstance(error, Exception) and code == UserError.exit_code else one_line(error)
    print(("" if isinstance(error, KeyboardInterrupt) else "error: ") + text, file=sys.stderr, flush=True)
    sys.exit(code)


def job_name(cfg: DictConfig) -> str:
    """The run's row, and in a multirun the overrides that differ between its jobs (`adapters=lora`)."""
    label = sweep_label()
    row = cfg.tracking.row
    if not label:
        return row
    return label if row == "default" else f"{row} {label}"


def sweep_label() -> str | None:
    """`key=value` of each override this multirun sweeps over (on the command line or in the
    sweeper's params, e.g. `experiment=demo`'s rows), as this job has it; `row` names itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    swept = [f"{k}={v}" for k, v in (OmegaConf.select(hc, "sweeper.params") or {}).items()]
    multirun = Path(hc.sweep.dir) / "multirun.yaml"  # the sweeper's copy: the command line as typed
    if multirun.is_file():
        swept += list(OmegaConf.select(OmegaConf.load(multirun), "hydra.overrides.task") or [])
    parser = OverridesParser.create()
    try:
        varying = {o.get_key_element() for o in parser.parse_overrides(swept) if o.is_sweep_override()}
        mine = parser.parse_overrides(list(hc.overrides.task))
    except Exception:  # a sweep syntax this parser does not know: no label rather than no run
        return None
    parts = [f"{o.get_key_element()}={o.get_value_element_as_str()}" for o in mine
             if o.get_key_element() in varying and o.get_key_element() != "row"]
    return " ".join(parts) or None


if __name__ == "__main__":
    main()
