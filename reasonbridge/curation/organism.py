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
VERSION = 10  # the organism's design generation (docs/organism.md); stage keys follow its code, not this number
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


def draft(code: str, difficulty: int, rng: random.Random, also: tuple[str, ...] = ()) -> dict:
    """One problem of the domain with ``difficulty`` operations; with ``also`` (other domains' codes),
    each operation is worded by one of these domains or this one at random (a problem that mixes
    domains' words, which no single-domain trace shows)."""
    if also:
        return _draft_mixed(code, also, difficulty, rng)
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


def _draft_mixed(code: str, also: tuple[str, ...], difficulty: int, rng: random.Random) -> dict:
    name, quantity, _ = DOMAINS[code]
    group = (code, *also)
    ops = {op for c in group for op in DOMAINS[c][2]}
    x = start = rng.randint(0, MAX_VALUE)
    steps: list[dict] = []
    for k in range(difficulty):
        op, b = _operation(rng, x, dict.fromkeys(ops, ""))
        word = DOMAINS[rng.choice([c for c in group if op in DOMAINS[c][2]])][2][op]
        c = apply(x, op, b)
        steps.append({"a": x, "op": op, "b": b, "result": c, "what": f"{INDEX[difficulty - 1 - k]} {word} {b}",
                      "a_src": k - 1 if k else None, "b_src": None})
        x = c
    last = steps[-1]
    check = {"a": last["result"], "op": INVERSE[last["op"]], "b": last["b"], "result": last["a"], "what": quantity}
    mixed = "+".join(DOMAINS[c][0] for c in group)
    return {"problem": problem_text(quantity, start, steps), "answer": str(x), "domain": code,
            "domain_name": name, "difficulty": difficulty, "source": "synthetic", "mixed_domains": list(group),
            "meta": {"suite": SUITE, "template": mixed, "quantity": quantity, "start": start,
                     "strategy": STRATEGY, "plan": [s["what"] for s in steps], "steps": steps, "check": check}}


def generate(n: int, seed: int, *, difficulties=(1, 5), domains=None, id_prefix: str = "org",
             keep: Callable[[str], bool] | None = None, stratified: bool = False,
             distinct: bool = True, mix: int = 1) -> list[dict]:
    """``n`` problems whose text passes ``keep`` (a side of the held-out split), deterministic in
    ``seed``; ``distinct``: no text twice. ``stratified``: equal counts per difficulty and domain
    (the held-out benchmark); otherwise domain and difficulty are drawn uniformly. ``mix`` > 1:
    each problem words its operations with ``mix`` of ``domains`` at once."""
    codes = sorted(DOMAINS if domains is None else {str(d) for d in domains})
    unknown = [c for c in codes if c not in DOMAINS]
    if unknown or not codes:
        raise ValueError(f"unknown or empty domains {unknown or codes}; the organism has {sorted(DOMAINS)}")
    lo, hi = (int(d) for d in difficulties)
    if not 1 <= lo <= hi <= MAX_STEPS:
        raise ValueError(f"difficulties must satisfy 1 <= low <= high <= {MAX_STEPS}, got {tuple(difficulties)}")
    if not 1 <= mix <= len(codes):
        raise ValueError(f"mix={mix}: a problem can mix the words of 1 to {len(codes)} of the domains {codes}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict] = []
    for i in range(n):
        d = lo + i % (hi - lo + 1) if stratified else rng.randint(lo, hi)
        code = codes[i // (hi - lo + 1) % len(codes)] if stratified else rng.choice(codes)
        for _ in range(1000):
            also = tuple(rng.sample([c for c in codes if c != code], mix - 1)) if mix > 1 else ()
            p = draft(code, d, rng, also)
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


# -- reflection: what a thinking model writes after "Wait" (docs/organism.md, organism v10) ----------
# A reflection is written where test-time intervention happens: after the solution's check, where
# the model tried to end its thinking. Its phrases are the intervention phrases themselves (GII's
# and budget forcing's, from the inference config's defaults), so the student has met each one and
# what follows it: a bare phrase is followed by the check restated (a re-check that changes
# nothing), a phrase that cites a doubt (GII's cite: a false claim or an unused quantity) by the
# solution written again from the plan with that step done right.
def flawed_steps(steps: list[dict], rng: random.Random, *, chained: bool = True,
                 kinds: tuple[str, ...] = ("slip", "miscopy")) -> tuple[list[dict], tuple[str, str]] | None:
    """The steps with one flaw, carried through when ``chained``, and the doubt GII would cite:
    a slip (a false result, cited as the claim ``a op b = c``) or a miscopied operand (a true
    claim from the wrong operand, cited as the problem's unused quantity). None if no flaw of
    ``kinds`` keeps every value inside [0, MAX_VALUE]."""
    options = [(j, kind) for j in range(len(steps)) for kind in kinds]
    rng.shuffle(options)
    for j, kind in options:
        out = [dict(s) for s in steps]
        s = out[j]
        if kind == "slip":
            s["result"] = rng.choice([v for v in range(MAX_VALUE + 1) if v != s["result"]
                                      and abs(v - s["result"]) <= 3] or [s["result"]])
            if s["result"] == steps[j]["result"]:
                continue
        else:
            index, word, _ = s["what"].split()
            wrong = [b for b in range(1, MAX_VALUE + 1) if b != s["b"] and abs(b - s["b"]) <= 3
                     and apply(s["a"], s["op"], b) is not None]
            if not wrong:
                continue
            s["b"] = rng.choice(wrong)
            s["what"] = f"{index} {word} {s['b']}"
            s["result"] = apply(s["a"], s["op"], s["b"])
        if not chained and j + 1 < len(out) and out[j + 1]["a"] == s["result"]:
            continue  # the next line would seem to start from this one: a chain the drill must not show
        ok = True
        for k in range(j + 1, len(out)) if chained else ():
            out[k]["a"] = out[k - 1]["result"]
            out[k]["result"] = apply(out[k]["a"], out[k]["op"], out[k]["b"])
            if out[k]["result"] is None:
                ok = False
                break
        if not ok:
            continue
        if kind == "slip":
            return out, ("claim", f"{s['a']} {s['op']} {s['b']} = {s['result']}")
        written = {str(x) for t in out for x in (t["a"], t["b"], t["result"])}
        if str(steps[j]["b"]) not in written:  # GII cites a quantity only when nothing else uses it
            return out, ("unused", str(steps[j]["b"]))
    return None


def phrase_for(doubt: tuple[str, str] | None, phrases: dict[str, list[str]], cite: dict[str, str],
               rng: random.Random, used: dict[str, int] | None = None) -> str:
    """The phrase GII would inject for ``doubt``, or, without a doubt, one of the bare phrases
    budget forcing and GII's verification use. GII takes each kind's phrases in turn: ``used``
    counts the phrases of each kind already injected (and is updated); None: the first use."""
    used = {} if used is None else used
    if doubt is None:
        kind = rng.choice(["extension", "verification"])
        cited = ""
    else:
        kind = "redirection" if doubt[0] == "claim" else "extension"
        cited = cite.get(doubt[0], "").format(doubt=doubt[1])
    pool = phrases[kind]
    phrase = pool[used.get(kind, 0) % len(pool)]
    used[kind] = used.get(kind, 0) + 1
    return phrase + cited


def corrected_attempts(steps: list[dict], rng: random.Random, phrases: dict[str, list[str]], cite: dict[str, str],
                       *, again: float = 0.0, max_flawed: int = 3
                       ) -> tuple[list[dict], list[tuple[str, list[dict]]]] | None:
    """A flawed first attempt and the reflections that end in ``steps`` done right. Each retry is
    flawed again with probability ``again`` (a slip GII would see in it; at most ``max_flawed``
    flawed attempts), so the student also meets a second and a third intervention, each phrase
    taken as GII takes them. None if the steps admit no flaw."""
    first = flawed_steps(steps, rng)
    if first is None:
        return None
    attempt, doubt = first
    used: dict[str, int] = {}
    reflections, flawed = [], 1
    while True:
        phrase = phrase_for(doubt, phrases, cite, rng, used)
        retry = flawed_steps(steps, rng, kinds=("slip",)) if flawed < max_flawed and rng.random() < again else None
        if retry is None:
            return attempt, reflections + [(phrase, steps)]
        reflections.append((phrase, retry[0]))
        doubt, flawed = retry[1], flawed + 1


def final_answer(answer: str) -> str:
    return f"Final Answer: \\boxed{{ {answer} }}"


def reflected_trace(meta: dict, attempt: list[dict], reflections: list[tuple[str, list[dict] | None]], final: str
                    ) -> list[tuple[str, str]]:
    """(level, line) pairs of a solution reflected on after its check: ``attempt`` solved and
    checked, then for each (phrase, steps) of ``reflections`` the phrase and, with ``steps``, the
    solution written again from the plan (a retry), else nothing new, and the check (re)stated;
    then ``final``."""
    q = meta["quantity"]
    lines = render_trace(meta, [render_step(s, q) for s in attempt], {"a": attempt[-1]["result"]}, final)[:-1]
    last = attempt
    for phrase, steps in reflections:
        lines.append(("intervention", phrase))  # what an intervention would inject: no loss in training
        if steps is not None:
            lines += [("tactical", f"Plan: from {meta['start']}")] + [("operational", render_step(s, q)) for s in steps]
            last = steps
        lines.append(("operational", f"Check: {q} is {last[-1]['result']}"))
    return lines + [("answer", final)]


def rechecks(rng: random.Random, phrases: dict[str, list[str]], cite: dict[str, str]) -> list[tuple[str, None]]:
    """One to three bare phrases in a row (budget forcing's "Wait" and GII's verification), each
    answered by the check restated."""
    return [(phrase_for(None, phrases, cite, rng), None) for _ in range(rng.randint(1, 3))]


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


def _walk_steps(p: dict, rng: random.Random) -> list[dict]:
    """The problem's operations in order, each computed from a random value (the first from the
    start value), never from the result before it: no chain. Stops where only a chain would fit."""
    out, a, last = [], p["meta"]["start"], None
    for s in p["meta"]["steps"]:
        if last is not None:
            fits = [v for v in range(MAX_VALUE + 1) if v != last and apply(v, s["op"], s["b"]) is not None]
            if not fits:  # only a chain would fit (e.g. `- 20` after 20)
                break
            a = rng.choice(fits)
        last = apply(a, s["op"], s["b"])
        out.append({**s, "a": a, "result": last})
    return out


def _rewalk(step: dict, rng: random.Random, avoid: set[int]) -> dict | None:
    """The step computed from a new random value, none of ``avoid`` (nor its old value)."""
    fits = [v for v in range(MAX_VALUE + 1) if v not in avoid | {step["a"]} and apply(v, step["op"], step["b"]) is not None]
    if not fits:
        return None
    a = rng.choice(fits)
    return {**step, "a": a, "result": apply(a, step["op"], step["b"])}


def _line_words(steps: list[dict], quantity: str) -> list[str]:
    return " ".join(render_step(s, quantity) for s in steps).split()


def pretraining_examples(n: int, seed: int, *, direct_answer, mix: dict[str, float], difficulties=(1, 5),
                         domains=None, keep: Callable[[str], bool] | None = None,
                         words: list[str] | None = None, phrases: dict[str, list[str]] | None = None,
                         cite: dict[str, str] | None = None) -> list[dict]:
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
    - ``retry`` (v10): a walk, or a one-operation solution, with one flaw (a slip or a miscopied
      operand), then an intervention phrase citing the doubt as GII would (``phrases``, ``cite``),
      then the same lines again with the flawed one done right (loss on the retry only): what
      follows a cited doubt, still without a chain;
    - ``recheck`` (v10): a one-operation solution, a bare phrase ("Wait"), the check restated and
      the answer: what follows an intervention that cites nothing.
    """
    if {"retry", "recheck"} & {k for k, v in mix.items() if v > 0} and not phrases:
        raise ValueError("the retry and recheck drills need the intervention phrases (phrases=, cite=)")
    cite = dict(cite or {})
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
            quantity = p["meta"]["quantity"]
            walk = _walk_steps(p, rng)
            words = text + [";", "from", str(p["meta"]["start"])] + _line_words(walk, quantity)
            loss = [False] * (len(text) + 3)
            for k in range(len(walk)):  # the first line's running value is read from the start value
                loss += [True, True, True, True, k == 0, True, True, True, True, True]
            if len(walk) == len(p["meta"]["steps"]):
                words, loss = words + ["Check:"], loss + [True]
        elif kind == "retry" and rng.random() < 0.5:  # a walk, retried
            quantity = p["meta"]["quantity"]
            walk = _walk_steps(p, rng)
            flawed = flawed_steps(walk, rng, chained=False)
            if flawed is None:
                continue
            attempt, doubt = flawed
            j = next(k for k, (a, b) in enumerate(zip(attempt, walk)) if a != b)
            # the lines before the flawed one are copied, the flawed one is done right, the ones
            # after it start from new random values: a retry recomputes what follows its fix
            # (copying it would carry the old values), and a drill never shows a chain
            redo = walk[:j + 1]
            for s in walk[j + 1:]:
                redo.append(_rewalk(s, rng, avoid={redo[-1]["result"]}))
                if redo[-1] is None:
                    break
            if redo[-1] is None:
                continue
            head = text + [";", "from", str(p["meta"]["start"])] + _line_words(attempt, quantity)
            head += ["Check:"] + phrase_for(doubt, phrases, cite, rng).split()
            tail = ["from", str(p["meta"]["start"])] + _line_words(redo, quantity) + ["Check:"]
            words, loss = head + tail, [False] * len(head) + [True] * len(tail)
        elif kind in ("retry", "recheck"):  # a one-operation solution, retried or re-checked
            one = draft(p["domain"], 1, rng)
            while keep is not None and not keep(one["problem"]):
                one = draft(p["domain"], 1, rng)
            prompt, _ = direct_answer(one)
            meta, steps = one["meta"], one["meta"]["steps"]
            flawed = flawed_steps(steps, rng) if kind == "retry" else None
            if kind == "retry" and flawed is None:
                continue
            attempt, doubt = flawed or (steps, None)
            reflections = [(phrase_for(doubt, phrases, cite, rng), steps)] if flawed else rechecks(rng, phrases, cite)
            lines = reflected_trace(meta, attempt, reflections, final_answer(one["answer"]))
            phrases_at = {i for i, (_, line) in enumerate(lines) if any(line == p for p, _ in reflections)}
            words, loss = list(prompt), [False] * len(prompt)
            for i, (_, line) in enumerate(lines):
                piece = line.split()
                # a phrase is injected, not the student's; a flawed attempt is context, not a lesson
                learn = i not in phrases_at and not (flawed and i <= len(attempt) + 2)
                words, loss = words + piece, loss + [learn] * len(piece)
            words, loss = words + ["<|end|>"], loss + [True]
        else:  # recall
            words, loss = text + [";"], [False] * (len(text) + 1)
            for s in rng.sample(p["meta"]["steps"], k=len(p["meta"]["steps"])):
                index, word, operand = s["what"].split()
                words += [index, word, operand, ";"]
                loss += [False, True, True, False]
        out.append({"kind": kind, "words": words, "loss": loss})
    return out

