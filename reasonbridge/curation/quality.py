"""The quality filter (paper §3.1): rule checks on a trace's text, as real reasoning teachers write it.

A trace is rejected with one or more reasons (the data stage logs their counts as
``data/rejected/<reason>``):

- ``truncated``: the teacher ran out of tokens (``finish_reason: length``) or left a ``<think>``
  block open;
- ``missing_answer`` / ``multiple_answers`` / ``contradictory_answer``: no final ``\\boxed{}``
  (after ``</think>`` when the trace has one); two different boxed answers with no correction
  between them; a stated answer ("the answer is 5") that disagrees with the box;
- ``wrong_answer``: the final answer differs from the gold one (exact, then math-verify);
- ``arithmetic_error``: a false calculation never corrected (see ``uncorrected_errors``);
- ``self_contradiction``: "So <quantity> is v" against the value just computed for it;
- ``unbalanced_brackets``, ``broken_expression``, ``broken_format`` (an unclosed code fence, a
  second ``</think>``), ``inconsistent_variables``.

Real formats are read as written: markdown emphasis, headings and rules, fenced and inline code
(left out of the arithmetic and expression checks: ``n ** 2``, ``n // 2``), LaTeX (``\\frac{a}{b}``,
``\\cdot``, ``\\times``, ``$...$``, ``\\(...\\)``), currency dollars, thousands separators, negative
numbers, chained expressions (``3 + 4 + 5 = 12``) and decimals rounded or truncated as written
(``10 / 3 = 3.33``). A slip the reasoner takes back is a self-correction, not an error: the same
calculation written again with the right result, or a correction cue (``CORRECTION_CUES``: "Wait",
"Actually", "Is that right", ...) followed by the right value.
"""
from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

from reasonbridge.answers import normalize_answer

# What a reasoner writes when it takes something back (a retraction: the right value may follow
# alone) or re-examines it (a doubt: the right value must come with its calculation, or the wrong one
# be denied, "is 10, not 11"); matched case-insensitively at a word start. The organism's
# intervention phrases (inference.phrases, inference.cite) are among the doubts.
RETRACTION_CUES = ("actually", "no,", "oops", "mistake", "that's wrong", "that is wrong", "that's not right",
                   "not right", "correction", "i made an error", "scratch that", "on second thought", "incorrect")
DOUBT_CUES = ("wait", "alternatively", "let me think further", "right?", "is that right", "let me double-check",
              "let me double check", "hmm", "let me recompute", "let me recalculate", "let me recheck",
              "let me re-check", "let me check again", "let me redo", "let me verify")
CORRECTION_CUES = DOUBT_CUES + RETRACTION_CUES


def _cue_pattern(cues) -> re.Pattern:
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(c) for c in cues) + r")", re.IGNORECASE)


_CUE, _RETRACTION = _cue_pattern(CORRECTION_CUES), _cue_pattern(RETRACTION_CUES)
# how far after a cue the corrected value may be written
CORRECTION_WINDOW = 400

REASONS = ("truncated", "missing_answer", "multiple_answers", "contradictory_answer", "unbalanced_brackets",
           "arithmetic_error", "broken_expression", "broken_format", "inconsistent_variables",
           "self_contradiction", "wrong_answer")


# -- the text as the checks read it --------------------------------------------------------
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"https?://[^\s)\]>]+")
_RULE = re.compile(r"^[ \t|:*_-]*(?:-{3,}|\*{3,}|_{3,})[ \t|:*_-]*$", re.MULTILINE)  # --- *** |---|:--:|
_BOLD = re.compile(r"\*\*|__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[A-Za-z])([^*\n]+?)(?<=\S)\*(?![\w*])")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}")
_LATEX_OPS = [(re.compile(r"\\(?:cdot|times|ast)(?![A-Za-z])|[×·∙]"), " * "), (re.compile(r"\\div(?![A-Za-z])|÷"), " / "),
              (re.compile(r"\\approx(?![A-Za-z])"), " ≈ "), (re.compile(r"−"), "-")]
_MATH_DELIMS = re.compile(r"\\[()\[\]]|\$")
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3}(?:(?:,|\{,\})\d{3})+)(?![\d,])")


def _prose(text: str) -> str:
    """The text without code (fenced or inline), URLs, markdown rules and emphasis."""
    text = _FENCE.sub("\n", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _RULE.sub("", text)
    text = _BOLD.sub("", text)
    return _ITALIC.sub(r"\1", text)


def _arithmetic_view(prose: str) -> str:
    """Prose with LaTeX numbers and operators as plain arithmetic: ``\\frac{10}{3} \\cdot 3`` -> ``(10)/(3) * 3``."""
    text = _FRAC.sub(r"(\1)/(\2)", prose)
    for pattern, repl in _LATEX_OPS:
        text = pattern.sub(repl, text)
    text = _MATH_DELIMS.sub(" ", text)
    return _THOUSANDS.sub(lambda m: re.sub(r"\{,\}|,", "", m[1]), text)


# -- arithmetic ----------------------------------------------------------------------------
_NUM = r"\d+(?:\.\d+)?"
_OPERAND = rf"(?:-\s?)?\(*\s*(?:-\s?)?{_NUM}\s*\)*"
_CALC = re.compile(rf"(?<![\w.^_}}\\])(?<!\d,)(?<!\d:)({_OPERAND}(?:\s*[-+*/]\s*{_OPERAND})+)\s*(=|≈)(?!=)\s*"
                   rf"(-\s?)?({_NUM})(?:\s*/\s*({_NUM}))?(?![\w.:]\d|\w)")
_CONTINUES = re.compile(r"\s*(?:[-+*/^]\s*[\d(]|\(\s*\d|\.\d)")  # the right side is itself an expression
_APPROX_TAIL = re.compile(r"\s*(?:\.\.\.|…|\\ldots|\\dots)")
_REMAINDER = re.compile(r"\s*(?:r\s*\d|R\s*\d|remainder|with a remainder)", re.IGNORECASE)
_OPERATORS = "+-*/^"


class Calculation:
    """One calculation written in a trace: ``lhs`` (normalised) ``=`` or ``≈`` a result."""

    __slots__ = ("start", "end", "lhs", "value", "result", "decimals", "approx")

    def __init__(self, start, end, lhs, value, result, decimals, approx):
        self.start, self.end, self.lhs, self.value = start, end, lhs, value
        self.result, self.decimals, self.approx = result, decimals, approx

    @property
    def holds(self) -> bool:
        return result_matches(self.value, self.result, self.decimals, self.approx)

    def __repr__(self) -> str:
        return f"{self.lhs} {'≈' if self.approx else '='} {self.result} (true: {self.value})"


def _evaluate(expr: str) -> Fraction | None:
    """``expr`` (numbers, + - * /, parentheses) evaluated exactly; None if it is anything else."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(ast.get_source_segment(expr.strip(), node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise ZeroDivisionError
            return a / b
        raise ValueError(type(node).__name__)
    try:
        return ev(tree.body)
    except (ValueError, ZeroDivisionError, TypeError):
        return None


def _round_half_away(x: Fraction, decimals: int) -> Fraction:
    scale = 10 ** decimals
    return Fraction(int(math.floor(abs(x) * scale + Fraction(1, 2))) * (1 if x >= 0 else -1), scale)


def _truncate(x: Fraction, decimals: int) -> Fraction:
    scale = 10 ** decimals
    return Fraction(int(abs(x) * scale) * (1 if x >= 0 else -1), scale)


def result_matches(value: Fraction, result: Fraction, decimals: int, approx: bool = False) -> bool:
    """Whether ``result``, written with ``decimals`` decimals, is ``value``: exactly, or rounded
    or truncated to what is written when it has decimals or is marked approximate (≈, ...)."""
    if value == result:
        return True
    if decimals == 0 and not approx:
        return False
    return result in (_round_half_away(value, decimals), _truncate(value, decimals))


def calculations(text: str) -> list[Calculation]:
    """Every calculation with numbers only (``3 + 4 + 5 = 12``, ``-5 * 2 = -10``, ``10 / 3 = 3.33``)
    written in ``text``'s prose, with the value it has; an expression that continues into a
    variable (``x - 3 = 5``, ``2x + 3 = 11``) or into another expression is not one."""
    view = _arithmetic_view(_prose(text))
    out = []
    for m in _CALC.finditer(view):
        lhs, relation, minus, num, den = m.groups()
        before = view[:m.start()].rstrip()
        prev = before[-1:] if before else ""
        if prev and prev in _OPERATORS:  # the expression goes on to the left: "x * 3 + 4 = ..."
            continue
        if lhs.lstrip().startswith("-") and prev and (prev.isalnum() or prev in ")]}"):
            continue  # a binary minus after a variable: "x - 3 = 5"
        if lhs.count("(") < lhs.count(")"):
            continue  # closes a bracket opened before: "f(2 + 3) = 10"
        if _CONTINUES.match(view, m.end()) or _REMAINDER.match(view, m.end()):
            continue
        expr, excess = lhs, lhs.count("(") - lhs.count(")")
        while excess > 0 and expr.lstrip().startswith("("):  # opened before the calculation: "(3 + 4 = 7)"
            expr, excess = expr.lstrip()[1:], excess - 1
        value = _evaluate(expr) if excess == 0 else None
        if value is None:
            continue
        result = Fraction(num) / (Fraction(den) if den else 1)
        if den and Fraction(den) == 0:
            continue
        result = -result if minus else result
        decimals = len(num.split(".")[1]) if "." in num and not den else 0
        approx = relation == "≈" or bool(_APPROX_TAIL.match(view, m.end()))
        out.append(Calculation(m.start(), m.end(), re.sub(r"\s+", "", expr), value, result, decimals, approx))
    return out


_RESULT_OF = r"(?:=|≈|\bis\b|\bbe\b|\bequals?\b|\bgives?\b|\bget\b|\bgot\b|'s\b|:)\s*(-?\s?{num})(?![\d.]*\d)"


def _written(number: str) -> tuple[Fraction, int]:
    number = number.replace(" ", "")
    return Fraction(number), len(number.split(".")[1]) if "." in number else 0


def _takes_back(view: str, calc: Calculation) -> bool:
    """Whether a correction cue after ``calc`` is followed, within ``CORRECTION_WINDOW``, by its
    right value: after a retraction ("Actually, it's 48") the value written as a result; after a
    doubt ("Wait", "Let me double-check") the calculation restated with it ("12 * 4 is 48") or the
    wrong value denied ("48, not 46")."""
    wrong = re.escape(str(calc.result) if calc.result.denominator == 1 else format(float(calc.result), "g"))
    for cue in _CUE.finditer(view, calc.end):
        window = view[cue.end():cue.end() + CORRECTION_WINDOW]
        if re.search(rf"\bnot\s+(?:\$\s*)?{wrong}(?![\d.]*\d)", window):
            return True
        for m in re.finditer(_RESULT_OF.format(num=_NUM), window):
            value, decimals = _written(m.group(1))
            if not result_matches(calc.value, value, decimals, calc.approx):
                continue
            stated = re.sub(r"\s+", "", _arithmetic_view(window[max(0, m.start() - 60):m.start()]))
            if _RETRACTION.fullmatch(cue.group()) or stated.endswith(calc.lhs):
                return True
    return False


def uncorrected_errors(text: str) -> list[Calculation]:
    """False calculations the text never takes back: a slip corrected later (``7 + 3 = 11 ...
    Wait ... 7 + 3 = 10``, or a cue followed by the right value) is a self-correction, not an error."""
    calcs = calculations(text)
    view = _arithmetic_view(_prose(text))
    errors = []
    for i, c in enumerate(calcs):
        if c.holds:
            continue
        redone = any(later.lhs == c.lhs and later.holds for later in calcs[i + 1:])
        if not redone and not _takes_back(view, c):
            errors.append(c)
    return errors


# The organism's diagnostics read single operations ``a op b = c`` (reasonbridge.diagnostics.steps).
_EQUATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([-+*/×÷])\s*(\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)(?![\w.])")


def written_operations(text: str) -> list[tuple[str, str, str, str]]:
    """Every single operation ``a op b = c`` written in `text`, as strings (a, op, b, c)."""
    return _EQUATION.findall(text)


def operation_holds(a: str, op: str, b: str, c: str) -> bool:
    x, y = Fraction(a), Fraction(b)
    value = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "×": lambda: x * y,
             "/": lambda: x / y if y else None, "÷": lambda: x / y if y else None}[op]()
    return value is not None and value == Fraction(c)


# -- format --------------------------------------------------------------------------------
_PAIRS = {")": "(", "]": "[", "}": "{"}
_ENUMERATOR = re.compile(r"(?:^|(?<=\s))(?:\d{1,2}|[a-h])\)(?=[ \t]+[A-Za-z])", re.MULTILINE)  # "1) find", "b) the"
_DOUBLE_OP = re.compile(r"([-+*/=])\s*([-+*/=])")
_UNARY_NEXT = re.compile(r"\s?[\d\w(\\.$]")
_DANGLING = re.compile(r"[-+*/]\s*$|=\s*(?:$|[,.;)])|\(\s*\)", re.MULTILINE)


def _balanced(prose: str) -> bool:
    text = re.sub(r"\\[{}()\[\]|]", "", prose)  # escaped delimiters are literal characters
    text = _ENUMERATOR.sub("", text)
    stack = []
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS:
            if not stack or stack.pop() != _PAIRS[ch]:
                return False
    if stack:
        return False
    if len(re.findall(r"\\left\b", prose)) != len(re.findall(r"\\right\b", prose)):
        return False
    dollars = prose.replace("\\$", "")
    return dollars.count("$$") % 2 == 0 and _math_dollars(dollars.replace("$$", "")) % 2 == 0


def _math_dollars(text: str) -> int:
    """The ``$`` of inline math in ``text``, currency signs left out: a ``$`` before a number
    (not a variable: ``$2x``) whose line has no later ``$`` closing a span (one right after a
    non-space: ``$5 + 3 = 8$`` is math, ``$4 = $48`` and ``costs $5.`` are money)."""
    count = 0
    for line in text.split("\n"):
        for m in re.finditer(r"\$", line):
            number = re.match(r"\d[\d,]*(?:\.\d+)?(?![A-Za-z\d])", line[m.end():])
            if number:
                later = line.find("$", m.end())
                if later < 0 or line[later - 1].isspace():
                    continue  # currency
            count += 1
    return count


def _broken(prose: str) -> bool:
    """Two operators in a row (a unary minus or plus before an operand, ``**``, ``//``, ``--``
    and ``==`` aside), an operator ending a line, ``=`` with nothing after it, ``()``."""
    for m in _DOUBLE_OP.finditer(prose):
        first, second = m.groups()
        if m.group() in ("**", "//", "--", "==", "+=", "-=", "*=", "/="):  # code and markdown, written adjacent
            continue
        if second in "-+" and _UNARY_NEXT.match(prose, m.end()):
            continue
        return True
    return bool(_DANGLING.search(prose))


# -- answers -------------------------------------------------------------------------------
_THINK_OPEN, _THINK_CLOSE = re.compile(r"<think>", re.I), re.compile(r"</think>", re.I)
_BOXED_AT = re.compile(r"\\boxed\s*\{")
_STATED = re.compile(r"(?:final answer|the answer)\s*(?:is|:)?\s*[:=]?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)(?![\d.]*\d)"
                     r"(?!\s*(?:[-+*/×·=^]|\\))", re.IGNORECASE)  # a number, not the start of a calculation


def answer_region(text: str) -> str:
    """Where the final answer is written: after the last ``</think>``, else the whole text."""
    closes = list(_THINK_CLOSE.finditer(text))
    return text[closes[-1].end():] if closes else text


def _boxes(text: str) -> list[tuple[int, str]]:
    """(position, content) of every balanced, non-empty ``\\boxed{}``."""
    out = []
    for m in _BOXED_AT.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        content = text[m.end():i - 1].strip()
        if depth == 0 and content:
            out.append((m.start(), content))
    return out


def _cue_between(text: str, a: int, b: int) -> bool:
    return _CUE.search(text, a, b) is not None


def same_answer(a: str, b: str) -> bool:
    """Equal answers: exactly after normalisation, else by math-verify (``0.5`` and ``\\frac{1}{2}``)."""
    na, nb = normalize_answer(a), normalize_answer(b)
    if na == nb:
        return True
    if re.fullmatch(r"-?\d+", na) and re.fullmatch(r"-?\d+", nb):
        return False  # two different integers: nothing for math-verify to add
    try:
        import logging
        import threading

        from math_verify import parse, verify
        # math-verify's timeouts are SIGALRM, which only the main thread can set
        timeout = 5 if threading.current_thread() is threading.main_thread() else None
        quiet = logging.getLogger("math_verify")
        level, quiet.level = quiet.level, logging.ERROR  # its "timeout is disabled" warning
        try:
            gold = parse(f"${b}$", parsing_timeout=timeout)
            pred = parse(f"\\boxed{{{a}}}", parsing_timeout=timeout)
            return bool(gold and pred and verify(gold, pred, timeout_seconds=timeout))
        finally:
            quiet.level = level
    except Exception:  # an expression math-verify cannot read (or a timeout) is not equal
        return False


def _answer_reasons(text: str, gold) -> tuple[list[str], str | None]:
    region = _prose(answer_region(text))
    boxes = _boxes(region)
    if not boxes:
        return ["missing_answer"], None
    final_at, final = boxes[-1]
    reasons = []
    if any(normalize_answer(b) != normalize_answer(final) and not _cue_between(region, at, final_at)
           for at, b in boxes[:-1]):
        reasons.append("multiple_answers")
    for m in _STATED.finditer(region):
        stated = m.group(1).replace(",", "")
        if normalize_answer(stated) == normalize_answer(final):
            continue
        if m.start() < final_at and _cue_between(region, m.end(), final_at):
            continue  # stated, taken back, then boxed
        reasons.append("contradictory_answer")
        break
    if gold not in (None, "") and "multiple_answers" not in reasons and not same_answer(final, str(gold)):
        reasons.append("wrong_answer")
    return reasons, final


# -- consistency ---------------------------------------------------------------------------
_STATEMENT = re.compile(r"(?:^|\.\s+)So (\S.{0,60}?) is (-?\d+)\.?\s*$", re.MULTILINE)
_LABELLED_RESULT = re.compile(r"=\s*(-?\d+)\s*\((.{1,60})\)\s*$", re.MULTILINE)
_VARIABLE = re.compile(r"(?<![A-Za-z\\])([a-z])\s*(?==|\+|-(?!\d)|\*)|(?<=\d)([a-z])(?![A-Za-z])")


def _variables(text: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(text)} - {"a"}


def _contradicts_itself(text: str) -> bool:
    """A restatement "So <quantity> is <v>" disagreeing with the value last computed or stated for
    it, with no correction cue between the two."""
    events = [(m.start(), m.group(2).strip().lower(), m.group(1), False) for m in _LABELLED_RESULT.finditer(text)]
    events += [(m.start(), m.group(1).strip().lower(), m.group(2), True) for m in _STATEMENT.finditer(text)]
    current: dict[str, tuple[str, int]] = {}
    for at, what, value, statement in sorted(events):
        if statement and what in current and current[what][0] != value and not _cue_between(text, current[what][1], at):
            return True
        current[what] = (value, at)
    return False


# -- the filter ----------------------------------------------------------------------------
def quality_reasons(trace: dict) -> list[str]:
    """Why a trace fails the quality filter (empty when it passes); names from ``REASONS``."""
    text = trace.get("text") or ""
    reasons = []
    opened, closed = len(_THINK_OPEN.findall(text)), len(_THINK_CLOSE.findall(text))
    if trace.get("finish_reason") == "length" or opened > closed:
        reasons.append("truncated")
    answer, _ = _answer_reasons(text, trace.get("gold"))
    reasons += [r for r in answer if r != "wrong_answer"]
    prose = _prose(text)
    if not _balanced(prose):
        reasons.append("unbalanced_brackets")
    if uncorrected_errors(text):
        reasons.append("arithmetic_error")
    if _broken(prose):
        reasons.append("broken_expression")
    fences = len(re.findall(r"^[ \t]*(?:```|~~~)", text, re.MULTILINE))
    if fences % 2 or closed > max(opened, 1):
        reasons.append("broken_format")
    problem_vars = _variables(trace.get("problem") or "")
    written = _variables(prose)
    if problem_vars and written - problem_vars and not (written & problem_vars):
        reasons.append("inconsistent_variables")
    if _contradicts_itself(prose):
        reasons.append("self_contradiction")
    return reasons + [r for r in answer if r == "wrong_answer"]


def quality_filter(traces: list[dict]) -> tuple[list[dict], list[dict]]:
    """(kept traces, rejections ``{problem_id, reasons}``)."""
    kept, rejected = [], []
    for t in traces:
        reasons = quality_reasons(t)
        if reasons:
            rejected.append({"problem_id": t["problem_id"], "reasons": reasons})
        else:
            kept.append(t)
    return kept, rejected
