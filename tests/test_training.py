"""Hierarchical loss, segment-aware encoding and resumable training."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.curation.pool import synthetic_pool
from reasonbridge.models.loading import load_model
from reasonbridge.pipeline import Pipeline
from reasonbridge.prompts import chat
from reasonbridge.training.run import attach_adapters, train_student
from reasonbridge.training.data import IGNORE, SEGMENT_IDS, encode_chat
from reasonbridge.training.loss import hierarchical_loss
from reasonbridge.training.sft import TrainSettings, train_causal_lm
from reasonbridge.io import write_jsonl
from tests.conftest import compose_config


@pytest.fixture
def micro_student(micro_cfg) -> str:
    cfg = micro_cfg("stop_after=student")
    pipe = Pipeline(cfg)
    return pipe.student_path(pipe.student())


def _traces(n: int, seed: int = 0) -> list[dict]:
    problems, _ = synthetic_pool(n, seed=seed, difficulties=[1, 3], max_operand=20, domains=None,
                                 exclude_texts=set(), suite="organism")  # the micro student's suite
    teacher = SymbolicTeacher(defect_rate=0.0, seed=seed)
    return [{**teacher.generate(p), "problem": p["problem"]} for p in problems]


def test_segment_ids_follow_the_trace_segments(micro_student):
    _, tokenizer = load_model(micro_student)
    trace = _traces(1)[0]
    ex = encode_chat(tokenizer, chat(trace["problem"], trace["text"]), 512, segments=trace["segments"])
    assert len(ex["segment_ids"]) == len(ex["input_ids"]) == len(ex["labels"])
    for seg in trace["segments"]:
        ids = [t for t, s, lab in zip(ex["input_ids"], ex["segment_ids"], ex["labels"])
               if s == SEGMENT_IDS[seg["level"]] and lab != IGNORE]
        decoded = "".join(tokenizer.decode(ids).split())  # compared without whitespace: tokenizers differ there
        assert "".join(trace["text"][seg["start"]:seg["end"]].split()) in decoded
    # the prompt is never in a segment; the end-of-turn token is "other" (part of L_out)
    prompt_len = ex["labels"].index(next(lab for lab in ex["labels"] if lab != IGNORE))
    assert set(ex["segment_ids"][:prompt_len]) == {0}
    eos = max(i for i, t in enumerate(ex["input_ids"]) if t == tokenizer.eos_token_id)
    assert eos > prompt_len and ex["labels"][eos] == tokenizer.eos_token_id and ex["segment_ids"][eos] == 0


def test_injected_intervention_phrases_carry_no_label_under_either_loss():
    """A reflected organism trace: the phrase (and GII's cite) is what an intervention injects at
    test time; the student learns what follows it, never to write it, with plain SFT as with the
    hierarchical loss."""
    from reasonbridge.config import default_cites, default_phrases
    from reasonbridge.student.organism_student import organism_tokenizer
    tokenizer = organism_tokenizer()
    problems, _ = synthetic_pool(60, seed=0, difficulties=[1, 3], max_operand=20, domains=None,
                                 exclude_texts=set(), suite="organism")
    teacher = SymbolicTeacher(defect_rate=0.0, corrections=1.0, phrases=default_phrases(), cite=default_cites())
    trace = next(t for t in (teacher.generate(p) for p in problems) if "Is" in t["text"])
    problem = next(p["problem"] for p in problems if p["id"] == trace["problem_id"])
    injected = [s for s in trace["segments"] if s["level"] == "intervention"]
    assert len(injected) == 1
    phrase = trace["text"][injected[0]["start"]:injected[0]["end"]]
    for ex in (encode_chat(tokenizer, chat(problem, trace["text"]), 512, segments=trace["segments"]),
               encode_chat(tokenizer, chat(problem, trace["text"]), 512, injected=injected)):
        words = tokenizer.convert_ids_to_tokens(ex["input_ids"])
        unlabelled = [w for w, lab in zip(words, ex["labels"]) if lab == IGNORE]
        labelled = [w for w, lab in zip(words, ex["labels"]) if lab != IGNORE]
        assert " ".join(unlabelled).endswith(" ".join(phrase.split()))  # the prompt, then the phrase
        assert "right?" not in labelled and "Plan:" in labelled[labelled.index("Check:"):]


def test_hierarchical_loss_is_the_weighted_sum_of_per_segment_means():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11)
    labels = torch.tensor([[IGNORE, IGNORE, 1, 2, 3, 4, 5], [IGNORE, 6, 7, 8, 9, IGNORE, IGNORE]])
    segs = torch.tensor([[0, 0, 1, 1, 2, 3, 4], [0, 1, 2, 3, 0, 0, 0]])
    w = {"out": 1.0, "strategic": 0.5, "tactical": 0.3, "operational": 0.2}
    total, terms = hierarchical_loss(logits, labels, segs, w)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                           ignore_index=IGNORE, reduction="none").view(2, 6)
    by = lambda *pos: torch.stack([ce[i, j] for i, j in pos]).mean().item()  # noqa: E731
    # label at position t+1 is predicted at t; its level is segs[:, t+1]
    expected = {"strategic": by((0, 1), (0, 2), (1, 0)), "tactical": by((0, 3), (1, 1)),
                "operational": by((0, 4), (1, 2)), "out": by((0, 5), (1, 3))}
    assert terms == pytest.approx(expected)
    assert total.item() == pytest.approx(sum(w[k] * v for k, v in expected.items()))
    # no segments at all: L = λ_out · plain SFT loss
    flat, terms = hierarchical_loss(logits, labels, torch.zeros_like(segs), w)
    sft = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                            ignore_index=IGNORE)
    assert set(terms) == {"out"} and flat.item() == pytest.approx(sft.item())


class Killed(RuntimeError):
    pass


def _run(student: str, data, out, ckpt, kill_at: int | None = None, precision: str = "fp32", seen=None):
    cfg = compose_config(["experiment=micro", "adapters=full", "adapters.r=8", "train.max_steps=4",
                          "train.batch_size=4", "train.save_every=2", f"train.precision={precision}",
                          "progress=false"])

    def on_step(step: int) -> None:
        if seen is not None:
            seen.append(step)
        if step == kill_at:
            raise Killed(step)
    summary = train_student(cfg, student, data, out, checkpoint_dir=ckpt, on_step=on_step)
    state = load_file(str(out / "adapter" / "hierarchical_adapters.safetensors"))
    return summary, state


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_training_resumes_to_the_same_weights_and_losses(micro_student, tmp_path, precision):
    data = tmp_path / "selected.jsonl"
    write_jsonl(data, _traces(12))  # 3 steps an epoch: the resumed run crosses into epoch 2
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight, w_straight = _run(micro_student, data, tmp_path / "a", tmp_path / "ckpt-a", precision=precision)
    with pytest.raises(Killed):
        _run(micro_student, data, tmp_path / "b", tmp_path / "ckpt-b", kill_at=3, precision=precision)
    assert (tmp_path / "ckpt-b" / "state.pt").exists()  # written at step 2
    steps_run: list[int] = []
    resumed, w_resumed = _run(micro_student, data, tmp_path / "b", tmp_path / "ckpt-b", precision=precision,
                              seen=steps_run)
    assert steps_run == [3, 4]  # it resumed after the step-2 checkpoint rather than starting over
    assert resumed["steps"] == straight["steps"] == 4 and resumed["tokens"] == straight["tokens"]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
    assert set(resumed["history"][0]) >= {"loss_out", "loss_strategic", "loss_tactical", "loss_operational"}
    assert w_straight.keys() == w_resumed.keys()
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert any(w_straight[k].abs().sum() > 0 for k in w_straight if "up" in k)  # it did train


def test_pipeline_trains_hierarchical_logs_segment_losses_and_cleans_checkpoints(micro_cfg, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from reasonbridge.pipeline import run_experiment
    cfg = micro_cfg("adapters=full", "train.save_every=1", "stop_after=train")
    result = run_experiment(cfg)
    train = result.stages["train"]
    assert not train.path.with_suffix(".ckpt").exists()
    summary = json.loads((train.path / "train.json").read_text())
    assert summary["loss"] == "hierarchical" and summary["segmented_examples"] == summary["examples"]
    client = MlflowClient(mlflow_uri)
    metrics = client.get_run(result.run_id).data.metrics
    for key in ("train/loss_out", "train/loss_strategic", "train/loss_tactical", "train/loss_operational"):
        assert len(client.get_metric_history(result.run_id, key)) == 4
    assert 0 < metrics["params/trainable_pct"] < 100


def test_gradient_checkpointing_and_accumulation_match_the_plain_loop(micro_student):
    def run(**kw):
        model, tok = load_model(micro_student)
        model = attach_adapters(model, compose_config(["adapters=full", "adapters.r=4"]).adapters)
        examples = [encode_chat(tok, chat(t["problem"], t["text"]), 256) for t in _traces(8)]
        out = train_causal_lm(model, examples, TrainSettings(lr=1e-2, max_steps=2, precision="fp32", **kw),
                              pad_id=tok.pad_token_id, seed=0, progress=False)
        return out["history"], [p.detach().clone() for p in out["model"].hierarchical_adapters.parameters()]
    base_hist, base_w = run(batch_size=4)
    ckpt_hist, ckpt_w = run(batch_size=4, gradient_checkpointing=True)
    assert [h["loss"] for h in ckpt_hist] == pytest.approx([h["loss"] for h in base_hist], rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(base_w, ckpt_w))
    accum_hist, _ = run(batch_size=2, grad_accum=2)
    assert len(accum_hist) == 2


def test_a_flawed_attempt_the_trace_corrects_carries_no_label_unless_asked():
    """A correction trace: the lines of the flawed attempt from its flaw on are retracted by the
    trace itself; with train.retracted=mask they carry no label (the student learns the retry, not
    the slip), the lines before the flaw and the retry do; with learn, everything but the phrase."""
    from reasonbridge.config import default_cites, default_phrases
    from reasonbridge.student.organism_student import organism_tokenizer
    from reasonbridge.training.data import unlabelled_segments
    tokenizer = organism_tokenizer()
    problems, _ = synthetic_pool(60, seed=0, difficulties=[3, 3], max_operand=20, domains=None,
                                 exclude_texts=set(), suite="organism")
    teacher = SymbolicTeacher(defect_rate=0.0, corrections=1.0, phrases=default_phrases(), cite=default_cites())
    trace = next(t for t in (teacher.generate(p) for p in problems) if "right?" in t["text"])
    problem = next(p for p in problems if p["id"] == trace["problem_id"])
    retracted = [trace["text"][s["start"]:s["end"]] for s in trace["segments"] if s.get("retracted")]
    assert retracted and all(line not in trace["text"].split("right?")[1] for line in retracted[0].split("\n"))
    flawed = " ".join(retracted[0].split())
    retry = " ".join(trace["text"].split("right?")[1].split("Final")[0].split())
    for mode in ("mask", "learn"):
        ex = encode_chat(tokenizer, chat(problem["problem"], trace["text"]), 512, segments=trace["segments"],
                         injected=unlabelled_segments(trace["segments"], mode))
        words = tokenizer.convert_ids_to_tokens(ex["input_ids"])
        labelled = " ".join(w for w, lab in zip(words, ex["labels"]) if lab != IGNORE)
        assert "right?" not in labelled and retry in labelled and labelled.startswith("Strategy")
        assert (flawed in labelled) == (mode == "learn")
