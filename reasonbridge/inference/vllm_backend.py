"""vLLM driver for the same `Strategy` objects (``inference.backend=vllm``, extra ``vllm``).

Each round submits every unfinished sequence with the end-of-thinking markers as stop
strings; when one stops, the strategy decides, and the sequence is re-submitted as
``prompt + text so far + injection``. With prefix caching the already-processed prefix
is served from vLLM's cache, so a round costs about the new tokens only. Text is
re-tokenized each round (vLLM returns text cut at the stop string), so the exact
conditioned text is recorded, as in the transformers engine.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reasonbridge.config import VLLM_INSTALL_HINT as INSTALL_HINT
from reasonbridge.inference.strategies import Episode, Strategy



def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return vllm


@dataclass
class _Seq:
    episode: Episode
    prompt_ids: list[int]
    text: str = ""  # everything after the prompt the model conditions on (kept + injected)
    generated: int = 0
    thinking_tokens: int = 0
    stop: str | None = None
    extra: dict = field(default_factory=dict)


def _model_dir(model, tokenizer, tmp: str) -> str:
    """vLLM loads from a folder: a trained adapter is merged first."""
    if isinstance(model, (str, Path)):
        return str(model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return tmp


def generate_vllm(model, tokenizer, prompts: list[str], problems: list[str], strategy: Strategy, *,
                  max_new_tokens: int, max_thinking_tokens: int | None = None, temperature: float = 0.0,
                  top_p: float = 1.0, seed: int = 0, dtype: str = "auto") -> list[dict]:
    """Generate under `strategy` with vLLM; records match `engine.generate_with_strategy`."""
    vllm = _import_vllm()
    from vllm.inputs import TokensPrompt

    fmt, watch = strategy.fmt, strategy.watches_thinking
    with tempfile.TemporaryDirectory() as tmp:
        llm = vllm.LLM(model=_model_dir(model, tokenizer, tmp), enable_prefix_caching=True, seed=seed, dtype=dtype)
        seqs = [_Seq(strategy.begin(p), tokenizer.encode(prompt, add_special_tokens=False))
                for prompt, p in zip(prompts, problems)]
        round_no = 0
        while active := [s for s in seqs if s.stop is None]:
            params, inputs = [], []
            for s in active:
                thinking = watch and not s.episode.thinking_done
                budget = max_new_tokens - s.generated
                if thinking and max_thinking_tokens is not None:
                    budget = min(budget, max_thinking_tokens - s.thinking_tokens)
                params.append(vllm.SamplingParams(
                    temperature=temperature, top_p=top_p, max_tokens=max(budget, 1), seed=seed + round_no,
                    stop=list(fmt.end_markers) if thinking else None, skip_special_tokens=False))
                inputs.append(TokensPrompt(prompt_token_ids=s.prompt_ids + tokenizer.encode(s.text, add_special_tokens=False)))
            for s, result in zip(active, llm.generate(inputs, params, use_tqdm=False)):
                _advance(s, result.outputs[0], strategy, tokenizer, max_new_tokens, max_thinking_tokens)
            round_no += 1
        eos = tokenizer.eos_token
        return [{
            "output": tokenizer.decode(tokenizer.encode(s.text, add_special_tokens=False), skip_special_tokens=True),
            "tokens": s.generated, "hit_limit": s.stop == "max_new_tokens", "stop": s.stop,
            "interventions": s.episode.counts() if strategy.name != "none" else {}, "intervention_log": s.episode.interventions,
            "states": s.episode.states, "budget_exhausted": s.episode.budget_exhausted,
            "conditioned_on": tokenizer.decode(s.prompt_ids, skip_special_tokens=False) + s.text,
            "stop_tokens": [eos],
            "end_of_thinking": (list(fmt.end_markers) + ([eos] if fmt.eos_ends_thinking else [])) if watch else [],
        } for s in seqs]


def _advance(s: _Seq, out, strategy: Strategy, tokenizer, max_new_tokens: int, max_thinking_tokens: int | None) -> None:
    """Apply one vLLM completion to a sequence: accept, intervene, force the answer or finish."""
    ep = s.episode
    thinking = strategy.watches_thinking and not ep.thinking_done
    n = len(out.token_ids)
    s.generated += n
    if thinking:
        s.thinking_tokens += n
    text = out.text
    if isinstance(out.stop_reason, str):  # an end-of-thinking marker (cut from out.text)
        s.text += text
        iv = strategy.on_end_of_thinking(ep, s.text, s.thinking_tokens)
        s.text += iv.text if iv is not None else out.stop_reason
    elif out.finish_reason == "stop":  # EOS
        if thinking and strategy.fmt.eos_ends_thinking:
            s.text += text
            iv = strategy.on_end_of_thinking(ep, s.text, s.thinking_tokens)
            if iv is not None:
                s.text += iv.text
            else:
                s.text += tokenizer.eos_token
                s.stop = "eos"
        else:
            s.text += text + tokenizer.eos_token
            s.stop = "eos"
    else:  # length: the thinking budget or max_new_tokens
        s.text += text
        if thinking and max_thinking_tokens is not None and s.thinking_tokens >= max_thinking_tokens:
            s.text += strategy.on_budget_exhausted(ep, s.text)
    if s.stop is None and s.generated >= max_new_tokens:
        s.stop = "max_new_tokens"
