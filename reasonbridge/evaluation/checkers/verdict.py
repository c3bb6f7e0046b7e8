"""What every checker returns: a verdict that says which checker judged it and why."""
from __future__ import annotations

from dataclasses import asdict, dataclass

NO_ANSWER = "no answer extracted"
CHECKERS = ("exact", "math", "integer", "choice", "bbh", "code")


@dataclass
class Verdict:
    correct: bool
    extracted: str | None
    checker: str
    reason: str
    isolation: str | None = None  # code: which isolation ran the program (sandbox.ISOLATION_*)

    def as_dict(self) -> dict:
        return asdict(self)
