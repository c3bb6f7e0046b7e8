"""Time `python -m reasonbridge.report` on a store of 1,000 runs (target: ≤ 15 s).

Fills a temporary MLflow store (sqlite + local artifacts) with synthetic finished runs shaped
like the pipeline's: the full flattened config as params (~150), tags `table`/`row`, metrics
acc/n/gen_tokens/train, a 20-step train/loss series, and a `predictions/<benchmark>.jsonl`
artifact of 100 problems. Rows, students and seeds spread over every table, so every run
is selected by some cell and its predictions are read. Filling is not timed; the build is
(in process cold, then warm, then `python -m reasonbridge.report` as a new process). Run from the repository root:

    python bench/report_speed.py [--runs 1000] [--problems 100] [--keep DIR]
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from bench._compose import compose_config  # noqa: E402
from reasonbridge.report.build import build_report  # noqa: E402
from reasonbridge.report.specs import load_specs  # noqa: E402
from reasonbridge.tracking.mlflow_run import flatten  # noqa: E402


def run_slots() -> list[tuple[str, str, dict]]:
    """(table tag, row tag, param overrides) for every row of every table definition."""
    slots = []
    for spec in load_specs(ROOT / "experiments"):
        for row in spec.rows:
            extra = {}
            if spec.kind == "scaling":
                name, k = row.row.rsplit("_", 1)
                extra = {"inference.name": name, "inference.max_interventions": k}
            slots.append((spec.sources[0], row.row, extra))
    return slots


def fill_store(uri: str, n_runs: int, problems: int, seed: int = 0) -> None:
    client = MlflowClient(uri)
    base = flatten({k: v for k, v in OmegaConf.to_container(compose_config(), resolve=True).items()
                    if k not in ("tracking", "paths", "progress")})
    experiments = {}
    rng = random.Random(seed)
    slots = run_slots()
    students = ["tiny", "smollm2_135m"]
    combos = itertools.product(range(10**6), students, slots)  # seed-major: every (row, student, seed) once
    with tempfile.TemporaryDirectory() as tmp:
        for i, (run_seed, model, (table, row, extra)) in zip(range(n_runs), combos):
            if table not in experiments:
                experiments[table] = client.create_experiment(table)
            run = client.create_run(experiments[table], run_name=row, tags={"table": table, "row": row})
            params = {**base, "seed": str(run_seed), "model.name": model, **extra}
            items = [Param(k, v[:6000]) for k, v in params.items()]
            for j in range(0, len(items), 100):
                client.log_batch(run.info.run_id, params=items[j:j + 100])
            p = rng.uniform(0.1, 0.6)
            correct = [rng.random() < p for _ in range(problems)]
            now = int(time.time() * 1000)
            metrics = {"acc/synthetic": sum(correct) / problems, "n/synthetic": problems, "gen_tokens/synthetic": 90.0,
                       "train/time_s": rng.uniform(30, 90), "params/trainable_pct": 0.3}
            points = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
            points += [Metric("train/loss", 2.0 / (s + 1), now, s) for s in range(20)]
            client.log_batch(run.info.run_id, metrics=points)
            pred = Path(tmp) / "predictions" / "synthetic.jsonl"
            pred.parent.mkdir(exist_ok=True)
            with pred.open("w") as f:
                for k, ok in enumerate(correct):
                    f.write(json.dumps({"id": f"synthetic-{run_seed}-{k}", "sample": 0, "correct": ok,
                                        "output": "Strategy: ... Step 1: 3 + 4 = 7 ... Final Answer: \\boxed{7}",
                                        "gold": "7", "tokens": 90}) + "\n")
            client.log_artifact(run.info.run_id, str(pred), "predictions")
            client.set_terminated(run.info.run_id)
            if (i + 1) % 100 == 0:
                print(f"  filled {i + 1}/{n_runs} runs", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the store here and keep it (an existing store there is reused)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{where / 'mlflow.db'}"
        import os
        os.chdir(where)  # the experiments' artifact root (./mlruns) lands in the temporary folder
        if args.keep and (where / "mlflow.db").exists():
            print(f"reusing the store in {where}")
        else:
            t0 = time.perf_counter()
            fill_store(uri, args.runs, args.problems)
            print(f"filled {args.runs} runs in {time.perf_counter() - t0:.1f}s (not part of the figure)")
        timings = []
        for attempt in ("cold", "warm"):
            t0 = time.perf_counter()
            summary = build_report(where / "reports", tracking_uri=uri)
            timings.append(time.perf_counter() - t0)
            cells = sum(1 for t in summary.tables for line in t.lines for c in line.cells if c.runs)
            print(f"report build ({attempt}): {timings[-1]:.2f}s for {summary.runs} runs, {cells} cells from runs")
        # what a user waits for: a new process, imports and all
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reasonbridge.report", "--tracking-uri", uri, "--out",
                        str(where / "reports-cli")], cwd=ROOT, check=True, capture_output=True)
        cli = time.perf_counter() - t0
        print(f"python -m reasonbridge.report (new process): {cli:.2f}s")
        print(f"report build, {args.runs} runs: {timings[0]:.2f}s in process, {cli:.2f}s from the command line "
              f"(target <= 15 s: {'met' if cli <= 15 else 'MISSED'})")


if __name__ == "__main__":
    main()
