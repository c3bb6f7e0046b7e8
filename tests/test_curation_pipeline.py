"""Curation inside the pipeline: the six data variants from one sweep, metrics, dataset input, failures."""
import json
import socket

import pytest
from mlflow.tracking import MlflowClient

from reasonbridge.errors import ServiceUnavailable
from reasonbridge.pipeline import run_experiment
from tests.conftest import ROOT, compose_config, run_micro_sweep

VARIANTS = ["curated", "random", "full", "no_quality", "no_difficulty", "no_diversity"]


def test_data_group_has_every_variant_and_full58k_is_full():
    for name in VARIANTS:
        assert compose_config([f"data={name}"]).data.name == name
    alias, full = compose_config(["data=full58k"]).data, compose_config(["data=full"]).data
    assert alias == full and alias.size is None
    curated = compose_config(["data=curated"]).data
    assert (curated.quality, curated.difficulty, curated.diversity, curated.size) == (True, True, True, 600)
    assert [r.source for r in curated.references] == ["student"]  # the embedded default: the base student


def test_unreachable_teacher_fails_before_any_work(micro_cfg, mlflow_uri):
    """Nothing listens on the teacher's port: refused before any stage or MLflow run (a teacher that
    fails mid-run: tests/test_user_errors.py)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = micro_cfg("teacher=openai", f"teacher.base_url=http://127.0.0.1:{port}/v1", "teacher.api_key_env=null",
                    "teacher.max_retries=1", "teacher.backoff_s=0.01", "stop_after=curate")
    with pytest.raises(ServiceUnavailable, match=rf"teacher.base_url=http://127\.0\.0\.1:{port}/v1: cannot connect"):
        run_experiment(cfg)
    assert MlflowClient(mlflow_uri).get_experiment_by_name("micro") is None  # no run was opened


@pytest.mark.slow
def test_sweep_builds_all_six_variants_querying_each_problem_once(tmp_path, shared_cache, mlflow_uri):
    # a teacher setting no other test uses, so its traces stage and ledger start empty
    _, runs = run_micro_sweep(f"data={','.join(VARIANTS)}", "stop_after=curate", "teacher.defect_rate=0.3",
                              f"paths.cache_dir={shared_cache}", tmp_path=tmp_path, mlflow_uri=mlflow_uri)
    by_variant = {r.data.params["data.name"]: r for r in runs}
    assert sorted(by_variant) == sorted(VARIANTS)
    m = {name: r.data.metrics for name, r in by_variant.items()}
    pool = m["full"]["data/pool"]
    assert pool == 64 and all(x["data/pool"] == pool for x in m.values())
    assert sum(x["teacher/queries"] for x in m.values()) == pool  # one query per unique problem, whole sweep
    assert all(x["teacher/queries"] + x["teacher/cache_hits"] == pool and x["teacher/cost_usd"] == 0 for x in m.values())
    assert m["full"]["data/selected"] == pool and m["random"]["data/selected"] == 34
    assert m["curated"]["data/after_quality"] < pool  # defect_rate=0.3 leaves the quality filter work to do
    assert m["curated"]["data/after_quality"] == m["no_difficulty"]["data/after_quality"]
    assert m["no_quality"]["data/after_quality"] == pool
    for name in ("curated", "no_quality", "no_difficulty", "no_diversity"):
        assert m[name]["data/selected"] == 34 and m[name]["data/after_difficulty"] <= m[name]["data/after_quality"]
    curated = by_variant["curated"]
    assert curated.data.tags["stopped_after"] == "data"
    assert "reference/tiny_strong/solved" in m["curated"] and "reference/student/solved" in m["curated"]
    inputs = curated.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "reason-curated"
    assert json.loads(inputs[0].dataset.profile)["num_rows"] == 34
    client = MlflowClient(mlflow_uri)
    manifest = json.loads(open(client.download_artifacts(curated.info.run_id, "data/manifest.json", str(tmp_path))).read())
    assert manifest["counts"]["selected"] == 34 and manifest["rejections"]["by_reason"]
    assert inputs[0].dataset.digest == manifest["selected_sha256"][:32]
    selected = client.download_artifacts(curated.info.run_id, "data/selected.jsonl", str(tmp_path))
    assert sum(1 for _ in open(selected)) == 34


def test_jsonl_pool_stage_on_real_files(micro_cfg, mlflow_uri):
    from reasonbridge.config import ConfigError, validate
    bench = (ROOT / ".." / "shared" / "benchmarks").resolve()
    cfg = micro_cfg("pool=jsonl", f"pool.paths=[{bench}/math500.jsonl,{bench}/aime24.jsonl]",
                    "pool.fields={id:id,problem:problem,answer:answer,domain:subject}", "stop_after=pool")
    with pytest.raises(Exception, match=r"math500\.jsonl:1: missing field 'id'"):
        run_experiment(cfg)  # MATH-500 calls its id `unique_id`
    cfg = micro_cfg("pool=jsonl", f"pool.paths=[{bench}/math500.jsonl]", "pool.size=1000",
                    "pool.fields={id:unique_id,problem:problem,answer:answer,domain:subject}", "stop_after=pool")
    result = run_experiment(cfg)
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    assert metrics["data/loaded"] == 500 and metrics["data/exact_duplicates"] == 0
    assert metrics["data/pool"] == 500 - metrics["data/near_duplicates"] - metrics["data/decontaminated"]
    problems = [json.loads(line) for line in (result.stages["pool"].path / "problems.jsonl").open()]
    assert all(p["domain"] for p in problems) and problems[0]["source"] == "math500"
    with pytest.raises(ConfigError, match="pool.domain_classifier"):
        validate(micro_cfg("pool=jsonl", "pool.paths=[x.jsonl]", "pool.domain_classifier=teacher"))


def test_run_killed_during_traces_requeries_nothing_that_finished(micro_cfg, mlflow_uri, monkeypatch):
    from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
    cfg = micro_cfg("teacher.defect_rate=0.05", "stop_after=traces")
    calls, original = [], SymbolicTeacher.generate

    def generate(self, problem, kill_at=[20]):
        if problem["id"].startswith("pool-"):  # the student build writes traces for its tokenizer too
            calls.append(problem["id"])
            if len(calls) == kill_at[0]:
                raise KeyboardInterrupt
        return original(self, problem)

    monkeypatch.setattr(SymbolicTeacher, "generate", generate)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    calls.clear()
    generate.__defaults__[0][0] = -1  # no kill this time
    result = run_experiment(cfg)
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    assert len(calls) == 64 - 19 and metrics["teacher/queries"] == 45 and metrics["teacher/cache_hits"] == 19
