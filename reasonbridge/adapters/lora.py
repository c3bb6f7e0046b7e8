"""peft LoRA: the parameter-efficient baseline (`adapters=lora`)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model


def attach_lora(model, cfg):
    target = cfg.target_modules
    if not isinstance(target, str):
        target = list(OmegaConf.to_container(target) if OmegaConf.is_config(target) else target)
    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=target,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_lora(base_model, adapter_dir: str | Path):
    """Re-attach saved LoRA weights to the base model they were trained on."""
    return PeftModel.from_pretrained(base_model, str(adapter_dir))
