"""The KV-cache engine with real (tiny, in-memory) Llama models."""
import pytest
import torch

from reasonbridge.inference.engine import generate_with_strategy
from reasonbridge.models.generation import generate
from reasonbridge.inference.strategies import BudgetForcing, GuidedIntervention, Strategy, ThinkingFormat
from tests import inference_models as im

PHRASES = {"extension": ["Wait"], "redirection": ["Alternatively, let's try a different approach"],
           "verification": ["Let me double-check my work"]}


def run(model, prompts, strategy, **kw):
    kw = {"max_new_tokens": 40, "batch_size": 8, "progress": False, **kw}
    return generate_with_strategy(model, im.tokenizer(), prompts, [""] * len(prompts), strategy, **kw)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_budget_forcing_suppresses_the_end_of_thinking_exactly_n_times(n):
    out = run(im.chain_model(), ["Q", "Q 35"], BudgetForcing(max_interventions=n, phrases=PHRASES))
    for rec, before in zip(out, ["Step 12 * 3 = 35\n", "\n"]):
        assert rec["interventions"] == {"extension": n, "redirection": 0, "verification": 0}
        # each suppressed "Final Answer:" is gone; the (n+1)-th is accepted and answered
        assert rec["output"] == before + "Wait\n" * n + "Final Answer: 36"
        assert rec["stop"] == "eos" and not rec["budget_exhausted"]
        # generated: each suppressed try writes "Final", " Answer:"; then "Final Answer: 36" and EOS
        assert rec["tokens"] == len(im.tokenizer().tokenize(before)) + 2 * n + 4
        # every strategy watches the end of thinking: the budget forces the answer for all rows
        assert rec["end_of_thinking"] == ["Final Answer:", "<eos>"]


def test_thinking_budget_forces_the_answer():
    chain = ["Q", " hmm", " ok", " so", " hmm"]  # never ends thinking on its own
    out = run(im.chain_model(chain), ["Q"], BudgetForcing(max_interventions=2, phrases=PHRASES),
              max_thinking_tokens=6, max_new_tokens=9)[0]
    assert out["budget_exhausted"] and out["interventions"]["extension"] == 0
    assert out["output"].startswith(" hmm ok so hmm ok so\nFinal Answer:")  # 6 thinking tokens, then forced
    assert out["tokens"] == 9 and out["stop"] == "max_new_tokens"


@pytest.mark.parametrize("strategy", [Strategy(), GuidedIntervention(max_interventions=0), BudgetForcing(max_interventions=0),
                                      BudgetForcing(max_interventions=2, phrases=PHRASES)])
def test_every_row_gets_the_same_forced_answer_at_the_thinking_budget(strategy):
    """A model that never writes its answer marker: with none and 0 interventions too, the budget
    closes thinking with the marker, as for the rows that intervene (one budget per comparison)."""
    chain = ["Q", " hmm", " ok", " so", " hmm"]
    out = run(im.chain_model(chain), ["Q"], strategy, max_thinking_tokens=6, max_new_tokens=9)[0]
    assert out["budget_exhausted"] and out["output"].startswith(" hmm ok so hmm ok so\nFinal Answer:")
    stop = run(im.chain_model(chain), ["Q"], Strategy(answer_at_budget=False), max_new_tokens=9)[0]
    assert not stop["budget_exhausted"] and "Final Answer:" not in stop["output"] and stop["end_of_thinking"] == []


def test_eos_counts_as_end_of_thinking_only_when_configured():
    chains = (["Q", " ok", "<eos>"], ["\n", " ok"])  # stops without an answer marker
    on = run(im.chain_model(*chains), ["Q"], BudgetForcing(max_interventions=2, phrases=PHRASES))[0]
    assert on["interventions"]["extension"] == 2 and on["output"] == " ok\nWait\n ok\nWait\n ok"
    off = run(im.chain_model(*chains), ["Q"],
              BudgetForcing(ThinkingFormat(eos_ends_thinking=False), max_interventions=2, phrases=PHRASES))[0]
    assert off["interventions"]["extension"] == 0 and off["output"] == " ok"


def test_gii_engine_redirects_a_wrong_claim_then_asks_for_verification():
    out = run(im.chain_model(), ["Q", "Q 35"], GuidedIntervention(max_interventions=2, phrases=PHRASES))
    assert out[0]["states"] == ["uncertain", "unverified"]
    assert out[0]["interventions"] == {"extension": 0, "redirection": 1, "verification": 1}
    assert [i["cues"] for i in out[0]["intervention_log"]][0] == ["arithmetic error: 12 * 3 = 35"]
    assert out[0]["output"] == ("Step 12 * 3 = 35\nAlternatively, let's try a different approach\n"
                                "Let me double-check my work\nFinal Answer: 36")
    assert out[1]["states"] == ["partial", "partial"] and out[1]["interventions"]["extension"] == 2
    assert out[0]["conditioned_on"] == "Q" + out[0]["output"] + "<eos>"


def test_kv_cache_continuation_matches_generation_from_scratch():
    """Batched, left-padded, with a two-token marker masked out of the cache: the tokens
    after the last intervention equal greedy decoding from scratch with the conditioned
    prefix (prompt + kept tokens + injections) as the prompt."""
    tok, model = im.tokenizer(), im.random_model(seed=3)
    prompts = ["Q 7 5", "R 2 * 3 = 12 hmm so", "Q", "R 35 a different"]
    plain = run(model, prompts, Strategy(), max_new_tokens=12, return_ids=True)
    marker = tok.decode(plain[0]["ids"][3:5])  # a two-token "end of thinking" this model writes at step 4
    strategy = BudgetForcing(ThinkingFormat(answer_marker=marker, eos_ends_thinking=False),
                             max_interventions=2, phrases=PHRASES)
    batched = run(model, prompts, strategy, max_new_tokens=30, return_ids=True)
    alone = run(model, prompts[:1], strategy, max_new_tokens=30, return_ids=True)  # phrase fed as one chunk
    assert batched[0]["interventions"]["extension"] >= 1 and alone[0]["interventions"]["extension"] >= 1
    for rec in batched + alone:
        if not rec["intervention_log"]:
            continue
        cut = rec["intervention_log"][-1]["at_token"]
        head, tail = rec["prompt_ids"] + rec["ids"][:cut], rec["ids"][cut:]
        scratch = model.generate(torch.tensor([head]), attention_mask=torch.ones(1, len(head), dtype=torch.long),
                                 max_new_tokens=len(tail), do_sample=False, pad_token_id=0, eos_token_id=1)
        assert scratch[0, len(head):].tolist() == tail
        assert len(tail) > 5


def test_plain_engine_matches_transformers_generate():
    tok, model = im.tokenizer(), im.random_model(seed=5)
    prompts = ["Q 7", "R 2 * 3 = 12 hmm so", "Q 12 * 3"]
    ours = run(model, prompts, Strategy(), max_new_tokens=15)
    theirs = generate(model, tok, prompts, max_new_tokens=15, batch_size=8, progress=False)
    assert [o["output"] for o in ours] == [t["output"] for t in theirs]
    assert [o["tokens"] for o in ours] == [t["tokens"] for t in theirs]


def test_finished_sequences_leave_the_batch():
    model = im.chain_model()
    sizes = []
    model.register_forward_pre_hook(lambda mod, args, kwargs: sizes.append(kwargs["input_ids"].shape[0]),
                                    with_kwargs=True)
    out = run(model, ["Q", "Q 35"], Strategy())
    assert [o["tokens"] for o in out] == [11, 5]
    # prefill + 10 steps for the long row; the short one is gone after its 5th token
    assert sizes == [2] * 5 + [1] * 6


def test_sampling_is_seeded_and_top_p_narrows_to_greedy():
    model = im.random_model(seed=1, init=0.05)  # flat logits: samples differ from greedy
    prompts = ["Q", "R 7"] * 2
    a = run(model, prompts, Strategy(), temperature=1.0, seed=11)
    b = run(model, prompts, Strategy(), temperature=1.0, seed=11)
    c = run(model, prompts, Strategy(), temperature=1.0, seed=12)
    assert [x["output"] for x in a] == [x["output"] for x in b]
    assert [x["output"] for x in a] != [x["output"] for x in c]
    assert a[0]["output"] != a[2]["output"]  # same prompt, independent samples
    greedy = run(model, prompts, Strategy())
    nucleus = run(model, prompts, Strategy(), temperature=1.0, top_p=1e-6, seed=11)
    assert [x["output"] for x in nucleus] == [x["output"] for x in greedy]
