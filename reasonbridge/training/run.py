"""Train the student on the selected traces with the configured adapters; reload it."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate import PartialState
from omegaconf import DictConfig, OmegaConf

from reasonbridge.adapters.hierarchical import attach_hierarchical, load_hierarchical, plan_sites, save_hierarchical
from reasonbridge.adapters.lora import attach_lora, load_lora
from reasonbridge.answers import last_boxed
from reasonbridge.io import read_jsonl
from reasonbridge.models.loading import DTYPES, count_parameters, load_model
from reasonbridge.prompts import chat
from reasonbridge.training.data import encode_chat, unlabelled_segments
from reasonbridge.training.sft import TrainSettings, train_causal_lm
from reasonbridge.training.speed import choose_cpu_settings

HIERARCHICAL = ("full", "no_strategic", "no_tactical", "no_operational")
TRAINED_FILE = "trained.json"  # in the adapter folder: which kind of weights it holds
CPU_FILE = "cpu.json"  # in the checkpoint folder: the precision and threads the run trains with


def attach_adapters(model, adapters_cfg):
    """The model with exactly the variant's parameters trainable."""
    name = adapters_cfg.name
    if name in HIERARCHICAL:
        n_layers = model.config.get_text_config().num_hidden_layers
        return attach_hierarchical(model, plan_sites(adapters_cfg, n_layers), int(adapters_cfg.r),
                                   adapters_cfg.form)
    if name == "lora":
        return attach_lora(model, adapters_cfg)
    if name == "full_ft":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    raise ValueError(f"adapters={name} does not train")


def loss_for(cfg: DictConfig) -> str:
    if cfg.train.loss != "auto":
        return cfg.train.loss
    return "hierarchical" if cfg.adapters.name in HIERARCHICAL else "sft"


def save_trained(model, adapters_name: str, out: Path) -> None:
    """Only what training changed, plus what re-attaches it (see `load_trained`)."""
    out.mkdir(parents=True, exist_ok=True)
    if adapters_name in HIERARCHICAL:
        save_hierarchical(model, out)
        kind = "hierarchical"
    elif adapters_name == "lora":
        model.save_pretrained(out)  # peft saves only the adapter weights
        kind = "lora"
    else:  # full_ft: every weight is trainable, so the whole model is the artifact
        model.save_pretrained(out)
        kind = "full_ft"
    (out / TRAINED_FILE).write_text(json.dumps({"kind": kind, "adapters": adapters_name}))


def train_student(cfg: DictConfig, student_path: str, selected_path: Path, out: Path,
                  checkpoint_dir: Path | None = None, on_step=None) -> dict:
    model, tokenizer = load_model(student_path, cfg.model.dtype)
    torch.manual_seed(cfg.seed)  # adapter initialisation is part of the run's result
    model = attach_adapters(model, cfg.adapters)
    trainable, total = count_parameters(model)
    loss = loss_for(cfg)
    if loss == "hierarchical" and not tokenizer.is_fast:
        raise ValueError(f"train.loss=hierarchical maps trace segments to tokens through a fast tokenizer's "
                         f"offsets; {student_path} has a slow tokenizer (use train.loss=sft)")
    rows = read_jsonl(selected_path, required=("problem", "text"))
    # Traces without `segments` (free-form teachers) train on L_out alone over the whole turn; with
    # plain SFT only the segments that carry no label are read: injected phrases, retracted lines.
    examples = [encode_chat(tokenizer, chat(r["problem"], r["text"]), cfg.train.max_seq_len,
                            segments=(r.get("segments") or []) if loss == "hierarchical" else None,
                            injected=unlabelled_segments(r.get("segments") or [], cfg.train.retracted))
                for r in rows]
    t = cfg.train
    blocks = None
    if t.get("curriculum", "none") == "instruction_first":
        first = format_examples(tokenizer, rows, t.max_seq_len, hierarchical=loss == "hierarchical")
        examples, blocks = first + examples, (len(first), len(examples))
    # on CPU: the faster precision (for auto) and thread count, measured on this model and batch;
    # a resumed run keeps the first attempt's choice, so it ends exactly where an uninterrupted one would
    cpu = {}
    if t.processes == 1:
        saved = Path(checkpoint_dir) / CPU_FILE if checkpoint_dir else None
        if saved is not None and saved.exists():
            cpu = json.loads(saved.read_text())
            torch.set_num_threads(cpu["threads"])
        else:
            cpu = choose_cpu_settings(model, examples[:t.batch_size], requested=t.precision)
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(cpu))
    result = train_causal_lm(
        model, examples,
        TrainSettings(lr=t.lr, epochs=t.epochs, batch_size=t.batch_size, grad_accum=t.grad_accum,
                      warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay, max_steps=t.max_steps,
                      log_every=t.log_every, loss=loss,
                      loss_weights=OmegaConf.to_container(t.loss_weights) if OmegaConf.is_config(t.loss_weights)
                      else dict(t.loss_weights),
                      precision=cpu.get("precision", t.precision), gradient_checkpointing=t.gradient_checkpointing,
                      save_every=t.save_every, checkpoint_dir=checkpoint_dir, blocks=blocks),
        pad_id=tokenizer.pad_token_id, seed=cfg.seed, progress=cfg.progress, desc=f"train {cfg.adapters.name}",
        on_step=on_step,
    )
    model = result.pop("model")
    if PartialState().is_main_process:  # under `accelerate launch`, rank 0 writes the artifact
        save_trained(model, cfg.adapters.name, out / "adapter")
    return {**result, "cpu": cpu, "curriculum": list(blocks) if blocks else None, "adapters": cfg.adapters.name, "loss": loss, "examples": len(examples),
            "segmented_examples": sum(bool(r.get("segments")) for r in rows) if loss == "hierarchical" else 0,
            "trainable_params": trainable, "total_params": total,
            "trainable_pct": 100.0 * trainable / total}


def format_examples(tokenizer, rows: list[dict], max_len: int, *, hierarchical: bool) -> list[dict]:
    """instruction_first's first block: each problem answered in the instructed format alone
    (the trace's own last boxed answer, as the trace writes it: the organism's word-level tokenizer
    knows `\\boxed{ 7 }` but not `\\boxed{7}`), the reasoning left for the traces that follow."""
    boxed = [(r, last_boxed(r["text"])) for r in rows]
    return [encode_chat(tokenizer, chat(r["problem"], answer), max_len, segments=[] if hierarchical else None)
            for r, answer in boxed if answer is not None]


def load_trained(student_path: str, trained_dir: Path | None, dtype: str = "float32"):
    """The base student, with what training changed re-attached (any `adapters` variant)."""
    model, tokenizer = load_model(student_path, dtype)
    if trained_dir is not None:
        adapter = Path(trained_dir) / "adapter"
        marker = adapter / TRAINED_FILE
        kind = json.loads(marker.read_text())["kind"] if marker.exists() else "lora"  # pre-marker artifacts
        if kind == "hierarchical":
            model = load_hierarchical(model, adapter)
        elif kind == "lora":
            model = load_lora(model, adapter)
        elif kind == "full_ft":
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained(adapter, dtype=DTYPES[dtype])
        else:
            raise ValueError(f"{marker}: unknown trained kind {kind!r}")
    model.eval()
    return model, tokenizer
