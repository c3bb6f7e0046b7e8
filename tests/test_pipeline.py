"""End to end on the micro config: every stage, one MLflow run, and the cache."""
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from reasonbridge.io import read_jsonl
from reasonbridge.pipeline import run_experiment
from tests.conftest import ROOT, run_micro_sweep


def _artifacts(client, run_id, path=""):
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def test_micro_run_logs_everything_and_second_run_hits_cache(micro_cfg, mlflow_uri, tmp_path):
    cfg = micro_cfg()
    first = run_experiment(cfg)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(first.run_id)
    m, tags, params = run.data.metrics, run.data.tags, run.data.params
    assert run.info.status == "FINISHED"
    assert m["n/synthetic"] == 8 and m["gen_tokens/synthetic"] > 0  # acc/synthetic: checked against the predictions
    assert m["data/pool"] == 64 and m["data/selected"] == 64
    assert m["train/time_s"] > 0 and m["train/tokens_per_s"] > 0 and 0 < m["params/trainable_pct"] < 100
    loss = client.get_metric_history(first.run_id, "train/loss")
    assert len(loss) == 4  # 64 examples / batch 16, one epoch
    assert tags["row"] == "default" and tags["lib/transformers"] and tags["lib/torch"]
    assert params["adapters.name"] == "lora" and params["train.batch_size"] == "16"
    assert {"cache/student", "cache/train", "cache/eval"} <= set(tags)

    arts = _artifacts(client, first.run_id)
    assert {"config.yaml", "predictions/synthetic.jsonl", "data/manifest.json"} <= set(arts)
    preds = read_jsonl(client.download_artifacts(first.run_id, "predictions/synthetic.jsonl", str(tmp_path)))
    assert len(preds) == 8
    assert set(preds[0]) >= {"id", "prompt", "output", "extracted", "gold", "correct", "checker", "tokens"}
    assert m["acc/synthetic"] == sum(p["correct"] for p in preds) / 8
    assert m["gen_tokens/synthetic"] == sum(p["tokens"] for p in preds) / 8
    assert not any(k.startswith(("forced/", "steps/")) for k in m)  # diagnostics are opt-in

    diagnosed = run_experiment(micro_cfg("diagnostics=student"))
    assert {n for n, s in diagnosed.stages.items() if not s.hit} == {"diagnose"}  # nothing else recomputed
    dm = client.get_run(diagnosed.run_id).data.metrics
    assert {f"forced/{part}/synthetic" for part in ("strategy", "operand", "result")} <= set(dm)
    assert "steps/written/synthetic" in dm  # steps/true and steps/reference need a written operation
    assert all(0 <= dm[k] <= 1 for k in dm if k.startswith("forced/")) and dm["acc/synthetic"] == m["acc/synthetic"]

    second = run_experiment(cfg)
    assert all(stage.hit for stage in second.stages.values())
    assert second.metrics == first.metrics
    assert client.get_run(second.run_id).data.tags["cache_hit/train"] == "True"


def test_killed_run_resumes_from_finished_stages(micro_cfg, mlflow_uri, monkeypatch):
    cfg = micro_cfg("seed=1", "adapters=none")

    def killed(*a, **k):
        raise KeyboardInterrupt

    import reasonbridge.evaluation.evaluate as ev
    monkeypatch.setattr(ev, "evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    runs = MlflowClient(mlflow_uri).search_runs([MlflowClient(mlflow_uri).get_experiment_by_name("micro").experiment_id])
    assert runs[0].info.status == "KILLED"
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    resumed = run_experiment(cfg)
    hits = {name: s.hit for name, s in resumed.stages.items()}
    assert hits == {"student": True, "benchmark": True, "pool": True, "traces": True, "data": True, "eval": False}


def test_stop_after_stops(micro_cfg):
    result = run_experiment(micro_cfg("stop_after=data"))
    assert result.stopped_after == "data" and "train" not in result.stages and not result.metrics


def test_sweep_from_the_command_line_shares_stages(tmp_path, shared_cache, mlflow_uri):
    cache = tmp_path / "cache"
    proc, runs = run_micro_sweep("adapters=lora,none", f"paths.cache_dir={cache}", tmp_path=tmp_path,
                                 mlflow_uri=mlflow_uri)
    assert sorted(r.data.params["adapters.name"] for r in runs) == ["lora", "none"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for stage in ("student", "benchmark", "pool", "traces", "data"):
        computed = [r for r in runs if r.data.tags[f"cache_hit/{stage}"] == "False"]
        assert len(computed) == 1, stage
        assert len(list((cache / stage).glob("*/stage.json"))) == 1
    assert "acc/synthetic" in proc.stdout


def test_bad_config_value_exits_before_work(tmp_path, mlflow_uri):
    proc = subprocess.run([sys.executable, "run.py", "teacher.defect_rate=2", f"paths.cache_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "teacher.defect_rate" in proc.stderr + proc.stdout
    assert not any(tmp_path.iterdir())
