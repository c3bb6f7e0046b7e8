"""peft LoRA: the parameter-efficient baseline (`adapters=lora`).

`r: auto` matches the hierarchical adapters' parameter count by counting what peft itself makes
trainable on (a meta-device copy of) the model at hand, so whatever peft adapts on that
architecture (a Mixtral router and its fused experts, say) is counted, and what it skips is not.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model

from reasonbridge.adapters.hierarchical import (LEVELS, decoder_layers, hidden_size, hierarchical_param_count,
                                                plan_sites)

log = logging.getLogger(__name__)
MATCH_TOLERANCE = 0.05  # r=auto: a rank whose count is further than this from the budget is logged, with why


def _targets(cfg) -> str | list[str]:
    target = cfg.target_modules
    if not isinstance(target, str):
        target = list(OmegaConf.to_container(target) if OmegaConf.is_config(target) else target)
    return target


def _lora_config(cfg, r: int) -> LoraConfig:
    alpha = cfg.alpha if cfg.alpha is not None else 2 * r
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=cfg.dropout, target_modules=_targets(cfg),
                      task_type="CAUSAL_LM")


def peft_trainable(model, cfg, r: int) -> tuple[int, list[str]]:
    """Parameters peft trains with LoRA rank ``r`` on this model's architecture, and the module
    names it adapts; counted on a copy built on the meta device (no memory, no weights touched)."""
    with torch.device("meta"):
        shadow = type(model)(copy.deepcopy(model.config))
    try:
        peft_model = get_peft_model(shadow, _lora_config(cfg, r))
    except ValueError as e:  # peft: target modules not found
        raise ValueError(f"adapters.target_modules={_targets(cfg)!r}: {e}") from None
    trainable = peft_model.get_nb_trainable_parameters()[0]
    adapted = sorted({part for name, p in peft_model.named_parameters() if p.requires_grad and ".lora_" in name
                      for part in [next(x for x in reversed(name.split(".lora_")[0].split("."))
                                        if x != "base_layer")]})
    return trainable, adapted


@dataclass(frozen=True)
class BudgetMatch:
    rank: int
    trainable: int  # what peft trains at that rank
    budget: int  # the full hierarchical set at `match_r`
    adapted: tuple[str, ...]  # module names peft adapts

    @property
    def ratio(self) -> float:
        return self.trainable / self.budget


def budget_match(model, cfg) -> BudgetMatch:
    """The LoRA rank whose trainable count (as peft builds it) is nearest the full hierarchical
    set at `match_r`; when no rank comes within 5% (ranks are whole numbers: the organism's
    student steps by 18% of the budget; Mixtral-8x7B's rank 1 alone is 1.33x), a warning says so and why."""
    budget = hierarchical_param_count(hidden_size(model), cfg.match_r,
                                      len(plan_sites(cfg, len(decoder_layers(model)), LEVELS)))
    one, adapted = peft_trainable(model, cfg, 1)
    two, _ = peft_trainable(model, cfg, 2)
    per_rank, fixed = two - one, 2 * one - two  # linear in r; `fixed`: e.g. modules_to_save
    rank = max(1, round((budget - fixed) / per_rank))
    trainable = {1: one, 2: two}.get(rank) or peft_trainable(model, cfg, rank)[0]
    match = BudgetMatch(rank, trainable, budget, tuple(adapted))
    if abs(match.ratio - 1) > MATCH_TOLERANCE:
        smallest = ", the smallest rank," if rank == 1 else ""
        log.warning("adapters=lora r=auto: no rank matches the hierarchical adapters' %s parameters (match_r=%d) "
                    "within %.0f%% on this %s model: rank %d%s trains %s (%.2fx), and each rank adds %s over the "
                    "modules peft adapts (%s); set adapters.r, or adapters.target_modules to fewer modules",
                    f"{budget:,}", cfg.match_r, 100 * MATCH_TOLERANCE, getattr(model.config, "model_type", "?"),
                    rank, smallest, f"{trainable:,}", match.ratio, f"{per_rank:,}", ", ".join(adapted))
    else:
        log.info("adapters=lora r=auto: rank %d trains %s parameters, %.3fx the hierarchical adapters' %s",
                 rank, f"{trainable:,}", match.ratio, f"{budget:,}")
    return match


def budget_matched_rank(model, cfg) -> int:
    return budget_match(model, cfg).rank


def attach_lora(model, cfg):
    r = budget_matched_rank(model, cfg) if cfg.r == "auto" else int(cfg.r)
    return get_peft_model(model, _lora_config(cfg, r))


def load_lora(base_model, adapter_dir: str | Path):
    """Re-attach saved LoRA weights to the base model they were trained on."""
    return PeftModel.from_pretrained(base_model, str(adapter_dir))
