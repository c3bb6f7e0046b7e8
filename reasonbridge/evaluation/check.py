"""Debug one verdict: ``python -m reasonbridge.evaluation.check --benchmark math500 --gold '\\frac12'
--pred 'so \\boxed{0.5}'`` prints the extracted answer, the verdict and the checker; the exit
status is 0 when judged correct, 1 when wrong (2 for a usage error).

The gold is given as the benchmark file holds it (a GSM8K solution ending in "#### N", an AIME
answer, an option letter); for humaneval pass the prompt, tests and entry point.
"""
from __future__ import annotations

import argparse
import sys

from reasonbridge.evaluation.benchmarks import SPECS, gsm8k_gold
from reasonbridge.evaluation.checkers import CHECKERS, Checker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbridge.evaluation.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", required=True, choices=sorted(SPECS))
    ap.add_argument("--gold", help="the gold answer as the benchmark file holds it (humaneval: unused)")
    ap.add_argument("--pred", required=True, help="the model's output, verbatim")
    ap.add_argument("--checker", choices=CHECKERS, help="override the benchmark's checker")
    ap.add_argument("--choices", nargs="+", help="multiple choice: the options in shown order (A, B, ...)")
    ap.add_argument("--prompt", default="", help="humaneval: the function prompt")
    ap.add_argument("--tests", help="humaneval: the test code defining check(candidate)")
    ap.add_argument("--entry-point", help="humaneval: the function's name")
    ap.add_argument("--unsafe-unsandboxed-code", action="store_true",
                    help="humaneval: run the program without an OS sandbox when none is available (unsafe)")
    args = ap.parse_args(argv)
    name = args.checker or SPECS[args.benchmark].checker
    if name == "code":
        if not (args.tests and args.entry_point):
            ap.error("humaneval needs --tests and --entry-point")
        problem = {"problem": args.prompt, "answer": args.entry_point,
                   "meta": {"tests": args.tests, "entry_point": args.entry_point}}
    else:
        if args.gold is None:
            ap.error("--gold is required")
        gold = args.gold
        if args.benchmark == "gsm8k" and "####" in gold:
            gold = gsm8k_gold(gold)
        problem = {"problem": "", "answer": gold, "meta": {"choices": args.choices} if args.choices else {}}
    from reasonbridge.evaluation.sandbox import SandboxUnavailable
    try:
        with Checker(name, workers=1, unsafe_unsandboxed_code=args.unsafe_unsandboxed_code) as checker:
            verdict = checker.check_one(args.pred, problem)
    except SandboxUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"extracted: {verdict.extracted!r}")
    print(f"verdict:   {'correct' if verdict.correct else 'wrong'} ({verdict.reason})")
    print(f"checker:   {verdict.checker}")
    if verdict.isolation:
        print(f"isolation: {verdict.isolation}")
    return 0 if verdict.correct else 1


if __name__ == "__main__":
    sys.exit(main())
