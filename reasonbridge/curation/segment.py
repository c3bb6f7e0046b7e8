"""Split free-form teacher text into strategic / tactical / operational / answer spans.

The symbolic teacher marks its spans itself; traces from other teachers go through this
heuristic, which works line by line (a line longer than `SENTENCE_SPLIT_CHARS` with no line
breaks is split into sentences first) and gives each unit the first level that applies:

1. answer: the last unit with a ``\\boxed{}``, "final answer" or "the answer is" (and every unit after it);
2. strategic: a unit labelled "Strategy:", "Approach:", "Idea:", "Key idea:" or "Overview:", or,
   when no unit is labelled strategic, the first unit if it states an intention ("we need",
   "to solve", "to find", "the key", "we can", "let's") and does no arithmetic;
3. tactical: a unit labelled "Plan:", "Goal:", "Subgoal:" or one that announces a sub-goal
   ("First,", "Next,", "Then,", "Now,", "Finally,", "1)", "2.") and does no arithmetic;
4. operational: everything else (calculations, "Step k:", "Check:", restatements).

Consecutive units of one level form one span; spans are character offsets into the text and
never include the whitespace between units, as with the symbolic teacher.
"""
from __future__ import annotations

import re

LEVELS = ("strategic", "tactical", "operational", "answer")
SENTENCE_SPLIT_CHARS = 200

_ANSWER = re.compile(r"\\boxed\s*\{|final answer|the answer is", re.IGNORECASE)
_STRATEGIC_LABEL = re.compile(r"^\s*(\*\*)?(strategy|approach|idea|key idea|overview)\b\s*(\*\*)?:", re.IGNORECASE)
_STRATEGIC_INTENT = re.compile(r"\b(we need|to solve|to find|the key|we can|let's|let us|we will)\b", re.IGNORECASE)
_TACTICAL_LABEL = re.compile(r"^\s*(\*\*)?(plan|goal|subgoal|sub-goal|outline)\b\s*(\*\*)?:", re.IGNORECASE)
_TACTICAL_CUE = re.compile(r"^\s*(first|next|then|now|finally|second|third)\b,?|^\s*\d+[.)]\s", re.IGNORECASE)
_ARITHMETIC = re.compile(r"\d\s*[-+*/×÷^=]\s*[\d(]|=\s*-?\d|\\(frac|times|cdot)")


def _units(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line, or sentence within a long line."""
    units = []
    for m in re.finditer(r"[^\n]+", text):
        line_start, line = m.start(), m.group()
        pieces = ([(s.start(), s.end()) for s in re.finditer(r"[^.!?]+(?:[.!?]+|$)", line)]
                  if len(line) > SENTENCE_SPLIT_CHARS else [(0, len(line))])
        for a, b in pieces:
            chunk = line[a:b]
            lead, trail = len(chunk) - len(chunk.lstrip()), len(chunk) - len(chunk.rstrip())
            if chunk.strip():
                units.append((line_start + a + lead, line_start + b - trail))
    return units


def segment(text: str) -> list[dict]:
    """Spans ``{level, start, end}`` covering every non-blank unit of ``text``, in order."""
    units = _units(text)
    if not units:
        return []
    levels = ["operational"] * len(units)
    answer_from = next((i for i in reversed(range(len(units))) if _ANSWER.search(text[slice(*units[i])])), None)
    labelled = any(_STRATEGIC_LABEL.search(text[slice(*u)]) for u in units)
    for i, (a, b) in enumerate(units):
        unit = text[a:b]
        arithmetic = bool(_ARITHMETIC.search(unit))
        if answer_from is not None and i >= answer_from:
            levels[i] = "answer"
        elif _STRATEGIC_LABEL.search(unit) or (not labelled and i == 0 and not arithmetic
                                              and _STRATEGIC_INTENT.search(unit)):
            levels[i] = "strategic"
        elif _TACTICAL_LABEL.search(unit) or (_TACTICAL_CUE.search(unit) and not arithmetic):
            levels[i] = "tactical"
    spans: list[dict] = []
    for level, (a, b) in zip(levels, units):
        if spans and spans[-1]["level"] == level:
            spans[-1]["end"] = b
        else:
            spans.append({"level": level, "start": a, "end": b})
    return spans
