"""Hierarchical adapters: structure discovery, placement, variants, save/load."""
from __future__ import annotations

import pytest
import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, GemmaConfig, LlamaConfig, MistralConfig,
                          MixtralConfig, Qwen2Config)

from reasonbridge.adapters.hierarchical import (BottleneckAdapter, decoder_layers, layers_for, plan_sites)
from reasonbridge.adapters.lora import budget_match
from reasonbridge.training.run import attach_adapters, load_trained, save_trained
from reasonbridge.training.sft import TrainSettings, train_causal_lm
from tests.conftest import compose_config

SMALL = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)
ARCHS = {
    "llama": LlamaConfig(**SMALL),
    "qwen2": Qwen2Config(**SMALL),
    "mistral": MistralConfig(**SMALL),
    "mixtral": MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2),
    "gemma": GemmaConfig(**SMALL, head_dim=8),
    "gemma2": Gemma2Config(**SMALL, head_dim=8),
}


def small_model(arch: str = "llama", seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(ARCHS[arch])


def adapters_cfg(name: str, *overrides: str):
    return compose_config([f"adapters={name}", *overrides]).adapters


@pytest.mark.parametrize("arch", list(ARCHS))
def test_adapters_start_as_identity_and_change_the_output_once_trained(arch):
    model = small_model(arch)
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        base = model(ids).logits
    model = attach_adapters(model, adapters_cfg("full"))
    sites = model.hierarchical_adapters.sites
    assert {(s.level, s.position) for s in sites} == {("strategic", "attn"), ("tactical", "mlp"),
                                                     ("operational", "mlp")}
    assert [s.layer for s in sites] == [0, 1, 2, 3, 4, 5]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, base, atol=1e-6)
        for adapter in model.hierarchical_adapters.adapters.values():
            adapter.up.weight.normal_(0, 0.5)
    moved = model(ids).logits
    assert not torch.allclose(moved, base, atol=1e-3)  # every hook actually sits in the forward pass
    loss = moved.float().logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.hierarchical_adapters.parameters())


def test_layer_placement_from_fractions_lists_and_too_few_layers():
    assert layers_for([0.0, 1 / 3], None, 30) == list(range(10))
    assert layers_for([1 / 3, 2 / 3], None, 30) == list(range(10, 20))
    assert layers_for([2 / 3, 1.0], None, 30) == list(range(20, 30))
    assert layers_for(None, [5, 1, 5], 30) == [1, 5]
    # two layers, three levels: the empty middle third falls back to the nearest layer
    assert [layers_for(f, None, 2) for f in ([0, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1])] == [[0], [1], [1]]
    with pytest.raises(ValueError, match="adapters.tactical.layers"):
        layers_for(None, [30], 30, "tactical")
    cfg = adapters_cfg("full", "adapters.strategic.layers=[0,2]", "adapters.operational.position=attn")
    sites = plan_sites(cfg, 6)
    assert [(s.level, s.layer, s.position) for s in sites if s.level != "tactical"] == [
        ("strategic", 0, "attn"), ("strategic", 2, "attn"), ("operational", 4, "attn"), ("operational", 5, "attn")]


def _examples(n: int = 8, length: int = 12):
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(0, 64, (length,), generator=g).tolist(),
             "labels": [-100] * 4 + torch.randint(0, 64, (length - 4,), generator=g).tolist()} for _ in range(n)]


VARIANTS = {
    "full": lambda n: n.startswith("hierarchical_adapters."),
    "no_strategic": lambda n: n.startswith("hierarchical_adapters.") and "strategic" not in n,
    "no_tactical": lambda n: n.startswith("hierarchical_adapters.") and "tactical" not in n,
    "no_operational": lambda n: n.startswith("hierarchical_adapters.") and "operational" not in n,
    "lora": lambda n: "lora_" in n,
    "full_ft": lambda n: True,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_trains_exactly_its_parameters_and_reloads(variant, tmp_path):
    model = attach_adapters(small_model(), adapters_cfg(variant))
    intended = {n for n, _ in model.named_parameters() if VARIANTS[variant](n)}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == intended and intended
    if variant.startswith("no_"):
        assert {s.level for s in model.hierarchical_adapters.sites} == \
            {"strategic", "tactical", "operational"} - {variant[3:]}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # two steps: zero-initialised up-projections (and LoRA B) give the other half a gradient only then
    result = train_causal_lm(model, _examples(), TrainSettings(lr=1e-2, batch_size=4, precision="fp32"),
                             pad_id=0, seed=0, progress=False)
    model = result["model"]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == intended

    save_trained(model, variant, tmp_path / "trained" / "adapter")
    base_dir = tmp_path / "base"
    small_model().save_pretrained(base_dir)
    _tokenizer_for(base_dir)
    reloaded, _ = load_trained(str(base_dir), tmp_path / "trained")
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model.eval()(ids).logits, atol=1e-5)
    if variant != "full_ft":  # only the trainable weights are stored
        stored = sum(f.stat().st_size for f in (tmp_path / "trained" / "adapter").iterdir())
        assert stored < 0.8 * sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))


@pytest.mark.parametrize("variant", ["lora", "full_ft"])
def test_the_hierarchical_loss_trains_lora_and_full_finetuning(variant):
    """The loss needs each token's level, not adapters: on LoRA and on every weight it gives each level its
    term and trains exactly what the variant trains (Table 2's lora and full_ft rows keep the method's loss)."""
    examples = [dict(x, segment_ids=[0] * 4 + [1, 1, 2, 2, 3, 3, 4, 4]) for x in _examples()]
    model = attach_adapters(small_model(), adapters_cfg(variant))
    intended = {n for n, _ in model.named_parameters() if VARIANTS[variant](n)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_causal_lm(model, examples, TrainSettings(lr=1e-2, batch_size=4, precision="fp32",
                                                            loss="hierarchical", log_every=1),
                             pad_id=0, seed=0, progress=False)
    assert {"loss_out", "loss_strategic", "loss_tactical", "loss_operational"} <= set(result["history"][-1])
    changed = {n for n, p in result["model"].named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == intended


def _tokenizer_for(folder):
    """A minimal fast tokenizer so `load_model` finds one beside the weights."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    vocab = {f"t{i}": i for i in range(64)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                                  pad_token="t0", eos_token="t1")
    tok.save_pretrained(folder)


def test_lora_auto_rank_matches_the_hierarchical_budget():
    model = attach_adapters(small_model(), adapters_cfg("lora"))
    hierarchical = 6 * BottleneckAdapter.count(32, 64)  # one adapter per layer at r=64
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora == 9 * 2784 and abs(lora / hierarchical - 1) < 0.05  # rank 9: 2,784 per rank


# wide enough that whole ranks can land within 5% of the hierarchical budget (d=64, 6 layers)
MATCHABLE = dict(SMALL, hidden_size=64, intermediate_size=32)
MATCH_ARCHS = {
    "llama": LlamaConfig(**MATCHABLE),
    "qwen2": Qwen2Config(**MATCHABLE),
    "mistral": MistralConfig(**MATCHABLE),
    "mixtral": MixtralConfig(**MATCHABLE, num_local_experts=2, num_experts_per_tok=1),
    "gemma": GemmaConfig(**MATCHABLE, head_dim=16),
}


@pytest.mark.parametrize("arch", list(MATCH_ARCHS))
def test_lora_budget_counts_what_peft_trains(arch):
    """r=auto counts the parameters peft makes trainable on the architecture (Mixtral: the router and
    the fused experts, which are no nn.Linear), so the attached LoRA is within 5% of the budget."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(MATCH_ARCHS[arch])
    cfg = adapters_cfg("lora")
    match = budget_match(model, cfg)
    assert match.budget == 6 * BottleneckAdapter.count(64, 64)
    attached = attach_adapters(model, cfg)
    trained = sum(p.numel() for p in attached.parameters() if p.requires_grad)
    assert trained == match.trainable and abs(trained / match.budget - 1) < 0.05
    if arch == "mixtral":
        assert {"gate", "experts"} <= set(match.adapted)


def test_lora_budget_says_why_it_cannot_match(caplog):
    """Mixtral-8x7B's widths (three layers, one per level, on the meta device): rank 1 already
    trains 1.33x the hierarchical adapters (peft adapts all eight experts), and the run says so."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(MixtralConfig(num_hidden_layers=3))
    with caplog.at_level("WARNING", logger="reasonbridge.adapters.lora"):
        match = budget_match(model, adapters_cfg("lora"))
    assert match.rank == 1 and match.ratio == pytest.approx(1.33, abs=0.01)
    assert "no rank matches" in caplog.text and "rank 1, the smallest rank, trains" in caplog.text
    assert "experts" in caplog.text and "adapters.target_modules" in caplog.text


def test_decoder_layers_error_names_the_problem():
    with pytest.raises(ValueError, match="decoder layers"):
        decoder_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("override, field", [
    ("adapters.r=auto", "adapters.r"),
    ("adapters.strategic.fraction=[0.5,0.2]", "adapters.strategic.fraction"),
    ("adapters.tactical.position=ffn", "adapters.tactical.position"),
    ("adapters.levels=[strategic,planning]", "adapters.levels"),
    ("train.loss=kl", "train.loss"),
    ("train.precision=fp16", "train.precision"),
    ("train.loss_weights.tactical=-1", "train.loss_weights.tactical"),
])
def test_invalid_adapter_and_training_options_fail_naming_the_field(override, field):
    from reasonbridge.config import ConfigError, validate
    cfg = compose_config(["adapters=full", override])
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(cfg)


@pytest.mark.slow
def test_smollm2_takes_the_hierarchical_adapters_and_trains(micro_cfg):
    """SmolLM2-135M (30 Llama layers, d=576): sites by thirds, identity at init, one real step."""
    from reasonbridge.models.loading import load_model
    from reasonbridge.pipeline import Pipeline
    from reasonbridge.prompts import chat
    from reasonbridge.training.data import encode_chat

    pipe = Pipeline(micro_cfg("model=smollm2_135m", "stop_after=student"))
    model, tokenizer = load_model(pipe.student_path(pipe.student()))
    example = encode_chat(tokenizer, chat("What is 2 + 3?", "Strategy: add.\nFinal Answer: \\boxed{5}"), 64)
    ids = torch.tensor([example["input_ids"]])
    with torch.no_grad():
        base = model(ids).logits
    model = attach_adapters(model, adapters_cfg("full"))
    sites = model.hierarchical_adapters.sites
    assert [s.layer for s in sites if s.level == "strategic"] == list(range(10))
    assert [s.layer for s in sites if s.level == "operational"] == list(range(20, 30))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, base, atol=1e-5)
    result = train_causal_lm(model, [example] * 2, TrainSettings(lr=1e-3, batch_size=2, precision="bf16"),
                             pad_id=tokenizer.pad_token_id, seed=0, progress=False)
    assert result["steps"] == 1 and result["precision"] == "bf16"
    ups = [a.up.weight for a in result["model"].hierarchical_adapters.adapters.values()]
    assert all(w.abs().sum() > 0 for w in ups)  # every adapter got a gradient through the real model


@pytest.mark.parametrize("form", ["sequential", "parallel", "input"])
def test_every_adapter_form_starts_as_identity_acts_once_trained_and_reloads_as_itself(form, tmp_path):
    model = small_model()
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        base = model(ids).logits
    model = attach_adapters(model, adapters_cfg("full", f"adapters.form={form}"))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, base, atol=1e-6)
        for adapter in model.hierarchical_adapters.adapters.values():
            adapter.up.weight.normal_(0, 0.5)
        moved = model(ids).logits
    assert not torch.allclose(moved, base, atol=1e-3)
    save_trained(model, "full", tmp_path / "trained" / "adapter")
    small_model().save_pretrained(tmp_path / "base")
    _tokenizer_for(tmp_path / "base")
    reloaded, _ = load_trained(str(tmp_path / "base"), tmp_path / "trained")
    assert reloaded.hierarchical_adapters.form == form
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, moved, atol=1e-5)
