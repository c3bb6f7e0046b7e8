"""Speed of the embedded default (the model organism), measured in one run on this machine.

1. Training throughput: the harness's `train_causal_lm` (accelerate, the hierarchical loss,
   checkpoint bookkeeping) ÷ a bare PyTorch loop (forward, the same loss, backward, AdamW step)
   on the same model, adapters, batches, precision and thread count. Goal: >= 0.9.
2. With --demo: `python run.py -m experiment=demo` from an empty stage cache and MLflow store
   in a temporary folder, then each stage's wall time as the stage cache recorded it, and a
   second run of the same command (every stage cached) as a share of the first.

    python bench/organism_speed.py [--steps 60] [--adapters full] [--demo]

Run it alone: two torch processes on two cores slow each other down far more than twice.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._compose import compose_config  # noqa: E402
from reasonbridge.curation.pool import synthetic_pool  # noqa: E402
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher  # noqa: E402
from reasonbridge.student.organism_student import organism_tokenizer  # noqa: E402
from reasonbridge.prompts import chat  # noqa: E402
from reasonbridge.training.run import attach_adapters, loss_for  # noqa: E402
from reasonbridge.training.data import IGNORE, collate, encode_chat  # noqa: E402
from reasonbridge.training.loss import hierarchical_loss  # noqa: E402
from reasonbridge.training.sft import TrainSettings, train_causal_lm  # noqa: E402
from reasonbridge.training.speed import choose_cpu_settings  # noqa: E402


def organism_model(cfg, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM
    t = cfg.model.tiny
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads, num_key_value_heads=t.num_heads,
        max_position_embeddings=t.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))


def bare_loop(model, examples: list[dict], settings: TrainSettings, pad_id: int) -> float:
    """Tokens/s of the plainest loop doing the same work (in order, no shuffling)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if settings.precision == "bf16" else nullcontext
    model.train()
    batches = [collate(examples[i:i + settings.batch_size], pad_id)
               for i in range(0, settings.max_steps * settings.batch_size, settings.batch_size)]
    tokens = 0
    start = time.perf_counter()
    for batch in batches:
        segs = batch.pop("segment_ids", None)
        with ctx():
            if settings.loss == "hierarchical":
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss, _ = hierarchical_loss(logits, batch["labels"], segs, settings.loss_weights)
            else:
                loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        tokens += int((batch["labels"] != IGNORE).sum())
    return tokens / (time.perf_counter() - start)


def training_ratio(steps: int, adapters: str) -> None:
    cfg = compose_config([f"adapters={adapters}"])
    tokenizer = organism_tokenizer()
    problems, _ = synthetic_pool(600, seed=0, difficulties=[1, 5], max_operand=10, domains=None,
                                 exclude_texts=set(), suite="organism")
    teacher = SymbolicTeacher(defect_rate=0.0)
    loss = loss_for(cfg)
    examples = []
    for p in problems:
        trace = teacher.generate(p)
        examples.append(encode_chat(tokenizer, chat(p["problem"], trace["text"]), 256,
                                    segments=trace["segments"] if loss == "hierarchical" else None))
    examples = (examples * (1 + steps * cfg.train.batch_size // len(examples)))[:steps * cfg.train.batch_size]
    base = attach_adapters(organism_model(cfg, tokenizer), cfg.adapters)
    cpu = choose_cpu_settings(base, examples[:cfg.train.batch_size], requested="auto")
    settings = TrainSettings(lr=cfg.train.lr, batch_size=cfg.train.batch_size, max_steps=steps, loss=loss,
                             loss_weights=dict(cfg.train.loss_weights), precision=cpu["precision"],
                             warmup_ratio=0.0, log_every=10)
    for attempt in range(2):  # the first pair warms up allocators and kernels
        harness = train_causal_lm(copy.deepcopy(base), examples, settings, pad_id=tokenizer.pad_token_id, seed=0,
                                  progress=False)["tokens_per_s"]
        bare = bare_loop(copy.deepcopy(base), examples, settings, tokenizer.pad_token_id)
    print(f"training, adapters={adapters}, {steps} steps of {settings.batch_size}, {cpu['precision']}, "
          f"{cpu['threads']} thread(s):")
    print(f"  harness {harness:,.0f} tokens/s, bare PyTorch loop {bare:,.0f} tokens/s, "
          f"ratio {harness / bare:.3f} (goal >= 0.9)")


def demo_times() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        cmd = [sys.executable, "run.py", "-m", "experiment=demo", "progress=false", f"paths.cache_dir={tmp}/cache",
               f"hydra.sweep.dir={tmp}/multirun"]
        walls = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
        print("demo (`python run.py -m experiment=demo`), per stage as computed in the first run:")
        for stage in sorted(Path(tmp, "cache").glob("*/*/stage.json"), key=lambda p: json.loads(p.read_text())["created"]):
            info = json.loads(stage.read_text())
            print(f"  {info['stage']:<10} {info['seconds']:7.1f} s")
        print(f"  first run {walls[0]:.1f} s in all; second run {walls[1]:.1f} s "
              f"({100 * walls[1] / walls[0]:.1f}% of the first)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--adapters", default="full")
    parser.add_argument("--demo", action="store_true", help="also time the demo, stage by stage")
    args = parser.parse_args()
    training_ratio(args.steps, args.adapters)
    if args.demo:
        demo_times()


if __name__ == "__main__":
    main()
