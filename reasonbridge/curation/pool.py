"""Problem pools and the held-out synthetic benchmark.

The synthetic problem space is split by a hash of each problem's text: one tenth is
reserved for evaluation ("heldout"), the rest feeds the pool and the tiny student's
pre-training ("train"). Pool and benchmark therefore never share a problem, whatever
their sizes and seeds; the pool stage still checks it and logs the count.
"""
from __future__ import annotations

import hashlib

from reasonbridge.curation.synthetic import generate_problems

HELDOUT_SHARE = 10  # 1 in 10 problem texts belongs to the held-out split


def split_of(problem_text: str) -> str:
    digest = hashlib.sha256(problem_text.encode()).digest()
    return "heldout" if digest[0] % HELDOUT_SHARE == 0 else "train"


def generate_split(n: int, *, seed: int, split: str, id_prefix: str, difficulties=(1, 5),
                   max_operand: int = 20, domains=None, max_rounds: int = 200) -> list[dict]:
    """`n` distinct synthetic problems from one side of the split, deterministic in `seed`."""
    out: list[dict] = []
    seen: set[str] = set()
    for round_ in range(max_rounds):
        batch = generate_problems(max(64, 2 * n), seed=seed * 1000 + round_, domains=domains,
                                  difficulties=tuple(difficulties), max_operand=max_operand, id_prefix=id_prefix)
        for p in batch:
            if p["problem"] in seen or split_of(p["problem"]) != split:
                continue
            seen.add(p["problem"])
            out.append({**p, "id": f"{id_prefix}-{p['domain']}-{len(out):06d}"})
            if len(out) == n:
                return out
    raise RuntimeError(f"could only generate {len(out)} of {n} distinct {split!r} problems; "
                       "widen pool.max_operand / difficulties or lower the size")


def synthetic_benchmark(size: int, *, seed: int, difficulties, max_operand: int, domains) -> list[dict]:
    return generate_split(size, seed=seed + 101, split="heldout", id_prefix="bench",
                          difficulties=difficulties, max_operand=max_operand, domains=domains)


def synthetic_pool(size: int, *, seed: int, difficulties, max_operand: int, domains,
                   exclude_texts: set[str]) -> tuple[list[dict], int]:
    """The pool, with any problem whose text appears in an evaluation benchmark removed."""
    problems = generate_split(size, seed=seed + 202, split="train", id_prefix="pool",
                              difficulties=difficulties, max_operand=max_operand, domains=domains)
    kept = [p for p in problems if p["problem"] not in exclude_texts]
    return kept, len(problems) - len(kept)
