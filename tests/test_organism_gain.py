"""End to end on the model organism: a trained row is clearly above the untrained base.

The demo's student (the released one; tests/test_organism.py pre-trains a micro student from
scratch), its curated set and a smaller held-out benchmark; the trained row is the method's own (hierarchical adapters, the
hierarchical loss, GII). The property is a gain whose paired 95% bootstrap interval excludes zero.
"""
from __future__ import annotations

import json

import pytest

from reasonbridge.pipeline import run_experiment
from reasonbridge.report.stats import delta_ci

from conftest import compose_config


def _scores(result) -> dict[str, float]:
    path = result.stages["eval"].path / "predictions" / "synthetic.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {str(r["id"]): float(r["correct"]) for r in rows}


@pytest.mark.slow
def test_the_reasonbridge_row_on_the_organism_beats_the_base(tmp_path, mlflow_uri):
    common = [f"paths.cache_dir={tmp_path / 'cache'}", "progress=false", "benchmark.size=150",
              "tracking.experiment=organism-gain"]
    base = run_experiment(compose_config(["row=base", *common]))
    trained = run_experiment(compose_config(["row=reasonbridge", *common]))
    gain = delta_ci({"0": _scores(trained)}, {"0": _scores(base)})
    assert gain.lo > 0, f"reasonbridge {trained.metrics} vs base {base.metrics}: gain {gain}"
