"""Train the student on the selected traces with the configured adapters; reload it."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from reasonbridge.adapters.lora import attach_lora, load_lora
from reasonbridge.io import read_jsonl
from reasonbridge.models.loading import count_parameters, load_model
from reasonbridge.prompts import chat
from reasonbridge.training.sft import TrainSettings, encode_chat, train_causal_lm


def train_student(cfg: DictConfig, student_path: str, selected_path: Path, out: Path) -> dict:
    model, tokenizer = load_model(student_path, cfg.model.dtype)
    if cfg.adapters.name == "lora":
        model = attach_lora(model, cfg.adapters)
    else:
        raise ValueError(f"adapters={cfg.adapters.name} does not train")
    trainable, total = count_parameters(model)
    rows = read_jsonl(selected_path, required=("problem", "text"))
    examples = [encode_chat(tokenizer, chat(r["problem"], r["text"]), cfg.train.max_seq_len) for r in rows]
    t = cfg.train
    result = train_causal_lm(
        model, examples,
        TrainSettings(lr=t.lr, epochs=t.epochs, batch_size=t.batch_size, grad_accum=t.grad_accum,
                      warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay, max_steps=t.max_steps,
                      log_every=t.log_every),
        pad_id=tokenizer.pad_token_id, seed=cfg.seed, progress=cfg.progress, desc=f"train {cfg.adapters.name}",
    )
    model = result.pop("model")
    model.save_pretrained(out / "adapter")  # peft saves only the adapter weights
    return {**result, "adapters": cfg.adapters.name, "examples": len(examples),
            "trainable_params": trainable, "total_params": total,
            "trainable_pct": 100.0 * trainable / total}


def load_trained(student_path: str, trained_dir: Path | None, dtype: str = "float32"):
    """The base student, with its trained adapter re-attached when there is one."""
    model, tokenizer = load_model(student_path, dtype)
    if trained_dir is not None:
        model = load_lora(model, Path(trained_dir) / "adapter")
    model.eval()
    return model, tokenizer
