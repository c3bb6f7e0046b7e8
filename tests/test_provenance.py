"""Provenance tracing: categories on hand-made triples, sentence splitting on real trace formats,
scoring under a real model, and the prompt-logprobs endpoint (a local fake server)."""
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from reasonbridge.errors import UserError
from reasonbridge.provenance.categories import categorize, shares, teacher_originated
from reasonbridge.provenance.score import EndpointScorer, sentence_probs, token_sentences
from reasonbridge.provenance.split import split_sentences


@pytest.mark.parametrize("p, expected", [
    ((0.5, 0.5, 0.5), "shared"),
    ((0.6, 0.5, 0.55), "shared"),        # every pairwise |diff| exactly at alpha=0.1 -> shared
    ((0.61, 0.5, 0.55), "teacher"),      # T - S = 0.11 > beta
    ((0.6, 0.5, 0.9), "boosted"),        # T - S = 0.1 is not > beta; D far above both
    ((0.3, 0.6, 0.6), "student"),
    ((0.5, 0.4, 0.9), "boosted"),        # T and S 0.1 apart, D boosted
    ((0.9, 0.2, 0.2), "teacher"),        # the teacher's, even if D did not pick it up
    ((0.2, 0.2, 0.2001), "shared"),
])
def test_categories_on_hand_made_triples(p, expected):
    assert categorize(*p, alpha=0.1, beta=0.1) == expected


def test_shared_needs_all_three_pairs_and_alpha_is_separate_from_beta():
    # T and S agree, D is 0.15 away: not shared under alpha=0.1, shared under alpha=0.2
    assert categorize(0.5, 0.5, 0.65, alpha=0.1, beta=0.1) == "boosted"
    assert categorize(0.5, 0.5, 0.65, alpha=0.2, beta=0.1) == "shared"
    # alpha=0 leaves shared for identical probabilities only
    assert categorize(0.7, 0.5, 0.7, alpha=0.0, beta=0.1) == "teacher"
    assert categorize(0.4, 0.4, 0.4, alpha=0.0, beta=0.1) == "shared"


def test_shares_and_teacher_count():
    rows = [{"category": c} for c in ("teacher", "teacher", "shared", "boosted")]
    assert shares(rows) == {"teacher": 0.5, "student": 0.0, "shared": 0.25, "boosted": 0.25}
    assert teacher_originated([0.9, 0.5, 0.61], [0.5, 0.5, 0.5], 0.1) == 2


ORGANISM = ("Strategy: apply changes in order\nPlan: from 17\n#2 die 12 : 17 - 12 = 5 (cells)\n"
            "#1 split 2 : 5 * 2 = 10 (cells)\nCheck: cells is 10\nWait Where is 5 used?\n"
            "Check: cells is 10\nFinal Answer: \\boxed{ 10 }")


def test_split_organism_trace_lines_and_parts():
    sentences = split_sentences(ORGANISM)
    assert [s["part"] for s in sentences] == ["strategy", "plan", "step", "step", "check", "reflection",
                                              "check", "answer"]
    assert all(ORGANISM[s["start"]:s["end"]] == s["text"] for s in sentences)
    assert sentences[2]["text"] == "#2 die 12 : 17 - 12 = 5 (cells)"


def test_split_word_problem_trace():
    text = ("Strategy: track how many apples Sam has after each event.\n"
            "Plan: 1) start from 12 2) add the gift 3) subtract what he ate\n"
            "Step 1: 12 + 5 = 17\nStep 2: 17 - 3 = 14\nCheck: 12 + 5 - 3 = 14.\nFinal Answer: \\boxed{14}")
    assert [s["part"] for s in split_sentences(text)] == ["strategy", "plan", "step", "step", "check", "answer"]


def test_split_chat_model_output_long_lines_and_think_tags():
    text = ("<think>\nOkay, so the farmer starts with 12 cows and buys 5 more, which means he has 12 + 5 = 17 "
            "cows now. Then he sells 3 of them at the market on Sunday, leaving 17 - 3 = 14 cows in total. "
            "Wait, let me make sure the question asks about cows and not about the money he made.\n</think>\n\n"
            "The farmer has **14** cows.\n\nThe answer is $\\boxed{14}$.")
    sentences = split_sentences(text)
    assert [s["text"][:12] for s in sentences] == ["Okay, so the", "Then he sell", "Wait, let me",
                                                   "The farmer h", "The answer i"]
    assert [s["part"] for s in sentences] == ["step", "step", "reflection", "step", "answer"]
    assert not any("<think>" in s["text"] or "</think>" in s["text"] for s in sentences)


def test_tokens_go_to_the_sentence_of_their_first_visible_character():
    text = "ab cd\nef"
    spans = [(0, 5), (6, 8)]
    offsets = [(0, 2), (2, 5), (5, 8), (5, 6)]  # "ab", " cd", "\nef", "\n"
    assert token_sentences(text, offsets, spans) == [0, 0, 1, None]
    probs = sentence_probs([math.log(0.5), math.log(0.125), math.log(0.2), -9.0], [0, 0, 1, None], 3)
    assert probs[0] == pytest.approx(0.25) and probs[1] == pytest.approx(0.2) and probs[2] is None


def test_local_scorer_matches_a_hand_forward_pass():
    import torch
    from reasonbridge.models.loading import load_model
    from reasonbridge.prompts import chat
    from reasonbridge.provenance.score import LocalScorer
    from reasonbridge.student.release import release_dir
    model, tok = load_model(str(release_dir("tiny") / "model"))
    scorer = LocalScorer(model, tok, name="S", batch_size=2)
    items = [{"problem": "cells 17 #2 die 12 #1 split 2 ?", "text": ORGANISM[:60], "spans": [(0, 32), (33, 46)]},
             {"problem": "stock 8 #1 packs 2 ?", "text": "Plan: from 8", "spans": [(0, 12)]}]
    got = scorer.score(items)
    # by hand, one problem at a time: the context, then the text, p of the second span's tokens
    prompt = tok.apply_chat_template(chat(items[0]["problem"]), add_generation_prompt=True, tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    enc = tok(items[0]["text"], add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([p_ids + enc["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    mine = [k for k, (a, b) in enumerate(enc["offset_mapping"])
            if 33 <= a + len(items[0]["text"][a:b]) - len(items[0]["text"][a:b].lstrip()) < 46 and a < b]
    lps = [logp[len(p_ids) + k - 1, enc["input_ids"][k]].item() for k in mine]
    assert got[0][1] == pytest.approx(math.exp(sum(lps) / len(lps)), rel=1e-4)
    assert len(got[1]) == 1 and 0 < got[1][0] <= 1


class _Fake(BaseHTTPRequestHandler):
    echo_logprobs = True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["prompt"]
        # one "token" per character, log-prob -0.1 for letters, -1.0 otherwise; first has none (vLLM)
        lp = {"tokens": list(prompt) + ["x"], "text_offset": list(range(len(prompt) + 1)),
              "token_logprobs": [None] + [-0.1 if c.isalpha() else -1.0 for c in prompt[1:]] + [-0.5]}
        if not _Fake.echo_logprobs or not body.get("echo"):
            lp = {"tokens": ["x"], "token_logprobs": [-0.5], "text_offset": [len(prompt)]}
        data = json.dumps({"choices": [{"text": "x", "logprobs": lp}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()
    _Fake.echo_logprobs = True


def test_endpoint_scorer_reads_prompt_logprobs(server):
    scorer = EndpointScorer(server, "teacher-model")
    got = scorer.score([{"problem": "q", "text": "ab cd\n12", "spans": [(0, 5), (6, 8)]}])
    # sentence 0: a, b, c, d letters (-0.1), the space is not counted (whitespace has no sentence)
    assert got[0][0] == pytest.approx(math.exp(-0.1))
    assert got[0][1] == pytest.approx(math.exp(-1.0))


def test_endpoint_without_prompt_logprobs_is_a_clear_error(server):
    _Fake.echo_logprobs = False
    with pytest.raises(UserError, match="prompt log-probabilities"):
        EndpointScorer(server, "m").score([{"problem": "q", "text": "ab", "spans": [(0, 2)]}])


def test_selection_keeps_the_candidate_a_hand_count_picks():
    from reasonbridge.stages.provenance import choose
    beta = 0.1
    cands = [  # problem a: sample 1 has 2 teacher sentences (0.9-0.5, 0.7-0.55), sample 0 and 2 have 1
        {"problem_id": "a", "sample": 0, "p_T": [0.9, 0.5, 0.5], "p_S": [0.5, 0.5, 0.45]},
        {"problem_id": "a", "sample": 1, "p_T": [0.9, 0.7, 0.6], "p_S": [0.5, 0.55, 0.5]},  # 0.6-0.5 is not > 0.1
        {"problem_id": "a", "sample": 2, "p_T": [0.3, 0.8], "p_S": [0.6, 0.2]},
        # problem b: a tie (one each) keeps the lowest sample; more sentences alone do not win
        {"problem_id": "b", "sample": 0, "p_T": [0.2, 0.9], "p_S": [0.2, 0.1]},
        {"problem_id": "b", "sample": 1, "p_T": [0.5, 0.5, 0.5, 0.9], "p_S": [0.5, 0.5, 0.5, 0.1]},
        {"problem_id": "c", "sample": 1, "p_T": [0.1], "p_S": [0.9]},
        {"problem_id": "c", "sample": 0, "p_T": [0.5], "p_S": [0.45]},
    ]
    chosen = {c["problem_id"]: c["sample"] for c in choose(cands, beta)}
    assert chosen == {"a": 1, "b": 0, "c": 0}
    assert {c["problem_id"]: c["sample"] for c in choose(cands, 0.35)} == {"a": 0, "b": 0, "c": 0}


def test_samples_per_problem_needs_data_provenance_and_leaves_trace_keys_alone():
    from reasonbridge.config import ConfigError, validate
    from tests.conftest import compose_config
    with pytest.raises(ConfigError, match="samples_per_problem"):
        validate(compose_config(["teacher.samples_per_problem=3"]))
    validate(compose_config(["data=provenance", "teacher.samples_per_problem=3", "provenance=trace"]))
    from reasonbridge.stages.context import RunContext
    from reasonbridge.stages import traces as traces_stage
    keys = []
    for over in ([], ["data=provenance", "teacher.samples_per_problem=4"]):
        ctx = RunContext(compose_config(over))
        seen = {}
        ctx.stage = lambda name, config, upstream, compute, label=None: seen.setdefault("config", config)
        traces_stage.traces(ctx, None)
        keys.append(seen["config"])
    assert keys[0] == keys[1] and "samples_per_problem" not in keys[0]["teacher"]


@pytest.mark.slow
def test_micro_run_traces_provenance_and_selects_by_it(micro_cfg, tmp_path):
    from mlflow.tracking import MlflowClient
    from reasonbridge.pipeline import run_experiment
    # reuse_across_code: the released teacher-LM base (tiny_large) whatever this branch's code
    result = run_experiment(micro_cfg("provenance=trace", "data=provenance", "teacher.samples_per_problem=2",
                                      "data.difficulty=false", "reuse_across_code=[student]"))
    m = result.metrics
    shares = [m[f"provenance/{c}"] for c in ("teacher", "student", "shared", "boosted")]
    assert sum(shares) == pytest.approx(1.0) and m["provenance/sentences"] > 0
    assert "teacher_lm/acc/synthetic" in m and "candidates" in result.stages
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.params["provenance/teacher"] == "teacher_lm:tiny_large+full_ft"
    assert "data/candidates/not_first" in run.data.metrics and "provenance/scoring_s" in run.data.metrics
    art = client.download_artifacts(result.run_id, "provenance/synthetic.jsonl", str(tmp_path))
    rows = [json.loads(line) for line in open(art)]
    assert rows and set(rows[0]) >= {"id", "sentence", "part", "p_T", "p_S", "p_D", "category", "correct"}
    assert len(rows) == m["provenance/sentences"]


def test_report_stacks_mean_shares_per_row(tmp_path):
    from reasonbridge.report.provenance_shares import provenance_rows, write_provenance
    from reasonbridge.report.runs import RunRecord

    def run(i, row, seed, shares, acc):
        metrics = {f"provenance/{c}": v for c, v in zip(("teacher", "student", "shared", "boosted"), shares)}
        metrics["acc/synthetic"] = acc
        return RunRecord(f"r{i}", "0", i, "provenance", row, "tiny", seed, {}, metrics)
    runs = [run(0, "lora", "0", (0.5, 0.1, 0.3, 0.1), 0.9), run(1, "lora", "1", (0.3, 0.1, 0.5, 0.1), 0.7),
            run(2, "base", "0", (0.0, 0.4, 0.6, 0.0), 0.2),
            RunRecord("r3", "0", 3, "table2", "lora", "tiny", "0", {}, {"acc/synthetic": 0.5})]  # not traced
    lines = provenance_rows(runs)
    assert [(x["row"], x["runs"]) for x in lines] == [("base", 1), ("lora", 2)]
    assert lines[1]["teacher"] == pytest.approx(0.4) and lines[1]["acc"] == pytest.approx(0.8)
    files = write_provenance(runs, tmp_path)
    assert {p.name for p in files} == {"provenance.md", "provenance.png", "provenance.pdf"}
    assert "| provenance | lora | 2 | 80.0 | 40.0 | 10.0 | 40.0 | 10.0 |" in (tmp_path / "provenance.md").read_text()
    assert write_provenance(runs[3:], tmp_path / "none") == []


def test_hf_local_and_endpoint_teachers_serve_as_t_with_their_own_scorers(server):
    from reasonbridge.provenance.score import LocalScorer
    from reasonbridge.stages.context import RunContext
    from reasonbridge.stages.provenance import teacher
    from reasonbridge.student.release import release_dir
    from tests.conftest import compose_config
    folder = str(release_dir("tiny_large") / "model")
    t = teacher(RunContext(compose_config(["teacher=hf_local", f"teacher.model={folder}", "provenance=trace"])), None, [])
    assert t.describe == f"hf_local:{folder}" and t.upstream == {}  # no teacher LM trained
    scorer = t.load()
    assert isinstance(scorer, LocalScorer)
    (p,), = scorer.score([{"problem": "stock 8 #1 packs 2 ?", "text": "Plan: from 8", "spans": [(0, 12)]}])
    assert 0 < p <= 1
    t = teacher(RunContext(compose_config(["teacher=openai", f"teacher.base_url={server}", "teacher.model=m",
                                           "provenance=trace"])), None, [])
    assert t.describe == f"endpoint:{server}#m"
    assert t.load().score([{"problem": "q", "text": "ab", "spans": [(0, 2)]}])[0][0] == pytest.approx(math.exp(-0.1))
