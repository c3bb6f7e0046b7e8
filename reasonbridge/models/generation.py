"""Batched greedy generation with any transformers causal LM (inference=none)."""
from __future__ import annotations

from typing import Callable

import torch

from reasonbridge.progress import progress_bar


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
             progress: bool = True, desc: str = "generate") -> list[dict]:
    """Generate a completion for each already-templated prompt; returns text and token counts.

    Prompts are batched by length (left padding) so little compute goes to padding.
    """
    tokenizer.padding_side = "left"

    def run(idx: list[int]) -> list[dict]:
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        records = []
        for row, i in zip(out[:, enc["input_ids"].shape[1]:], idx):
            ids = row.tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[:ids.index(tokenizer.eos_token_id) + 1]
            n_tokens = sum(1 for t in ids if t != tokenizer.pad_token_id)
            records.append({"output": tokenizer.decode(ids, skip_special_tokens=True),
                            "conditioned_on": prompts[i] + tokenizer.decode(ids, skip_special_tokens=False),
                            "tokens": n_tokens, "hit_limit": tokenizer.eos_token_id not in ids})
        return records

    return in_length_batches(model, prompts, batch_size, run, progress=progress, desc=desc)


def in_length_batches(model, prompts: list[str], batch_size: int, run: Callable[[list[int]], list[dict]], *,
                      progress: bool, desc: str) -> list[dict]:
    """Call `run(indices)` on batches of prompts of similar length (little compute goes to
    padding); return its records in the prompts' original order."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[dict | None] = [None] * len(prompts)
    model.eval()
    bar = progress_bar(total=len(prompts), desc=desc, disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for i, record in zip(idx, run(idx)):
            results[i] = record
        bar.update(len(idx))
    bar.close()
    return results
