"""peft LoRA: the parameter-efficient baseline (`adapters=lora`)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from reasonbridge.adapters.hierarchical import (LEVELS, decoder_layers, hidden_size, hierarchical_param_count,
                                                plan_sites)


def _targets(cfg) -> str | list[str]:
    target = cfg.target_modules
    if not isinstance(target, str):
        target = list(OmegaConf.to_container(target) if OmegaConf.is_config(target) else target)
    return target


def lora_params_per_rank(model, target_modules: str | list[str]) -> int:
    """LoRA parameters per unit of rank: Σ (in + out) over the targeted linear layers
    ("all-linear" = every nn.Linear but the output head, as peft does)."""
    head = model.get_output_embeddings()
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module is head:
            continue
        if target_modules != "all-linear" and name.split(".")[-1] not in target_modules:
            continue
        total += module.in_features + module.out_features
    if total == 0:
        raise ValueError(f"adapters.target_modules={target_modules!r} matches no linear layer of the model")
    return total


def budget_matched_rank(model, cfg) -> int:
    """The LoRA rank whose parameter count is nearest the full hierarchical set at `match_r`."""
    n_layers = len(decoder_layers(model))
    budget = hierarchical_param_count(hidden_size(model), cfg.match_r, len(plan_sites(cfg, n_layers, LEVELS)))
    return max(1, round(budget / lora_params_per_rank(model, _targets(cfg))))


def attach_lora(model, cfg):
    r = budget_matched_rank(model, cfg) if cfg.r == "auto" else int(cfg.r)
    alpha = cfg.alpha if cfg.alpha is not None else 2 * r
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=cfg.dropout, target_modules=_targets(cfg),
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_lora(base_model, adapter_dir: str | Path):
    """Re-attach saved LoRA weights to the base model they were trained on."""
    return PeftModel.from_pretrained(base_model, str(adapter_dir))
