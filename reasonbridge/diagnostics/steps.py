"""Step-level diagnostics for problems that carry their reference solution (the synthetic suite).

Of the single operations ``a op b = c`` a model wrote, how many are true, and how many are
operations of the reference solution (its steps or its check). Accuracy alone cannot tell a
student that calculates wrongly from one that calculates the wrong things; these two can.
"""
from __future__ import annotations

from fractions import Fraction

from reasonbridge.curation.filters import operation_holds, written_operations
from reasonbridge.problems import has_worked_solution, solution_operations

_OPS = {"×": "*", "÷": "/"}


def _key(a, op, b) -> tuple[Fraction, str, Fraction]:
    return Fraction(str(a)), _OPS.get(op, op), Fraction(str(b))


def reference_operations(problem: dict) -> set[tuple[Fraction, str, Fraction]] | None:
    """The operations of a problem's reference solution; None when it has none recorded."""
    if not has_worked_solution(problem):
        return None
    return {_key(s["a"], s["op"], s["b"]) for s in solution_operations(problem["meta"])}


def step_counts(output: str, reference: set | None) -> dict[str, int] | None:
    """``{written, true, reference}`` operation counts of one output; None without a reference."""
    if reference is None:
        return None
    ops = written_operations(output)
    return {"written": len(ops), "true": sum(operation_holds(*o) for o in ops),
            "reference": sum(_key(a, op, b) in reference for a, op, b, _ in ops)}


def step_metrics(benchmark: str, counts: list[dict | None]) -> dict[str, float]:
    """`steps/true/<b>` and `steps/reference/<b>`: shares of all written operations (pooled over
    the predictions that have a reference), plus `steps/written/<b>` per prediction."""
    counts = [c for c in counts if c is not None]
    if not counts:
        return {}
    written = sum(c["written"] for c in counts)
    out = {f"steps/written/{benchmark}": written / len(counts)}
    if written:
        out[f"steps/true/{benchmark}"] = sum(c["true"] for c in counts) / written
        out[f"steps/reference/{benchmark}"] = sum(c["reference"] for c in counts) / written
    return out
