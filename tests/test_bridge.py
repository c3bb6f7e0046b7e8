"""BRIDGE (issue 24): the budgeted subset, the zero-cost phase 2, the curriculum, the budget curve."""
import json
from pathlib import Path

import numpy as np
import pytest

from reasonbridge.config import ConfigError, validate
from reasonbridge.curation.budget import answer_entropy, budget_count, coverage_radius, select_subset
from reasonbridge.training.data import EpochPermutation
from tests.conftest import compose_config


def test_budget_is_a_fraction_below_one_else_a_count_never_more_than_the_pool():
    assert budget_count(0.05, 2000) == 100 and budget_count(0.01, 64) == 1 and budget_count(1.0, 64) == 64
    assert budget_count(0.25, 64) == 16 and budget_count(30, 64) == 30 and budget_count(2, 64) == 2 and budget_count(100, 64) == 64


@pytest.mark.parametrize("difficulty,diversity", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_selection_returns_exactly_the_budget_without_repeats(difficulty, diversity, k):
    rng = np.random.default_rng(0)
    n = 50
    entropy = rng.random(n) if difficulty else None
    emb = rng.normal(size=(n, 4)) if diversity else None
    chosen = select_subset(n, k, seed=3, entropy=entropy, embeddings=emb)
    assert len(chosen) == k == len(set(chosen)) and all(0 <= i < n for i in chosen)
    assert chosen == select_subset(n, k, seed=3, entropy=entropy, embeddings=emb)  # seeded
    with pytest.raises(ValueError):
        select_subset(n, n + 1, seed=0)


def test_difficulty_picks_the_problems_whose_sampled_answers_disagree_most():
    assert answer_entropy(["3", "3", "3", "3"]) == 0.0
    assert answer_entropy(["3", "4", None, "5"]) == pytest.approx(np.log(4))
    entropy = np.array([answer_entropy(a) for a in (["1"] * 4, ["1", "2", "1", "2"], ["1", "2", "3", "4"],
                                                    ["1"] * 4, ["5", "6", None, "7"], ["2", "2", "2", "3"])])
    assert sorted(select_subset(6, 2, seed=0, entropy=entropy)) == [2, 4]
    assert sorted(select_subset(6, 2, seed=0)) != [2, 4] or sorted(select_subset(6, 2, seed=1)) != [2, 4]


def test_diversity_covers_every_cluster_where_random_sampling_misses_the_small_ones():
    rng = np.random.default_rng(1)
    centers = np.array([[0, 0], [50, 0], [0, 50]], dtype=float)
    sizes = [90, 5, 5]
    emb = np.concatenate([c + rng.normal(scale=0.5, size=(s, 2)) for c, s in zip(centers, sizes)])
    label = np.repeat([0, 1, 2], sizes)
    chosen = select_subset(100, 3, seed=0, embeddings=emb)
    assert sorted(label[chosen]) == [0, 1, 2]
    random_pick = select_subset(100, 3, seed=0)
    assert coverage_radius(emb, chosen) < coverage_radius(emb, random_pick)


def test_both_criteria_prefer_the_uncertain_problem_among_equally_uncovered_ones():
    emb = np.array([[0.0], [10.0], [-10.0]])
    entropy = np.array([0.0, 0.1, 1.0])
    # from the centre, both ends are 10 away: coverage alone takes the first it finds, difficulty breaks the tie
    assert select_subset(3, 2, seed=0, embeddings=emb, entropy=entropy)[0] == 2  # most uncertain first
    first_random = select_subset(3, 2, seed=0, embeddings=emb)[0]
    chosen = select_subset(3, 2, seed=0, embeddings=emb, entropy=np.array([1.0, 0.0, 0.5]))
    assert chosen == [0, 2] and first_random in (0, 1, 2)


def test_instruction_first_curriculum_orders_each_epoch_format_block_first_and_resumes():
    sampler = EpochPermutation(10, seed=0, blocks=(4, 6))
    for epoch in range(3):
        sampler.epoch, sampler.skip = epoch, 0
        order = list(sampler)
        assert sorted(order[:4]) == [0, 1, 2, 3] and sorted(order[4:]) == list(range(4, 10))
    sampler.skip = 5
    assert list(sampler) == order[5:]
    assert list(EpochPermutation(10, seed=0)) == list(EpochPermutation(10, seed=0, blocks=(10,)))  # as before
    with pytest.raises(ValueError):
        EpochPermutation(10, seed=0, blocks=(4, 5))


def test_format_examples_are_the_traces_own_boxed_answer_in_words_the_student_knows():
    """The format block once wrote `\\boxed{19}`, a word the organism's tokenizer does not know: the
    student learned to answer `<|unk|>` and scored 0. It answers as the trace writes it."""
    from transformers import AutoTokenizer
    from reasonbridge.training.run import format_examples
    from tests.conftest import ROOT
    tok = AutoTokenizer.from_pretrained(ROOT / "reasonbridge/student/released/organism/model")
    rows = [{"problem": "reg 0 #1 inc 6 ?", "answer": "6",
             "text": "Strategy: apply changes in order Plan: from 0 #1 inc 6 : 0 + 6 = 6 (reg) Check: reg is 6 "
                     "Final Answer: \\boxed{ 6 }"},
            {"problem": "reg 1 #1 inc 1 ?", "answer": None, "text": "Strategy: apply changes in order"}]
    (only,) = format_examples(tok, rows, 64, hierarchical=False)
    answer = [i for i, label in zip(only["input_ids"], only["labels"]) if label != -100]
    assert tok.decode(answer) == "\\boxed{ 6 } <|end|>"
    assert tok.unk_token_id not in only["input_ids"]


def test_distill_config_is_validated_naming_the_field():
    cfg = compose_config(["distill=bridge"])
    validate(cfg)
    assert cfg.bridge.budget == 0.05 and cfg.bridge.ta.name == "tiny_large" and cfg.train.curriculum == "none"
    assert compose_config().distill.name == "direct" and compose_config().bridge.budget == 1.0
    for bad, field in (("bridge.budget=0", "bridge.budget"), ("bridge.budget=12.5", "bridge.budget"),
                       ("bridge.budget=5000", "bridge.budget"), ("train.curriculum=reverse", "train.curriculum")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            validate(compose_config([bad]))
    with pytest.raises(ConfigError, match=r"bridge\.samples"):
        validate(compose_config(["distill=bridge", "bridge.samples=1"]))


def test_default_direct_run_keeps_its_stage_keys():
    """distill=direct at the whole pool goes through today's path: no subset stage, the train key
    without the curriculum field."""
    from reasonbridge.stages.bridge import budgeted
    assert not budgeted(compose_config()) and budgeted(compose_config(["bridge.budget=0.2"]))
    assert budgeted(compose_config(["distill=bridge"]))


MICRO_TA = ["bridge.ta.tiny.hidden_size=48", "bridge.ta.tiny.intermediate_size=96", "bridge.ta.tiny.num_layers=2",
            "bridge.ta.tiny.num_heads=2", "bridge.ta.tiny.max_position_embeddings=256",
            "bridge.ta.tiny.pretrain_examples=384", "bridge.ta.tiny.pretrain_batch_size=32", "bridge.samples=3",
            "bridge.max_new_tokens=16"]


@pytest.mark.slow
def test_micro_bridge_spends_exactly_the_budget_and_logs_the_curve_points(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from reasonbridge.pipeline import run_experiment
    cache = tmp_path / "cache"  # its own teacher ledger: every line in it was asked by this test
    common = ["experiment=micro", f"paths.cache_dir={cache}", "progress=false", *MICRO_TA]
    # the teacher's hard cap at the budget: phase 2 asking for one more would fail the run
    bridge = run_experiment(compose_config([*common, "distill=bridge", "bridge.budget=0.25", "teacher.max_queries=16",
                                                  "train.curriculum=instruction_first"]))  # an option, not the default
    teacher = json.loads((bridge.stages["traces"].path / "teacher.json").read_text())
    ledger = [json.loads(line) for line in Path(teacher["ledger"]).read_text().splitlines()]
    assert len(ledger) == 16 == teacher["ledger_queries"]
    rationales = json.loads((bridge.stages["ta/rationales"].path / "teacher.json").read_text())
    assert rationales["queries"] == 0 and rationales["cost_usd"] == 0.0
    assert len((bridge.stages["ta/rationales"].path / "traces.jsonl").read_text().splitlines()) == 64
    m = MlflowClient(mlflow_uri).get_run(bridge.run_id).data.metrics
    assert m["teacher/queries"] == 16 == m["budget/queries"] and m["data/pool"] == 64
    assert m["bridge/ta_rationale_s"] > 0 and 0 <= m["bridge/ta_acc/synthetic"] <= 1 and "acc/synthetic" in m
    assert m["data/parsed"] == 64  # the student learns from the TA's rationales for the whole pool
    answered = sum(json.loads(line)["answer"] is not None
                   for line in (bridge.stages["ta/rationales"].path / "traces.jsonl").read_text().splitlines())
    train = json.loads((bridge.stages["train"].path / "train.json").read_text())
    assert train["curriculum"] == [answered, 64]  # a format example per answered rationale, then the traces
    # direct at the same budget: a random subset, no TA stage; cached answers are not asked again
    direct = run_experiment(compose_config([*common, "bridge.budget=16"]))
    assert "ta/rationales" not in direct.stages and "subset" in direct.stages
    m = MlflowClient(mlflow_uri).get_run(direct.run_id).data.metrics
    assert m["budget/queries"] == 16 and m["teacher/queries"] + m["teacher/cache_hits"] == 16
    assert m["data/parsed"] == 16


def test_budget_curve_groups_runs_by_method_and_queries_with_intervals_and_writes_png_pdf_table(tmp_path):
    from reasonbridge.report.budget import budget_points, plot_budget, write_budget_table
    from reasonbridge.report.runs import RunRecord

    def run(i, row, seed, queries, correct, bridge=False):
        metrics = {"acc/synthetic": sum(correct) / len(correct), "budget/queries": queries}
        if bridge:
            metrics["bridge/ta_acc/synthetic"] = 0.5
        if queries == 200:  # the whole pool: today's path logs no budget/queries
            del metrics["budget/queries"]
            metrics["data/pool"] = 200
        r = RunRecord(f"r{i}", "1", i, "bridge", row, "tiny", str(seed), {}, metrics)
        r.scores["synthetic"] = {str(j): float(c) for j, c in enumerate(correct)}
        return r
    runs = [run(0, "direct_5pct", 0, 10, [1, 0, 0, 0]), run(1, "direct_5pct", 1, 10, [1, 1, 0, 0]),
            run(2, "direct_100pct", 0, 200, [1, 1, 1, 0]), run(3, "bridge_5pct", 0, 10, [1, 1, 1, 1], bridge=True),
            run(4, "other", 0, 10, [0, 0, 0, 0])]
    runs[4].table = "table2"  # another table's runs stay out
    points = budget_points(runs, n_boot=200)
    assert [(p.method, p.queries, len(p.runs)) for p in points] == [("bridge", 10, 1), ("direct", 10, 2), ("direct", 200, 1)]
    assert points[1].acc.value == pytest.approx(0.375) and points[1].acc.lo <= 0.375 <= points[1].acc.hi
    assert points[0].ta_acc == 0.5
    files = plot_budget(points, tmp_path) + write_budget_table(points, tmp_path)
    assert all("budget" in f.name and f.stat().st_size > 0 for f in files)
    assert {f.suffix for f in files} == {".png", ".pdf", ".md", ".csv"}
    assert "| bridge | synthetic | 10 |" in (tmp_path / "budget_curve.md").read_text()
