"""The `hydra/launcher=slurm` schema: hydra-submitit-launcher's, plus the sweep watch's settings.

Registered as `hydra/launcher/reasonbridge_slurm` (conf/hydra/launcher/slurm.yaml builds on it).
No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore

try:
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
except ImportError:  # without the `cluster` extra there is no SLURM launcher to configure
    SlurmQueueConf = None

if SlurmQueueConf is not None:
    @dataclass
    class ReasonbridgeSlurmConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.reasonbridge_launcher.launcher.SlurmLauncher"
        # null: 240 min, or the partition's MaxTime when that is lower
        timeout_min: Optional[int] = None  # type: ignore[assignment]
        mem_gb: Optional[float] = None  # type: ignore[assignment]
        # seconds between two looks at the tasks' states (one `scontrol show job` each)
        poll_interval_s: float = 15.0
        # check the request against the partition (scontrol, sbatch --test-only) before submitting
        check_request: bool = True

    ConfigStore.instance().store(group="hydra/launcher", name="reasonbridge_slurm", node=ReasonbridgeSlurmConf,
                                 provider="reasonbridge")
