"""The model-organism suite: closed-world arithmetic built so a tiny student can learn it on a CPU.

A problem is a start value and 1-5 indexed operations, each written with its domain's own words::

    temp 7 #2 up 3 #1 down 8 ?

Every number is 0-20 (one token each) and every intermediate result stays inside that range.
The teacher's worked solution restates each operation with the same index and words before
computing it (``#2 up 3 : 7 + 3 = 10 (temp)``), so a student finds the next operation by
matching ``#k`` rather than by parsing: the skill that small transformers acquire from copy and
recall drills (see ``pretraining_examples``). Indices count down, so every solution ends after
``#1`` whatever its length: a student trained on long solutions (the curated set) still knows
where a short one ends. Difficulty is the number of operations.

Design choices and the measurements behind them: docs/organism.md. Problems use the same schema as
the word-problem suite (``meta.steps`` of ``{a, op, b, result, what}``, ``meta.check``), so the
symbolic teacher's defects, the quality filter and GII's arithmetic checks work unchanged.
"""
from __future__ import annotations

import random
from typing import Callable

SUITE = "organism"
VERSION = 9  # part of the stage-cache keys of everything generated from the suite: bump on any change
MAX_VALUE = 20
NUMBERS = [str(n) for n in range(MAX_VALUE + 1)]
MAX_STEPS = 5
INDEX = [f"#{k}" for k in range(1, MAX_STEPS + 1)]

# MSC code -> (domain name, the quantity's word, {operation: its word in this domain})
DOMAINS: dict[str, tuple[str, str, dict[str, str]]] = {
    "97": ("running totals", "total", {"+": "add", "-": "sub", "*": "times"}),
    "91": ("shop stock", "stock", {"+": "buys", "-": "sells", "*": "packs"}),
    "80": ("temperature", "temp", {"+": "up", "-": "down"}),
    "70": ("position on a track", "pos", {"+": "ahead", "-": "back", "*": "scale"}),
    "92": ("population", "cells", {"+": "born", "-": "die", "*": "split"}),
    "68": ("register machine", "reg", {"+": "inc", "-": "dec", "*": "mul"}),
}
STRATEGY = "Strategy: apply changes in order"
INVERSE = {"+": "-", "-": "+", "*": "/"}


def apply(a: int, op: str, b: int) -> int | None:
    """``a op b`` when it is an integer in [0, MAX_VALUE], else None."""
    if op == "/":
        c = a // b if b and a % b == 0 else None
    else:
        c = {"+": a + b, "-": a - b, "*": a * b}[op]
    return c if c is not None and 0 <= c <= MAX_VALUE else None


def _operation(rng: random.Random, x: int, ops: dict[str, str]) -> tuple[str, int]:
    """An operation and operand that keep ``x`` inside [0, MAX_VALUE]."""
    feasible = []
    if x < MAX_VALUE:
        feasible.append(("+", rng.randint(1, MAX_VALUE - x)))
    if x > 0:
        feasible.append(("-", rng.randint(1, x)))
    if "*" in ops and 1 <= x <= MAX_VALUE // 2:
        feasible.append(("*", rng.randint(2, MAX_VALUE // x)))
    return rng.choice(feasible)


def problem_text(quantity: str, start: int, steps: list[dict]) -> str:
    return " ".join([quantity, str(start)] + [s["what"] for s in steps] + ["?"])


def draft(code: str, difficulty: int, rng: random.Random) -> dict:
    """One problem of the domain with ``difficulty`` operations."""
    name, quantity, words = DOMAINS[code]
    x = start = rng.randint(0, MAX_VALUE)
    steps: list[dict] = []
    for k in range(difficulty):
        op, b = _operation(rng, x, words)
        c = apply(x, op, b)
        steps.append({"a": x, "op": op, "b": b, "result": c, "what": f"{INDEX[difficulty - 1 - k]} {words[op]} {b}",
                      "a_src": k - 1 if k else None, "b_src": None})
        x = c
    last = steps[-1]
    check = {"a": last["result"], "op": INVERSE[last["op"]], "b": last["b"], "result": last["a"], "what": quantity}
    return {"problem": problem_text(quantity, start, steps), "answer": str(x), "domain": code,
            "domain_name": name, "difficulty": difficulty, "source": "synthetic",
            "meta": {"suite": SUITE, "template": name, "quantity": quantity, "start": start,
                     "strategy": STRATEGY, "plan": [s["what"] for s in steps], "steps": steps, "check": check}}


def generate(n: int, seed: int, *, difficulties=(1, 5), domains=None, id_prefix: str = "org",
             keep: Callable[[str], bool] | None = None, stratified: bool = False,
             distinct: bool = True) -> list[dict]:
    """``n`` problems whose text passes ``keep`` (a side of the held-out split), deterministic in
    ``seed``; ``distinct``: no text twice. ``stratified``: equal counts per difficulty and domain
    (the held-out benchmark); otherwise domain and difficulty are drawn uniformly."""
    codes = sorted(DOMAINS if domains is None else {str(d) for d in domains})
    unknown = [c for c in codes if c not in DOMAINS]
    if unknown or not codes:
        raise ValueError(f"unknown or empty domains {unknown or codes}; the organism has {sorted(DOMAINS)}")
    lo, hi = (int(d) for d in difficulties)
    if not 1 <= lo <= hi <= MAX_STEPS:
        raise ValueError(f"difficulties must satisfy 1 <= low <= high <= {MAX_STEPS}, got {tuple(difficulties)}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict] = []
    for i in range(n):
        d = lo + i % (hi - lo + 1) if stratified else rng.randint(lo, hi)
        code = codes[i // (hi - lo + 1) % len(codes)] if stratified else rng.choice(codes)
        for _ in range(1000):
            p = draft(code, d, rng)
            if (not distinct or p["problem"] not in seen) and (keep is None or keep(p["problem"])):
                break
        else:
            raise RuntimeError(f"no new {DOMAINS[code][0]} problem with {d} operations after 1000 draws; "
                               "ask for fewer problems")
        seen.add(p["problem"])
        out.append({"id": f"{id_prefix}-{code}-{i:06d}", **p})
    return out


def render_step(step: dict, quantity: str) -> str:
    return f"{step['what']} : {step['a']} {step['op']} {step['b']} = {step['result']} ({quantity})"


def render_trace(meta: dict, step_lines: list[str], check: dict, final: str) -> list[tuple[str, str]]:
    """(level, line) pairs of the teacher's worked solution (the lines may carry a defect)."""
    return ([("strategic", meta["strategy"]), ("tactical", f"Plan: from {meta['start']}")]
            + [("operational", line) for line in step_lines]
            + [("operational", f"Check: {meta['quantity']} is {check['a']}"),
               ("answer", final)])


def final_answer(answer: str) -> str:
    return f"Final Answer: \\boxed{{ {answer} }}"


def solution_words(problem: dict) -> list[str]:
    """The clean worked solution of ``problem`` as the student's words (what the symbolic teacher
    writes when it makes no mistake)."""
    meta = problem["meta"]
    lines = render_trace(meta, [render_step(s, meta["quantity"]) for s in meta["steps"]], meta["check"],
                         final_answer(problem["answer"]))
    return " ".join(line for _, line in lines).split()


# -- the student's vocabulary and pre-training --------------------------------------------------
def vocabulary(extra_texts: list[str] = ()) -> list[str]:
    """Every word of the organism's problems and traces, plus the words of ``extra_texts``
    (the prompt instruction, the test-time intervention phrases); order fixed."""
    words = NUMBERS + INDEX + ["?", ":", "=", "+", "-", "*", "/", ";", ",", "Plan:", "apply", "from",
                               "Check:", "Final", "Answer:", "\\boxed{", "}", ")", "So", "is", "or"]
    words += STRATEGY.split()
    for _, quantity, ops in DOMAINS.values():
        words += [quantity, f"({quantity})", f"({quantity}"] + list(ops.values())
    for text in extra_texts:
        words += text.split()
    out, seen = [], set()
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _fact(rng: random.Random) -> list[str]:
    while True:
        a, op, b = rng.randint(0, MAX_VALUE), rng.choice("+-*/"), rng.randint(0, MAX_VALUE)
        if op == "/" and b == 0:
            continue
        c = apply(a, op, b)
        if c is not None:
            return [str(a), op, str(b), "=", str(c)]


def pretraining_examples(n: int, seed: int, *, direct_answer, mix: dict[str, float], difficulties=(1, 5),
                         domains=None, keep: Callable[[str], bool] | None = None,
                         words: list[str] | None = None) -> list[dict]:
    """Word-level pre-training examples that never show a worked multi-step solution.

    Each is ``{"words": [...], "loss": [bool per word]}``; ``direct_answer(problem)`` returns the
    (prompt words, answer words) of a direct-answer chat. Kinds (``mix`` gives their shares):

    - ``facts``: independent single operations, plain (``a op b = c``) or written as one line of a
      solution (``#2 down 8 : 15 - 8 = 7 (temp)``) with a random first operand, never chained
      (loss on what follows that operand);
    - ``direct``: a problem answered at once, no working (loss on the answer);
    - ``copy``: a random sequence of numbers, indices and domain words, one in five drawn from all of
      ``words`` (default: the organism's vocabulary), then the same again (loss on the copy). Every
      word is thereby read and written in pre-training, as a
      real student has met every word of its vocabulary: a word never predicted keeps its random
      initial embedding, which (tied to the output layer) the adapters of a frozen base cannot
      make it win against trained words;
    - ``twice``: a problem written twice (loss on the second);
    - ``recall``: a problem, then some of its operations asked back by index (``#2`` -> ``down 8``);
    - ``solve1``: a one-operation problem with its worked solution in the teacher's format: the
      student knows the format and a single step, but has never seen two steps chained;
    - ``walk``: a problem, then its operations in order, each as a solution's line computed from a
      random value (the first from the start value), never from the result before it, then
      ``Check:``: reading the operations one after another and computing each, without a chain;
    - ``latest``: a start value and labelled values (``12 (temp)``) among restated operations, then
      the latest value asked for after ``:`` -- where a solution line writes its running value.
      No arithmetic: the values are drawn at random.
    """
    rng = random.Random(seed)
    kinds = sorted(mix)
    weights = [mix[k] for k in kinds]
    problems = generate(n, seed + 1, difficulties=difficulties, domains=domains, id_prefix="pre", keep=keep,
                        distinct=False)
    pieces = NUMBERS + INDEX + [w for _, q, ops in DOMAINS.values() for w in [q, *ops.values()]]
    every_word = list(words or vocabulary())
    out = []
    for p in problems:
        kind = rng.choices(kinds, weights)[0]
        text = p["problem"].split()
        if kind == "facts":
            words, loss = [], []
            _, quantity, ops = DOMAINS[p["domain"]]
            last = None  # a line never starts from the result before it: no chain
            for _ in range(rng.randint(3, 10)):
                if rng.random() < 0.5:
                    words += _fact(rng) + [";"]
                    loss += [False, False, False, False, True, False]
                    continue
                a = rng.choice([v for v in range(MAX_VALUE + 1) if v != last])
                op, b = _operation(rng, a, ops)
                last = apply(a, op, b)
                words += [rng.choice(INDEX), ops[op], str(b), ":", str(a), op, str(b), "=", str(last), f"({quantity})"]
                loss += [False, False, False, False, False, True, True, True, True, True]
        elif kind == "direct":
            prompt, answer = direct_answer(p)
            words, loss = prompt + answer, [False] * len(prompt) + [True] * len(answer)
        elif kind == "solve1":
            one = draft(p["domain"], 1, rng)
            while keep is not None and not keep(one["problem"]):
                one = draft(p["domain"], 1, rng)
            prompt, _ = direct_answer(one)
            answer = solution_words(one) + ["<|end|>"]
            words, loss = prompt + answer, [False] * len(prompt) + [True] * len(answer)
        elif kind == "copy":
            seq = [rng.choice(every_word if rng.random() < 0.2 else pieces) for _ in range(rng.randint(3, 12))]
            words, loss = seq + [":"] + seq, [False] * (len(seq) + 1) + [True] * len(seq)
        elif kind == "twice":
            words, loss = text + [";"] + text, [False] * (len(text) + 1) + [True] * len(text)
        elif kind == "latest":
            quantity = p["meta"]["quantity"]
            latest = rng.randint(0, MAX_VALUE)
            words = ["from", str(latest)]
            for s in p["meta"]["steps"]:
                words += s["what"].split() + [":"]
                if s is p["meta"]["steps"][-1] or rng.random() < 0.3:  # the question
                    words += [str(latest)]
                    break
                latest = rng.randint(0, MAX_VALUE)
                words += [str(latest), f"({quantity})"]
            loss = [False] * (len(words) - 1) + [True]
        elif kind == "walk":
            quantity, start = p["meta"]["quantity"], p["meta"]["start"]
            words, loss = text + [";", "from", str(start)], [False] * (len(text) + 3)
            a, last = start, None
            for s in p["meta"]["steps"]:
                if last is not None:  # never the result before it: no chain
                    fits = [v for v in range(MAX_VALUE + 1) if v != last and apply(v, s["op"], s["b"]) is not None]
                    if not fits:  # only a chain would fit (e.g. `- 20` after 20): the walk stops here
                        break
                    a = rng.choice(fits)
                last = apply(a, s["op"], s["b"])
                words += s["what"].split() + [":", str(a), s["op"], str(s["b"]), "=", str(last), f"({quantity})"]
                loss += [True, True, True, True, s is p["meta"]["steps"][0], True, True, True, True, True]
            else:
                words, loss = words + ["Check:"], loss + [True]
        else:  # recall
            words, loss = text + [";"], [False] * (len(text) + 1)
            for s in rng.sample(p["meta"]["steps"], k=len(p["meta"]["steps"])):
                index, word, operand = s["what"].split()
                words += [index, word, operand, ";"]
                loss += [False, True, True, False]
        out.append({"kind": kind, "words": words, "loss": loss})
    return out

