"""Run the student on a benchmark under the configured inference strategy and judge every answer."""
from __future__ import annotations

import json
from pathlib import Path

from reasonbridge.evaluation.checkers import Checker
from reasonbridge.inference.generate import generate
from reasonbridge.prompts import INSTRUCTION, chat


def _generate(model, tokenizer, prompts: list[str], problems: list[str], inference, *, seed: int,
              progress: bool, desc: str) -> list[dict]:
    """Dispatch on the inference config: the plain greedy fast path, the KV-cache engine, or vLLM."""
    from reasonbridge.inference.strategies import build_strategy

    strategy = build_strategy(inference)
    max_thinking = None
    if strategy.intervenes:
        max_thinking = inference.max_thinking_tokens or inference.max_new_tokens - inference.answer_tokens
    sampling = dict(temperature=inference.temperature, top_p=inference.top_p, seed=seed)
    if inference.backend == "vllm":
        from reasonbridge.inference.vllm_backend import generate_vllm
        return generate_vllm(model, tokenizer, prompts, problems, strategy, max_new_tokens=inference.max_new_tokens,
                             max_thinking_tokens=max_thinking, **sampling)
    if inference.name == "none" and inference.temperature == 0:
        outputs = generate(model, tokenizer, prompts, max_new_tokens=inference.max_new_tokens,
                           batch_size=inference.batch_size, progress=progress, desc=desc)
        for out in outputs:
            out.update(interventions={}, states=[], budget_exhausted=False, stop_tokens=[tokenizer.eos_token],
                       end_of_thinking=[])
        return outputs
    from reasonbridge.inference.engine import generate_with_strategy
    return generate_with_strategy(model, tokenizer, prompts, problems, strategy,
                                  max_new_tokens=inference.max_new_tokens, batch_size=inference.batch_size,
                                  max_thinking_tokens=max_thinking, progress=progress, desc=desc, **sampling)


def _read_partial(path: Path | None) -> dict[tuple[str, int], dict]:
    """Predictions judged before a kill; a half-written last line is dropped."""
    done: dict[tuple[str, int], dict] = {}
    if path is None or not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[(rec["id"], rec["sample"])] = rec
    return done


def evaluate(model, tokenizer, problems: list[dict], *, benchmark: str, inference, seed: int = 0,
             progress: bool = True, checker: str = "exact", instruction: str = INSTRUCTION,
             check_workers: int = 2, code_timeout_s: float = 10.0,
             resume_path: Path | None = None) -> tuple[list[dict], dict[str, float]]:
    """Return one prediction record per problem and sample, and the benchmark's metrics.

    With ``inference.num_samples`` > 1 every problem gets that many records (field
    ``sample``); accuracy is then the mean over samples (pass@1 estimated from n samples).
    Problems are generated and judged in chunks; with ``resume_path`` each judged chunk is
    appended there, and a re-run skips every problem already in it.
    """
    n_samples = inference.num_samples
    suffix = inference.think_start or ""
    api = getattr(model, "is_api", False)  # a served model (model=api) takes the chat messages
    prompts = [json.dumps(chat(p["problem"], instruction=instruction), ensure_ascii=False) if api else
               tokenizer.apply_chat_template(chat(p["problem"], instruction=instruction), add_generation_prompt=True,
                                             tokenize=False) + suffix for p in problems]
    expanded = [(p, prompt, s) for p, prompt in zip(problems, prompts) for s in range(n_samples)]
    done = _read_partial(resume_path)
    todo = [e for e in expanded if (e[0]["id"], e[2]) not in done]
    # chunks of similar prompt length, several generation batches each, so a kill loses little
    todo.sort(key=lambda e: len(e[1]))
    chunk = max(inference.batch_size, 1) * 4
    with Checker(checker, workers=check_workers, code_timeout_s=code_timeout_s) as judge:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            if api:
                outputs = model.generate([json.loads(e[1]) for e in part])
            else:
                outputs = _generate(model, tokenizer, [e[1] for e in part], [e[0]["problem"] for e in part],
                                    inference, seed=seed + start, progress=progress, desc=f"evaluate {benchmark}")
            verdicts = judge.check([o["output"] for o in outputs], [e[0] for e in part])
            records = [_record(p, prompt, sample, out, v) for (p, prompt, sample), out, v in zip(part, outputs, verdicts)]
            for r in records:
                done[(r["id"], r["sample"])] = r
            if resume_path is not None:
                with resume_path.open("a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    predictions = [done[(p["id"], s)] for p, _, s in expanded]
    n = len(predictions)
    metrics = {
        f"acc/{benchmark}": sum(x["correct"] for x in predictions) / n,
        f"n/{benchmark}": float(len(problems)),
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
    }
