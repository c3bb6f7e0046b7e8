"""Every option of every config group, every row and every experiment composes and validates,
and each default has one home (reasonbridge/config.py's schema; an option file states only what
it changes). Like torchtune's config tests: the real files, nothing mocked."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from reasonbridge.config import Config, group_options, validate
from tests.conftest import CONF, compose_config

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "row", "experiment"))
# What an option needs from the user before it can run (a file, an endpoint); validate() asks for it.
NEEDS = {"model=api": ["model.base_url=http://localhost:1/v1", "model.api_model=m", "adapters=none"],
         "pool=jsonl": ["pool.paths=[problems.jsonl]"],
         "teacher=hf_local": ["teacher.model=/models/teacher"]}


def _sweep_rows(experiment: str) -> list[str]:
    """The rows an experiment sweeps (hydra.sweeper.params.row), or the default row."""
    node = OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml")
    rows = OmegaConf.select(node, "hydra.sweeper.params.row")
    return rows.split(",") if rows else []


OPTIONS = [f"{g}={o}" for g in GROUPS for o in group_options(g)]
ROWS = [f"row={r}" for r in group_options("row")]
EXPERIMENT_ROWS = [(e, r) for e in group_options("experiment") for r in _sweep_rows(e) or [None]]


@pytest.mark.parametrize("option", OPTIONS)
def test_every_group_option_composes_and_validates(option):
    group, name = option.split("=")
    cfg = compose_config([option, *NEEDS.get(option, [])])
    validate(cfg)
    if group in ("teacher", "pool", "data", "adapters", "inference", "benchmark") and name != "full58k":
        assert cfg[group].name == name  # the option's `name` is its file's name (validate() checks names against files)


@pytest.mark.parametrize("row", ROWS)
def test_every_row_composes_validates_and_names_itself(row):
    cfg = compose_config([row])
    validate(cfg)
    assert cfg.tracking.row == row.split("=")[1]


@pytest.mark.parametrize("experiment, row", EXPERIMENT_ROWS)
def test_every_experiment_row_composes_into_its_mlflow_experiment(experiment, row):
    cfg = compose_config([f"experiment={experiment}", *([f"row={row}"] if row else [])])
    validate(cfg)
    assert cfg.tracking.experiment == experiment
    if row:
        assert cfg.tracking.row == row


def test_every_swept_row_exists():
    for experiment, row in EXPERIMENT_ROWS:
        assert row is None or row in group_options("row"), (experiment, row)


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _option_base(group: str, raw) -> dict:
    """What the option file starts from: the schema's group node, plus its `defaults` parent."""
    base = OmegaConf.structured(Config)[group]
    for parent in (raw.get("defaults") or []):
        if isinstance(parent, str) and parent != "_self_":
            base = OmegaConf.merge(base, OmegaConf.load(CONF / group / f"{parent}.yaml"))
    return OmegaConf.to_container(base)


@pytest.mark.parametrize("option", OPTIONS)
def test_an_option_file_sets_only_what_it_changes(option):
    """One home per default: a value equal to the schema's (or its parent option's) is a second copy."""
    group, name = option.split("=")
    rel = f"{group}/{name}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(CONF / rel)) or {}
    if group in raw:  # a `# @package _global_` preset: its own group's node
        raw = raw[group]
    base = dict(_leaves(_option_base(group, raw)))
    repeats = [key for key, value in _leaves({k: v for k, v in raw.items() if k != "defaults"})
               if key != "name" and key in base and base[key] == value]
    assert not repeats, f"conf/{rel} restates the schema's default for {repeats}"


def test_the_default_run_is_the_schema():
    """`python run.py` composes the schema's defaults: no option file of the default selection
    disagrees with config.py."""
    composed = OmegaConf.to_container(compose_config(), resolve=False)
    schema = OmegaConf.to_container(OmegaConf.structured(Config), resolve=False)
    differing = [key for key, value in _leaves(schema)
                 if dict(_leaves(composed)).get(key) != value]
    assert not differing, f"the default config differs from the schema at {differing}"


def test_group_options_are_the_files_of_the_group():
    assert group_options("data") == ("curated", "full", "full58k", "no_difficulty", "no_diversity", "no_quality",
                                     "provenance", "random")
    assert {"none", "budget_forcing", "gii"} == set(group_options("inference"))


def test_data_ablations_are_curated_minus_one_filter():
    curated = compose_config(["data=curated"]).data
    for name, flag in (("no_quality", "quality"), ("no_difficulty", "difficulty"), ("no_diversity", "diversity")):
        data = compose_config([f"data={name}"]).data
        assert data.name == name and data[flag] is False
        assert {k: v for k, v in data.items() if k not in ("name", flag)} == \
               {k: v for k, v in curated.items() if k not in ("name", flag)}
    assert compose_config(["data=curated", "data.size=50"]).data.size == 50
