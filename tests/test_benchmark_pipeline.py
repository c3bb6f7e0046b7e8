"""Several benchmarks in one run, resumable evaluation, and lm-eval, on the micro config."""
import json

import pytest
from mlflow.tracking import MlflowClient

from reasonbridge.config import ConfigError
from reasonbridge.io import DataError, read_jsonl
from reasonbridge.pipeline import run_experiment
from tests.conftest import ROOT

BENCH = (ROOT / ".." / "shared" / "benchmarks").resolve()


@pytest.fixture(autouse=True)
def benchmark_dir(monkeypatch):
    monkeypatch.setenv("REASONBRIDGE_BENCHMARKS", str(BENCH))


def test_several_benchmarks_log_one_metric_set_each(micro_cfg, mlflow_uri, tmp_path, monkeypatch):
    import reasonbridge.inference.dispatch as ev  # evaluation and lm-eval both generate through it

    batches: list[int] = []
    real = ev.generate_outputs

    def counting(model, tokenizer, prompts, *a, **k):
        batches.append(len(prompts))
        return real(model, tokenizer, prompts, *a, **k)

    monkeypatch.setattr(ev, "generate_outputs", counting)
    result = run_experiment(micro_cfg("adapters=none", "benchmarks=[synthetic,gsm8k,aime24]", "eval_limit=3"))
    assert batches == [9]  # the three benchmarks generated in one pass
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    m = run.data.metrics
    for name in ("synthetic", "gsm8k", "aime24"):  # each benchmark's metrics are those of its own predictions
        judged = read_jsonl(client.download_artifacts(result.run_id, f"predictions/{name}.jsonl", str(tmp_path)))
        assert m[f"n/{name}"] == 3 == len(judged) and m[f"gen_tokens/{name}"] > 0
        assert m[f"acc/{name}"] == sum(p["correct"] for p in judged) / 3
        assert f"eval/{name}" in result.stages and f"benchmark/{name}" in result.stages
    preds = read_jsonl(client.download_artifacts(result.run_id, "predictions/gsm8k.jsonl", str(tmp_path)))
    assert [p["gold"] for p in preds] == ["18", "3", "70000"]
    assert {p["checker"] for p in preds} == {"math"}
    assert set(preds[0]) >= {"id", "prompt", "output", "extracted", "gold", "correct", "checker", "reason", "tokens",
                             "interventions"}
    aime = read_jsonl(client.download_artifacts(result.run_id, "predictions/aime24.jsonl", str(tmp_path)))
    assert {p["checker"] for p in aime} == {"integer"}
    # the pool is decontaminated against every evaluated benchmark
    manifest = json.loads((result.stages["pool"].path / "stage.json").read_text())
    assert set(manifest["upstream"]) == {"benchmark/synthetic", "benchmark/gsm8k", "benchmark/aime24"}
    again = run_experiment(micro_cfg("adapters=none", "benchmarks=[synthetic,gsm8k,aime24]", "eval_limit=3"))
    assert batches == [9] and all(s.hit for s in again.stages.values()) and again.metrics == result.metrics


def _killed_in_second_chunk(cfg, monkeypatch) -> list[int]:
    """Run `cfg` until its evaluation dies in the second chunk of 4 (the first was judged and saved);
    then count the prompts every later generation call gets, in the returned list."""
    import reasonbridge.inference.dispatch as ev  # evaluation and lm-eval both generate through it
    generated: list[int] = []
    real = ev.generate_outputs

    def dies_on_second_chunk(model, tokenizer, prompts, *a, **k):
        if generated:
            raise KeyboardInterrupt
        generated.append(len(prompts))
        return real(model, tokenizer, prompts, *a, **k)

    monkeypatch.setattr(ev, "generate_outputs", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    assert generated == [4]

    def counting(model, tokenizer, prompts, *a, **k):
        generated.append(len(prompts))
        return real(model, tokenizer, prompts, *a, **k)

    monkeypatch.setattr(ev, "generate_outputs", counting)
    return generated


def test_killed_evaluation_resumes_without_rejudging(micro_cfg, mlflow_uri, monkeypatch):
    cfg = micro_cfg("adapters=none", "benchmark=math500", "benchmark.size=8", "inference.batch_size=1", "seed=3")
    generated = _killed_in_second_chunk(cfg, monkeypatch)
    resumed = run_experiment(cfg)
    assert generated == [4, 4]  # only the four problems not judged before the kill
    preds = read_jsonl(resumed.stages["eval"].path / "predictions" / "math500.jsonl")
    assert len({p["id"] for p in preds}) == 8 and resumed.metrics["n/math500"] == 8
    assert not list(resumed.stages["eval"].path.parent.glob("*.partial.jsonl"))  # cleaned up once complete

    generated.clear()
    fresh = run_experiment(micro_cfg("adapters=none", "benchmark=math500", "benchmark.size=8", "seed=3",
                                     "inference.batch_size=8"))
    assert [p["output"] for p in read_jsonl(fresh.stages["eval"].path / "predictions" / "math500.jsonl")] == \
        [p["output"] for p in preds]  # the resumed run's predictions are what an uninterrupted run writes


def test_lm_eval_runs_a_local_task_with_the_harness_model(micro_cfg, mlflow_uri, tmp_path):
    native = run_experiment(micro_cfg("adapters=none", "benchmark=gsm8k", "eval_limit=3"))
    result = run_experiment(micro_cfg("adapters=none", "benchmark=lm_eval", "benchmark.task=reasonbridge_gsm8k",
                                      "eval_limit=3"))
    m = result.metrics
    label = "lm_eval/reasonbridge_gsm8k"
    assert m[f"n/{label}"] == 3 and m[f"acc/{label}"] == m[f"{label}/acc/none"]
    preds = read_jsonl(result.stages["eval"].path / "predictions" / f"{label}.jsonl")
    ours = read_jsonl(native.stages["eval"].path / "predictions" / "gsm8k.jsonl")
    # lm-eval sends the same chat-templated prompt; greedy decoding gives the same output and verdict
    assert [p["prompt"] for p in preds] == [p["prompt"] for p in ours]
    assert [(p["output"], p["correct"], p["checker"]) for p in preds] == [(p["output"], p["correct"], p["checker"])
                                                                          for p in ours]
    assert m[f"acc/{label}"] == native.metrics["acc/gsm8k"]
    client = MlflowClient(mlflow_uri)
    arts = [a.path for a in client.list_artifacts(result.run_id, "predictions/lm_eval")]
    assert arts == ["predictions/lm_eval/reasonbridge_gsm8k.jsonl"]


def test_bad_benchmark_settings_fail_before_work(micro_cfg, tmp_path):
    with pytest.raises(ConfigError, match="benchmarks"):
        run_experiment(micro_cfg("benchmarks=[synthetic,imagenet]"))
    with pytest.raises(ConfigError, match="benchmark.task"):
        run_experiment(micro_cfg("benchmark=lm_eval", "benchmark.task=null"))
    with pytest.raises(DataError, match=r"benchmark math500: .*nope\.jsonl does not exist.*benchmark\.path"):
        run_experiment(micro_cfg("benchmark=math500", f"benchmark.path={tmp_path / 'nope.jsonl'}"))


def test_served_model_is_evaluated_through_an_openai_compatible_endpoint(micro_cfg, mlflow_uri):
    """model=api against a local stand-in server that knows two of three GSM8K answers."""
    import http.server
    import threading

    from reasonbridge.evaluation.benchmarks import gsm8k_gold

    rows = [json.loads(line) for line in (BENCH / "gsm8k_test.jsonl").read_text().splitlines()[:3]]
    known = {r["question"]: gsm8k_gold(r["answer"]) for r in rows[:2]}
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            question = body["messages"][-1]["content"].split("\n")[0]
            text = f"Let me add it up.\nFinal Answer: \\boxed{{{known[question]}}}" if question in known else "Hmm."
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 50, "completion_tokens": 12}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConfigError, match="adapters"):
            run_experiment(micro_cfg("model=api", "model.base_url=http://x/v1", "model.api_model=m"))
        result = run_experiment(micro_cfg("model=api", f"model.base_url=http://127.0.0.1:{httpd.server_address[1]}/v1",
                                          "model.api_model=stand-in", "adapters=none", "benchmark=gsm8k",
                                          "eval_limit=3"))
    finally:
        httpd.shutdown()
    m = result.metrics
    assert m["acc/gsm8k"] == pytest.approx(2 / 3) and m["n/gsm8k"] == 3 and m["gen_tokens/gsm8k"] == 12
    assert len(seen) == 3 and {b["model"] for b in seen} == {"stand-in"}
    assert seen[0]["max_tokens"] == 48  # the micro preset's inference.max_new_tokens
    preds = read_jsonl(result.stages["eval"].path / "predictions" / "gsm8k.jsonl")
    assert [p["reason"] for p in preds][2] == "no answer extracted"


def test_exported_local_tasks_load_in_lm_eval(tmp_path):
    """`python -m reasonbridge.evaluation.lm_eval_model --out DIR aime24` writes a task lm-eval can load offline."""
    from lm_eval.tasks import TaskManager

    from reasonbridge.evaluation.lm_eval_model import main as export

    assert export(["--out", str(tmp_path), "--limit", "5", "aime24"]) == 0
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    assert "reasonbridge_aime24" in manager.all_tasks
    task = manager.load_task_or_group(["reasonbridge_aime24"])["reasonbridge_aime24"]
    docs = list(task.test_docs())
    assert len(docs) == 5 and docs[0]["answer"] == "204"
    assert task.doc_to_text(docs[0]).endswith("Put the final answer in \\boxed{}.")
    assert task.process_results(docs[0], ["so \\boxed{204}"]) == {"acc": 1.0}
    assert task.process_results(docs[0], ["no idea"]) == {"acc": 0.0}


def test_lm_eval_model_scores_loglikelihoods(micro_cfg):
    """The loglikelihood requests of multiple-choice lm-eval tasks, against a direct forward pass."""
    import torch
    from lm_eval.api.instance import Instance

    from reasonbridge.evaluation.lm_eval_model import ReasonBridgeLM
    from reasonbridge.models.loading import load_model
    from reasonbridge.pipeline import Pipeline

    cfg = micro_cfg("adapters=none")
    pipeline = Pipeline(cfg)
    model, tokenizer = load_model(pipeline.student_path(pipeline.student()))
    lm = ReasonBridgeLM(model, tokenizer, cfg.inference)
    context, continuation = "What is 2 + 3?", " 5"

    def request(kind, args):
        return Instance(request_type=kind, doc={}, arguments=args, idx=0)

    (logp, greedy), = lm.loglikelihood([request("loglikelihood", (context, continuation))])
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
    expected = sum(logits[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
    assert logp == pytest.approx(expected, abs=1e-4) and logp < 0
    assert greedy == all(logits[len(ctx) - 1 + i].argmax().item() == t for i, t in enumerate(cont))
    (rolling,) = lm.loglikelihood_rolling([request("loglikelihood_rolling", (context + continuation,))])
    assert rolling < 0 and rolling == pytest.approx(lm.loglikelihood([request("loglikelihood", ("", context + continuation))])[0][0],
                                                    abs=1e-4)


def test_a_killed_lm_eval_evaluation_resumes_from_its_answered_requests(micro_cfg, monkeypatch):
    cfg = micro_cfg("adapters=none", "benchmark=lm_eval", "benchmark.task=reasonbridge_gsm8k", "eval_limit=8",
                    "inference.batch_size=1", "seed=5")
    label = "lm_eval/reasonbridge_gsm8k"
    generated = _killed_in_second_chunk(cfg, monkeypatch)
    resumed = run_experiment(cfg)
    assert generated == [4, 4]  # only the requests not answered before the kill
    preds = read_jsonl(resumed.stages["eval"].path / "predictions" / f"{label}.jsonl")
    assert resumed.metrics[f"n/{label}"] == 8 and not list(resumed.stages["eval"].path.parent.glob("*.partial.jsonl"))
    fresh = run_experiment(micro_cfg("adapters=none", "benchmark=lm_eval", "benchmark.task=reasonbridge_gsm8k",
                                     "eval_limit=8", "inference.batch_size=1", "seed=5", "force=[eval]"))
    assert generated == [4, 4, 4, 4]  # forced: everything again
    assert read_jsonl(fresh.stages["eval"].path / "predictions" / f"{label}.jsonl") == preds
    assert fresh.metrics[f"acc/{label}"] == resumed.metrics[f"acc/{label}"]
