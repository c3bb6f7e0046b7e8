"""Pick CPU precision and thread count by measuring them on the model at hand.

CPUs differ more than a flag can say: with AMX, bf16 matmuls are fast; on AVX2-only machines
bf16 autocast ran 6x slower than fp32 for the organism's student, and when another job holds a
core, two threads trained 5x slower than one. So each candidate is timed on a few real
training steps (forward + backward on a copy of the model) and the fastest is kept.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import nullcontext

import torch

log = logging.getLogger(__name__)


def _step_seconds(model, batch: dict, precision: str, repeats: int) -> float:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    best = float("inf")
    for i in range(repeats + 1):  # the first run warms up (allocations, kernel selection)
        start = time.perf_counter()
        with ctx:
            loss = model(**batch).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def choose_cpu_settings(model, examples: list[dict], *, requested: str = "auto", repeats: int = 3) -> dict:
    """{"precision": "fp32"|"bf16", "threads": n, "seconds": {candidate: s per step}}; sets the
    thread count. ``requested`` other than "auto" fixes the precision (threads still measured).
    On a GPU nothing is measured: precision stays as requested."""
    if torch.cuda.is_available():
        return {"precision": requested, "threads": torch.get_num_threads(), "seconds": {}}
    from reasonbridge.training.data import collate
    batch = collate(examples, pad_id=0)
    probe = copy.deepcopy(model).train()
    precisions = ["fp32", "bf16"] if requested == "auto" else [requested]
    if "bf16" in precisions and not torch.backends.mkldnn.is_available():
        precisions.remove("bf16")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = sorted({1, cores})
    seconds = {}
    for n in threads:
        torch.set_num_threads(n)
        for p in precisions:
            seconds[f"{p}/{n}"] = _step_seconds(probe, batch, p, repeats)
    best = min(seconds, key=seconds.get)
    precision, n = best.split("/")
    torch.set_num_threads(int(n))
    log.info("CPU settings: %s precision, %s thread(s) (seconds per step: %s)", precision, n,
             {k: round(v, 4) for k, v in seconds.items()})
    return {"precision": precision, "threads": int(n), "seconds": seconds}
