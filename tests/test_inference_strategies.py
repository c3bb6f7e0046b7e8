"""Reasoning-state detection and the intervention each strategy picks, on crafted texts."""
import pytest

from reasonbridge.inference.state import arithmetic_errors, detect_state, unused_quantities
from reasonbridge.inference.strategies import BudgetForcing, GuidedIntervention, Strategy, ThinkingFormat

PROBLEM = ("Hats cost 9 dollars and bags cost 8 dollars each. Ava buys 6 hats and 9 bags. "
           "She pays with 500 dollars. How much change does she get?")
STEPS = ("Strategy: Multiply price by count for each item, then combine.\n"
         "Step 1: 9 * 6 = 54 (cost of hats)\nStep 2: 8 * 9 = 72 (cost of bags)\n"
         "Step 3: 54 + 72 = 126 (total cost)\n")
COMPLETE = STEPS + "Step 4: 500 - 126 = 374 (change)\nCheck: 374 + 126 = 500, which matches.\n"
UNVERIFIED = STEPS + "Step 4: 500 - 126 = 374 (change)\n"
PARTIAL = STEPS  # 500 never used
UNCERTAIN_ARITH = "Step 1: 4 * 3 = 12 (a)\nStep 2: 12 * 3 = 35 (b)\nCheck: 35 / 3 = 12, which matches.\n"
UNCERTAIN_PHRASE = COMPLETE + "I'm not sure this is right.\n"
CONTRADICTION = COMPLETE + "So the change is \\boxed{374}, or maybe \\boxed{376}.\n"
PHRASES = {"extension": ["Wait", "Let me think further"], "redirection": ["Alternatively, let's try a different approach"],
           "verification": ["Let me double-check my work"]}


@pytest.mark.parametrize("text,problem,state,cue", [
    (COMPLETE, PROBLEM, "complete", None),
    (UNVERIFIED, PROBLEM, "unverified", "without a verification step"),
    (PARTIAL, PROBLEM, "partial", "unused quantities: 500"),
    ("Strategy: Find the side, then square it.\n", "A square has perimeter 44.", "partial", "no computed result"),
    (UNCERTAIN_ARITH, None, "uncertain", "arithmetic error: 12 * 3 = 35"),
    (UNCERTAIN_PHRASE, PROBLEM, "uncertain", "uncertainty: \"i'm not sure\""),
    (CONTRADICTION, PROBLEM, "uncertain", "contradiction: answers ['374', '376']"),
])
def test_detect_state(text, problem, state, cue):
    report = detect_state(text, problem=problem)
    assert report.state == state
    assert (cue is None and report.cues == []) or any(cue in c for c in report.cues)


def test_arithmetic_claims_are_re_evaluated():
    assert arithmetic_errors("Step 2: 12 * 3 = 35") == ["12 * 3 = 35"]
    assert arithmetic_errors("2 + 3 * 4 = 14, 10 / 4 = 2.5, 10 / 3 = 3.33, 500 - 126 = 374 (change)") == []
    assert arithmetic_errors("so 1 + 1 = 3 and 7 - 2 = 4.") == ["1 + 1 = 3", "7 - 2 = 4"]
    assert arithmetic_errors("x / 4 = 4 and 2x + 1 = 9") == []  # not arithmetic on numbers
    assert unused_quantities("Add 3 and 4.5, then 7.", "3 + 4.5 = 7.5") == ["7"]


@pytest.mark.parametrize("text,kind,state", [
    (PARTIAL, "extension", "partial"),
    (UNCERTAIN_ARITH, "redirection", "uncertain"),
    (UNVERIFIED, "verification", "unverified"),
    (COMPLETE, None, "complete"),
])
def test_gii_picks_the_intervention_for_the_state(text, kind, state):
    gii = GuidedIntervention(max_interventions=4, phrases=PHRASES)
    ep = gii.begin(PROBLEM if text is not UNCERTAIN_ARITH else "Compute 4 * 3, then times 3.")
    iv = gii.on_end_of_thinking(ep, text, thinking_tokens=50)
    assert ep.states == [state]
    if kind is None:
        assert iv is None and ep.thinking_done and ep.interventions == []
    else:
        assert iv.kind == kind and iv.state == state and not ep.thinking_done
        assert iv.text == PHRASES[kind][0] + "\n" and ep.counts()[kind] == 1


def test_gii_judges_errors_since_the_last_intervention_and_stops_at_n():
    gii = GuidedIntervention(max_interventions=2, phrases=PHRASES)
    ep = gii.begin("Compute 4 * 3, then times 3.")
    text = UNCERTAIN_ARITH
    assert gii.on_end_of_thinking(ep, text, 10).kind == "redirection"
    text += "Alternatively, let's try a different approach\nStep 2: 12 * 3 = 36 (b)\n"
    assert gii.on_end_of_thinking(ep, text, 20).kind == "verification"  # the old error is answered
    text += "Let me double-check my work\nStep 2: 12 * 3 = 35 (b)\n"
    assert gii.on_end_of_thinking(ep, text, 30) is None  # N reached: the end stands
    assert ep.thinking_done and [i["kind"] for i in ep.interventions] == ["redirection", "verification"]


def test_phrase_pools_cycle_and_budget_forcing_always_extends():
    bf = BudgetForcing(max_interventions=3, phrases={"extension": ["Wait", "Hmm"]})
    ep = bf.begin("")
    texts = [bf.on_end_of_thinking(ep, COMPLETE, 10).text for _ in range(3)]
    assert texts == ["Wait\n", "Hmm\n", "Wait\n"] and bf.on_end_of_thinking(ep, COMPLETE, 10) is None
    assert ep.counts() == {"extension": 3, "redirection": 0, "verification": 0}
    assert bf.on_end_of_thinking(bf.begin(""), "no newline", 10).text == "\nWait\n"


def test_min_thinking_tokens_extends_even_without_interventions_left():
    bf = BudgetForcing(max_interventions=0, min_thinking_tokens=100)
    ep = bf.begin("")
    assert bf.on_end_of_thinking(ep, COMPLETE, 99).kind == "extension"
    assert bf.on_end_of_thinking(ep, COMPLETE, 100) is None


def test_thinking_format_and_budget_exhaustion():
    tiny = ThinkingFormat()
    assert tiny.end_markers == ("Final Answer:",) and tiny.prompt_suffix == ""
    r1 = ThinkingFormat(think_start="<think>", think_end="</think>")
    assert r1.end_markers == ("</think>",) and r1.prompt_suffix == "<think>"
    s = Strategy(r1)
    ep = s.begin("")
    assert s.on_budget_exhausted(ep, "so far") == "\n</think>\nFinal Answer:"
    assert ep.budget_exhausted and ep.thinking_done
    assert not Strategy().intervenes and GuidedIntervention(max_interventions=1).intervenes


def test_gii_cites_what_it_doubts_and_never_a_computed_value():
    cite = {"claim": " Is {doubt} right?", "unused": " Where is {doubt} used?"}
    gii = GuidedIntervention(max_interventions=3, phrases=PHRASES, cite=cite)
    ep = gii.begin("temp 7 #2 up 3 #1 down 8 ?")
    text = "Plan: from 7 #2 up 3 : 7 + 3 = 11 (temp) #1 down 8 : 11 - 8 = 3 (temp) Check: temp is 3"
    iv = gii.on_end_of_thinking(ep, text, 20)
    assert iv.kind == "redirection" and iv.text.strip() == PHRASES["redirection"][0] + " Is 7 + 3 = 11 right?"
    assert "10" not in iv.text  # the true value is the student's to find
    # a retry that miscopies an operand: the problem's 8 is unused by the model's own text, although
    # the first attempt's phrase does not name it
    text += " " + iv.text + "Plan: from 7 #2 up 3 : 7 + 3 = 10 (temp) #1 down 9 : 10 - 9 = 1 (temp) Check: temp is 1"
    ep2 = gii.begin("temp 7 #2 up 3 #1 down 8 ?")
    first = "Plan: from 7 #2 up 3 : 7 + 3 = 10 (temp) #1 down 9 : 10 - 9 = 1 (temp) Check: temp is 1"
    iv2 = gii.on_end_of_thinking(ep2, first, 20)
    assert iv2.kind == "extension" and iv2.text.endswith(" Where is 8 used?\n")
    # the cited 8 lives only in GII's phrase: it must not count as used by the model
    retry = first + " " + iv2.text + "Plan: from 7 #2 up 3 : 7 + 3 = 10 (temp) Check: temp is 10"
    assert gii.on_end_of_thinking(ep2, retry, 40).state == "partial"
    assert GuidedIntervention(max_interventions=1, phrases=PHRASES).on_end_of_thinking(
        gii.begin(""), "2 + 2 = 5", 5).text.strip() == PHRASES["redirection"][0]  # no cite configured
