"""The four provenance categories from the three probabilities of one sentence."""
from __future__ import annotations

CATEGORIES = ("teacher", "student", "shared", "boosted")


def categorize(p_t: float, p_s: float, p_d: float, *, alpha: float, beta: float) -> str:
    """shared: every pairwise difference within ``alpha`` (checked first, so with alpha >= beta a
    sentence all three find alike is shared, not teacher); teacher: p_T - p_S > beta; student:
    p_S - p_T > beta; boosted: otherwise (D made it likely although T and S agree it is not)."""
    if abs(p_t - p_s) <= alpha and abs(p_t - p_d) <= alpha and abs(p_s - p_d) <= alpha:
        return "shared"
    if p_t - p_s > beta:
        return "teacher"
    if p_s - p_t > beta:
        return "student"
    return "boosted"


def shares(rows: list[dict], key: str = "category") -> dict[str, float]:
    """The share of each category among ``rows`` (every category present, 0 when absent)."""
    n = len(rows)
    return {c: (sum(r[key] == c for r in rows) / n if n else 0.0) for c in CATEGORIES}


def teacher_originated(p_t: list[float], p_s: list[float], beta: float) -> int:
    """How many sentences are teacher-originated (p_T - p_S > beta): the selection criterion."""
    return sum(t - s > beta for t, s in zip(p_t, p_s))
