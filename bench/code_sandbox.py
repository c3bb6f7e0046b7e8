"""Throughput of the code checker on honest programs: in the OS sandbox vs the old unsandboxed path.

Judges the same honest HumanEval-style completions (each runs its tests in a fresh interpreter)
through `Checker("code")` with the bubblewrap sandbox, and through the unsandboxed subprocess
path that judged code before issue 16 (`isolation=none`), in interleaved rounds (best of each,
since the machine is shared). Prints programs/s of each and the ratio sandboxed / unsandboxed.

    python bench/code_sandbox.py                      # 40 programs, 2 workers, 3 rounds
    python bench/code_sandbox.py --programs 100 --workers 4
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = 'def running_max(xs: list[int]) -> list[int]:\n    """Running maxima of xs."""\n'
COMPLETION = "    out, best = [], None\n    for x in xs:\n        best = x if best is None else max(best, x)\n" \
             "        out.append(best)\n    return out\n"
TESTS = "def check(candidate):\n    assert candidate([1, 3, 2, {k}]) == [1, 3, 3, max(3, {k})]\n" \
        "    assert candidate([]) == []\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2, help="programs judged at once (benchmark.check_workers)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from reasonbridge.evaluation import sandbox
    from reasonbridge.evaluation.checkers import Checker

    reason = sandbox.unavailable_reason()
    if reason is not None:
        sys.exit(f"no OS sandbox here: {reason}")
    problems = [{"problem": PROMPT, "meta": {"tests": TESTS.format(k=k), "entry_point": "running_max"}}
                for k in range(args.programs)]
    outputs = [COMPLETION] * args.programs
    best = {sandbox.ISOLATION_BWRAP: float("inf"), sandbox.ISOLATION_NONE: float("inf")}
    for _ in range(args.rounds):
        for isolation in best:
            judge = Checker("code", workers=args.workers)
            judge.isolation = isolation  # the same checker, one path or the other
            t0 = time.perf_counter()
            verdicts = judge.check(outputs, problems)
            best[isolation] = min(best[isolation], time.perf_counter() - t0)
            assert all(v.correct for v in verdicts), {v.reason for v in verdicts}
    boxed, bare = best[sandbox.ISOLATION_BWRAP], best[sandbox.ISOLATION_NONE]
    print(f"{args.programs} honest programs, {args.workers} workers, best of {args.rounds} rounds")
    print(f"  sandboxed (bwrap):    {args.programs / boxed:6.1f} programs/s  ({boxed * 1000 / args.programs:.0f} ms each)")
    print(f"  unsandboxed (before): {args.programs / bare:6.1f} programs/s  ({bare * 1000 / args.programs:.0f} ms each)")
    print(f"  throughput ratio sandboxed / unsandboxed: {bare / boxed:.2f}")


if __name__ == "__main__":
    main()
