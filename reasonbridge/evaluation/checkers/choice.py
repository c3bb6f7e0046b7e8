"""Answers picked from a set: multiple-choice option letters (GPQA, MMLU, LogiQA) and BBH's targets."""
from __future__ import annotations

import re

from reasonbridge.answers import extract_boxed
from reasonbridge.evaluation.checkers.verdict import NO_ANSWER, Verdict


# -- multiple choice -----------------------------------------------------------------------
def extract_letter(output: str, n_options: int, options: list[str] | None = None) -> str | None:
    """The option letter a model chose: \\boxed{B}, "the answer is (B)", "Answer: B", a line
    "B)" or "(B)", or an option's exact text; the last such statement wins."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_options]
    cls = f"[{letters}{letters.lower()}]"
    boxed = extract_boxed(output)
    if boxed is not None:
        inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed).strip(" ().:$")
        if re.fullmatch(cls, inner):
            return inner.upper()
        m = re.match(rf"\(?({cls})\)?[).:\s]", inner + " ")
        if m and m[1].isupper():
            return m[1]
    patterns = [
        rf"answer\s*(?:is|:)\s*(?:option\s*)?[\(\[]?\**\s*({cls})\b",
        rf"(?:option|choice)\s*[\(\[]?({cls})[\)\]]?\s*is\s*(?:correct|the answer)",
        rf"^\s*[\(\[]?([{letters}])[\)\].:]?\s*$",
        rf"\(([{letters}])\)",
    ]
    for pattern in patterns:
        found = list(re.finditer(pattern, output, re.IGNORECASE | re.MULTILINE))
        if found:
            return found[-1][1].upper()
    if options:
        tail = output.strip().splitlines()[-1].strip().rstrip(".").lower() if output.strip() else ""
        for k, opt in enumerate(options):
            if tail and tail == opt.strip().rstrip(".").lower():
                return letters[k]
    return None


def check_choice(output: str, gold: str, meta: dict | None = None) -> Verdict:
    options = (meta or {}).get("choices")
    n = len(options) if options else max(4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(gold.upper()) + 1)
    letter = extract_letter(output, n, options)
    if letter is None:
        return Verdict(False, None, "choice", NO_ANSWER)
    ok = letter == gold.strip().upper()
    return Verdict(ok, letter, "choice", f"chose {letter}, gold {gold.strip().upper()}")


# -- BBH -----------------------------------------------------------------------------------
def normalize_bbh(text: str) -> str:
    """BBH's comparison form: trimmed, lower case, no trailing period, an option "(A)" as "a"."""
    t = re.sub(r"\s+", " ", text.strip().strip("*").strip()).rstrip(".").strip().lower()
    if m := re.fullmatch(r"\(?([a-r])\)(?:\s.*)?|\(([a-r])\)?", t):
        return m[1] or m[2]
    return t


def check_bbh(output: str, gold: str) -> Verdict:
    extracted = extract_boxed(output)
    if extracted is None:
        found = re.findall(r"the answer is\s*:?\s*(.+?)\s*(?:\.\s*$|$)", output, re.IGNORECASE | re.MULTILINE)
        extracted = found[-1] if found else None
    if extracted is None:
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        extracted = lines[-1] if lines else None
    if extracted is None:
        return Verdict(False, None, "bbh", NO_ANSWER)
    extracted = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", extracted)
    ok = normalize_bbh(extracted) == normalize_bbh(gold)
    return Verdict(ok, extracted.strip(), "bbh", f"{normalize_bbh(extracted)!r} {'==' if ok else '!='} "
                                                   f"{normalize_bbh(gold)!r}")
