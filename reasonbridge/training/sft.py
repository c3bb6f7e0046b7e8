"""The training loop: supervised fine-tuning of any transformers causal LM on chat examples,
through accelerate (data.py encodes and orders the examples, loss.py is the hierarchical loss).

The same loop pre-trains the embedded tiny student (loss on every token) and fine-tunes
on teacher traces (loss on the assistant turn only, located through the chat template),
with plain SFT loss or the hierarchical loss over the trace's segments. It checkpoints the
trainable weights, optimizer, scheduler, RNG and data position every `save_every` steps,
so a killed run resumes and ends exactly where an uninterrupted one would.
"""
from __future__ import annotations

import math
import os
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup

from reasonbridge import preemption
from reasonbridge.progress import progress_bar
from reasonbridge.training.checkpoint import rng_state, set_rng_state
from reasonbridge.training.data import IGNORE, EpochPermutation, collate
from reasonbridge.training.loss import hierarchical_loss

log = logging.getLogger(__name__)


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
    loss: str = "sft"  # sft | hierarchical (examples must carry segment_ids)
    loss_weights: dict[str, float] = field(default_factory=lambda: {"out": 1.0, "strategic": 0.5,
                                                                     "tactical": 0.3, "operational": 0.2})
    precision: str = "fp32"  # auto | bf16 | fp32
    gradient_checkpointing: bool = False
    save_every: int = 0
    checkpoint_dir: Optional[Path] = None
    blocks: Optional[tuple] = None  # a curriculum: consecutive example blocks, in this order each epoch


def resolve_precision(precision: str) -> str:
    """accelerate's mixed_precision for `auto|bf16|fp32`: bf16 on a GPU that has it or a CPU with
    native bf16 matmuls (oneDNN), else fp32."""
    if precision == "fp32":
        return "no"
    if precision == "bf16":
        return "bf16"
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"


CHECKPOINT = "state.pt"


def _any_rank_preempted(accelerator) -> bool:
    """Whether any rank got a preemption signal, agreed by all ranks (they stop at the same step)."""
    if accelerator.num_processes == 1:
        return preemption.pending()
    flag = torch.tensor([1.0 if preemption.pending() else 0.0], device=accelerator.device)
    if accelerator.reduce(flag, reduction="sum").item() > 0:
        if not preemption.pending():
            preemption.request()
        return True
    return False


def train_causal_lm(model, examples: list[dict], settings: TrainSettings, *, pad_id: int, seed: int,
                    progress: bool = True, desc: str = "train",
                    on_log: Callable[[dict], None] | None = None,
                    on_step: Callable[[int], None] | None = None) -> dict:
    """Train the parameters of `model` that require grad; return the loss history and timings.

    With `settings.checkpoint_dir`, a checkpoint found there is resumed from, a new one is
    written every `save_every` optimizer steps (if > 0) and when a preemption signal arrives
    (then the job requeues; see `reasonbridge.preemption`); the caller deletes the folder
    once the result is safely stored. `on_step(step)` runs after each optimizer step.
    """
    # with a checkpoint folder, a preemption signal waits for the end of the current step
    with preemption.checkpointable() if settings.checkpoint_dir else nullcontext():
        return _train(model, examples, settings, pad_id=pad_id, seed=seed, progress=progress, desc=desc,
                      on_log=on_log, on_step=on_step)


def _train(model, examples: list[dict], settings: TrainSettings, *, pad_id: int, seed: int, progress: bool,
           desc: str, on_log: Callable[[dict], None] | None, on_step: Callable[[int], None] | None) -> dict:
    torch.manual_seed(seed)
    # accelerate keeps one process-wide state; each training run here picks its own precision.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum,
                              mixed_precision=resolve_precision(settings.precision))
    use_cache = getattr(model.config, "use_cache", None)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    sampler = EpochPermutation(len(examples), seed, blocks=settings.blocks)
    loader = DataLoader(examples, batch_size=settings.batch_size, sampler=sampler,
                        collate_fn=lambda b: collate(b, pad_id))
    micro_per_epoch = math.ceil(len(examples) / settings.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / settings.grad_accum)
    total_steps = settings.max_steps or steps_per_epoch * settings.epochs
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    model.train()
    weights = dict(settings.loss_weights)

    state = {"step": 0, "epoch": 0, "micro_in_epoch": 0, "tokens": 0, "elapsed": 0.0, "history": []}
    # a preemption signal checkpoints even when periodic checkpoints are off (save_every = 0)
    ckpt = Path(settings.checkpoint_dir) / CHECKPOINT if settings.checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        log.info("resuming %s from the checkpoint at step %d (%s)", desc, saved["state"]["step"], ckpt)
        params = dict(accelerator.unwrap_model(model).named_parameters())
        with torch.no_grad():
            for name, value in saved["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        state = saved["state"]

    def save_checkpoint() -> None:
        if not accelerator.is_main_process:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        unwrapped = accelerator.unwrap_model(model)
        payload = {"trainable": {n: p.detach().cpu().clone() for n, p in unwrapped.named_parameters()
                                 if p.requires_grad},
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "rng": rng_state(), "state": {**state, "elapsed": state["elapsed"] + time.perf_counter() - start}}
        tmp = ckpt.with_suffix(f".tmp{os.getpid()}")
        torch.save(payload, tmp)
        tmp.replace(ckpt)

    window: dict[str, list[float]] = {}
    start = time.perf_counter()
    bar = progress_bar(total=total_steps, initial=state["step"], desc=desc, disable=not progress)
    while state["step"] < total_steps:
        sampler.epoch = state["epoch"]
        sampler.skip = state["micro_in_epoch"] * settings.batch_size * accelerator.num_processes
        for batch in loader:
            segment_ids = batch.pop("segment_ids", None)
            with accelerator.accumulate(model):
                if settings.loss == "hierarchical":
                    if segment_ids is None:
                        raise ValueError("train.loss=hierarchical needs examples encoded with segments")
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    loss, terms = hierarchical_loss(logits, batch["labels"], segment_ids, weights)
                else:
                    loss, terms = model(**batch).loss, {}
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["micro_in_epoch"] += 1
            state["tokens"] += int((batch["labels"] != IGNORE).sum())
            for k, v in {"loss": loss.item(), **{f"loss_{t}": v for t, v in terms.items()}}.items():
                window.setdefault(k, []).append(v)
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            step = state["step"]
            bar.update(1)
            if step % settings.log_every == 0 or step == total_steps:
                record = {"step": step, **{k: sum(v) / len(v) for k, v in window.items()},
                          "lr": scheduler.get_last_lr()[0]}
                state["history"].append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                if on_log:
                    on_log(record)
                window = {}
            if ckpt is not None and settings.save_every and step % settings.save_every == 0 and step < total_steps:
                save_checkpoint()
            if ckpt is not None and _any_rank_preempted(accelerator) and step < total_steps:
                save_checkpoint()
                accelerator.wait_for_everyone()
                log.warning("%s: checkpoint at step %d saved for the requeued job", desc, step)
                preemption.hand_off()
            if on_step:
                on_step(step)
            if step >= total_steps:
                break
        else:  # the epoch ran out
            state["epoch"] += 1
            state["micro_in_epoch"] = 0
    bar.close()
    seconds = state["elapsed"] + time.perf_counter() - start
    model.eval()
    if settings.gradient_checkpointing:  # the trained model generates with its KV cache again
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.gradient_checkpointing_disable()
        unwrapped.config.use_cache = use_cache
    return {"history": state["history"], "time_s": seconds, "steps": state["step"], "tokens": state["tokens"],
            "tokens_per_s": state["tokens"] / max(seconds, 1e-9), "precision": accelerator.mixed_precision,
            "model": accelerator.unwrap_model(model)}
