"""Run the student on a benchmark under the configured inference strategy and judge every answer."""
from __future__ import annotations

from reasonbridge.evaluation.answers import check_exact
from reasonbridge.inference.generate import generate
from reasonbridge.prompts import chat


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


def evaluate(model, tokenizer, problems: list[dict], *, benchmark: str, inference, seed: int = 0,
             progress: bool = True) -> tuple[list[dict], dict[str, float]]:
    """Return one prediction record per problem and sample, and the benchmark's metrics.

    With ``inference.num_samples`` > 1 every problem gets that many records (field
    ``sample``); accuracy is then the mean over samples (pass@1 estimated from n samples).
    """
    n_samples = inference.num_samples
    suffix = inference.think_start or ""
    prompts = [tokenizer.apply_chat_template(chat(p["problem"]), add_generation_prompt=True, tokenize=False) + suffix
               for p in problems]
    expanded = [(p, prompt, s) for p, prompt in zip(problems, prompts) for s in range(n_samples)]
    outputs = _generate(model, tokenizer, [e[1] for e in expanded], [e[0]["problem"] for e in expanded], inference,
                        seed=seed, progress=progress, desc=f"evaluate {benchmark}")
    predictions = []
    for (p, prompt, sample), out in zip(expanded, outputs):
        correct, extracted, reason = check_exact(out["output"], p["answer"])
        predictions.append({
            "id": p["id"], "sample": sample, "prompt": prompt, "output": out["output"], "extracted": extracted,
            "gold": p["answer"], "correct": correct, "checker": "exact", "reason": reason,
            "tokens": out["tokens"], "hit_limit": out["hit_limit"],
            "interventions": out["interventions"], "states": out["states"],
            "budget_exhausted": out["budget_exhausted"], "intervention_log": out.get("intervention_log", []),
            "conditioned_on": out["conditioned_on"], "stop_tokens": out["stop_tokens"],
            "end_of_thinking": out["end_of_thinking"],
            "domain": p.get("domain"), "difficulty": p.get("difficulty"),
        })
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
