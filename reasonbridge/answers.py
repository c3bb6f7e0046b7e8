"""Answer extraction and exact checking for the synthetic benchmark (``\\boxed{}`` answers)."""
from __future__ import annotations

import re
from fractions import Fraction

_BOXED = re.compile(r"\\boxed\s*\{")
_FRAC = re.compile(r"([+-]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def _boxed_spans(text: str) -> list[tuple[int, int, int | None]]:
    """Per ``\\boxed{``, in order: where it starts, where its content starts, and the end just after
    its closing brace (None where its braces never close)."""
    out: list[tuple[int, int, int | None]] = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append((m.start(), m.end(), i if depth == 0 else None))
    return out


def _boxed_contents(text: str) -> list[str | None]:
    """Content of every ``\\boxed{`` in order; None where its braces never close."""
    return [None if end is None else text[content:end - 1].strip() for _, content, end in _boxed_spans(text)]


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``; None if there is none, or the last is unbalanced or empty."""
    contents = _boxed_contents(text)
    return (contents[-1] or None) if contents else None


def last_boxed(text: str) -> str | None:
    """The last balanced ``\\boxed{...}`` exactly as the text writes it (its spacing included, which a
    word-level tokenizer such as the organism's needs), or None."""
    spans = _boxed_spans(text)
    if not spans or spans[-1][2] is None:
        return None
    start, _, end = spans[-1]
    return text[start:end]


def extract_all_boxed(text: str) -> list[str]:
    """Contents of every balanced, non-empty ``\\boxed{...}``, in order."""
    return [c for c in _boxed_contents(text) if c]


def normalize_answer(s: str) -> str:
    """Canonical form for exact comparison: integers without leading zeros, reduced fractions."""
    s = s.strip().replace("$", "").replace("\\!", "").replace("\\,", "")
    s = re.sub(r"\s+", "", s).rstrip(".")
    if m := _FRAC.fullmatch(s):
        s = f"{m[1]}{m[2]}/{m[3]}"
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if re.fullmatch(r"[+-]?\d+", s):
        return str(int(s))  # also turns "-0" into "0"
    if m := re.fullmatch(r"([+-]?\d+)/([+-]?\d+)", s):
        if int(m[2]) != 0:
            f = Fraction(int(m[1]), int(m[2]))
            return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
    if re.fullmatch(r"[+-]?\d*\.\d+", s):
        f = Fraction(s)
        return str(f.numerator) if f.denominator == 1 else s.rstrip("0").lstrip("+")
    return s


def check_exact(pred_text: str, gold: str) -> tuple[bool, str | None, str]:
    """(correct, extracted answer, reason) for the last boxed answer of ``pred_text``."""
    extracted = extract_boxed(pred_text)
    if extracted is None:
        return False, None, "no answer extracted"
    if normalize_answer(extracted) == normalize_answer(str(gold)):
        return True, extracted, "match"
    return False, extracted, "mismatch"
