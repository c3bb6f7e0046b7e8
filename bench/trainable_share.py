"""Trainable share of `adapters=full` (r=64) on the paper's five models, without weights.

Each model is built on the meta device from its architecture config (bench/paper_models.json,
copied from the public config.json files), the hierarchical adapters are attached exactly as
training does, and parameters are counted. Run from the repository root:

    python bench/trainable_share.py [adapters.r=64 ...]   # extra args are Hydra overrides
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasonbridge.adapters.hierarchical import BottleneckAdapter  # noqa: E402
from reasonbridge.models.loading import count_parameters  # noqa: E402
from reasonbridge.training.run import attach_adapters  # noqa: E402
from bench._compose import compose_config  # noqa: E402


def share(model_config: dict, adapters_cfg) -> dict:
    config = AutoConfig.for_model(**model_config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        model = attach_adapters(model, adapters_cfg)
    trainable, total = count_parameters(model)
    both = 2 * config.num_hidden_layers * BottleneckAdapter.count(config.hidden_size, int(adapters_cfg.r))
    return {"total": total, "trainable": trainable, "pct": 100 * trainable / total,
            "sites": len(model.hierarchical_adapters.sites), "both_pct": 100 * both / (total - trainable)}


def main(overrides: list[str]) -> None:
    cfg = compose_config(["adapters=full", *overrides]).adapters
    models = {k: v for k, v in json.loads((ROOT / "bench" / "paper_models.json").read_text()).items()
              if not k.startswith("_")}
    print(f"adapters={cfg.name} r={cfg.r} (one adapter per layer: strategic after attention in the first third, "
          "tactical / operational after the FFN in the middle / last third)\n")
    print(f"{'model':20s} {'params':>9s} {'layers':>6s} {'d':>5s} {'adapters':>9s} {'trainable':>10s} "
          f"{'ours %':>7s} {'paper %':>8s} {'2/layer %':>9s}")
    for name, spec in models.items():
        s = share(spec["config"], cfg)
        c = spec["config"]
        print(f"{name:20s} {s['total'] / 1e9:8.2f}B {c['num_hidden_layers']:6d} {c['hidden_size']:5d} "
              f"{s['sites']:9d} {s['trainable'] / 1e6:9.1f}M {s['pct']:7.3f} {spec['paper_pct']:8.2f} "
              f"{s['both_pct']:9.3f}")
    print("\n2/layer %: the share if every layer had adapters after both attention and FFN.")


if __name__ == "__main__":
    main(sys.argv[1:])
