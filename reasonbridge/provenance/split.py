"""Sentences of a written trace, each with its part of the trace.

A sentence is a non-blank line, or a sentence of a long line (as the curation segmenter cuts
free-form text), so the organism's lines, word-problem traces and a chat model's paragraphs all
split the same way. Thinking tags of chat templates (``<think>``) are not sentences."""
from __future__ import annotations

import re

from reasonbridge.curation.segment import _units

PARTS = ("strategy", "plan", "step", "check", "reflection", "answer")

_TAG = re.compile(r"</?(think|thinking|reasoning|answer)>", re.IGNORECASE)
_LABEL = r"^\s*(?:[#*>\-\s]*)(?:\*\*)?"
_PART_RULES = [
    ("answer", re.compile(r"\\boxed\s*\{|final answer|the answer is", re.IGNORECASE)),
    ("strategy", re.compile(_LABEL + r"(strategy|approach|idea|key idea|overview)\b\s*(\*\*)?:", re.IGNORECASE)),
    ("plan", re.compile(_LABEL + r"(plan|goal|subgoal|sub-goal|outline)\b\s*(\*\*)?:", re.IGNORECASE)),
    ("check", re.compile(_LABEL + r"(check|verify|verification|verifying)\b", re.IGNORECASE)),
    # a thinking model's second look (the organism's reflections are the intervention phrases)
    ("reflection", re.compile(r"^\s*(wait|hmm|hold on|alternatively|let me (double-)?check|let me re|"
                              r"but wait|actually|on second thought)\b", re.IGNORECASE)),
]


def part_of(sentence: str) -> str:
    for part, rule in _PART_RULES:
        if rule.search(sentence):
            return part
    return "step"


def split_sentences(text: str) -> list[dict]:
    """``{start, end, text, part}`` per sentence of ``text`` (character offsets into it), in order."""
    out = []
    for a, b in _units(text):
        chunk = text[a:b]
        # thinking tags are not sentences: cut them out, keep what stands beside them
        pieces, pos = [], 0
        for m in _TAG.finditer(chunk):
            pieces.append((pos, m.start()))
            pos = m.end()
        pieces.append((pos, len(chunk)))
        for s, e in pieces:
            piece = chunk[s:e]
            if not piece.strip():
                continue
            s += len(piece) - len(piece.lstrip())
            e -= len(piece) - len(piece.rstrip())
            sentence = text[a + s:a + e]
            out.append({"start": a + s, "end": a + e, "text": sentence, "part": part_of(sentence)})
    return out
