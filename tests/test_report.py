"""The report builder on MLflow stores: synthetic runs logged through the API (fast), and runs
made by the micro config (end to end)."""
from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from reasonbridge.report.__main__ import main as report_main
from reasonbridge.report.build import build_report
from reasonbridge.report.stats import delta_ci, mean_ci

TABLES = ("table1", "table2", "table3", "table4", "scaling")


def log_run(client: MlflowClient, scratch: Path, table: str, row: str, correct: list[bool], *, model: str = "tiny",
            seed: int = 0, bench: str = "synthetic", predictions: bool = True, status: str = "FINISHED",
            extra: dict | None = None, params: dict | None = None, ids: list[str] | None = None) -> str:
    """One run shaped like the pipeline's: tags, params, metrics and the predictions artifact."""
    exp = client.get_experiment_by_name(table)
    exp_id = exp.experiment_id if exp else client.create_experiment(table, artifact_location=str(scratch / "artifacts"))
    run = client.create_run(exp_id, run_name=row, tags={"table": table, "row": row})
    rid = run.info.run_id
    all_params = {"model.name": model, "seed": str(seed), "inference.num_samples": "1", **(params or {})}
    n = len(correct)
    metrics = {f"acc/{bench}": sum(correct) / n, f"n/{bench}": n, **(extra or {})}
    client.log_batch(rid, params=[Param(k, v) for k, v in all_params.items()],
                     metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items()])
    if predictions:
        path = scratch / rid / f"{bench}.jsonl"
        path.parent.mkdir(parents=True)
        ids = ids or [f"{bench}-{seed}-{i}" for i in range(n)]  # default: each seed its own problems
        path.write_text("".join(json.dumps({"id": pid, "sample": 0, "correct": ok}) + "\n"
                                for pid, ok in zip(ids, correct)))
        client.log_artifact(rid, str(path), "predictions")
    client.set_terminated(rid, status=status)
    time.sleep(0.002)  # distinct start times: the latest run per row and seed is well defined
    return rid


def cells(out: Path, table: str) -> dict[tuple[str, str, str], dict]:
    with (out / f"{table}.csv").open() as f:
        return {(r["model"], r["row"] or r["label"], r["column"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, created once: creating one costs seconds (schema migrations)."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store_uri(migrated_db, tmp_path, monkeypatch) -> str:
    """A fresh store per test (a copy of the empty one), also as MLFLOW_TRACKING_URI."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def store(store_uri, tmp_path):
    return MlflowClient(store_uri), tmp_path / "scratch"


def test_empty_store_gives_every_table_with_not_run_and_the_paper_numbers(store_uri, tmp_path):
    out = tmp_path / "reports"
    summary = build_report(out, tracking_uri=store_uri, n_boot=200)
    assert summary.runs == 0
    for name in TABLES:
        assert {p.name for p in out.glob(f"{name}.*")} >= {f"{name}.md", f"{name}.tex", f"{name}.csv"}
    assert (out / "scaling.png").stat().st_size > 0 and (out / "scaling.pdf").stat().st_size > 0
    t1 = cells(out, "table1")
    assert t1[("qwen2.5_coder_14b", "reasonbridge", "aime24")]["text"] == "not run"
    assert t1[("qwen2.5_coder_14b", "reasonbridge", "aime24")]["paper"] == "46.7"
    assert t1[("", "Claude-3.7-Sonnet", "math500")]["paper"] == "89.0"
    md = (out / "table2.md").read_text()
    assert "| Qwen2.5-14B-Coder | w/o Diversity Sampling | not run | 33.3 | not run | 84.8 | not run | 50.5 |" in md
    assert "\\begin{tabular}" in (out / "table2.tex").read_text()
    assert "No runs yet." in (out / "README.md").read_text()


def test_cells_intervals_deltas_and_run_ids(store, store_uri, tmp_path):
    client, scratch = store
    thirty_of_forty = [i < 30 for i in range(40)]
    log_run(client, scratch, "table2", "reasonbridge", [False] * 40)  # an older run of the same row and seed
    full = log_run(client, scratch, "table2", "reasonbridge", thirty_of_forty)
    log_run(client, scratch, "table2", "reasonbridge", [True] * 40, status="FAILED")  # never reported
    same = log_run(client, scratch, "table2", "lora", thirty_of_forty)
    worse = log_run(client, scratch, "table2", "no_quality", [False] * 40)
    seeds = [log_run(client, scratch, "table2", "no_tactical", thirty_of_forty, seed=s) for s in (0, 1)]
    no_artifact = log_run(client, scratch, "table2", "no_strategic", [i < 20 for i in range(40)], predictions=False)
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=1000)
    t2 = cells(out, "table2")

    ref = t2[("tiny", "reasonbridge", "synthetic")]
    assert float(ref["ours"]) == pytest.approx(75.0) and ref["run_ids"] == full and ref["seeds"] == "1"
    assert ref["interval_from"] == "predictions" and ref["n_problems"] == "40"
    lo, hi = float(ref["ci_lo"]), float(ref["ci_hi"])
    assert 55 < lo < 70 and 80 < hi < 95  # binomial standard error at 40 problems is 6.8 points
    assert t2[("tiny", "reasonbridge", "aime24")]["text"] == "not run"
    assert t2[("tiny", "reasonbridge", "aime24")]["paper"] == "46.7"  # the paper's Qwen2.5-14B-Coder number
    identical = t2[("tiny", "lora", "synthetic")]
    assert identical["run_ids"] == same and float(identical["delta"]) == 0 and identical["within_noise"] == "True"
    drop = t2[("tiny", "no_quality", "synthetic")]
    assert drop["run_ids"] == worse and float(drop["delta"]) == pytest.approx(-75.0) and drop["within_noise"] == "False"
    two = t2[("tiny", "no_tactical", "synthetic")]
    assert two["seeds"] == "2" and set(two["run_ids"].split()) == set(seeds)
    # the reference ran seed 0 only: the Δ pairs on seed 0, says so (‡) and names its seeds
    assert two["delta_seeds"] == "0" and two["delta_paired"] == "True" and float(two["delta"]) == 0
    assert t2[("tiny", "no_quality", "synthetic")]["delta_seeds"] == "0"
    rebuilt = t2[("tiny", "no_strategic", "synthetic")]
    assert rebuilt["interval_from"] == "acc/n" and float(rebuilt["ours"]) == pytest.approx(50.0)
    assert rebuilt["run_ids"] == no_artifact
    assert t2[("tiny", "full_ft", "synthetic")]["text"] == "not run"

    md = (out / "table2.md").read_text()
    # no run has the paper's benchmarks: only their paper values, not a column of "not run"
    assert "| AIME 2024 (paper; no run) | MATH 500 (paper; no run) |" in md
    assert "| tiny | w/ Standard LoRA | 41.7 | 86.6 | 53.5 | 75.0 ± " in md
    assert "(Δ+0.0†)" in md and "(Δ−75.0)" in md
    assert "(Δ+0.0†‡)" in md and "‡ Δ over the common seeds only" in md
    assert "(Δ−25.0§)*" in md and "§ Δ unpaired" in md  # rebuilt from acc/n: nothing to pair on
    assert "synthetic: problems generated per seed, resampled within their seed" in md
    assert "Thinking budget: in every run, budget_end not recorded." in md
    index = (out / "README.md").read_text()
    for rid in (full, same, worse, no_artifact, *seeds):
        assert f"/runs/{rid}" in index


def test_a_benchmark_file_resampled_once_across_seeds_and_paired_on_common_seeds(store, store_uri, tmp_path,
                                                                               capsys):
    """AIME-like: the same 30 problems under every seed. Three identical seeds give the one-seed
    interval; a row run on one seed is compared on that seed alone, and the table and the gain
    command say so."""
    from reasonbridge.report.gain import main as gain_main
    client, scratch = store
    ids = [f"aime-{i}" for i in range(30)]
    answers = [i % 3 != 0 for i in range(30)]  # 20 of 30
    for seed in (0, 1, 2):
        log_run(client, scratch, "table2", "reasonbridge", answers, seed=seed, bench="aime24", ids=ids,
                params={"inference.budget_end": "answer"})
        log_run(client, scratch, "demo", "reasonbridge", answers, seed=seed, bench="aime24", ids=ids)
    worse = [ok and i < 20 for i, ok in enumerate(answers)]
    log_run(client, scratch, "table2", "lora", worse, seed=0, bench="aime24", ids=ids,
            params={"inference.budget_end": "answer"})
    log_run(client, scratch, "demo", "base", worse, seed=0, bench="aime24", ids=ids)
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=500, tables=["table2"])
    t2 = cells(out, "table2")
    one = mean_ci({"0": dict(zip(ids, map(float, answers)))}, n_boot=500).scaled(100)
    cell = t2[("tiny", "reasonbridge", "aime24")]
    assert cell["seeds"] == "3" and (float(cell["ci_lo"]), float(cell["ci_hi"])) == pytest.approx((one.lo, one.hi))
    lora = t2[("tiny", "lora", "aime24")]
    assert lora["delta_seeds"] == "0" and float(lora["delta"]) == pytest.approx(100 * -7 / 30)
    md = (out / "table2.md").read_text()
    assert "(Δ−23.3‡)" in md and "gpqa_diamond: the same problems under every seed" in md
    assert "Thinking budget: in every run, the answer is forced at the thinking budget" in md

    assert gain_main(["--table", "demo", "--benchmark", "aime24", "--bootstrap", "500"]) == 0
    printed = capsys.readouterr().out
    assert "reasonbridge: accuracy 0.667" in printed and "seed 2: 0.667" in printed
    assert "gain: +23.3 points" in printed and "seeds 1, 2 left out of the gain" in printed


def test_table1_takes_demo_runs_and_adds_a_block_for_students_the_paper_lacks(store, store_uri, tmp_path):
    client, scratch = store
    base = log_run(client, scratch, "demo", "base", [i < 4 for i in range(20)])
    rb = log_run(client, scratch, "demo", "reasonbridge", [i < 9 for i in range(20)])
    log_run(client, scratch, "table1", "base", [True] * 10, model="qwen2.5_coder_14b", bench="aime24")
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=200, tables=["table1"])
    t1 = cells(out, "table1")
    assert t1[("tiny", "base", "synthetic")]["run_ids"] == base
    assert t1[("tiny", "reasonbridge", "synthetic")]["run_ids"] == rb
    assert float(t1[("tiny", "reasonbridge", "synthetic")]["delta"]) == pytest.approx(25.0)
    assert t1[("tiny", "reasonbridge_no_gii", "synthetic")]["text"] == "not run"
    assert t1[("tiny", "base", "aime24")]["paper"] == ""  # the paper has no tiny student
    qwen = t1[("qwen2.5_coder_14b", "base", "aime24")]
    assert float(qwen["ours"]) == 100.0 and qwen["paper"] == "30.0"
    assert t1[("qwen2.5_coder_14b", "base", "math500")]["text"] == "not run"
    assert not (out / "table2.md").exists()  # --tables builds only what it names


def test_scaling_table_and_figure(store, store_uri, tmp_path):
    client, scratch = store
    for strategy in ("gii", "budget_forcing"):
        for k in (0, 2, 4, 6):
            log_run(client, scratch, "figure4", f"{strategy}_{k}", [i < 10 + k for i in range(30)],
                    params={"inference.name": strategy, "inference.max_interventions": str(k)})
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=200, tables=["scaling"])
    sc = cells(out, "scaling")
    assert [round(float(sc[("tiny", f"gii_{k}", "synthetic")]["ours"]), 1) for k in (0, 2, 4, 6)] == [33.3, 40.0, 46.7, 53.3]
    assert sc[("tiny", "gii_2", "aime24")]["paper"] == "45.0" and sc[("tiny", "gii_6", "aime24")]["paper"] == ""
    assert (out / "scaling.png").stat().st_size > 10_000 and (out / "scaling.pdf").exists()


def test_table3_from_training_runs(store, store_uri, tmp_path):
    client, scratch = store
    for seed, seconds in ((0, 60.0), (1, 90.0)):
        log_run(client, scratch, "table3", "reasonbridge_no_gii", [True], seed=seed,
                extra={"train/time_s": seconds, "params/trainable_pct": 1.25},
                params={"adapters.name": "full", "adapters.r": "64", "train.lr": "0.005"})
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=200, tables=["table3"])
    t3 = cells(out, "table3")
    assert t3[("tiny", "reasonbridge_no_gii", "adapter_dim")]["text"] == "64 (full)"
    assert t3[("tiny", "reasonbridge_no_gii", "learning_rate")]["text"] == "5e-3"
    assert float(t3[("tiny", "reasonbridge_no_gii", "params_modified_pct")]["ours"]) == pytest.approx(1.25)
    hours = t3[("tiny", "reasonbridge_no_gii", "training_hours")]
    assert float(hours["ours"]) == pytest.approx(75.0 / 3600, abs=1e-6) and hours["seeds"] == "2"
    assert t3[("qwen2.5_coder_14b", "reasonbridge_no_gii", "training_hours")]["paper"] == "1.2"
    assert "| tiny | tiny | 64 (full) | — | 1.25% | — | 5e-3 | — | 75 s ± " in (out / "table3.md").read_text()


def test_table3_shows_each_trained_rows_share_and_loss(store, store_uri, tmp_path):
    client, scratch = store
    for row, name, loss_terms in (("lora", "lora", {"train/loss_out": 0.4}), ("full_ft_sft", "full_ft", {})):
        log_run(client, scratch, "table2", row, [True], extra={"train/time_s": 30.0, "params/trainable_pct": 2.5,
                                                                "train/loss": 0.5, **loss_terms},
                params={"adapters.name": name, "adapters.r": "auto", "train.lr": "0.005"})
    out = tmp_path / "reports"
    build_report(out, tracking_uri=store_uri, n_boot=200, tables=["table3"])
    t3 = cells(out, "table3")
    assert t3[("tiny", "lora", "adapter_dim")]["text"] == "auto (lora), hierarchical loss"
    assert t3[("tiny", "full_ft_sft", "adapter_dim")]["text"] == "all weights, SFT loss"
    assert float(t3[("tiny", "lora", "params_modified_pct")]["ours"]) == pytest.approx(2.5)
    assert "| tiny | tiny, w/ Standard LoRA, plain SFT loss | not run |" in (out / "table3.md").read_text()


def test_bootstrap_matches_a_direct_resampling():
    import numpy as np
    rng = np.random.default_rng(3)
    scores = (rng.random(60) < 0.4).astype(float)
    direct = [scores[rng.integers(60, size=60)].mean() for _ in range(4000)]
    est = mean_ci({"0": {str(i): v for i, v in enumerate(scores)}}, n_boot=4000, seed=1)
    assert est.value == pytest.approx(scores.mean())
    assert est.lo == pytest.approx(np.percentile(direct, 2.5), abs=0.02)
    assert est.hi == pytest.approx(np.percentile(direct, 97.5), abs=0.02)
    # a paired difference of identical rows has no spread; unrelated problems are bootstrapped independently
    same = {"0": {str(i): s for i, s in enumerate(scores)}}
    d = delta_ci(same, same)
    assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0)
    other = {"0": {f"x{i}": s for i, s in enumerate(scores)}}
    assert delta_ci(same, other).hi > 0.1


def test_cli_builds_and_rejects_a_broken_definition(store_uri, tmp_path, capsys):
    assert report_main(["--out", str(tmp_path / "r"), "--tables", "table4", "--bootstrap", "200"]) == 0
    assert "report: 0 runs" in capsys.readouterr().out and (tmp_path / "r" / "table4.md").exists()
    bad = tmp_path / "experiments"
    bad.mkdir()
    (bad / "table4.yaml").write_text("title: x\nkind: accuracy\n")
    assert report_main(["--experiments", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert "table4.yaml: missing field 'columns'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()  # nothing written


def test_report_from_micro_runs(micro_cfg, mlflow_uri, tmp_path):
    """Runs made by the micro config (tagged like `python run.py -m experiment=table1`) fill Table 1 and Table 3."""
    from reasonbridge.pipeline import run_experiment
    results = {row: run_experiment(micro_cfg(f"row={row}", "tracking.table=table1"))
               for row in ("base", "reasonbridge_no_gii")}
    out = tmp_path / "reports"
    build_report(out, tracking_uri=mlflow_uri, n_boot=500)
    t1 = cells(out, "table1")
    for row, result in results.items():
        cell = t1[("tiny", row, "synthetic")]
        assert cell["run_ids"] == result.run_id and cell["interval_from"] == "predictions"
        assert float(cell["ours"]) == pytest.approx(100 * result.metrics["acc/synthetic"])
        assert float(cell["ci_lo"]) <= float(cell["ours"]) <= float(cell["ci_hi"]) and cell["n_problems"] == "8"
    assert t1[("tiny", "reasonbridge_no_gii", "synthetic")]["delta"] != ""
    t3 = cells(out, "table3")
    trained = t3[("tiny", "reasonbridge_no_gii", "training_hours")]
    assert trained["run_ids"] == results["reasonbridge_no_gii"].run_id and float(trained["ours"]) > 0
    assert t3[("tiny", "reasonbridge_no_gii", "adapter_dim")]["text"] == "64 (full), hierarchical loss"
    assert 0 < float(t3[("tiny", "reasonbridge_no_gii", "params_modified_pct")]["ours"]) < 100
    assert results["base"].run_id in (out / "README.md").read_text()


@pytest.mark.slow
def test_command_line_table_sweep_then_report(tmp_path, shared_cache, mlflow_uri):
    """Rows swept as a list from the command line, tagged like `experiment=table2`, fill Table 2."""
    from tests.conftest import run_micro_sweep
    rows = ["reasonbridge", "no_quality", "lora"]
    _, runs = run_micro_sweep(f"row={','.join(rows)}", "tracking.table=table2", f"paths.cache_dir={shared_cache}",
                              tmp_path=tmp_path, mlflow_uri=mlflow_uri)
    assert sorted(r.data.tags["row"] for r in runs) == sorted(rows)  # one run per row, not a product
    out = tmp_path / "reports"
    build_report(out, tracking_uri=mlflow_uri, n_boot=500, tables=["table2"])
    t2 = cells(out, "table2")
    by_row = {r.data.tags["row"]: r for r in runs}
    for row in rows:
        cell = t2[("tiny", row, "synthetic")]
        assert cell["run_ids"] == by_row[row].info.run_id
        assert float(cell["ours"]) == pytest.approx(100 * by_row[row].data.metrics["acc/synthetic"])
    assert t2[("tiny", "no_quality", "synthetic")]["delta"] != "" and t2[("tiny", "full_ft", "synthetic")]["text"] == "not run"
