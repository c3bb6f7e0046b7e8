"""The problem record every stage passes on, and the domain codes it carries.

A problem is a dict ``{id, problem, answer, domain, difficulty, meta, ...}``. Problems of the
synthetic suites record their worked solution in ``meta`` (``steps``: single operations
``{a, op, b, c, a_src, b_src}``, and ``check``); real benchmarks' problems do not. Domains are
two-digit MSC (Mathematics Subject Classification) codes. This module sits at the bottom of the
package graph: curation writes these records, evaluation and diagnostics read them.
"""
from __future__ import annotations

# The synthetic suite's domains, by MSC code
DOMAINS: dict[str, str] = {
    "97": "arithmetic word problems",
    "15": "linear equations",
    "11": "number theory",
    "05": "combinatorics",
    "60": "probability",
    "51": "geometry",
    "40": "sequences",
}
DEFAULT_DOMAIN = "97"  # mathematics education / arithmetic word problems

# MSC two-digit codes offered to an LLM classifier (those of the embedded suite and of MATH)
MSC_CODES = {
    "97": "mathematics education, arithmetic word problems", "08": "general algebraic systems, algebra",
    "12": "field theory and polynomials", "15": "linear and multilinear algebra, equations",
    "26": "real functions, precalculus", "51": "geometry", "11": "number theory", "05": "combinatorics",
    "60": "probability theory", "40": "sequences, series, summability", "34": "ordinary differential equations",
    "28": "measure and integration, calculus",
}

# MATH's subjects as MSC two-digit codes, so real pools get domains without a classifier
SUBJECT_TO_MSC = {
    "prealgebra": "97", "algebra": "08", "intermediate algebra": "12", "precalculus": "26",
    "geometry": "51", "number theory": "11", "counting & probability": "05",
}


def has_worked_solution(problem: dict) -> bool:
    """Whether a problem records its worked solution (the synthetic suite's do, real benchmarks' not)."""
    return bool((problem.get("meta") or {}).get("steps"))


def solution_operations(meta: dict) -> list[dict]:
    """The single operations of a problem's worked solution: its steps, then its check."""
    return [st for st in [*(meta.get("steps") or []), meta.get("check")] if st]


def step_ancestors(steps: list[dict], i: int) -> set[int]:
    """Indices of the steps whose results step ``i`` uses, directly or not (``i`` included)."""
    out, todo = set(), [i]
    while todo:
        j = todo.pop()
        if j not in out:
            out.add(j)
            todo += [s for s in (steps[j].get("a_src"), steps[j].get("b_src")) if s is not None]
    return out
