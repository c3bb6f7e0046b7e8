"""End to end on the model organism: a trained row is clearly above the untrained base, and its
guided interventions help the same trained student.

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


def _scores(result, stage: str = "eval") -> dict[str, float]:
    path = result.stages[stage].path / "predictions" / "synthetic.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {str(r["id"]): float(r["correct"]) for r in rows}


@pytest.fixture(scope="module")
def organism_rows(tmp_path_factory):
    """The base and the `reasonbridge` row (GII at 4 interventions; the pipeline also evaluates the
    same trained student without interventions) on 150 held-out problems, trained once."""
    import os
    tmp = tmp_path_factory.mktemp("organism-gain")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    common = [f"paths.cache_dir={tmp / 'cache'}", "progress=false", "benchmark.size=150",
              "tracking.experiment=organism-gain"]
    try:
        yield run_experiment(compose_config(["row=base", *common])), \
            run_experiment(compose_config(["row=reasonbridge", *common]))
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.mark.slow
def test_the_reasonbridge_row_on_the_organism_beats_the_base(organism_rows):
    base, trained = organism_rows
    gain = delta_ci({"0": _scores(trained)}, {"0": _scores(base)})
    assert gain.lo > 0, f"reasonbridge {trained.metrics} vs base {base.metrics}: gain {gain}"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 22: on organism v10, GII at 4 costs the hierarchical-adapter student "
                   "1-3 points (docs/organism.md); when this passes, GII helps: drop the mark")
def test_guided_interventions_help_the_trained_student_they_intervene_on(organism_rows):
    _, trained = organism_rows
    plain = next(label for label in trained.stages if label.endswith("/without_interventions"))
    gain = delta_ci({"0": _scores(trained)}, {"0": _scores(trained, plain)})
    assert gain.lo > 0, f"GII {trained.metrics}: gain over no intervention {gain}"
