"""Training throughput of `adapters=full` ÷ `adapters=lora` (budget-matched rank), plus MFU.

Same model, data (the micro pool's symbolic-teacher traces), batch and steps for both
variants, measured in one run, in fp32 and bf16 autocast, on the tiny student's architecture
and on SmolLM2-135M-Instruct. Model FLOPs utilisation = the training step's matmul FLOPs
(counted by torch's FlopCounterMode on one step) × steps/s ÷ the peak of a large square
matmul measured in this run in the same dtype. Run from the repository root:

    python bench/train_speed.py [--steps N] [--batch B] [--models tiny,smollm2_135m]

Defaults (batch, timed steps): tiny 8 × 4, SmolLM2 2 × 2 — a few minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasonbridge.io import read_jsonl  # noqa: E402
from reasonbridge.models.loading import load_model  # noqa: E402
from reasonbridge.pipeline import Pipeline  # noqa: E402
from reasonbridge.prompts import chat  # noqa: E402
from reasonbridge.training.run import attach_adapters, loss_for  # noqa: E402
from reasonbridge.training.data import collate, encode_chat  # noqa: E402
from reasonbridge.training.loss import hierarchical_loss  # noqa: E402
from reasonbridge.training.sft import TrainSettings, train_causal_lm  # noqa: E402
from bench._compose import compose_config  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_SIZES = {"tiny": (8, 4), "smollm2_135m": (2, 2)}  # (batch, timed steps)


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best FLOP/s of an n×n matmul in `dtype` (the machine's attainable peak here and now)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def model_overrides(model: str) -> list[str]:
    if model == "tiny":  # the tiny student's architecture, briefly pre-trained (speed ignores weights)
        t = compose_config(["model=tiny"]).model.tiny
        return ["model=tiny"] + [f"model.tiny.{k}={t[k]}" for k in
                                 ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                                  "max_position_embeddings")]
    return [f"model={model}"]


def step_flops(model, batch: dict, loss_kind: str, weights: dict, precision: str) -> int:
    batch = dict(batch)
    segs = batch.pop("segment_ids", None)
    with FlopCounterMode(display=False) as counter, \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        if loss_kind == "hierarchical":
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = hierarchical_loss(logits, batch["labels"], segs, weights)[0]
        else:
            loss = model(**batch).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(cfg, student: str, examples_rows: list[dict], precision: str, steps: int, batch: int) -> dict:
    model, tokenizer = load_model(student)
    torch.manual_seed(0)
    model = attach_adapters(model, cfg.adapters)
    loss = loss_for(cfg)
    weights = dict(cfg.train.loss_weights)
    examples = [encode_chat(tokenizer, chat(r["problem"], r["text"]), cfg.train.max_seq_len,
                            segments=r.get("segments") or [] if loss == "hierarchical" else None)
                for r in examples_rows][: batch * (steps + 1)]
    flops = step_flops(model, collate(examples[:batch], tokenizer.pad_token_id), loss, weights, precision)
    marks: list[float] = []
    result = train_causal_lm(model, examples,
                             TrainSettings(lr=1e-4, batch_size=batch, max_steps=steps + 1, loss=loss,
                                           loss_weights=weights, precision=precision, warmup_ratio=0.0),
                             pad_id=tokenizer.pad_token_id, seed=0, progress=False,
                             on_step=lambda s: marks.append(time.perf_counter()))
    seconds = marks[-1] - marks[0]  # the first step (allocations, warm-up) is left out
    tokens = sum(sum(1 for lab in ex["labels"] if lab != -100) for ex in examples[batch:batch * (steps + 1)])
    trainable = sum(p.numel() for p in result["model"].parameters() if p.requires_grad)
    return {"tokens_per_s": tokens / seconds, "flops_per_s": flops * steps / seconds, "trainable": trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="timed steps per measurement (after one warm-up step)")
    parser.add_argument("--batch", type=int, help="examples per step")
    parser.add_argument("--models", default="tiny,smollm2_135m")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    peaks = {p: matmul_peak(d) for p, d in DTYPES.items()}
    print("matmul peak: " + ", ".join(f"{p} {v / 1e12:.3f} TFLOP/s" for p, v in peaks.items()))
    print(f"{'model':14s} {'prec':5s} {'adapters':9s} {'trainable':>10s} {'tok/s':>9s} {'GFLOP/s':>8s} "
          f"{'MFU':>6s} {'full/lora':>9s}")
    for name in args.models.split(","):
        base = ["experiment=micro", "progress=false", "stop_after=data", *model_overrides(name)]
        pipe = Pipeline(compose_config(base))
        pipe.run()
        student = pipe.student_path(pipe.result.stages["student"])
        rows = read_jsonl(pipe.result.stages["data"].path / "selected.jsonl")
        batch, steps = DEFAULT_SIZES.get(name, (2, 2))
        batch, steps = args.batch or batch, args.steps or steps
        for precision in DTYPES:
            results = {}
            for variant in ("full", "lora"):
                cfg = compose_config([*base, f"adapters={variant}"])
                r = results[variant] = measure(cfg, student, rows, precision, steps, batch)
                ratio = f"{results['full']['tokens_per_s'] / r['tokens_per_s']:9.2f}" if variant == "lora" else ""
                print(f"{name:14s} {precision:5s} {variant:9s} {r['trainable']:10d} {r['tokens_per_s']:9.0f} "
                      f"{r['flops_per_s'] / 1e9:8.1f} {r['flops_per_s'] / peaks[precision]:6.1%} {ratio}",
                      flush=True)


if __name__ == "__main__":
    main()
