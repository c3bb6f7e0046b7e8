"""Answer checkers: each verdict says which checker judged it and why.

  exact    the synthetic benchmark: last \\boxed{} against the gold, normalised (reasonbridge/answers.py)
  math     math-verify: ``verify(parse(gold), parse(prediction))`` with the gold wrapped in $...$
           so it parses; run in worker processes because its timeouts are signal based
  integer  AIME: the answer as an integer ("025" = 25)
  choice   multiple choice: the option letter, extracted robustly
  bbh      BIG-Bench Hard: exact match after BBH's normalisation
  code     HumanEval: the completion runs against the tests in a fresh interpreter inside an OS
           sandbox (sandbox.py: bubblewrap namespaces, read-only filesystem, rlimits), with a
           timeout; without one it refuses to start unless benchmark.unsafe_unsandboxed_code=true

One module per kind: math_answers.py (exact, math, integer), choice.py (choice, bbh),
code.py (code); this one dispatches a batch to its checker.

An output without an answer is wrong with the reason "no answer extracted"; nothing a model
writes makes a checker raise.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reasonbridge.answers import check_exact
from reasonbridge.evaluation import sandbox
from reasonbridge.evaluation.checkers.choice import check_bbh, check_choice
from reasonbridge.evaluation.checkers.code import check_code
from reasonbridge.evaluation.checkers.math_answers import MathVerifier, check_integer
from reasonbridge.evaluation.checkers.verdict import CHECKERS, NO_ANSWER, Verdict

__all__ = ["CHECKERS", "NO_ANSWER", "Checker", "Verdict"]


# -- dispatch ------------------------------------------------------------------------------
class Checker:
    """Judges batches of (output, problem) for one checker; a context manager, so the math
    worker pool is shut down when evaluation ends. The code checker raises
    `sandbox.SandboxUnavailable` here, before any work, when no OS sandbox can run and
    ``unsafe_unsandboxed_code`` is not set."""

    def __init__(self, name: str, *, workers: int = 2, code_timeout_s: float = 10.0,
                 unsafe_unsandboxed_code: bool = False):
        if name not in CHECKERS:
            raise ValueError(f"unknown checker {name!r}; expected one of {CHECKERS}")
        self.name, self.workers, self.code_timeout_s = name, workers, code_timeout_s
        self.isolation = sandbox.require(unsafe_unsandboxed_code) if name == "code" else None
        self._math = MathVerifier(workers) if name == "math" else None

    def __enter__(self) -> "Checker":
        if self._math is not None:
            self._math.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._math is not None:
            self._math.close()

    def check_one(self, output: str, problem: dict) -> Verdict:
        return self.check([output], [problem])[0]

    def check(self, outputs: list[str], problems: list[dict]) -> list[Verdict]:
        name = self.name
        if name == "math":
            return [Verdict(ok, ext, "math", why)
                    for ok, ext, why in self._math.check([(o, str(p["answer"])) for o, p in zip(outputs, problems)])]
        if name == "code":
            def one(pair):
                o, p = pair
                return check_code(o, p["problem"], p["meta"]["tests"], p["meta"]["entry_point"],
                                  timeout_s=self.code_timeout_s, isolation=self.isolation)
            with ThreadPoolExecutor(self.workers) as pool:  # each test runs in its own subprocess
                return list(pool.map(one, zip(outputs, problems)))
        verdicts = []
        for o, p in zip(outputs, problems):
            gold = str(p["answer"])
            if name == "exact":
                ok, ext, why = check_exact(o, gold)
                verdicts.append(Verdict(ok, ext, "exact", why))
            elif name == "integer":
                verdicts.append(check_integer(o, gold))
            elif name == "choice":
                verdicts.append(check_choice(o, gold, p.get("meta")))
            else:
                verdicts.append(check_bbh(o, gold))
        return verdicts
