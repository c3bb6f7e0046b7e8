"""Mathematical answers: math-verify's symbolic equivalence (MATH-500, GSM8K) and AIME's integers."""
from __future__ import annotations

import multiprocessing
import re

from reasonbridge.answers import extract_boxed
from reasonbridge.evaluation.checkers.verdict import NO_ANSWER, Verdict


# -- math (math-verify) --------------------------------------------------------------------
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")


def _strip_thousands(text: str) -> str:
    """"1,234,567" -> "1234567" (only well-formed groups, so "(1,2)" stays a tuple)."""
    return _THOUSANDS.sub(lambda m: m[1].replace(",", ""), text)


def _wrap_gold(gold: str) -> str:
    gold = gold.strip()
    return gold if "\\boxed" in gold or gold.startswith("$") else f"${gold}$"


_TAIL_CHARS = 500


def verify_math(prediction: str, gold: str) -> tuple[bool, str | None, str]:
    """(correct, extracted, reason) with math-verify; call it in a process's main thread."""
    from math_verify import parse, verify

    try:
        gold_parsed = parse(_wrap_gold(_strip_thousands(gold)))
        if not gold_parsed:
            return False, None, f"gold {gold!r} does not parse"
        # math-verify prefers the last \boxed{} anyway; handing it just that box spares it a scan
        # of the whole reasoning for other candidate expressions (the bulk of its time)
        # (without a box, the answer is stated at the end: its last lines suffice)
        boxed = extract_boxed(prediction)
        tail = prediction[-_TAIL_CHARS:]
        pred_parsed = parse(_strip_thousands(f"\\boxed{{{boxed}}}" if boxed else tail))
        if not pred_parsed and boxed:
            pred_parsed = parse(_strip_thousands(tail))
        if not pred_parsed:
            return False, None, NO_ANSWER
        extracted = str(pred_parsed[-1] if isinstance(pred_parsed[-1], str) else pred_parsed[0])
        ok = verify(gold_parsed, pred_parsed)  # gold first: verify is not symmetric
        return bool(ok), extracted, "equivalent (math-verify)" if ok else "not equivalent (math-verify)"
    except Exception as e:  # a pathological expression must not end the run
        return False, None, f"math-verify error: {type(e).__name__}: {e}"[:300]


def _verify_pair(pair: tuple[str, str]) -> tuple[bool, str | None, str]:
    return verify_math(*pair)


def _import_math_verify() -> None:
    import math_verify  # noqa: F401  (workers import it while the model still generates)


class MathVerifier:
    """A small process pool for math-verify; a verification stuck past ``timeout_s`` is wrong
    ("verification timed out") and its pool is replaced."""

    def __init__(self, workers: int = 2, timeout_s: float = 60.0):
        self.workers, self.timeout_s = workers, timeout_s
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            # spawn: the parent holds torch's threads; a forked child could inherit a held lock
            self._pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_import_math_verify)
        return self._pool

    def start(self) -> None:
        """Start the workers now (they warm up in the background)."""
        self._get_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def check(self, pairs: list[tuple[str, str]]) -> list[tuple[bool, str | None, str]]:
        if not pairs:
            return []
        pending = [self._get_pool().apply_async(_verify_pair, (p,)) for p in pairs]
        results = []
        for i, job in enumerate(pending):
            try:
                results.append(job.get(timeout=self.timeout_s))
            except multiprocessing.TimeoutError:
                self.close()  # the stuck worker dies with the pool; re-check the rest in a fresh one
                return results + [(False, None, "verification timed out")] + self.check(pairs[i + 1:])
        return results


# -- integers (AIME) -----------------------------------------------------------------------
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)?\s*[:=]?\s*\$?\\?\(?\s*([^\n$]+)", re.IGNORECASE)
_INT = re.compile(r"[-+]?\d[\d,]*")


def check_integer(output: str, gold: str) -> Verdict:
    extracted = extract_boxed(output)
    if extracted is None:
        m = list(_ANSWER_IS.finditer(output))
        extracted = m[-1][1].strip() if m else None
    if extracted is None:
        numbers = _INT.findall(output)
        extracted = numbers[-1] if numbers else None
    if extracted is None:
        return Verdict(False, None, "integer", NO_ANSWER)
    cleaned = re.sub(r"[\s$,{}]|\\[,!;]|\\text|\\mathrm|\^\\circ|\.$", "", extracted)
    m = re.fullmatch(r"[-+]?\d+(?:\.0+)?", cleaned) or re.match(r"[-+]?\d+", cleaned)
    if not m:
        return Verdict(False, extracted, "integer", f"{extracted!r} is not an integer")
    value = int(float(m[0]))
    try:
        target = int(str(gold).strip())
    except ValueError:
        return Verdict(False, str(value), "integer", f"gold {gold!r} is not an integer")
    ok = value == target
    return Verdict(ok, str(value), "integer", f"{value} {'==' if ok else '!='} {target}")
