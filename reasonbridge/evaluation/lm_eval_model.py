"""lm-eval-harness integration: this harness's model (base or with trained adapters, under its
inference strategy) as an lm-eval model, and local task YAMLs for the benchmarks read from
files, so `benchmark=lm_eval benchmark.task=<name>` runs any lm-eval task and logs the same
metrics (acc/<label>, n/<label>, gen_tokens/<label>, interventions/<label>).

Local tasks are named ``reasonbridge_<benchmark>`` (e.g. reasonbridge_math500): their YAML is
written next to the benchmark's normalised problems and judged by this harness's checkers, so
lm-eval runs them offline. `python -m reasonbridge.evaluation.lm_eval_model --out DIR
<benchmark>...` writes them for the `lm_eval` command line (`--include_path DIR`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from reasonbridge.evaluation.benchmarks import LOCAL_PREFIX
from reasonbridge.io import read_appended

_JUDGES: dict[str, object] = {}  # checker name -> Checker, shared by the generated task modules
VERDICTS: dict[str, dict] = {}  # problem id -> verdict of the last local-task judgement
UNSAFE_UNSANDBOXED_CODE = False  # the code checker's opt-out of its OS sandbox (benchmark.unsafe_unsandboxed_code)

_TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: !function {module}.doc_to_text
doc_to_target: answer
process_results: !function {module}.process_results
generation_kwargs:
  until: []
  do_sample: false
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

_TASK_UTILS = """\
# Written by reasonbridge.evaluation.lm_eval_model: the task {task} judged by reasonbridge's checker.
from reasonbridge.evaluation.lm_eval_model import judge
from reasonbridge.prompts import user_message

CHECKER = {checker!r}
INSTRUCTION = {instruction!r}


def doc_to_text(doc):
    return user_message(doc["problem"], INSTRUCTION)


def process_results(doc, results):
    return {{"acc": judge(CHECKER, doc, results[0])}}
"""


def judge(checker: str, doc: dict, output: str) -> float:
    """Verdict of this harness's checker for one lm-eval document (a row of a local task)."""
    from reasonbridge.evaluation.checkers import Checker
    if checker not in _JUDGES:
        _JUDGES[checker] = Checker(checker, workers=1, unsafe_unsandboxed_code=UNSAFE_UNSANDBOXED_CODE)
    problem = {"problem": doc["problem"], "answer": doc["answer"], "meta": json.loads(doc["meta"])}
    verdict = _JUDGES[checker].check_one(output, problem)
    VERDICTS[doc["id"]] = verdict.as_dict()
    return float(verdict.correct)


def close_judges() -> None:
    for checker in _JUDGES.values():
        checker.close()
    _JUDGES.clear()


def write_local_task(problems: list[dict], benchmark: str, checker: str, instruction: str, out_dir: Path) -> str:
    """Write task ``reasonbridge_<benchmark>`` (YAML, judge module, data) into ``out_dir``; return its name."""
    task = f"{LOCAL_PREFIX}{benchmark}"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{task}.jsonl"
    with data.open("w", encoding="utf-8") as f:  # meta as JSON text: its keys differ between rows
        for p in problems:
            f.write(json.dumps({"id": p["id"], "problem": p["problem"], "answer": str(p["answer"]),
                                "meta": json.dumps(p.get("meta") or {})}, ensure_ascii=False) + "\n")
    module = f"{task}_utils"
    (out_dir / f"{module}.py").write_text(_TASK_UTILS.format(task=task, checker=checker, instruction=instruction))
    (out_dir / f"{task}.yaml").write_text(_TASK_YAML.format(task=task, data=json.dumps(str(data.resolve())),
                                                            module=module))
    return task


def _request_key(kind: str, args) -> str:
    import hashlib
    return hashlib.sha256(json.dumps([kind, list(args)], sort_keys=True, default=str).encode()).hexdigest()[:32]


def _read_answered(path: Path | None) -> dict[str, dict]:
    """Requests answered before a kill (a half-written last line is dropped)."""
    return {rec["key"]: rec for rec in read_appended(path)}


@register_model("reasonbridge")
class ReasonBridgeLM(LM):
    """A loaded model + tokenizer; generation goes through the configured inference strategy."""

    def __init__(self, model, tokenizer, inference, *, seed: int = 0, progress: bool = False,
                 batch_size: int = 8, resume_path: Path | None = None):
        super().__init__()
        self.model, self.tokenizer, self.inference = model, tokenizer, inference
        self.seed, self.progress, self.batch_size = seed, progress, batch_size
        self.generations: dict[str, dict] = {}  # context -> generation record (tokens, interventions)
        self.max_length = getattr(model.config, "max_position_embeddings", 2048)
        # answered requests, appended chunk by chunk: a killed evaluation resumes without redoing them
        self.resume_path = resume_path
        self.answered: dict[str, dict] = _read_answered(resume_path)

    def _answer(self, kind: str, requests, compute) -> list:
        """Results of ``requests`` in order: saved ones from ``resume_path``, the rest by ``compute``
        in chunks (each appended there as soon as it is done)."""
        keys = [_request_key(kind, r.args) for r in requests]
        todo = [i for i, k in enumerate(keys) if k not in self.answered]
        chunk = max(getattr(self.inference, "batch_size", 1), 1) * 4
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            records = [{"key": keys[i], **rec} for i, rec in zip(part, compute([requests[i] for i in part], start))]
            for rec in records:
                self.answered[rec["key"]] = rec
            if self.resume_path is not None:
                with self.resume_path.open("a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return [self.answered[k] for k in keys]

    @property
    def tokenizer_name(self) -> str:
        return str(self.tokenizer.name_or_path).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.tokenizer.chat_template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        text = self.tokenizer.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)
        return text + (self.inference.think_start or "") if add_generation_prompt else text

    def generate_until(self, requests) -> list[str]:
        from reasonbridge.inference.dispatch import generate_outputs

        def compute(part, start: int) -> list[dict]:
            contexts = [r.args[0] for r in part]
            outputs = generate_outputs(self.model, self.tokenizer, contexts, contexts, self.inference,
                                       seed=self.seed + start, progress=self.progress, desc="lm-eval generate")
            records = []
            for req, out in zip(part, outputs):
                text = out["output"]
                for stop in (req.args[1] or {}).get("until", []) or []:
                    if stop and stop in text:
                        text = text[:text.index(stop)]
                records.append({"result": text, "generation": {
                    "output": text, "tokens": out["tokens"], "interventions": out["interventions"],
                    "budget_exhausted": out["budget_exhausted"]}})
            return records

        texts = []
        for req, rec in zip(requests, self._answer("generate_until", requests, compute)):
            self.generations[req.args[0]] = rec["generation"]
            texts.append(rec["result"])
        return texts

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    @torch.inference_mode()
    def _logprobs(self, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
        if not context_ids:  # score the first token from the beginning-of-text token
            context_ids = [self.tokenizer.bos_token_id or self.tokenizer.eos_token_id]
        ids = (context_ids + continuation_ids)[-(self.max_length + 1):]
        n = len(continuation_ids)
        logits = self.model(torch.tensor([ids[:-1]], device=self.model.device)).logits[0, -n:].float()
        logp = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(ids[-n:], device=logp.device)
        total = logp.gather(1, target[:, None]).sum().item()
        return total, bool((logp.argmax(-1) == target).all())

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        self.model.eval()

        def compute(part, _start: int) -> list[dict]:
            return [{"result": list(self._logprobs(self._encode(r.args[0]), self._encode(r.args[1])))} for r in part]
        return [tuple(rec["result"]) for rec in self._answer("loglikelihood", requests, compute)]

    def loglikelihood_rolling(self, requests) -> list[float]:
        self.model.eval()

        def compute(part, _start: int) -> list[dict]:
            out = []
            for r in part:
                ids = self._encode(r.args[0])
                total, window = 0.0, self.max_length
                for start in range(0, len(ids), window):  # disjoint windows, each conditioned on its predecessor's tail
                    context = ids[max(0, start - window // 2):start]
                    total += self._logprobs(context, ids[start:start + window])[0] if ids[start:start + window] else 0.0
                out.append({"result": total})
            return out
        return [rec["result"] for rec in self._answer("loglikelihood_rolling", requests, compute)]


def _primary_metric(task_results: dict) -> tuple[str, float]:
    numeric = {k: v for k, v in task_results.items()
               if isinstance(v, (int, float)) and "_stderr" not in k and k != "alias" and not math.isnan(v)}
    for prefix in ("acc,", "exact_match,", "pass@1,", "acc_norm,"):
        for k, v in numeric.items():
            if k.startswith(prefix):
                return k, float(v)
    if not numeric:
        raise RuntimeError(f"lm-eval returned no numeric metric: {sorted(task_results)}")
    k = sorted(numeric)[0]
    return k, float(numeric[k])


def run_lm_eval(model, tokenizer, bcfg, inference, *, label: str, seed: int, problems_file: Path | None,
                local, workdir: Path, progress: bool,
                resume_path: Path | None = None) -> tuple[list[dict], dict[str, float]]:
    """Run lm-eval task ``bcfg.task`` (a local reasonbridge_<benchmark> one when ``local`` is its
    config) with the model; return prediction records and the harness's metrics. With
    ``resume_path`` every answered request is appended there, and a re-run after a kill sends the
    model only the requests not in it."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from reasonbridge.evaluation.benchmarks import checker_of, spec_of
    from reasonbridge.io import DataError, read_jsonl

    task = bcfg.task
    include = None
    if local is not None:
        include = workdir / "lm_eval_tasks"
        write_local_task(read_jsonl(problems_file), local.name, checker_of(local), spec_of(local.name).instruction,
                         include)
    elif bcfg.get("include_path"):  # the user's own task YAMLs (lm_eval --include_path)
        include = Path(bcfg.include_path)
    # a local task needs none of lm-eval's ~200 built-in task folders (indexing them takes seconds)
    manager = TaskManager(include_path=str(include) if include else None, include_defaults=local is None)
    if task not in manager.all_tasks:
        raise DataError(f"benchmark.task={task!r} is not an lm-eval task (nor reasonbridge_<benchmark>); "
                         "`lm_eval ls tasks` lists them")
    global UNSAFE_UNSANDBOXED_CODE
    UNSAFE_UNSANDBOXED_CODE = bool(bcfg.unsafe_unsandboxed_code)
    lm = ReasonBridgeLM(model, tokenizer, inference, seed=seed, progress=progress, resume_path=resume_path)
    VERDICTS.clear()
    try:
        results = lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=bcfg.num_fewshot, limit=bcfg.size,
                                          task_manager=manager, apply_chat_template=True, log_samples=True,
                                          random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                          fewshot_random_seed=seed, bootstrap_iters=0)
    except Exception as e:
        if "Couldn't reach" in str(e) or "offline" in str(e).lower() or "ConnectionError" in type(e).__name__:
            raise DataError(f"lm-eval task {task!r} needs its dataset from the hub, which is unreachable; "
                               f"use a local task ({LOCAL_PREFIX}<benchmark>) offline") from e
        raise
    finally:
        close_judges()
    task_results = results["results"][task]
    metric, value = _primary_metric(task_results)
    predictions = []
    for s in results["samples"][task]:
        doc = s["doc"]
        context = s["arguments"][0][0] if s["arguments"] else ""
        gen = lm.generations.get(context, {})
        output = s["filtered_resps"][0] if s["filtered_resps"] else ""
        pid = str(doc.get("id", s["doc_id"]))
        verdict = VERDICTS.get(pid) if local is not None else None
        if verdict is None:
            score = s.get(metric.split(",")[0])
            verdict = {"correct": bool(score), "extracted": output if isinstance(output, str) else str(output),
                       "checker": f"lm_eval:{metric}", "reason": f"lm-eval {metric} = {score}"}
        predictions.append({"id": pid, "sample": 0, "prompt": context, "output": gen.get("output", str(output)),
                            "gold": doc.get("answer", s.get("target")), **verdict,
                            "tokens": gen.get("tokens", 0), "interventions": gen.get("interventions", {}),
                            "budget_exhausted": gen.get("budget_exhausted", False)})
    n = max(len(predictions), 1)
    metrics = {f"acc/{label}": value, f"n/{label}": float(len(predictions)),
               f"gen_tokens/{label}": sum(p["tokens"] for p in predictions) / n}
    if inference.name != "none":
        metrics[f"interventions/{label}"] = sum(sum(p["interventions"].values()) for p in predictions) / n
    for k, v in task_results.items():
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            metrics[f"{label}/{k.replace(',', '/')}"] = float(v)
    return predictions, metrics


def main(argv: list[str] | None = None) -> int:
    """Write local lm-eval tasks for benchmarks read from files (default paths of conf/benchmark)."""
    import argparse

    from reasonbridge.config import benchmark_option
    from reasonbridge.evaluation.benchmarks import checker_of, load_benchmark, spec_of

    ap = argparse.ArgumentParser(prog="python -m reasonbridge.evaluation.lm_eval_model", description=main.__doc__)
    ap.add_argument("benchmarks", nargs="+", help="e.g. math500 aime24 gsm8k")
    ap.add_argument("--out", type=Path, required=True, help="folder for lm_eval --include_path")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    for name in args.benchmarks:
        bcfg = benchmark_option(name)
        bcfg.size = args.limit
        if name in ("synthetic", "lm_eval"):
            ap.error(f"{name}: only benchmarks read from files can be exported")
        task = write_local_task(load_benchmark(bcfg, seed=0), name, checker_of(bcfg), spec_of(name).instruction,
                                args.out)
        print(f"wrote {task} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
