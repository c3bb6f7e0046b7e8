"""The claims table from recorded runs: verdicts follow the paired intervals."""
from __future__ import annotations

import csv

from mlflow.tracking import MlflowClient

from reasonbridge.report.build import build_report
from reasonbridge.report.claims import FAILS, HOLDS, NOISE, NOT_RUN, verdict_of
from reasonbridge.report.stats import Estimate
from tests.test_report import log_run, migrated_db, store, store_uri  # noqa: F401  (fixtures)

N = 200


def _answers(k: int, start: int = 0, n: int = N) -> list[bool]:
    """Problems start .. start+k-1 of n right (ids by position, so rows pair problem by problem);
    shifted windows disagree both ways, as two real rows do."""
    return [start <= i < start + k for i in range(n)]


def _claims(out) -> dict[str, dict]:
    with (out / "claims.csv").open() as f:
        return {r["claim"] + (f" ({r['model']})" if r["model"] else ""): r for r in csv.DictReader(f)}


def test_verdicts_follow_the_interval_and_its_threshold():
    assert verdict_of(Estimate(5, 1, 9)) == HOLDS
    assert verdict_of(Estimate(-5, -9, -1)) == FAILS
    assert verdict_of(Estimate(1, -2, 4)) == NOISE
    assert verdict_of(Estimate(0, 0, 4)) == NOISE  # an interval touching zero does not clear it
    assert verdict_of(Estimate(-1, -2.5, 0.5), threshold=-3) == HOLDS  # "close to": not worse by 3 points
    assert verdict_of(None) == NOT_RUN


def test_claims_from_recorded_runs(store, store_uri, tmp_path):
    client, scratch = store
    for seed in (0, 1):
        ids = [f"p{i}" for i in range(N)]  # the same problem ids per seed; problems generated per seed
        def log(table, row, k, model="tiny", start=0):
            log_run(client, scratch, table, row, _answers(k, start), seed=seed, ids=ids, model=model)
        log("table2", "reasonbridge", 160)
        log("table2", "random_data", 100)   # 30 points below: holds
        log("table2", "full_data", 162)     # 1 point above: close to, holds
        log("table2", "lora", 158, start=10)  # 1 point below, disagreeing on 18 problems: within noise
        log("table2", "no_strategic", 150, start=20)  # the largest of the three losses, not beyond noise
        log("table2", "no_tactical", 152)
        log("table2", "no_operational", 156)
        log("figure4", "gii_0", 150)
        log("figure4", "gii_4", 110)        # GII harms: does not hold
        log("figure4", "budget_forcing_4", 100, start=55)
        for model, (base, trained) in {"tiny_small": (40, 90), "tiny": (50, 120), "tiny_large": (60, 150)}.items():
            log("table1", "base", base, model)
            log("table1", "reasonbridge_no_gii", trained, model)
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=400)
    claims = _claims(out)
    assert claims["Curated selection beats random selection of the same size (tiny)"]["verdict"] == HOLDS
    assert float(claims["Curated selection beats random selection of the same size (tiny)"]["ours"]) == 30.0
    assert float(claims["Curated selection beats random selection of the same size (tiny)"]["paper"]) == 13.4
    close = next(v for k, v in claims.items() if k.startswith("The curated set is close"))
    assert close["verdict"] == HOLDS and float(close["ours"]) == -1.0
    assert claims["Hierarchical adapters beat LoRA at the same parameter budget (tiny)"]["verdict"] == NOISE
    strategic = next(v for k, v in claims.items() if k.startswith("Removing the strategic"))
    assert strategic["verdict"] == NOISE and float(strategic["ours"]) == 5.0
    assert claims["GII adds accuracy at 4 interventions (against 0) (tiny)"]["verdict"] == FAILS
    assert float(claims["GII adds accuracy at 4 interventions (against 0) (tiny)"]["paper"]) == 5.0
    bf = claims["GII beats budget forcing at 4 interventions (tiny)"]
    assert bf["verdict"] == NOISE and float(bf["paper"]) == 3.4  # +5 points on 200 problems: within noise
    sizes = claims["ReasonBridge gains hold across student sizes"]
    assert sizes["verdict"] == HOLDS and float(sizes["ours"]) == 25.0  # the smallest gain, tiny_small's
    assert float(sizes["paper"]) == 11.6  # the paper's smallest (DeepSeek-7B-Coder)
    assert not any(k.startswith("ReasonBridge gains carry over") and v["verdict"] != NOT_RUN for k, v in claims.items())
    index = (out / "README.md").read_text()
    assert index.index("## Claims") < index.index("## Tables")
    assert "**holds**" in index and "**within noise**" in index and "**does not hold**" in index
    assert "closed world" in index  # the organism's limits stand next to its verdicts
    run_ids = {r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])}
    assert set(claims["GII adds accuracy at 4 interventions (against 0) (tiny)"]["runs"].split()) <= run_ids
