"""The synthetic reasoning suite: procedurally generated, verifiable multi-step problems.

Every solution is a chain of single binary operations ``a op b = c`` on non-negative integers
(operands and results at most ``MAX_VALUE``, divisions exact), and the difficulty is the number
of such steps. A tiny student can learn each step; composing several in its head stays hard,
which is what a worked solution from the teacher is meant to fix.

Numbers chosen freely by a template are at most ``max_operand``; numbers derived from them
(a right-hand side, a product shown in the text) may be larger but never exceed ``MAX_VALUE``.
"""
from __future__ import annotations

import functools
import hashlib
import math
import random
from typing import Callable

from reasonbridge.problems import DOMAINS, step_ancestors

MAX_VALUE = 999
MAX_WORDS = 45
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}
_MAX_TRIES = 2000

_PEOPLE = (("Ava", "she"), ("Ben", "he"), ("Cara", "she"), ("Dan", "he"), ("Eli", "he"), ("Fay", "she"))
_THINGS = ("apples", "books", "coins", "cards", "stickers", "marbles")
_ITEMS = ("pens", "cups", "hats", "bags")
_CLOTHES = ("shirts", "hats", "scarves", "coats", "bags", "belts")
_COLOURS = ("red", "blue", "green", "white")
_GROUPS = ("children", "friends", "books", "cars")
_PLACES = ("garden", "room", "field", "table", "poster", "rug")
_VARS = ("x", "y", "z", "n")


def apply_op(a: int, op: str, b: int) -> int | None:
    """``a op b``, or None when the result is not an integer in [0, MAX_VALUE]."""
    if op == "+":
        c = a + b
    elif op == "-":
        c = a - b
    elif op == "*":
        c = a * b
    elif op == "/":
        if b == 0 or a % b:
            return None
        c = a // b
    else:
        raise ValueError(f"unknown operation {op!r}")
    return c if 0 <= c <= MAX_VALUE else None


def inverse_check(step: dict) -> dict | None:
    """Undo ``step`` (``result inv b``), re-deriving its first operand; None if not exact."""
    a, op, b, c = step["a"], step["op"], step["b"], step["result"]
    if op == "*" and b == 0:  # cannot divide by zero: undo through the other factor
        a, b = b, a
    r = None if op == "*" and b == 0 else apply_op(c, _INVERSE[op], b)
    return None if r is None else {"a": c, "op": _INVERSE[op], "b": b, "result": r}


def direct_answer_text(problem: dict) -> str:
    """The answer-only response used to pre-train the student."""
    return f"Final Answer: \\boxed{{{problem['answer']}}}"


class _Reject(Exception):
    """Sampled numbers left the suite's bounds; the caller draws again."""


class _Q(int):
    """An int that remembers which step produced it, so steps record their data flow."""

    src: int

    def __new__(cls, value: int, src: int) -> "_Q":
        q = super().__new__(cls, value)
        q.src = src
        return q


class _Work:
    """Scratchpad handed to a template: samples free numbers and records solution steps."""

    def __init__(self, rng: random.Random, max_operand: int):
        self.rng, self.m = rng, max_operand
        self.steps: list[dict] = []
        self.plan: list[str] = []

    def num(self, lo: int, hi: int | None = None) -> int:
        """A free number in [lo, min(hi, max_operand)]."""
        hi = self.m if hi is None else min(hi, self.m)
        if lo > hi:
            raise _Reject
        return self.rng.randint(lo, hi)

    def pick(self, seq):
        return self.rng.choice(seq)

    def do(self, a: int, op: str, b: int, what: str, goal: str | None = None) -> _Q:
        """Record the step ``a op b`` producing ``what``; reject if it leaves the bounds."""
        c = apply_op(a, op, b)
        if c is None or not (0 <= a <= MAX_VALUE and 0 <= b <= MAX_VALUE):
            raise _Reject
        self.steps.append({"a": int(a), "op": op, "b": int(b), "result": c, "what": what,
                           "a_src": getattr(a, "src", None), "b_src": getattr(b, "src", None)})
        self.plan.append(goal or f"find {what}")
        return _Q(c, len(self.steps) - 1)


Template = Callable[[_Work, int], tuple[str, str]]  # returns (problem text, strategy)
_TEMPLATES: dict[str, list[tuple[str, frozenset[int], Template]]] = {code: [] for code in DOMAINS}


def _template(domain: str, *levels: int) -> Callable[[Template], Template]:
    def register(fn: Template) -> Template:
        _TEMPLATES[domain].append((fn.__name__.lstrip("_"), frozenset(levels), fn))
        return fn
    return register


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# -- 97 arithmetic word problems ----------------------------------------------------------------
@_template("97", 1, 2, 3, 4, 5)
def _events(w: _Work, d: int) -> tuple[str, str]:
    name, he = w.pick(_PEOPLE)
    thing = w.pick(_THINGS)
    x = w.num(2)
    text = [f"{name} has {x} {thing}."]
    for _ in range(d):
        divs = [k for k in range(2, min(5, w.m) + 1) if x % k == 0]
        ops = ["+"] + ["-"] * (x > 1) + ["*"] * (2 * x <= MAX_VALUE) + ["/"] * bool(divs)
        op = w.pick(ops)
        if op == "+":
            k = w.num(2)
            line, goal = f"{he.capitalize()} gets {k} more.", f"add {k}"
        elif op == "-":
            k = w.num(1, x - 1)
            line, goal = f"{he.capitalize()} gives {k} away.", f"subtract {k}"
        elif op == "*":
            k = w.num(2, min(5, MAX_VALUE // x))
            line, goal = f"Then {he} has {k} times as many.", f"multiply by {k}"
        else:
            k = w.pick(divs)
            line, goal = f"{he.capitalize()} keeps one of {k} equal piles.", f"divide by {k}"
        x = w.do(x, op, k, thing, goal)
        text.append(line)
    text.append(f"How many does {name} have now?")
    return " ".join(text), "Apply each event in order."


@_template("97", 1, 2, 3, 4, 5)
def _shopping(w: _Work, d: int) -> tuple[str, str]:
    name, he = w.pick(_PEOPLE)
    items = w.rng.sample(_ITEMS, (d + 1) // 2)  # 1, 1, 2, 2, 3 kinds; even levels add change
    prices, counts = [w.num(2, 12) for _ in items], [w.num(2, 9) for _ in items]
    costs = [w.do(p, "*", n, f"cost of {it}") for it, p, n in zip(items, prices, counts)]
    total = costs[0]
    for i, cost in enumerate(costs[1:], 2):
        total = w.do(total, "+", cost, "total cost" if i == len(costs) else "cost so far")
    price_text = _join([f"{it} cost {p} dollars" for it, p in zip(items, prices)])
    bought = _join([f"{n} {it}" for it, n in zip(items, counts)])
    text = f"{price_text[0].upper()}{price_text[1:]} each. {name} buys {bought}."
    if d % 2 == 0:
        paid = w.pick([note for note in (10, 20, 50, 100, 200, 500) if note >= total][:2])
        w.do(paid, "-", total, "change")
        text += f" {he.capitalize()} pays with {paid} dollars. How much change does {he} get?"
    else:
        text += f" How much does {he} spend?"
    return text, "Multiply price by count for each item, then combine."


# -- 15 linear equations ------------------------------------------------------------------------
@_template("15", 1, 2, 3, 4, 5)
def _eq_isolate(w: _Work, d: int) -> tuple[str, str]:
    v = w.pick(_VARS)
    x = w.num(1)
    expr, layers, additive = v, [], w.rng.random() < 0.5
    for _ in range(d):  # alternate +/- and */÷ layers so no layer could be merged away
        inner = expr
        if additive:
            op, k = w.pick("+-"), w.num(1)
            if op == "-" and k >= x:
                op = "+"
            expr = f"{expr} {op} {k}"
        else:
            divs = [k for k in range(2, min(9, w.m) + 1) if x % k == 0]
            op = "/" if divs and w.rng.random() < 0.4 else "*"
            k = w.pick(divs) if op == "/" else w.num(2, 9)
            if op == "*":
                expr = f"{k}{expr}" if expr == v else f"{k}({expr})"
            else:
                expr = f"{expr} / {k}" if expr == v else f"({expr}) / {k}"
        x = apply_op(x, op, k)
        if x is None:
            raise _Reject
        layers.append((op, k, inner))
        additive = not additive
    goals = {"+": "subtract {k} from both sides", "-": "add {k} to both sides",
             "*": "divide both sides by {k}", "/": "multiply both sides by {k}"}
    value = x
    for op, k, inner in reversed(layers):
        value = w.do(value, _INVERSE[op], k, inner, goals[op].format(k=k))
    return f"Solve for {v}: {expr} = {x}.", f"Undo each operation on {v} in reverse order."


@_template("15", 3)
def _eq_both_sides(w: _Work, d: int) -> tuple[str, str]:
    v = w.pick(_VARS)
    x, c, b = w.num(1, 15), w.num(1, 7), w.num(1)
    a = w.num(c + 2, 9)
    e = (a - c) * x + b
    cv = f"{c if c > 1 else ''}{v}"
    right = f"{cv} + {e}"
    k = w.do(a, "-", c, f"{v} coefficient", f"subtract {cv} from both sides")
    r = w.do(e, "-", b, "constant", f"subtract {b} from both sides")
    w.do(r, "/", k, v, "divide by the coefficient")
    return f"Solve for {v}: {a}{v} + {b} = {right}.", f"Collect the {v} terms, then divide."


@_template("15", 4, 5)
def _eq_brackets(w: _Work, d: int) -> tuple[str, str]:
    v = w.pick(_VARS)
    a, b, x = w.num(4, 9), w.num(1, 12), w.num(1, 15)
    c = w.num(1 if d == 4 else 2, a - 2)
    if d == 4:  # a(v + b) = cv + e
        e = (a - c) * x + a * b
        right = f"{c if c > 1 else ''}{v} + {e}"
        p = w.do(a, "*", b, "left constant", f"expand {a}({v} + {b})")
        k = w.do(a, "-", c, f"{v} coefficient", f"collect the {v} terms")
        r = w.do(e, "-", p, "constant", "collect the numbers")
    else:  # a(v + b) = c(v + e), so c*e = a*b + (a - c)*x
        if (a * b + (a - c) * x) % c:
            raise _Reject
        e = (a * b + (a - c) * x) // c
        right = f"{c}({v} + {e})"
        p = w.do(a, "*", b, "left constant", f"expand {a}({v} + {b})")
        q = w.do(c, "*", e, "right constant", f"expand {right}")
        k = w.do(a, "-", c, f"{v} coefficient", f"collect the {v} terms")
        r = w.do(q, "-", p, "constant", "collect the numbers")
    w.do(r, "/", k, v, "divide by the coefficient")
    return f"Solve for {v}: {a}({v} + {b}) = {right}.", f"Expand, collect the {v} terms, then divide."


# -- 11 number theory ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _euclid_pairs(m: int, d: int) -> tuple[tuple[int, int], ...]:
    """Pairs a < b <= m whose subtractive Euclid takes exactly d subtractions."""
    def length(a: int, b: int) -> int:
        n = 0
        while a != b:
            a, b, n = min(a, b), abs(a - b), n + 1
        return n
    return tuple((a, b) for a in range(2, m + 1) for b in range(a + 1, m + 1) if length(a, b) == d)


@_template("11", 1, 2, 3, 4, 5)
def _gcd(w: _Work, d: int) -> tuple[str, str]:
    pairs = _euclid_pairs(w.m, d)
    if not pairs:
        raise _Reject
    a, b = w.pick(pairs)
    small, big = a, b
    while True:
        done = big - small == small
        z = w.do(big, "-", small, "gcd" if done else "new difference", f"subtract {small} from {big}")
        if done:
            break
        small, big = min(small, z), max(small, z)
    first, second = (a, b) if w.rng.random() < 0.5 else (b, a)
    return (f"What is the greatest common divisor of {first} and {second}?",
            "Subtract the smaller number until both are equal.")


@_template("11", 2, 3, 4, 5)
def _remainder(w: _Work, d: int) -> tuple[str, str]:
    k = w.num(3, 12)
    if d == 2:
        n = k * w.num(1) + w.num(0, k - 1)
        if w.rng.random() < 0.5:
            name, _ = w.pick(_PEOPLE)
            thing = w.pick(_THINGS)
            text = f"{name} packs {n} {thing} into boxes of {k}. How many {thing} are left over?"
        else:
            text = f"What is the remainder when {n} is divided by {k}?"
    else:
        a, b = w.num(2, 12), w.num(2, 12)
        n = w.do(a, "*", b, "product")
        expr = f"{a} times {b}"
        if d == 4:
            c = w.num(1)
            n = w.do(n, "+", c, "number")
            expr += f" plus {c}"
        elif d == 5:
            c, e = w.num(2, 12), w.num(2, 12)
            n = w.do(n, "+", w.do(c, "*", e, "second product"), "number")
            expr += f" plus {c} times {e}"
        text = f"What is the remainder when {expr} is divided by {k}?"
    if n < k:
        raise _Reject
    m = w.do(k, "*", n // k, f"largest multiple of {k}", f"find largest multiple of {k} up to {n}")
    w.do(n, "-", m, "remainder")
    return text, "Subtract the largest multiple of the divisor."


@_template("11", 1, 2, 3, 5)
def _multiples(w: _Work, d: int) -> tuple[str, str]:
    k = w.num(2, 12)
    if d <= 2:
        n = k * w.num(2)
        u = w.do(n, "/", k, "multiples")
        if d == 1:
            return f"How many multiples of {k} are there from 1 to {n}?", "Divide the bound by the divisor."
        w.do(n, "-", u, "non-multiples")
        return (f"How many whole numbers from 1 to {n} are not multiples of {k}?",
                "Count the multiples, then subtract them.")
    p = w.num(1, w.m - 1)
    q = w.num(p + 1)
    lo, hi = k * p, k * q
    total = w.do(hi, "-", lo, "numbers in range") if d == 5 else None
    up_hi = w.do(hi, "/", k, f"multiples up to {hi}")
    up_lo = w.do(lo, "/", k, f"multiples up to {lo}")
    mult = w.do(up_hi, "-", up_lo, "multiples")
    if d == 3:
        return (f"How many multiples of {k} are greater than {lo} and at most {hi}?",
                "Count multiples up to each bound, then subtract.")
    w.do(total, "-", mult, "non-multiples")
    return (f"How many whole numbers greater than {lo} and at most {hi} are not multiples of {k}?",
            "Count all numbers, then subtract the multiples.")


@_template("11", 1)
def _groups(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    thing = w.pick(_THINGS)
    k = w.num(2, 12)
    n = k * w.num(2)
    w.do(n, "/", k, "groups")
    return (f"{name} puts {n} {thing} into groups of {k}. How many groups are there?",
            "Divide the total by the group size.")


@_template("11", 1)
def _next_multiple(w: _Work, d: int) -> tuple[str, str]:
    k = w.num(2, 12)
    n = k * w.num(1)
    w.do(n, "+", k, "next multiple")
    return f"{n} is a multiple of {k}. What is the next multiple of {k}?", "Add the divisor to the multiple."


# -- 05 combinatorics ---------------------------------------------------------------------------
@_template("05", 1, 2, 3, 4, 5)
def _outfits(w: _Work, d: int) -> tuple[str, str]:
    name, he = w.pick(_PEOPLE)
    cats = w.rng.sample(_CLOTHES, d + 1)
    counts, prod = [], 1
    for i in range(d + 1):  # leave room (a factor 2 each) for the categories still to come
        counts.append(w.num(2, min(6, MAX_VALUE // (prod * 2 ** (d - i)))))
        prod *= counts[-1]
    x = counts[0]
    for i in range(1, d + 1):
        x = w.do(x, "*", counts[i], "outfits" if i == d else "outfits so far",
                 f"include the {cats[i]}")
    return (f"{name} has {_join([f'{n} {c}' for n, c in zip(counts, cats)])}. "
            f"How many outfits with one of each can {he} make?", "Multiply the choices for each part.")


@_template("05", 1, 2, 3, 4)
def _line_up(w: _Work, d: int) -> tuple[str, str]:
    n, group = d + 2, w.pick(_GROUPS)
    x = n
    for f in range(n - 1, 1, -1):
        x = w.do(x, "*", f, "orders" if f == 2 else f"ways for {n - f + 1} places",
                 f"multiply by the {f} choices left")
    return f"In how many ways can {n} {group} be put in a row?", "Multiply the choices for each place."


@_template("05", 1, 2, 3, 4)
def _podium(w: _Work, d: int) -> tuple[str, str]:
    k = d + 1
    fits = [n for n in range(k + 1, w.m + 1) if math.perm(n, k) <= MAX_VALUE]
    if not fits:
        raise _Reject
    n = w.pick(fits)
    x = n
    for i in range(1, k):
        x = w.do(x, "*", n - i, "ways" if i == k - 1 else f"ways for {i + 1} places",
                 f"multiply by the {n - i} choices left")
    return (f"{n} runners are in a race. In how many ways can the first {k} places be filled?",
            "Multiply the choices for each place.")


def _pairs(w: _Work, n: int, thing: str) -> _Q:
    ordered = w.do(n, "*", n - 1, f"ordered pairs of {thing}")
    return w.do(ordered, "/", 2, f"pairs of {thing}")


@_template("05", 2, 3, 4, 5)
def _choose(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    t1, t2 = w.rng.sample(_THINGS, 2)
    strategy = "Count ordered choices, then divide out the orders."
    if d == 4:
        n = w.num(4, 10)
        ordered = w.do(n, "*", n - 1, f"ordered pairs of {t1}")
        triples = w.do(ordered, "*", n - 2, f"ordered triples of {t1}")
        orders = w.do(3, "*", 2, "orders of 3 items")
        w.do(triples, "/", orders, "groups")
        return f"How many ways can {name} choose 3 of {n} {t1}?", strategy
    n = w.num(3, 12 if d < 5 else 8)
    pairs = _pairs(w, n, t1)
    if d == 2:
        return f"How many ways can {name} choose 2 of {n} {t1}?", strategy
    if d == 3:
        m = w.num(2, 9)
        w.do(pairs, "*", m, "choices")
        return f"{name} picks 2 of {n} {t1} and 1 of {m} {t2}. How many choices are there?", strategy
    m = w.num(3, 8)
    w.do(pairs, "*", _pairs(w, m, t2), "choices")
    return f"{name} picks 2 of {n} {t1} and 2 of {m} {t2}. How many choices are there?", strategy


# -- 60 probability -----------------------------------------------------------------------------
@_template("60", 1)
def _fair_trials(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    strategy = "Divide the trials by the equally likely outcomes."
    if w.rng.random() < 0.7:
        n, face = 6 * w.num(2), w.num(1, 6)
        w.do(n, "/", 6, f"expected {face}s")
        return f"{name} rolls a fair die {n} times. How many times is a {face} expected?", strategy
    n = 2 * w.num(2)
    w.do(n, "/", 2, "expected heads")
    return f"{name} tosses a fair coin {n} times. How many heads are expected?", strategy


@_template("60", 1)
def _two_spinners(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    t, u = w.num(2), w.num(2)
    w.do(t, "*", u, "outcomes")
    return (f"One spinner has {t} equal parts and another has {u}. {name} spins both once. "
            "How many outcomes are possible?", "Multiply the outcomes of each spinner.")


@_template("60", 1, 2, 3, 4)
def _spinner(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    col, col2 = w.rng.sample(_COLOURS, 2)
    parts = w.num(3, 12)
    n = parts * w.num(2)
    spun = f"{name} spins it {n} times."
    if d == 1:
        w.do(n, "/", parts, "expected per part")
        return (f"A spinner has {parts} equal parts. {spun} How many times is each part expected?",
                "Divide the spins by the parts.")
    strategy = "Find the expected count per part, then multiply."
    if d == 4:
        red = w.num(2, parts - 1)
        blue = w.num(1, min(red - 1, parts - red))
        each = w.do(n, "/", parts, "expected per part")
        r = w.do(each, "*", red, f"expected {col}")
        b = w.do(each, "*", blue, f"expected {col2}")
        w.do(r, "-", b, "expected difference")
        return (f"A spinner has {parts} equal parts: {red} {col} and {blue} {col2}. {spun} "
                f"How many more {col} than {col2} results are expected?", strategy)
    red = w.num(1, parts - 1)
    spinner = f"A spinner has {parts} equal parts and {red} {'is' if red == 1 else 'are'} {col}. {spun}"
    if d == 2:
        each = w.do(n, "/", parts, "expected per part")
        w.do(each, "*", red, f"expected {col}")
        return f"{spinner} How many {col} results are expected?", strategy
    other = w.do(parts, "-", red, f"parts not {col}")
    each = w.do(n, "/", parts, "expected per part")
    w.do(each, "*", other, f"expected not {col}")
    return f"{spinner} How many results that are not {col} are expected?", strategy


@_template("60", 3)
def _die_above(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    g, n = w.num(1, 4), 6 * w.num(2)
    faces = w.do(6, "-", g, f"faces above {g}")
    each = w.do(n, "/", 6, "expected per face")
    w.do(each, "*", faces, f"expected above {g}")
    return (f"{name} rolls a fair die {n} times. How many rolls above {g} are expected?",
            "Count the faces, then multiply by the expected count per face.")


@_template("60", 3, 4, 5)
def _bag(w: _Work, d: int) -> tuple[str, str]:
    name, _ = w.pick(_PEOPLE)
    cols = w.rng.sample(_COLOURS, d - 1)
    counts = [w.num(1, 9) for _ in cols]
    target = w.rng.randrange(len(cols))
    total = counts[0]
    for i, c in enumerate(counts[1:], 2):
        total = w.do(total, "+", c, "total balls" if i == len(counts) else "balls so far")
    n = total * w.num(2, MAX_VALUE // total)
    each = w.do(n, "/", total, "expected per ball")
    w.do(each, "*", counts[target], f"expected {cols[target]}")
    return (f"A bag has {_join([f'{c} {col}' for c, col in zip(counts, cols)])} balls. {name} draws a ball "
            f"and puts it back, {n} times. How many {cols[target]} draws are expected?",
            "Find the expected count per ball, then multiply.")


# -- 51 geometry --------------------------------------------------------------------------------
@_template("51", 1)
def _polygon_perimeter(w: _Work, d: int) -> tuple[str, str]:
    shape, sides = w.pick((("triangle", 3), ("square", 4), ("pentagon", 5), ("hexagon", 6)))
    s = w.num(2)
    w.do(sides, "*", s, "perimeter")
    return (f"A regular {shape} has sides of length {s}. What is its perimeter?",
            "Multiply the side by the number of sides.")


@_template("51", 1)
def _rect_area(w: _Work, d: int) -> tuple[str, str]:
    place, l, b = w.pick(_PLACES), w.num(2), w.num(2)
    w.do(l, "*", b, "area")
    return (f"A {place} is a rectangle with length {l} and width {b}. What is its area?",
            "Multiply the length by the width.")


@_template("51", 1, 3)
def _rect_from_area(w: _Work, d: int) -> tuple[str, str]:
    place, l, b = w.pick(_PLACES), w.num(2), w.num(2)
    area = l * b
    length = w.do(area, "/", b, "length")
    text = f"A {place} is a rectangle with area {area} and width {b}."
    if d == 1:
        return f"{text} What is its length?", "Divide the area by the width."
    w.do(w.do(length, "+", b, "half perimeter"), "*", 2, "perimeter")
    return f"{text} What is its perimeter?", "Find the length, then add the sides."


@_template("51", 2, 4)
def _rect_perimeter(w: _Work, d: int) -> tuple[str, str]:
    place, l, b = w.pick(("garden", "field", "yard", "park")), w.num(2), w.num(2)
    per = w.do(w.do(l, "+", b, "half perimeter"), "*", 2, "perimeter")
    text = f"A {place} is a rectangle with length {l} and width {b}."
    if d == 2:
        return f"{text} What is its perimeter?", "Add the length and width, then double."
    gate, p = w.num(1, min(l, b)), w.num(2, 9)
    w.do(w.do(per, "-", gate, "fence length"), "*", p, "fence cost")
    return (f"{text} A fence goes all around except a gate of width {gate}. Fence costs {p} dollars per unit. "
            "What does the fence cost?", "Find the perimeter, subtract the gate, then multiply by the price.")


@_template("51", 2)
def _triangle_area(w: _Work, d: int) -> tuple[str, str]:
    base, h = w.num(2), w.num(2)
    if base * h % 2:
        raise _Reject
    w.do(w.do(base, "*", h, "base times height"), "/", 2, "area")
    return f"A triangle has base {base} and height {h}. What is its area?", "Multiply base by height, then halve."


@_template("51", 2)
def _square_from_perimeter(w: _Work, d: int) -> tuple[str, str]:
    place, s = w.pick(_PLACES), w.num(2)
    side = w.do(4 * s, "/", 4, "side")
    w.do(side, "*", side, "area")
    return f"A {place} is a square with perimeter {4 * s}. What is its area?", "Find the side, then square it."


@_template("51", 3)
def _two_rectangles(w: _Work, d: int) -> tuple[str, str]:
    a, b, c, e = (w.num(2, 12) for _ in range(4))
    w.do(w.do(a, "*", b, "first area"), "+", w.do(c, "*", e, "second area"), "total area")
    return (f"A shape is made of two rectangles, {a} by {b} and {c} by {e}. What is its total area?",
            "Add the areas of the two rectangles.")


@_template("51", 3, 5)
def _cut_out(w: _Work, d: int) -> tuple[str, str]:
    a, b = w.num(4), w.num(4)
    sides = [w.num(1, min(a, b) - 1) for _ in range(1 if d == 3 else 2)]
    big = w.do(a, "*", b, "rectangle area")
    if d == 3:
        w.do(big, "-", w.do(sides[0], "*", sides[0], "square area"), "area left")
        holes = f"a square of side {sides[0]}"
    else:
        s, t = sides
        cut = w.do(w.do(s, "*", s, "first square area"), "+", w.do(t, "*", t, "second square area"),
                   "area cut out")
        w.do(big, "-", cut, "area left")
        holes = f"squares of side {s} and {t}"
    return (f"A rectangle of {a} by {b} has {holes} cut out. What area is left?",
            "Subtract the area cut out from the rectangle area.")


@_template("51", 3)
def _tiles(w: _Work, d: int) -> tuple[str, str]:
    place, t = w.pick(("room", "hall", "kitchen", "patio")), w.num(2, 5)
    length, width = t * w.num(1, 8), t * w.num(2, 8)
    floor = w.do(length, "*", width, "floor area")
    w.do(floor, "/", w.do(t, "*", t, "tile area"), "tiles")
    return (f"A {place} floor is {length} by {width}. Square tiles have side {t}. How many tiles cover it?",
            "Divide the floor area by the tile area.")


@_template("51", 4, 5)
def _house(w: _Work, d: int) -> tuple[str, str]:
    a, b, base, h = (w.num(2, 12) for _ in range(4))
    if base * h % 2:
        raise _Reject
    rect = w.do(a, "*", b, "rectangle area")
    tri = w.do(w.do(base, "*", h, "base times height"), "/", 2, "triangle area")
    total = w.do(rect, "+", tri, "total area")
    text = f"A shape is a rectangle of {a} by {b} with a triangle of base {base} and height {h} on top."
    if d == 4:
        return f"{text} What is its total area?", "Add the rectangle area and the triangle area."
    p = w.num(2, 5)
    w.do(total, "*", p, "paint cost")
    return (f"{text} Paint costs {p} dollars per square unit. What does painting it cost?",
            "Find the total area, then multiply by the price.")


# -- 40 sequences -------------------------------------------------------------------------------
@_template("40", 1, 2, 3, 4, 5)
def _seq_rule(w: _Work, d: int) -> tuple[str, str]:
    kind = w.pick(["add", "times"] + ["times_add"] * (d % 2 == 0))
    r, c, k = w.num(2, 3), w.num(1, 9), w.num(2)
    a = w.num(1, MAX_VALUE // r ** d) if kind == "times" else w.num(1)
    ops = {"add": [("+", k)] * d, "times": [("*", r)] * d, "times_add": [("*", r), ("+", c)] * (d // 2)}[kind]
    x, term = a, 1
    for op, b in ops:
        if kind == "times_add" and op == "*":
            what = f"{r} times term {term}"
        else:
            term += 1
            what = f"term {term}"
        x = w.do(x, op, b, what)
    extra = f", plus {c}" if kind == "times_add" else ""
    if w.rng.random() < 0.5 and a > 1:  # a story; "1 apples" would read badly
        name, he = w.pick(_PEOPLE)
        thing = w.pick(_THINGS)
        rule = f"{k} more than" if kind == "add" else f"{r} times as many as"
        text = (f"{name} collects {a} {thing} on day 1. Each day {he} collects {rule} the day before{extra}. "
                f"How many {thing} does {he} collect on day {term}?")
    else:
        rule = f"{k} more than" if kind == "add" else f"{r} times"
        text = f"A sequence starts at {a}. Each term is {rule} the one before{extra}. What is term {term}?"
    return text, "Apply the rule once for each new term."


@_template("40", 1)
def _seq_next_term(w: _Work, d: int) -> tuple[str, str]:
    i, t, k = w.num(2, 19), w.num(1), w.num(2)
    w.do(t, "+", k, f"term {i + 1}")
    return (f"Term {i} of an arithmetic sequence is {t} and the common difference is {k}. What is term {i + 1}?",
            "Add the common difference.")


@_template("40", 2, 4)
def _seq_listed(w: _Work, d: int) -> tuple[str, str]:
    a, k = w.num(1), w.num(2, 9)
    diff = w.do(a + k, "-", a, "common difference")
    if d == 2:
        shown = ", ".join(str(a + i * k) for i in range(4))
        w.do(a + 3 * k, "+", diff, "term 5")
        return (f"The sequence {shown} goes up by the same amount each time. What is the next term?",
                "Find the common difference, then add it.")
    n = w.num(6)
    inc = w.do(w.do(n, "-", 1, "gaps"), "*", diff, "total increase")
    w.do(a, "+", inc, f"term {n}")
    return (f"The sequence {a}, {a + k}, {a + 2 * k}, ... goes up by the same amount each time. What is term {n}?",
            "Find the common difference, then add it once per gap.")


@_template("40", 3)
def _seq_nth(w: _Work, d: int) -> tuple[str, str]:
    a, k, n = w.num(1), w.num(2, 9), w.num(5)
    inc = w.do(w.do(n, "-", 1, "gaps"), "*", k, "total increase")
    w.do(a, "+", inc, f"term {n}")
    return (f"An arithmetic sequence has first term {a} and common difference {k}. What is term {n}?",
            "Add the common difference once per gap.")


@_template("40", 3, 4)
def _seq_count(w: _Work, d: int) -> tuple[str, str]:
    a, k, g = w.num(1), w.num(2, 9), w.num(3)
    last = a + g * k
    if d == 3:
        diff, text = k, f"A sequence starts at {a} and goes up by {k} each time until it reaches {last}."
    else:
        diff = w.do(a + k, "-", a, "common difference")
        text = f"The sequence {a}, {a + k}, {a + 2 * k}, ... goes up by the same amount each time until {last}."
    gaps = w.do(w.do(last, "-", a, "total increase"), "/", diff, "gaps")
    w.do(gaps, "+", 1, "terms")
    return f"{text} How many terms are there?", "Divide the total increase by the difference, then add one."


@_template("40", 3)
def _seq_sum(w: _Work, d: int) -> tuple[str, str]:
    a, k, n = w.num(1), w.num(1, 9), w.num(3, 12)
    last = a + (n - 1) * k
    if (a + last) * n % 2:
        raise _Reject
    w.do(w.do(w.do(a, "+", last, "first plus last"), "*", n, "twice the sum"), "/", 2, "sum")
    return (f"An arithmetic sequence has {n} terms. The first is {a} and the last is {last}. What is their sum?",
            "Add first and last, multiply by the terms, then halve.")


@_template("40", 2, 5)
def _seq_average(w: _Work, d: int) -> tuple[str, str]:
    a, k, n = w.num(1), w.num(2, 9), w.num(3, 15)
    last = a + (n - 1) * k
    if (a + last) % 2:
        raise _Reject
    if d == 2:
        text = f"An arithmetic sequence has first term {a} and last term {last}. What is the average of its terms?"
    else:
        inc = w.do(w.do(n, "-", 1, "gaps"), "*", k, "total increase")
        last = w.do(a, "+", inc, f"term {n}")
        text = (f"An arithmetic sequence has first term {a} and common difference {k}. "
                f"What is the average of its first {n} terms?")
    w.do(w.do(a, "+", last, "first plus last"), "/", 2, "average")
    return text, "Average the first and last terms."


# -- generation ---------------------------------------------------------------------------------
def _draft(code: str, d: int, rng: random.Random, max_operand: int) -> dict | None:
    """One problem of the domain and difficulty, or None if the sampled numbers were rejected."""
    name, _, fn = rng.choice([t for t in _TEMPLATES[code] if d in t[1]])
    w = _Work(rng, max_operand)
    try:
        text, strategy = fn(w, d)
    except _Reject:
        return None
    if len(text.split()) > MAX_WORDS:
        return None
    # Template invariants: exactly d steps, all of which feed the answer.
    assert len(w.steps) == d, f"template {name} wrote {len(w.steps)} steps for difficulty {d}"
    assert step_ancestors(w.steps, d - 1) == set(range(d)), f"template {name} has a step the answer does not use"
    last = w.steps[-1]
    check = inverse_check(last)
    src = last["a_src"] if check["result"] == last["a"] else last["b_src"]
    check["what"] = w.steps[src]["what"] if src is not None else "given number"
    return {"problem": text, "answer": str(last["result"]), "domain": code, "domain_name": DOMAINS[code],
            "difficulty": d, "source": "synthetic",
            "meta": {"template": name, "strategy": strategy, "plan": w.plan, "steps": w.steps, "check": check}}


def _generate(n: int, rng: random.Random, seen: set[str], *, domains: list[str] | None = None,
              difficulties: tuple[int, int] = (1, 5), max_operand: int = 20, id_prefix: str = "syn") -> list[dict]:
    """``n`` problems whose texts are not in ``seen`` (which is updated)."""
    codes = sorted(set(DOMAINS if domains is None else domains))
    unknown = [c for c in codes if c not in DOMAINS]
    if unknown or not codes:
        raise ValueError(f"unknown or empty domains {unknown or codes}; choose from {sorted(DOMAINS)}")
    lo, hi = (int(x) for x in difficulties)
    if not 1 <= lo <= hi <= 5:
        raise ValueError(f"difficulties must satisfy 1 <= low <= high <= 5, got {tuple(difficulties)}")
    if max_operand < 6:
        raise ValueError(f"max_operand must be at least 6, got {max_operand}")
    problems = []
    for i in range(n):
        code, d = rng.choice(codes), rng.randint(lo, hi)
        for _ in range(_MAX_TRIES):
            p = _draft(code, d, rng, max_operand)
            if p is not None and p["problem"] not in seen:
                break
        else:
            raise RuntimeError(f"no new {DOMAINS[code]} problem of difficulty {d} after {_MAX_TRIES} draws; "
                               "the problem space is nearly exhausted (raise max_operand or ask for fewer)")
        seen.add(p["problem"])
        problems.append({"id": f"{id_prefix}-{code}-{i:06d}", **p})
    return problems


def generate_problems(n: int, seed: int, *, domains: list[str] | None = None, difficulties: tuple[int, int] = (1, 5),
                      max_operand: int = 20, id_prefix: str = "syn") -> list[dict]:
    """``n`` distinct problems; domain and difficulty uniform, identical output for the same seed."""
    return _generate(n, random.Random(seed), set(), domains=domains, difficulties=difficulties,
                     max_operand=max_operand, id_prefix=id_prefix)


def _derive_seed(seed: int, tag: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{tag}".encode()).digest()[:8], "big")


def make_suite(pool_size: int, benchmark_size: int, seed: int, *, benchmark_prefix: str = "bench",
               **kw) -> tuple[list[dict], list[dict]]:
    """A pool and a held-out benchmark sharing no problem text; ``kw`` as for ``generate_problems``.

    The benchmark is drawn first from its own stream, so it does not change with ``pool_size``.
    """
    if kw.get("id_prefix", "syn") == benchmark_prefix:
        raise ValueError("the pool and the benchmark need different id prefixes")
    seen: set[str] = set()
    bench = _generate(benchmark_size, random.Random(_derive_seed(seed, "benchmark")), seen,
                      **{**kw, "id_prefix": benchmark_prefix})
    pool = _generate(pool_size, random.Random(_derive_seed(seed, "pool")), seen, **kw)
    if {p["problem"] for p in pool} & {b["problem"] for b in bench}:  # guarded by `seen`; kept as a hard check
        raise RuntimeError("pool and benchmark share a problem")
    return pool, bench
