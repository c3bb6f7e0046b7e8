"""BRIDGE (arXiv 2512.20403; docs/bridge.md) as stages over the existing ones.

Stage `subset`: the problems the paid teacher answers (exactly `bridge.budget` of them): for
distill=direct a seeded random sample, for distill=bridge chosen by the teacher assistant (TA) at
zero teacher cost (curation/budget.py). The `traces` stage then runs on the subset only.
Stage `rationales`: the fine-tuned TA's answer to every pool problem, written like the teacher's
traces (so the data filters read them alike), no teacher query, cached and resumable.
The TA is a derived context (`ta/<stage>`): its student, data, train and eval stages are the
existing ones, keyed on its own model node.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from reasonbridge.cache import StageResult, write_json_atomic
from reasonbridge.io import read_jsonl, write_jsonl
from reasonbridge.stages.context import RunContext, benchmark_label, config_slice, student_path

log = logging.getLogger("reasonbridge.pipeline")
RATIONALE_CHUNK = 64  # problems generated between two appends to the resumable partial file


def budgeted(cfg) -> bool:
    """Whether the teacher sees less than the whole pool (or a TA writes the student's traces)."""
    return cfg.distill.name == "bridge" or cfg.bridge.budget != 1.0


def _prompts(tokenizer, problems: list[dict]) -> list[str]:
    from reasonbridge.prompts import chat
    return [tokenizer.apply_chat_template(chat(p["problem"]), add_generation_prompt=True, tokenize=False)
            for p in problems]


def ta_signals(model, tokenizer, problems: list[dict], *, samples: int, temperature: float,
               max_new_tokens: int, seed: int, batch_size: int = 32, want_entropy: bool = True,
               want_embeddings: bool = True):
    """Per problem: the entropy of ``samples`` sampled answers (seeded) and the mean last hidden
    state over the prompt's tokens; either is None when not wanted."""
    import numpy as np
    import torch
    from reasonbridge.answers import extract_boxed, normalize_answer
    from reasonbridge.curation.budget import answer_entropy
    prompts = _prompts(tokenizer, problems)
    tokenizer.padding_side = "left"
    entropy, embeddings = [], []
    torch.manual_seed(seed)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            if want_embeddings:
                hidden = model(**enc, output_hidden_states=True).hidden_states[-1]
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                embeddings.extend(((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy())
            if want_entropy:
                out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0,
                                     num_return_sequences=samples, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                for i in range(len(texts) // samples):
                    answers = [extract_boxed(t) for t in texts[i * samples:(i + 1) * samples]]
                    entropy.append(answer_entropy([None if a is None else normalize_answer(a) for a in answers]))
    return (np.array(entropy) if want_entropy else None), (np.stack(embeddings) if want_embeddings else None)


def subset(ctx: RunContext, pool: StageResult, ta_student: StageResult | None) -> StageResult:
    """The budgeted subset of the pool, as a pool (problems.jsonl) the traces stage reads."""
    from reasonbridge.curation.budget import budget_count
    cfg, b = ctx.cfg, ctx.cfg.bridge
    n_pool = json.loads((pool.path / "pool.json").read_text())["kept"]
    k = budget_count(b.budget, n_pool)
    bridge = cfg.distill.name == "bridge"
    difficulty, diversity = bridge and b.difficulty, bridge and b.diversity
    config = {"budget": k, "difficulty": difficulty, "diversity": diversity, "seed": cfg.seed}
    if difficulty:
        config.update(samples=b.samples, temperature=b.temperature, max_new_tokens=b.max_new_tokens)
    upstream = {"pool": pool, **({"ta": ta_student} if difficulty or diversity else {})}

    def compute(out: Path) -> None:
        from reasonbridge.curation.budget import coverage_radius, select_subset
        problems = read_jsonl(pool.path / "problems.jsonl")
        entropy = embeddings = None
        if difficulty or diversity:
            from reasonbridge.models.loading import load_model
            model, tokenizer = load_model(student_path(ta_student), b.ta.dtype)
            entropy, embeddings = ta_signals(model, tokenizer, problems, samples=b.samples,
                                             temperature=b.temperature, max_new_tokens=b.max_new_tokens,
                                             seed=cfg.seed, want_entropy=difficulty, want_embeddings=diversity)
        chosen = select_subset(len(problems), k, seed=cfg.seed, entropy=entropy, embeddings=embeddings)
        write_jsonl(out / "problems.jsonl", [problems[i] for i in sorted(chosen)])
        info = {"kept": k, "pool": len(problems), "order": [problems[i]["id"] for i in chosen],
                "criteria": {"difficulty": difficulty, "diversity": diversity}}
        if entropy is not None:
            info["entropy"] = {"pool_mean": float(entropy.mean()), "subset_mean": float(entropy[chosen].mean())}
        if embeddings is not None:
            info["coverage_radius"] = coverage_radius(embeddings, chosen)
        write_json_atomic(out / "pool.json", info)
    return ctx.stage("subset", config, upstream, compute)


def rationales(ctx: RunContext, ta_student: StageResult, ta_trained: StageResult | None,
               pool: StageResult) -> StageResult:
    """The TA's rationale for every pool problem (greedy, inference.max_new_tokens): zero teacher
    queries; generated in chunks appended to a partial file, so a killed run resumes where it stopped."""
    cfg = ctx.cfg
    config = {"max_new_tokens": cfg.inference.max_new_tokens, "batch_size": cfg.inference.batch_size,
              "seed": cfg.seed}
    upstream = {"pool": pool, "ta": ta_student, **({"ta_train": ta_trained} if ta_trained else {})}
    partial = ctx.cache.path("rationales", ctx.key("rationales", config, upstream)).with_suffix(".partial.jsonl")

    def compute(out: Path) -> None:
        from reasonbridge.answers import extract_boxed
        from reasonbridge.curation.segment import segment
        from reasonbridge.models.generation import generate
        from reasonbridge.training.run import load_trained
        problems = read_jsonl(pool.path / "problems.jsonl")
        done = {r["problem_id"]: r for r in read_jsonl(partial)} if partial.exists() else {}
        spent = sum(r["provenance"]["seconds"] for r in done.values())
        model, tokenizer = load_trained(student_path(ta_student), ta_trained.path if ta_trained else None,
                                        cfg.model.dtype)
        todo = [p for p in problems if p["id"] not in done]
        partial.parent.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(todo), RATIONALE_CHUNK):
            chunk = todo[start:start + RATIONALE_CHUNK]
            t0 = time.perf_counter()
            gens = generate(model, tokenizer, _prompts(tokenizer, chunk), max_new_tokens=cfg.inference.max_new_tokens,
                            batch_size=cfg.inference.batch_size, progress=cfg.progress, desc="TA rationales")
            each = (time.perf_counter() - t0) / len(chunk)
            rows = [{"problem_id": p["id"], "teacher": "ta", "text": g["output"], "answer": extract_boxed(g["output"]),
                     "segments": segment(g["output"]), "defects": [], "problem": p["problem"], "gold": p["answer"],
                     "domain": p.get("domain"), "difficulty": p.get("difficulty"),
                     "provenance": {"teacher": "ta", "cost_usd": 0.0, "seconds": each, "tokens": g["tokens"]},
                     **({"finish_reason": "length"} if g["hit_limit"] else {})} for p, g in zip(chunk, gens)]
            with partial.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            done.update({r["problem_id"]: r for r in rows})
            spent += each * len(chunk)
        write_jsonl(out / "traces.jsonl", [done[p["id"]] for p in problems])
        write_json_atomic(out / "teacher.json", {"teacher": "ta", "queries": 0, "cache_hits": 0, "cost_usd": 0.0,
                                                 "seconds": spent, "resumed": len(problems) - len(todo)})
    res = ctx.stage("rationales", config, upstream, compute)
    partial.unlink(missing_ok=True)
    return res


def teacher_side(ctx: RunContext, problems: StageResult, evals: list[tuple]) -> StageResult:
    """The traces the student learns from under a budget: the teacher's on the subset (direct), or the
    TA's for the whole pool after it learned from the teacher's on the subset (bridge). Logs the curve's
    cost axis (`budget/queries`, `budget/cost_usd`) and, for bridge, the TA's time and accuracy."""
    from reasonbridge.stages import data, student, traces, train
    from reasonbridge.stages import eval as eval_stage
    cfg = ctx.cfg
    ta = ta_built = None
    if cfg.distill.name == "bridge":
        # the TA learns from every subset trace (data=full) with the run's training recipe, no curriculum
        ta = ctx.derived("ta", model=cfg.bridge.ta, data={"name": "full"},
                         train={**config_slice(cfg.train), "curriculum": "none"})
        ta_built = student.student(ta)
    sub = subset(ctx, problems, ta_built)
    written = traces.traces(ctx, sub)
    paid = read_jsonl(written.path / "traces.jsonl")
    metrics = ctx.result.metrics
    metrics["budget/queries"] = len(paid)  # what this point of the curve costs, cached or not
    metrics["budget/cost_usd"] = sum((t.get("provenance") or {}).get("cost_usd") or 0.0 for t in paid)
    metrics["budget/fraction"] = len(paid) / json.loads((problems.path / "pool.json").read_text())["kept"]
    if ta is None:
        return written
    ta_trained = None if cfg.adapters.name == "none" else train.train(ta, ta_built, data.data(ta, written, {}))
    res = rationales(ta, ta_built, ta_trained, problems)
    info = json.loads((res.path / "teacher.json").read_text())
    metrics["bridge/ta_rationale_s"] = info["seconds"]
    rows = read_jsonl(res.path / "traces.jsonl")
    from reasonbridge.answers import normalize_answer
    metrics["bridge/ta_pool_acc"] = sum(r["answer"] is not None and normalize_answer(r["answer"]) ==
                                        normalize_answer(str(r["gold"])) for r in rows) / len(rows)
    for bcfg, bench in evals:
        ev = eval_stage.evaluate_benchmark(ta, ta_built, ta_trained, bench, bcfg)
        acc = json.loads((ev.path / "metrics.json").read_text()).get(f"acc/{benchmark_label(bcfg)}")
        if acc is not None:
            metrics[f"bridge/ta_acc/{benchmark_label(bcfg)}"] = acc
    return res
