"""Reasoning-state detection for guided inference intervention (paper §3.3.2).

`detect_state` reads the reasoning written so far and classifies it as

- ``uncertain``: uncertainty phrases, a written arithmetic claim that is false when
  re-evaluated (``12 * 3 = 35``), or two different boxed answers: the path looks
  unproductive or contradictory;
- ``partial``: no computed result yet, or a quantity of the problem never used;
- ``unverified``: results were computed but no verification step follows them;
- ``complete``: none of the above.

The checks run in that order, so the first cue that applies decides. Text only, no model:
the same detector serves every engine.
"""
from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from fractions import Fraction

from reasonbridge.answers import extract_all_boxed, normalize_answer

STATES = ("complete", "partial", "uncertain", "unverified")

UNCERTAINTY_PHRASES = (
    "i'm not sure", "i am not sure", "not sure", "this might be", "might be wrong", "maybe",
    "perhaps", "i think", "i guess", "possibly", "unclear", "not certain", "doesn't seem right",
    "does not seem right", "that can't be right", "hmm",
)
VERIFICATION_CUES = (
    "check:", "checking", "double-check", "verify", "verified", "verification", "which matches",
    "this matches", "confirms", "substitut", "plugging",
)

_NUM = r"\d+(?:\.\d+)?"
# A chain of numbers joined by + - * / × ÷, then "= result"; the look-behind keeps a claim
# from starting in the middle of a longer expression or a word.
_CLAIM = re.compile(
    rf"(?<![\w.^)])(-?{_NUM}(?:\s*[-+*/×÷]\s*-?{_NUM})+)\s*=\s*(-?{_NUM})(?![\d.]*\s*[-+*/×÷^])")
# a number not inside a word, a decimal or an index ("#2" names an operation, it is not a quantity)
_NUMBER = re.compile(r"(?<![\w.#])\d+(?:\.\d+)?(?![\w])")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass
class StateReport:
    state: str
    cues: list[str] = field(default_factory=list)
    # what the detector doubts, as (kind, text the model wrote): ("claim", "7 + 3 = 11") for a false
    # claim, ("unused", "16") for a quantity of the problem the reasoning never used. GII may cite
    # it in its phrase; it is never a value the detector computed.
    doubts: list[tuple[str, str]] = field(default_factory=list)


def _evaluate(expression: str) -> Fraction | None:
    """Exact value of a +-*/ expression of numbers; None if it is not one (or divides by 0)."""
    expression = expression.replace("×", "*").replace("÷", "/")

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(expression)

    try:
        return ev(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def arithmetic_errors(text: str) -> list[str]:
    """Written claims ``a op b = c`` that are false; a decimal claim may be rounded."""
    errors = []
    for m in _CLAIM.finditer(text):
        value = _evaluate(m[1])
        if value is None:
            continue
        claimed = Fraction(m[2])
        decimals = len(m[2].split(".")[1]) if "." in m[2] else 0
        tolerance = Fraction(1, 2 * 10 ** decimals) if decimals else Fraction(0)
        if abs(value - claimed) > tolerance:
            errors.append(m.group(0))
    return errors


def unused_quantities(problem: str, text: str) -> list[str]:
    """Numbers stated in the problem that the reasoning never mentions."""
    used = {normalize_answer(n) for n in _NUMBER.findall(text)}
    return sorted({n for n in _NUMBER.findall(problem) if normalize_answer(n) not in used}, key=problem.find)


def detect_state(segment: str, *, problem: str | None = None, full_text: str | None = None) -> StateReport:
    """Classify reasoning for the next intervention.

    ``segment`` is the reasoning since the last intervention (errors, uncertainty and
    verification are judged there: an error already answered by a redirection is not
    counted twice); ``full_text`` is all reasoning so far (coverage of the problem's
    quantities and whether anything was computed are judged there).
    """
    full_text = segment if full_text is None else full_text
    lower = segment.lower()
    errors = arithmetic_errors(segment)
    cues: list[str] = [f"arithmetic error: {e}" for e in errors]
    cues += [f"uncertainty: {p!r}" for p in UNCERTAINTY_PHRASES if re.search(rf"\b{re.escape(p)}\b", lower)]
    boxed = {normalize_answer(b) for b in extract_all_boxed(segment)}
    if len(boxed) > 1:
        cues.append(f"contradiction: answers {sorted(boxed)}")
    if cues:
        return StateReport("uncertain", cues, [("claim", " ".join(e.split())) for e in errors])

    if not _CLAIM.search(full_text) and not extract_all_boxed(full_text):
        return StateReport("partial", ["no computed result"])
    if problem:
        unused = unused_quantities(problem, full_text)
        if unused:
            return StateReport("partial", [f"unused quantities: {', '.join(unused)}"], [("unused", n) for n in unused])

    if not any(cue in lower for cue in VERIFICATION_CUES):
        return StateReport("unverified", ["results computed without a verification step"])
    return StateReport("complete", [])
