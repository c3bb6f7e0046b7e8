"""Test-time intervention through the pipeline (micro config) and from the command line."""

import pytest

from reasonbridge.config import ConfigError, validate
from reasonbridge.io import read_jsonl
from reasonbridge.pipeline import Pipeline, run_experiment
from tests.conftest import compose_config, run_micro_sweep


def _predictions(result):
    return read_jsonl(result.stages["eval"].path / "predictions" / "synthetic.jsonl")


def test_gii_eval_records_interventions_and_the_conditioned_text(micro_cfg):
    result = run_experiment(micro_cfg("adapters=none", "inference=gii", "inference.max_interventions=2"))
    m, preds = result.metrics, _predictions(result)
    assert len(preds) == 8 and m["n/synthetic"] == 8
    assert m["interventions/synthetic"] == sum(sum(p["interventions"].values()) for p in preds) / 8
    assert m["budget_exhausted/synthetic"] == sum(p["budget_exhausted"] for p in preds) / 8
    assert all(sum(p["interventions"].values()) <= 2 for p in preds)  # max_interventions per problem
    for p in preds:
        assert set(p["interventions"]) == {"extension", "redirection", "verification"}
        assert p["conditioned_on"].startswith(p["prompt"]) and p["stop_tokens"] == ["<|end|>"]
        assert p["end_of_thinking"] == ["Final Answer:", "<|end|>"]
        # micro thinking budget: max_new_tokens 48 - answer_tokens 32
        if p["budget_exhausted"]:
            assert "Final Answer:" in p["conditioned_on"][len(p["prompt"]):]
        assert p["tokens"] <= 48


def test_none_keeps_the_plain_records_and_metrics(micro_cfg):
    result = Pipeline(micro_cfg("adapters=none")).run()
    assert not any(k.startswith("interventions/") for k in result.metrics)
    p = _predictions(result)[0]
    assert p["interventions"] == {} and p["states"] == [] and p["conditioned_on"].startswith(p["prompt"])


def test_samples_per_problem(micro_cfg):
    cfg = micro_cfg("adapters=none", "inference.temperature=1.0", "inference.num_samples=2", "inference.top_p=0.9")
    result = Pipeline(cfg).run()
    preds = _predictions(result)
    assert len(preds) == 16 and [p["sample"] for p in preds[:4]] == [0, 1, 0, 1]
    assert result.metrics["n/synthetic"] == 8
    assert result.metrics["acc/synthetic"] == sum(p["correct"] for p in preds) / 16


@pytest.mark.parametrize("overrides,field", [
    (["inference=none", "inference.max_interventions=2"], "inference.max_interventions"),
    (["inference=gii", "inference.max_interventions=-1"], "inference.max_interventions"),
    (["inference.num_samples=4"], "inference.num_samples"),
    (["inference.top_p=0"], "inference.top_p"),
    (["inference=gii", "inference.max_thinking_tokens=300"], "inference.max_thinking_tokens"),
    (["inference=gii", "inference.phrases.redirection=[]"], "inference.phrases.redirection"),
    (["inference.intervention_format=Wait"], "inference.intervention_format"),
])
def test_bad_inference_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose_config(overrides))


def test_vllm_backend_fails_clearly_without_vllm():
    with pytest.raises(ConfigError, match=r"inference\.backend.*pip install 'reasonbridge\[vllm\]'"):
        validate(compose_config(["inference=gii", "inference.backend=vllm"]))
    from reasonbridge.inference.strategies import GuidedIntervention
    from reasonbridge.inference.vllm_backend import generate_vllm
    with pytest.raises(ImportError, match="needs vLLM"):
        generate_vllm("some/model", None, ["p"], ["q"], GuidedIntervention(max_interventions=1), max_new_tokens=8)


@pytest.mark.slow
def test_scaling_sweep_from_the_command_line(tmp_path, shared_cache, mlflow_uri):
    _, runs = run_micro_sweep("inference=gii,budget_forcing", "inference.max_interventions=0,2,4,6",
                              f"paths.cache_dir={shared_cache}", tmp_path=tmp_path, mlflow_uri=mlflow_uri)
    points = {(r.data.params["inference.name"], r.data.params["inference.max_interventions"]): r.data.metrics
              for r in runs}
    assert set(points) == {(n, str(k)) for n in ("gii", "budget_forcing") for k in (0, 2, 4, 6)}
    for (name, k), metrics in points.items():
        assert 0 <= metrics["acc/synthetic"] <= 1 and metrics["n/synthetic"] == 8
        assert metrics["interventions/synthetic"] <= int(k)  # at most k per problem
        if k == "0":
            assert metrics["interventions/synthetic"] == 0  # the k=0 point is the strategy without intervening


def test_scaling_preset_sweeps_both_strategies_over_the_intervention_counts():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=scaling"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {"inference": "gii,budget_forcing",
                                              "inference.max_interventions": "0,2,4,6"}
    assert cfg.tracking.table == "figure4"
