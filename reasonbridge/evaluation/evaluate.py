"""Run the student on a benchmark under the configured inference strategy and judge every answer."""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from reasonbridge.evaluation.checkers import Checker
from reasonbridge.io import read_appended
from reasonbridge.inference import dispatch
from reasonbridge.prompts import INSTRUCTION, chat


def _read_partial(path: Path | None) -> dict[tuple[str, int], dict]:
    """Predictions judged before a kill; a half-written last line is dropped."""
    return {(rec["id"], rec["sample"]): rec for rec in read_appended(path)}


@dataclass
class EvalJob:
    """One benchmark to evaluate: its problems, how to prompt and judge them, where to resume."""

    benchmark: str
    problems: list[dict]
    checker: str = "exact"
    instruction: str = INSTRUCTION
    code_timeout_s: float = 10.0
    resume_path: Path | None = None
    unsafe_unsandboxed_code: bool = False  # code: run without an OS sandbox where none is available


def evaluate(model, tokenizer, problems: list[dict], *, benchmark: str, inference, seed: int = 0,
             progress: bool = True, checker: str = "exact", instruction: str = INSTRUCTION,
             check_workers: int = 2, code_timeout_s: float = 10.0,
             resume_path: Path | None = None, unsafe_unsandboxed_code: bool = False) -> tuple[list[dict], dict[str, float]]:
    """Return one prediction record per problem and sample, and the benchmark's metrics.

    With ``inference.num_samples`` > 1 every problem gets that many records (field
    ``sample``); accuracy is then the mean over samples (pass@1 estimated from n samples).
    Problems are generated and judged in chunks; with ``resume_path`` each judged chunk is
    appended there, and a re-run skips every problem already in it.
    """
    job = EvalJob(benchmark, problems, checker, instruction, code_timeout_s, resume_path, unsafe_unsandboxed_code)
    return evaluate_many(model, tokenizer, [job], inference=inference, seed=seed, progress=progress,
                         check_workers=check_workers)[0]


def evaluate_many(model, tokenizer, jobs: list[EvalJob], *, inference, seed: int = 0, progress: bool = True,
                  check_workers: int = 2) -> list[tuple[list[dict], dict[str, float]]]:
    """`evaluate` for several benchmarks in one generation pass: their prompts share batches
    (on CPU a decoding step costs about the same for a few more rows), each judged by its checker."""
    n_samples = inference.num_samples
    suffix = inference.think_start or ""
    api = getattr(model, "is_api", False)  # a served model (model=api) takes the chat messages
    expanded: list[list[tuple]] = []
    done: list[dict] = []
    todo: list[tuple] = []  # (job index, problem, prompt, sample)
    for j, job in enumerate(jobs):
        prompts = [json.dumps(chat(p["problem"], instruction=job.instruction), ensure_ascii=False) if api else
                   tokenizer.apply_chat_template(chat(p["problem"], instruction=job.instruction),
                                                 add_generation_prompt=True, tokenize=False) + suffix
                   for p in job.problems]
        expanded.append([(p, prompt, s) for p, prompt in zip(job.problems, prompts) for s in range(n_samples)])
        done.append(_read_partial(job.resume_path))
        todo += [(j, *e) for e in expanded[j] if (e[0]["id"], e[2]) not in done[j]]
    # chunks of similar prompt length, several generation batches each, so a kill loses little
    todo.sort(key=lambda e: len(e[2]))
    chunk = max(inference.batch_size, 1) * 4
    desc = f"evaluate {'+'.join(job.benchmark for job in jobs)}"
    with ExitStack() as stack:
        judges: dict[tuple, Checker] = {}  # one per checker, started only for work left to judge
        pending = {e[0] for e in todo}
        judge_of = [(job.checker, job.code_timeout_s, job.unsafe_unsandboxed_code) for job in jobs]
        for j, job in enumerate(jobs):
            if j in pending and judge_of[j] not in judges:
                judges[judge_of[j]] = stack.enter_context(
                    Checker(job.checker, workers=check_workers, code_timeout_s=job.code_timeout_s,
                            unsafe_unsandboxed_code=job.unsafe_unsandboxed_code))
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            if api:
                outputs = model.generate([json.loads(e[2]) for e in part])
            else:
                outputs = dispatch.generate_outputs(model, tokenizer, [e[2] for e in part],
                                                    [e[1]["problem"] for e in part], inference, seed=seed + start,
                                                    progress=progress, desc=desc)
            for j, job in enumerate(jobs):
                mine = [(e, out) for e, out in zip(part, outputs) if e[0] == j]
                if not mine:
                    continue
                verdicts = judges[judge_of[j]].check([out["output"] for _, out in mine], [e[1] for e, _ in mine])
                records = [_record(e[1], e[2], e[3], out, v) for (e, out), v in zip(mine, verdicts)]
                for r in records:
                    done[j][(r["id"], r["sample"])] = r
                if job.resume_path is not None:
                    with job.resume_path.open("a", encoding="utf-8") as f:
                        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    results = []
    for j, job in enumerate(jobs):
        predictions, metrics = _metrics(job.benchmark, [done[j][(p["id"], s)] for p, _, s in expanded[j]],
                                        len(job.problems), inference)
        results.append((predictions, metrics))
    return results


def _metrics(benchmark: str, predictions: list[dict], n_problems: int, inference) -> tuple[list[dict], dict]:
    n = len(predictions)
    metrics = {
        f"acc/{benchmark}": sum(x["correct"] for x in predictions) / n,
        f"n/{benchmark}": float(n_problems),
        f"gen_tokens/{benchmark}": sum(x["tokens"] for x in predictions) / n,
    }
    if inference.name != "none":
        metrics[f"interventions/{benchmark}"] = sum(sum(x["interventions"].values()) for x in predictions) / n
        metrics[f"budget_exhausted/{benchmark}"] = sum(x["budget_exhausted"] for x in predictions) / n
    return predictions, metrics


def _record(p: dict, prompt: str, sample: int, out: dict, verdict) -> dict:
    return {
        "id": p["id"], "sample": sample, "prompt": prompt, "output": out["output"], "extracted": verdict.extracted,
        "gold": p["answer"], "correct": verdict.correct, "checker": verdict.checker, "reason": verdict.reason,
        "tokens": out["tokens"], "hit_limit": out["hit_limit"],
        "interventions": out["interventions"], "states": out["states"],
        "budget_exhausted": out["budget_exhausted"], "intervention_log": out.get("intervention_log", []),
        "conditioned_on": out["conditioned_on"], "stop_tokens": out["stop_tokens"],
        "end_of_thinking": out["end_of_thinking"],
        "domain": p.get("domain"), "difficulty": p.get("difficulty"),
        **({"isolation": verdict.isolation} if verdict.isolation else {}),
    }
