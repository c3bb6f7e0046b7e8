"""Run the student on a benchmark and judge every answer."""
from __future__ import annotations

from reasonbridge.evaluation.answers import check_exact
from reasonbridge.inference.generate import generate
from reasonbridge.prompts import chat


def evaluate(model, tokenizer, problems: list[dict], *, benchmark: str, max_new_tokens: int,
             batch_size: int, progress: bool = True) -> tuple[list[dict], dict[str, float]]:
    """Return one prediction record per problem and the benchmark's metrics."""
    prompts = [tokenizer.apply_chat_template(chat(p["problem"]), add_generation_prompt=True, tokenize=False)
               for p in problems]
    outputs = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       progress=progress, desc=f"evaluate {benchmark}")
    predictions = []
    for p, prompt, out in zip(problems, prompts, outputs):
        correct, extracted, reason = check_exact(out["output"], p["answer"])
        predictions.append({
            "id": p["id"], "prompt": prompt, "output": out["output"], "extracted": extracted,
            "gold": p["answer"], "correct": correct, "checker": "exact", "reason": reason,
            "tokens": out["tokens"], "hit_limit": out["hit_limit"],
            "domain": p.get("domain"), "difficulty": p.get("difficulty"),
        })
    n = len(predictions)
    metrics = {
        f"acc/{benchmark}": sum(x["correct"] for x in predictions) / n,
        f"n/{benchmark}": float(n),
        f"gen_tokens/{benchmark}": sum(x["tokens"] for x in predictions) / n,
    }
    return predictions, metrics
