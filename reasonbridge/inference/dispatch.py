"""Generation under an inference config: the one entry point evaluation and lm-eval share."""
from __future__ import annotations

from reasonbridge.models.generation import generate


def generate_outputs(model, tokenizer, prompts: list[str], problems: list[str], inference, *, seed: int,
                     progress: bool, desc: str) -> list[dict]:
    """One output record per prompt under the inference config: the plain greedy fast path, the
    KV-cache engine with the strategy's interventions, or vLLM. ``problems`` are the problem
    texts (GII's state detector reads them)."""
    from reasonbridge.inference.strategies import build_strategy

    strategy = build_strategy(inference)
    max_thinking = None  # budget_end=stop: no row is forced to answer, whatever its strategy
    if strategy.answer_at_budget:
        max_thinking = inference.max_thinking_tokens or inference.max_new_tokens - inference.answer_tokens
    sampling = dict(temperature=inference.temperature, top_p=inference.top_p, seed=seed)
    if inference.backend == "vllm":
        from reasonbridge.inference.vllm_backend import generate_vllm
        return generate_vllm(model, tokenizer, prompts, problems, strategy, max_new_tokens=inference.max_new_tokens,
                             max_thinking_tokens=max_thinking, **sampling)
    if not strategy.watches_thinking and inference.temperature == 0:
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
