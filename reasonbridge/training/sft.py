"""Supervised fine-tuning of any transformers causal LM on chat examples, through accelerate.

The same loop pre-trains the embedded tiny student (loss on every token) and fine-tunes
on teacher traces (loss on the assistant turn only, located through the chat template).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

IGNORE = -100


def encode_chat(tokenizer, messages: list[dict], max_len: int, assistant_only: bool = True) -> dict:
    """Token ids and labels for a conversation whose last message is the assistant's.

    The prompt part is rendered with `add_generation_prompt=True` and tokenized apart
    from the response, so the label mask starts exactly where generation would start.
    """
    prompt_text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("chat template renders the prompt differently with and without the answer; "
                         "cannot locate the assistant turn")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    input_ids = (prompt_ids + response_ids)[:max_len]
    labels = ([IGNORE] * len(prompt_ids) if assistant_only else list(prompt_ids)) + response_ids
    return {"input_ids": input_ids, "labels": labels[:max_len]}


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x["input_ids"]) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        n = len(x["input_ids"])
        ids[i, :n] = torch.tensor(x["input_ids"])
        labels[i, :n] = torch.tensor(x["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class TrainSettings:
    lr: float
    epochs: int = 1
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_steps: Optional[int] = None
    log_every: int = 1


def train_causal_lm(model, examples: list[dict], settings: TrainSettings, *, pad_id: int, seed: int,
                    progress: bool = True, desc: str = "train",
                    on_log: Callable[[dict], None] | None = None) -> dict:
    """Train the parameters of `model` that require grad; return the loss history and timings."""
    torch.manual_seed(seed)
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum)
    loader = DataLoader(examples, batch_size=settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed),
                        collate_fn=lambda b: collate(b, pad_id))
    steps_per_epoch = math.ceil(len(loader) / settings.grad_accum)
    total_steps = settings.max_steps or steps_per_epoch * settings.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    model.train()

    history: list[dict] = []
    tokens = 0
    step = 0
    window_loss, window_n = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False)
    while step < total_steps:
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            tokens += int((batch["labels"] != IGNORE).sum())
            window_loss += loss.item()
            window_n += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % settings.log_every == 0 or step == total_steps:
                record = {"step": step, "loss": window_loss / window_n, "lr": scheduler.get_last_lr()[0]}
                history.append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                if on_log:
                    on_log(record)
            window_loss, window_n = 0.0, 0
            if step >= total_steps:
                break
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    return {"history": history, "time_s": seconds, "steps": step, "tokens": tokens,
            "tokens_per_s": tokens / max(seconds, 1e-9), "model": accelerator.unwrap_model(model)}
