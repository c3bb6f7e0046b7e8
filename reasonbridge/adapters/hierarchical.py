"""Hierarchical reasoning adapters (paper §3.2): bottleneck adapters at three depths.

strategic   — after the self-attention output of the early layers,
tactical    — after the feed-forward output of the middle layers,
operational — after the feed-forward output of the late layers (the paper only says
              "integrated into later layers"; we read that as the same site as tactical).

Each adapter is h + up(GELU(down(h))) with `up` zero-initialised, so an untouched model
computes exactly the base model. Adapters are injected with forward hooks on the decoder
layers' attention and feed-forward submodules, which are found by structure (the model's
`num_hidden_layers`-long ModuleList of decoder layers, and in each layer the child whose name
says attention and the other child holding weight matrices), so Llama, Qwen2, Mistral,
Mixtral (sparse-MoE block) and Gemma layers work without a per-model table.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LEVELS = ("strategic", "tactical", "operational")
POSITIONS = ("attn", "mlp")
FORMS = ("sequential", "parallel", "input")
PLACEMENT_FILE = "hierarchical_adapters.json"
WEIGHTS_FILE = "hierarchical_adapters.safetensors"


class BottleneckAdapter(nn.Module):
    """d → r, GELU, r → d, added to its input; starts as the identity."""

    def __init__(self, d: int, r: int):
        super().__init__()
        self.down = nn.Linear(d, r)
        self.up = nn.Linear(r, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def delta(self, h: torch.Tensor) -> torch.Tensor:
        # the adapter keeps fp32 weights on a bf16 base: lr-5e-5 updates would vanish in bf16
        return self.up(nn.functional.gelu(self.down(h.to(self.down.weight.dtype)))).to(h.dtype)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.delta(h)

    @staticmethod
    def count(d: int, r: int) -> int:
        return 2 * d * r + r + d


@dataclass(frozen=True)
class Site:
    level: str
    layer: int
    position: str  # "attn" or "mlp"

    @property
    def name(self) -> str:
        return f"{self.level}.layer{self.layer}.{self.position}"


# -- finding the layers by structure ------------------------------------------------------
def _text_config(model):
    config = getattr(model, "config", None)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def decoder_layers(model) -> nn.ModuleList:
    """The ModuleList of decoder layers: `num_hidden_layers` long, each with an attention child."""
    n = getattr(_text_config(model), "num_hidden_layers", None)
    candidates = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0
                  and (n is None or len(m) == n) and _attention_child(m[0]) is not None]
    if not candidates:
        raise ValueError(f"{type(model).__name__}: found no list of {n} decoder layers with a self-attention "
                         "submodule; hierarchical adapters need a decoder-only transformer")
    return candidates[0]


def _has_matrix(module: nn.Module) -> bool:
    return any(p.dim() >= 2 for p in module.parameters())


def _attention_child(layer: nn.Module) -> nn.Module | None:
    for name, child in layer.named_children():
        if "attn" in name.lower() or "attention" in type(child).__name__.lower():
            return child
    return None


def _mlp_child(layer: nn.Module) -> nn.Module:
    attn = _attention_child(layer)
    heavy = [c for c in layer.children() if c is not attn and _has_matrix(c)]
    if len(heavy) != 1:
        raise ValueError(f"{type(layer).__name__}: expected one feed-forward submodule besides attention, "
                         f"found {[type(c).__name__ for c in heavy]}")
    return heavy[0]


def hidden_size(model) -> int:
    return int(_text_config(model).hidden_size)


# -- placement ---------------------------------------------------------------------------
def layers_for(fraction: Sequence[float] | None, explicit: Sequence[int] | None, n_layers: int,
               level: str = "") -> list[int]:
    """Layers of one level: an explicit list, or the layers whose centre (i+0.5)/n lies in
    [lo, hi) (hi=1 includes the last). A non-empty range that catches no centre — fewer layers
    than levels — gets the layer nearest to its middle, so every level is present."""
    if explicit is not None:
        layers = [int(i) for i in explicit]
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            raise ValueError(f"adapters.{level}.layers: {bad} outside the model's {n_layers} layers")
        return sorted(set(layers))
    lo, hi = float(fraction[0]), float(fraction[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"adapters.{level}.fraction={[lo, hi]}: need 0 <= low < high <= 1")
    layers = [i for i in range(n_layers) if lo <= (i + 0.5) / n_layers < hi or (hi == 1.0 and i == n_layers - 1)]
    if not layers:
        layers = [min(n_layers - 1, max(0, int((lo + hi) / 2 * n_layers)))]
    return layers


def plan_sites(adapters_cfg, n_layers: int, levels: Iterable[str] | None = None) -> list[Site]:
    """Adapter sites for the levels switched on in `adapters_cfg` (or the given levels)."""
    sites = []
    for level in (levels if levels is not None else adapters_cfg.levels):
        if level not in LEVELS:
            raise ValueError(f"adapters.levels: unknown level {level!r}, expected some of {list(LEVELS)}")
        spec = adapters_cfg[level] if hasattr(adapters_cfg, "__getitem__") else getattr(adapters_cfg, level)
        if spec.position not in POSITIONS:
            raise ValueError(f"adapters.{level}.position={spec.position!r}: expected one of {list(POSITIONS)}")
        explicit = list(spec.layers) if spec.layers is not None else None
        for layer in layers_for(list(spec.fraction), explicit, n_layers, level):
            sites.append(Site(level, layer, spec.position))
    return sites


# -- injection ---------------------------------------------------------------------------
def _adapt_output(adapter: BottleneckAdapter):
    """Sequential (Houlsby): the adapter reads the sublayer's output and adds to it."""
    def hook(module, args, output):
        if isinstance(output, tuple):  # attention returns (hidden, weights); old MoE blocks (hidden, router)
            return (adapter(output[0]), *output[1:])
        return adapter(output)
    return hook


def _adapt_input(adapter: BottleneckAdapter):
    """Input: the adapter reads the sublayer's input and adds to it, so the sublayer itself sees
    the change (after attention: its queries, keys and values)."""
    def hook(module, args, kwargs):
        if args:
            return (adapter(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": adapter(kwargs["hidden_states"])}
    return hook


def _adapt_parallel(adapter: BottleneckAdapter):
    """Parallel (He et al., 2022): the adapter reads the sublayer's input, the normalised residual
    stream, and adds to the sublayer's output."""
    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs["hidden_states"]
        if isinstance(output, tuple):
            return (output[0] + adapter.delta(x), *output[1:])
        return output + adapter.delta(x)
    return hook


class HierarchicalAdapters(nn.Module):
    """The adapters of one model, registered as `model.hierarchical_adapters`."""

    def __init__(self, sites: list[Site], d: int, r: int, form: str = "sequential"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"adapters.form={form!r}: expected one of {list(FORMS)}")
        self.sites, self.d, self.r, self.form = sites, d, r, form
        self.adapters = nn.ModuleDict({s.name.replace(".", "_"): BottleneckAdapter(d, r) for s in sites})
        self.handles: list = []

    def placement(self) -> dict:
        return {"kind": "hierarchical", "d": self.d, "r": self.r, "form": self.form,
                "sites": [asdict(s) for s in self.sites]}


def attach_hierarchical(model, sites: list[Site], r: int, form: str = "sequential") -> nn.Module:
    """Freeze the model and hook a trainable bottleneck adapter onto every site; returns the model."""
    if hasattr(model, "hierarchical_adapters"):
        raise ValueError("model already has hierarchical adapters attached")
    if not sites:
        raise ValueError("no adapter sites: at least one level must be placed")
    layers = decoder_layers(model)
    ref = next(model.parameters())
    module = HierarchicalAdapters(sites, hidden_size(model), r, form).to(device=ref.device, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    model.hierarchical_adapters = module
    for site in sites:
        layer = layers[site.layer]
        target = _attention_child(layer) if site.position == "attn" else _mlp_child(layer)
        adapter = module.adapters[site.name.replace(".", "_")]
        if form == "parallel":
            module.handles.append(target.register_forward_hook(_adapt_parallel(adapter), with_kwargs=True))
        elif form == "input":
            module.handles.append(target.register_forward_pre_hook(_adapt_input(adapter), with_kwargs=True))
        else:
            module.handles.append(target.register_forward_hook(_adapt_output(adapter)))
    return model


def hierarchical_param_count(d: int, r: int, n_sites: int) -> int:
    return n_sites * BottleneckAdapter.count(d, r)


def save_hierarchical(model, out_dir: Path) -> None:
    """Only the adapter weights plus the placement needed to re-attach them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    module: HierarchicalAdapters = model.hierarchical_adapters
    save_file({k: v.detach().contiguous().cpu() for k, v in module.adapters.state_dict().items()},
              str(out_dir / WEIGHTS_FILE))
    (out_dir / PLACEMENT_FILE).write_text(json.dumps(module.placement(), indent=2))


def load_hierarchical(model, adapter_dir: Path):
    """Re-attach saved adapters to the base model they were trained on."""
    placement = json.loads((Path(adapter_dir) / PLACEMENT_FILE).read_text())
    if placement["d"] != hidden_size(model):
        raise ValueError(f"{adapter_dir}: adapters were trained for hidden size {placement['d']}, "
                         f"the model has {hidden_size(model)}")
    attach_hierarchical(model, [Site(**s) for s in placement["sites"]], placement["r"],
                        placement.get("form", "sequential"))
    state = load_file(str(Path(adapter_dir) / WEIGHTS_FILE))
    model.hierarchical_adapters.adapters.load_state_dict(state)
    return model
