"""The symbolic teacher: writes a problem's solution plan as a hierarchical reasoning trace.

A trace has one line per level (strategy, plan, the operational steps with a check, the boxed
answer). A seeded share of traces carries one realistic defect, so that quality filters have
something to catch. The defect draw depends only on (teacher seed, problem id): a problem gets
the same trace whatever else is generated and in whatever order.
"""
from __future__ import annotations

import hashlib
import json
import random
from typing import Callable

from reasonbridge.cache.code import code_fingerprint
from reasonbridge.curation import organism
from reasonbridge.curation.synthetic import MAX_VALUE, apply_op, inverse_check, step_ancestors
from reasonbridge.answers import extract_boxed

# Part of the teacher's identity: bump it whenever the trace text changes, so a teacher cache
# (keyed by identity and prompt) never serves traces in an older format.
TRACE_FORMAT = 4
DEFECT_KINDS = ("arithmetic_slip", "broken_format", "contradiction", "multiple_answers")


def _nudge(rng: random.Random, value: int, max_value: int) -> int:
    """A nearby, different value in [0, max_value]."""
    return rng.choice([value + s * k for k in (1, 2, 3) for s in (1, -1) if 0 <= value + s * k <= max_value])


def _propagate(steps: list[dict], j: int, delta: int, max_value: int) -> list[dict] | None:
    """Steps with step j's result off by ``delta`` and every later step recomputed from it."""
    out = [dict(s) for s in steps]
    out[j]["result"] += delta
    if not 0 <= out[j]["result"] <= max_value:
        return None
    for s in out[j + 1:]:
        for operand in ("a", "b"):
            if s.get(f"{operand}_src") is not None:
                s[operand] = out[s[f"{operand}_src"]]["result"]
        s["result"] = apply_op(s["a"], s["op"], s["b"])
        if s["result"] is None or s["result"] > max_value:
            return None
    return out


def _slip(steps: list[dict], check: dict, rng: random.Random, max_value: int) -> tuple[list[dict], dict]:
    """An arithmetic slip in a step that feeds the answer, carried through to a wrong answer."""
    def deltas(step: dict) -> tuple[int, ...]:  # off by a factor too, so a slipped product can still be undone
        return (1, -1, 2, -2, 3, -3) + ((step["b"], -step["b"]) if step["op"] == "*" else ())
    candidates = [(j, delta) for j in sorted(step_ancestors(steps, len(steps) - 1)) for delta in deltas(steps[j])]
    rng.shuffle(candidates)
    for j, delta in candidates:
        new = _propagate(steps, j, delta, max_value)
        new_check = inverse_check(new[-1]) if new else None
        if new_check and new_check["result"] <= max_value and new[-1]["result"] != steps[-1]["result"]:
            return new, new_check
    new = [dict(s) for s in steps]  # nothing carries through cleanly: slip the last step alone
    new[-1]["result"] += 1 if new[-1]["result"] < max_value else -1
    return new, check


def _assemble(lines: list[tuple[str, str]], retracted: set[int] = frozenset()) -> tuple[str, list[dict]]:
    """Join (level, line) pairs; consecutive lines of one level form one segment. The lines at
    ``retracted`` (ones the trace itself later corrects) form segments marked ``retracted``."""
    text, segments = "", []
    for i, (level, line) in enumerate(lines):
        text += "\n" if text else ""
        start, text = len(text), text + line
        mark = {"retracted": True} if i in retracted else {}
        if segments and segments[-1]["level"] == level and segments[-1].get("retracted", False) == bool(mark):
            segments[-1]["end"] = len(text)
        else:
            segments.append({"level": level, "start": start, "end": len(text), **mark})
    return text, segments


class SymbolicTeacher:
    """Renders ``problem["meta"]`` as a trace; with probability ``defect_rate`` adds one defect.

    On the organism, a clean trace is also, like a thinking model's, reflected on after its check
    with probability ``corrections`` (a flaw in the first attempt, an intervention phrase citing
    it, the solution again done right, each retry flawed again with probability ``flawed_retry``)
    or ``rechecks`` (a bare phrase and the check restated);
    the phrases are ``phrases`` and ``cite``, the test-time intervention's own."""

    name = "symbolic"

    def __init__(self, defect_rate: float = 0.1, seed: int = 0, *, corrections: float = 0.0, rechecks: float = 0.0,
                 flawed_retry: float = 0.0, phrases: dict[str, list[str]] | None = None,
                 cite: dict[str, str] | None = None):
        for field, rate in (("defect_rate", defect_rate), ("corrections", corrections), ("rechecks", rechecks),
                            ("flawed_retry", flawed_retry)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{field} must be in [0, 1], got {rate}")
        if corrections + rechecks > 1.0:
            raise ValueError(f"corrections + rechecks must be at most 1, got {corrections + rechecks}")
        if (corrections or rechecks) and not phrases:
            raise ValueError("reflections need the intervention phrases")
        self.defect_rate, self.seed = defect_rate, seed
        self.corrections, self.rechecks, self.flawed_retry = corrections, rechecks, flawed_retry
        self.phrases, self.cite = phrases or {}, dict(cite or {})
        # the teacher is a program: the ledger serves a trace only to the code that wrote it (this
        # module, the organism, everything they import), as the stage cache does
        self.identity = {"name": self.name, "defect_rate": defect_rate, "seed": seed, "format": TRACE_FORMAT,
                         "organism": organism.VERSION, "code": code_fingerprint(__name__)}
        if corrections or rechecks:
            self.identity.update(corrections=corrections, rechecks=rechecks, phrases=self.phrases, cite=self.cite)
        if flawed_retry:
            self.identity["flawed_retry"] = flawed_retry
        self.sampling: dict = {}
        self.endpoint = None

    def _rng(self, problem_id: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}\x00{problem_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def generate(self, problem: dict) -> dict:
        meta, rng = problem["meta"], self._rng(problem["id"])
        # Both draws happen whatever the rate, so raising defect_rate only adds defects.
        roll, kind = rng.random(), rng.choice(DEFECT_KINDS)
        defect = kind if roll < self.defect_rate else None
        reflect = rng.random()
        retracted: set[int] = set()
        steps, check, answer = meta["steps"], meta["check"], problem["answer"]
        organism_suite = meta.get("suite") == organism.SUITE
        max_value = organism.MAX_VALUE if organism_suite else MAX_VALUE
        if defect == "arithmetic_slip":
            steps, check = _slip(steps, check, rng, max_value)
            answer = str(steps[-1]["result"])
        if organism_suite:  # one word per token: spaced, as the organism's student reads it
            box, sep = (lambda a: f"\\boxed{{ {a} }}"), " "
            ops = [organism.render_step(s, meta["quantity"]) for s in steps]
            restate = (lambda s, v: f"So {meta['quantity']} is {v}")
        else:
            box, sep = (lambda a: f"\\boxed{{{a}}}"), ""
            ops = [f"Step {i}: {s['a']} {s['op']} {s['b']} = {s['result']} ({s['what']})" for i, s in enumerate(steps, 1)]
            restate = (lambda s, v: f"So {s['what']} is {v}.")
        final = f"Final Answer: {box(answer)}"
        if defect == "contradiction":  # restate a quantity just computed, with another value
            j = rng.randrange(len(steps))
            ops.insert(j + 1, restate(steps[j], _nudge(rng, steps[j]["result"], max_value)))
        elif defect == "multiple_answers":
            boxes = [answer, str(_nudge(rng, int(answer), max_value))]
            rng.shuffle(boxes)
            final = "Final Answer: " + " or ".join(box(b) for b in boxes)
        elif defect == "broken_format":
            variant = rng.randrange(4)
            if variant == 0:
                final = f"Final Answer: {answer}"
            elif variant == 1:
                final = final[:-1].rstrip()  # unclosed \\boxed{
            elif variant == 2:
                final = final[:-1].rstrip() + sep + ")"
            else:
                j = rng.randrange(len(ops))
                ops[j] = ops[j][:-1]  # unclosed parenthesis around the step's label
        if organism_suite and defect is None and reflect < self.corrections + self.rechecks:
            corrected = (organism.corrected_attempts(steps, rng, self.phrases, self.cite, again=self.flawed_retry)
                         if reflect < self.corrections else None)
            attempt, reflections = corrected or (steps, organism.rechecks(rng, self.phrases, self.cite))
            lines = organism.reflected_trace(meta, attempt, reflections, final)
            # a line of the solution's steps or check that the final attempt does not write is a
            # flawed attempt's: retracted by the trace itself
            q = meta["quantity"]
            right = {organism.render_step(s, q) for s in steps} | {f"Check: {q} is {steps[-1]['result']}"}
            retracted = {i for i, (level, line) in enumerate(lines) if level == "operational" and line not in right}
        elif organism_suite:
            lines = organism.render_trace(meta, ops, check, final)
        else:
            plan = " ".join(f"{i}) {goal}" for i, goal in enumerate(meta["plan"], 1))
            lines = ([("strategic", f"Strategy: {meta['strategy']}"), ("tactical", f"Plan: {plan}")]
                     + [("operational", line) for line in ops]
                     + [("operational", f"Check: {check['a']} {check['op']} {check['b']} = {check['result']}, "
                                        "which matches."), ("answer", final)])
        text, segments = _assemble(lines, retracted)
        return {"problem_id": problem["id"], "teacher": self.name, "text": text, "answer": extract_boxed(text),
                "segments": segments, "defects": [defect] if defect else []}

    def generate_many(self, problems: list[dict]) -> list[dict]:
        return [self.generate(p) for p in problems]

    def prompt(self, problem: dict) -> str:
        """What the output depends on: the problem (its solution plan) and its id (the defect draw)."""
        return json.dumps({"id": problem["id"], "problem": problem["problem"]}, ensure_ascii=False)

    def run(self, jobs: list[tuple[str, dict, str]], emit: Callable, budget) -> None:
        from reasonbridge.curation.teacher_cache import provenance
        for key, problem, _ in jobs:
            budget.reserve(0.0)
            trace = self.generate(problem)
            emit(key, {"text": trace["text"], "segments": trace["segments"], "defects": trace["defects"]},
                 provenance(self.name, None, None, 0.0, 0.0))
            budget.settle(0.0, 0.0)
