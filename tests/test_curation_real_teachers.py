"""Curation on real teachers' traces: the quality filter on their formats, reference budgets a real
model can answer in, decontamination against lm-eval tasks, and the counts a run logs."""
import json
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from reasonbridge.config import CONF_DIR, default_cites, default_phrases, reference_max_new_tokens
from reasonbridge.curation.pool import synthetic_pool
from reasonbridge.curation.quality import (CORRECTION_CUES, REASONS, calculations, quality_filter, quality_reasons,
                                           result_matches, uncorrected_errors)
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.pipeline import run_experiment
from tests.conftest import compose_config
from tests.real_traces import DEFECTS, GOOD


@pytest.mark.parametrize("trace", GOOD, ids=[t["name"] for t in GOOD])
def test_a_good_trace_in_a_real_teachers_format_is_kept(trace):
    assert quality_reasons(trace) == []


@pytest.mark.parametrize("trace", DEFECTS, ids=[t["name"] for t in DEFECTS])
def test_a_defect_is_rejected_for_its_reason(trace):
    reasons = quality_reasons(trace)
    assert trace["reason"] in reasons and set(reasons) <= set(REASONS), reasons


def test_fixtures_cover_every_reason_and_the_formats_the_issue_names():
    assert {t["reason"] for t in DEFECTS} == set(REASONS) - {"inconsistent_variables"}  # tests/test_filters.py has it
    good = "\n".join(t["text"] for t in GOOD)
    for form in ("**", "## ", "\\frac", "\\cdot", "= -", "3.33", "```python", "<think>", "</think>", "Wait", "| pen"):
        assert form in good, form


def test_calculations_read_real_arithmetic():
    def read(text):
        return [(c.lhs, c.result, c.holds) for c in calculations(text)]
    assert read("so 3 + 4 + 5 = 12, and 2 * 3 * 4 = 24") == [("3+4+5", 12, True), ("2*3*4", 24, True)]
    assert read("-5 * 2 = -10 and 2 * -5 = 10") == [("-5*2", -10, True), ("2*-5", 10, False)]
    assert read(r"$\frac{3}{4} \cdot 12 = 9$ and 3 \times 4 = 12") == [("(3)/(4)*12", 9, True), ("3*4", 12, True)]
    assert [c.holds for c in calculations("10 / 3 = 3.33, 10 / 3 = 3.3, 2 / 3 ≈ 0.67, 2 / 3 = 0.66, 10 / 3 = 3.34")] \
        == [True, True, True, True, False]
    assert read("1,200 + 350 = 1,550") == [("1200+350", 1550, True)]
    # an expression that goes on into a variable, a bracket opened before it, or another expression
    for text in ("x - 3 = 5", "2x + 3 = 11", "x + 3 + 4 = 11", "f(2 + 3) = 10", "3 + 4 = 7 + 0", "7 / 2 = 3 remainder 1",
                 "```\nn // 2 = 3\n```", "`10 ** 2 = 7`", "3:30 + 1 = 4:30"):
        assert calculations(text) == [], text
    assert not result_matches(10, 11, 0) and result_matches(7, 7, 0)
    assert read("((3 + 4) * 2 = 15") == [("(3+4)*2", 15, False)]  # a bracket opened before it is left out


@pytest.mark.parametrize("text, reasons", [
    ("So the answer is 12 * 4 + 2 = 50.\n\\boxed{50}", []),  # a calculation after "the answer is", not an answer
    ("The answer is **48**.\n\\boxed{50}", ["contradictory_answer"]),
    ("total += n for each n, and 3 + 4 = 7. \\boxed{7}", []),  # augmented assignment written in prose
    ("11 - = 8, \\boxed{8}", ["broken_expression"]),
    ("It costs $5 + $3 = $8, so $8. \\boxed{8}", []),
    ("Then $2x = 8$ and $x = 4. \\boxed{4}", ["unbalanced_brackets"]),
])
def test_answers_and_format_in_prose(text, reasons):
    assert quality_reasons({"text": text, "gold": text.split("boxed{")[1].split("}")[0]}) == reasons


def test_a_slip_taken_back_is_a_self_correction_and_one_carried_through_an_error():
    assert uncorrected_errors("7 + 3 = 11 (total). Wait, let me redo it. 7 + 3 = 10 (total).") == []
    assert uncorrected_errors("7 + 3 = 11. Actually, it is 10.") == []
    assert uncorrected_errors("7 + 3 = 11. Hmm, is that right? 7 + 3 is 10, not 11.") == []
    assert uncorrected_errors("7 + 3 = 11. No, wait: 10, not 11.") == []
    # a doubt whose check happens to produce the right number is not a correction of the slip
    assert [str(c.result) for c in uncorrected_errors("7 + 3 = 9. Let me double-check: 9 + 1 = 10. Yes.")] == ["9"]
    assert len(uncorrected_errors("7 + 3 = 11, so 11 * 2 = 22.")) == 1
    for cue in ("wait", "actually", "alternatively", "let me think further", "right?", "is that right",
                "let me double-check", "no,"):
        assert cue in CORRECTION_CUES


def test_every_organism_trace_passes_and_every_defect_is_rejected():
    """The embedded teacher's traces (clean, corrected after a cited flaw, re-checked after a bare
    phrase) are kept; each of its defects is rejected."""
    pool, _ = synthetic_pool(1000, seed=4, difficulties=[1, 5], max_operand=10, domains=None, exclude_texts=set(),
                             suite="organism")
    teacher = SymbolicTeacher(defect_rate=0.3, seed=4, corrections=0.35, rechecks=0.2, phrases=default_phrases(),
                              cite=default_cites())
    traces = [{**teacher.generate(p), "problem": p["problem"], "gold": p["answer"]} for p in pool]
    kept, rejected = quality_filter(traces)
    assert {r["problem_id"] for r in rejected} == {t["problem_id"] for t in traces if t["defects"]}
    kinds = Counter("correction" if t["text"].count("Plan:") == 2 else "recheck" if t["text"].count("Check:") > 1
                    else "clean" for t in kept)
    assert kinds["correction"] > 150 and kinds["recheck"] > 80 and kinds["clean"] > 200, kinds
    assert Counter(d for t in traces for d in t["defects"]).keys() == {
        "arithmetic_slip", "broken_format", "contradiction", "multiple_answers"}


def test_reference_budgets_by_kind():
    cfg = compose_config(["data=curated"])
    assert cfg.data.reference_max_new_tokens is None
    assert reference_max_new_tokens(cfg, cfg.data.references[0]) == 32  # the organism's student
    smol = compose_config(["data=curated", "model=smollm2_135m",
                           "data.references=[{name:student,source:student},{name:qwen,source:pretrained,path:/m}]"])
    assert [reference_max_new_tokens(smol, r) for r in smol.data.references] == [4096, 4096]
    assert reference_max_new_tokens(compose_config(["data.reference_max_new_tokens=100"]), cfg.data.references[0]) == 100
    assert compose_config(["experiment=demo_smollm2"]).data.reference_max_new_tokens == 32
    assert (CONF_DIR / "experiment" / "micro.yaml").read_text().count("reference_max_new_tokens: 16") == 1


def test_curated_micro_run_logs_rejections_reference_cutoffs_and_decontamination(micro_cfg, mlflow_uri):
    result = run_experiment(micro_cfg("data=curated", "stop_after=data", "teacher.defect_rate=0.3",
                                      "data.references=[{name:student,source:student}]"))  # no reference to build
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    manifest = json.loads((result.stages["data"].path / "manifest.json").read_text())
    by_reason = manifest["rejections"]["by_reason"]
    assert by_reason and {f"data/rejected/{r}": float(n) for r, n in by_reason.items()} == {
        k: v for k, v in metrics.items() if k.startswith("data/rejected/")}
    assert 0.0 <= metrics["reference/student/out_of_tokens"] <= 1.0
    assert metrics["decontamination/synthetic"] == 0.0  # the held-out split never overlaps the pool


TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
LEAKED = "A farmer has 17 sheep and buys 25 more at the market on Tuesday. How many sheep does the farmer have now?"


def _task_folder(tmp_path, data_exists=True):
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    task = "farm_math" if data_exists else "farm_missing"
    data = tmp_path / f"{task}.jsonl"
    if data_exists:
        data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                                for q, a in [(LEAKED, "42"), ("What is 6 times 7 in a very long and unusual wording?", "42")]))
    (folder / f"{task}.yaml").write_text(TASK_YAML.format(task=task, data=json.dumps(str(data))))
    return folder


def test_lm_eval_task_documents_load_offline_or_say_why(tmp_path):
    from reasonbridge.evaluation.lm_eval_docs import task_problems
    folder = _task_folder(tmp_path)
    problems, why = task_problems("farm_math", str(folder))
    assert why is None and len(problems) == 2 and LEAKED in problems[0]["problem"] and problems[0]["answer"] == "42"
    _task_folder(tmp_path, data_exists=False)
    problems, why = task_problems("farm_missing", str(folder))
    assert problems == [] and "did not load" in why


def test_pool_is_decontaminated_against_an_lm_eval_task(micro_cfg, mlflow_uri, tmp_path):
    folder = _task_folder(tmp_path)
    _task_folder(tmp_path, data_exists=False)
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in [
        (LEAKED, "42"), ("Ann has 3 red pens and 4 blue pens in her bag today. How many pens?", "7")]))
    common = ["pool=jsonl", f"pool.paths=[{pool_file}]", "benchmark=lm_eval", f"benchmark.include_path={folder}",
              "stop_after=pool"]
    result = run_experiment(micro_cfg(*common, "benchmark.task=farm_math"))
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.data.metrics["decontamination/lm_eval/farm_math"] == 1.0 and run.data.metrics["data/pool"] == 1.0
    result = run_experiment(micro_cfg(*common, "benchmark.task=farm_missing"))
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.data.tags["decontamination/lm_eval/farm_missing"].startswith("unavailable: its documents did not load")
    assert run.data.metrics["data/pool"] == 2.0


@pytest.mark.slow
def test_smollm2_as_a_local_teacher_is_kept_or_rejected_for_the_right_reason(smollm_folder, tmp_path):
    """A real model's traces (SmolLM2-135M-Instruct, teacher=hf_local) on the fixtures' problems: a
    trace cut off by its token budget is `truncated`, one whose answer is wrong is rejected, and a
    kept one has the gold answer."""
    from reasonbridge.answers import extract_boxed
    from reasonbridge.curation.quality import answer_region, same_answer
    from reasonbridge.curation.teacher_cache import Budget, TeacherCache, collect_traces
    from reasonbridge.curation.teachers.hf_local import HFLocalTeacher
    problems = list({t["problem"]: {"id": t["name"], "problem": t["problem"], "answer": t["gold"], "domain": "97"}
                     for t in GOOD}.values())
    teacher = HFLocalTeacher(str(smollm_folder), max_tokens=192, batch_size=len(problems))
    traces, _ = collect_traces(teacher, problems, TeacherCache(tmp_path, teacher.identity), Budget(None, None))
    verdicts = {}
    for t in traces:
        reasons = quality_reasons(t)
        assert set(reasons) <= set(REASONS)
        assert ("truncated" in reasons) == (t.get("finish_reason") == "length"), (reasons, t["text"])
        final = extract_boxed(answer_region(t["text"]))
        correct = final is not None and same_answer(final, t["gold"])
        if not correct:
            assert reasons, t["text"]
        verdicts[t["problem_id"]] = reasons or "kept"
    print(verdicts)  # what a real small model's traces look like to the filter (pytest -s)
    assert len(traces) == len(problems) >= 8
