"""Cost of provenance tracing: the provenance stage's scoring time (forward passes of T, S and D over
the outputs the evaluation wrote, models loaded included) ÷ that evaluation's own generation time
(the eval stage's wall time: generation and judging, the model loaded included), both computed in
one pipeline run (force=[eval,provenance]; every other stage from the stage cache). Goal: < 1.0.

    python bench/provenance_cost.py [overrides ...]     e.g. row=reasonbridge, experiment=micro

Run it alone: two torch processes on two cores slow each other down far more than twice.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._compose import compose_config  # noqa: E402
from reasonbridge.pipeline import Pipeline  # noqa: E402


def main(overrides: list[str]) -> None:
    cfg = compose_config(["provenance=trace", "progress=false", "force=[eval,provenance]", *overrides])
    result = Pipeline(cfg).run()
    evals = {n: r for n, r in result.stages.items() if n == "eval" or (n.startswith("eval/") and
                                                                       not n.endswith("/without_interventions"))}
    traced = {n: r for n, r in result.stages.items() if n == "provenance" or n.startswith("provenance/")}
    for name, ev in evals.items():
        prov = traced[name.replace("eval", "provenance", 1)]
        info = json.loads((prov.path / "provenance.json").read_text())
        print(f"{name}: {info['outputs']} outputs, {info['sentences']} sentences; generation {ev.seconds:.2f} s, "
              f"scoring {info['scoring_s']:.2f} s (T = {info['teacher']}); "
              f"ratio {info['scoring_s'] / ev.seconds:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
