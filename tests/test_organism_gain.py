"""End to end on the model organism: a trained row is clearly above the untrained base.

The demo's student (pre-trained from scratch here, ~1.5 min on 2 cores) and curated set, a smaller
held-out benchmark, and LoRA without test-time intervention, which learns to chain steps on this
student (docs/organism.md). The property is a gain whose paired 95% bootstrap interval excludes zero.
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
def test_lora_on_curated_organism_traces_beats_the_base(tmp_path, mlflow_uri):
    common = [f"paths.cache_dir={tmp_path / 'cache'}", "progress=false", "benchmark.size=150", "data.size=600",
              "tracking.experiment=organism-gain"]
    base = run_experiment(compose_config(["row=base", *common]))
    lora = run_experiment(compose_config(["row=lora", "adapters.r=16", "inference=none", *common]))
    gain = delta_ci({"0": _scores(lora)}, {"0": _scores(base)})
    assert gain.lo > 0, f"LoRA {lora.metrics} vs base {base.metrics}: gain {gain}"
