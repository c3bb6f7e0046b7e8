"""Compose the project's real config tree (as `python run.py <overrides>` would) for bench scripts."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from reasonbridge.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()


def compose_config(overrides: list[str] | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])
